//! Where and how a partner receives callbacks.

use super::{ValidationError, wire_enum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Environment {
    Homologation,
    Production,
}

wire_enum!(Environment, "environment", {
    Homologation => "homologation",
    Production => "production",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
}

wire_enum!(Method, "method", {
    Get => "GET",
    Post => "POST",
    Put => "PUT",
});

/// Whether an endpoint receives a proposal's callbacks strictly in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOrder {
    None,
    PerProposal,
}

wire_enum!(DeliveryOrder, "ordering", {
    None => "none",
    PerProposal => "per_proposal",
});

/// Whether requests carry Standard Webhooks signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signing {
    None,
    StandardWebhooks,
}

wire_enum!(Signing, "signing", {
    None => "none",
    StandardWebhooks => "standard_webhooks",
});

impl Method {
    /// POST and PUT carry the notification's body; GET carries only the query.
    pub fn has_body(self) -> bool {
        self != Method::Get
    }
}

const MAX_URL_LEN: usize = 2048;

/// Checks what can be checked of a callback URL without the network: an absolute `http` or
/// `https` URL with a host, no credentials (they belong in `auth`, where they are encrypted)
/// and no fragment.
pub fn validate_url_shape(raw: &str) -> Result<url::Url, ValidationError> {
    let bad = |m: &str| ValidationError::new("url", m);
    if raw.len() > MAX_URL_LEN {
        return Err(bad("longer than 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("not a valid absolute URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http and https URLs are accepted"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("the URL has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL are not accepted: put them in `auth`, where they are encrypted",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad(
            "a fragment (#...) is never sent to a server: remove it",
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_shapes() {
        assert!(validate_url_shape("https://partner.example/cb?x=1").is_ok());
        assert!(validate_url_shape("http://127.0.0.1:9000/cb").is_ok());
        for bad in [
            "ftp://partner.example/",
            "partner.example/cb",
            "https://user:pw@partner.example/",
            "https://partner.example/cb#frag",
            "not a url",
            "mailto:ops@partner.example",
        ] {
            let err = validate_url_shape(bad).unwrap_err();
            assert_eq!(err.field, "url", "{bad}");
        }
    }

    #[test]
    fn wire_names() {
        assert_eq!("GET".parse::<Method>().unwrap(), Method::Get);
        assert!("DELETE".parse::<Method>().is_err());
        assert!("get".parse::<Method>().is_err());
        assert_eq!(
            serde_json::to_string(&Environment::Production).unwrap(),
            "\"production\""
        );
        assert!(serde_json::from_str::<Environment>("\"staging\"").is_err());
    }
}
