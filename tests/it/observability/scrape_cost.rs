//! A scrape costs the same at a handful of deliveries and at 1,000,000: the database gauges
//! are index probes per enabled endpoint, never a count.

use std::time::{Duration, Instant};

use callbackd::startup::Role;
use serde_json::json;

use crate::support::app::{TestApp, TestDb, spawn_on};

async fn scrape(app: &TestApp) -> Duration {
    let t = Instant::now();
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let took = t.elapsed();
    assert!(text.contains("callbackd_database_up 1"), "{text}");
    took
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

async fn median_scrape(app: &TestApp) -> Duration {
    let mut times = Vec::new();
    for _ in 0..15 {
        times.push(scrape(app).await);
    }
    median(times)
}

/// The median scrapes of `a` and `b`, taken in turns so that both see the same load of the
/// machine (the other tests run beside this one).
async fn median_scrapes(a: &TestApp, b: &TestApp) -> (Duration, Duration) {
    let (mut at, mut bt) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        at.push(scrape(a).await);
        bt.push(scrape(b).await);
    }
    (median(at), median(bt))
}

async fn two_endpoints(app: &TestApp) -> Vec<String> {
    let mut endpoints = Vec::new();
    for name in ["Acme Bank", "Other Bank"] {
        let p = app.create_partner(name).await;
        let e = app
            .create_endpoint(
                p,
                json!({"environment": "production",
                                       "url": "http://127.0.0.1:9/cb", "method": "POST"}),
            )
            .await;
        endpoints.push(e["id"].as_str().unwrap().to_string());
    }
    endpoints
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_at_a_million_deliveries_takes_under_50_ms() {
    // The API alone: no worker drains what is inserted.
    let app = spawn_on(TestDb::create().await, Role::Api, |_| {}).await;
    let endpoints = two_endpoints(&app).await;
    let empty = spawn_on(TestDb::create().await, Role::Api, |_| {}).await;
    two_endpoints(&empty).await;
    let small = median_scrape(&app).await;

    let started = Instant::now();
    // One notification; a million deliveries of it: 90 % delivered, 9 % ready and due, the
    // rest dead. Set-based, statistics left as a fresh table has them. The pending rows' queue
    // rows are written here too, so the enqueue trigger is skipped for the staging (the
    // statements run as one implicit transaction, so SET LOCAL holds for all of them).
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL session_replication_role = replica;
         INSERT INTO notifications (id, partner_id, environment, event_type, proposal, status)
         SELECT gen_random_uuid(), e.partner_id, 'production', 'proposal.status',
                gen_random_uuid(), 9
         FROM endpoints e WHERE e.id = '{e0}';
         INSERT INTO deliveries (notification_id, endpoint_id, partner_id, environment,
                                 event_type, state, attempts, next_attempt_at,
                                 created_at, delivered_at)
         SELECT n.id, e.id, e.partner_id, 'production', 'proposal.status',
                CASE WHEN g % 100 < 90 THEN 'delivered' WHEN g % 100 < 99 THEN 'pending'
                     ELSE 'dead' END,
                1, now() - make_interval(secs => g % 3600), now() - interval '1 hour',
                CASE WHEN g % 100 < 90 THEN now() END
         FROM generate_series(1, 1000000) g
         JOIN endpoints e ON e.id = (ARRAY['{e0}', '{e1}']::uuid[])[1 + g % 2]
         CROSS JOIN (SELECT id FROM notifications LIMIT 1) n;
         INSERT INTO delivery_queue (delivery_id, endpoint_id, queue, next_attempt_at, attempts)
         SELECT d.id, d.endpoint_id, 'ready', d.next_attempt_at, d.attempts
         FROM deliveries d WHERE d.state = 'pending'",
        e0 = endpoints[0],
        e1 = endpoints[1]
    )))
    .execute(&app.pool)
    .await
    .unwrap();
    let staged = started.elapsed();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1_000_000);

    let large = median_scrape(&app).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let lag: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("callbackd_oldest_due_age_seconds "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        lag > 3000.0,
        "the oldest ready delivery is about an hour old: {lag}"
    );
    assert!(text.contains("callbackd_endpoints_due 2\n"), "{text}");
    eprintln!(
        "scrape median: {small:?} at 2 endpoints and no deliveries, {large:?} at 1,000,000 \
         deliveries (staged in {staged:?})"
    );
    // Beside an app with the same endpoints and no deliveries, scraped in turns with this
    // one: a million deliveries add under 50 ms to the median scrape (a count would add
    // seconds). Relative, because the machine is shared with the other tests; alone, the
    // whole scrape takes a few milliseconds.
    let (baseline, large) = median_scrapes(&empty, &app).await;
    eprintln!("beside an empty database, scraped in turns: {baseline:?} and {large:?}");
    assert!(
        large < baseline + Duration::from_millis(50),
        "median scrape {large:?}, {baseline:?} without deliveries"
    );
}
