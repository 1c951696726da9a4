//! The operator CLI, run as the real binary against the test database.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::{Receiver, Reply};
use crate::support::wait::wait_until;

fn callbackd(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .args(args)
        .env("DATABASE_URL", app.database_url())
        .env_remove("RUST_LOG")
        .output()
        .expect("callbackd runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn dead_deliveries(app: &TestApp, n: usize) -> (Uuid, Receiver, Vec<String>) {
    let rx = Receiver::start().await;
    rx.always(Reply::status(503).with_body("maintenance"));
    let partner = app.create_partner("Acme").await;
    app.create_endpoint(
        partner,
        json!({"environment": "production", "url": format!("{}/cb", rx.base), "method": "POST", "max_attempts": 1}),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..n {
        let v = app
            .enqueue(json!({"partner_id": partner, "environment": "production",
                            "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": i % 12}))
            .await;
        let id = v["deliveries"][0]["id"].as_str().unwrap().to_string();
        app.wait_for_state(&id, "dead", Duration::from_secs(10))
            .await;
        ids.push(id);
    }
    (partner, rx, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_replay_and_cancel_from_the_command_line() {
    let app = spawn_app().await;
    let (partner, rx, ids) = dead_deliveries(&app, 3).await;
    let p = partner.to_string();

    let (ok, table, err) = callbackd(
        &app,
        &["deliveries", "list", "--state", "dead", "--partner", &p],
    );
    assert!(ok, "{err}");
    for id in &ids {
        assert!(table.contains(id.as_str()), "{table}");
    }
    assert!(table.contains("http 503"), "{table}");

    let (ok, json_out, _) = callbackd(
        &app,
        &[
            "--json",
            "deliveries",
            "list",
            "--state",
            "dead",
            "--limit",
            "2",
        ],
    );
    assert!(ok);
    let page: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_string());

    let (ok, shown, _) = callbackd(&app, &["deliveries", "show", &ids[0]]);
    assert!(ok);
    assert!(
        shown.contains("maintenance") && shown.contains("503"),
        "{shown}"
    );

    let (ok, partners, _) = callbackd(&app, &["partners", "list"]);
    assert!(ok && partners.contains("Acme"), "{partners}");
    let (ok, endpoints, _) = callbackd(&app, &["--json", "endpoints", "list", "--partner", &p]);
    assert!(ok);
    let endpoints: Value = serde_json::from_str(&endpoints).unwrap();
    assert_eq!(endpoints[0]["health"]["dead"], 3);

    // One by id, then the rest by filter, with progress on stderr.
    rx.always(Reply::status(200));
    let (ok, out, _) = callbackd(&app, &["deliveries", "replay", &ids[0]]);
    assert!(ok && out.contains("replayed 1"), "{out}");
    let (ok, out, progress) = callbackd(
        &app,
        &["deliveries", "replay", "--state", "dead", "--partner", &p],
    );
    assert!(ok && out.contains("replayed 2"), "{out}");
    assert!(progress.contains("replayed 2 so far"), "{progress}");
    for id in &ids {
        app.wait_for_state(id, "delivered", Duration::from_secs(10))
            .await;
    }

    // Cancel refuses what is not pending, with the id in the message.
    let (ok, _, err) = callbackd(&app, &["deliveries", "cancel", &ids[0]]);
    assert!(!ok);
    assert!(
        err.contains(&ids[0]) && err.contains("only pending"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_delivers_samples_dead_letters_the_flaky_endpoint_and_says_where_to_look() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let app = spawn_app().await; // only for its database name; the demo uses <name>_demo
    let demo_url = format!("{}_demo", app.database_url());
    let _demo_db = crate::support::app::TestDb::adopt(&demo_url);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_callbackd"))
        .arg("demo")
        .env("DATABASE_URL", app.database_url())
        .env("CALLBACKD_LISTEN", "127.0.0.1:0")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Three attempts of each flaky delivery, 0.5 s and 1 s apart.
    while !(seen.contains("/console") && seen.matches("attempt 3] -> 503").count() >= 3) {
        let line = tokio::time::timeout_at(deadline, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("demo output so far:\n{seen}"))
            .unwrap()
            .expect("demo still running");
        seen.push_str(&line);
        seen.push('\n');
    }
    assert!(seen.contains("GET /hml/callback?proposal="), "{seen}");
    assert!(
        seen.contains("POST /prd/callback  [schedule.event"),
        "{seen}"
    );
    assert!(seen.contains("deliveries list --state dead"), "{seen}");

    let demo = sqlx::PgPool::connect(&demo_url).await.unwrap();
    // Four status changes of one proposal go to the flaky endpoint, in order (the endpoint
    // orders per proposal), each dead after 3 attempts.
    wait_until("4 dead deliveries", Duration::from_secs(30), async || {
        let dead: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'dead'")
            .fetch_one(&demo)
            .await
            .unwrap();
        if dead == 4 {
            Ok(())
        } else {
            Err(format!("{dead} dead"))
        }
    })
    .await;
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
            .fetch_one(&demo)
            .await
            .unwrap();
    assert!(delivered >= 7, "{delivered}");
    demo.close().await;

    // SIGTERM: the demo stops cleanly.
    let pid = child.id().unwrap() as i32;
    Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
