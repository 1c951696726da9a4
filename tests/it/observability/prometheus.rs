//! A real Prometheus server (Debian's `prometheus` binary, not its service) on a free port,
//! with a temporary data directory, scraping the test's callbackd every second and
//! evaluating the shipped rules (with test-sized durations) every second. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::free_port;
use crate::support::wait::wait_until;

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub base: String,
    client: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped rules with durations a test can wait for: every `for:` becomes 1 s, every
/// range 10 s, and the thresholds named in `thresholds` (exact text → replacement). Each
/// replacement must apply, so a change to the shipped file cannot leave an alert untested.
pub fn test_rules(thresholds: &[(&str, &str)]) -> String {
    let shipped = include_str!("../../../deploy/prometheus/alerts.yml");
    let mut rules = shipped.to_string();
    for (from, to) in thresholds {
        assert!(rules.contains(from), "alerts.yml no longer has {from:?}");
        rules = rules.replace(from, to);
    }
    let mut out = String::new();
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("for: ") {
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(&format!("{indent}for: 1s\n"));
            continue;
        }
        let mut l = line.to_string();
        for range in ["[15m]", "[10m]", "[5m]"] {
            l = l.replace(range, "[10s]");
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (host:port, path /metrics) with `rules`.
    pub async fn start(targets: &[String], rules: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("callbackd-prom-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("alerts.yml"), rules).unwrap();
        let list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files: ['{}']\n\
                 scrape_configs:\n  - job_name: callbackd\n    static_configs:\n      - targets: [{list}]\n",
                dir.join("alerts.yml").display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (apt-get install prometheus)");
        let p = Prometheus {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        wait_until(
            "Prometheus to be ready",
            Duration::from_secs(30),
            async || {
                let ready = p.client.get(format!("{}/-/ready", p.base)).send().await;
                ready.is_ok_and(|r| r.status().is_success())
            },
        )
        .await;
        p
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let url = url::Url::parse_with_params(&format!("{}{path}", self.base), query).unwrap();
        let r = self.client.get(url).send().await.unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// An instant query's result vector.
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        let data = self.get("/api/v1/query", &[("query", promql)]).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The active alerts named `name` in state `firing`.
    pub async fn firing(&self, name: &str) -> Vec<Value> {
        let data = self.get("/api/v1/alerts", &[]).await;
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == name && a["state"] == "firing")
            .cloned()
            .collect()
    }

    /// Waits until `name` fires; returns its alerts.
    pub async fn wait_firing(&self, name: &str, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let alerts = self.firing(name).await;
            if !alerts.is_empty() {
                return alerts;
            }
            if Instant::now() > deadline {
                let rules = self.get("/api/v1/rules", &[]).await;
                let targets = self.get("/api/v1/targets", &[]).await;
                panic!("{name} never fired\nrules: {rules}\ntargets: {targets}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until `name` is neither pending nor firing.
    pub async fn wait_resolved(&self, name: &str, within: Duration) {
        wait_until(&format!("{name} to resolve"), within, async || {
            let data = self.get("/api/v1/alerts", &[]).await;
            let active = data["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["labels"]["alertname"] == name);
            if active { Err(data) } else { Ok(()) }
        })
        .await
    }

    /// Waits until `promql` returns at least one sample.
    pub async fn wait_for_data(&self, promql: &str, within: Duration) -> Vec<Value> {
        wait_until(&format!("data for {promql}"), within, async || {
            let r = self.query(promql).await;
            (!r.is_empty()).then_some(r)
        })
        .await
    }
}
