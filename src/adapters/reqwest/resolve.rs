//! A DNS resolver that hands reqwest only the addresses the SSRF guard allows.
//!
//! reqwest connects to exactly the addresses a resolver returns, so filtering here means the connection goes to
//! an address that was checked: a second lookup that answers differently (DNS rebinding) cannot happen.

use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ::reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::guard::{BlockedRange, SsrfPolicy};

/// Resolves with the system resolver (`getaddrinfo` via tokio) and drops blocked addresses.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    policy: Arc<SsrfPolicy>,
}

impl GuardedResolver {
    pub(crate) fn new(policy: Arc<SsrfPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's default) in afterwards.
            let resolved = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| DnsFailure { host: host.clone(), source: Some(source) })?;
            let addrs = filter(&policy, &host, resolved)?;
            if addrs.is_empty() {
                return Err(Box::new(DnsFailure { host, source: None }) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The allowed addresses in resolver order, or a refusal naming the first blocked one when none is allowed.
fn filter(
    policy: &SsrfPolicy,
    host: &str,
    resolved: impl IntoIterator<Item = SocketAddr>,
) -> Result<Vec<SocketAddr>, SsrfRefusal> {
    let mut allowed = Vec::new();
    let mut first_blocked = None;
    for addr in resolved {
        match policy.check(addr.ip()) {
            Ok(()) => allowed.push(addr),
            Err(range) => {
                first_blocked.get_or_insert((addr.ip(), range));
            }
        }
    }
    match (allowed.is_empty(), first_blocked) {
        (true, Some((ip, range))) => Err(SsrfRefusal { host: Some(host.to_owned()), ip, range }),
        _ => Ok(allowed),
    }
}

/// A host name did not resolve: the lookup failed, or found no address. Found again in reqwest's error chain to
/// classify the error as [`HttpErrorKind::Dns`](crate::ports::HttpErrorKind::Dns).
#[derive(Debug)]
pub(crate) struct DnsFailure {
    pub(crate) host: String,
    /// The resolver's error; `None` when it answered with no address.
    pub(crate) source: Option<std::io::Error>,
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "the host name {} does not resolve ({source})", self.host),
            None => write!(f, "the host name {} resolves to no address", self.host),
        }
    }
}

impl StdError for DnsFailure {}

/// The SSRF guard refused a destination. Found again in reqwest's error chain to classify the error as
/// [`HttpErrorKind::Refused`](crate::ports::HttpErrorKind::Refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SsrfRefusal {
    /// The host name, when the address came from resolving one; `None` for an IP-literal URL.
    pub(crate) host: Option<String>,
    pub(crate) ip: IpAddr,
    pub(crate) range: BlockedRange,
}

impl fmt::Display for SsrfRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => {
                write!(f, "SSRF guard: {host} resolves only to blocked addresses ({} is {})", self.ip, self.range)?
            }
            None => write!(f, "SSRF guard: {} is {}", self.ip, self.range)?,
        }
        if self.range.is_private_network() {
            f.write_str("; allow it with allow_private_networks(true) or allow_cidr")
        } else {
            f.write_str("; allow it with allow_cidr")
        }
    }
}

impl StdError for SsrfRefusal {}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keeps_allowed_addresses_in_order_and_drops_blocked_ones() {
        let resolved = [addr("10.0.0.1:0"), addr("93.184.216.34:0"), addr("[::1]:0"), addr("[2606:4700::1]:0")];
        let kept = filter(&SsrfPolicy::default(), "mixed.example", resolved).unwrap();
        assert_eq!(kept, [addr("93.184.216.34:0"), addr("[2606:4700::1]:0")]);
    }

    #[test]
    fn refuses_when_nothing_is_left_and_names_host_address_and_range() {
        let resolved = [addr("169.254.169.254:0"), addr("10.0.0.1:0")];
        let refusal = filter(&SsrfPolicy::default(), "metadata.internal", resolved).unwrap_err();
        assert_eq!(refusal.ip, "169.254.169.254".parse::<IpAddr>().unwrap());
        assert_eq!(refusal.range, BlockedRange::LinkLocal);
        let message = refusal.to_string();
        assert!(message.contains("metadata.internal"), "{message}");
        assert!(message.contains("169.254.169.254"), "{message}");
        assert!(message.contains("link-local"), "{message}");
    }

    #[test]
    fn private_networks_policy_keeps_loopback() {
        let policy = SsrfPolicy { allow_private_networks: true, allowed: Vec::new() };
        let kept = filter(&policy, "localhost", [addr("127.0.0.1:0"), addr("[::1]:0")]).unwrap();
        assert_eq!(kept.len(), 2);
    }

    #[test]
    fn nothing_resolved_is_not_a_refusal() {
        assert_eq!(filter(&SsrfPolicy::default(), "empty.example", []), Ok(Vec::new()));
    }
}
