//! `callbackd serve` as a child process of the test, its output captured.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::app::test_settings;
use super::wait::wait_until;

pub const TOKEN: &str = "test-operator-token";

pub struct Proc {
    pub child: Child,
    /// Every line the process wrote to stdout and stderr.
    pub output: Arc<Mutex<String>>,
    /// `http://127.0.0.1:<port>` when the process runs the API.
    pub address: Option<String>,
}

/// Starts `callbackd serve --role <role>` on `database_url` with the test defaults (fast
/// retries, private targets allowed, the tests' secret key and token) and `extra` env.
pub async fn start(database_url: &str, role: &str, extra: &[(&str, &str)]) -> Proc {
    start_with(database_url, role, extra, |_| {}).await
}

/// As [`start`], with `configure` applied to the command last (e.g. limits set before exec).
pub async fn start_with(
    database_url: &str,
    role: &str,
    extra: &[(&str, &str)],
    configure: impl FnOnce(&mut Command),
) -> Proc {
    let s = test_settings(database_url);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callbackd"));
    cmd.args(["serve", "--role", role])
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("CALLBACKD_LISTEN", "127.0.0.1:0")
        .env("CALLBACKD_API_TOKEN", TOKEN)
        .env(
            "CALLBACKD_SECRET_KEY",
            secrecy::ExposeSecret::expose_secret(&s.secret_key),
        )
        .env("CALLBACKD_ALLOW_PRIVATE_TARGETS", "true")
        .env("CALLBACKD_RETRY_BASE_MS", "50")
        .env("CALLBACKD_RETRY_MAX_MS", "400")
        .env("CALLBACKD_POLL_INTERVAL_MS", "200")
        .env("CALLBACKD_DATABASE_MAX_CONNECTIONS", "8")
        .env("RUST_LOG", "info");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    configure(&mut cmd);
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("callbackd starts");
    let output = Arc::new(Mutex::new(String::new()));
    let (addr_tx, mut addr_rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = output.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(a) = line.strip_prefix("callbackd API listening on ") {
                let _ = addr_tx.send(a.trim().to_string());
            }
            out.lock().unwrap().push_str(&line);
            out.lock().unwrap().push('\n');
        }
    });
    let out = output.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            out.lock().unwrap().push_str(&line);
            out.lock().unwrap().push('\n');
        }
    });
    let mut proc = Proc {
        child,
        output,
        address: None,
    };
    if role != "worker" {
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no API address; output:\n{}", proc.output()))
            .unwrap_or_else(|| panic!("process ended; output:\n{}", proc.output()));
        proc.address = Some(addr);
    } else {
        // A worker is up once it logged its start.
        proc.wait_for_output("callbackd started", Duration::from_secs(30))
            .await;
    }
    proc
}

impl Proc {
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    pub async fn wait_for_output(&self, needle: &str, within: Duration) {
        wait_until(
            &format!("the process to log {needle:?}"),
            within,
            async || {
                if self.output().contains(needle) {
                    Ok(())
                } else {
                    Err(self.output())
                }
            },
        )
        .await
    }

    pub fn signal(&self, signal: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    /// SIGKILL: no chance to clean up.
    pub async fn kill(&mut self) {
        self.child.kill().await.unwrap();
    }

    pub fn api(&self, path: &str) -> String {
        format!("{}{}", self.address.as_deref().expect("runs the API"), path)
    }
}
