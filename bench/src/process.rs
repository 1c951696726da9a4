//! The callbackd worker under test runs as a child process (the product's own `callbackd`
//! binary), so its CPU time and peak memory are its own, not the benchmark's or the
//! receiver's.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use tokio::process::{Child, Command};

pub struct Worker {
    child: Child,
    pid: u32,
}

/// Peak RSS (VmHWM) and CPU seconds (user + system) of a live process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub peak_rss_mb: f64,
    pub rss_mb: f64,
    pub cpu_seconds: f64,
}

impl Worker {
    pub fn spawn(database_url: &str, extra_env: &[(&str, String)]) -> anyhow::Result<Worker> {
        Self::spawn_role("worker", database_url, extra_env)
    }

    /// `callbackd serve --role <role>` (`api`, `worker` or `all`).
    pub fn spawn_role(
        role: &str,
        database_url: &str,
        extra_env: &[(&str, String)],
    ) -> anyhow::Result<Worker> {
        let mut cmd = Command::new(product_binary()?);
        cmd.args(["serve", "--role", role])
            .env("DATABASE_URL", database_url)
            .env("CALLBACKD_ALLOW_PRIVATE_TARGETS", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow::anyhow!("worker exited at once"))?;
        Ok(Worker { child, pid })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn usage(&self) -> Usage {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Usage {
            peak_rss_mb: kb("VmHWM:") / 1024.0,
            rss_mb: kb("VmRSS:") / 1024.0,
            cpu_seconds: cpu_seconds(self.pid),
        }
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "worker exited with {status}");
                Ok(())
            }
            Err(_) => {
                self.child.kill().await?;
                anyhow::bail!("worker did not stop within 30 s of SIGTERM")
            }
        }
    }
}

/// What builds this bench and the product binary it starts, in this build's profile.
const BUILD_BOTH: &str = if cfg!(debug_assertions) {
    "cargo build --workspace"
} else {
    "cargo build --release --workspace"
};

/// The `callbackd` binary next to this executable: cargo puts every binary of the workspace
/// in the same target directory. Building the bench (`cargo run -p callbackd-bench`) builds
/// the product's library into it but not the product's binary, so the binary may be missing,
/// or older than the source the bench was built from: then the numbers would be another
/// product's. Either is refused, with the command that builds both.
pub fn product_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe.with_file_name(format!("callbackd{}", std::env::consts::EXE_SUFFIX));
    let built = match std::fs::metadata(&binary).and_then(|m| m.modified()) {
        Ok(built) => built,
        Err(_) => anyhow::bail!(
            "the callbackd binary is not at {}: run `{BUILD_BOTH}` (builds callbackd and \
             this bench)",
            binary.display()
        ),
    };
    // The product's source, where this bench was built from (absent once the bench binary
    // is copied elsewhere: nothing to compare with then).
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ sits in the workspace root");
    let inputs = ["src", "migrations", "config", "Cargo.toml", "Cargo.lock"];
    if let Some((changed, _)) = inputs
        .iter()
        .filter_map(|i| newest(&root.join(i)))
        .max_by_key(|(_, t)| *t)
        .filter(|(_, t)| *t > built)
    {
        anyhow::bail!(
            "{} is older than {}: run `{BUILD_BOTH}` (builds callbackd and this bench)",
            binary.display(),
            changed.display()
        );
    }
    Ok(binary)
}

/// The most recently modified file at or below `path`, with its time.
fn newest(path: &Path) -> Option<(PathBuf, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return Some((path.to_path_buf(), meta.modified().ok()?));
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|e| newest(&e.ok()?.path()))
        .max_by_key(|(_, t)| *t)
}

/// CPU seconds (user + system) a live process has used so far, from /proc/<pid>/stat; 0 when
/// it is gone.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat: indexes 11 and 12 after the name.
    let clk = 100.0; // USER_HZ on Linux
    (ticks(11) + ticks(12)) / clk
}

/// CPU seconds used so far by every `postgres` process of the machine (the postmaster's
/// children: backends, WAL writer, checkpointer, autovacuum; other users of the server too).
pub fn all_postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == "postgres")
        })
        .map(cpu_seconds)
        .sum()
}

/// The processes of a fleet taken together: memory and CPU summed.
pub fn total_usage(workers: &[Worker]) -> Usage {
    workers
        .iter()
        .map(Worker::usage)
        .fold(Usage::default(), |a, u| Usage {
            peak_rss_mb: a.peak_rss_mb + u.peak_rss_mb,
            rss_mb: a.rss_mb + u.rss_mb,
            cpu_seconds: a.cpu_seconds + u.cpu_seconds,
        })
}

/// Whether `pid` still runs (not gone, not a zombie waiting to be reaped).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}
