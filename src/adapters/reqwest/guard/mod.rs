//! The SSRF guard's decision: may the client connect to this address?
//!
//! Pure functions over [`IpAddr`], no I/O, so every range can be tested at its edges. The resolver
//! ([`super::resolve`]) and the IP-literal check in [`super::ReqwestClient`] both ask [`SsrfPolicy::check`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is not a public unicast address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BlockedRange {
    /// `0.0.0.0`, `::`: on most systems a connection to it reaches the local host.
    Unspecified,
    /// `0.0.0.0/8` other than `0.0.0.0`.
    ThisNetwork,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and the local-use NAT64 prefix `64:ff9b:1::/48`.
    Private,
    /// Shared address space (carrier-grade NAT), `100.64.0.0/10`.
    SharedAddressSpace,
    /// `169.254.0.0/16` (cloud metadata lives at `169.254.169.254`), `fe80::/10`.
    LinkLocal,
    /// Cloud metadata and credential endpoints outside link-local: AWS's IPv6 instance metadata
    /// `fd00:ec2::254` and EKS Pod Identity agent `fd00:ec2::23` (both in `fc00::/7`), Alibaba Cloud's metadata
    /// `100.100.100.200` (in `100.64.0.0/10`). Taken out of their ranges so that opening private networks
    /// leaves them closed.
    Metadata,
    /// IPv6 unique local addresses, `fc00::/7`.
    UniqueLocal,
    /// Deprecated IPv6 site-local addresses, `fec0::/10`.
    SiteLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15`, `2001:2::/48`.
    Benchmarking,
    /// Special-purpose ranges no webhook receiver lives in: `192.0.0.0/24` (IETF protocol assignments),
    /// `240.0.0.0/4` (future use), `100::/64` (discard-only), `2001::/32` (Teredo tunnels).
    Reserved,
}

impl BlockedRange {
    /// Ranges that [`SsrfPolicy::allow_private_networks`] opens: the ones an on-premises receiver or a test
    /// server plausibly lives in. Link-local and [`Metadata`](BlockedRange::Metadata) stay closed because that
    /// is where cloud metadata services answer.
    pub(crate) fn is_private_network(self) -> bool {
        matches!(
            self,
            BlockedRange::Loopback
                | BlockedRange::Private
                | BlockedRange::SharedAddressSpace
                | BlockedRange::UniqueLocal
                | BlockedRange::SiteLocal
        )
    }

    fn description(self) -> &'static str {
        match self {
            BlockedRange::Unspecified => "an unspecified address",
            BlockedRange::ThisNetwork => "a 'this network' address (0.0.0.0/8)",
            BlockedRange::Loopback => "a loopback address",
            BlockedRange::Private => "a private network address",
            BlockedRange::SharedAddressSpace => "a shared (carrier-grade NAT) address",
            BlockedRange::LinkLocal => "a link-local address (includes cloud metadata endpoints)",
            BlockedRange::Metadata => "a cloud metadata endpoint",
            BlockedRange::UniqueLocal => "an IPv6 unique local address",
            BlockedRange::SiteLocal => "an IPv6 site-local address",
            BlockedRange::Multicast => "a multicast address",
            BlockedRange::Broadcast => "the broadcast address",
            BlockedRange::Documentation => "a documentation address",
            BlockedRange::Benchmarking => "a benchmarking address",
            BlockedRange::Reserved => "a reserved special-purpose address",
        }
    }
}

impl fmt::Display for BlockedRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// The range `ip` belongs to when it is not a public unicast address, judging an IPv6 address that embeds an
/// IPv4 address (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) by that IPv4 address.
pub(crate) fn blocked_range(ip: IpAddr) -> Option<BlockedRange> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<BlockedRange> {
    let range = match ip.octets() {
        [0, 0, 0, 0] => BlockedRange::Unspecified,
        [0, ..] => BlockedRange::ThisNetwork,
        [100, 100, 100, 200] => BlockedRange::Metadata,
        [127, ..] => BlockedRange::Loopback,
        [10, ..] => BlockedRange::Private,
        [172, b, ..] if b & 0xf0 == 16 => BlockedRange::Private,
        [192, 168, ..] => BlockedRange::Private,
        [100, b, ..] if b & 0xc0 == 64 => BlockedRange::SharedAddressSpace,
        [169, 254, ..] => BlockedRange::LinkLocal,
        [192, 0, 0, _] => BlockedRange::Reserved,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => BlockedRange::Documentation,
        [198, b, ..] if b & 0xfe == 18 => BlockedRange::Benchmarking,
        [255, 255, 255, 255] => BlockedRange::Broadcast,
        [a, ..] if a & 0xf0 == 224 => BlockedRange::Multicast,
        [a, ..] if a & 0xf0 == 240 => BlockedRange::Reserved,
        _ => return None,
    };
    Some(range)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<BlockedRange> {
    if ip.is_unspecified() {
        return Some(BlockedRange::Unspecified);
    }
    if ip.is_loopback() {
        return Some(BlockedRange::Loopback);
    }
    if let Some(v4) = embedded_ipv4(ip) {
        return blocked_v4(v4);
    }
    let s = ip.segments();
    let range = match s {
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254 | 0x0023] => BlockedRange::Metadata,
        [0x0064, 0xff9b, 0x0001, ..] => BlockedRange::Private,
        [0x0100, 0, 0, 0, ..] => BlockedRange::Reserved,
        [0x2001, 0x0000, ..] => BlockedRange::Reserved,
        [0x2001, 0x0002, 0x0000, ..] => BlockedRange::Benchmarking,
        [0x2001, 0x0db8, ..] => BlockedRange::Documentation,
        [0x3fff, b, ..] if b & 0xf000 == 0 => BlockedRange::Documentation,
        [a, ..] if a & 0xfe00 == 0xfc00 => BlockedRange::UniqueLocal,
        [a, ..] if a & 0xffc0 == 0xfe80 => BlockedRange::LinkLocal,
        [a, ..] if a & 0xffc0 == 0xfec0 => BlockedRange::SiteLocal,
        [a, ..] if a & 0xff00 == 0xff00 => BlockedRange::Multicast,
        _ => return None,
    };
    Some(range)
}

/// The IPv4 address an IPv6 address carries, for the forms that route to it: IPv4-mapped `::ffff:0:0/96`,
/// IPv4-compatible `::/96` (other than `::` and `::1`), NAT64 `64:ff9b::/96` and 6to4 `2002::/16`.
pub(crate) fn embedded_ipv4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        [0, 0, 0, 0, 0, 0xffff, ..] => Some(low),
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => None,
        [0, 0, 0, 0, 0, 0, ..] => Some(low),
        [0x0064, 0xff9b, 0, 0, 0, 0, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)),
        _ => None,
    }
}

/// What the SSRF guard lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SsrfPolicy {
    /// Opens the ranges for which [`BlockedRange::is_private_network`] holds.
    pub(crate) allow_private_networks: bool,
    /// Networks permitted whatever range they are in. An IPv6 address that embeds an IPv4 address is also
    /// permitted when the embedded address is in one of them.
    pub(crate) allowed: Vec<IpNet>,
}

impl SsrfPolicy {
    /// `Ok` when the client may connect to `ip`, otherwise the blocked range it is in.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), BlockedRange> {
        let Some(range) = blocked_range(ip) else {
            return Ok(());
        };
        if self.allow_private_networks && range.is_private_network() {
            return Ok(());
        }
        if self.is_allow_listed(ip) {
            return Ok(());
        }
        Err(range)
    }

    fn is_allow_listed(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed.iter().any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }
}

#[cfg(test)]
mod tests;
