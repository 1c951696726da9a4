//! Digest: a receiver that issues RFC 7616 challenges, computes the expected `response`
//! itself, tracks `nc` per nonce, and declares nonces stale after a number of uses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use md5::Md5;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::common::{FnServer, deliver, endpoint, only_attempt};
use crate::support::app::spawn_app;
use crate::support::receiver::{Recorded, Reply};

const REALM: &str = "partner@example.org";
const USER: &str = "acme";
const PASS: &str = "digest-pass-1";

#[derive(Default)]
struct ServerState {
    /// nonce → highest nc accepted, uses
    nonces: HashMap<String, (u32, u32)>,
    issued: u32,
    stale_sent: u32,
}

struct DigestServer {
    server: FnServer,
    state: Arc<Mutex<ServerState>>,
}

fn h(alg: &str, s: &str) -> String {
    let bytes = match alg {
        "MD5" => Md5::digest(s.as_bytes()).to_vec(),
        _ => Sha256::digest(s.as_bytes()).to_vec(),
    };
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `Digest a="b", c=d` → pairs.
fn params(v: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = v.trim_start_matches("Digest").trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q[..end].to_string(), &q[(end + 1).min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(k, val);
        rest = next.trim_start_matches([',', ' ']);
    }
    out
}

impl DigestServer {
    /// `alg` is `MD5` or `SHA-256`; a nonce goes stale after `uses` accepted requests.
    async fn start(alg: &'static str, uses: u32) -> DigestServer {
        let state: Arc<Mutex<ServerState>> = Arc::default();
        let s = state.clone();
        let server = FnServer::start(move |r| answer(&mut s.lock().unwrap(), r, alg, uses)).await;
        DigestServer { server, state }
    }
}

fn challenge(st: &mut ServerState, alg: &str, stale: bool) -> Reply {
    st.issued += 1;
    let nonce = format!("nonce-{}-{}", st.issued, uuid::Uuid::new_v4().simple());
    st.nonces.insert(nonce.clone(), (0, 0));
    if stale {
        st.stale_sent += 1;
    }
    Reply::status(401)
        .with_header(
            "www-authenticate",
            &format!(
                r#"Digest realm="{REALM}", qop="auth", algorithm={alg}, nonce="{nonce}", opaque="op-1"{}"#,
                if stale { ", stale=true" } else { "" }
            ),
        )
        // A second, weaker offer the client must not prefer over SHA-256.
        .with_header("www-authenticate", r#"Basic realm="x""#)
}

fn answer(st: &mut ServerState, r: &Recorded, alg: &str, uses: u32) -> Reply {
    let Some(auth) = r
        .header("authorization")
        .filter(|a| a.starts_with("Digest "))
    else {
        return challenge(st, alg, false);
    };
    let p = params(auth);
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    let nonce = get("nonce");
    let Some((last_nc, used)) = st.nonces.get(&nonce).copied() else {
        return challenge(st, alg, false);
    };
    if used >= uses {
        return challenge(st, alg, true);
    }
    let nc = u32::from_str_radix(&get("nc"), 16).unwrap_or(0);
    let ok = get("username") == USER
        && get("realm") == REALM
        && get("uri") == r.uri
        && get("qop") == "auth"
        && get("algorithm") == alg
        && get("opaque") == "op-1"
        && get("nc").len() == 8
        && nc > last_nc;
    let ha1 = h(alg, &format!("{USER}:{REALM}:{PASS}"));
    let ha2 = h(alg, &format!("{}:{}", r.method, r.uri));
    let expected = h(
        alg,
        &format!("{ha1}:{nonce}:{}:{}:auth:{ha2}", get("nc"), get("cnonce")),
    );
    if !ok || get("response") != expected {
        return Reply::status(401)
            .with_header(
                "www-authenticate",
                &format!(r#"Digest realm="{REALM}", qop="auth", algorithm={alg}, nonce="{nonce}", opaque="op-1""#),
            )
            .with_body("wrong digest");
    }
    st.nonces.insert(nonce, (nc, used + 1));
    Reply::status(200)
}

fn nc_of(r: &Recorded) -> Option<String> {
    r.header("authorization")
        .map(|a| params(a).get("nc").cloned().unwrap_or_default())
}

fn nonce_of(r: &Recorded) -> String {
    r.header("authorization")
        .map(|a| params(a).get("nonce").cloned().unwrap_or_default())
        .unwrap_or_default()
}

#[tokio::test]
async fn sha256_challenge_then_nonce_reused_with_nc_counting_up() {
    let app = spawn_app().await;
    let ds = DigestServer::start("SHA-256", 100).await;
    let (partner, _) = endpoint(
        &app,
        &format!("{}/cb", ds.server.base),
        json!({"type": "digest", "username": USER, "password": PASS}),
        1,
    )
    .await;
    for _ in 0..3 {
        let d = deliver(&app, partner, "delivered").await;
        let a = only_attempt(&d);
        assert_eq!(
            a["status_code"], 200,
            "the challenge is not a failed attempt: {d:#}"
        );
        assert!(a["error"].is_null());
    }
    let seen = ds.server.seen();
    let statuses: Vec<u16> = seen.iter().map(|(_, s)| *s).collect();
    assert_eq!(
        statuses,
        [401, 200, 200, 200],
        "one challenge, then the nonce is reused"
    );
    assert_eq!(
        nc_of(&seen[0].0),
        None,
        "the first request goes without credentials"
    );
    let ncs: Vec<String> = seen[1..].iter().map(|(r, _)| nc_of(r).unwrap()).collect();
    assert_eq!(ncs, ["00000001", "00000002", "00000003"]);
    assert!(
        seen[1..]
            .iter()
            .all(|(r, _)| nonce_of(r) == nonce_of(&seen[1].0))
    );
    assert_eq!(ds.state.lock().unwrap().issued, 1);
}

#[tokio::test]
async fn md5_starts_over_on_stale_nonce() {
    let app = spawn_app().await;
    let ds = DigestServer::start("MD5", 2).await;
    let (partner, _) = endpoint(
        &app,
        &format!("{}/cb", ds.server.base),
        json!({"type": "digest", "username": USER, "password": PASS}),
        1,
    )
    .await;
    for _ in 0..3 {
        let d = deliver(&app, partner, "delivered").await;
        assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");
    }
    let seen = ds.server.seen();
    let statuses: Vec<u16> = seen.iter().map(|(_, s)| *s).collect();
    // challenge, ok (nc 1), ok (nc 2), stale, ok with the new nonce (nc 1)
    assert_eq!(statuses, [401, 200, 200, 401, 200]);
    assert_eq!(nc_of(&seen[4].0).unwrap(), "00000001");
    assert_ne!(nonce_of(&seen[4].0), nonce_of(&seen[2].0));
    let st = ds.state.lock().unwrap();
    assert_eq!((st.issued, st.stale_sent), (2, 1));
}

#[tokio::test]
async fn wrong_password_is_one_failed_attempt() {
    let app = spawn_app().await;
    let ds = DigestServer::start("SHA-256", 100).await;
    let (partner, _) = endpoint(
        &app,
        &format!("{}/cb", ds.server.base),
        json!({"type": "digest", "username": USER, "password": "wrong"}),
        1,
    )
    .await;
    let d = deliver(&app, partner, "dead").await;
    let a = only_attempt(&d);
    assert_eq!(a["status_code"], 401, "{d:#}");
    assert_eq!(a["response_body"], "wrong digest");
    assert_eq!(
        ds.server.seen().len(),
        2,
        "challenge and one answer, no loop"
    );
}
