//! SigV4: a receiver that recomputes the signature from the request it received (its own
//! canonicalisation, written from AWS's documentation) and refuses any mismatch.

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::common::{FnServer, deliver, endpoint, header, only_attempt, verdict};
use crate::support::app::spawn_app;
use crate::support::receiver::Recorded;

const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn mac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <hmac::Hmac<Sha256>>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn verify(r: &Recorded, secret: &str, session_token: Option<&str>) -> Result<(), String> {
    let auth = header(r, "authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not SigV4")?;
    let mut credential = "";
    let mut signed_headers = "";
    let mut signature = "";
    for part in rest.split(", ") {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = v,
            Some(("SignedHeaders", v)) => signed_headers = v,
            Some(("Signature", v)) => signature = v,
            _ => return Err(format!("bad part {part}")),
        }
    }
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[0] != AKID || scope[2] != "sa-east-1" || scope[3] != "execute-api"
    {
        return Err(format!("bad credential {credential}"));
    }
    let amz_date = header(r, "x-amz-date")?;
    if !amz_date.starts_with(scope[1]) {
        return Err("date mismatch".into());
    }
    let body_hash = hex(&Sha256::digest(&r.body));
    if header(r, "x-amz-content-sha256")? != body_hash {
        return Err("body hash mismatch".into());
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    for must in [
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-callback-id",
        "x-callback-timestamp",
    ] {
        if !names.contains(&must) {
            return Err(format!("{must} is not signed"));
        }
    }
    match session_token {
        Some(t)
            if header(r, "x-amz-security-token")? != t
                || !names.contains(&"x-amz-security-token") =>
        {
            return Err("session token".into());
        }
        None if r.header("x-amz-security-token").is_some() => return Err("unexpected token".into()),
        _ => {}
    }
    let (path, query) = r.uri.split_once('?').unwrap_or((&r.uri, ""));
    let canonical_path: Vec<String> = path.split('/').map(uri_encode).collect();
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(query.replace('+', "%2B").as_bytes())
            .map(|(k, v)| (uri_encode(&k), uri_encode(&v)))
            .collect();
    pairs.sort();
    let canonical_query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut canonical_headers = String::new();
    for n in &names {
        let values: Vec<String> = r
            .headers
            .get_all(*n)
            .iter()
            .map(|v| {
                v.to_str()
                    .unwrap()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {n} missing"));
        }
        canonical_headers.push_str(&format!("{n}:{}\n", values.join(",")));
    }
    let creq = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{body_hash}",
        r.method,
        canonical_path.join("/"),
        canonical_query.join("&")
    );
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        scope[1..].join("/"),
        hex(&Sha256::digest(creq.as_bytes()))
    );
    let k = mac(format!("AWS4{secret}").as_bytes(), scope[1]);
    let k = mac(&k, scope[2]);
    let k = mac(&k, scope[3]);
    let k = mac(&k, "aws4_request");
    if hex(&mac(&k, &sts)) != signature {
        return Err("signature mismatch".into());
    }
    Ok(())
}

fn auth(secret: &str, token: Option<&str>) -> Value {
    let mut a = json!({"type": "aws_sigv4", "access_key_id": AKID, "secret_access_key": secret,
                       "region": "sa-east-1", "service": "execute-api"});
    if let Some(t) = token {
        a["session_token"] = json!(t);
    }
    a
}

#[tokio::test]
async fn receiver_recomputes_the_signature() {
    let app = spawn_app().await;
    let server = FnServer::start(|r| verdict(verify(r, SECRET, None))).await;
    let (partner, _) = endpoint(
        &app,
        &format!("{}/v1/cb?b=2&a=1", server.base),
        auth(SECRET, None),
        1,
    )
    .await;
    let d = deliver(&app, partner, "delivered").await;
    assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");

    // A wrong secret is refused.
    let (partner, _) = endpoint(
        &app,
        &format!("{}/v1/cb", server.base),
        auth("wrong", None),
        1,
    )
    .await;
    let d = deliver(&app, partner, "dead").await;
    assert_eq!(only_attempt(&d)["status_code"], 401);
    assert_eq!(only_attempt(&d)["response_body"], "signature mismatch");
}

#[tokio::test]
async fn session_token_is_sent_and_signed() {
    let app = spawn_app().await;
    let server = FnServer::start(|r| verdict(verify(r, SECRET, Some("session-tok/1+2=")))).await;
    let (partner, _) = endpoint(
        &app,
        &format!("{}/cb", server.base),
        auth(SECRET, Some("session-tok/1+2=")),
        1,
    )
    .await;
    let d = deliver(&app, partner, "delivered").await;
    assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");
}
