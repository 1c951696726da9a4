//! Receivers that misbehave: each is one failed attempt with a precise error and its
//! `error_kind` in the attempt log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;

/// Registers a POST endpoint at `url` with one attempt only, enqueues one notification and
/// returns its delivery once dead, with the only attempt.
async fn one_attempt(app: &TestApp, url: &str, timeout_ms: u64) -> (Value, Value) {
    let partner = app.create_partner("Misbehaving").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": url, "method": "POST",
               "max_attempts": 1, "timeout_ms": timeout_ms}),
    )
    .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status",
                        "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 9}))
        .await;
    let id = n["deliveries"][0]["id"].as_str().unwrap().to_string();
    let d = app
        .wait_for_state(&id, "dead", Duration::from_secs(30))
        .await;
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{d:#}");
    let attempt = log[0].clone();
    (d, attempt)
}

fn assert_kind(attempt: &Value, kind: &str, prefix: &str) {
    assert_eq!(attempt["error_kind"], kind, "{attempt:#}");
    let error = attempt["error"].as_str().unwrap();
    assert!(error.starts_with(prefix), "{error}");
}

/// A raw TCP server: `serve` handles each accepted connection.
pub(crate) async fn raw_server<F, Fut>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    base
}

pub(crate) async fn read_request_head(socket: &mut tokio::net::TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut seen = Vec::new();
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn a_receiver_that_accepts_and_never_answers_is_a_timeout() {
    let app = spawn_app().await;
    let base = raw_server(|mut socket| async move {
        read_request_head(&mut socket).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    })
    .await;
    let (d, attempt) = one_attempt(&app, &format!("{base}/cb"), 500).await;
    assert_kind(
        &attempt,
        "timeout",
        "timeout: no complete answer within 500 ms",
    );
    // Cut by the 500 ms timeout, far before the partner's 60 s (room for a loaded machine).
    assert!(attempt["duration_ms"].as_i64().unwrap() < 10_000, "{d:#}");
    assert!(attempt["status_code"].is_null());
}

#[tokio::test]
async fn a_receiver_that_resets_the_connection_is_a_connect_error() {
    let app = spawn_app().await;
    let base = raw_server(|socket| async move {
        // Close with the request unread: the kernel answers with a reset.
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(socket);
    })
    .await;
    let (_, attempt) = one_attempt(&app, &format!("{base}/cb"), 2000).await;
    assert_kind(&attempt, "connect", "connect: ");
}

#[tokio::test]
async fn a_receiver_that_answers_byte_by_byte_is_cut_at_the_timeout() {
    let app = spawn_app().await;
    let base = raw_server(|mut socket| async move {
        read_request_head(&mut socket).await;
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        for b in answer {
            if socket.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    })
    .await;
    let (_, attempt) = one_attempt(&app, &format!("{base}/cb"), 1000).await;
    assert_kind(&attempt, "timeout", "timeout: ");
}

#[tokio::test]
async fn a_huge_answer_keeps_4_kib_and_is_not_read_to_the_end() {
    let app = spawn_app().await;
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    // Set when a write fails: callbackd closed the connection.
    let closed = Arc::new(AtomicBool::new(false));
    let c = closed.clone();
    const HUGE: usize = 512 * 1024 * 1024;
    let base = raw_server(move |mut socket| {
        let w = w.clone();
        let c = c.clone();
        async move {
            read_request_head(&mut socket).await;
            let head =
                format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {HUGE}\r\n\r\n");
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 * 1024];
            while w.load(Ordering::SeqCst) < HUGE {
                match socket.write_all(&chunk).await {
                    Ok(()) => w.fetch_add(chunk.len(), Ordering::SeqCst),
                    Err(_) => return c.store(true, Ordering::SeqCst),
                };
            }
        }
    })
    .await;
    let (_, attempt) = one_attempt(&app, &format!("{base}/cb"), 5000).await;
    assert_kind(&attempt, "http_5xx", "http 500");
    assert_eq!(attempt["status_code"], 500);
    let body = attempt["response_body"].as_str().unwrap();
    assert_eq!(body.len(), 4096, "only the first 4 KiB are kept");
    assert!(body.bytes().all(|b| b == b'x'));
    wait_until(
        "callbackd to close the connection",
        Duration::from_secs(20),
        async || closed.load(Ordering::SeqCst),
    )
    .await;
    let sent = written.load(Ordering::SeqCst);
    assert!(
        sent < 64 * 1024 * 1024,
        "callbackd stopped reading (the sender got {sent} bytes out of {HUGE} in before the close)"
    );
}

#[tokio::test]
async fn a_redirect_to_an_internal_address_is_not_followed() {
    let app = spawn_app().await;
    let internal = Receiver::start().await;
    let rx = Receiver::start().await;
    let target = format!("{}/latest/meta-data/", internal.base);
    rx.always(Reply::status(302).with_header("location", &target));
    let (_, attempt) = one_attempt(&app, &format!("{}/cb", rx.base), 2000).await;
    assert_kind(&attempt, "redirect", &format!("redirect: 302 to {target}"));
    assert_eq!(attempt["status_code"], 302);
    assert!(
        internal.requests().is_empty(),
        "the redirect was not followed"
    );
    // And a 3xx to the metadata address, same thing.
    let rx2 = Receiver::start().await;
    rx2.always(Reply::status(307).with_header("location", "http://169.254.169.254/latest/"));
    let (_, attempt) = one_attempt(&app, &format!("{}/cb", rx2.base), 2000).await;
    assert_kind(
        &attempt,
        "redirect",
        "redirect: 307 to http://169.254.169.254/latest/",
    );
}

#[tokio::test]
async fn an_invalid_tls_certificate_is_a_tls_error() {
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::{self, ServerConfig};

    let app = spawn_app().await;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/cb", listener.local_addr().unwrap());
    let handshakes_ok = Arc::new(AtomicUsize::new(0));
    let ok = handshakes_ok.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let ok = ok.clone();
            tokio::spawn(async move {
                if acceptor.accept(socket).await.is_ok() {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let (_, attempt) = one_attempt(&app, &url, 2000).await;
    assert_kind(&attempt, "tls", "tls: ");
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{attempt:#}"
    );
    assert_eq!(handshakes_ok.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_host_that_does_not_resolve_is_a_dns_error() {
    let app = spawn_app().await;
    let (_, attempt) = one_attempt(&app, "http://no-such-partner.invalid/cb", 2000).await;
    assert_kind(&attempt, "dns", "dns: ");
}

#[tokio::test]
async fn status_codes_have_their_kinds() {
    let app = spawn_app().await;
    for (status, kind) in [
        (404, "http_4xx"),
        (413, "body_too_large"),
        (503, "http_5xx"),
    ] {
        let rx = Receiver::start().await;
        rx.always(Reply::status(status));
        let (_, attempt) = one_attempt(&app, &format!("{}/cb", rx.base), 2000).await;
        assert_eq!(attempt["error_kind"], kind, "{attempt:#}");
    }
    // 401 with an auth scheme: the partner refused our credentials.
    let rx = Receiver::start().await;
    rx.always(Reply::status(401));
    let partner = app.create_partner("Auth").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST",
               "max_attempts": 1, "auth": {"type": "bearer", "token": "t0k"}}),
    )
    .await;
    let n = app
        .enqueue(json!({"partner_id": partner, "environment": "production",
                        "event_type": "proposal.status",
                        "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 1}))
        .await;
    let d = app
        .wait_for_state(
            n["deliveries"][0]["id"].as_str().unwrap(),
            "dead",
            Duration::from_secs(20),
        )
        .await;
    assert_kind(
        &d["attempt_log"][0],
        "auth_rejected",
        "auth rejected: http 401",
    );
}
