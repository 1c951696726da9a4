//! Database URLs that name several hosts, as libpq accepts them:
//! `postgres://user@h1:5432,h2:5433/db?target_session_attrs=read-write`.
//!
//! sqlx connects to one host only, so the URL is split here into one single-host URL per
//! host (same user, database and parameters), tried in order. `target_session_attrs` is
//! ours to interpret: `read-write` (the default here, unlike libpq's `any`, because callbackd
//! writes) or `primary` want a host that accepts writes; `any` takes the first that answers.
//! The attributes that ask for a standby are refused: callbackd cannot run on one.

/// What a host must be to be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    /// Accepts writes (`read-write`, `primary`).
    ReadWrite,
    /// Any host that answers.
    Any,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// One URL per host, in the order given.
    pub urls: Vec<String>,
    pub attrs: SessionAttrs,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostsError {
    #[error("must start with postgres:// or postgresql://")]
    Scheme,
    #[error("names no host")]
    NoHost,
    #[error("host {0:?}: the port must be a number from 1 to 65535")]
    Port(String),
    #[error(
        "target_session_attrs={0:?} is not supported (callbackd writes: use read-write, primary or any)"
    )]
    Attrs(String),
    #[error("{0}")]
    Url(String),
}

/// Splits `raw` into its hosts. A single-host URL comes back as itself (less
/// `target_session_attrs`).
pub fn parse(raw: &str) -> Result<Targets, HostsError> {
    let (scheme, rest) = raw
        .split_once("://")
        .filter(|(s, _)| matches!(*s, "postgres" | "postgresql"))
        .ok_or(HostsError::Scheme)?;
    // The authority ends at the first '/' or '?' (a password with either must be
    // percent-encoded, as in any URL).
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hostlist) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut attrs = SessionAttrs::ReadWrite;
    let mut kept = Vec::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("target_session_attrs", value)) => {
                attrs = match value {
                    "read-write" | "primary" => SessionAttrs::ReadWrite,
                    "any" => SessionAttrs::Any,
                    other => return Err(HostsError::Attrs(other.to_string())),
                }
            }
            _ => kept.push(pair),
        }
    }
    let hosts = split_hosts(hostlist)?;
    let mut urls = Vec::with_capacity(hosts.len());
    for host in hosts {
        let mut url = format!("{scheme}://");
        if let Some(u) = userinfo {
            url.push_str(u);
            url.push('@');
        }
        url.push_str(&host);
        url.push_str(path);
        if !kept.is_empty() {
            url.push('?');
            url.push_str(&kept.join("&"));
        }
        // Each single-host URL must be a URL: catches what the split cannot see.
        url::Url::parse(&url).map_err(|e| HostsError::Url(e.to_string()))?;
        urls.push(url);
    }
    Ok(Targets { urls, attrs })
}

/// `h1:1,[::1]:2,h3` → `["h1:1", "[::1]:2", "h3"]`, each port checked.
fn split_hosts(list: &str) -> Result<Vec<String>, HostsError> {
    let mut hosts = Vec::new();
    for item in list.split(',') {
        if item.is_empty() {
            return Err(HostsError::NoHost);
        }
        // A bracketed IPv6 address holds colons of its own.
        let port = match item.strip_prefix('[') {
            Some(v6) => v6.split_once(']').map(|(_, p)| p.strip_prefix(':')),
            None => Some(item.rsplit_once(':').map(|(_, p)| p)),
        }
        .ok_or_else(|| HostsError::Port(item.to_string()))?;
        if let Some(p) = port
            && !matches!(p.parse::<u16>(), Ok(n) if n > 0)
        {
            return Err(HostsError::Port(item.to_string()));
        }
        hosts.push(item.to_string());
    }
    Ok(hosts)
}

/// The URL with every password replaced, fit for logs; works on multi-host URLs too.
pub fn redact(raw: &str) -> String {
    match parse(raw) {
        Ok(t) => {
            let hosts: Vec<String> = t
                .urls
                .iter()
                .filter_map(|u| url::Url::parse(u).ok())
                .map(|u| match u.port() {
                    Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
                    None => u.host_str().unwrap_or_default().to_string(),
                })
                .collect();
            let Ok(mut first) = url::Url::parse(&t.urls[0]) else {
                return "<unparseable url>".into();
            };
            if first.password().is_some() {
                let _ = first.set_password(Some("***"));
            }
            if hosts.len() == 1 {
                return first.to_string();
            }
            // Put the whole host list back in place of the first host.
            let shown = first.to_string();
            let host = &hosts[0];
            shown.replacen(host, &hosts.join(","), 1)
        }
        Err(_) => "<unparseable url>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_stays_itself() {
        let t = parse("postgres://postgres@127.0.0.1:5432/callbackd").unwrap();
        assert_eq!(t.urls, ["postgres://postgres@127.0.0.1:5432/callbackd"]);
        assert_eq!(t.attrs, SessionAttrs::ReadWrite);
    }

    #[test]
    fn several_hosts_become_one_url_each_with_user_path_and_parameters() {
        let t = parse(
            "postgresql://u:p%40ss@h1:5432,h2,[::1]:6000/db?sslmode=disable&target_session_attrs=any&application_name=x",
        )
        .unwrap();
        assert_eq!(
            t.urls,
            [
                "postgresql://u:p%40ss@h1:5432/db?sslmode=disable&application_name=x",
                "postgresql://u:p%40ss@h2/db?sslmode=disable&application_name=x",
                "postgresql://u:p%40ss@[::1]:6000/db?sslmode=disable&application_name=x",
            ]
        );
        assert_eq!(t.attrs, SessionAttrs::Any);
    }

    #[test]
    fn read_write_is_the_default_and_primary_means_the_same() {
        assert_eq!(
            parse("postgres://a,b/d").unwrap().attrs,
            SessionAttrs::ReadWrite
        );
        let t = parse("postgres://a,b/d?target_session_attrs=primary").unwrap();
        assert_eq!(t.attrs, SessionAttrs::ReadWrite);
        assert_eq!(t.urls, ["postgres://a/d", "postgres://b/d"]);
    }

    #[test]
    fn hostile_urls_are_clear_errors() {
        let cases = [
            ("mysql://a/b", HostsError::Scheme),
            ("postgres://", HostsError::NoHost),
            ("postgres://a,,b/db", HostsError::NoHost),
            ("postgres://a:99999/db", HostsError::Port("a:99999".into())),
            ("postgres://a:-1,b/db", HostsError::Port("a:-1".into())),
            ("postgres://a:0/db", HostsError::Port("a:0".into())),
            ("postgres://a:x/db", HostsError::Port("a:x".into())),
            ("postgres://[::1/db", HostsError::Port("[::1".into())),
            (
                "postgres://a,b/db?target_session_attrs=standby",
                HostsError::Attrs("standby".into()),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(parse(url), Err(want), "{url}");
        }
        assert!(parse("postgres://a\0b/db").is_err());
    }

    #[test]
    fn redaction_hides_the_password_and_keeps_every_host() {
        assert_eq!(
            redact("postgres://u:secret@h1:1,h2:2/db"),
            "postgres://u:***@h1:1,h2:2/db"
        );
        assert_eq!(
            redact("postgres://u:secret@h1/db"),
            "postgres://u:***@h1/db"
        );
        assert_eq!(redact("not a url"), "<unparseable url>");
    }
}
