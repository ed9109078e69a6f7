//! An SMTP [`Mailer`] over [lettre](https://docs.rs/lettre), with rustls (ring) for TLS.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use crm_webhooks::adapters::smtp::{SmtpMailer, SmtpTls};
//! use crm_webhooks::{Mailer, Secret};
//! use crm_webhooks::ports::Email;
//!
//! let mailer = SmtpMailer::builder("smtp.example.com", "CRM <crm@example.com>")
//!     .tls(SmtpTls::StartTls) // the default; port 587 unless set
//!     .credentials("crm@example.com", Secret::new("app-password"))
//!     .build()?;
//! mailer
//!     .send(&Email {
//!         to: "owner@example.com".into(),
//!         to_name: Some("Record Owner".into()),
//!         subject: "Webhook delivery failed".into(),
//!         body: "The webhook could not be delivered.".into(),
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::ports::{Email, MailError};
use crate::{Mailer, Secret};

/// How the connection to the SMTP server is encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SmtpTls {
    /// No encryption at all (port 25 by default). Only for a relay on the same host or a trusted network:
    /// credentials, if set, cross the wire in clear text.
    None,
    /// Connect in clear text, then upgrade with `STARTTLS` (port 587 by default). The upgrade is required: a
    /// server that does not offer it is not sent anything.
    #[default]
    StartTls,
    /// TLS from the first byte, "implicit TLS" or SMTPS (port 465 by default).
    Tls,
}

impl SmtpTls {
    /// The port used when none is set: 25 for [`None`](SmtpTls::None), 587 for
    /// [`StartTls`](SmtpTls::StartTls), 465 for [`Tls`](SmtpTls::Tls).
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

impl fmt::Display for SmtpTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SmtpTls::None => "no TLS",
            SmtpTls::StartTls => "STARTTLS",
            SmtpTls::Tls => "implicit TLS",
        })
    }
}

/// Why an [`SmtpMailer`] could not be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// The host is the empty string.
    #[error("the SMTP host is empty: set it to the mail server's name, such as `smtp.example.com`")]
    EmptyHost,
    /// The host is not a bare host name or IP address.
    #[error(
        "the SMTP host {host:?} is not a host name: give only the server's name or IP address (such as \
         `smtp.example.com`), without a scheme, port or path; set the port with `port(..)`"
    )]
    InvalidHost {
        /// The host as given, without surrounding whitespace.
        host: String,
    },
    /// The port is 0.
    #[error(
        "the SMTP port is 0: leave it unset to use the TLS mode's usual port (587, 465 or 25), or set the server's \
         port"
    )]
    ZeroPort,
    /// The timeout is zero, so every send would fail at once.
    #[error(
        "the SMTP timeout is zero: leave it unset for {} seconds, or give a positive duration",
        SmtpMailer::DEFAULT_TIMEOUT.as_secs()
    )]
    ZeroTimeout,
    /// The sender address does not parse.
    #[error(
        "the sender address {from:?} is not a valid email address: write it as `crm@example.com` or \
         `CRM Notifications <crm@example.com>`"
    )]
    InvalidFrom {
        /// The sender as given.
        from: String,
    },
    /// Credentials were given with an empty user name.
    #[error(
        "the SMTP user name is empty: set the account's user name, or leave credentials out if the server needs none"
    )]
    EmptyUsername,
    /// The TLS settings for the host could not be prepared.
    #[error("could not prepare TLS ({tls}) for SMTP host {host:?}: {reason}")]
    Tls {
        /// The host the TLS settings were for.
        host: String,
        /// The TLS mode.
        tls: SmtpTls,
        /// What went wrong, as the TLS library put it.
        reason: String,
    },
}

/// A user name and password, never printed.
#[derive(Clone)]
struct Login {
    username: String,
    password: Secret,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Login {
    /// The forms of the secret that could reach the wire (and so be echoed back in a server's reply): the password
    /// itself, base64 as AUTH LOGIN sends it, and the AUTH PLAIN response.
    fn secret_forms(&self) -> [String; 3] {
        let password = self.password.expose();
        [password.to_owned(), BASE64.encode(password), BASE64.encode(format!("\0{}\0{}", self.username, password))]
    }
}

/// Settings for an [`SmtpMailer`]; start with [`SmtpMailer::builder`].
#[derive(Debug, Clone)]
pub struct SmtpMailerBuilder {
    host: String,
    from: String,
    port: Option<u16>,
    tls: SmtpTls,
    login: Option<Login>,
    timeout: Duration,
}

impl SmtpMailerBuilder {
    /// The server's port. Unset, it follows the TLS mode: 587 for STARTTLS, 465 for implicit TLS, 25 for none.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How the connection is encrypted; [`SmtpTls::StartTls`] unless set.
    pub fn tls(mut self, tls: SmtpTls) -> Self {
        self.tls = tls;
        self
    }

    /// Log in with this user name and password (AUTH PLAIN, or LOGIN when the server offers only that).
    ///
    /// The password is kept as a [`Secret`]: it shows in no `Debug` output and no error message.
    pub fn credentials(mut self, username: impl Into<String>, password: impl Into<Secret>) -> Self {
        self.login = Some(Login { username: username.into(), password: password.into() });
        self
    }

    /// How long one send may take, from connecting to the server's reply to the message
    /// ([`SmtpMailer::DEFAULT_TIMEOUT`], 30 seconds, unless set). A send that takes longer fails with a transient
    /// [`MailError`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings and builds the mailer. Nothing is sent and no connection is made yet, so this works
    /// outside an async runtime too.
    ///
    /// # Errors
    ///
    /// An [`SmtpError`] when the host, port, timeout, sender address or user name is unusable, or TLS cannot be
    /// prepared for the host.
    pub fn build(self) -> Result<SmtpMailer, SmtpError> {
        let host = self.host.trim().to_owned();
        if host.is_empty() {
            return Err(SmtpError::EmptyHost);
        }
        let bad_char = |c: char| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '[' | ']' | '?' | '#');
        if host.chars().any(bad_char) || (host.contains(':') && host.parse::<Ipv6Addr>().is_err()) {
            return Err(SmtpError::InvalidHost { host });
        }
        let port = self.port.unwrap_or_else(|| self.tls.default_port());
        if port == 0 {
            return Err(SmtpError::ZeroPort);
        }
        if self.timeout.is_zero() {
            return Err(SmtpError::ZeroTimeout);
        }
        let from: Mailbox = self.from.trim().parse().map_err(|_| SmtpError::InvalidFrom { from: self.from.clone() })?;
        if let Some(login) = &self.login {
            if login.username.trim().is_empty() {
                return Err(SmtpError::EmptyUsername);
            }
        }

        let tls = match self.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => Tls::Required(tls_parameters(&host, self.tls)?),
            SmtpTls::Tls => Tls::Wrapper(tls_parameters(&host, self.tls)?),
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some(login) = &self.login {
            transport =
                transport.credentials(Credentials::new(login.username.clone(), login.password.expose().to_owned()));
        }

        Ok(SmtpMailer {
            transport: transport.build(),
            host,
            port,
            tls: self.tls,
            from,
            login: self.login,
            timeout: self.timeout,
        })
    }
}

fn tls_parameters(host: &str, tls: SmtpTls) -> Result<TlsParameters, SmtpError> {
    TlsParameters::new_rustls(host.to_owned()).map_err(|e| SmtpError::Tls {
        host: host.to_owned(),
        tls,
        reason: e.to_string(),
    })
}

/// Sends notification emails through an SMTP server: one connection per message, plain-text UTF-8 bodies.
///
/// Built with [`SmtpMailer::builder`]. Cloning is cheap and clones share nothing mutable. `Debug` shows the
/// server and sender but never the credentials.
///
/// Errors from [`send`](Mailer::send) are sorted for the outbox:
/// - permanent: the recipient address does not parse, or the server refused the message with a 5xx reply;
/// - transient: the server could not be reached or did not answer in time, TLS failed, the server answered with a
///   4xx reply, or it refused the login (530, 534, 535, 538: a settings problem that fixing the credentials cures,
///   not a fault of this message).
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    host: String,
    port: u16,
    tls: SmtpTls,
    from: Mailbox,
    login: Option<Login>,
    timeout: Duration,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field("credentials", &self.login)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Reply codes that refuse the login rather than the message.
const AUTH_REFUSALS: [&str; 4] = ["530", "534", "535", "538"];

impl SmtpMailer {
    /// How long connecting and sending one message may take, unless [`SmtpMailerBuilder::timeout`] says
    /// otherwise: 30 seconds.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

    /// Starts the settings for a mailer that talks to `host` and sends as `from`, either a bare address
    /// (`crm@example.com`) or one with a display name (`CRM <crm@example.com>`).
    ///
    /// Defaults: [`SmtpTls::StartTls`] on port 587, no credentials, a 30-second timeout.
    pub fn builder(host: &str, from: &str) -> SmtpMailerBuilder {
        SmtpMailerBuilder {
            host: host.to_owned(),
            from: from.to_owned(),
            port: None,
            tls: SmtpTls::default(),
            login: None,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// The server's host name or IP address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How the connection is encrypted.
    pub fn tls(&self) -> SmtpTls {
        self.tls
    }

    /// The sender, as it appears in the `From` header.
    pub fn from_address(&self) -> String {
        self.from.to_string()
    }

    /// How long one send may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Builds the message for `email`. An unusable recipient is a permanent error.
    fn message(&self, email: &Email) -> Result<Message, MailError> {
        let address: Address = email.to.trim().parse().map_err(|_| {
            MailError::permanent(format!(
                "the recipient address {:?} is not a valid email address; correct the user's email",
                email.to
            ))
        })?;
        let name = email.to_name.as_deref().map(one_line).filter(|name| !name.is_empty());
        Message::builder()
            .message_id(Some(format!("<{}@{}>", uuid::Uuid::new_v4().simple(), self.from.email.domain())))
            .from(self.from.clone())
            .to(Mailbox::new(name, address))
            .subject(one_line(&email.subject))
            .header(ContentType::TEXT_PLAIN)
            .body(email.body.clone())
            .map_err(|e| MailError::permanent(format!("could not build the email to {}: {e}", email.to.trim())))
    }

    /// Sorts a failed send into a permanent or transient [`MailError`] with a message a person can act on.
    fn classify(&self, to: &str, err: &lettre::transport::smtp::Error) -> MailError {
        let server = format!("{}:{}", self.host, self.port);
        let detail = self.redact(err.to_string());
        let code = err.status().map(|code| code.to_string());
        if err.is_permanent() {
            if code.as_deref().is_some_and(|code| AUTH_REFUSALS.contains(&code)) {
                return MailError::transient(format!(
                    "the SMTP server {server} refused the login ({detail}); check the SMTP user name and password"
                ));
            }
            MailError::permanent(format!("the SMTP server {server} refused the email to {to} ({detail})"))
        } else if err.is_transient() {
            MailError::transient(format!(
                "the SMTP server {server} refused the email to {to} for now ({detail}); it will be tried again"
            ))
        } else if err.is_timeout() {
            MailError::transient(format!(
                "the SMTP server {server} did not answer in time ({detail}); check that the host and port are right \
                 and the server is up"
            ))
        } else if err.is_tls() {
            MailError::transient(format!(
                "TLS ({}) with the SMTP server {server} failed ({detail}); check the TLS mode and port \
                 (STARTTLS: usually 587, implicit TLS: usually 465)",
                self.tls
            ))
        } else {
            MailError::transient(format!(
                "could not send through the SMTP server {server} ({detail}); check the host, port and TLS mode ({}) \
                 and that the server is up",
                self.tls
            ))
        }
    }

    /// Removes every form of the password from `text` (a server may echo what it received).
    fn redact(&self, mut text: String) -> String {
        if let Some(login) = &self.login {
            let mut forms = login.secret_forms();
            // Longest first: one form can contain another (the AUTH PLAIN response ends with base64 of the password).
            forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
            for form in forms {
                if !form.is_empty() {
                    text = text.replace(&form, "[redacted]");
                }
            }
        }
        text
    }
}

/// Folds `text` onto one line, so that a subject or a name cannot start a new header.
fn one_line(text: &str) -> String {
    let folded: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    folded.trim().to_owned()
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = self.message(email)?;
        let to = email.to.trim();
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_reply)) => Ok(()),
            Ok(Err(err)) => Err(self.classify(to, &err)),
            Err(_elapsed) => Err(MailError::transient(format!(
                "the SMTP server {}:{} did not take the email to {to} within {:?}; check that the host and port \
                 are right and the server is up",
                self.host, self.port, self.timeout
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
