//! SSRF guard: callback targets must be public addresses unless the deployment allows
//! private ones (`CALLBACKD_ALLOW_PRIVATE_TARGETS`). Checked at registration and again at
//! send time, through the HTTP client's resolver, because DNS may change in between.

mod ranges;

use std::net::{IpAddr, SocketAddr};

pub use ranges::{Embedding, Range, Refusal, is_forbidden, refusal};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves to {ip} ({reason}); callbacks go to public addresses only")]
pub struct ForbiddenTarget {
    pub host: String,
    pub ip: IpAddr,
    pub reason: Refusal,
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
    match addrs
        .into_iter()
        .find_map(|ip| refusal(ip).map(|reason| (ip, reason)))
    {
        Some((ip, reason)) => Err(ForbiddenTarget {
            host: host.to_string(),
            ip,
            reason,
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

    /// The url crate parses hosts as WHATWG does (as browsers and curl do): every numeric
    /// IPv4 spelling becomes the dotted address, so the literal check sees 127.0.0.1.
    #[test]
    fn every_ipv4_literal_spelling_is_normalized_and_refused() {
        for raw in [
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://0x7f000001/",
            "http://017700000001/",
            "http://0x7F.0.0.0x1/",
            "http://127.0.0.1./",
            "http://0/",
            "http://[::ffff:7f00:1]/",
            "http://[::127.0.0.1]/",
            "http://[2002:7f00:1::1]/",
            "http://[2001:0:808:808::80ff:fffe]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[64:ff9b:1::808:808]/",
            "http://[::]/",
        ] {
            let url = url::Url::parse(raw).unwrap();
            assert!(
                matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))),
                "{raw} parsed as {:?}",
                url.host()
            );
            let err = check_literal(&url).expect_err(raw);
            assert!(is_forbidden(err.ip), "{raw}");
        }
        let url = url::Url::parse("http://2130706433/").unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        let public = url::Url::parse("http://134744072/").unwrap();
        assert_eq!(public.host_str(), Some("8.8.8.8"));
        assert!(check_literal(&public).is_ok());
    }

    /// One refused address among a name's answers refuses the name: the connector may try
    /// any of them.
    #[test]
    fn one_forbidden_answer_refuses_the_name() {
        let ips = ["8.8.8.8", "2002:a00:1::1"].map(|s| s.parse::<IpAddr>().unwrap());
        let err = first_forbidden("partner.example", ips).unwrap_err();
        assert_eq!(err.ip, ips[1]);
        assert_eq!(
            err.to_string(),
            "partner.example resolves to 2002:a00:1::1 (6to4 form of 10.0.0.1, private); \
             callbacks go to public addresses only"
        );
        assert!(first_forbidden("partner.example", [ips[0]]).is_ok());
    }

    /// The connect-time guard: the resolver the HTTP client uses refuses `localhost`, with
    /// a typed error the sender recognises.
    #[tokio::test]
    async fn the_resolver_refuses_a_name_resolving_to_loopback() {
        use reqwest::dns::Resolve;
        let err = match GuardedResolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let forbidden = err.downcast_ref::<ForbiddenTarget>().expect("typed error");
        assert_eq!(forbidden.host, "localhost");
        assert_eq!(forbidden.reason, Refusal::Range(Range::Loopback));
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
