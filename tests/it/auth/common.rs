//! A receiver whose every answer comes from a function of the request, and the
//! register-enqueue-wait flow the scheme tests share.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::TestApp;
use crate::support::receiver::{Recorded, Reply};

pub const PROPOSAL: &str = "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d";

type Handler = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// An HTTP server on 127.0.0.1 that answers each request with `handler(request)` and
/// keeps every request with the status it got.
#[derive(Clone)]
pub struct FnServer {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    log: Arc<Mutex<Vec<(Recorded, u16)>>>,
}

impl FnServer {
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> FnServer {
        let handler: Arc<Handler> = Arc::new(handler);
        let log: Arc<Mutex<Vec<(Recorded, u16)>>> = Arc::default();
        let shared = log.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let handler = handler.clone();
                let shared = shared.clone();
                async move {
                    let rec = Recorded {
                        at: std::time::Instant::now(),
                        method,
                        uri: uri
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        headers,
                        body,
                    };
                    let reply = handler(&rec);
                    shared.lock().unwrap().push((rec, reply.status));
                    tokio::time::sleep(reply.delay).await;
                    respond(reply)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FnServer { base, log }
    }

    /// Every request so far with the status it was answered.
    pub fn seen(&self) -> Vec<(Recorded, u16)> {
        self.log.lock().unwrap().clone()
    }

    pub fn seen_on(&self, path: &str) -> Vec<(Recorded, u16)> {
        self.seen()
            .into_iter()
            .filter(|(r, _)| r.uri.split('?').next() == Some(path))
            .collect()
    }
}

pub fn respond(reply: Reply) -> Response {
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        response.headers_mut().append(
            axum::http::HeaderName::try_from(k).unwrap(),
            axum::http::HeaderValue::try_from(v).unwrap(),
        );
    }
    response
}

/// 200 when the check passes, else 401 with the reason as body (as a partner would).
pub fn verdict(check: Result<(), String>) -> Reply {
    match check {
        Ok(()) => Reply::status(200),
        Err(why) => Reply::status(401).with_body(&why),
    }
}

/// A POST endpoint at `url` with `auth` for a new partner; returns (partner, endpoint id).
pub async fn endpoint(app: &TestApp, url: &str, auth: Value, max_attempts: u32) -> (Uuid, String) {
    let partner = app.create_partner("Acme").await;
    let e = app
        .create_endpoint(
            partner,
            json!({"environment": "homologation", "url": url, "method": "POST",
                   "auth": auth, "max_attempts": max_attempts}),
        )
        .await;
    (partner, e["id"].as_str().unwrap().to_string())
}

/// Enqueues a Paid proposal status (query and body) for `partner`; the delivery id.
pub async fn notify(app: &TestApp, partner: Uuid) -> String {
    let r = app
        .enqueue(json!({"partner_id": partner, "environment": "homologation",
                        "event_type": "proposal.status", "proposal": PROPOSAL, "status": 9,
                        "identifier": "OP 1/2",
                        "body": {"DescricaoOcorrencia": "Crédito ou débito efetivado"}}))
        .await;
    let deliveries = r["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 1, "{r}");
    deliveries[0]["id"].as_str().unwrap().to_string()
}

/// Enqueues one notification and waits until its delivery is `state`.
pub async fn deliver(app: &TestApp, partner: Uuid, state: &str) -> Value {
    let id = notify(app, partner).await;
    app.wait_for_state(&id, state, Duration::from_secs(15))
        .await
}

/// The one attempt of a delivery that took exactly one.
pub fn only_attempt(d: &Value) -> &Value {
    let log = d["attempt_log"].as_array().expect("attempt_log");
    assert_eq!(log.len(), 1, "one attempt: {d:#}");
    assert_eq!(d["attempts"], 1, "{d:#}");
    &log[0]
}

pub fn header<'a>(r: &'a Recorded, name: &str) -> Result<&'a str, String> {
    r.header(name).ok_or_else(|| format!("no {name}"))
}
