//! Observability against a real Prometheus: every alert of deploy/prometheus/alerts.yml
//! fires when its cause is made real and resolves once the cause is gone, every panel of
//! deploy/grafana/callbackd.json returns data, and a scrape stays cheap at 1,000,000
//! deliveries. Needs Debian's `prometheus` (`apt-get install prometheus`; `.ci/run` does).

mod otlp;
mod prometheus;
mod proxy;
mod scrape_cost;

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::TestDb;
use crate::support::free_port;
use crate::support::process::{Proc, TOKEN};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;
use prometheus::{Prometheus, test_rules};

/// The callbackd process's `/v1`, as an operator.
struct Api<'a> {
    proc: &'a Proc,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn of(proc: &'a Proc) -> Self {
        Api {
            proc,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self
            .client
            .request(method, self.proc.api(path))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// A partner with one production POST endpoint to `url`; (partner id, endpoint id).
    async fn partner_with_endpoint(
        &self,
        name: &str,
        url: &str,
        max_attempts: u32,
    ) -> (String, String) {
        let p = self
            .call(
                reqwest::Method::POST,
                "/v1/partners",
                Some(json!({"name": name})),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let e = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/partners/{p}/endpoints"),
                Some(
                    json!({"environment": "production", "url": url, "method": "POST",
                            "max_attempts": max_attempts}),
                ),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        (p, e)
    }

    /// Enqueues one status change for `partner`; its delivery id.
    async fn enqueue(&self, partner: &str) -> String {
        let n = self
            .call(
                reqwest::Method::POST,
                "/v1/notifications",
                Some(json!({"partner_id": partner, "environment": "production",
                            "event_type": "proposal.status",
                            "proposal": uuid::Uuid::new_v4(), "status": 9})),
            )
            .await;
        n["deliveries"][0]["id"].as_str().unwrap().to_string()
    }

    async fn wait_state(&self, delivery: &str, state: &str) {
        wait_until(
            &format!("{delivery} to be {state}"),
            Duration::from_secs(20),
            async || {
                let d = self
                    .call(
                        reqwest::Method::GET,
                        &format!("/v1/deliveries/{delivery}"),
                        None,
                    )
                    .await;
                if d["state"] == state { Ok(()) } else { Err(d) }
            },
        )
        .await;
    }
}

fn host_port(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Deliveries die at a partner whose endpoint answers 500: CallbackdDeliveriesDying and
/// CallbackdEndpointFailing fire, naming that partner and endpoint; every dashboard panel
/// has data; once the endpoint answers 200 both resolve. /metrics is on its own address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dying_deliveries_and_a_failing_endpoint_fire_then_resolve_and_every_panel_has_data() {
    let db = TestDb::create().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(500).with_body("down for maintenance"));
    let metrics = format!("127.0.0.1:{}", free_port());
    let proc =
        crate::support::process::start(&db.url, "all", &[("CALLBACKD_METRICS_LISTEN", &metrics)])
            .await;
    let api = Api::of(&proc);
    let on_api = api.client.get(proc.api("/metrics")).send().await.unwrap();
    assert_eq!(on_api.status(), 404, "/metrics is not served with the API");
    let prom = Prometheus::start(std::slice::from_ref(&metrics), &test_rules(&[])).await;
    prom.wait_for_data("callbackd_database_up == 1", Duration::from_secs(20))
        .await;

    let (partner, endpoint) = api
        .partner_with_endpoint("Acme Bank", &format!("{}/cb", rx.base), 2)
        .await;
    // A first death, scraped; then the deaths whose increase the rule sees.
    let first = api.enqueue(&partner).await;
    api.wait_state(&first, "dead").await;
    prom.wait_for_data(
        "callbackd_delivery_outcomes_total{outcome=\"dead\"} > 0",
        Duration::from_secs(20),
    )
    .await;
    for _ in 0..2 {
        let d = api.enqueue(&partner).await;
        api.wait_state(&d, "dead").await;
    }
    let dying = prom
        .wait_firing("CallbackdDeliveriesDying", Duration::from_secs(30))
        .await;
    assert_eq!(dying[0]["labels"]["partner_id"], partner.as_str());
    let failing = prom
        .wait_firing("CallbackdEndpointFailing", Duration::from_secs(30))
        .await;
    assert_eq!(failing[0]["labels"]["endpoint_id"], endpoint.as_str());
    assert_eq!(failing[0]["labels"]["partner_id"], partner.as_str());

    // The endpoint is back: a success clears "failing"; no death for a window clears "dying".
    rx.always(Reply::status(200));
    let ok = api.enqueue(&partner).await;
    api.wait_state(&ok, "delivered").await;
    every_dashboard_panel_has_data(&prom).await;
    prom.wait_resolved("CallbackdEndpointFailing", Duration::from_secs(30))
        .await;
    prom.wait_resolved("CallbackdDeliveriesDying", Duration::from_secs(40))
        .await;
}

/// Every target of every panel of the shipped dashboard, with Grafana's variables set to
/// "all partners" and a 1 minute rate interval, returns at least one series.
async fn every_dashboard_panel_has_data(prom: &Prometheus) {
    let dashboard: Value =
        serde_json::from_str(include_str!("../../../deploy/grafana/callbackd.json")).unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            let promql = expr
                .replace("$__rate_interval", "1m")
                .replace("$partner", ".*");
            let result = prom.wait_for_data(&promql, Duration::from_secs(15)).await;
            assert!(!result.is_empty(), "{}: {expr}", panel["title"]);
            checked += 1;
        }
    }
    assert!(checked >= 12, "only {checked} panel queries");
}

/// Deliveries are due and only an API process runs: CallbackdQueueLag and
/// CallbackdNoWorkerClaiming fire; a worker starts, delivers, and both resolve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_lag_and_no_worker_fire_with_only_an_api_process_then_resolve_with_a_worker() {
    let db = TestDb::create().await;
    let rx = Receiver::start().await;
    rx.always(Reply::status(200));
    let api_proc = crate::support::process::start(&db.url, "api", &[]).await;
    let api = Api::of(&api_proc);
    let worker_metrics = format!("127.0.0.1:{}", free_port());
    let rules = test_rules(&[
        (
            "max(callbackd_oldest_due_age_seconds) > 120",
            "max(callbackd_oldest_due_age_seconds) > 3",
        ),
        (
            "max(callbackd_oldest_due_age_seconds) > 60",
            "max(callbackd_oldest_due_age_seconds) > 2",
        ),
    ]);
    // The worker's address is scraped from the start (down until it runs), as in production.
    let prom = Prometheus::start(
        &[
            host_port(api_proc.address.as_deref().unwrap()),
            worker_metrics.clone(),
        ],
        &rules,
    )
    .await;
    let (partner, _) = api
        .partner_with_endpoint("Acme Bank", &format!("{}/cb", rx.base), 10)
        .await;
    let mut due = Vec::new();
    for _ in 0..3 {
        due.push(api.enqueue(&partner).await);
    }
    let lag = prom
        .wait_firing("CallbackdQueueLag", Duration::from_secs(30))
        .await;
    let waited: f64 = lag[0]["value"].as_str().unwrap().parse().unwrap();
    assert!(waited > 3.0, "{waited}");
    prom.wait_firing("CallbackdNoWorkerClaiming", Duration::from_secs(30))
        .await;
    assert!(
        rx.requests().is_empty(),
        "nothing was sent without a worker"
    );

    let _worker = crate::support::process::start(
        &db.url,
        "worker",
        &[("CALLBACKD_METRICS_LISTEN", &worker_metrics)],
    )
    .await;
    for d in &due {
        api.wait_state(d, "delivered").await;
    }
    prom.wait_resolved("CallbackdNoWorkerClaiming", Duration::from_secs(30))
        .await;
    prom.wait_resolved("CallbackdQueueLag", Duration::from_secs(30))
        .await;
}

/// The database goes away under a worker with a request on the wire:
/// CallbackdDatabaseUnreachable fires, and so does CallbackdCompletionWriteFailing when the
/// outcome cannot be written; with the database back both resolve and the delivery ends
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_and_failed_outcome_writes_fire_then_resolve() {
    let db = TestDb::create().await;
    let admin = url::Url::parse(&crate::support::app::admin_url()).unwrap();
    let upstream = tokio::net::lookup_host((
        admin.host_str().unwrap().to_string(),
        admin.port().unwrap_or(5432),
    ))
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = proxy::Proxy::start(upstream).await;
    let mut through = url::Url::parse(&db.url).unwrap();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(proxy.port)).unwrap();

    let rx = Receiver::start().await;
    rx.always(Reply::status(200).after(Duration::from_secs(2)));
    let proc = crate::support::process::start(through.as_str(), "all", &[]).await;
    let api = Api::of(&proc);
    let prom = Prometheus::start(
        &[host_port(proc.address.as_deref().unwrap())],
        &test_rules(&[]),
    )
    .await;
    prom.wait_for_data("callbackd_database_up == 1", Duration::from_secs(20))
        .await;
    let (partner, _) = api
        .partner_with_endpoint("Acme Bank", &format!("{}/cb", rx.base), 10)
        .await;
    let delivery = api.enqueue(&partner).await;
    rx.wait_for(1, Duration::from_secs(10)).await;

    proxy.cut();
    let down = prom
        .wait_firing("CallbackdDatabaseUnreachable", Duration::from_secs(30))
        .await;
    assert_eq!(
        down[0]["labels"]["instance"],
        host_port(proc.address.as_deref().unwrap())
    );
    prom.wait_firing("CallbackdCompletionWriteFailing", Duration::from_secs(30))
        .await;

    proxy.restore().await;
    prom.wait_resolved("CallbackdDatabaseUnreachable", Duration::from_secs(30))
        .await;
    api.wait_state(&delivery, "delivered").await;
    prom.wait_resolved("CallbackdCompletionWriteFailing", Duration::from_secs(40))
        .await;
}
