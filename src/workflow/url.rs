//! Checking a webhook URL when the action is built, and showing one without its credentials.

use crate::limits::MAX_URL_BYTES;
use crate::shown::shown;

/// What is wrong with a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UrlProblem {
    /// Longer than [`MAX_URL_BYTES`].
    TooLong,
    /// It has a `user:password@` part: http clients do not send it, and the URL is stored and logged as written.
    Credentials,
    /// Not an absolute http(s) URL with a host; the reason follows "is not an absolute http or https URL: ".
    Invalid(String),
}

/// Checks that a URL is absolute http or https with a host and without credentials, and not longer than
/// [`MAX_URL_BYTES`].
pub(super) fn check_url(url: &str) -> Result<http::Uri, UrlProblem> {
    // First, so that a huge URL is not parsed.
    if url.len() > MAX_URL_BYTES {
        return Err(UrlProblem::TooLong);
    }
    let invalid = |reason: String| UrlProblem::Invalid(reason);
    if url.trim() != url || url.is_empty() {
        return Err(invalid("it is empty or has surrounding white space".to_owned()));
    }
    // Found the way `redact_url` finds it, so whatever is refused here is also what the log would redact.
    if credentials_split(url).is_some() {
        return Err(UrlProblem::Credentials);
    }
    let uri: http::Uri = url.parse().map_err(|e: http::uri::InvalidUri| invalid(format!("it does not parse ({e})")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => return Err(invalid(format!("scheme \"{}\" is not http or https", shown(other)))),
        None => return Err(invalid("it is not absolute: start it with https:// or http://".to_owned())),
    }
    match uri.host() {
        Some(host) if !host.is_empty() => Ok(uri),
        _ => Err(invalid("it has no host".to_owned())),
    }
}

/// A URL split around its credentials: the text before `user:password@` (`"https://"`), and the text after it,
/// or `None` when it has none.
fn credentials_split(url: &str) -> Option<(&str, &str)> {
    let scheme_end = url.find("://")?.checked_add(3)?;
    let (scheme, rest) = url.split_at_checked(scheme_end)?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest.get(..authority_end)?.rfind('@')?;
    Some((scheme, rest.get(at + 1..)?))
}

/// A URL with any `user:password@` part removed, for messages and the log.
pub(crate) fn redact_url(url: &str) -> String {
    match credentials_split(url) {
        Some((scheme, rest)) => format!("{scheme}[redacted]@{rest}"),
        None => url.to_owned(),
    }
}

/// A URL as a message shows it: credentials removed, then [`shown`] (without copying a huge URL first).
pub(super) fn shown_url(url: &str) -> String {
    match credentials_split(url) {
        Some((scheme, rest)) => format!("{}[redacted]@{}", shown(scheme), shown(rest)),
        None => shown(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(check_url("https://example.com/x?y=1").is_ok());
        assert!(check_url("http://127.0.0.1:8080").is_ok());
        for bad in ["", "ftp://example.com", "/relative", "example.com/x", "https://", " https://a.b", "mailto:a@b.c"] {
            assert!(check_url(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(redact_url("https://user:pw@host.com/a@b"), "https://[redacted]@host.com/a@b");
        assert_eq!(redact_url("https://host.com/a@b"), "https://host.com/a@b");
        assert_eq!(redact_url("no scheme@all"), "no scheme@all");
        assert_eq!(shown_url("https://user:pw@host.com/\r\n"), r"https://[redacted]@host.com/\r\n");
        let long_password = format!("https://u:{}@host.com/", "p".repeat(5000));
        assert_eq!(shown_url(&long_password), "https://[redacted]@host.com/");
    }

    #[test]
    fn long_urls_are_refused_before_parsing() {
        let at_limit = format!("https://x.example/{}", "a".repeat(MAX_URL_BYTES - 18));
        assert_eq!(at_limit.len(), MAX_URL_BYTES);
        assert!(check_url(&at_limit).is_ok());
        assert_eq!(check_url(&format!("{at_limit}a")).unwrap_err(), UrlProblem::TooLong);
    }

    #[test]
    fn urls_with_credentials_are_refused() {
        for url in ["https://u:p@host.com/", "https://u@host.com", "http://:p@host.com:8080/x", "https://a@b@host.com"]
        {
            assert_eq!(check_url(url).unwrap_err(), UrlProblem::Credentials, "{url}");
        }
        for url in ["https://host.com/a@b", "https://host.com?to=a@b", "https://host.com#a@b", "https://host.com/@"] {
            assert!(check_url(url).is_ok(), "{url}");
        }
    }
}
