//! A private PostgreSQL cluster for tests that stop, crash or restart the server: the shared
//! server on 5432 is never touched. Created with Debian's `postgresql-common` tools on a free
//! port, trust authentication on localhost (replication included, for standbys), and dropped
//! with its files when the [`Cluster`] is dropped, even when the test fails.

use std::process::Command;
use std::time::Duration;

use uuid::Uuid;

use super::free_port;
use super::wait::wait_until;

/// The PostgreSQL major version the clusters are made with (the one this machine runs).
pub const VERSION: &str = "15";

pub struct Cluster {
    /// `cbtest_<random>`: parallel runs never collide.
    pub name: String,
    pub port: u16,
}

impl Cluster {
    /// Creates and starts a new cluster. Panics if the tools are missing or it cannot start.
    pub async fn start_new() -> Cluster {
        // The port is free when chosen; if something takes it before PostgreSQL binds,
        // start fails and another port is tried.
        let mut last_error = String::new();
        for _ in 0..3 {
            let cluster = Cluster {
                name: format!("cbtest_{}", &Uuid::new_v4().simple().to_string()[..12]),
                port: free_port(),
            };
            let port = cluster.port.to_string();
            run(
                "pg_createcluster",
                &[
                    VERSION,
                    &cluster.name,
                    "-p",
                    &port,
                    "--",
                    "--auth=trust",
                    "--no-sync",
                ],
            )
            .await
            .unwrap_or_else(|e| panic!("pg_createcluster: {e}"));
            match cluster.ctl("start").await {
                Ok(()) => return cluster,
                Err(e) => last_error = e, // dropped here: its files go too
            }
        }
        panic!("no private cluster could start: {last_error}");
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Sets a `postgresql.conf` parameter (takes effect at the next start or reload).
    pub async fn set(&self, key: &str, value: &str) {
        run("pg_conftool", &[VERSION, &self.name, "set", key, value])
            .await
            .unwrap_or_else(|e| panic!("pg_conftool set {key}: {e}"));
    }

    /// Kills the server the hard way (`stop -m immediate`): no checkpoint, every backend
    /// gone at once, crash recovery at the next start. Returns once it is down.
    pub async fn crash(&self) {
        self.ctl_args(&["stop", "-m", "immediate"])
            .await
            .unwrap_or_else(|e| panic!("stop -m immediate: {e}"));
    }

    /// Starts the server; returns once it accepts connections (`pg_ctl -w`).
    pub async fn start(&self) {
        self.ctl("start")
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
    }

    /// A streaming standby of `primary`: a new cluster whose data directory is replaced by
    /// `pg_basebackup -R` of the primary (so it starts in recovery, streaming from it).
    /// Returns once the primary sees it streaming.
    pub async fn standby_of(primary: &Cluster) -> Cluster {
        let standby = Cluster {
            name: format!("cbtest_{}", &Uuid::new_v4().simple().to_string()[..12]),
            port: free_port(),
        };
        let port = standby.port.to_string();
        run(
            "pg_createcluster",
            &[VERSION, &standby.name, "-p", &port, "--", "--auth=trust"],
        )
        .await
        .unwrap_or_else(|e| panic!("pg_createcluster (standby): {e}"));
        let data = format!("/var/lib/postgresql/{VERSION}/{}", standby.name);
        // Emptied, not removed: the server's user may not create it again in its parent.
        for entry in std::fs::read_dir(&data).unwrap_or_else(|e| panic!("{data}: {e}")) {
            let path = entry.unwrap().path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.unwrap_or_else(|e| panic!("clear {}: {e}", path.display()));
        }
        // The files must belong to the server's user, not to a root test runner.
        let primary_port = primary.port.to_string();
        let backup = [
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            &primary_port,
            "-U",
            "postgres",
            "-D",
            &data,
            "-R",
            "-X",
            "stream",
            "--no-sync",
        ];
        let as_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let result = if as_root {
            let mut all = vec!["-u", "postgres", "--"];
            all.extend_from_slice(&backup);
            run("runuser", &all).await
        } else {
            run(backup[0], &backup[1..]).await
        };
        result.unwrap_or_else(|e| panic!("pg_basebackup: {e}"));
        standby.start().await;
        primary.wait_streaming().await;
        standby
    }

    /// Waits (up to 30 s) until a standby streams from this cluster.
    pub async fn wait_streaming(&self) {
        let url = self.url("postgres");
        let what = format!("a standby to stream from {}", self.name);
        wait_until(&what, Duration::from_secs(30), async || {
            let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await else {
                return false;
            };
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
            )
            .fetch_one(&mut c)
            .await
            .unwrap_or(0);
            n > 0
        })
        .await
    }

    /// Turns synchronous replication on: a commit returns once a standby has it.
    pub async fn synchronous(&self) {
        self.set("synchronous_standby_names", "*").await;
        self.ctl("reload")
            .await
            .unwrap_or_else(|e| panic!("reload: {e}"));
    }

    /// Promotes a standby; returns once it accepts writes.
    pub async fn promote(&self) {
        self.ctl("promote")
            .await
            .unwrap_or_else(|e| panic!("promote: {e}"));
    }

    async fn ctl(&self, action: &str) -> Result<(), String> {
        self.ctl_args(&[action]).await
    }

    async fn ctl_args(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec![VERSION, &self.name];
        all.extend_from_slice(args);
        run("pg_ctlcluster", &all).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Blocking on purpose: the cluster must be gone before the test process may exit.
        let dropped = Command::new("pg_dropcluster")
            .args(["--stop", VERSION, &self.name])
            .output();
        match dropped {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "pg_dropcluster {}: {}",
                self.name,
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("pg_dropcluster {}: {e}", self.name),
        }
    }
}

/// Runs a `postgresql-common` tool; its stderr is the error. Bounded: a tool that hangs
/// fails the test instead of stalling it.
async fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("{program} {args:?} did not finish in 120 s"))?
    .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?} exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
