//! `Authorization: HMAC <hex>` — CONTRACT §4:
//! lowercase hex of HMAC-SHA256(secret, id "." timestamp "." METHOD "." path?query "." body),
//! where id and timestamp are the `X-Callback-Id` and `X-Callback-Timestamp` headers of the
//! same request and path?query and body are exactly as sent.

use ::hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{AuthError, Secret, body_bytes, hex, path_and_query, sensitive_header};
use crate::model::ValidationError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hmac {
    pub secret: Secret,
}

impl Hmac {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        if self.secret.expose().is_empty() {
            return Err(ValidationError::new("auth.secret", "must not be empty"));
        }
        Ok(())
    }

    pub(super) fn apply(&self, request: &mut reqwest::Request) -> Result<(), AuthError> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| AuthError::Failed(format!("hmac: the request has no {name}")))
        };
        let id = header("x-callback-id")?;
        let timestamp = header("x-callback-timestamp")?;
        let signature = hmac_signature(
            self.secret.expose().as_bytes(),
            &id,
            &timestamp,
            request.method().as_str(),
            path_and_query(request.url()),
            body_bytes(request)?,
        );
        request.headers_mut().insert(
            reqwest::header::AUTHORIZATION,
            sensitive_header(&format!("HMAC {signature}"))?,
        );
        Ok(())
    }
}

/// The lowercase hex HMAC-SHA256 of CONTRACT §4.
pub fn hmac_signature(
    secret: &[u8],
    id: &str,
    timestamp: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let mut mac = <::hmac::Hmac<Sha256>>::new_from_slice(secret).expect("HMAC takes any key");
    for part in [id, timestamp, method, path_and_query] {
        mac.update(part.as_bytes());
        mac.update(b".");
    }
    mac.update(body);
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2_and_contract_layout() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let mut mac = <::hmac::Hmac<Sha256>>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // The contract's string: id.timestamp.METHOD.path?query.body
        let mut mac = <::hmac::Hmac<Sha256>>::new_from_slice(b"s").unwrap();
        mac.update(b"d-1.1700000000.POST./cb?a=1.{\"x\":1}");
        assert_eq!(
            hmac_signature(b"s", "d-1", "1700000000", "POST", "/cb?a=1", b"{\"x\":1}"),
            hex(&mac.finalize().into_bytes())
        );
    }

    /// The example of docs/auth.md, computed there with Python's hmac module.
    #[test]
    fn documented_example() {
        assert_eq!(
            hmac_signature(
                b"whsec-partner-secret",
                "0190c1a2-7b3e-7c4d-9e8f-112233445566",
                "1732550400",
                "POST",
                "/callbacks?proposal=7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d&status=9&identifier=",
                br#"{"DescricaoOcorrencia":"Credito ou debito efetivado"}"#,
            ),
            "82d7848fffd08b0c7d5788120cd0ec6c330ba012ac579c36aab1d1f36ad40b91"
        );
    }
}
