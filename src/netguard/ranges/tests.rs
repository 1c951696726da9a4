//! One row per address form: refused ones with the reason they must give, public ones
//! with `None`.

use super::Embedding::*;
use super::Range::*;
use super::*;

fn embeds(form: Embedding, v4: &str, range: Range) -> Option<Refusal> {
    Some(Refusal::Embeds {
        form,
        v4: v4.parse().unwrap(),
        range,
    })
}

fn check(rows: &[(&str, Option<Refusal>)]) {
    for (ip, want) in rows {
        let got = refusal(ip.parse().unwrap());
        assert_eq!(got, *want, "{ip}");
        assert_eq!(is_forbidden(ip.parse().unwrap()), want.is_some(), "{ip}");
    }
}

#[test]
fn ipv4_special_ranges_are_refused_and_their_edges_are_not() {
    let r = |range| Some(Refusal::Range(range));
    check(&[
        ("0.0.0.0", r(Unspecified)),
        ("0.1.2.3", r(ThisNetwork)),
        ("10.0.0.1", r(Private)),
        ("10.255.255.255", r(Private)),
        ("11.0.0.0", None),
        ("100.63.255.255", None),
        ("100.64.0.1", r(SharedCgnat)),
        ("100.127.255.255", r(SharedCgnat)),
        ("100.128.0.1", None),
        ("127.0.0.1", r(Loopback)),
        ("127.255.255.254", r(Loopback)),
        ("169.254.169.254", r(LinkLocal)),
        ("169.254.0.1", r(LinkLocal)),
        ("172.15.255.255", None),
        ("172.16.0.1", r(Private)),
        ("172.31.255.255", r(Private)),
        ("172.32.0.0", None),
        ("192.0.0.8", r(IetfProtocol)),
        ("192.0.1.1", None),
        ("192.0.2.1", r(Documentation)),
        ("192.88.99.1", r(Reserved)),
        ("192.168.1.1", r(Private)),
        ("198.17.255.255", None),
        ("198.18.0.1", r(Benchmarking)),
        ("198.19.255.255", r(Benchmarking)),
        ("198.20.0.0", None),
        ("198.51.100.7", r(Documentation)),
        ("203.0.113.9", r(Documentation)),
        ("223.255.255.255", None),
        ("224.0.0.1", r(Multicast)),
        ("239.255.255.250", r(Multicast)),
        ("240.0.0.1", r(Reserved)),
        ("255.255.255.254", r(Reserved)),
        ("255.255.255.255", r(Broadcast)),
        ("8.8.8.8", None),
        ("1.1.1.1", None),
        ("200.160.2.3", None),
    ]);
}

#[test]
fn ipv6_special_ranges_are_refused() {
    let r = |range| Some(Refusal::Range(range));
    check(&[
        ("::", r(Unspecified)),
        ("::1", r(Loopback)),
        ("fc00::1", r(UniqueLocal)),
        ("fd00:ec2::254", r(UniqueLocal)),
        ("fe80::1", r(LinkLocal)),
        ("febf:ffff::1", r(LinkLocal)),
        ("fec0::1", r(SiteLocal)),
        ("ff02::1", r(Multicast)),
        ("ff0e::1", r(Multicast)),
        ("100::1", r(DiscardOnly)),
        ("100:0:0:1::1", r(DiscardOnly)),
        ("64:ff9b:1::a00:1", r(Nat64LocalUse)),
        ("64:ff9b:1:ffff::808:808", r(Nat64LocalUse)),
        ("2001:db8::1", r(Documentation)),
        ("3fff::1", r(Documentation)),
        ("2001:2::1", r(IetfProtocol)),
        ("2001:10::1", r(IetfProtocol)),
        ("2001:1ff::1", r(IetfProtocol)),
        // SIIT `::ffff:0:a.b.c.d`, SRv6 5f00::/16 and anything else outside 2000::/3.
        ("::ffff:0:808:808", r(Reserved)),
        ("5f00::1", r(Reserved)),
        ("4000::1", r(Reserved)),
        ("1::1", r(Reserved)),
        ("2001:4860:4860::8888", None),
        ("2606:4700:4700::1111", None),
        ("2001:200::1", None),
        ("3ffe::1", None),
    ]);
}

#[test]
fn every_ipv6_form_carrying_an_ipv4_is_judged_by_that_ipv4() {
    check(&[
        // IPv4-mapped
        ("::ffff:127.0.0.1", embeds(Mapped, "127.0.0.1", Loopback)),
        (
            "::ffff:169.254.169.254",
            embeds(Mapped, "169.254.169.254", LinkLocal),
        ),
        ("::ffff:0.0.0.0", embeds(Mapped, "0.0.0.0", Unspecified)),
        ("::ffff:8.8.8.8", None),
        // IPv4-compatible (`::` and `::1` are named above)
        ("::127.0.0.1", embeds(Compatible, "127.0.0.1", Loopback)),
        ("::10.0.0.1", embeds(Compatible, "10.0.0.1", Private)),
        ("::0.0.0.2", embeds(Compatible, "0.0.0.2", ThisNetwork)),
        ("::8.8.8.8", None),
        // NAT64 well-known prefix
        ("64:ff9b::7f00:1", embeds(Nat64, "127.0.0.1", Loopback)),
        (
            "64:ff9b::a9fe:a9fe",
            embeds(Nat64, "169.254.169.254", LinkLocal),
        ),
        (
            "64:ff9b::192.168.0.1",
            embeds(Nat64, "192.168.0.1", Private),
        ),
        ("64:ff9b::808:808", None),
        // 6to4: bits 16..48
        ("2002:7f00:1::1", embeds(SixToFour, "127.0.0.1", Loopback)),
        ("2002:a00:1::", embeds(SixToFour, "10.0.0.1", Private)),
        (
            "2002:a9fe:a9fe:1234::1",
            embeds(SixToFour, "169.254.169.254", LinkLocal),
        ),
        ("2002::1", embeds(SixToFour, "0.0.0.0", Unspecified)),
        (
            "2002:c000:0201::1",
            embeds(SixToFour, "192.0.2.1", Documentation),
        ),
        ("2002:0808:0808::1", None),
        // Teredo: server in bits 32..64, client inverted in the last 32 bits
        (
            "2001:0:7f00:1:0:0:f5ff:fffe",
            embeds(TeredoServer, "127.0.0.1", Loopback),
        ),
        (
            "2001:0:808:808:0:0:80ff:fffe",
            embeds(TeredoClient, "127.0.0.1", Loopback),
        ),
        (
            "2001:0:808:808:8000:0:f5ff:fffe",
            embeds(TeredoClient, "10.0.0.1", Private),
        ),
        (
            "2001:0:808:808::5601:5601",
            embeds(TeredoClient, "169.254.169.254", LinkLocal),
        ),
        (
            "2001:0:a00:1:0:0:f7f7:f7f7",
            embeds(TeredoServer, "10.0.0.1", Private),
        ),
        ("2001:0:808:808:0:0:f7f7:f7f7", None),
        // RFC 4380's own example: its client is a documentation address.
        (
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            embeds(TeredoClient, "192.0.2.45", Documentation),
        ),
    ]);
}

#[test]
fn the_reason_names_the_form_and_the_range() {
    let show = |ip: &str| refusal(ip.parse().unwrap()).unwrap().to_string();
    assert_eq!(show("127.0.0.1"), "loopback");
    assert_eq!(show("2002:7f00:1::1"), "6to4 form of 127.0.0.1, loopback");
    assert_eq!(
        show("2001:0:808:808:0:0:80ff:fffe"),
        "Teredo client form of 127.0.0.1, loopback"
    );
    assert_eq!(show("64:ff9b:1::1"), "local-use NAT64 64:ff9b:1::/48");
}
