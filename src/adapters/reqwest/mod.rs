//! [`HttpClient`] over [reqwest](https://docs.rs/reqwest): rustls with the *ring* provider and the webpki roots,
//! connect and total timeouts, a cap on the response body, no redirects, and an SSRF guard.
//!
//! # The SSRF guard
//!
//! Webhook URLs are typed in by CRM users, so by default the client refuses to connect to anything but public
//! unicast addresses. The check runs on the addresses a host name resolves to, inside the resolver reqwest
//! connects with, so the connection goes to the address that was checked (a rebinding DNS server gets no second
//! chance). IP-literal URLs, which skip the resolver, are checked before the request is sent. A refusal is an
//! [`HttpError`] of kind [`Refused`](HttpErrorKind::Refused), which the engine treats as permanent.
//!
//! Blocked ranges:
//!
//! - unspecified and "this network": `0.0.0.0/8`, `::`
//! - loopback: `127.0.0.0/8`, `::1`
//! - private: `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16`, local-use NAT64 `64:ff9b:1::/48`
//! - shared address space (carrier-grade NAT): `100.64.0.0/10`
//! - link-local: `169.254.0.0/16` (cloud metadata at `169.254.169.254`), `fe80::/10`
//! - cloud metadata endpoints outside link-local: `fd00:ec2::254` (AWS IPv6), `fd00:ec2::23` (EKS Pod
//!   Identity), `100.100.100.200` (Alibaba Cloud)
//! - IPv6 unique local `fc00::/7` and deprecated site-local `fec0::/10`
//! - multicast `224.0.0.0/4`, `ff00::/8`; broadcast `255.255.255.255`
//! - documentation `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`;
//!   benchmarking `198.18.0.0/15`, `2001:2::/48`
//! - reserved: `192.0.0.0/24`, `240.0.0.0/4`, `100::/64`, Teredo `2001::/32`
//! - IPv6 addresses that carry an IPv4 address are judged by that IPv4 address: IPv4-mapped `::ffff:0:0/96`,
//!   IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16`.
//!
//! [`allow_private_networks(true)`](ReqwestClientBuilder::allow_private_networks) opens loopback, private,
//! shared, unique-local and site-local ranges (for tests and on-premises receivers); link-local, the metadata
//! endpoints, multicast and the others stay closed. [`allow_cidr`](ReqwestClientBuilder::allow_cidr) permits a network whatever range it
//! lies in, including the IPv6 forms of the IPv4 addresses in it.
//!
//! No proxy is used (not even one named by `HTTP_PROXY`), since a proxy would resolve the host itself.
//!
//! # An action's own timeout and TLS
//!
//! A request carrying [`RequestOptions`] (an action's `"timeout_seconds"` and `"tls"`) is sent with that timeout
//! in place of the client's, and, when it has a TLS setting, through a client of its own for that setting: the
//! webpki roots and the setting's extra roots, its client certificate for mutual TLS, and every other setting
//! (the guard, timeouts, pool, user agent, no redirects) as the main client's. Those clients are kept, at most
//! [`MAX_TLS_CLIENTS`] of them (the oldest is dropped first), keyed by the setting's
//! [fingerprint](crate::workflow::TlsSettings::fingerprint).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use crm_webhooks::adapters::reqwest::ReqwestClient;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ReqwestClient::builder()
//!     .timeout(Duration::from_secs(15))
//!     .allow_cidr("10.20.0.0/16".parse()?) // the on-premises receivers
//!     .build()?;
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

mod errors;
mod guard;
mod resolve;

use std::collections::{HashMap, VecDeque};
use std::error::Error as StdError;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ::reqwest::redirect;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, InvalidHeaderValue};
use ipnet::IpNet;

use self::errors::Target;
use self::guard::SsrfPolicy;
use self::resolve::{GuardedResolver, SsrfRefusal};
use crate::ports::{HttpError, HttpErrorKind, RequestOptions};
use crate::workflow::TlsSettings;
use crate::HttpClient;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MAX_RESPONSE_BODY: usize = 64 * 1024;
const DEFAULT_USER_AGENT: &str = concat!("crm-webhooks/", env!("CARGO_PKG_VERSION"));

/// The most clients a [`ReqwestClient`] keeps for actions' TLS settings (one per distinct setting, each with its
/// own connection pool); past it the oldest is dropped, and built again when next needed.
pub const MAX_TLS_CLIENTS: usize = 32;

/// An [`HttpClient`] over reqwest, with an SSRF guard. Cheap to clone: clones share one connection pool.
///
/// Responses come back whatever their status, 3xx included (redirects are not followed). The body is at most
/// [`max_response_body`](ReqwestClientBuilder::max_response_body) bytes long: a longer body is cut there and the
/// rest is never read, while the headers (`content-length` among them) stay as the server sent them.
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    client: ::reqwest::Client,
    policy: Arc<SsrfPolicy>,
    max_response_body: usize,
    timeout: Duration,
    /// What builds one more client, for an action's TLS setting, and the clients built.
    settings: Arc<ClientSettings>,
    tls_clients: Arc<Mutex<TlsClients>>,
}

/// Everything a client is built from but its TLS configuration.
#[derive(Debug)]
struct ClientSettings {
    connect_timeout: Duration,
    timeout: Duration,
    user_agent: HeaderValue,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
}

/// The clients built for TLS settings, by fingerprint, and the order they were built in (the oldest goes first).
#[derive(Debug, Default)]
struct TlsClients {
    by_fingerprint: HashMap<[u8; 32], ::reqwest::Client>,
    order: VecDeque<[u8; 32]>,
}

impl ReqwestClient {
    /// A client with the defaults of [`ReqwestClientBuilder`].
    pub fn new() -> Result<Self, ReqwestError> {
        Self::builder().build()
    }

    /// A builder to change the defaults.
    pub fn builder() -> ReqwestClientBuilder {
        ReqwestClientBuilder::default()
    }

    /// Refuses a URL whose host is an IP address the guard blocks (host names are checked by the resolver).
    fn check_ip_literal(&self, url: &::reqwest::Url) -> Result<(), SsrfRefusal> {
        let Some(ip) = ip_literal(url) else {
            return Ok(());
        };
        self.policy.check(ip).map_err(|range| SsrfRefusal { host: None, ip, range })
    }

    /// The client for a TLS setting: the one kept for its fingerprint, or a new one (kept, the oldest dropped
    /// past [`MAX_TLS_CLIENTS`]).
    fn tls_client(&self, tls: &TlsSettings) -> Result<::reqwest::Client, ReqwestError> {
        let mut clients = self.tls_clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.by_fingerprint.get(tls.fingerprint()) {
            return Ok(client.clone());
        }
        let client = build_client(&self.settings, &self.policy, tls_config(Some(tls))?)?;
        if clients.order.len() >= MAX_TLS_CLIENTS {
            if let Some(oldest) = clients.order.pop_front() {
                clients.by_fingerprint.remove(&oldest);
            }
        }
        clients.order.push_back(*tls.fingerprint());
        clients.by_fingerprint.insert(*tls.fingerprint(), client.clone());
        Ok(client)
    }
}

/// The host of `url` when the connector will take it as an address rather than resolve it (the same parse as
/// hyper-util's connector: brackets stripped, then `IpAddr`).
fn ip_literal(url: &::reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.parse().ok()
}

#[async_trait]
impl HttpClient for ReqwestClient {
    async fn send(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let target = Target::of(request.method(), request.uri());
        let options = RequestOptions::of(&request).cloned().unwrap_or_default();
        let mut request =
            ::reqwest::Request::try_from(request).map_err(|err| target.error(HttpErrorKind::InvalidRequest, err))?;
        self.check_ip_literal(request.url()).map_err(|refusal| target.refused(&refusal))?;
        if let Some(timeout) = options.timeout {
            *request.timeout_mut() = Some(timeout);
        }
        let client = match &options.tls {
            // Validated with the action, so a setting that does not build is rare (a key type rustls refuses).
            Some(tls) => self.tls_client(tls).map_err(|err| target.error(HttpErrorKind::Tls, err))?,
            None => self.client.clone(),
        };
        let mut response = client.execute(request).await.map_err(|err| target.reqwest_error(err))?;

        let status = response.status();
        let version = response.version();
        let headers = std::mem::take(response.headers_mut());
        let body = read_capped(response, self.max_response_body).await.map_err(|err| target.reqwest_error(err))?;

        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.version_mut() = version;
        *out.headers_mut() = headers;
        Ok(out)
    }

    fn request_timeout(&self) -> Option<Duration> {
        Some(self.timeout)
    }
}

/// Reads at most `max` bytes of the body, then stops reading. A body that arrives in one chunk is not copied.
async fn read_capped(mut response: ::reqwest::Response, max: usize) -> Result<Bytes, ::reqwest::Error> {
    let mut single = Bytes::new();
    let mut joined: Option<BytesMut> = None;
    let mut len = 0;
    while len < max {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        let chunk = chunk.slice(..chunk.len().min(max - len));
        len += chunk.len();
        match joined.as_mut() {
            Some(buf) => buf.extend_from_slice(&chunk),
            None if single.is_empty() => single = chunk,
            None => {
                let mut buf = BytesMut::with_capacity(len);
                buf.extend_from_slice(&single);
                buf.extend_from_slice(&chunk);
                joined = Some(buf);
            }
        }
    }
    Ok(joined.map_or(single, BytesMut::freeze))
}

/// Builds a [`ReqwestClient`].
#[derive(Debug, Clone)]
pub struct ReqwestClientBuilder {
    connect_timeout: Duration,
    timeout: Duration,
    max_response_body: usize,
    user_agent: String,
    pool_idle_timeout: Option<Duration>,
    pool_max_idle_per_host: usize,
    policy: SsrfPolicy,
}

impl Default for ReqwestClientBuilder {
    fn default() -> Self {
        ReqwestClientBuilder {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_response_body: DEFAULT_MAX_RESPONSE_BODY,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: usize::MAX,
            policy: SsrfPolicy::default(),
        }
    }
}

impl ReqwestClientBuilder {
    /// Time allowed to resolve the host and open the connection, TLS handshake included. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Time allowed for the whole request, from connecting until the (capped) body is read. Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The most response body bytes read and kept; the rest is not read. Default 64 KiB.
    pub fn max_response_body(mut self, bytes: usize) -> Self {
        self.max_response_body = bytes;
        self
    }

    /// The `user-agent` header sent when a request has none. Default `crm-webhooks/<version>`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// How long an idle keep-alive connection stays in the pool; `None` keeps it until the server closes it.
    /// Default 90 s.
    pub fn pool_idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// The most idle keep-alive connections kept per host. Default unlimited.
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// Lets the client connect to loopback, private (RFC 1918), shared (carrier-grade NAT), IPv6 unique-local
    /// and site-local addresses, for tests and on-premises receivers. Link-local and the cloud metadata endpoints
    /// inside the opened ranges (`fd00:ec2::254`, `fd00:ec2::23`, `100.100.100.200`), multicast, unspecified
    /// and reserved addresses stay blocked; use [`allow_cidr`](Self::allow_cidr) for those.
    /// Default `false`.
    pub fn allow_private_networks(mut self, allow: bool) -> Self {
        self.policy.allow_private_networks = allow;
        self
    }

    /// Permits a network whatever blocked range it lies in. An IPv4 network also permits the IPv6 forms that
    /// carry its addresses (`::ffff:10.1.2.3` for `10.1.0.0/16`). Allowing `0.0.0.0/0` and `::/0` turns the
    /// guard off.
    pub fn allow_cidr(mut self, network: IpNet) -> Self {
        self.policy.allowed.push(network);
        self
    }

    /// [`allow_cidr`](Self::allow_cidr) for each network.
    pub fn allow_cidrs(mut self, networks: impl IntoIterator<Item = IpNet>) -> Self {
        self.policy.allowed.extend(networks);
        self
    }

    /// Builds the client. Fails on a zero timeout, a user agent that is not a valid header value, or when
    /// reqwest cannot build its client.
    pub fn build(self) -> Result<ReqwestClient, ReqwestError> {
        if self.connect_timeout.is_zero() {
            return Err(ReqwestError::ZeroTimeout { which: "connect" });
        }
        if self.timeout.is_zero() {
            return Err(ReqwestError::ZeroTimeout { which: "total" });
        }
        let user_agent = HeaderValue::from_str(&self.user_agent).map_err(ReqwestError::InvalidUserAgent)?;
        let policy = Arc::new(self.policy);
        let settings = Arc::new(ClientSettings {
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            user_agent,
            pool_idle_timeout: self.pool_idle_timeout,
            pool_max_idle_per_host: self.pool_max_idle_per_host,
        });
        let client = build_client(&settings, &policy, tls_config(None)?)?;
        Ok(ReqwestClient {
            client,
            policy,
            max_response_body: self.max_response_body,
            timeout: self.timeout,
            settings,
            tls_clients: Arc::default(),
        })
    }
}

/// A reqwest client with the guard, the settings and this TLS configuration: the main client and every client
/// for an action's TLS setting are built here, so they differ in nothing else.
fn build_client(
    settings: &ClientSettings,
    policy: &Arc<SsrfPolicy>,
    tls: rustls::ClientConfig,
) -> Result<::reqwest::Client, ReqwestError> {
    ::reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .dns_resolver(GuardedResolver::new(Arc::clone(policy)))
        .no_proxy()
        .redirect(redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .timeout(settings.timeout)
        .user_agent(settings.user_agent.clone())
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .build()
        .map_err(|err| ReqwestError::Client(Box::new(err)))
}

/// rustls with *ring* and the webpki roots, built here so that no process-wide provider is installed or needed;
/// with an action's TLS setting, its extra roots beside them and its client certificate.
fn tls_config(extra: Option<&TlsSettings>) -> Result<rustls::ClientConfig, ReqwestError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};

    let tls_error = |what: &str| ReqwestError::Tls(what.into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect::<rustls::RootCertStore>();
    for pem in extra.map(TlsSettings::ca_certificates_pem).unwrap_or_default() {
        for der in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let der = der.map_err(|_| tls_error("an extra root certificate is not valid PEM"))?;
            roots.add(der).map_err(|err| ReqwestError::Tls(Box::new(err)))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ReqwestError::Tls(Box::new(err)))?
        .with_root_certificates(roots);
    let mut config = match extra.and_then(TlsSettings::client_identity_pem) {
        Some((certificate, key)) => {
            let chain = CertificateDer::pem_slice_iter(certificate.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| tls_error("the client certificate is not valid PEM"))?;
            // The key's own error is not shown: it could quote the key.
            let key = PrivateKeyDer::from_pem_slice(key.expose().as_bytes())
                .map_err(|_| tls_error("the client certificate's key is not a valid PEM private key"))?;
            builder.with_client_auth_cert(chain, key).map_err(|err| ReqwestError::Tls(Box::new(err)))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Why a [`ReqwestClient`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReqwestError {
    /// A timeout was zero, which would fail every request.
    #[error("the {which} timeout must be greater than zero")]
    ZeroTimeout {
        /// `"connect"` or `"total"`.
        which: &'static str,
    },
    /// The user agent contains characters a header value cannot hold.
    #[error("the user agent is not a valid header value")]
    InvalidUserAgent(#[source] InvalidHeaderValue),
    /// The TLS configuration could not be built.
    #[error("cannot configure TLS: {0}")]
    Tls(#[source] Box<dyn StdError + Send + Sync>),
    /// reqwest could not build its client.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] Box<dyn StdError + Send + Sync>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::PemSource;
    use crate::WebhookAction;

    fn settings_with_a_new_ca() -> Arc<TlsSettings> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().pem();
        let action = WebhookAction::builder("T", "https://r.example/h", crate::payload::ContentType::Json)
            .tls_ca_certificate(PemSource::Pem(pem))
            .build()
            .unwrap();
        Arc::clone(action.tls().unwrap())
    }

    #[test]
    fn one_client_per_tls_setting_and_at_most_the_bound() {
        let client = ReqwestClient::new().unwrap();
        let first = settings_with_a_new_ca();
        client.tls_client(&first).unwrap();
        client.tls_client(&first).unwrap();
        assert_eq!(client.tls_clients.lock().unwrap().order.len(), 1, "the same setting reuses its client");
        for _ in 0..MAX_TLS_CLIENTS {
            client.tls_client(&settings_with_a_new_ca()).unwrap();
        }
        let clients = client.tls_clients.lock().unwrap();
        assert_eq!((clients.order.len(), clients.by_fingerprint.len()), (MAX_TLS_CLIENTS, MAX_TLS_CLIENTS));
        assert!(!clients.by_fingerprint.contains_key(first.fingerprint()), "the oldest went first");
    }
}
