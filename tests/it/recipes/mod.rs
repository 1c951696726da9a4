//! What a partner needs to integrate alone: the verification recipes of docs/verify/ run
//! against real callbacks callbackd sent (every language, every scheme), the Portuguese
//! guide kept in step with the English one, and the test-callback sandbox's hints.

mod guides;
mod runners;
mod sandbox;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::support::app::spawn_app;
use crate::support::receiver::{Receiver, Recorded};

const HMAC_SECRET: &str = "whsec-partner-secret";
const JWT_SECRET: &str = "jwt-shared-secret-of-the-partner";

/// A captured request as the recipes read it: the raw HTTP/1.1 message, with its
/// `Content-Length` recomputed so an edited body stays a well-formed message.
fn http_message(r: &Recorded, body: &[u8], authorization: Option<&str>) -> Vec<u8> {
    let mut raw = format!("{} {} HTTP/1.1\r\n", r.method, r.uri).into_bytes();
    for (name, value) in &r.headers {
        let value = match (name.as_str(), authorization) {
            ("content-length", _) => body.len().to_string(),
            ("authorization", Some(a)) => a.to_string(),
            _ => value.to_str().expect("ASCII header").to_string(),
        };
        raw.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(body);
    raw
}

/// The body with one value changed and the same length (a forger's edit).
fn tampered(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(text.contains("\"valor\":100"), "{text}");
    text.replace("\"valor\":100", "\"valor\":900").into_bytes()
}

/// The JWT with its `exp` pushed a day later and the signature kept (a forger's edit).
fn forged_token(authorization: &str) -> String {
    let token = authorization
        .strip_prefix("Bearer ")
        .expect("a bearer token");
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("Bearer {}.{payload}.{}", parts[0], parts[2])
}

struct Case {
    name: &'static str,
    file: PathBuf,
    secret: String,
    now: Option<i64>,
    /// The line the recipe must print.
    expect: &'static str,
}

/// Every way each scheme's recipe is exercised on one captured request. The rejections come
/// first, on a fresh dedup store: a refused request must not mark its id as seen.
fn cases(dir: &Path, scheme: &str, r: &Recorded, secret: &str, wrong: &str) -> Vec<Case> {
    let ts: i64 = r.header("x-callback-timestamp").unwrap().parse().unwrap();
    let write = |name: &str, raw: Vec<u8>| {
        let p = dir.join(format!("{scheme}-{name}.http"));
        std::fs::write(&p, raw).unwrap();
        p
    };
    let real = write("real", http_message(r, &r.body, None));
    let case = |name, file: &PathBuf, secret: &str, now, expect| Case {
        name,
        file: file.clone(),
        secret: secret.to_string(),
        now,
        expect,
    };
    let mut v = vec![];
    if scheme == "jwt" {
        // A JWT proves who sent the request, not what its body says: the recipe checks the
        // token; a forged claim breaks its signature.
        let forged = write(
            "forged",
            http_message(
                r,
                &r.body,
                Some(&forged_token(r.header("authorization").unwrap())),
            ),
        );
        v.push(case(
            "forged token",
            &forged,
            secret,
            None,
            "REJECT: bad signature",
        ));
    } else {
        let edited = write("tampered", http_message(r, &tampered(&r.body), None));
        v.push(case(
            "tampered body",
            &edited,
            secret,
            None,
            "REJECT: bad signature",
        ));
    }
    let unsigned = write("unsigned", http_message(r, &r.body, Some("Bearer x.y")));
    let expect_unsigned = if scheme == "jwt" {
        "REJECT: malformed token"
    } else {
        "REJECT: missing Authorization: HMAC"
    };
    if scheme != "standard-webhooks" {
        v.push(case(
            "no signature",
            &unsigned,
            secret,
            None,
            expect_unsigned,
        ));
    }
    v.push(case(
        "wrong secret",
        &real,
        wrong,
        None,
        "REJECT: bad signature",
    ));
    let stale = if scheme == "jwt" {
        "REJECT: stale timestamp (token expired)"
    } else {
        "REJECT: stale timestamp"
    };
    v.push(case("an hour later", &real, secret, Some(ts + 3600), stale));
    if scheme != "jwt" {
        v.push(case(
            "from the future",
            &real,
            secret,
            Some(ts - 3600),
            "REJECT: stale timestamp",
        ));
    }
    v.push(case("the real one", &real, secret, None, "ACCEPT"));
    v.push(case("its retry", &real, secret, None, "ACCEPT duplicate"));
    v
}

/// Sends real callbacks (an HMAC endpoint signed with Standard Webhooks too, and a JWT
/// endpoint), captures them on a receiver, and runs every recipe in every language on them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recipe_accepts_a_real_callback_and_rejects_forgeries() {
    let work =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("recipes-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work).unwrap();
    // Build first: a missing tool fails here, naming its package.
    let runners = tokio::task::spawn_blocking({
        let w = work.clone();
        move || runners::all(&w)
    })
    .await
    .unwrap();

    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    let signed = app
        .create_endpoint(
            partner,
            json!({"environment": "homologation", "url": format!("{}/cb/hmac?src=callbackd", rx.base),
                   "method": "POST", "auth": {"type": "hmac", "secret": HMAC_SECRET},
                   "signing": "standard_webhooks"}),
        )
        .await;
    let webhook_secret = signed["signing_secret"].as_str().unwrap().to_string();
    app.create_endpoint(
        partner,
        json!({"environment": "homologation", "url": format!("{}/cb/jwt", rx.base), "method": "PUT",
               "auth": {"type": "jwt", "algorithm": "HS256", "key": JWT_SECRET, "ttl_seconds": 300}}),
    )
    .await;
    app.enqueue(json!({"partner_id": partner, "environment": "homologation",
                       "event_type": "proposal.status", "proposal": uuid::Uuid::new_v4(),
                       "status": 9, "identifier": "OP 77/ç",
                       "body": {"DescricaoOcorrencia": "Crédito ou débito efetivado", "valor":100}}))
        .await;
    let got = rx.wait_for(2, Duration::from_secs(10)).await;
    let by_path = |p: &str| got.iter().find(|r| r.uri.starts_with(p)).unwrap().clone();
    let (hmac_req, jwt_req) = (by_path("/cb/hmac"), by_path("/cb/jwt"));
    assert!(
        hmac_req.uri.contains("identifier=OP%2077%2F%C3%A7"),
        "{}",
        hmac_req.uri
    );

    let wrong_webhook = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let schemes = [
        (
            "hmac",
            &hmac_req,
            HMAC_SECRET.to_string(),
            "not-the-secret".to_string(),
        ),
        (
            "standard-webhooks",
            &hmac_req,
            webhook_secret,
            wrong_webhook,
        ),
        (
            "jwt",
            &jwt_req,
            JWT_SECRET.to_string(),
            "not-the-secret".to_string(),
        ),
    ];
    let mut failures = vec![];
    let mut runs = 0;
    for runner in &runners {
        for (scheme, request, secret, wrong) in &schemes {
            let seen = work
                .as_path()
                .join(format!("seen-{}-{scheme}", runner.language));
            for c in cases(work.as_path(), scheme, request, secret, wrong) {
                let (line, ok) = runner.verify(scheme, &c.file, &c.secret, c.now, &seen);
                runs += 1;
                if line != c.expect || ok != c.expect.starts_with("ACCEPT") {
                    failures.push(format!(
                        "{} {scheme} {}: printed {line:?} (exit ok: {ok}), expected {:?}",
                        runner.language, c.name, c.expect
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(runs >= 5 * 3 * 5, "{runs} runs");
    let _ = std::fs::remove_dir_all(&work);
}
