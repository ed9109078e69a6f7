//! `SmtpMailer` against a small SMTP sink on 127.0.0.1 (no other address is contacted).
#![cfg(feature = "smtp")]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use crm_webhooks::adapters::smtp::{SmtpMailer, SmtpTls};
use crm_webhooks::ports::{Email, MailError};
use crm_webhooks::{Mailer, Secret};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------------------------
// The sink

/// One accepted message.
#[derive(Debug, Clone)]
struct Received {
    from: String,
    recipients: Vec<String>,
    /// The message as it was sent, dot-unstuffed, lines joined with CRLF.
    raw: String,
}

/// One AUTH exchange the sink saw.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AuthSeen {
    mechanism: String,
    username: String,
    password: String,
}

/// How the sink answers.
#[derive(Debug, Clone)]
struct Behaviour {
    /// The AUTH mechanisms advertised after EHLO (`None`: no AUTH line).
    auth: Option<&'static str>,
    /// The reply to a completed AUTH; `{line}` is replaced by the last line the client sent.
    auth_reply: &'static str,
    rcpt_reply: &'static str,
    data_reply: &'static str,
    /// Accept connections but never say anything.
    silent: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            auth: Some("PLAIN LOGIN"),
            auth_reply: "235 2.7.0 Authentication successful",
            rcpt_reply: "250 2.1.5 OK",
            data_reply: "250 2.0.0 queued",
            silent: false,
        }
    }
}

#[derive(Default)]
struct Log {
    sessions: usize,
    messages: Vec<Received>,
    auths: Vec<AuthSeen>,
    commands: Vec<String>,
}

struct Sink {
    addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    async fn start(behaviour: Behaviour) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the sink");
        let addr = listener.local_addr().expect("sink address");
        let log = Arc::new(Mutex::new(Log::default()));
        let task_log = Arc::clone(&log);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                task_log.lock().unwrap().sessions += 1;
                let (log, behaviour) = (Arc::clone(&task_log), behaviour.clone());
                tokio::spawn(async move {
                    if behaviour.silent {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        drop(stream);
                    } else {
                        let _ = session(stream, &behaviour, &log).await;
                    }
                });
            }
        });
        Sink { addr, log, task }
    }

    fn mailer(&self) -> crm_webhooks::adapters::smtp::SmtpMailerBuilder {
        SmtpMailer::builder("127.0.0.1", "CRM Alerts <crm@example.com>")
            .tls(SmtpTls::None)
            .port(self.addr.port())
            .timeout(Duration::from_secs(10))
    }

    fn messages(&self) -> Vec<Received> {
        self.log.lock().unwrap().messages.clone()
    }

    fn auths(&self) -> Vec<AuthSeen> {
        self.log.lock().unwrap().auths.clone()
    }

    fn sessions(&self) -> usize {
        self.log.lock().unwrap().sessions
    }

    fn commands(&self) -> Vec<String> {
        self.log.lock().unwrap().commands.clone()
    }
}

async fn read_line(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

async fn reply(reader: &mut BufReader<TcpStream>, text: &str) -> std::io::Result<()> {
    // One write per reply: a second small write would wait on a delayed ACK (Nagle).
    let stream = reader.get_mut();
    stream.write_all(format!("{text}\r\n").as_bytes()).await?;
    stream.flush().await
}

fn b64_text(text: &str) -> String {
    BASE64.decode(text.trim()).ok().and_then(|bytes| String::from_utf8(bytes).ok()).unwrap_or_default()
}

/// `<address>` out of `MAIL FROM:<address> PARAMS`.
fn path_of(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg[start..].find('>').map_or(arg.len(), |i| start + i);
    arg[start..end].to_owned()
}

async fn session(stream: TcpStream, behaviour: &Behaviour, log: &Mutex<Log>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    reply(&mut reader, "220 sink.test ESMTP ready").await?;
    let mut from: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    while let Some(line) = read_line(&mut reader).await? {
        log.lock().unwrap().commands.push(line.clone());
        let (verb, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                let mut lines = vec!["250-sink.test greets you", "250-8BITMIME", "250-SMTPUTF8"];
                let auth = behaviour.auth.map(|mechanisms| format!("250-AUTH {mechanisms}"));
                if let Some(auth) = &auth {
                    lines.push(auth);
                }
                lines.push("250 SIZE 10485760");
                reply(&mut reader, &lines.join("\r\n")).await?;
            }
            "HELO" => reply(&mut reader, "250 sink.test").await?,
            "AUTH" => {
                let (mechanism, initial) = arg.split_once(' ').unwrap_or((arg, ""));
                let mechanism = mechanism.to_ascii_uppercase();
                let (username, password, last) = match mechanism.as_str() {
                    "PLAIN" => {
                        let response = if initial.is_empty() {
                            reply(&mut reader, "334 ").await?;
                            read_line(&mut reader).await?.unwrap_or_default()
                        } else {
                            initial.to_owned()
                        };
                        let decoded = b64_text(&response);
                        let mut parts = decoded.split('\0').skip(1);
                        let username = parts.next().unwrap_or_default().to_owned();
                        let password = parts.next().unwrap_or_default().to_owned();
                        (username, password, line.clone())
                    }
                    "LOGIN" => {
                        let user_line = if initial.is_empty() {
                            reply(&mut reader, &format!("334 {}", BASE64.encode("Username:"))).await?;
                            read_line(&mut reader).await?.unwrap_or_default()
                        } else {
                            initial.to_owned()
                        };
                        reply(&mut reader, &format!("334 {}", BASE64.encode("Password:"))).await?;
                        let password_line = read_line(&mut reader).await?.unwrap_or_default();
                        (b64_text(&user_line), b64_text(&password_line), password_line)
                    }
                    _ => {
                        reply(&mut reader, "504 5.5.4 mechanism not supported").await?;
                        continue;
                    }
                };
                log.lock().unwrap().auths.push(AuthSeen { mechanism, username, password });
                reply(&mut reader, &behaviour.auth_reply.replace("{line}", &last)).await?;
            }
            "MAIL" => {
                from = Some(path_of(arg));
                recipients.clear();
                reply(&mut reader, "250 2.1.0 OK").await?;
            }
            "RCPT" => {
                if from.is_none() {
                    reply(&mut reader, "503 5.5.1 MAIL first").await?;
                    continue;
                }
                if behaviour.rcpt_reply.starts_with('2') {
                    recipients.push(path_of(arg));
                }
                reply(&mut reader, behaviour.rcpt_reply).await?;
            }
            "DATA" => {
                if recipients.is_empty() {
                    reply(&mut reader, "503 5.5.1 RCPT first").await?;
                    continue;
                }
                reply(&mut reader, "354 End data with <CR><LF>.<CR><LF>").await?;
                let mut lines = Vec::new();
                loop {
                    let Some(line) = read_line(&mut reader).await? else { return Ok(()) };
                    if line == "." {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321, 4.5.2).
                    lines.push(line.strip_prefix('.').map_or(line.clone(), str::to_owned));
                }
                if behaviour.data_reply.starts_with('2') {
                    log.lock().unwrap().messages.push(Received {
                        from: from.take().unwrap_or_default(),
                        recipients: std::mem::take(&mut recipients),
                        raw: lines.join("\r\n"),
                    });
                }
                reply(&mut reader, behaviour.data_reply).await?;
            }
            "RSET" => {
                from = None;
                recipients.clear();
                reply(&mut reader, "250 2.0.0 OK").await?;
            }
            "NOOP" => reply(&mut reader, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut reader, "221 2.0.0 bye").await?;
                return Ok(());
            }
            _ => reply(&mut reader, "502 5.5.2 command not recognized").await?,
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Reading what lettre wrote

/// A parsed message: unfolded header lines (name, raw value) and the decoded body.
#[derive(Debug)]
struct Parsed {
    headers: Vec<(String, String)>,
    body: String,
}

impl Parsed {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }

    /// A header's value with RFC 2047 encoded words decoded.
    fn decoded(&self, name: &str) -> String {
        decode_words(&self.header(name).unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers)))
    }
}

fn parse(raw: &str) -> Parsed {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("continuation after a header");
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("header line");
            headers.push((name.to_owned(), value.trim_start().to_owned()));
        }
    }
    let parsed = Parsed { headers, body: String::new() };
    let encoding = parsed.header("Content-Transfer-Encoding").unwrap_or_else(|| "7bit".into()).to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => decode_qp(body, false),
        "base64" => BASE64.decode(body.replace("\r\n", "")).expect("base64 body"),
        _ => body.as_bytes().to_vec(),
    };
    Parsed { body: String::from_utf8(bytes).expect("UTF-8 body"), ..parsed }
}

/// Quoted-printable (RFC 2045); in `q_mode` (RFC 2047 "Q"), `_` is a space.
fn decode_qp(text: &str, q_mode: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes[i + 1..].starts_with(b"\r\n") => i += 3,
            b'=' => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                i += 3;
            }
            b'_' if q_mode => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?charset?B|Q?text?=`); whitespace between two encoded words is dropped.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("=?") else {
            out.push_str(rest);
            break;
        };
        let between = &rest[..start];
        if !(after_word && between.trim().is_empty()) {
            out.push_str(between);
        }
        let word = &rest[start + 2..];
        let mut parts = word.splitn(3, '?');
        let (Some(charset), Some(kind), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
            out.push_str(&rest[start..]);
            break;
        };
        let end = tail.find("?=").expect("encoded word end");
        assert!(charset.eq_ignore_ascii_case("utf-8"), "charset {charset}");
        let bytes = match kind {
            "B" | "b" => BASE64.decode(&tail[..end]).expect("base64 word"),
            "Q" | "q" => decode_qp(&tail[..end], true),
            other => panic!("unknown encoding {other}"),
        };
        out.push_str(&String::from_utf8(bytes).expect("UTF-8 word"));
        rest = &tail[end + 2..];
        after_word = true;
    }
    out
}

/// `(display name, address)` of a decoded `Name <address>` value; quotes around the name are dropped.
fn mailbox(value: &str) -> (String, String) {
    match value.rsplit_once('<') {
        Some((name, address)) => {
            let name = name.trim();
            let name = name.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(name);
            (name.replace("\\\"", "\""), address.trim_end_matches('>').to_owned())
        }
        None => (String::new(), value.trim().to_owned()),
    }
}

fn email(to: &str, subject: &str, body: &str) -> Email {
    Email { to: to.into(), to_name: None, subject: subject.into(), body: body.into() }
}

/// The body as sent, with CRLF line endings as lettre writes them.
fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

async fn send(mailer: &dyn Mailer, email: &Email) -> Result<(), MailError> {
    tokio::time::timeout(Duration::from_secs(20), mailer.send(email)).await.expect("send finished")
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn delivers_envelope_headers_and_body() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().build().unwrap();
    let body = "Webhook \"Sync to ERP\" failed after 5 attempts.\nLast response: HTTP 503.";
    send(&mailer, &email("owner@example.com", "Webhook delivery failed", body)).await.unwrap();

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].from, "crm@example.com");
    assert_eq!(messages[0].recipients, ["owner@example.com"]);
    let parsed = parse(&messages[0].raw);
    assert_eq!(mailbox(&parsed.decoded("From")), ("CRM Alerts".into(), "crm@example.com".into()));
    assert_eq!(parsed.decoded("To"), "owner@example.com");
    assert_eq!(parsed.decoded("Subject"), "Webhook delivery failed");
    assert_eq!(parsed.header("Content-Type").unwrap().to_ascii_lowercase(), "text/plain; charset=utf-8");
    assert!(parsed.header("Date").is_some() && parsed.header("Message-ID").is_some(), "{:?}", parsed.headers);
    assert_eq!(parsed.body, crlf(body));
    // No credentials were configured, so none were offered.
    assert!(sink.auths().is_empty());
    assert!(!sink.commands().iter().any(|c| c.to_ascii_uppercase().starts_with("AUTH")));
}

#[tokio::test]
async fn non_ascii_subject_and_body_round_trip() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().build().unwrap();
    let subject = "Échec du webhook — ☃";
    let body = "Échec du webhook — ☃\nLe webhook « Synchroniser » a échoué.\n\nCordialement, 日本語テキスト";
    send(&mailer, &email("owner@example.com", subject, body)).await.unwrap();

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].raw.is_ascii(), "lettre encodes non-ASCII text: {}", messages[0].raw);
    let parsed = parse(&messages[0].raw);
    assert!(parsed.header("Subject").unwrap().contains("=?"), "subject is RFC 2047 encoded");
    assert_eq!(parsed.decoded("Subject"), subject);
    assert_eq!(parsed.body, crlf(body));
}

#[tokio::test]
async fn long_non_ascii_subject_round_trips() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().build().unwrap();
    let subject = "Échec du webhook — ☃ ".repeat(8);
    send(&mailer, &email("owner@example.com", &subject, "x")).await.unwrap();
    let parsed = parse(&sink.messages()[0].raw);
    assert_eq!(parsed.decoded("Subject"), subject.trim());
}

#[tokio::test]
async fn body_lines_starting_with_a_dot_survive() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().build().unwrap();
    let body = "first\n.\n..two dots\n.hidden\nlast";
    send(&mailer, &email("owner@example.com", "dots", body)).await.unwrap();
    assert_eq!(parse(&sink.messages()[0].raw).body, crlf(body));
}

#[tokio::test]
async fn display_name_appears_in_to() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().build().unwrap();
    let names = ["Jane Doe", "Doe, Jane", "Jane \"JD\" Doe"];
    for name in names {
        let mut mail = email("jane@example.com", "Hi", "Body");
        mail.to_name = Some(name.to_owned());
        send(&mailer, &mail).await.unwrap();
    }
    let mut mail = email("ana@example.com", "Hi", "Body");
    mail.to_name = Some("Ana Müller — Ventas".into());
    send(&mailer, &mail).await.unwrap();

    let messages = sink.messages();
    assert_eq!(messages.len(), 4);
    for (message, name) in messages.iter().zip(names) {
        let to = parse(&message.raw).decoded("To");
        assert_eq!(mailbox(&to), (name.to_owned(), "jane@example.com".to_owned()), "{to}");
        assert_eq!(message.recipients, ["jane@example.com"]);
    }
    let to = parse(&messages[3].raw).decoded("To");
    assert_eq!(mailbox(&to), ("Ana Müller — Ventas".to_owned(), "ana@example.com".to_owned()), "{to}");
    assert_eq!(messages[3].recipients, ["ana@example.com"]);
    assert_eq!(sink.sessions(), 4, "one connection per message");
}

#[tokio::test]
async fn credentials_are_sent_with_auth_plain() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().credentials("crm-sender", Secret::new("s3cr3t-Pa55!")).build().unwrap();
    send(&mailer, &email("owner@example.com", "Hi", "Body")).await.unwrap();

    let expected =
        AuthSeen { mechanism: "PLAIN".into(), username: "crm-sender".into(), password: "s3cr3t-Pa55!".into() };
    assert_eq!(sink.auths(), [expected]);
    assert_eq!(sink.messages().len(), 1);
    let shown = format!("{mailer:?} {mailer:#?}");
    assert!(!shown.contains("s3cr3t-Pa55!") && !shown.contains("crm-sender"), "{shown}");
}

#[tokio::test]
async fn credentials_are_sent_with_auth_login_when_only_login_is_offered() {
    let sink = Sink::start(Behaviour { auth: Some("LOGIN"), ..Behaviour::default() }).await;
    let mailer = sink.mailer().credentials("crm-sender", Secret::new("pässwörd ☃")).build().unwrap();
    send(&mailer, &email("owner@example.com", "Hi", "Body")).await.unwrap();

    let expected =
        AuthSeen { mechanism: "LOGIN".into(), username: "crm-sender".into(), password: "pässwörd ☃".into() };
    assert_eq!(sink.auths(), [expected]);
    assert_eq!(sink.messages().len(), 1);
    let shown = format!("{mailer:?}");
    assert!(!shown.contains("pässwörd") && !shown.contains("crm-sender"), "{shown}");
}

#[tokio::test]
async fn refused_login_is_transient_and_never_echoes_the_password() {
    // The sink echoes the client's last line in its refusal, as some servers do.
    for mechanisms in ["PLAIN", "LOGIN"] {
        let sink = Sink::start(Behaviour {
            auth: Some(mechanisms),
            auth_reply: "535 5.7.8 credentials rejected: {line}",
            ..Behaviour::default()
        })
        .await;
        let mailer = sink.mailer().credentials("crm-sender", "hunter2-secret").build().unwrap();
        let err = send(&mailer, &email("owner@example.com", "Hi", "Body")).await.unwrap_err();

        assert!(!err.is_permanent(), "a refused login is a settings problem, not this email's: {err}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("535"), "{text}");
        assert!(text.contains("user name and password"), "{text}");
        for secret in [
            "hunter2-secret".to_owned(),
            BASE64.encode("hunter2-secret"),
            BASE64.encode("\0crm-sender\0hunter2-secret"),
        ] {
            assert!(!text.contains(&secret), "{mechanisms}: {text}");
        }
        assert!(sink.messages().is_empty());
    }
}

#[tokio::test]
async fn rcpt_550_is_permanent() {
    let sink =
        Sink::start(Behaviour { rcpt_reply: "550 5.1.1 <gone@example.com>: user unknown", ..Behaviour::default() })
            .await;
    let mailer = sink.mailer().build().unwrap();
    let err = send(&mailer, &email("gone@example.com", "Hi", "Body")).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(err.message().contains("550"), "{err}");
    assert!(err.message().contains("gone@example.com"), "{err}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn rcpt_451_is_transient() {
    let sink =
        Sink::start(Behaviour { rcpt_reply: "451 4.7.1 greylisted, try again later", ..Behaviour::default() }).await;
    let mailer = sink.mailer().build().unwrap();
    let err = send(&mailer, &email("owner@example.com", "Hi", "Body")).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message().contains("451"), "{err}");
    assert!(err.message().contains("tried again"), "{err}");
}

#[tokio::test]
async fn data_452_is_transient_and_554_permanent() {
    let sink = Sink::start(Behaviour { data_reply: "452 4.3.1 insufficient storage", ..Behaviour::default() }).await;
    let err = send(&sink.mailer().build().unwrap(), &email("owner@example.com", "Hi", "Body")).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");

    let sink = Sink::start(Behaviour { data_reply: "554 5.6.0 message refused", ..Behaviour::default() }).await;
    let err = send(&sink.mailer().build().unwrap(), &email("owner@example.com", "Hi", "Body")).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
}

#[tokio::test]
async fn closed_port_is_transient() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mailer = SmtpMailer::builder("127.0.0.1", "crm@example.com")
        .tls(SmtpTls::None)
        .port(port)
        .credentials("crm-sender", "closed-port-secret")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let err = send(&mailer, &email("owner@example.com", "Hi", "Body")).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message().contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(err.message().contains("check the host, port"), "{err}");
    assert!(!err.message().contains("closed-port-secret"), "{err}");
}

#[tokio::test]
async fn silent_server_times_out_as_transient() {
    let sink = Sink::start(Behaviour { silent: true, ..Behaviour::default() }).await;
    let mailer = sink.mailer().timeout(Duration::from_millis(300)).build().unwrap();
    let started = tokio::time::Instant::now();
    let err = send(&mailer, &email("owner@example.com", "Hi", "Body")).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "gave up after {:?}", started.elapsed());
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message().contains("did not take the email"), "{err}");
    assert_eq!(sink.sessions(), 1);
}

#[tokio::test]
async fn starttls_required_but_not_offered_is_transient() {
    // The sink offers no STARTTLS: the mailer must not fall back to clear text.
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().tls(SmtpTls::StartTls).credentials("crm-sender", "tls-only-secret").build().unwrap();
    let err = send(&mailer, &email("owner@example.com", "Hi", "Body")).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(sink.auths().is_empty(), "credentials must not cross an unencrypted connection");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn implicit_tls_against_a_plain_server_is_transient() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().tls(SmtpTls::Tls).credentials("crm-sender", "tls-only-secret").build().unwrap();
    let err = send(&mailer, &email("owner@example.com", "Hi", "Body")).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert!(err.message().contains("TLS"), "{err}");
    assert!(!err.message().contains("tls-only-secret"), "{err}");
    assert!(sink.auths().is_empty() && sink.messages().is_empty());
}

#[tokio::test]
async fn invalid_recipient_is_permanent_and_nothing_is_sent() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().build().unwrap();
    let err = send(&mailer, &email("not-an-address", "Hi", "Body")).await.unwrap_err();
    assert!(err.is_permanent(), "{err}");
    assert!(err.message().contains("\"not-an-address\""), "{err}");
    assert_eq!(sink.sessions(), 0, "no connection for a bad address");
}

#[tokio::test]
async fn header_injection_through_subject_is_neutralised() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer = sink.mailer().build().unwrap();
    let mut mail = email("owner@example.com", "Failed\r\nBcc: spy@example.com", "Body");
    mail.to_name = Some("Owner\nCc: spy@example.com".into());
    send(&mailer, &mail).await.unwrap();
    let message = &sink.messages()[0];
    assert_eq!(message.recipients, ["owner@example.com"]);
    let parsed = parse(&message.raw);
    assert!(parsed.header("Bcc").is_none() && parsed.header("Cc").is_none(), "{:?}", parsed.headers);
    assert_eq!(parsed.decoded("Subject"), "Failed  Bcc: spy@example.com");
}

#[tokio::test]
async fn one_mailer_sends_many_and_concurrently() {
    let sink = Sink::start(Behaviour::default()).await;
    let mailer: Arc<dyn Mailer> = Arc::new(sink.mailer().build().unwrap());
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mailer = Arc::clone(&mailer);
        tasks.push(tokio::spawn(async move {
            send(mailer.as_ref(), &email(&format!("user{i}@example.com"), &format!("n{i}"), "Body")).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut recipients: Vec<String> = sink.messages().into_iter().flat_map(|m| m.recipients).collect();
    recipients.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("user{i}@example.com")).collect();
    assert_eq!(recipients, expected);
}
