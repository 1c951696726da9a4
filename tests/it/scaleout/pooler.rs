//! An API process and 4 worker processes, all through PgBouncer (Debian's 1.18), LISTEN and
//! migrations on the direct `session_database_url`: 10,000 notifications through the batch
//! API and 200 single calls, each delivered exactly once to a healthy receiver. Twice: with
//! PgBouncer in session mode, and in transaction mode with `database_pool_mode =
//! "transaction"`, where the 5 processes' 40 client connections share 8 server connections.
//!
//! Transaction mode with prepared statements (the default) fails at the first start: sqlx
//! names its statements (`prepared statement "sqlx_s_1" already exists`), and even unnamed
//! ones are sent in two round trips that PgBouncer may split across server connections
//! outside a transaction block (src/store/db.rs says what the setting changes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::pgbouncer::PgBouncer;
use crate::support::app::TestDb;
use crate::support::process::{self, Proc};
use crate::support::receiver::Receiver;
use crate::support::traffic::{
    Ledger, api_with_partner, assert_alive, run_phase, wait_all_received,
};

const NOTIFICATIONS: usize = 10_000;
/// Then single calls, each through the API's group commit (its own transactions).
const SINGLES: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_and_four_workers_through_pgbouncer_deliver_each_notification_exactly_once() {
    // Server connections: one per client connection in session mode (5 processes of 8).
    through_pgbouncer("session", 40, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_pgbouncer_in_transaction_mode_each_notification_is_delivered_exactly_once() {
    // 40 client connections on 8 server connections: statements of different processes
    // interleave on each server connection.
    through_pgbouncer("transaction", 8, Some("transaction")).await;
}

async fn through_pgbouncer(pool_mode: &str, server_connections: u32, setting: Option<&str>) {
    let db = TestDb::create().await;
    let bouncer = PgBouncer::start(&db.url, pool_mode, server_connections)
        .await
        .expect("pgbouncer starts (apt-get install pgbouncer)");
    let pooled = bouncer.url(&db.url).unwrap();
    let mut env = vec![("CALLBACKD_SESSION_DATABASE_URL", db.url.as_str())];
    if let Some(mode) = setting {
        env.push(("CALLBACKD_DATABASE_POOL_MODE", mode));
    }
    let mut api_proc = process::start(&pooled, "api", &env).await;
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(process::start(&pooled, "worker", &env).await);
    }
    let rx = Receiver::start().await;
    let api = api_with_partner(&api_proc, &rx).await;

    let ledger: Ledger = Arc::new(Mutex::new(HashMap::new()));
    let pace = run_phase(&api, &ledger, &rx, 0..NOTIFICATIONS).await;
    eprintln!(
        "through PgBouncer ({pool_mode} mode): {NOTIFICATIONS} delivered at {:.0}/s",
        pace.per_s
    );

    let singles = NOTIFICATIONS..NOTIFICATIONS + SINGLES;
    let answers = futures::future::join_all(singles.clone().map(|seq| api.enqueue(seq))).await;
    for (seq, a) in singles.zip(answers) {
        assert_eq!(a.status, 202, "{}", a.body);
        let id = a.body["deliveries"][0]["id"].as_str().unwrap().to_string();
        ledger.lock().unwrap().insert(seq, id);
    }
    wait_all_received(&rx, &ledger, Duration::from_secs(60)).await;

    // Exactly once: one request per notification (no retry, no duplicate).
    let requests = rx.requests();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &requests {
        *per_id
            .entry(r.header("x-callback-id").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        per_id.len(),
        NOTIFICATIONS + SINGLES,
        "distinct X-Callback-Id values"
    );
    let twice: Vec<_> = per_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(requests.len(), NOTIFICATIONS + SINGLES);
    crate::support::traffic::wait_all_marked_delivered(&db.url, &ledger, Duration::from_secs(30))
        .await;

    // The pooler was in the way: it served the 5 processes' pooled connections.
    let log = bouncer.log();
    assert!(
        log.matches("login attempt: db=").count() >= 5,
        "PgBouncer saw no clients:\n{log}"
    );

    let mut all: Vec<&mut Proc> = vec![&mut api_proc];
    all.extend(workers.iter_mut());
    assert_alive(&mut all, "after the run");
    // No statement went astray on the way: a missing or foreign prepared statement would
    // show here even where a retry hid it from the receiver.
    for p in &all {
        let out = p.output();
        assert!(!out.contains("prepared statement"), "{out}");
        assert!(!out.contains("error returned from database"), "{out}");
    }
    drop(bouncer);
}
