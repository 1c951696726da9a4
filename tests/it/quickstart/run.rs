//! The real `callbackd` binary as a newcomer runs it: nothing configured but what the test
//! sets, its output read as it comes.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

pub const BIN: &str = env!("CARGO_BIN_EXE_callbackd");

/// `callbackd ARGS` with none of the developer's settings leaking in: no `CALLBACKD_*`,
/// `DATABASE_URL` or `RUST_LOG` from the test's own environment.
pub fn callbackd(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).kill_on_drop(true).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("CALLBACKD_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// A port on 127.0.0.1 nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// How a start that must fail ended: its exit code and what it wrote to stderr.
pub struct Refusal {
    pub code: Option<i32>,
    pub stderr: String,
}

impl Refusal {
    /// The one line on stderr, asserting there is exactly one.
    pub fn line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr, got:\n{}", self.stderr);
        lines[0]
    }
}

/// Runs `command` to its end (30 s at most) and returns how it refused to start.
pub async fn refusal(mut command: Command) -> Refusal {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("a refused start ends within 30 s")
    .unwrap();
    Refusal {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A long-running `callbackd` (serve, demo) whose stdout is collected as it comes.
pub struct Running {
    child: Child,
    stdout: watch::Receiver<String>,
}

impl Running {
    pub fn spawn(mut command: Command) -> Running {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, stdout) = watch::channel(String::new());
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Drained to the end, so the process never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tx.send_modify(|all| {
                    all.push_str(&line);
                    all.push('\n');
                });
            }
        });
        Running { child, stdout }
    }

    /// Everything printed so far, once `ready` holds for it (30 s at most).
    pub async fn wait_for(&mut self, what: &str, ready: impl FnMut(&String) -> bool) -> String {
        let waited = tokio::time::timeout(Duration::from_secs(30), self.stdout.wait_for(ready))
            .await
            .map(|seen| seen.map(|s| s.clone()));
        match waited {
            Ok(Ok(seen)) => seen,
            _ => panic!(
                "waiting for {what}; output so far:\n{}",
                *self.stdout.borrow()
            ),
        }
    }

    /// SIGTERM, and how it exited (15 s at most).
    pub async fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().expect("still running");
        let killed = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("exits within 15 s of SIGTERM")
            .unwrap()
    }
}

/// The text after `prefix` on the first line that has it.
pub fn after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.split_once(prefix).map(|(_, rest)| rest.trim()))
}
