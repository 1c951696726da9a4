//! A PostgreSQL crash while a backlog of ordered arrivals is being numbered beside the
//! claims (src/worker/numbering.rs): the numbering task's transaction dies with the server,
//! its arrivals stay `arriving` and are numbered again after the restart, and every
//! proposal's callbacks still come numbered 1..n without a gap, in the order they were
//! enqueued, each delivered once per X-Callback-Id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Connection;
use uuid::Uuid;

use crate::support::cluster::Cluster;
use crate::support::process;
use crate::support::receiver::Receiver;
use crate::support::traffic::{api_with_partner, assert_alive};
use crate::support::wait::wait_until;

const PROPOSALS: usize = 1500;
/// Status changes per proposal, enqueued interleaved: every proposal's status 0, then 1...
const STATUSES: usize = 8;
const BATCH: usize = 1000;

/// (status, X-Callback-Sequence, X-Callback-Id) of each callback, per proposal, in the order
/// the receiver got them.
type Callbacks = HashMap<Uuid, Vec<(String, String, String)>>;

fn callbacks(rx: &Receiver) -> Callbacks {
    let mut per: Callbacks = HashMap::new();
    for r in rx.requests() {
        let query: HashMap<&str, &str> = r
            .uri
            .split_once('?')
            .map(|(_, q)| q.split('&').filter_map(|kv| kv.split_once('=')).collect())
            .unwrap_or_default();
        let proposal = query["proposal"].parse().expect("a proposal in the URL");
        per.entry(proposal).or_default().push((
            query["status"].to_string(),
            r.header("x-callback-sequence").unwrap_or("-").to_string(),
            r.header("x-callback-id").unwrap_or("-").to_string(),
        ));
    }
    per
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_while_a_backlog_is_numbered_keeps_every_proposals_numbers_and_order() {
    let cluster = Cluster::start_new().await;
    let url = cluster.url("callbackd");
    let rx = Receiver::start().await;
    let env = [
        // Claims of 20 against a backlog of 12,000: the claim rounds hand the numbering to
        // the backlog task at once, and it numbers 20 per transaction for a while.
        ("CALLBACKD_CLAIM_BATCH", "20"),
        ("CALLBACKD_ENDPOINT_CONCURRENCY", "4"),
        // Claims made just before the crash whose outcome is lost come back soon.
        ("CALLBACKD_LEASE_MS", "3000"),
        ("CALLBACKD_ENDPOINT_TIMEOUT_MS", "2000"),
    ];
    // The backlog is enqueued before any worker runs, as after a platform's outage.
    let mut server = process::start(&url, "api", &env).await;
    let api = api_with_partner(&server, &rx).await;
    let pool = sqlx::PgPool::connect(&url).await.unwrap();

    let proposals: Vec<Uuid> = (0..PROPOSALS).map(|_| Uuid::new_v4()).collect();
    let items: Vec<Value> = (0..STATUSES)
        .flat_map(|status| {
            proposals.iter().map(move |p| {
                json!({"partner_id": api.partner, "environment": "production",
                       "event_type": "proposal.status", "proposal": p, "status": status})
            })
        })
        .collect();
    // One batch after the other: each commits before the next, so the items' order is the
    // commit order the numbers must follow.
    for chunk in items.chunks(BATCH) {
        let a = api.post("/v1/notifications/batch", &json!(chunk)).await;
        assert_eq!(a.status, 202, "{}", a.body);
    }
    // Hold the numbering at a known point, mid-backlog: another session inserts (and keeps
    // uncommitted) the counter of a proposal whose first status is the 750th arrival, so the
    // numbering's upsert of that counter waits. The crash ends that session without a commit.
    let endpoint: Uuid = sqlx::query_scalar("SELECT id FROM endpoints")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query(
        "INSERT INTO ordering_sequences (endpoint_id, ordering_key, last_sequence)
         VALUES ($1, $2, 0)",
    )
    .bind(endpoint)
    .bind(proposals[750].to_string())
    .execute(&mut holder)
    .await
    .unwrap();
    let mut worker = process::start(&url, "worker", &env).await;

    // Crash while the backlog task waits there: part of the backlog numbered, the rest
    // still arriving.
    wait_until(
        "the backlog task to wait on the held counter",
        Duration::from_secs(60),
        async || {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                WHERE datname = current_database() AND wait_event_type = 'Lock'
                                  AND query LIKE '%callbackd_sequence_arrivals%')",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
        },
    )
    .await;
    let total = PROPOSALS * STATUSES;
    let arriving: i64 =
        sqlx::query_scalar("SELECT count(*) FROM delivery_queue WHERE queue = 'arriving'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        arriving > 0 && (arriving as usize) < total,
        "{arriving} of {total} still arriving"
    );
    pool.close().await;
    cluster.crash().await;
    drop(holder); // its transaction died with the server, uncommitted
    let crashed_at = Instant::now();
    // The backlog task met the outage (not only the claim rounds).
    worker
        .wait_for_output("numbering the arrivals failed", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(crashed_at.elapsed())).await;
    cluster.start().await;

    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    wait_until(
        "every delivery marked delivered",
        Duration::from_secs(120),
        async || {
            let states: Vec<(String, i64)> = sqlx::query_as(
                "SELECT state, count(*) FROM deliveries GROUP BY state ORDER BY state",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            if states == [("delivered".to_string(), total as i64)] {
                Ok(())
            } else {
                Err(format!("{states:?}"))
            }
        },
    )
    .await;
    assert_alive(&mut [&mut server, &mut worker], "after the restart");

    let got = callbacks(&rx);
    assert_eq!(got.len(), PROPOSALS, "proposals that reached the receiver");
    let want: Vec<(String, String)> = (0..STATUSES)
        .map(|s| (s.to_string(), (s + 1).to_string()))
        .collect();
    let mut sent_again = 0;
    for p in &proposals {
        let calls = &got[p];
        // At least once: a callback whose outcome the crash lost is sent again, as itself.
        let mut first: Vec<(String, String)> = Vec::new();
        let mut ids: HashMap<String, String> = HashMap::new();
        for (status, sequence, id) in calls {
            let known = ids.entry(status.clone()).or_insert_with(|| id.clone());
            assert_eq!(known, id, "{p}: status {status} sent under two ids");
            if first.iter().any(|(s, _)| s == status) {
                sent_again += 1;
            } else {
                first.push((status.clone(), sequence.clone()));
            }
        }
        assert_eq!(first, want, "{p}: first arrivals (status, sequence)");
    }
    eprintln!(
        "numbering restart: {total} delivered in order, {sent_again} sent again after the crash"
    );
}
