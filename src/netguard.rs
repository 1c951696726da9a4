//! SSRF guard: callback targets must be public addresses unless the deployment allows
//! private ones (`CALLBACKD_ALLOW_PRIVATE_TARGETS`). Checked at registration and again at
//! send time, through the HTTP client's resolver, because DNS may change in between.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` is an address a callback must not reach: loopback, private, link-local
/// (cloud metadata lives there), CGNAT, unspecified, multicast, broadcast, documentation,
/// benchmarking, or an IPv6 form of any of these.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..=127).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18.0.0/15
        || a >= 240 // reserved
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_forbidden_v4(v4);
    }
    let seg = ip.segments();
    // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let embedded = Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        );
        return is_forbidden_v4(embedded);
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
        || seg[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{host} resolves to {ip}, a loopback/private/link-local address; callbacks go to public addresses only"
)]
pub struct ForbiddenTarget {
    pub host: String,
    pub ip: IpAddr,
}

/// Registration-time check. A host that does not resolve is accepted (it fails at send
/// time with a DNS error); one that resolves to any forbidden address is refused.
pub async fn check_url(url: &url::Url) -> Result<(), ForbiddenTarget> {
    let Some(host) = url.host() else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = match host {
        url::Host::Ipv4(ip) => vec![IpAddr::V4(ip)],
        url::Host::Ipv6(ip) => vec![IpAddr::V6(ip)],
        url::Host::Domain(name) => match tokio::net::lookup_host((name, port)).await {
            Ok(it) => it.map(|sa| sa.ip()).collect(),
            Err(_) => return Ok(()),
        },
    };
    first_forbidden(url.host_str().unwrap_or_default(), addrs)
}

fn first_forbidden(
    host: &str,
    addrs: impl IntoIterator<Item = IpAddr>,
) -> Result<(), ForbiddenTarget> {
    match addrs.into_iter().find(|ip| is_forbidden(*ip)) {
        Some(ip) => Err(ForbiddenTarget {
            host: host.to_string(),
            ip,
        }),
        None => Ok(()),
    }
}

/// Send-time check of an IP-literal host (the resolver below never sees those).
pub fn check_literal(url: &url::Url) -> Result<(), ForbiddenTarget> {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => first_forbidden(&ip.to_string(), [IpAddr::V4(ip)]),
        Some(url::Host::Ipv6(ip)) => first_forbidden(&ip.to_string(), [IpAddr::V6(ip)]),
        _ => Ok(()),
    }
}

/// A reqwest resolver that refuses names resolving to forbidden addresses, so the check
/// happens on the very addresses the connection will use.
#[derive(Debug, Clone, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            first_forbidden(&host, addrs.iter().map(|a| a.ip()))?;
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::",
        ] {
            assert!(is_forbidden(ip.parse().unwrap()), "{ip} must be forbidden");
        }
        for ip in [
            "8.8.8.8",
            "200.160.2.3",
            "2001:4860:4860::8888",
            "100.128.0.1",
        ] {
            assert!(!is_forbidden(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn registration_check() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_url(&u("http://127.0.0.1:9/x")).await.is_err());
        assert!(check_url(&u("http://[::1]/x")).await.is_err());
        assert!(check_url(&u("http://localhost/x")).await.is_err());
        assert!(check_url(&u("https://8.8.8.8/x")).await.is_ok());
        assert!(
            check_url(&u("https://does-not-resolve.invalid/x"))
                .await
                .is_ok()
        );
    }
}
