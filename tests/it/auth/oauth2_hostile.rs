//! OAuth2 against a hostile token server: a raw TCP server on 127.0.0.1 that answers
//! exactly the bytes given (numbers no machine type holds, binary, 10 MB, an answer that
//! never ends, a dropped connection). Each delivery must end with a recorded attempt, and
//! the worker must go on delivering the others.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::common::{FnServer, PROPOSAL, endpoint, only_attempt};
use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::Reply;

const WAIT: Duration = Duration::from_secs(20);
const TEN_MB: usize = 10 * 1024 * 1024;

/// What the token server does once it has read a request.
#[derive(Clone)]
enum Answer {
    /// `200` with these bytes as the body, framed by `Content-Length`.
    Body(Vec<u8>),
    /// `200` with these bytes and no `Content-Length`: the body ends with the connection.
    Unframed(Vec<u8>),
    /// Headers that promise 1000 bytes, the first few, then silence on an open socket.
    NeverEnds,
    /// Closes the connection without a word.
    Drop,
}

fn json_body(expires_in: &str) -> Answer {
    Answer::Body(
        format!(
            r#"{{"access_token": "tok-ok", "token_type": "Bearer", "expires_in": {expires_in}}}"#
        )
        .into_bytes(),
    )
}

/// A token server on 127.0.0.1 that counts the requests it read.
struct TokenServer {
    url: String,
    requests: Arc<AtomicU32>,
}

impl TokenServer {
    async fn start(answer: Answer) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicU32::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (answer, counter) = (answer.clone(), counter.clone());
                tokio::spawn(async move {
                    if read_request(&mut stream).await.is_some() {
                        counter.fetch_add(1, Ordering::SeqCst);
                        // Write errors are expected: the client may hang up on a huge body.
                        let _ = answer_with(stream, answer).await;
                    }
                });
            }
        });
        TokenServer { url, requests }
    }

    fn requests(&self) -> u32 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and `Content-Length` body); `None` if the client went away.
async fn read_request(stream: &mut TcpStream) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return Some(());
        }
    }
}

async fn answer_with(mut stream: TcpStream, answer: Answer) -> std::io::Result<()> {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n";
    match answer {
        Answer::Body(body) => {
            let head = format!("{head}content-length: {}\r\n\r\n", body.len());
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
        }
        Answer::Unframed(body) => {
            stream.write_all(format!("{head}\r\n").as_bytes()).await?;
            stream.write_all(&body).await?;
        }
        Answer::NeverEnds => {
            let head = format!("{head}content-length: 1000\r\n\r\n{{\"access_token\": \"");
            stream.write_all(head.as_bytes()).await?;
            stream.flush().await?;
            tokio::time::sleep(Duration::from_secs(120)).await;
        }
        Answer::Drop => {}
    }
    stream.shutdown().await
}

/// The partner's callback receiver: 200 for the token the token servers hand out.
async fn receiver() -> FnServer {
    FnServer::start(|r| match r.header("authorization") {
        Some("Bearer tok-ok") => Reply::status(200),
        _ => Reply::status(401),
    })
    .await
}

fn auth(token_url: &str) -> Value {
    json!({"type": "oauth2", "token_url": token_url, "client_id": "acme",
           "client_secret": "oauth-secret"})
}

/// Enqueues one proposal status for `partner` (a distinct `status` per call, so that no
/// ordering holds one behind another); the delivery id.
async fn notify(app: &TestApp, partner: uuid::Uuid, status: u32) -> String {
    let r = app
        .enqueue(json!({"partner_id": partner, "environment": "homologation",
                        "event_type": "proposal.status", "proposal": PROPOSAL,
                        "status": status}))
        .await;
    r["deliveries"][0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn token_lifetimes_no_machine_type_holds_are_clamped_and_the_token_works() {
    let app = spawn_app().await;
    let rx = receiver().await;
    // (expires_in as the server writes it, token requests for two deliveries in a row):
    // a lifetime beyond every range is kept (a day at most), none or zero is not kept.
    let cases = [
        ("1e19", 1),
        ("1e400", 1),
        ("18446744073709551616", 1),
        ("\"abc\"", 1),
        ("-5", 2),
        ("0", 2),
    ];
    let runs = cases.iter().enumerate().map(|(i, &(expires_in, want))| {
        let (app, rx) = (&app, &rx);
        async move {
            let server = TokenServer::start(json_body(expires_in)).await;
            let url = format!("{}/cb/{i}", rx.base);
            let (partner, _) = endpoint(app, &url, auth(&server.url), 1).await;
            for status in [3, 9] {
                let id = notify(app, partner, status).await;
                let d = app.wait_for_state(&id, "delivered", WAIT).await;
                assert_eq!(only_attempt(&d)["status_code"], 200, "{expires_in}: {d:#}");
            }
            assert_eq!(
                server.requests(),
                want,
                "token requests, expires_in {expires_in}"
            );
            let cb = rx.seen_on(&format!("/cb/{i}"));
            assert_eq!(cb.len(), 2, "{expires_in}");
            assert!(cb.iter().all(|(_, s)| *s == 200), "{expires_in}");
        }
    });
    futures::future::join_all(runs).await;
}

#[tokio::test]
async fn hostile_token_answers_end_in_one_failed_auth_attempt_and_the_worker_goes_on() {
    let app = spawn_app().await; // endpoint timeout 2000 ms
    let rx = receiver().await;
    let huge_json = format!(
        r#"{{"access_token": "tok-ok", "pad": "{}"}}"#,
        "a".repeat(TEN_MB)
    );
    let cases: Vec<(&str, Answer, &str)> = vec![
        (
            "10 MB with Content-Length",
            Answer::Body(huge_json.clone().into_bytes()),
            "auth: oauth2 token endpoint: answer larger than 64 KiB",
        ),
        (
            "10 MB without Content-Length",
            Answer::Unframed(huge_json.into_bytes()),
            "auth: oauth2 token endpoint: answer larger than 64 KiB",
        ),
        (
            "NUL and invalid UTF-8",
            Answer::Body(b"{\"access_token\": \"tok\0\xff\xfe\", \"expires_in\": 3600}".to_vec()),
            "auth: oauth2 token endpoint: answered 200 without a JSON object",
        ),
        (
            "binary garbage",
            Answer::Unframed(b"\0\x01\x02\xff\xfe\xfd".to_vec()),
            "auth: oauth2 token endpoint: answered 200 without a JSON object",
        ),
        (
            "an escaped NUL in the token",
            Answer::Body(br#"{"access_token": "tok\u0000ok"}"#.to_vec()),
            "auth: oauth2: the access_token is not a valid header value",
        ),
        (
            "an answer that never ends",
            Answer::NeverEnds,
            "auth: oauth2 token endpoint: timeout: no token within",
        ),
        (
            "a dropped connection",
            Answer::Drop,
            "auth: oauth2 token endpoint: ",
        ),
    ];
    let mut pending = Vec::new();
    for (i, (what, answer, _)) in cases.iter().enumerate() {
        let server = TokenServer::start(answer.clone()).await;
        let url = format!("{}/cb/{i}", rx.base);
        let (partner, _) = endpoint(&app, &url, auth(&server.url), 1).await;
        pending.push((what, notify(&app, partner, 3).await, server));
    }
    // A healthy partner enqueued after all of them is delivered.
    let healthy = TokenServer::start(json_body("3600")).await;
    let url = format!("{}/cb/healthy", rx.base);
    let (partner, _) = endpoint(&app, &url, auth(&healthy.url), 1).await;
    let id = notify(&app, partner, 3).await;
    let d = app.wait_for_state(&id, "delivered", WAIT).await;
    assert_eq!(only_attempt(&d)["status_code"], 200, "{d:#}");

    for ((what, id, server), (_, _, want)) in pending.iter().zip(&cases) {
        let d = app.wait_for_state(id, "dead", WAIT).await;
        let attempt = only_attempt(&d);
        let error = attempt["error"].as_str().unwrap();
        assert!(error.starts_with(want), "{what}: {error}");
        assert_eq!(attempt["error_kind"], "auth", "{what}: {d:#}");
        assert!(
            attempt["status_code"].is_null(),
            "{what}: no callback: {d:#}"
        );
        assert!(!d.to_string().contains("oauth-secret"), "{what}");
        assert_eq!(server.requests(), 1, "{what}");
    }
    // The token request that never ended gave up inside the attempt's 2 s, not at its end.
    let never = &app.delivery(&pending[5].1).await["attempt_log"][0];
    let ms = never["duration_ms"].as_i64().unwrap();
    assert!((1500..2000).contains(&ms), "{ms} ms: {never:#}");
    // No callback went out with a broken token.
    let paths: Vec<String> = rx
        .seen()
        .iter()
        .map(|(r, _)| r.uri.split('?').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(paths, ["/cb/healthy"]);
}
