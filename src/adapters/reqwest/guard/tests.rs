//! Unit tests of `guard`.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The specification, written independently of the match arms above.
const RANGES: &[(&str, BlockedRange)] = &[
    ("0.0.0.0/8", BlockedRange::ThisNetwork),
    ("10.0.0.0/8", BlockedRange::Private),
    ("100.64.0.0/10", BlockedRange::SharedAddressSpace),
    ("127.0.0.0/8", BlockedRange::Loopback),
    ("169.254.0.0/16", BlockedRange::LinkLocal),
    ("172.16.0.0/12", BlockedRange::Private),
    ("192.0.0.0/24", BlockedRange::Reserved),
    ("192.0.2.0/24", BlockedRange::Documentation),
    ("192.168.0.0/16", BlockedRange::Private),
    ("198.18.0.0/15", BlockedRange::Benchmarking),
    ("198.51.100.0/24", BlockedRange::Documentation),
    ("203.0.113.0/24", BlockedRange::Documentation),
    ("224.0.0.0/4", BlockedRange::Multicast),
    ("240.0.0.0/4", BlockedRange::Reserved),
    ("64:ff9b:1::/48", BlockedRange::Private),
    ("100::/64", BlockedRange::Reserved),
    ("2001::/32", BlockedRange::Reserved),
    ("2001:2::/48", BlockedRange::Benchmarking),
    ("2001:db8::/32", BlockedRange::Documentation),
    ("3fff::/20", BlockedRange::Documentation),
    ("fc00::/7", BlockedRange::UniqueLocal),
    ("fe80::/10", BlockedRange::LinkLocal),
    ("fec0::/10", BlockedRange::SiteLocal),
    ("ff00::/8", BlockedRange::Multicast),
];

/// Addresses that are a step outside a blocked range, or plainly public.
const PUBLIC: &[&str] = &[
    "1.0.0.0",
    "1.1.1.1",
    "8.8.8.8",
    "9.255.255.255",
    "11.0.0.0",
    "100.63.255.255",
    "100.128.0.0",
    "126.255.255.255",
    "128.0.0.0",
    "169.253.255.255",
    "169.255.0.0",
    "172.15.255.255",
    "172.32.0.0",
    "191.255.255.255",
    "192.0.1.0",
    "192.0.3.0",
    "192.88.99.1",
    "192.167.255.255",
    "192.169.0.0",
    "198.17.255.255",
    "198.20.0.0",
    "198.51.99.255",
    "198.51.101.0",
    "203.0.112.255",
    "203.0.114.0",
    "223.255.255.255",
    "93.184.216.34",
    "::2:0:0:0:1",
    "64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff",
    "64:ff9b:2::",
    "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "100:0:0:1::",
    "64:ff9b::1:0:0",
    "2001:1:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:2:1::",
    "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
    "2001:db9::",
    "2001:4860:4860::8888",
    "2606:4700:4700::1111",
    "3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "3ff0::1",
    "3fff:1000::",
    "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe00::",
    "fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    // mapped and NAT64 forms of public IPv4 addresses are public
    "::ffff:8.8.8.8",
    "::8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",
];

/// Two single addresses sit at the edge of a wider range and have their own category.
fn expected_at(edge: IpAddr, range: BlockedRange) -> BlockedRange {
    match edge {
        IpAddr::V4(v4) if v4 == Ipv4Addr::UNSPECIFIED => BlockedRange::Unspecified,
        IpAddr::V4(v4) if v4 == Ipv4Addr::BROADCAST => BlockedRange::Broadcast,
        _ => range,
    }
}

#[test]
fn first_and_last_address_of_every_range_is_blocked() {
    for (cidr, range) in RANGES {
        let net = net(cidr);
        for edge in [net.network(), net.broadcast()] {
            assert_eq!(blocked_range(edge), Some(expected_at(edge, *range)), "{edge} in {cidr}");
        }
    }
}

#[test]
fn addresses_just_outside_ranges_and_public_addresses_pass() {
    for s in PUBLIC {
        assert_eq!(blocked_range(ip(s)), None, "{s}");
        assert_eq!(SsrfPolicy::default().check(ip(s)), Ok(()), "{s}");
    }
}

#[test]
fn single_addresses() {
    let cases = [
        ("0.0.0.0", BlockedRange::Unspecified),
        ("::", BlockedRange::Unspecified),
        ("::1", BlockedRange::Loopback),
        ("0.0.0.1", BlockedRange::ThisNetwork),
        ("127.0.0.1", BlockedRange::Loopback),
        ("169.254.169.254", BlockedRange::LinkLocal),
        ("255.255.255.255", BlockedRange::Broadcast),
        ("255.255.255.254", BlockedRange::Reserved),
        ("239.255.255.255", BlockedRange::Multicast),
        ("192.0.0.170", BlockedRange::Reserved),
        ("fd00:ec2::254", BlockedRange::Metadata),
        ("fd00:ec2::23", BlockedRange::Metadata),
        ("fd00:ec2::253", BlockedRange::UniqueLocal),
        ("fd00:ec2::1:254", BlockedRange::UniqueLocal),
        ("100.100.100.200", BlockedRange::Metadata),
        ("100.100.100.199", BlockedRange::SharedAddressSpace),
        ("::ffff:100.100.100.200", BlockedRange::Metadata),
        ("ff02::1", BlockedRange::Multicast),
    ];
    for (s, range) in cases {
        assert_eq!(blocked_range(ip(s)), Some(range), "{s}");
    }
}

#[test]
fn ipv6_forms_of_ipv4_addresses_are_judged_by_the_ipv4_address() {
    let cases = [
        ("::ffff:127.0.0.1", BlockedRange::Loopback),
        ("::ffff:0.0.0.0", BlockedRange::Unspecified),
        ("::ffff:10.1.2.3", BlockedRange::Private),
        ("::ffff:169.254.169.254", BlockedRange::LinkLocal),
        ("::ffff:255.255.255.255", BlockedRange::Broadcast),
        ("::ffff:100.64.0.1", BlockedRange::SharedAddressSpace),
        ("::ffff:224.0.0.1", BlockedRange::Multicast),
        ("::127.0.0.1", BlockedRange::Loopback),
        ("::192.168.1.1", BlockedRange::Private),
        ("::0.0.0.2", BlockedRange::ThisNetwork),
        ("64:ff9b::127.0.0.1", BlockedRange::Loopback),
        ("64:ff9b::a9fe:a9fe", BlockedRange::LinkLocal),
        ("2002:7f00:1::", BlockedRange::Loopback),
        ("2002:a9fe:a9fe::1", BlockedRange::LinkLocal),
        ("2002:c0a8:101:1::1", BlockedRange::Private),
    ];
    for (s, range) in cases {
        assert_eq!(blocked_range(ip(s)), Some(range), "{s}");
    }
    // the whole mapped block, edge to edge
    assert_eq!(blocked_range(ip("::ffff:0.0.0.0")), Some(BlockedRange::Unspecified));
    assert_eq!(blocked_range(ip("::ffff:255.255.255.255")), Some(BlockedRange::Broadcast));
    // just outside the mapped block: ::1:0:0:0 is not mapped, and is public
    assert_eq!(embedded_ipv4(ip6("::1:0:0:0")), None);
    assert_eq!(embedded_ipv4(ip6("::fffe:7f00:1")), None);
    assert_eq!(embedded_ipv4(ip6("::1:ffff:7f00:1")), None);
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

#[test]
fn embedded_ipv4_extraction() {
    assert_eq!(embedded_ipv4(ip6("::ffff:1.2.3.4")), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(embedded_ipv4(ip6("::1.2.3.4")), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(embedded_ipv4(ip6("64:ff9b::1.2.3.4")), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(embedded_ipv4(ip6("2002:102:304:5::6")), Some(Ipv4Addr::new(1, 2, 3, 4)));
    assert_eq!(embedded_ipv4(ip6("::")), None);
    assert_eq!(embedded_ipv4(ip6("::1")), None);
    assert_eq!(embedded_ipv4(ip6("64:ff9b:1::1.2.3.4")), None);
    assert_eq!(embedded_ipv4(ip6("2606:4700::1")), None);
}

#[test]
fn default_policy_blocks_every_range() {
    let policy = SsrfPolicy::default();
    for (cidr, range) in RANGES {
        let net = net(cidr);
        for edge in [net.network(), net.broadcast()] {
            assert_eq!(policy.check(edge), Err(expected_at(edge, *range)), "{edge} in {cidr}");
        }
    }
    assert_eq!(policy.check(ip("::1")), Err(BlockedRange::Loopback));
    assert_eq!(policy.check(ip("0.0.0.0")), Err(BlockedRange::Unspecified));
}

#[test]
fn private_networks_opens_only_the_private_ranges() {
    let policy = SsrfPolicy { allow_private_networks: true, allowed: Vec::new() };
    let opened = [
        "127.0.0.1",
        "127.255.255.255",
        "::1",
        "::ffff:127.0.0.1",
        "10.0.0.0",
        "10.255.255.255",
        "172.16.0.0",
        "172.31.255.255",
        "192.168.0.0",
        "192.168.255.255",
        "100.64.0.0",
        "100.127.255.255",
        "fc00::",
        "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "fec0::1",
        "64:ff9b:1::1",
    ];
    for s in opened {
        assert_eq!(policy.check(ip(s)), Ok(()), "{s}");
    }
    let still_closed = [
        ("0.0.0.0", BlockedRange::Unspecified),
        ("::", BlockedRange::Unspecified),
        ("0.1.2.3", BlockedRange::ThisNetwork),
        ("169.254.169.254", BlockedRange::LinkLocal),
        ("::ffff:169.254.169.254", BlockedRange::LinkLocal),
        ("fe80::1", BlockedRange::LinkLocal),
        ("fd00:ec2::254", BlockedRange::Metadata),
        ("fd00:ec2::23", BlockedRange::Metadata),
        ("100.100.100.200", BlockedRange::Metadata),
        ("64:ff9b::100.100.100.200", BlockedRange::Metadata),
        ("255.255.255.255", BlockedRange::Broadcast),
        ("224.0.0.1", BlockedRange::Multicast),
        ("ff02::1", BlockedRange::Multicast),
        ("192.0.2.1", BlockedRange::Documentation),
        ("198.18.0.1", BlockedRange::Benchmarking),
        ("240.0.0.1", BlockedRange::Reserved),
    ];
    for (s, range) in still_closed {
        assert_eq!(policy.check(ip(s)), Err(range), "{s}");
    }
}

#[test]
fn allow_list_overrides_any_range_but_only_inside_its_networks() {
    let policy = SsrfPolicy {
        allow_private_networks: false,
        allowed: vec![net("10.1.0.0/16"), net("169.254.169.254/32"), net("fd12:3456::/32")],
    };
    for s in [
        "10.1.0.0",
        "10.1.255.255",
        "::ffff:10.1.2.3",
        "::10.1.2.3",
        "64:ff9b::10.1.2.3",
        "2002:a01:203::1",
        "169.254.169.254",
        "fd12:3456::1",
    ] {
        assert_eq!(policy.check(ip(s)), Ok(()), "{s}");
    }
    for (s, range) in [
        ("10.0.255.255", BlockedRange::Private),
        ("10.2.0.0", BlockedRange::Private),
        ("169.254.169.253", BlockedRange::LinkLocal),
        ("fd12:3457::1", BlockedRange::UniqueLocal),
        ("127.0.0.1", BlockedRange::Loopback),
    ] {
        assert_eq!(policy.check(ip(s)), Err(range), "{s}");
    }
}

#[test]
fn allow_listing_everything_turns_the_guard_off() {
    let policy = SsrfPolicy { allow_private_networks: false, allowed: vec![net("0.0.0.0/0"), net("::/0")] };
    for (cidr, _) in RANGES {
        assert_eq!(policy.check(net(cidr).network()), Ok(()), "{cidr}");
    }
}

#[test]
fn metadata_endpoints_open_only_when_allow_listed() {
    let policy =
        SsrfPolicy { allow_private_networks: true, allowed: vec![net("fd00:ec2::254/128"), net("100.100.100.200/32")] };
    assert_eq!(policy.check(ip("fd00:ec2::254")), Ok(()));
    assert_eq!(policy.check(ip("::ffff:100.100.100.200")), Ok(()));
    assert_eq!(policy.check(ip("fd00:ec2::23")), Err(BlockedRange::Metadata));
    assert!(!BlockedRange::Metadata.is_private_network());
}

#[test]
fn every_category_has_a_description() {
    for (_, range) in RANGES {
        assert!(!range.to_string().is_empty());
    }
    assert!(!BlockedRange::Metadata.to_string().is_empty());
}
