//! Unit tests of `smtp`.

use super::*;

fn email(to: &str) -> Email {
    Email { to: to.into(), to_name: None, subject: "Subject".into(), body: "Body".into() }
}

fn formatted(mailer: &SmtpMailer, email: &Email) -> String {
    let message = mailer.message(email).expect("message builds");
    String::from_utf8(message.formatted()).expect("message is ASCII")
}

#[test]
fn port_follows_tls_mode_unless_set() {
    let build = |tls| SmtpMailer::builder("smtp.example.com", "crm@example.com").tls(tls).build().unwrap();
    assert_eq!(build(SmtpTls::StartTls).port(), 587);
    assert_eq!(build(SmtpTls::Tls).port(), 465);
    assert_eq!(build(SmtpTls::None).port(), 25);
    let custom = SmtpMailer::builder("smtp.example.com", "crm@example.com").port(2525).build().unwrap();
    assert_eq!(custom.port(), 2525);
}

#[test]
fn defaults() {
    let mailer = SmtpMailer::builder("smtp.example.com", "crm@example.com").build().unwrap();
    assert_eq!(mailer.tls(), SmtpTls::StartTls);
    assert_eq!(mailer.port(), 587);
    assert_eq!(mailer.timeout(), Duration::from_secs(30));
    assert_eq!(mailer.host(), "smtp.example.com");
    assert_eq!(mailer.from_address(), "crm@example.com");
    assert_eq!(SmtpTls::default(), SmtpTls::StartTls);
}

#[test]
fn builds_and_drops_outside_a_runtime() {
    // No Tokio runtime here: building (TLS settings included) and dropping must not need one.
    for tls in [SmtpTls::None, SmtpTls::StartTls, SmtpTls::Tls] {
        let mailer = SmtpMailer::builder("smtp.example.com", "crm@example.com").tls(tls).build().unwrap();
        drop(mailer.clone());
        drop(mailer);
    }
}

#[test]
fn from_with_display_name() {
    let mailer = SmtpMailer::builder("smtp.example.com", "CRM Alerts <crm@example.com>").build().unwrap();
    assert_eq!(mailer.from_address(), "CRM Alerts <crm@example.com>");
}

#[test]
fn invalid_from_is_rejected_with_the_value() {
    for from in ["", "not an address", "crm@", "@example.com", "crm example.com"] {
        let err = SmtpMailer::builder("smtp.example.com", from).build().unwrap_err();
        assert_eq!(err, SmtpError::InvalidFrom { from: from.into() }, "{from:?}");
        assert!(err.to_string().contains(&format!("{from:?}")), "{err}");
    }
}

#[test]
fn host_is_checked() {
    assert_eq!(SmtpMailer::builder("  ", "crm@example.com").build().unwrap_err(), SmtpError::EmptyHost);
    for host in ["smtp://smtp.example.com", "smtp.example.com:587", "smtp example.com", "user@smtp.example.com"] {
        let err = SmtpMailer::builder(host, "crm@example.com").build().unwrap_err();
        assert_eq!(err, SmtpError::InvalidHost { host: host.into() });
        assert!(err.to_string().contains("without a scheme, port or path"), "{err}");
    }
    for host in ["127.0.0.1", "::1", "mail.example.com", "localhost"] {
        let mailer = SmtpMailer::builder(host, "crm@example.com").tls(SmtpTls::None).build().unwrap();
        assert_eq!(mailer.host(), host);
    }
}

#[test]
fn zero_port_timeout_and_empty_username_are_rejected() {
    let builder = || SmtpMailer::builder("smtp.example.com", "crm@example.com");
    assert_eq!(builder().port(0).build().unwrap_err(), SmtpError::ZeroPort);
    assert_eq!(builder().timeout(Duration::ZERO).build().unwrap_err(), SmtpError::ZeroTimeout);
    assert_eq!(builder().credentials(" ", "pw").build().unwrap_err(), SmtpError::EmptyUsername);
    assert!(SmtpError::ZeroTimeout.to_string().contains("30 seconds"));
}

#[test]
fn debug_never_shows_credentials() {
    let builder = SmtpMailer::builder("smtp.example.com", "crm@example.com")
        .credentials("smtp-user-7", Secret::new("hunter2-password"));
    let mailer = builder.clone().build().unwrap();
    for shown in [format!("{builder:?}"), format!("{mailer:?}"), format!("{mailer:#?}")] {
        assert!(!shown.contains("hunter2-password"), "{shown}");
        assert!(!shown.contains("smtp-user-7"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(shown.contains("smtp.example.com"), "{shown}");
    }
}

#[test]
fn redact_removes_every_form_of_the_password() {
    let mailer =
        SmtpMailer::builder("smtp.example.com", "crm@example.com").credentials("user", "pass word").build().unwrap();
    let plain = BASE64.encode("\0user\0pass word");
    let login = BASE64.encode("pass word");
    let text = format!("535 bad: pass word / {plain} / {login}");
    let redacted = mailer.redact(text);
    assert_eq!(redacted, "535 bad: [redacted] / [redacted] / [redacted]");
}

#[test]
fn invalid_recipient_is_permanent() {
    let mailer = SmtpMailer::builder("smtp.example.com", "crm@example.com").build().unwrap();
    for to in ["", "owner", "owner@", "Owner <owner@example.com>", "a b@example.com"] {
        let err = mailer.message(&email(to)).unwrap_err();
        assert!(err.is_permanent(), "{to:?}");
        assert!(err.message().contains("not a valid email address"), "{err}");
    }
}

#[test]
fn message_headers() {
    let mailer = SmtpMailer::builder("smtp.example.com", "CRM <crm@example.com>").build().unwrap();
    let mut mail = email(" owner@example.com ");
    mail.to_name = Some("Jane Doe".into());
    let raw = formatted(&mailer, &mail);
    assert!(raw.contains("From: CRM <crm@example.com>\r\n"), "{raw}");
    assert!(raw.contains("To: \"Jane Doe\" <owner@example.com>\r\n"), "{raw}");
    assert!(raw.contains("Message-ID: <") && raw.contains("@example.com>\r\n"), "{raw}");
    assert!(raw.contains("Subject: Subject\r\n"), "{raw}");
    assert!(raw.contains("Content-Type: text/plain; charset=utf-8\r\n"), "{raw}");
    assert!(raw.ends_with("\r\n\r\nBody"), "{raw}");
}

#[test]
fn blank_display_name_is_left_out() {
    let mailer = SmtpMailer::builder("smtp.example.com", "crm@example.com").build().unwrap();
    let mut mail = email("owner@example.com");
    mail.to_name = Some(" \n ".into());
    let raw = formatted(&mailer, &mail);
    assert!(raw.contains("To: owner@example.com\r\n"), "{raw}");
}

#[test]
fn subject_and_name_cannot_inject_headers() {
    let mailer = SmtpMailer::builder("smtp.example.com", "crm@example.com").build().unwrap();
    let mail = Email {
        to: "owner@example.com".into(),
        to_name: Some("Eve\r\nBcc: spy@example.com".into()),
        subject: "Hello\r\nBcc: spy@example.com\nX-Evil: 1".into(),
        body: "Body".into(),
    };
    let raw = formatted(&mailer, &mail);
    let (headers, _) = raw.split_once("\r\n\r\n").unwrap();
    for line in headers.split("\r\n") {
        assert!(!line.starts_with("Bcc:") && !line.starts_with("X-Evil:"), "{raw}");
    }
    let message = mailer.message(&mail).unwrap();
    let recipients: Vec<String> = message.envelope().to().iter().map(ToString::to_string).collect();
    assert_eq!(recipients, ["owner@example.com"]);
}

#[test]
fn one_line_folds_control_characters() {
    assert_eq!(one_line(" a\r\nb\tc\u{7f} "), "a  b c");
}

#[test]
fn error_messages_are_actionable() {
    assert!(SmtpError::EmptyHost.to_string().contains("smtp.example.com"));
    assert!(SmtpError::ZeroPort.to_string().contains("587"));
    assert!(SmtpError::EmptyUsername.to_string().contains("user name"));
    let tls = SmtpError::Tls { host: "h".into(), tls: SmtpTls::Tls, reason: "bad".into() };
    assert_eq!(tls.to_string(), "could not prepare TLS (implicit TLS) for SMTP host \"h\": bad");
}
