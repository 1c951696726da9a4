//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) over the exact request sent: method,
//! path, query, every header present when signing (plus `host`) and the SHA-256 of the body.
//!
//! Implemented here with `hmac`/`sha2` (already in the build for sqlx) rather than the
//! `aws-sigv4` crate, whose request types pull the smithy runtime and http 0.2 for ~30
//! lines of canonicalisation; the AWS published example vectors are the tests.

use ::hmac::{KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{AuthError, Secret, body_bytes, check_non_empty, hex, sensitive_header};
use crate::model::ValidationError;

/// RFC 3986 unreserved characters stay; everything else is encoded (AWS `UriEncode`).
const AWS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Headers that are not signed: they may be changed or added on the way.
const UNSIGNED: &[&str] = &[
    "authorization",
    "user-agent",
    "expect",
    "transfer-encoding",
    "connection",
    "x-amzn-trace-id",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSigV4 {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub region: String,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
}

impl AwsSigV4 {
    pub(super) fn validate(&self) -> Result<(), ValidationError> {
        let simple = |v: &str, field: &str| {
            check_non_empty(v, field)?;
            if !v
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ValidationError::new(
                    field,
                    "only letters, digits, '-' and '_'",
                ));
            }
            Ok(())
        };
        simple(&self.access_key_id, "auth.access_key_id")?;
        simple(&self.region, "auth.region")?;
        simple(&self.service, "auth.service")?;
        if self.secret_access_key.expose().is_empty() {
            return Err(ValidationError::new(
                "auth.secret_access_key",
                "must not be empty",
            ));
        }
        if let Some(t) = &self.session_token {
            super::check_header_secret(t.expose(), "auth.session_token")?;
        }
        Ok(())
    }

    pub(super) fn public_fields(&self) -> serde_json::Value {
        serde_json::json!({
            "access_key_id": self.access_key_id,
            "region": self.region,
            "service": self.service,
            "session_token": self.session_token.is_some(),
        })
    }

    pub(super) fn apply(&self, request: &mut reqwest::Request) -> Result<(), AuthError> {
        let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let payload_hash = hex(&Sha256::digest(body_bytes(request)?));
        let headers = request.headers_mut();
        let set = |h: &mut reqwest::header::HeaderMap, name: &'static str, v: &str| {
            h.insert(
                reqwest::header::HeaderName::from_static(name),
                reqwest::header::HeaderValue::from_str(v)
                    .map_err(|_| AuthError::Failed(format!("aws_sigv4: bad {name}")))?,
            );
            Ok::<_, AuthError>(())
        };
        set(headers, "x-amz-date", &now)?;
        set(headers, "x-amz-content-sha256", &payload_hash)?;
        if let Some(t) = &self.session_token {
            headers.insert(
                reqwest::header::HeaderName::from_static("x-amz-security-token"),
                sensitive_header(t.expose())?,
            );
        }
        let url = request.url();
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let mut signed: Vec<(String, String)> = vec![("host".into(), host)];
        for (name, value) in request.headers() {
            if UNSIGNED.contains(&name.as_str()) {
                continue;
            }
            let v = value
                .to_str()
                .map_err(|_| AuthError::Failed(format!("aws_sigv4: {name} is not text")))?;
            signed.push((name.as_str().to_string(), v.to_string()));
        }
        let authorization = sign_v4(&SigningInput {
            method: request.method().as_str(),
            path: url.path(),
            query: url.query().unwrap_or(""),
            headers: &signed,
            payload_sha256: &payload_hash,
            amz_date: &now,
            access_key_id: &self.access_key_id,
            secret_access_key: self.secret_access_key.expose(),
            region: &self.region,
            service: &self.service,
        });
        request.headers_mut().insert(
            reqwest::header::AUTHORIZATION,
            sensitive_header(&authorization)?,
        );
        Ok(())
    }
}

/// Everything a SigV4 signature covers.
pub struct SigningInput<'a> {
    pub method: &'a str,
    /// The path as sent (percent-encoded).
    pub path: &'a str,
    /// The query as sent, without `?`.
    pub query: &'a str,
    /// Headers to sign (any case; values as sent), including `host`.
    pub headers: &'a [(String, String)],
    pub payload_sha256: &'a str,
    /// `YYYYMMDDTHHMMSSZ`, the `X-Amz-Date`.
    pub amz_date: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The canonical request of SigV4 (AWS "Create a canonical request").
pub fn canonical_request(i: &SigningInput<'_>) -> (String, String) {
    // Path: each segment URI-encoded again (S3 once: decoded, then encoded).
    let path = if i.path.is_empty() { "/" } else { i.path };
    let canonical_path = path
        .split('/')
        .map(|seg| {
            if i.service == "s3" {
                let decoded = percent_decode_str(seg).decode_utf8_lossy();
                utf8_percent_encode(&decoded, AWS_ENCODE).to_string()
            } else {
                utf8_percent_encode(seg, AWS_ENCODE).to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    // Query: decode each name and value, re-encode strictly, sort.
    let mut params: Vec<(String, String)> = i
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let enc = |s: &str| {
                utf8_percent_encode(&percent_decode_str(s).decode_utf8_lossy(), AWS_ENCODE)
                    .to_string()
            };
            (enc(k), enc(v))
        })
        .collect();
    params.sort();
    let canonical_query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    // Headers: lowercase names, trimmed values with inner runs of spaces collapsed,
    // repeated names joined with commas, sorted by name.
    let mut headers: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (name, value) in i.headers {
        let v = value.split_whitespace().collect::<Vec<_>>().join(" ");
        headers
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(v);
    }
    let canonical_headers: String = headers
        .iter()
        .map(|(k, v)| format!("{k}:{}\n", v.join(",")))
        .collect();
    let signed_headers = headers.keys().cloned().collect::<Vec<_>>().join(";");
    let creq = format!(
        "{}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{}",
        i.method, i.payload_sha256
    );
    (creq, signed_headers)
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = <::hmac::Hmac<Sha256>>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The `Authorization` header value of SigV4.
pub fn sign_v4(i: &SigningInput<'_>) -> String {
    let (creq, signed_headers) = canonical_request(i);
    let date = &i.amz_date[..i.amz_date.len().min(8)];
    let scope = format!("{date}/{}/{}/aws4_request", i.region, i.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        i.amz_date,
        hex(&Sha256::digest(creq.as_bytes()))
    );
    let k_date = hmac(format!("AWS4{}", i.secret_access_key).as_bytes(), date);
    let k_region = hmac(&k_date, i.region);
    let k_service = hmac(&k_region, i.service);
    let k_signing = hmac(&k_service, "aws4_request");
    let signature = hex(&hmac(&k_signing, &string_to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        i.access_key_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The headers of the AWS test suite's requests to `example.amazonaws.com`.
    fn suite_headers() -> Vec<(String, String)> {
        h(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ])
    }

    /// The request every AWS example signs: `GET /` with an empty body, by `AKIDEXAMPLE`
    /// in us-east-1 at 2015-08-30T12:36:00Z; the examples differ in query, headers, service.
    fn example<'a>(
        query: &'a str,
        headers: &'a [(String, String)],
        service: &'a str,
    ) -> SigningInput<'a> {
        SigningInput {
            method: "GET",
            path: "/",
            query,
            headers,
            payload_sha256: EMPTY_SHA256,
            amz_date: "20150830T123600Z",
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SECRET,
            region: "us-east-1",
            service,
        }
    }

    /// AWS SigV4 test suite, `get-vanilla`.
    #[test]
    fn aws_test_suite_get_vanilla() {
        let headers = suite_headers();
        let input = example("", &headers, "service");
        assert_eq!(
            canonical_request(&input).0,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n{EMPTY_SHA256}"
            )
        );
        assert_eq!(
            sign_v4(&input),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    /// The documented IAM example: GET https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08
    #[test]
    fn aws_documented_iam_example() {
        let headers = h(&[
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
        ]);
        let input = example("Action=ListUsers&Version=2010-05-08", &headers, "iam");
        let (creq, _) = canonical_request(&input);
        assert_eq!(
            hex(&Sha256::digest(creq.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            sign_v4(&input),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// AWS SigV4 test suite, `get-vanilla-query-order-key-case` and encoding of the path.
    #[test]
    fn query_is_sorted_and_path_encoded() {
        let headers = suite_headers();
        let input = example("Param2=value2&Param1=value1", &headers, "service");
        assert_eq!(
            sign_v4(&input),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
        let input = SigningInput {
            path: "/a%20b/c",
            query: "",
            ..input
        };
        assert!(canonical_request(&input).0.starts_with("GET\n/a%2520b/c\n"));
    }
}
