//! A partner's callback receiver: a real HTTP server on 127.0.0.1 that records every request
//! (with its arrival time) and answers from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::wait::wait_until;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub method: Method,
    /// Path and query exactly as received.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One scripted answer: status, extra headers, body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    /// Answers only after `delay` (to trip the endpoint's timeout).
    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
    pub fn with_body(mut self, body: &str) -> Reply {
        self.body = body.to_string();
        self
    }
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    script: VecDeque<Reply>,
    /// Scripts for requests whose path and query contain a given text; checked first.
    rules: Vec<(String, VecDeque<Reply>)>,
    default: Option<Reply>,
}

#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Answers 200 unless scripted otherwise.
    pub async fn start() -> Receiver {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = shared.clone();
                async move {
                    let reply = {
                        let mut s = shared.lock().unwrap();
                        s.requests.push(Recorded {
                            at: Instant::now(),
                            method,
                            uri: uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default(),
                            headers,
                            body,
                        });
                        let target = s.requests.last().map(|r| r.uri.clone()).unwrap_or_default();
                        let ruled = s
                            .rules
                            .iter_mut()
                            .find(|(needle, replies)| {
                                !replies.is_empty() && target.contains(needle.as_str())
                            })
                            .and_then(|(_, replies)| replies.pop_front());
                        ruled
                            .or_else(|| s.script.pop_front())
                            .or_else(|| s.default.clone())
                            .unwrap_or_else(|| Reply::status(200))
                    };
                    tokio::time::sleep(reply.delay).await;
                    respond(reply)
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, state }
    }

    /// The next answers, in order; after them the default.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    /// The next answers to requests whose path and query contain `needle`.
    pub fn script_for(&self, needle: &str, replies: impl IntoIterator<Item = Reply>) {
        self.state
            .lock()
            .unwrap()
            .rules
            .push((needle.to_string(), replies.into_iter().collect()));
    }

    /// The answer once the script is used up.
    pub fn always(&self, reply: Reply) {
        self.state.lock().unwrap().default = Some(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Recorded> {
        wait_until(&format!("{n} requests"), within, async || {
            let got = self.requests();
            if got.len() >= n {
                Ok(got)
            } else {
                Err(format!("{} arrived", got.len()))
            }
        })
        .await
    }
}

fn respond(reply: Reply) -> Response {
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    for (k, v) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::try_from(k).unwrap(),
            axum::http::HeaderValue::try_from(v).unwrap(),
        );
    }
    response
}
