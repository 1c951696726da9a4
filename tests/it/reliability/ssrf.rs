//! SSRF: private targets refused at registration, and again at send time (DNS may change
//! between the two, or the endpoint was registered while private targets were allowed).

use std::time::Duration;

use callbackd::startup::Role;
use serde_json::json;

use crate::support::app::{TestDb, spawn_app_with, spawn_on};
use crate::support::receiver::Receiver;

#[tokio::test]
async fn private_targets_are_refused_at_registration() {
    let app = spawn_app_with(|s| s.allow_private_targets = false).await;
    let partner = app.create_partner("Acme").await;
    for url in [
        "http://127.0.0.1/cb",
        "http://localhost:8080/cb",
        "http://10.0.0.1/cb",
        "http://172.16.5.4/cb",
        "http://192.168.0.10/cb",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/cb",
        "http://0.0.0.0/cb",
        "http://[::1]/cb",
        "http://[fd00::1]/cb",
        "http://[fe80::1]/cb",
        "http://[::ffff:169.254.169.254]/cb",
        "http://[64:ff9b::a9fe:a9fe]/cb",
    ] {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "production", "url": url, "method": "POST"}),
            )
            .await;
        assert_eq!(r.status(), 422, "{url}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["field"], "url", "{url}: {v}");
    }
    for url in [
        "ftp://partner.example/cb",
        "file:///etc/passwd",
        "gopher://x.example/",
    ] {
        let r = app
            .post(
                &format!("/v1/partners/{partner}/endpoints"),
                &json!({"environment": "production", "url": url, "method": "POST"}),
            )
            .await;
        assert_eq!(r.status(), 422, "{url}");
    }
    assert_eq!(app.row_counts().await[1], ("endpoints".to_string(), 0));
}

/// Every spelling of a private address, and every IPv6 form that carries one, is a 422 on
/// `url` (or `auth.token_url`) that names the form, at creation and on a PATCH, and writes
/// nothing. The same forms around a public IPv4 are accepted, so the rule is the address,
/// not the spelling.
#[tokio::test]
async fn every_address_form_of_a_private_target_is_refused_at_registration() {
    let app = spawn_app_with(|s| s.allow_private_targets = false).await;
    let partner = app.create_partner("Acme").await;
    let path = format!("/v1/partners/{partner}/endpoints");
    // (URL, what the error must name)
    let refused = [
        ("http://2130706433/cb", "127.0.0.1 (loopback)"),
        ("http://0177.0.0.1/cb", "127.0.0.1 (loopback)"),
        ("http://0x7f.1/cb", "127.0.0.1 (loopback)"),
        ("http://127.1/cb", "127.0.0.1 (loopback)"),
        ("http://0xa9fea9fe/cb", "169.254.169.254 (link-local"),
        ("http://0/cb", "0.0.0.0 (unspecified)"),
        ("http://[::]/cb", ":: (unspecified)"),
        (
            "http://[::ffff:7f00:1]/cb",
            "IPv4-mapped form of 127.0.0.1, loopback",
        ),
        (
            "http://[::10.0.0.1]/cb",
            "IPv4-compatible form of 10.0.0.1, private",
        ),
        (
            "http://[2002:7f00:1::1]/cb",
            "6to4 form of 127.0.0.1, loopback",
        ),
        (
            "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
            "6to4 form of 169.254.169.254, link-local",
        ),
        (
            "http://[2001:0:a00:1::f7f7:f7f7]/cb",
            "Teredo server form of 10.0.0.1, private",
        ),
        (
            "http://[2001:0:808:808::80ff:fffe]/cb",
            "Teredo client form of 127.0.0.1, loopback",
        ),
        (
            "http://[64:ff9b::c0a8:1]/cb",
            "NAT64 form of 192.168.0.1, private",
        ),
        ("http://[64:ff9b:1::808:808]/cb", "local-use NAT64"),
        ("http://[fec0::1]/cb", "site-local"),
        ("http://[ff02::1]/cb", "multicast"),
        ("http://[100::1]/cb", "discard-only"),
        ("http://[2001:db8::1]/cb", "documentation"),
        ("http://198.18.0.1/cb", "benchmarking"),
        ("http://192.0.0.170/cb", "IETF protocol"),
        ("http://240.0.0.1/cb", "reserved"),
        ("http://255.255.255.255/cb", "broadcast"),
    ];
    for (url, named) in refused {
        let r = app
            .post(
                &path,
                &json!({"environment": "production", "url": url, "method": "POST"}),
            )
            .await;
        assert_eq!(r.status(), 422, "{url}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["field"], "url", "{url}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{url}: {message}");
        assert!(
            message.ends_with("callbacks go to public addresses only"),
            "{message}"
        );
    }
    // The OAuth2 token URL is called by callbackd too.
    let r = app
        .post(
            &path,
            &json!({"environment": "production", "url": "https://8.8.8.8/cb", "method": "POST",
                    "auth": {"type": "oauth2", "token_url": "http://[2002:7f00:1::1]/token",
                             "client_id": "c", "client_secret": "s"}}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "auth.token_url", "{v}");
    assert_eq!(app.row_counts().await[1], ("endpoints".to_string(), 0));

    // The same forms around a public address (8.8.8.8) are accepted.
    let mut created = Vec::new();
    for url in [
        "http://134744072/cb",
        "http://[::ffff:808:808]/cb",
        "http://[2002:808:808::1]/cb",
        "http://[2001:0:808:808::f7f7:f7f7]/cb",
        "http://[64:ff9b::808:808]/cb",
        "http://[2001:4860:4860::8888]/cb",
    ] {
        let e = app
            .create_endpoint(
                partner,
                json!({"environment": "production", "url": url, "method": "POST"}),
            )
            .await;
        created.push(e);
    }
    assert_eq!(created[0]["url"], "http://8.8.8.8/cb");

    // A PATCH to a refused form is refused too, and leaves the endpoint as it was.
    let id = created[0]["id"].as_str().unwrap();
    for (url, _) in refused {
        let r = app
            .patch(&format!("/v1/endpoints/{id}"), &json!({"url": url}))
            .await;
        assert_eq!(r.status(), 422, "{url}");
    }
    let after: serde_json::Value = app
        .get(&format!("/v1/endpoints/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(after["url"], "http://8.8.8.8/cb");
    assert_eq!(app.row_counts().await[1], ("endpoints".to_string(), 6));
}

/// An endpoint registered while private targets were allowed (or whose name resolved to a
/// public address then) is refused by a worker that does not allow them: the check happens
/// again at send time, on the addresses the connection would use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_targets_are_refused_again_at_send_time() {
    let db = TestDb::create().await;
    let api = spawn_on(db.share(), Role::Api, |s| s.allow_private_targets = true).await;
    let _worker = spawn_on(db, Role::Worker, |s| s.allow_private_targets = false).await;
    let rx = Receiver::start().await;
    let port = rx.base.rsplit(':').next().unwrap().to_string();
    let partner = api.create_partner("Acme").await;
    // An IP literal, a name (localhost) that resolves to loopback, and other spellings of
    // the receiver's address: numeric IPv4 forms (the mapped one would reach it through a
    // dual-stack socket), and IPv6 forms carrying 127.0.0.1.
    let urls = [
        format!("{}/cb", rx.base),
        format!("http://localhost:{port}/cb"),
        format!("http://2130706433:{port}/cb"),
        format!("http://0x7f.1:{port}/cb"),
        format!("http://[::ffff:127.0.0.1]:{port}/cb"),
        format!("http://[::127.0.0.1]:{port}/cb"),
        format!("http://[2002:7f00:1::1]:{port}/cb"),
        format!("http://[2001:0:808:808::80ff:fffe]:{port}/cb"),
        format!("http://[64:ff9b::7f00:1]:{port}/cb"),
        format!("http://[64:ff9b:1::7f00:1]:{port}/cb"),
    ];
    for url in &urls {
        api.create_endpoint(
            partner,
            json!({"environment": "production", "url": url, "method": "POST",
                   "max_attempts": 2}),
        )
        .await;
    }
    let n = api
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status",
                        "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 3}))
        .await;
    let deliveries = n["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), urls.len());
    for d in deliveries {
        let d = api
            .wait_for_state(d["id"].as_str().unwrap(), "dead", Duration::from_secs(20))
            .await;
        for attempt in d["attempt_log"].as_array().unwrap() {
            assert_eq!(attempt["error_kind"], "forbidden_target", "{attempt:#}");
            assert!(
                attempt["error"]
                    .as_str()
                    .unwrap()
                    .starts_with("forbidden target: "),
                "{attempt:#}"
            );
        }
    }
    assert!(
        rx.requests().is_empty(),
        "nothing reached the private address"
    );
}

#[tokio::test]
async fn production_endpoints_can_be_required_to_use_https() {
    let app = spawn_app_with(|s| s.production_requires_https = true).await;
    let partner = app.create_partner("Acme").await;
    let path = format!("/v1/partners/{partner}/endpoints");
    let r = app
        .post(
            &path,
            &json!({"environment": "production", "url": "http://partner.example/cb", "method": "POST"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["field"], "url");
    assert!(v["error"]["message"].as_str().unwrap().contains("https"));
    let hml = app
        .create_endpoint(
            partner,
            json!({"environment": "homologation", "url": "http://partner.example/cb", "method": "POST"}),
        )
        .await;
    // Moving the http endpoint to production is refused too.
    let r = app
        .patch(
            &format!("/v1/endpoints/{}", hml["id"].as_str().unwrap()),
            &json!({"environment": "production"}),
        )
        .await;
    assert_eq!(r.status(), 422);
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": "https://partner.example/cb", "method": "POST"}),
    )
    .await;
    // Off by default.
    let app = spawn_app_with(|_| {}).await;
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": "http://partner.example/cb", "method": "POST"}),
    )
    .await;
}
