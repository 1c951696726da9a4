//! An API process and 4 worker processes, all through PgBouncer, LISTEN and migrations on
//! the direct `session_database_url`: 10,000 notifications, each delivered exactly once to a
//! healthy receiver.
//!
//! PgBouncer runs in session mode here. Transaction mode does not work with sqlx 0.9 and
//! PgBouncer 1.18 (Debian 12's), whatever callbackd sets: sqlx names every statement
//! (`sqlx_s_N`, even with `statement_cache_capacity(0)`) and sends Parse/Describe and
//! Bind/Execute as two protocol round-trips, each ending in Sync, so PgBouncer may hand the
//! server connection to another client in between (tried: `prepared statement "sqlx_s_1"
//! already exists` at the first start); `.persistent(false)` sends unnamed statements, but
//! still in those two round-trips, which PgBouncer 1.18 may split across server connections
//! outside a transaction block. PgBouncer >= 1.21 with `max_prepared_statements` tracks
//! named statements itself; see docs/scaling.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::helpers::TestDb;
use crate::pgbouncer::PgBouncer;
use crate::process::{self, Proc};
use crate::receiver::Receiver;
use crate::traffic::{Api, Ledger, assert_alive, register_partner, run_phase};

const NOTIFICATIONS: usize = 10_000;
/// Server connections PgBouncer may open: one per client connection in session mode (5
/// processes of 8).
const POOL_SIZE: u32 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_and_four_workers_through_pgbouncer_deliver_each_notification_exactly_once() {
    let db = TestDb::create().await;
    let bouncer = PgBouncer::start(&db.url, "session", POOL_SIZE)
        .await
        .expect("pgbouncer starts (apt-get install pgbouncer)");
    let pooled = bouncer.url(&db.url).unwrap();
    let env = [("CALLBACKD_SESSION_DATABASE_URL", db.url.as_str())];
    let mut api_proc = process::start(&pooled, "api", &env).await;
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(process::start(&pooled, "worker", &env).await);
    }
    let rx = Receiver::start().await;
    let mut api = Api {
        base: api_proc.address.clone().unwrap(),
        client: reqwest::Client::new(),
        partner: uuid::Uuid::nil(),
    };
    register_partner(&mut api, &rx).await;

    let ledger: Ledger = Arc::new(Mutex::new(HashMap::new()));
    let pace = run_phase(&api, &ledger, &rx, 0..NOTIFICATIONS).await;
    eprintln!(
        "through PgBouncer: {NOTIFICATIONS} delivered at {:.0}/s",
        pace.per_s
    );

    // Exactly once: one request per notification (no retry, no duplicate).
    let requests = rx.requests();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        *per_id
            .entry(r.header("x-callback-id").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(per_id.len(), NOTIFICATIONS, "distinct X-Callback-Id values");
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(requests.len(), NOTIFICATIONS);
    crate::traffic::wait_all_marked_delivered(&db.url, &ledger, Duration::from_secs(30)).await;

    // The pooler was in the way: it served the 5 processes' pooled connections.
    let log = bouncer.log();
    assert!(
        log.matches("login attempt: db=").count() >= 5,
        "PgBouncer saw no clients:\n{log}"
    );

    let mut all: Vec<&mut Proc> = vec![&mut api_proc];
    all.extend(workers.iter_mut());
    assert_alive(&mut all, "after the run");
    drop(bouncer);
}
