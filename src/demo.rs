//! `callbackd demo`: a newcomer's first five minutes. Starts callbackd on a database of its
//! own with a built-in partner receiver, registers a partner with homologation and
//! production endpoints, enqueues sample notifications, lets one endpoint fail until its
//! delivery is dead-lettered, and says where to look.

use std::time::Duration;

use anyhow::Context;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::startup::{Application, Role};

/// Sample notifications: (environment, event type, request fields).
fn samples(partner: &str) -> Vec<Value> {
    let proposal = "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d";
    let status = |env: &str, status: u8, body: Option<Value>| {
        let mut n = json!({"partner_id": partner, "environment": env, "event_type": "proposal.status",
                           "proposal": proposal, "status": status, "identifier": "OP-2024-0001"});
        if let Some(b) = body {
            n["body"] = b;
        }
        n
    };
    let mut out = vec![
        status("homologation", 1, None),
        status("homologation", 2, None),
        status("production", 2, None),
        status("production", 8, None),
        status(
            "production",
            9,
            Some(json!({"DescricaoOcorrencia": "00 - Credit or debit made"})),
        ),
    ];
    out.extend(seed_examples().into_iter().map(|(event_type, body)| {
        let mut n = json!({"partner_id": partner, "environment": "production", "event_type": event_type, "body": body});
        if event_type == "proposal.status" {
            n["proposal"] = json!(proposal);
            n["status"] = json!(10);
        }
        n
    }));
    out
}

/// The partner documentation's own examples (kept as test fixtures): the installment plan,
/// the six schedule events, and a banking event.
fn seed_examples() -> Vec<(&'static str, Value)> {
    let fixtures: [(&str, &str); 8] = [
        (
            "schedule.event",
            include_str!("../tests/fixtures/seed001_schedule_1.json"),
        ),
        (
            "schedule.event",
            include_str!("../tests/fixtures/seed001_schedule_2.json"),
        ),
        (
            "schedule.event",
            include_str!("../tests/fixtures/seed001_schedule_3.json"),
        ),
        (
            "schedule.event",
            include_str!("../tests/fixtures/seed001_schedule_4.json"),
        ),
        (
            "schedule.event",
            include_str!("../tests/fixtures/seed001_schedule_5.json"),
        ),
        (
            "schedule.event",
            include_str!("../tests/fixtures/seed001_schedule_6_repaired.json"),
        ),
        (
            "banking.ted.received",
            include_str!("../tests/fixtures/synthetic_banking.json"),
        ),
        (
            "proposal.status",
            include_str!("../tests/fixtures/seed001_installment_plan.json"),
        ),
    ];
    fixtures
        .into_iter()
        .map(|(event, text)| {
            (
                event,
                serde_json::from_str(text).expect("fixtures are JSON"),
            )
        })
        .collect()
}

/// The demo database: the configured one's name with `_demo` appended.
fn demo_database_url(url: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url).context("database_url")?;
    let name = u.path().trim_start_matches('/').to_string();
    let name = if name.is_empty() {
        "callbackd".into()
    } else {
        name
    };
    u.set_path(&format!("{name}_demo"));
    Ok(u.to_string())
}

pub async fn run(mut settings: Settings) -> anyhow::Result<()> {
    // The built-in partner: /hml and /prd answer 200, /flaky is down for the whole demo.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let partner_base = format!("http://{}", receiver.local_addr()?);
    let app =
        axum::Router::new().fallback(|method: Method, uri: Uri, headers: HeaderMap| async move {
            let attempt = headers
                .get("x-callback-attempt")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            let event = headers
                .get("x-callback-event")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            let down = uri.path().starts_with("/flaky");
            println!(
                "  partner <- {method} {uri}  [{event}, attempt {attempt}] -> {}",
                if down { "503" } else { "200" }
            );
            if down {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        });
    tokio::spawn(async move { axum::serve(receiver, app).await });

    settings.database_url = demo_database_url(&settings.database_url)?;
    settings.allow_private_targets = true; // the demo partner lives on 127.0.0.1
    settings.retry_base_ms = 500;
    settings.retry_max_ms = 2000;
    let database = crate::config::redact_url(&settings.database_url);
    let app = Application::build(settings, Role::All).await?;
    let address = app.address().context("the demo runs the API")?;
    let base = format!("http://{address}");
    let token = app.api_token().to_string();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_until(shutdown.clone()));

    let client = reqwest::Client::builder().no_proxy().build()?;
    let post = |path: String, body: Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let created: Value = post("/v1/partners".into(), json!({"name": "Demo Partner"}))
        .await?
        .json()
        .await?;
    let partner = created["id"].as_str().context("partner id")?.to_string();
    let endpoints = [
        json!({"environment": "homologation", "url": format!("{partner_base}/hml/callback"), "method": "GET"}),
        json!({"environment": "production", "url": format!("{partner_base}/prd/callback"), "method": "POST",
               "auth": {"type": "bearer", "token": "demo-partner-token"}}),
        json!({"environment": "production", "url": format!("{partner_base}/flaky/callback"), "method": "PUT",
               "event_types": ["proposal.status"], "max_attempts": 3}),
    ];
    for e in endpoints {
        let r = post(format!("/v1/partners/{partner}/endpoints"), e).await?;
        anyhow::ensure!(
            r.status().is_success(),
            "registering an endpoint: {}",
            r.text().await?
        );
    }
    println!("callbackd demo");
    println!("  database     {database}");
    println!("  API          http://{address}");
    println!("  token        {token}");
    for n in samples(&partner) {
        let r = post("/v1/notifications".into(), n).await?;
        anyhow::ensure!(
            r.status().is_success(),
            "enqueueing a sample: {}",
            r.text().await?
        );
    }
    println!(
        "\nEnqueued the samples. The /flaky endpoint answers 503: its deliveries retry 3 times and are dead-lettered.\n\
         Look around:\n  console      http://{address}/console   (paste the token)\n  \
         CLI          DATABASE_URL={database} callbackd deliveries list --state dead\n  \
         replay       DATABASE_URL={database} callbackd deliveries replay --state dead\n  \
         metrics      curl http://{address}/metrics\n\nCtrl-C stops the demo."
    );
    crate::startup::cancel_on_signal(shutdown.clone()).await;
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .ok();
    Ok(())
}
