//! The load of the restart test: the platform's calls to the API (and what they were
//! acknowledged with), the receiver's account of what arrived, and the pace of delivery.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::support::process::{Proc, TOKEN};
use crate::support::receiver::Receiver;
use crate::support::wait::wait_until;

/// What a caller may wait for an answer while the database is down.
pub const ANSWER_BOUND: Duration = Duration::from_secs(5);
/// Notifications per batch request of a phase.
const BATCH: usize = 1000;

/// The API of the `serve` process, as a platform would call it.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
    pub partner: Uuid,
}

/// One enqueue's answer and how long it took.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub took: Duration,
}

impl Api {
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        let started = Instant::now();
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: no answer ({e})"));
        let status = r.status().as_u16();
        let body = r.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            body,
            took: started.elapsed(),
        }
    }

    /// Notification `seq`: its `identifier` is `seq-<seq>`, so the receiver can tell which
    /// one a callback is.
    pub fn notification(&self, seq: usize) -> Value {
        json!({"partner_id": self.partner, "environment": "production",
               "event_type": "proposal.status", "proposal": Uuid::new_v4(),
               "status": 9, "identifier": format!("seq-{seq}"), "body": {"seq": seq}})
    }

    pub async fn enqueue(&self, seq: usize) -> Answer {
        self.post("/v1/notifications", &self.notification(seq))
            .await
    }

    pub async fn readyz(&self) -> (u16, Duration) {
        let started = Instant::now();
        let status = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .expect("/readyz answers")
            .status()
            .as_u16();
        (status, started.elapsed())
    }
}

/// Delivery id per acknowledged (202) notification `seq`.
pub type Ledger = Arc<Mutex<HashMap<usize, String>>>;

fn acknowledge(ledger: &Ledger, seq: usize, a: &Answer) {
    let id = a.body["deliveries"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("202 without a delivery id: {}", a.body));
    ledger.lock().unwrap().insert(seq, id.to_string());
}

/// A 503 a caller can act on: the API's JSON error shape, in time.
pub fn assert_unavailable(a: &Answer) {
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(
        a.body["error"]["code"], "database_unavailable",
        "{}",
        a.body
    );
    assert!(a.body["error"]["message"].is_string(), "{}", a.body);
    assert!(a.took < ANSWER_BOUND, "the 503 took {:?}", a.took);
}

/// Enqueues `seqs` through the batch API, all at once (so that the time to deliver them is
/// the workers' rate, not the enqueue's); every one must be acknowledged.
async fn enqueue_phase(api: &Api, ledger: &Ledger, seqs: std::ops::Range<usize>) {
    let seqs: Vec<usize> = seqs.collect();
    let batches = seqs.chunks(BATCH).map(|chunk| async move {
        let items: Vec<Value> = chunk.iter().map(|s| api.notification(*s)).collect();
        (
            chunk,
            api.post("/v1/notifications/batch", &json!(items)).await,
        )
    });
    for (chunk, a) in futures::future::join_all(batches).await {
        assert_eq!(a.status, 202, "{}", a.body);
        for (seq, item) in chunk.iter().zip(a.body["items"].as_array().unwrap()) {
            acknowledge(
                ledger,
                *seq,
                &Answer {
                    status: 202,
                    body: item.clone(),
                    took: a.took,
                },
            );
        }
    }
}

/// Enqueues without pause from `first` on until `stop`: 202s go to the ledger, and while the
/// database is down every answer must be a timely 503. Returns (acknowledged, refused).
pub async fn enqueue_stream(
    api: Api,
    ledger: Ledger,
    first: usize,
    stop: Arc<AtomicBool>,
) -> (usize, usize) {
    let next = Arc::new(AtomicUsize::new(first));
    let tasks = (0..8).map(|_| {
        let (api, ledger, next, stop) = (api.clone(), ledger.clone(), next.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut acked, mut refused) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                let seq = next.fetch_add(1, Ordering::SeqCst);
                let a = api.enqueue(seq).await;
                if a.status == 202 {
                    acknowledge(&ledger, seq, &a);
                    acked += 1;
                } else {
                    assert_unavailable(&a);
                    refused += 1;
                }
            }
            (acked, refused)
        })
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("enqueuer task"))
        .fold((0, 0), |(a, r), (a2, r2)| (a + a2, r + r2))
}

/// Which notification a callback is for (`identifier=seq-<n>` in its query).
fn seq_of(uri: &str) -> usize {
    uri.split(['?', '&'])
        .find_map(|p| p.strip_prefix("identifier=seq-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("callback without a seq: {uri}"))
}

/// The callback ids the receiver got, per notification `seq`, and when each seq first came.
pub fn received(rx: &Receiver) -> (HashMap<usize, HashSet<String>>, HashMap<usize, Instant>) {
    let mut ids: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut first: HashMap<usize, Instant> = HashMap::new();
    for r in rx.requests() {
        let seq = seq_of(&r.uri);
        ids.entry(seq)
            .or_default()
            .insert(r.header("x-callback-id").unwrap().to_string());
        first.entry(seq).or_insert(r.at);
    }
    (ids, first)
}

/// Polls `lacking` until it finds nothing; after `within`, fails naming a few of what it
/// still finds.
async fn wait_until_none<T, F, Fut>(what: &str, within: Duration, mut lacking: F)
where
    T: std::fmt::Debug,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    wait_until(what, within, async || {
        let left = lacking().await;
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} left, e.g. {:?}",
                left.len(),
                &left[..left.len().min(10)]
            ))
        }
    })
    .await
}

/// Waits until `more` enqueues of `stream` were acknowledged after this call: the load is
/// running (for a fault to hit it, or to show it runs again after one).
pub async fn wait_acknowledged(ledger: &Ledger, more: usize, stream: &JoinHandle<(usize, usize)>) {
    let from = ledger.lock().unwrap().len();
    wait_until(
        &format!("{more} more acknowledged enqueues"),
        Duration::from_secs(60),
        async || {
            assert!(!stream.is_finished(), "the stream of enqueues stopped");
            ledger.lock().unwrap().len() >= from + more
        },
    )
    .await
}

/// Waits until every acknowledged notification reached the receiver.
pub async fn wait_all_received(rx: &Receiver, ledger: &Ledger, within: Duration) {
    let missing = || async {
        let (got, _) = received(rx);
        let acked = ledger.lock().unwrap().clone();
        acked
            .into_keys()
            .filter(|seq| !got.contains_key(seq))
            .collect::<Vec<usize>>()
    };
    wait_until_none(
        "acknowledged notifications never reached the receiver (seq)",
        within,
        missing,
    )
    .await;
}

/// Waits until the database says `delivered` for every acknowledged notification: sent and
/// recorded, so nothing is sent again later.
pub async fn wait_all_marked_delivered(url: &str, ledger: &Ledger, within: Duration) {
    let pool = sqlx::PgPool::connect(url)
        .await
        .expect("the restarted cluster");
    let ids: Vec<Uuid> = ledger
        .lock()
        .unwrap()
        .values()
        .map(|id| id.parse().unwrap())
        .collect();
    let unmarked = || async {
        sqlx::query_as::<_, (Uuid, String)>(
            "SELECT id, state FROM deliveries WHERE id = ANY($1) AND state <> 'delivered'",
        )
        .bind(&ids)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    wait_until_none(
        "acknowledged deliveries not marked delivered",
        within,
        unmarked,
    )
    .await;
}

/// How a phase went: from its start to the first callback (the pickup), and deliveries per
/// second from the first callback to the last.
pub struct Pace {
    pub pickup: Duration,
    pub per_s: f64,
}

fn pace(first: &HashMap<usize, Instant>, seqs: std::ops::Range<usize>, started: Instant) -> Pace {
    let n = seqs.len();
    let arrivals: Vec<Instant> = seqs.map(|s| first[&s]).collect();
    let (earliest, last) = (
        arrivals.iter().min().unwrap(),
        arrivals.iter().max().unwrap(),
    );
    Pace {
        pickup: earliest.saturating_duration_since(started),
        per_s: n as f64 / last.duration_since(*earliest).as_secs_f64().max(0.001),
    }
}

/// One phase: enqueues `seqs` at once and waits until each reached the receiver.
pub async fn run_phase(
    api: &Api,
    ledger: &Ledger,
    rx: &Receiver,
    seqs: std::ops::Range<usize>,
) -> Pace {
    let started = Instant::now();
    enqueue_phase(api, ledger, seqs.clone()).await;
    wait_all_received(rx, ledger, Duration::from_secs(90)).await;
    pace(&received(rx).1, seqs, started)
}

/// Polls `/readyz` until it answers `want`, which must come within [`ANSWER_BOUND`] of
/// `since` (`event`); returns how long it took.
pub async fn wait_ready_status(api: &Api, want: u16, since: Instant, event: &str) -> Duration {
    loop {
        let (status, took) = api.readyz().await;
        assert!(took < ANSWER_BOUND, "/readyz took {took:?}");
        if status == want {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < ANSWER_BOUND,
            "/readyz still {status}, not {want}, {:?} after {event}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The API of `server` (a process serving it) as a platform calls it, with a partner that
/// has one POST endpoint at `rx`.
pub async fn api_with_partner(server: &Proc, rx: &Receiver) -> Api {
    let mut api = Api {
        base: server.address.clone().expect("a process serving the API"),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        partner: Uuid::nil(),
    };
    register_partner(&mut api, rx).await;
    api
}

/// A partner with one POST endpoint at `rx`, registered through `api`.
async fn register_partner(api: &mut Api, rx: &Receiver) {
    let partner = api.post("/v1/partners", &json!({"name": "Acme"})).await;
    assert_eq!(partner.status, 201, "{}", partner.body);
    api.partner = partner.body["id"].as_str().unwrap().parse().unwrap();
    let endpoint = api
        .post(
            &format!("/v1/partners/{}/endpoints", api.partner),
            &json!({"environment": "production", "url": format!("{}/cb", rx.base),
                    // The default ordering (per_proposal for proposal.status): a restart or a
                    // failover must keep numbering and releasing ordered deliveries too.
                    "method": "POST", "timeout_ms": 2000}),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
}

/// Every process still runs, and none of its tasks panicked.
pub fn assert_alive(procs: &mut [&mut Proc], when: &str) {
    for p in procs {
        if let Some(status) = p.child.try_wait().unwrap() {
            panic!(
                "a callbackd process exited {when}: {status}\n{}",
                p.output()
            );
        }
        assert!(
            !p.output().contains("panicked"),
            "a task panicked {when}:\n{}",
            p.output()
        );
    }
}
