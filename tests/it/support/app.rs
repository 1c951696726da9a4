//! Spawns the real application on a fresh PostgreSQL database per test, with a reqwest
//! client for the API. The database is dropped when the `TestApp` is.

use std::time::Duration;

use callbackd::config::Settings;
use callbackd::startup::{Application, Role};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::receiver::Receiver;
use super::wait::wait_until;

/// The server the per-test databases are created on.
pub fn admin_url() -> String {
    std::env::var("CALLBACKD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A fresh, empty database; dropped (with its connections) when this is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    owned: bool,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!("cbtest_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("admin connection");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin_url()).unwrap();
        url.set_path(&name);
        TestDb {
            name,
            url: url.to_string(),
            owned: true,
        }
    }

    /// A database something else creates (the demo's `<name>_demo`): dropped with this value,
    /// even when the test fails.
    pub fn adopt(url: &str) -> TestDb {
        let name = url.rsplit('/').next().unwrap_or_default().to_string();
        TestDb {
            name,
            url: url.to_string(),
            owned: true,
        }
    }

    /// The same database for another process of the test; only the original drops it.
    pub fn share(&self) -> TestDb {
        TestDb {
            name: self.name.clone(),
            url: self.url.clone(),
            owned: false,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let name = self.name.clone();
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await;
                }
            })
        })
        .join();
    }
}

/// Settings for tests: fast retries, private targets allowed (receivers are on 127.0.0.1),
/// an ephemeral port.
pub fn test_settings(database_url: &str) -> Settings {
    let mut s = Settings::defaults();
    s.database_url = database_url.to_string();
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.api_token = "test-operator-token".into();
    s.secret_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into();
    s.retry_base_ms = 50;
    s.retry_max_ms = 400;
    s.max_attempts = 10;
    s.allow_private_targets = true;
    s.worker_concurrency = 32;
    s.endpoint_timeout_ms = 2000;
    s.lease_ms = 10_000;
    s.poll_interval_ms = 200;
    s.database_max_connections = 8;
    s.shutdown_grace_s = 5;
    s
}

pub struct TestApp {
    pub address: String,
    pub token: String,
    pub pool: callbackd::store::Db,
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    // Last: dropped after the pool's users.
    db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::create().await;
    spawn_on(db, Role::All, tweak).await
}

/// Starts callbackd with `role` on an existing test database.
pub async fn spawn_on(db: TestDb, role: Role, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&db.url);
    tweak(&mut settings);
    let app = Application::build(settings, role)
        .await
        .expect("application builds");
    let address = app
        .address()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    let token = app.api_token().to_string();
    let pool = app.pool().clone();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(app.run_until(shutdown.clone()));
    TestApp {
        address,
        token,
        pool,
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        shutdown,
        handle: Some(handle),
        db,
    }
}

impl TestApp {
    /// The URL of this test's database (for processes started by the test).
    pub fn database_url(&self) -> &str {
        &self.db.url
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
    }

    pub async fn create_partner(&self, name: &str) -> Uuid {
        let r = self.post("/v1/partners", &json!({ "name": name })).await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn create_endpoint(&self, partner: Uuid, body: Value) -> Value {
        let r = self
            .post(&format!("/v1/partners/{partner}/endpoints"), &body)
            .await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "{v}");
        v
    }

    /// Posts a notification and returns the 202 answer.
    pub async fn enqueue(&self, body: Value) -> Value {
        let r = self.post("/v1/notifications", &body).await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "{v}");
        v
    }

    pub async fn delivery(&self, id: &str) -> Value {
        let r = self.get(&format!("/v1/deliveries/{id}")).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    /// Polls the delivery until it reaches `state`; panics after `within`.
    pub async fn wait_for_state(&self, id: &str, state: &str, within: Duration) -> Value {
        wait_until(
            &format!("delivery {id} to be {state}"),
            within,
            async || {
                let d = self.delivery(id).await;
                if d["state"] == state { Ok(d) } else { Err(d) }
            },
        )
        .await
    }

    /// Enqueues `notification` (for one endpoint) and waits until the worker has sent it and
    /// written the attempt's outcome: the barrier of a negative assertion. Whatever the worker does
    /// with work enqueued before this, it has claimed it by now, so "nothing else was sent"
    /// checked afterwards is checked after the worker passed that point, not after a guess.
    /// Returns the barrier's delivery id.
    pub async fn barrier(&self, notification: Value) -> String {
        let n = self.enqueue(notification).await;
        let id = n["deliveries"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("the barrier makes one delivery: {n}"))
            .to_string();
        wait_until(
            &format!("the barrier delivery {id} to be attempted"),
            Duration::from_secs(20),
            async || {
                let d = self.delivery(&id).await;
                // The attempt log is written with the outcome (attempts counts claims).
                if d["attempt_log"]
                    .as_array()
                    .is_some_and(|log| !log.is_empty())
                {
                    Ok(())
                } else {
                    Err(d)
                }
            },
        )
        .await;
        id
    }

    /// A barrier (see [`TestApp::barrier`]) on a partner, endpoint and receiver of its own, so
    /// that the test's receivers and deliveries see nothing of it.
    pub async fn barrier_elsewhere(&self) {
        let rx = Receiver::start().await;
        let partner = self.create_partner("Barrier").await;
        self.create_endpoint(
            partner,
            json!({"environment": "production", "url": format!("{}/barrier", rx.base),
                   "method": "POST"}),
        )
        .await;
        self.barrier(json!({"partner_id": partner, "environment": "production",
                            "event_type": "proposal.status", "proposal": Uuid::new_v4(),
                            "status": 1}))
            .await;
    }

    /// Rows per table, to prove that a refused request wrote nothing.
    pub async fn row_counts(&self) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for table in [
            "partners",
            "endpoints",
            "notifications",
            "deliveries",
            "delivery_attempts",
        ] {
            let n: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            out.push((table.to_string(), n));
        }
        out
    }

    /// Stops the app the way SIGTERM does and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
