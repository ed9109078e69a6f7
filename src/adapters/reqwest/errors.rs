//! Turning reqwest's errors into [`HttpError`]s: a kind found from the error chain, and a message that names
//! the destination without leaking secrets.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use super::resolve::{DnsFailure, SsrfRefusal};
use crate::ports::{HttpError, HttpErrorKind};

/// The method and `scheme://host:port` of a request, the only parts of it that go into messages: a path or query
/// can hold a token (many webhook URLs embed their secret in the path), userinfo holds a password, and headers
/// hold the `Authorization` value.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    method: http::Method,
    scheme: Option<String>,
    host: Option<String>,
    port: Option<u16>,
}

impl Target {
    pub(crate) fn of(method: &http::Method, uri: &http::Uri) -> Self {
        Target {
            method: method.clone(),
            scheme: uri.scheme_str().map(str::to_owned),
            host: uri.host().map(str::to_owned),
            port: uri.port_u16(),
        }
    }

    /// An error of `kind`, described by `err` and its sources.
    pub(crate) fn error(&self, kind: HttpErrorKind, err: impl StdError + 'static) -> HttpError {
        HttpError::new(kind, format!("{self}: {}", describe(&err)))
    }

    pub(crate) fn refused(&self, refusal: &SsrfRefusal) -> HttpError {
        HttpError::new(HttpErrorKind::Refused, format!("{self}: {refusal}"))
    }

    /// Classifies an error reqwest returned while sending or reading the body.
    pub(crate) fn reqwest_error(&self, err: ::reqwest::Error) -> HttpError {
        // reqwest's own message would carry the full URL, userinfo and query included.
        let err = err.without_url();
        if let Some(refusal) = find::<SsrfRefusal>(&err) {
            return self.refused(refusal);
        }
        if let Some(dns) = find::<DnsFailure>(&err) {
            return HttpError::new(HttpErrorKind::Dns, format!("{self}: {dns}"));
        }
        if let Some(tls) = find::<rustls::Error>(&err) {
            return HttpError::new(HttpErrorKind::Tls, format!("{self}: {}: {}", tls_problem(tls), describe(&err)));
        }
        self.error(classify(&err), err)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.method)?;
        match (&self.scheme, &self.host) {
            (Some(scheme), Some(host)) => write!(f, "{scheme}://{host}")?,
            (None, Some(host)) => f.write_str(host)?,
            (_, None) => f.write_str("(no host)")?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

fn classify(err: &::reqwest::Error) -> HttpErrorKind {
    if find::<SsrfRefusal>(err).is_some() {
        HttpErrorKind::Refused
    } else if find::<DnsFailure>(err).is_some() {
        HttpErrorKind::Dns
    } else if err.is_timeout() && err.is_connect() {
        // reqwest's connector wraps its own timeout in the connect error; the total timeout is not one.
        HttpErrorKind::ConnectTimeout
    } else if err.is_timeout() {
        HttpErrorKind::Timeout
    } else if find::<rustls::Error>(err).is_some() {
        HttpErrorKind::Tls
    } else if err.is_builder() {
        HttpErrorKind::InvalidRequest
    } else if refused_connection(err) {
        HttpErrorKind::ConnectionRefused
    } else if err.is_connect() || broken_connection(err) {
        HttpErrorKind::Connect
    } else {
        HttpErrorKind::Other
    }
}

/// What went wrong in a TLS handshake, in words an admin reads: the certificate problem when it is one.
fn tls_problem(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let certificate = match err {
        rustls::Error::InvalidCertificate(certificate) => certificate,
        rustls::Error::NoCertificatesPresented => return "the server presented no certificate".to_owned(),
        rustls::Error::AlertReceived(alert) => return format!("the server ended the handshake ({alert:?})"),
        rustls::Error::PeerIncompatible(_) | rustls::Error::NoApplicationProtocol => {
            return "the server offers no TLS version or cipher this client accepts".to_owned()
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            return "the server did not speak TLS (is the URL's scheme or port right?)".to_owned()
        }
        _ => return "the TLS handshake failed".to_owned(),
    };
    let words = match certificate {
        C::UnknownIssuer => "the certificate is not signed by a trusted authority (unknown issuer; self-signed?)",
        C::Expired | C::ExpiredContext { .. } => "the certificate has expired",
        C::NotValidYet | C::NotValidYetContext { .. } => "the certificate is not valid yet (check the clocks)",
        C::NotValidForName | C::NotValidForNameContext { .. } => "the certificate is for another host name",
        C::Revoked => "the certificate was revoked",
        C::BadSignature => "the certificate's signature is wrong",
        C::BadEncoding => "the certificate cannot be read",
        C::InvalidPurpose | C::InvalidPurposeContext { .. } => "the certificate is not for a TLS server",
        C::UnhandledCriticalExtension => "the certificate has a critical extension this client does not know",
        C::Other(other) => return format!("certificate problem: the certificate was not accepted ({other})"),
        _ => "the certificate was not accepted",
    };
    format!("certificate problem: {words}")
}

/// The receiver's host refused the connection: nothing listens on the port.
fn refused_connection(err: &(dyn StdError + 'static)) -> bool {
    chain(err).any(|e| e.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::ConnectionRefused))
}

/// The connection was reset or closed under the request.
fn broken_connection(err: &(dyn StdError + 'static)) -> bool {
    chain(err).any(|e| {
        e.downcast_ref::<io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
            )
        })
    })
}

/// The first error of type `T` in the chain.
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    chain(err).find_map(|e| e.downcast_ref::<T>())
}

/// `err` and its sources. An `io::Error`'s `source()` skips the error it wraps (where tokio-rustls puts the
/// `rustls::Error`), so the wrapped error is visited too.
fn chain<'a>(err: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut pending = vec![err];
    std::iter::from_fn(move || {
        let current = pending.pop()?;
        if let Some(source) = current.source() {
            pending.push(source);
        }
        if let Some(inner) = current.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            pending.push(inner);
        }
        Some(current)
    })
}

/// `err: source: source ...`, skipping a source whose text is already part of the message.
fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        let text = err.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = err.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::reqwest::guard::BlockedRange;

    #[test]
    fn target_keeps_only_method_scheme_host_and_port() {
        let uri: http::Uri =
            "https://user:hunter2@hooks.example.com:8443/services/T000/SECRET?token=abc".parse().unwrap();
        let target = Target::of(&http::Method::POST, &uri);
        assert_eq!(target.to_string(), "POST https://hooks.example.com:8443");
        let relative: http::Uri = "/only/a/path".parse().unwrap();
        assert_eq!(Target::of(&http::Method::PUT, &relative).to_string(), "PUT (no host)");
    }

    #[derive(Debug)]
    struct Outer(io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn finds_errors_wrapped_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = Outer(io::Error::new(io::ErrorKind::InvalidData, tls));
        assert!(find::<rustls::Error>(&err).is_some());
        let refusal = SsrfRefusal { host: None, ip: "127.0.0.1".parse().unwrap(), range: BlockedRange::Loopback };
        let err = Outer(io::Error::other(refusal.clone()));
        assert_eq!(find::<SsrfRefusal>(&err), Some(&refusal));
        assert!(find::<rustls::Error>(&err).is_none());
    }

    #[test]
    fn certificate_problems_are_named_in_words() {
        use rustls::CertificateError as C;
        let certificate = |problem| rustls::Error::InvalidCertificate(problem);
        let table = [
            (certificate(C::UnknownIssuer), "not signed by a trusted authority (unknown issuer; self-signed?)"),
            (certificate(C::Expired), "the certificate has expired"),
            (certificate(C::NotValidYet), "not valid yet"),
            (certificate(C::NotValidForName), "for another host name"),
            (certificate(C::Revoked), "revoked"),
            (certificate(C::BadSignature), "signature is wrong"),
            (certificate(C::InvalidPurpose), "not for a TLS server"),
            (certificate(C::UnknownRevocationStatus), "the certificate was not accepted"),
            (rustls::Error::NoCertificatesPresented, "presented no certificate"),
            (rustls::Error::General("x".into()), "the TLS handshake failed"),
        ];
        for (error, words) in table {
            assert!(tls_problem(&error).contains(words), "{error:?}: {}", tls_problem(&error));
        }
        assert!(tls_problem(&certificate(C::Expired)).starts_with("certificate problem: "));
    }

    #[test]
    fn dns_failures_are_found_in_the_chain() {
        let failure = DnsFailure { host: "nowhere.invalid".into(), source: None };
        let err = Outer(io::Error::other(failure));
        assert!(find::<DnsFailure>(&err).is_some_and(|f| f.to_string().contains("nowhere.invalid")));
    }

    #[test]
    fn refused_connections_are_told_apart_from_broken_ones() {
        let refused = Outer(io::Error::from(io::ErrorKind::ConnectionRefused));
        let reset = Outer(io::Error::from(io::ErrorKind::ConnectionReset));
        assert!(refused_connection(&refused) && !refused_connection(&reset));
    }

    #[test]
    fn broken_connections_are_recognised() {
        assert!(broken_connection(&Outer(io::Error::from(io::ErrorKind::ConnectionReset))));
        assert!(!broken_connection(&Outer(io::Error::from(io::ErrorKind::InvalidData))));
    }

    #[test]
    fn describe_joins_sources_without_repeating_them() {
        let err = Outer(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(describe(&err), format!("outer: {}", io::Error::from(io::ErrorKind::ConnectionReset)));
    }
}
