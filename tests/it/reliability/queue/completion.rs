//! Nothing an attempt or the database does stops completion: a panicking attempt is an
//! `internal` failure that frees its slot, and an outcome the database refuses is isolated
//! and recorded as an `internal` error without holding the others back.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::{metric, status_of, wait_until};
use crate::support::app::spawn_app_with;
use crate::support::receiver::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_attempt_is_an_internal_failure_and_frees_its_slot() {
    // One request in flight per endpoint: a slot lost to a panic would stall the endpoint.
    let app = spawn_app_with(|s| s.endpoint_concurrency = 1).await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    // The debug-only hook in worker::Dispatcher::attempt panics for this URL.
    let panicking = app
        .create_endpoint(
            partner,
            json!({"environment": "production", "method": "POST", "max_attempts": 2,
                   "url": format!("{}/callbackd-test-panic", rx.base)}),
        )
        .await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "method": "POST",
               "url": format!("{}/healthy", rx.base)}),
    )
    .await;

    let mut doomed = Vec::new();
    let mut healthy = Vec::new();
    for status in 1..=5 {
        let v = app
            .enqueue(status_of(partner, Uuid::new_v4(), status % 12))
            .await;
        for d in v["deliveries"].as_array().unwrap() {
            let id = d["id"].as_str().unwrap().to_string();
            if d["endpoint_id"] == panicking["id"] {
                doomed.push(id);
            } else {
                healthy.push(id);
            }
        }
    }
    assert_eq!((doomed.len(), healthy.len()), (5, 5));

    for id in &doomed {
        let d = app
            .wait_for_state(id, "dead", Duration::from_secs(30))
            .await;
        let log = d["attempt_log"].as_array().unwrap();
        assert_eq!(log.len(), 2, "{d:#}");
        for a in log {
            assert_eq!(a["error_kind"], "internal", "{a:#}");
            let error = a["error"].as_str().unwrap();
            assert!(
                error.starts_with("internal: the attempt panicked: test hook"),
                "{error}"
            );
        }
    }
    for id in &healthy {
        app.wait_for_state(id, "delivered", Duration::from_secs(30))
            .await;
    }
    let paths: Vec<String> = rx.requests().iter().map(|r| r.uri.clone()).collect();
    assert_eq!(paths.len(), 5, "{paths:?}");
    assert!(
        paths.iter().all(|p| p.starts_with("/healthy?")),
        "{paths:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_database_refuses_is_isolated_and_recorded_as_internal() {
    let app = spawn_app_with(|_| {}).await;
    let rx = Receiver::start().await;
    let partner = app.create_partner("Acme").await;
    let mut endpoints = Vec::new();
    for path in ["a", "b"] {
        let e = app
            .create_endpoint(
                partner,
                json!({"environment": "production", "method": "POST", "ordering": "none",
                       "url": format!("{}/{path}", rx.base)}),
            )
            .await;
        endpoints.push(e["id"].as_str().unwrap().to_string());
    }
    // The victim: the delivery of proposal `victim` to endpoint b. The database itself
    // refuses any outcome of it that is not an internal error.
    let victim = Uuid::new_v4();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION test_hostile() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.endpoint_id = '{endpoint}'
                AND EXISTS (SELECT 1 FROM deliveries d WHERE d.id = NEW.delivery_id
                                                        AND d.proposal = '{victim}')
                AND (NEW.error IS NULL OR NEW.error NOT LIKE 'internal%') THEN
                 RAISE EXCEPTION 'test: hostile database refuses this row';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER test_hostile BEFORE INSERT ON delivery_attempts
             FOR EACH ROW EXECUTE FUNCTION test_hostile();",
        endpoint = endpoints[1]
    )))
    .execute(&app.pool)
    .await
    .unwrap();
    let failures_before = metric(&app, "callbackd_completion_write_failures_total").await;

    let mut ids = Vec::new();
    let mut bad = String::new();
    for status in 0..25 {
        let proposal = if status == 13 { victim } else { Uuid::new_v4() };
        let v = app.enqueue(status_of(partner, proposal, status % 12)).await;
        for d in v["deliveries"].as_array().unwrap() {
            let id = d["id"].as_str().unwrap().to_string();
            if proposal == victim && d["endpoint_id"] == endpoints[1].as_str() {
                bad = id.clone();
            }
            ids.push(id);
        }
    }
    assert_eq!(ids.len(), 50);
    assert!(!bad.is_empty());
    wait_until("every outcome written", Duration::from_secs(60), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state <> 'pending'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        (n == 50).then_some(())
    })
    .await;

    for id in &ids {
        let d = app.delivery(id).await;
        let log = d["attempt_log"].as_array().unwrap();
        assert_eq!(log.len(), 1, "{d:#}");
        if *id == bad {
            assert_eq!(log[0]["error_kind"], "internal", "{d:#}");
            let error = log[0]["error"].as_str().unwrap();
            assert!(
                error.starts_with("internal: the outcome could not be written")
                    && error.contains("hostile database"),
                "{error}"
            );
            assert_eq!(log[0]["response_body"], json!(null), "stripped: {d:#}");
        } else {
            assert_eq!(d["state"], "delivered", "{d:#}");
            assert_eq!(log[0]["status_code"], 200, "{d:#}");
            assert_eq!(log[0]["error"], json!(null), "{d:#}");
        }
    }
    let sent: Vec<String> = rx
        .requests()
        .iter()
        .map(|r| r.header("x-callback-id").unwrap().to_string())
        .collect();
    assert_eq!(sent.len(), 50, "each sent once");
    assert_eq!(sent.iter().collect::<HashSet<_>>().len(), 50);
    let failures_after = metric(&app, "callbackd_completion_write_failures_total").await;
    assert!(
        failures_after > failures_before,
        "{failures_before} -> {failures_after}"
    );
}
