//! Which IP addresses a callback may not reach, and why. Pure functions, no I/O: the
//! registration check and the send-time resolver both ask [`refusal`], so the two can
//! never disagree.
//!
//! IPv4 is judged against the IANA special-purpose registry. IPv6 is judged in two steps:
//! first the forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo),
//! whose embedded IPv4 is judged by the IPv4 rules, because a relay or a dual-stack socket
//! turns them into that IPv4 address; then the IPv6 ranges themselves. Any other address
//! outside `2000::/3`, the only global unicast space IANA has allocated, is refused.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The kind of non-public range an address lies in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Unspecified,
    ThisNetwork,
    Loopback,
    Private,
    SharedCgnat,
    /// 169.254.0.0/16 and fe80::/10: cloud metadata services live here.
    LinkLocal,
    IetfProtocol,
    Documentation,
    Benchmarking,
    Multicast,
    Broadcast,
    Reserved,
    UniqueLocal,
    SiteLocal,
    DiscardOnly,
    /// 64:ff9b:1::/48 (RFC 8215): a NAT64 prefix for use inside one network only.
    Nat64LocalUse,
}

/// An IPv6 form that carries an IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`
    Mapped,
    /// `::a.b.c.d` (deprecated, RFC 4291)
    Compatible,
    /// `64:ff9b::a.b.c.d` (RFC 6052)
    Nat64,
    /// `2002:AABB:CCDD::/48`: the IPv4 is bits 16..48 (RFC 3056)
    SixToFour,
    /// `2001:0:SSSS:SSSS:…`: the Teredo server's IPv4, bits 32..64 (RFC 4380)
    TeredoServer,
    /// `2001:0:…:CCCC:CCCC`: the Teredo client's IPv4, the last 32 bits inverted
    TeredoClient,
}

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address itself lies in a non-public range.
    Range(Range),
    /// An IPv6 form carrying an IPv4 address that the IPv4 rules refuse.
    Embeds {
        form: Embedding,
        v4: Ipv4Addr,
        range: Range,
    },
}

/// Why `ip` must not be reached by a callback, or `None` for a public address.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => v4_range(v4).map(Refusal::Range),
        IpAddr::V6(v6) => v6_refusal(v6),
    }
}

/// Whether `ip` is an address a callback must not reach.
pub fn is_forbidden(ip: IpAddr) -> bool {
    refusal(ip).is_some()
}

/// A prefix and the range it belongs to; the first matching rule names the range.
struct Rule<T> {
    prefix: T,
    len: u32,
    range: Range,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u32, range: Range) -> Rule<u32> {
    Rule {
        prefix: Ipv4Addr::new(a, b, c, d).to_bits(),
        len,
        range,
    }
}

const fn v6(segments: [u16; 8], len: u32, range: Range) -> Rule<u128> {
    let [a, b, c, d, e, f, g, h] = segments;
    Rule {
        prefix: Ipv6Addr::new(a, b, c, d, e, f, g, h).to_bits(),
        len,
        range,
    }
}

/// IANA IPv4 special-purpose registry, every block that is not globally reachable.
const V4_RULES: &[Rule<u32>] = &[
    v4(0, 0, 0, 0, 32, Range::Unspecified),
    v4(0, 0, 0, 0, 8, Range::ThisNetwork),
    v4(10, 0, 0, 0, 8, Range::Private),
    v4(100, 64, 0, 0, 10, Range::SharedCgnat),
    v4(127, 0, 0, 0, 8, Range::Loopback),
    v4(169, 254, 0, 0, 16, Range::LinkLocal),
    v4(172, 16, 0, 0, 12, Range::Private),
    v4(192, 0, 0, 0, 24, Range::IetfProtocol),
    v4(192, 0, 2, 0, 24, Range::Documentation),
    // Deprecated 6to4 relay anycast (RFC 7526): nothing a partner would serve from.
    v4(192, 88, 99, 0, 24, Range::Reserved),
    v4(192, 168, 0, 0, 16, Range::Private),
    v4(198, 18, 0, 0, 15, Range::Benchmarking),
    v4(198, 51, 100, 0, 24, Range::Documentation),
    v4(203, 0, 113, 0, 24, Range::Documentation),
    v4(224, 0, 0, 0, 4, Range::Multicast),
    v4(255, 255, 255, 255, 32, Range::Broadcast),
    v4(240, 0, 0, 0, 4, Range::Reserved),
];

/// IPv6 ranges judged after the IPv4-carrying forms. Inside `2000::/3` only.
const V6_RULES: &[Rule<u128>] = &[
    // IETF protocol assignments; Teredo (2001::/32) is judged before by its IPv4s.
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, Range::IetfProtocol),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, Range::Documentation),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, Range::Documentation),
];

/// IPv6 ranges outside `2000::/3`, named for the error message (all refused anyway).
const V6_NAMED_OUTSIDE_GLOBAL: &[Rule<u128>] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, Range::Unspecified),
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, Range::Loopback),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, Range::Nat64LocalUse),
    // 100::/64 discard-only (RFC 6666) and 100:0:0:1::/64 dummy (RFC 9780).
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 63, Range::DiscardOnly),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, Range::UniqueLocal),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, Range::LinkLocal),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, Range::SiteLocal),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, Range::Multicast),
];

fn first_match<T>(rules: &[Rule<T>], bits: T, width: u32) -> Option<Range>
where
    T: Copy + Eq + std::ops::Shr<u32, Output = T>,
{
    rules
        .iter()
        .find(|r| bits >> (width - r.len) == r.prefix >> (width - r.len))
        .map(|r| r.range)
}

fn v4_range(ip: Ipv4Addr) -> Option<Range> {
    first_match(V4_RULES, ip.to_bits(), 32)
}

fn v6_refusal(ip: Ipv6Addr) -> Option<Refusal> {
    let bits = ip.to_bits();
    let in_prefix = |prefix: u128, len: u32| bits >> (128 - len) == prefix >> (128 - len);
    let low32 = |shift: u32| Ipv4Addr::from_bits((bits >> shift) as u32);
    // `::` and `::1` first, so that they are named as such and not as compatible forms.
    if bits <= 1 {
        return first_match(V6_NAMED_OUTSIDE_GLOBAL, bits, 128).map(Refusal::Range);
    }
    let embedded: &[(Embedding, Ipv4Addr)] = if in_prefix(0xffff << 32, 96) {
        &[(Embedding::Mapped, low32(0))]
    } else if in_prefix(0, 96) {
        &[(Embedding::Compatible, low32(0))]
    } else if in_prefix(0x64_ff9b << 96, 96) {
        &[(Embedding::Nat64, low32(0))]
    } else if in_prefix(0x2002 << 112, 16) {
        &[(Embedding::SixToFour, low32(80))]
    } else if in_prefix(0x2001_0000 << 96, 32) {
        &[
            (Embedding::TeredoServer, low32(64)),
            (Embedding::TeredoClient, !low32(0)),
        ]
    } else {
        &[]
    };
    if !embedded.is_empty() {
        return embedded
            .iter()
            .find_map(|&(form, v4)| v4_range(v4).map(|range| Refusal::Embeds { form, v4, range }));
    }
    if !in_prefix(0x2000 << 112, 3) {
        let range = first_match(V6_NAMED_OUTSIDE_GLOBAL, bits, 128).unwrap_or(Range::Reserved);
        return Some(Refusal::Range(range));
    }
    first_match(V6_RULES, bits, 128).map(Refusal::Range)
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Range::Unspecified => "unspecified",
            Range::ThisNetwork => "\"this network\" 0.0.0.0/8",
            Range::Loopback => "loopback",
            Range::Private => "private",
            Range::SharedCgnat => "shared/CGNAT 100.64.0.0/10",
            Range::LinkLocal => "link-local, where cloud metadata lives",
            Range::IetfProtocol => "IETF protocol assignments",
            Range::Documentation => "documentation",
            Range::Benchmarking => "benchmarking",
            Range::Multicast => "multicast",
            Range::Broadcast => "broadcast",
            Range::Reserved => "reserved",
            Range::UniqueLocal => "unique local fc00::/7",
            Range::SiteLocal => "site-local fec0::/10",
            Range::DiscardOnly => "discard-only 100::/64",
            Range::Nat64LocalUse => "local-use NAT64 64:ff9b:1::/48",
        })
    }
}

impl fmt::Display for Embedding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Embedding::Mapped => "IPv4-mapped",
            Embedding::Compatible => "IPv4-compatible",
            Embedding::Nat64 => "NAT64",
            Embedding::SixToFour => "6to4",
            Embedding::TeredoServer => "Teredo server",
            Embedding::TeredoClient => "Teredo client",
        })
    }
}

/// `loopback`, or `6to4 form of 127.0.0.1, loopback`.
impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Range(range) => write!(f, "{range}"),
            Refusal::Embeds { form, v4, range } => write!(f, "{form} form of {v4}, {range}"),
        }
    }
}

#[cfg(test)]
mod tests;
