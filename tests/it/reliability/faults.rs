//! Faults with real processes on real PostgreSQL: a worker killed with SIGKILL, the
//! database's connections cut, SIGTERM, several workers and an API process under load.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use callbackd::startup::Role;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

use crate::support::app::{TestApp, TestDb, admin_url, spawn_on};
use crate::support::process::{self, TOKEN};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;

/// An API-only callbackd in the test process (it migrates the database), a partner and one
/// POST endpoint at `rx` with `timeout_ms`.
async fn api_with_endpoint(db: TestDb, rx: &Receiver, timeout_ms: u64) -> (TestApp, Uuid) {
    let api = spawn_on(db, Role::Api, |s| s.lease_ms = 60_000).await;
    let partner = api.create_partner("Acme").await;
    api.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base),
               "method": "POST", "timeout_ms": timeout_ms}),
    )
    .await;
    (api, partner)
}

/// Enqueues `n` notifications through the API; returns their delivery ids.
async fn enqueue_many(api: &TestApp, partner: Uuid, n: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let posts = chunk.iter().map(|i| {
            api.enqueue(json!({"partner_id": partner, "environment": "production",
                               "event_type": "proposal.status", "proposal": Uuid::new_v4(),
                               "status": (i % 12), "body": {"n": i}}))
        });
        for v in futures::future::join_all(posts).await {
            ids.insert(v["deliveries"][0]["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(ids.len(), n);
    ids
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn wait_all_delivered(pool: &PgPool, n: i64, within: Duration) {
    wait_until(&format!("{n} delivered"), within, async || {
        let delivered = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
        )
        .fetch_one(pool)
        .await
        .unwrap_or(0);
        if delivered == n {
            Ok(())
        } else {
            Err(format!("{delivered} delivered"))
        }
    })
    .await
}

fn received_ids(rx: &Receiver) -> Vec<String> {
    rx.requests()
        .iter()
        .map(|r| r.header("x-callback-id").unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_with_sigkill_loses_nothing_and_its_leases_come_back() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let rx = Receiver::start().await;
    rx.always(Reply::status(200).after(Duration::from_millis(300)));
    let (api, partner) = api_with_endpoint(db, &rx, 1000).await;
    let expected = enqueue_many(&api, partner, 200).await;

    let lease = [
        ("CALLBACKD_LEASE_MS", "3000"),
        ("CALLBACKD_ENDPOINT_TIMEOUT_MS", "1000"),
        ("CALLBACKD_WORKER_CONCURRENCY", "16"),
    ];
    let mut first = process::start(&url, "worker", &lease).await;
    rx.wait_for(30, Duration::from_secs(30)).await;
    first.kill().await;
    // What the dead worker held: leased, not finished.
    let held: Vec<Uuid> = sqlx::query_scalar(
        "SELECT q.delivery_id FROM delivery_queue q JOIN deliveries d ON d.id = q.delivery_id
         WHERE d.state = 'pending' AND q.locked_until > now()",
    )
    .fetch_all(&api.pool)
    .await
    .unwrap();
    assert!(!held.is_empty(), "the killed worker held leases");

    let second = process::start(&url, "worker", &lease).await;
    wait_all_delivered(&api.pool, 200, Duration::from_secs(60)).await;

    let got = received_ids(&rx);
    let distinct: HashSet<String> = got.iter().cloned().collect();
    assert_eq!(
        distinct, expected,
        "every delivery arrived, under its own id"
    );
    assert!(got.len() >= 200);
    for id in &held {
        assert!(
            distinct.contains(&id.to_string()),
            "{id} held by the dead worker was sent"
        );
    }
    // A duplicate is a resend of the same delivery: same id, same body.
    let requests = rx.requests();
    for id in &distinct {
        let bodies: HashSet<_> = requests
            .iter()
            .filter(|r| r.header("x-callback-id") == Some(id))
            .map(|r| r.body.clone())
            .collect();
        assert_eq!(bodies.len(), 1, "{id} was always the same callback");
    }
    assert_eq!(
        count(
            &api.pool,
            "SELECT count(*) FROM delivery_queue WHERE locked_until IS NOT NULL"
        )
        .await,
        0
    );
    drop(second);
}

/// Closes the database to new connections and cuts every existing one, again and again,
/// for `outage`: callbackd sees what a PostgreSQL restart looks like from outside.
async fn outage(db_name: &str, outage: Duration, during: impl std::future::Future<Output = ()>) {
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    let cut = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = '{db_name}' AND pid <> pg_backend_pid()"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db_name} ALLOW_CONNECTIONS false"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let until = Instant::now() + outage;
    let cutting = async {
        while Instant::now() < until {
            sqlx::raw_sql(sqlx::AssertSqlSafe(cut.clone()))
                .execute(&mut admin)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        admin
    };
    let (mut admin, ()) = tokio::join!(cutting, during);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db_name} ALLOW_CONNECTIONS true"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}

async fn readyz(client: &reqwest::Client, url: &str) -> u16 {
    match client.get(url).timeout(Duration::from_secs(5)).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_connections_cut_during_a_load_nothing_is_lost_and_readyz_tells() {
    let db = TestDb::create().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(200).after(Duration::from_millis(40)));
    let app = process::start(&db.url, "all", &[("CALLBACKD_WORKER_CONCURRENCY", "4")]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let post = |path: &str, body: Value| {
        client
            .post(app.api(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let partner: Value = post("/v1/partners", json!({"name": "Acme"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let partner = partner["id"].as_str().unwrap().to_string();
    let r = post(
        &format!("/v1/partners/{partner}/endpoints"),
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let mut expected = HashSet::new();
    for i in 0..150 {
        let v: Value = post(
            "/v1/notifications",
            json!({"partner_id": partner, "environment": "production",
                   "event_type": "proposal.status", "proposal": Uuid::new_v4(),
                   "status": i % 12}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        expected.insert(v["deliveries"][0]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(readyz(&client, &app.api("/readyz")).await, 200);
    rx.wait_for(10, Duration::from_secs(20)).await;

    let readyz_url = app.api("/readyz");
    let seen_down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = seen_down.clone();
    let client2 = client.clone();
    const OUTAGE: Duration = Duration::from_secs(4);
    outage(&db.name, OUTAGE, async move {
        // Asked again and again while the outage lasts (each answer is bounded by readyz's own
        // timeout, well under the 5 s the contract allows).
        let until = Instant::now() + OUTAGE;
        while Instant::now() < until {
            if readyz(&client2, &readyz_url).await == 503 {
                seen.store(true, std::sync::atomic::Ordering::SeqCst);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        seen_down.load(std::sync::atomic::Ordering::SeqCst),
        "/readyz reported the outage"
    );
    let mut app = app;
    assert!(
        app.child.try_wait().unwrap().is_none(),
        "callbackd kept running through the outage:\n{}",
        app.output()
    );
    wait_until("/readyz to recover", Duration::from_secs(20), async || {
        readyz(&client, &app.api("/readyz")).await == 200
    })
    .await;

    let pool = PgPool::connect(&db.url).await.unwrap();
    wait_all_delivered(&pool, 150, Duration::from_secs(60)).await;
    let distinct: HashSet<String> = received_ids(&rx).into_iter().collect();
    assert_eq!(distinct, expected, "every delivery arrived");
    // Every attempt's outcome was written, even those completed during the outage.
    let logged = count(
        &pool,
        "SELECT count(DISTINCT delivery_id) FROM delivery_attempts WHERE status_code = 200",
    )
    .await;
    assert_eq!(logged, 150);
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_what_is_still_in_flight_after_the_grace_and_exits_0() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let rx = Receiver::start().await;
    // Answers far later than the grace: the requests cannot finish.
    rx.always(Reply::status(200).after(Duration::from_secs(30)));
    let (api, partner) = api_with_endpoint(db, &rx, 20_000).await;
    let ids = enqueue_many(&api, partner, 5).await;

    let env = [
        ("CALLBACKD_SHUTDOWN_GRACE_S", "1"),
        ("CALLBACKD_LEASE_MS", "60000"),
        ("CALLBACKD_ENDPOINT_TIMEOUT_MS", "20000"),
    ];
    let mut worker = process::start(&url, "worker", &env).await;
    rx.wait_for(5, Duration::from_secs(20)).await;
    let asked = Instant::now();
    worker.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(15), worker.child.wait())
        .await
        .expect("exits within the grace and a little more")
        .unwrap();
    assert!(status.success(), "exit 0:\n{}", worker.output());
    // The 1 s grace and room for a loaded machine: not the 20 s the callbacks in flight take.
    assert!(asked.elapsed() < Duration::from_secs(15), "bounded stop");
    assert!(worker.output().contains("released"), "{}", worker.output());

    // The leases were given back, attempts too: no waiting for lease_ms (60 s).
    let rows: Vec<(String, Option<chrono::DateTime<chrono::Utc>>, i32)> = sqlx::query_as(
        "SELECT d.state, q.locked_until, coalesce(q.attempts, d.attempts)
             FROM deliveries d LEFT JOIN delivery_queue q ON q.delivery_id = d.id",
    )
    .fetch_all(&api.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 5);
    for (state, locked, attempts) in &rows {
        assert_eq!(state, "pending");
        assert!(locked.is_none());
        assert_eq!(*attempts, 0);
    }
    // Another worker sends them at once.
    rx.always(Reply::status(200));
    let _next = process::start(&url, "worker", &env).await;
    wait_all_delivered(&api.pool, 5, Duration::from_secs(15)).await;
    let got: HashSet<String> = received_ids(&rx).into_iter().collect();
    assert_eq!(got, ids);
    let attempt_headers: HashSet<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("x-callback-attempt").unwrap().to_string())
        .collect();
    assert_eq!(
        attempt_headers,
        HashSet::from(["1".to_string()]),
        "the given-back attempt is numbered 1 again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_requests_in_flight_and_stops_claiming() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let rx = Receiver::start().await;
    rx.always(Reply::status(200).after(Duration::from_millis(800)));
    let (api, partner) = api_with_endpoint(db, &rx, 5000).await;
    enqueue_many(&api, partner, 20).await;

    let env = [
        ("CALLBACKD_SHUTDOWN_GRACE_S", "10"),
        ("CALLBACKD_WORKER_CONCURRENCY", "4"),
    ];
    let mut worker = process::start(&url, "worker", &env).await;
    rx.wait_for(4, Duration::from_secs(20)).await;
    worker.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(15), worker.child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "exit 0:\n{}", worker.output());
    // What was in flight finished and was recorded; nothing else was claimed.
    let sent = rx.requests().len() as i64;
    let delivered = count(
        &api.pool,
        "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
    )
    .await;
    assert_eq!(delivered, sent, "every request in flight was completed");
    assert!(sent < 20, "claiming stopped at SIGTERM");
    assert_eq!(
        count(
            &api.pool,
            "SELECT count(*) FROM deliveries d JOIN delivery_queue q ON q.delivery_id = d.id
             WHERE d.state = 'pending' AND (q.attempts > 0 OR q.locked_until IS NOT NULL)"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_and_an_api_process_send_each_delivery_once() {
    let db = TestDb::create().await;
    let rx = Receiver::start().await;
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(process::start(&db.url, "worker", &[("CALLBACKD_CLAIM_BATCH", "20")]).await);
    }
    let api = process::start(&db.url, "api", &[]).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let p: Value = client
        .post(api.api("/v1/partners"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "Acme"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let partner = p["id"].as_str().unwrap().to_string();
    let r = client
        .post(api.api(&format!("/v1/partners/{partner}/endpoints")))
        .bearer_auth(TOKEN)
        .json(&json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let mut expected = HashSet::new();
    for chunk in 0..6 {
        let batch: Vec<Value> = (0..50)
            .map(|i| {
                json!({"partner_id": partner, "environment": "production",
                       "event_type": "proposal.status", "proposal": Uuid::new_v4(),
                       "status": (chunk + i) % 12})
            })
            .collect();
        let v: Value = client
            .post(api.api("/v1/notifications/batch"))
            .bearer_auth(TOKEN)
            .json(&batch)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in v["items"].as_array().unwrap() {
            expected.insert(item["deliveries"][0]["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(expected.len(), 300);
    let pool = PgPool::connect(&db.url).await.unwrap();
    wait_all_delivered(&pool, 300, Duration::from_secs(60)).await;
    // Every worker stopped the way SIGTERM stops it (its sends in flight finished first): a
    // duplicate, had there been one, has arrived by now.
    for w in &workers {
        w.signal("TERM");
    }
    for w in &workers {
        w.wait_for_output("callbackd stopped", Duration::from_secs(30))
            .await;
    }
    let got = received_ids(&rx);
    assert_eq!(got.len(), 300, "one request per successful attempt");
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), expected);
    assert_eq!(
        count(&pool, "SELECT count(*) FROM delivery_attempts").await,
        300
    );
    pool.close().await;
    // All three took part (the claim spreads the load).
    drop(workers);
}
