//! A worker raises its soft open-files limit at start: every request in flight holds a
//! socket, and the soft limit many service managers start with (1,024 under systemd) is
//! below what 1,024 requests in flight need. When even the hard limit is too low, it says so.

use std::time::Duration;

use rlimit::Resource;

use crate::support::app::TestDb;
use crate::support::process::{Proc, start_with};

/// "Max open files  <soft>  <hard>  files" of a running process.
fn open_files_limits(pid: i32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("the open-files line");
    let mut values = line["Max open files".len()..].split_whitespace();
    (
        values.next().unwrap().to_string(),
        values.next().unwrap().to_string(),
    )
}

/// A worker with `worker_concurrency` 1024, started with the open-files limits `soft`/`hard`.
async fn worker_with_limits(db: &TestDb, soft: u64, hard: u64) -> Proc {
    start_with(
        &db.url,
        "worker",
        &[("CALLBACKD_WORKER_CONCURRENCY", "1024")],
        |cmd| {
            // SAFETY: between fork and exec the closure makes one system call (setrlimit),
            // which is async-signal-safe, and allocates nothing.
            unsafe {
                cmd.pre_exec(move || Resource::NOFILE.set(soft, hard));
            }
        },
    )
    .await
}

#[tokio::test]
async fn a_worker_raises_its_soft_open_files_limit_and_warns_when_the_hard_one_is_too_low() {
    let db = TestDb::create().await;
    let (_, hard) = Resource::NOFILE.get().unwrap();
    assert!(
        hard >= 2_000,
        "this test needs a hard open-files limit of at least 2,000 (it is {hard})"
    );

    // Soft 256, hard as the test's: raised to the hard limit, nothing to warn about.
    let worker = worker_with_limits(&db, 256, hard).await;
    let (soft_now, hard_now) = open_files_limits(worker.pid());
    assert_eq!(
        (soft_now, hard_now.clone()),
        (hard_now.clone(), hard.to_string()),
        "the soft limit was raised to the hard one"
    );
    assert!(
        !worker.output().contains("open-files limit"),
        "no warning: {}",
        worker.output()
    );
    drop(worker);

    // Hard 512: 1,024 requests in flight cannot all have a socket. The worker still starts,
    // and says which settings need what.
    let worker = worker_with_limits(&db, 256, 512).await;
    assert_eq!(
        open_files_limits(worker.pid()),
        ("512".to_string(), "512".to_string())
    );
    worker
        .wait_for_output(
            "the open-files limit (512) is below",
            Duration::from_secs(10),
        )
        .await;
    let warned = worker.output();
    assert!(
        warned.contains("worker_concurrency") && warned.contains("(1096)"),
        "the warning names the settings and what they need (1,024 + 8 + 64): {warned}"
    );
}
