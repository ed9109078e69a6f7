//! The SSRF guard of `ReqwestClient`, end to end, as a table: every blocked range, IPv6 forms that carry an IPv4
//! address, odd IPv4 spellings, userinfo tricks, a host name, and a redirect.
//!
//! Nothing here sends traffic anywhere but loopback. Rows come in two kinds:
//!
//! - `http://` rows name a loopback (or unspecified, which Linux connects to the local host) address and are sent
//!   for real at a port where listeners on `127.0.0.1`, `127.0.0.2`, `127.255.255.254` and `::1` count the
//!   connections they accept, so "refused before connecting" is measured.
//! - `ftp://` rows name every other address. The guard checks an IP-literal URL before reqwest looks at the
//!   scheme, and reqwest fails an `ftp` URL before it resolves or connects anything, so a row is either refused
//!   by the guard (`Refused`) or passed by it and then stopped by reqwest (`InvalidRequest`): the guard's decision
//!   for a non-loopback address is observed without a packet leaving the machine, whatever that decision is.
//!
//! Every `http://` row with an IP-literal host is first sent as its `ftp://` twin through a default client, which
//! must refuse it as the same loopback or unspecified address before the real request goes out: a URL the guard
//! misreads never reaches the network. The `localhost` rows resolve through `/etc/hosts` (the adapter has no
//! resolver hook to map other names to private addresses).
//!
//! `http::Uri` rejects a percent-encoded host (`http://%31%32%37.0.0.1/`), so such a URL never reaches the client.
#![cfg(feature = "reqwest")]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use crm_webhooks::adapters::reqwest::{ReqwestClient, ReqwestClientBuilder};
use crm_webhooks::ports::{HttpError, HttpErrorKind};
use crm_webhooks::HttpClient;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// What the guard says about each range (its `Display`), as it appears in a refusal.
const LOOPBACK: &str = "a loopback address";
const UNSPECIFIED: &str = "an unspecified address";
const THIS_NETWORK: &str = "a 'this network' address";
const PRIVATE: &str = "a private network address";
const SHARED: &str = "a shared (carrier-grade NAT) address";
const LINK_LOCAL: &str = "a link-local address";
const METADATA: &str = "a cloud metadata endpoint";
const UNIQUE_LOCAL: &str = "an IPv6 unique local address";
const SITE_LOCAL: &str = "an IPv6 site-local address";
const MULTICAST: &str = "a multicast address";
const BROADCAST: &str = "the broadcast address";
const DOCUMENTATION: &str = "a documentation address";
const BENCHMARKING: &str = "a benchmarking address";
const RESERVED: &str = "a reserved special-purpose address";

/// One case: a URL (`PORT` stands for the listeners' port), the address the guard must judge it by, the range it
/// must name by default, and whether `allow_private_networks(true)` opens it.
struct Row {
    case: &'static str,
    url: &'static str,
    ip: &'static str,
    range: &'static str,
    private: bool,
}

const fn row(case: &'static str, url: &'static str, ip: &'static str, range: &'static str, private: bool) -> Row {
    Row { case, url, ip, range, private }
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // loopback, sent for real
    row("loopback 127.0.0.1", "http://127.0.0.1:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("loopback 127.0.0.2", "http://127.0.0.2:PORT/hook", "127.0.0.2", LOOPBACK, true),
    row("loopback top of 127/8", "http://127.255.255.254:PORT/hook", "127.255.255.254", LOOPBACK, true),
    row("IPv6 loopback", "http://[::1]:PORT/hook", "::1", LOOPBACK, true),
    row("IPv6 loopback written out", "http://[0:0:0:0:0:0:0:1]:PORT/hook", "::1", LOOPBACK, true),
    row("IPv4-mapped loopback, dotted", "http://[::ffff:127.0.0.1]:PORT/hook", "::ffff:127.0.0.1", LOOPBACK, true),
    row("IPv4-mapped loopback, hex", "http://[::ffff:7f00:1]:PORT/hook", "::ffff:127.0.0.1", LOOPBACK, true),
    row("IPv4-mapped loopback, upper case", "http://[::FFFF:7F00:1]:PORT/hook", "::ffff:127.0.0.1", LOOPBACK, true),
    row("IPv4-mapped loopback, written out", "http://[0:0:0:0:0:ffff:7f00:2]:PORT/hook", "::ffff:127.0.0.2", LOOPBACK, true),
    row("hex and short form 0x7f.1", "http://0x7f.1:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("one decimal number 2130706433", "http://2130706433:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("octal first part 0177.0.0.1", "http://0177.0.0.1:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("short form 127.1", "http://127.1:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("short form 127.0.1", "http://127.0.1:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("one hex number 0x7f000001", "http://0x7f000001:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("one octal number 017700000001", "http://017700000001:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("upper-case hex 0X7F.0.0.1", "http://0X7F.0.0.1:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("mixed octal and hex parts", "http://0177.0x0.0.02:PORT/hook", "127.0.0.2", LOOPBACK, true),
    row("all-hex parts", "http://0x7f.0x0.0x0.0x2:PORT/hook", "127.0.0.2", LOOPBACK, true),
    row("trailing dot", "http://127.0.0.1.:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("userinfo that looks like a host", "http://example.com@127.0.0.1:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("userinfo with a port", "http://example.com:80@127.0.0.1:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("fragment that looks like userinfo", "http://127.0.0.1:PORT#@example.com/", "127.0.0.1", LOOPBACK, true),
    row("query that looks like userinfo", "http://127.0.0.1:PORT?@example.com/", "127.0.0.1", LOOPBACK, true),
    row("host name localhost", "http://localhost:PORT/hook", "127.0.0.1", LOOPBACK, true),
    row("host name LOCALHOST", "http://LOCALHOST:PORT/hook", "127.0.0.1", LOOPBACK, true),
    // unspecified, which Linux connects to the local host: sent for real, never opened
    row("unspecified 0.0.0.0", "http://0.0.0.0:PORT/hook", "0.0.0.0", UNSPECIFIED, false),
    row("unspecified as 0", "http://0:PORT/hook", "0.0.0.0", UNSPECIFIED, false),
    row("unspecified as 0x0", "http://0x0:PORT/hook", "0.0.0.0", UNSPECIFIED, false),
    row("IPv6 unspecified", "http://[::]:PORT/hook", "::", UNSPECIFIED, false),
    row("IPv4-mapped unspecified", "http://[::ffff:0.0.0.0]:PORT/hook", "::ffff:0.0.0.0", UNSPECIFIED, false),
    // everything else: the guard's decision only
    row("this network 0.0.0.1", "ftp://0.0.0.1/", "0.0.0.1", THIS_NETWORK, false),
    row("this network 0.255.255.255", "ftp://0.255.255.255/", "0.255.255.255", THIS_NETWORK, false),
    row("private 10.0.0.0", "ftp://10.0.0.0/", "10.0.0.0", PRIVATE, true),
    row("private 10.0.0.1", "ftp://10.0.0.1/", "10.0.0.1", PRIVATE, true),
    row("private 10.255.255.255", "ftp://10.255.255.255/", "10.255.255.255", PRIVATE, true),
    row("private 172.16.0.0", "ftp://172.16.0.0/", "172.16.0.0", PRIVATE, true),
    row("private 172.31.255.255", "ftp://172.31.255.255/", "172.31.255.255", PRIVATE, true),
    row("private 192.168.0.0", "ftp://192.168.0.0/", "192.168.0.0", PRIVATE, true),
    row("private 192.168.255.255", "ftp://192.168.255.255/", "192.168.255.255", PRIVATE, true),
    row("private, octal 012.0.0.1", "ftp://012.0.0.1/", "10.0.0.1", PRIVATE, true),
    row("private, hex short 0xa.1", "ftp://0xa.1/", "10.0.0.1", PRIVATE, true),
    row("private, one number 167772161", "ftp://167772161/", "10.0.0.1", PRIVATE, true),
    row("private, hex parts 0xc0.0xa8.1", "ftp://0xc0.0xa8.1/", "192.168.0.1", PRIVATE, true),
    row("private behind userinfo", "ftp://user:pass@10.0.0.1/", "10.0.0.1", PRIVATE, true),
    row("carrier-grade NAT 100.64.0.0", "ftp://100.64.0.0/", "100.64.0.0", SHARED, true),
    row("carrier-grade NAT 100.127.255.255", "ftp://100.127.255.255/", "100.127.255.255", SHARED, true),
    row("link-local 169.254.0.1", "ftp://169.254.0.1/", "169.254.0.1", LINK_LOCAL, false),
    row("link-local 169.254.255.255", "ftp://169.254.255.255/", "169.254.255.255", LINK_LOCAL, false),
    row("IPv6 link-local fe80::1", "ftp://[fe80::1]/", "fe80::1", LINK_LOCAL, false),
    row("IPv6 link-local top of fe80::/10", "ftp://[febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LINK_LOCAL, false),
    row("metadata 169.254.169.254", "ftp://169.254.169.254/", "169.254.169.254", LINK_LOCAL, false),
    row("metadata as one number", "ftp://2852039166/", "169.254.169.254", LINK_LOCAL, false),
    row("metadata in hex parts", "ftp://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254", LINK_LOCAL, false),
    row("metadata IPv4-mapped", "ftp://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254", LINK_LOCAL, false),
    // Metadata endpoints outside link-local stay closed when private networks are opened
    row("metadata IPv6 fd00:ec2::254 (AWS)", "ftp://[fd00:ec2::254]/", "fd00:ec2::254", METADATA, false),
    row("metadata IPv6 fd00:ec2::23 (EKS Pod Identity)", "ftp://[fd00:ec2::23]/", "fd00:ec2::23", METADATA, false),
    row("metadata 100.100.100.200 (Alibaba Cloud)", "ftp://100.100.100.200/", "100.100.100.200", METADATA, false),
    row("metadata IPv4-mapped 100.100.100.200", "ftp://[::ffff:100.100.100.200]/", "::ffff:100.100.100.200", METADATA, false),
    row("metadata NAT64 100.100.100.200", "ftp://[64:ff9b::6464:64c8]/", "64:ff9b::6464:64c8", METADATA, false),
    row("next to metadata fd00:ec2::253", "ftp://[fd00:ec2::253]/", "fd00:ec2::253", UNIQUE_LOCAL, true),
    row("next to metadata 100.100.100.201", "ftp://100.100.100.201/", "100.100.100.201", SHARED, true),
    row("multicast 224.0.0.1", "ftp://224.0.0.1/", "224.0.0.1", MULTICAST, false),
    row("multicast 239.255.255.255", "ftp://239.255.255.255/", "239.255.255.255", MULTICAST, false),
    row("IPv6 multicast ff02::1", "ftp://[ff02::1]/", "ff02::1", MULTICAST, false),
    row("IPv6 multicast ff0e::1", "ftp://[ff0e::1]/", "ff0e::1", MULTICAST, false),
    row("broadcast", "ftp://255.255.255.255/", "255.255.255.255", BROADCAST, false),
    row("broadcast as one number", "ftp://4294967295/", "255.255.255.255", BROADCAST, false),
    row("unique local fc00::1", "ftp://[fc00::1]/", "fc00::1", UNIQUE_LOCAL, true),
    row("unique local top of fc00::/7", "ftp://[fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", UNIQUE_LOCAL, true),
    row("site-local fec0::1", "ftp://[fec0::1]/", "fec0::1", SITE_LOCAL, true),
    row("documentation 192.0.2.1", "ftp://192.0.2.1/", "192.0.2.1", DOCUMENTATION, false),
    row("documentation 198.51.100.1", "ftp://198.51.100.1/", "198.51.100.1", DOCUMENTATION, false),
    row("documentation 203.0.113.1", "ftp://203.0.113.1/", "203.0.113.1", DOCUMENTATION, false),
    row("documentation 2001:db8::1", "ftp://[2001:db8::1]/", "2001:db8::1", DOCUMENTATION, false),
    row("documentation 3fff::1", "ftp://[3fff::1]/", "3fff::1", DOCUMENTATION, false),
    row("benchmarking 198.18.0.1", "ftp://198.18.0.1/", "198.18.0.1", BENCHMARKING, false),
    row("benchmarking 198.19.255.255", "ftp://198.19.255.255/", "198.19.255.255", BENCHMARKING, false),
    row("benchmarking 2001:2::1", "ftp://[2001:2::1]/", "2001:2::1", BENCHMARKING, false),
    row("reserved 192.0.0.1", "ftp://192.0.0.1/", "192.0.0.1", RESERVED, false),
    row("reserved 240.0.0.1", "ftp://240.0.0.1/", "240.0.0.1", RESERVED, false),
    row("reserved 255.255.255.254", "ftp://255.255.255.254/", "255.255.255.254", RESERVED, false),
    row("reserved discard-only 100::1", "ftp://[100::1]/", "100::1", RESERVED, false),
    row("reserved Teredo 2001::1", "ftp://[2001::1]/", "2001::1", RESERVED, false),
    row("local-use NAT64 64:ff9b:1::a00:1", "ftp://[64:ff9b:1::a00:1]/", "64:ff9b:1::a00:1", PRIVATE, true),
    // IPv6 forms that carry a blocked IPv4 address
    row("IPv4-mapped private", "ftp://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1", PRIVATE, true),
    row("IPv4-mapped private, hex", "ftp://[::ffff:c0a8:101]/", "::ffff:192.168.1.1", PRIVATE, true),
    row("IPv4-mapped broadcast", "ftp://[::ffff:255.255.255.255]/", "::ffff:255.255.255.255", BROADCAST, false),
    row("IPv4-compatible loopback", "ftp://[::127.0.0.1]/", "::7f00:1", LOOPBACK, true),
    row("IPv4-compatible private", "ftp://[::10.0.0.1]/", "::a00:1", PRIVATE, true),
    row("IPv4-compatible metadata", "ftp://[::a9fe:a9fe]/", "::a9fe:a9fe", LINK_LOCAL, false),
    row("NAT64 loopback", "ftp://[64:ff9b::127.0.0.1]/", "64:ff9b::7f00:1", LOOPBACK, true),
    row("NAT64 private", "ftp://[64:ff9b::10.0.0.1]/", "64:ff9b::a00:1", PRIVATE, true),
    row("NAT64 metadata", "ftp://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe", LINK_LOCAL, false),
    row("NAT64 carrier-grade NAT", "ftp://[64:ff9b::100.64.0.1]/", "64:ff9b::6440:1", SHARED, true),
    row("6to4 loopback", "ftp://[2002:7f00:1::1]/", "2002:7f00:1::1", LOOPBACK, true),
    row("6to4 private", "ftp://[2002:a00:1::]/", "2002:a00:1::", PRIVATE, true),
    row("6to4 private 192.168.1.1", "ftp://[2002:c0a8:101:1::1]/", "2002:c0a8:101:1::1", PRIVATE, true),
    row("6to4 metadata", "ftp://[2002:a9fe:a9fe::]/", "2002:a9fe:a9fe::", LINK_LOCAL, false),
    row("6to4 unspecified", "ftp://[2002::1]/", "2002::1", UNSPECIFIED, false),
];

/// Public addresses (and a host name, which the `ftp` probe never resolves) that every policy lets through.
const PUBLIC: &[&str] = &[
    "ftp://93.184.216.34/",
    "ftp://1.1.1.1/",
    "ftp://[2606:4700:4700::1111]/",
    "ftp://[::ffff:8.8.8.8]/",
    "ftp://[64:ff9b::8.8.8.8]/",
    "ftp://[2002:808:808::1]/",
    "ftp://example.com/",
];

/// Listeners on one port at several loopback addresses, each counting the connections it accepts. Each answers
/// a request with `200 ok` and closes, or on `/redirect/<status>/<n>` with that status and `Location` taken from
/// the `n`th entry of `locations`.
struct Loopback {
    port: u16,
    counts: Vec<(IpAddr, Arc<AtomicUsize>)>,
}

const LISTEN_ON: [&str; 4] = ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1"];

impl Loopback {
    async fn start() -> Self {
        Self::start_with(Vec::new()).await
    }

    async fn start_with(locations: Vec<String>) -> Self {
        let locations = Arc::new(locations);
        // Another test may hold the port on one of the addresses: try a few ports.
        'port: for _ in 0..20 {
            let first = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = first.local_addr().unwrap().port();
            let mut listeners = vec![first];
            for ip in &LISTEN_ON[1..] {
                let addr = SocketAddr::new(ip.parse().unwrap(), port);
                match TcpListener::bind(addr).await {
                    Ok(listener) => listeners.push(listener),
                    Err(_) => continue 'port,
                }
            }
            let mut counts = Vec::new();
            for listener in listeners {
                let ip = listener.local_addr().unwrap().ip();
                let count = Arc::new(AtomicUsize::new(0));
                counts.push((ip, Arc::clone(&count)));
                let locations = Arc::clone(&locations);
                tokio::spawn(async move {
                    while let Ok((stream, _)) = listener.accept().await {
                        count.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(answer(stream, Arc::clone(&locations)));
                    }
                });
            }
            return Loopback { port, counts };
        }
        panic!("no port free on all of {LISTEN_ON:?}");
    }

    fn url(&self, template: &str) -> String {
        template.replace("PORT", &self.port.to_string())
    }

    fn connections(&self, ip: &str) -> usize {
        let ip: IpAddr = ip.parse().unwrap();
        self.counts.iter().find(|(at, _)| *at == ip).map(|(_, n)| n.load(Ordering::SeqCst)).unwrap()
    }

    fn total_connections(&self) -> usize {
        self.counts.iter().map(|(_, n)| n.load(Ordering::SeqCst)).sum()
    }
}

/// Reads one request head (bounded in size and time) and answers it.
async fn answer(mut stream: TcpStream, locations: Arc<Vec<String>>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !matches!(tokio::time::timeout(Duration::from_secs(5), read).await, Ok(true)) {
        return;
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let response = match path.strip_prefix("/redirect/").map(|rest| rest.split('/').collect::<Vec<_>>()) {
        Some(parts) if parts.len() == 2 => {
            let status: u16 = parts[0].parse().unwrap();
            let location = &locations[parts[1].parse::<usize>().unwrap()];
            format!("HTTP/1.1 {status} Moved\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        }
        _ => "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".to_owned(),
    };
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn builder() -> ReqwestClientBuilder {
    ReqwestClient::builder().connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(5))
}

fn get(url: &str) -> http::Request<Bytes> {
    http::Request::get(url).body(Bytes::new()).unwrap_or_else(|e| panic!("{url}: not a valid request: {e}"))
}

/// What the client did with a request.
#[derive(Debug)]
enum Outcome {
    /// The guard refused it.
    Refused(HttpError),
    /// The guard let it through: an answer (`http`), or reqwest's refusal of the scheme (`ftp`).
    Passed,
}

async fn outcome(client: &ReqwestClient, url: &str, case: &str) -> Outcome {
    match client.send(get(url)).await {
        Err(error) if error.kind() == HttpErrorKind::Refused => Outcome::Refused(error),
        Err(error) if url.starts_with("ftp:") && error.kind() == HttpErrorKind::InvalidRequest => {
            assert!(!error.message().contains("SSRF"), "{case}: {url}: {error}");
            Outcome::Passed
        }
        Ok(response) if url.starts_with("http:") => {
            assert_eq!(response.status(), http::StatusCode::OK, "{case}: {url}");
            assert_eq!(response.body().as_ref(), b"ok", "{case}: {url}");
            Outcome::Passed
        }
        other => panic!("{case}: {url}: neither refused by the guard nor passed: {other:?}"),
    }
}

/// `url` with its scheme replaced by `ftp`: the guard's decision, without connecting.
fn probe_url(url: &str) -> String {
    format!("ftp:{}", url.split_once(':').unwrap().1)
}

/// Sends the row through `client` and returns whether the guard passed it. An `http` row's `ftp` twin goes first
/// through a default client and must be refused as a loopback or unspecified address, so that the real request
/// can only reach a loopback listener.
async fn decide(client: &ReqwestClient, lo: &Loopback, row: &Row) -> Outcome {
    let url = lo.url(row.url);
    if url.starts_with("http:") && !url.contains("localhost") && !url.contains("LOCALHOST") {
        match outcome(&builder().build().unwrap(), &probe_url(&url), row.case).await {
            Outcome::Refused(error) if row.range == LOOPBACK || row.range == UNSPECIFIED => {
                assert!(error.message().contains(&format!("SSRF guard: {} is {}", row.ip, row.range)), "{}", row.case)
            }
            other => panic!("{}: {url} is not seen as {}, not sending it: {other:?}", row.case, row.range),
        }
    }
    outcome(client, &url, row.case).await
}

fn assert_refused_as_row(outcome: Outcome, row: &Row, policy: &str) {
    match outcome {
        Outcome::Refused(error) => {
            assert!(
                error.message().contains(row.ip),
                "{}, {policy}: {:?} must name {}: {error}",
                row.case,
                row.url,
                row.ip
            );
            assert!(
                error.message().contains(row.range),
                "{}, {policy}: {:?} must be {}: {error}",
                row.case,
                row.url,
                row.range
            );
            assert!(error.is_permanent(), "{}, {policy}", row.case);
        }
        Outcome::Passed => panic!("{}, {policy}: {:?} must be refused as {}", row.case, row.url, row.range),
    }
}

#[tokio::test]
async fn default_policy_refuses_every_row_and_nothing_connects() {
    let lo = Loopback::start().await;
    let client = builder().build().unwrap();
    for row in ROWS {
        let outcome = decide(&client, &lo, row).await;
        assert_refused_as_row(outcome, row, "default policy");
        assert_eq!(lo.total_connections(), 0, "{}: {} connected", row.case, row.url);
    }
    for url in PUBLIC {
        assert!(matches!(outcome(&client, url, "public").await, Outcome::Passed), "{url} is public");
    }
}

#[tokio::test]
async fn the_refusal_message_says_how_to_allow_it() {
    let lo = Loopback::start().await;
    let client = builder().build().unwrap();
    for (url, hint) in [
        ("http://127.0.0.1:PORT/", "allow_private_networks(true) or allow_cidr"),
        ("ftp://10.0.0.1/", "allow_private_networks(true) or allow_cidr"),
        ("ftp://169.254.169.254/", "; allow it with allow_cidr"),
        ("ftp://224.0.0.1/", "; allow it with allow_cidr"),
    ] {
        let error = client.send(get(&lo.url(url))).await.unwrap_err();
        assert_eq!(error.kind(), HttpErrorKind::Refused, "{url}");
        assert!(error.message().ends_with(hint), "{url}: {error}");
    }
    let error = client.send(get("ftp://169.254.169.254/")).await.unwrap_err();
    assert!(!error.message().contains("allow_private_networks"), "{error}");
    assert_eq!(lo.total_connections(), 0);
}

#[tokio::test]
async fn allow_private_networks_opens_exactly_the_private_rows() {
    let lo = Loopback::start().await;
    let client = builder().allow_private_networks(true).build().unwrap();
    let mut sent = 0;
    for row in ROWS {
        let outcome = decide(&client, &lo, row).await;
        if row.private {
            assert!(
                matches!(outcome, Outcome::Passed),
                "{}: {} must pass with allow_private_networks",
                row.case,
                row.url
            );
            sent += usize::from(row.url.starts_with("http:"));
        } else {
            assert_refused_as_row(outcome, row, "allow_private_networks");
        }
        assert_eq!(lo.total_connections(), sent, "{}: one connection per request sent", row.case);
    }
    for url in PUBLIC {
        assert!(matches!(outcome(&client, url, "public").await, Outcome::Passed), "{url} is public");
    }
    assert!(lo.connections("127.0.0.2") > 0 && lo.connections("127.255.255.254") > 0 && lo.connections("::1") > 0);
}

/// The IPv4 address an IPv6 address carries, per the guard's documentation: IPv4-mapped, IPv4-compatible (not
/// `::` or `::1`), NAT64 `64:ff9b::/96`, 6to4 `2002::/16`.
fn carried_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else { return None };
    let s = v6.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

fn in_networks(networks: &[IpNet], ip: IpAddr) -> bool {
    networks.iter().any(|net| net.contains(&ip) || carried_ipv4(ip).is_some_and(|v4| net.contains(&IpAddr::V4(v4))))
}

/// Runs every row through a client allowing `networks` and checks that exactly the rows whose address lies in
/// them (or carries an IPv4 address in them) pass. Returns the number of real requests sent.
async fn check_allow_list(networks: &[&str]) -> (Loopback, usize) {
    let networks: Vec<IpNet> = networks.iter().map(|n| n.parse().unwrap()).collect();
    let lo = Loopback::start().await;
    let client = builder().allow_cidrs(networks.clone()).build().unwrap();
    let policy = format!("allow_cidrs({networks:?})");
    let mut sent = 0;
    for row in ROWS {
        let outcome = decide(&client, &lo, row).await;
        if in_networks(&networks, row.ip.parse().unwrap()) {
            assert!(matches!(outcome, Outcome::Passed), "{}, {policy}: {} must pass", row.case, row.url);
            sent += usize::from(row.url.starts_with("http:"));
        } else {
            assert_refused_as_row(outcome, row, &policy);
        }
        assert_eq!(lo.total_connections(), sent, "{}, {policy}: one connection per request sent", row.case);
    }
    for url in PUBLIC {
        assert!(matches!(outcome(&client, url, &policy).await, Outcome::Passed), "{url} is public");
    }
    (lo, sent)
}

#[tokio::test]
async fn allow_cidr_127_0_0_1_opens_that_address_only() {
    let (lo, sent) = check_allow_list(&["127.0.0.1/32"]).await;
    assert!(sent >= 10, "the spellings of 127.0.0.1 and localhost went through: {sent}");
    assert_eq!(lo.connections("127.0.0.1"), sent);
    assert_eq!(lo.connections("127.0.0.2"), 0);
    assert_eq!(lo.connections("127.255.255.254"), 0);
    assert_eq!(lo.connections("::1"), 0);
}

#[tokio::test]
async fn allow_cidr_ipv6_loopback_opens_it_and_not_ipv4_loopback() {
    let (lo, sent) = check_allow_list(&["::1/128"]).await;
    assert_eq!(sent, 2, "[::1] and its long form");
    assert_eq!(lo.connections("::1"), 2);
}

#[tokio::test]
async fn allow_cidr_other_networks_open_exactly_what_they_name() {
    // the rows that pass here are all `ftp` probes: nothing is sent
    for networks in [
        &["10.0.0.0/8"][..],
        &["10.0.0.1/32", "192.168.0.0/16"],
        &["169.254.169.254/32"],
        &["fd00:ec2::254/128"],
        &["100.64.0.0/10", "fe80::/10"],
        &["224.0.0.0/4", "255.255.255.255/32"],
        &["0.0.0.0/8"],
    ] {
        let (lo, sent) = check_allow_list(networks).await;
        if networks.contains(&"0.0.0.0/8") {
            // 0.0.0.0 is allowed and Linux connects it to the local host, where the listener answers
            assert_eq!(sent, 4, "the unspecified IPv4 rows");
        } else {
            assert_eq!(sent, 0, "{networks:?}");
        }
        assert_eq!(lo.total_connections(), sent, "{networks:?}");
    }
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_returned_not_followed() {
    // First to a loopback address, where following would be counted (and harmless): a client that followed
    // redirects must be caught here, before it is shown a private address.
    let other = Loopback::start().await;
    let lo =
        Loopback::start_with(vec![other.url("http://127.0.0.1:PORT/followed"), "http://10.0.0.1/".to_owned()]).await;
    let client = builder().allow_cidr("127.0.0.1/32".parse().unwrap()).build().unwrap();
    for status in [301, 302, 303, 307, 308] {
        let response = client.send(get(&lo.url(&format!("http://127.0.0.1:PORT/redirect/{status}/0")))).await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["location"], other.url("http://127.0.0.1:PORT/followed").as_str());
        assert_eq!(other.total_connections(), 0, "{status} must not be followed");
    }
    assert_eq!(lo.connections("127.0.0.1"), 5);

    for status in [302, 307] {
        let response = client.send(get(&lo.url(&format!("http://127.0.0.1:PORT/redirect/{status}/1")))).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "the 3xx is the answer");
        assert_eq!(response.headers()["location"], "http://10.0.0.1/");
    }
    assert_eq!(lo.connections("127.0.0.1"), 7, "one connection per request, none for the redirect");
    // and the address the receiver pointed at is refused when asked for directly
    let error = client.send(get("ftp://10.0.0.1/")).await.unwrap_err();
    assert_eq!(error.kind(), HttpErrorKind::Refused, "{error}");
}
