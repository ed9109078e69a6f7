//! The mail port: how failure notifications leave.

use async_trait::async_trait;

/// One notification email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The recipient's address.
    pub to: String,
    /// The recipient's display name, when known.
    pub to_name: Option<String>,
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// Sends one email. Implement it over your mail system, or use [`SmtpMailer`](crate::SmtpMailer) (feature `smtp`)
/// or [`RecordingMailer`](crate::testing::RecordingMailer) in tests.
#[async_trait]
pub trait Mailer: Send + Sync {
    /// Sends the email. An error keeps the notification in the outbox; it is tried again later.
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// Why an email was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sending mail failed: {message}")]
pub struct MailError {
    message: String,
    permanent: bool,
}

impl MailError {
    /// A failure that may go away (server down, temporary rejection).
    pub fn transient(message: impl Into<String>) -> Self {
        MailError { message: message.into(), permanent: false }
    }
    /// A failure that will not go away for this recipient (address rejected).
    pub fn permanent(message: impl Into<String>) -> Self {
        MailError { message: message.into(), permanent: true }
    }
    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }
}
