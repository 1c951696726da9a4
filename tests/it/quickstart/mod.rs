//! The README's quick start, run as written against the real binary: `serve` with nothing
//! configured but a fresh database name and a free port, the API section's curl examples in
//! order (each answer checked against the one the README shows), the demo and the commands it
//! prints; and every start-up refusal as the one line a person reads.
//!
//! Needs curl and jq (the README's examples use them): `./test.sh` installs both.

mod readme;
mod run;
mod startup_errors;

use std::path::Path;
use std::time::Duration;

use crate::support::app::{TestDb, admin_url};
use crate::support::wait::wait_until;
use run::{BIN, Running, after, callbackd};

/// A database name no one has created yet: `serve` must create it itself.
fn new_database() -> TestDb {
    let mut url = url::Url::parse(&admin_url()).unwrap();
    url.set_path(&format!("cbtest_{}", uuid::Uuid::new_v4().simple()));
    TestDb::adopt(url.as_str())
}

/// Where a program is on PATH, or a panic naming what installs it.
fn on_path(program: &str) -> std::path::PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{program} is installed (./test.sh installs it)"))
}

/// A `curl` that runs the real one and records each call's status and body in `log`
/// (1.status, 1.body, 2.status, …), printing the body as curl would.
fn recording_curl(dir: &Path, log: &Path) {
    let real = on_path("curl");
    let script = format!(
        "#!/bin/sh\n\
         n=$(( $(cat '{log}/count' 2>/dev/null || echo 0) + 1 ))\n\
         echo $n > '{log}/count'\n\
         '{real}' \"$@\" -o '{log}/'$n.body -w '%{{http_code}}' > '{log}/'$n.status\n\
         rc=$?\n\
         cat '{log}/'$n.body 2>/dev/null\n\
         exit $rc\n",
        log = log.display(),
        real = real.display()
    );
    let path = dir.join("curl");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// PATH with `first` before the test's own.
fn path_with(first: &Path) -> std::ffi::OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(first.to_path_buf()).chain(std::env::split_paths(&rest)))
        .unwrap()
}

/// The README's `cargo run --release -- SUBCOMMAND` line, run with the built binary, with
/// nothing configured but the database and a free port (the OS picks it; `serve` prints it).
fn start_as_the_readme_says(readme: &str, subcommand: &str, db: &TestDb) -> Running {
    let args = readme::cargo_run_args(readme, subcommand);
    assert_eq!(args, [subcommand], "the README runs `{subcommand}` bare");
    let mut command = callbackd(&[subcommand]);
    command
        .env("DATABASE_URL", &db.url)
        .env("CALLBACKD_LISTEN", "127.0.0.1:0");
    Running::spawn(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_quick_start_and_api_examples_answer_as_shown() {
    on_path("jq");
    let readme = readme::text();
    let two_commands = &readme[readme.find("## Two commands").unwrap()..];
    assert!(
        two_commands[..two_commands.find("\n```\n").unwrap()].contains("\n./test.sh "),
        "the second of the two commands is ./test.sh"
    );
    let db = new_database();
    let mut serve = start_as_the_readme_says(&readme, "serve", &db);
    let printed = serve
        .wait_for("the address and the token", |out| {
            out.contains("API listening on") && out.contains("API token")
        })
        .await;
    let api = after(&printed, "callbackd API listening on ")
        .unwrap()
        .to_string();
    let token = after(&printed, "set CALLBACKD_API_TOKEN to fix one): ")
        .unwrap()
        .to_string();

    let block = readme::block(&readme, "api");
    let script = readme::set_variable(&block, "API", &api);
    let script = readme::set_variable(&script, "T", &token);
    let shown = readme::answers(&block);
    let temp = std::env::temp_dir().join(format!("quickstart-{}", uuid::Uuid::new_v4().simple()));
    let log = temp.join("log");
    std::fs::create_dir_all(&log).unwrap();
    recording_curl(&temp, &log);
    let output = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env("PATH", path_with(&temp))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the README's examples run: {}\n{script}",
        String::from_utf8_lossy(&output.stderr)
    );

    let calls: usize = std::fs::read_to_string(log.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(calls, shown.len(), "one `# →` answer per curl: {shown:#?}");
    for (n, answer) in (1..).zip(&shown) {
        let status = std::fs::read_to_string(log.join(format!("{n}.status"))).unwrap();
        let body = std::fs::read_to_string(log.join(format!("{n}.body"))).unwrap_or_default();
        assert_eq!(status, answer.status.to_string(), "{}: {body}", answer.line);
        if let Some(shape) = &answer.shape {
            let got: serde_json::Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{}: JSON answer: {e}: {body}", answer.line));
            readme::check_shape(shape, &got, "")
                .unwrap_or_else(|e| panic!("{}: {e}\n{body}", answer.line));
        }
    }
    std::fs::remove_dir_all(&temp).ok();

    // SIGTERM: serve stops cleanly, as the README says.
    let status = serve.stop().await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_demo_and_the_commands_it_prints_work() {
    let readme = readme::text();
    let db = new_database();
    let demo_db = TestDb::adopt(&format!("{}_demo", db.url));
    let mut demo = start_as_the_readme_says(&readme, "demo", &db);
    let printed = demo
        .wait_for("the commands to try", |out| {
            out.contains("Ctrl-C stops the demo.")
        })
        .await;
    let look_around = printed
        .split("Look around:\n")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .to_string();

    // The four flaky deliveries are dead (three attempts each) before the CLI looks for them.
    let pool = sqlx::PgPool::connect(&demo_db.url).await.unwrap();
    let dead: Vec<uuid::Uuid> =
        wait_until("4 dead deliveries", Duration::from_secs(30), async || {
            let dead: Vec<uuid::Uuid> =
                sqlx::query_scalar("SELECT id FROM deliveries WHERE state = 'dead' ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            if dead.len() == 4 { Ok(dead) } else { Err(dead) }
        })
        .await;
    pool.close().await;

    let bin_dir = Path::new(BIN).parent().unwrap();
    let mut ran = Vec::new();
    for line in look_around.lines() {
        let (label, rest) = line.trim().split_once(char::is_whitespace).unwrap();
        let rest = rest.trim();
        // A URL to open (the console) is fetched; every other line is a command to type.
        let command = match rest.strip_prefix("http://") {
            Some(_) => format!("curl -sf {}", rest.split_whitespace().next().unwrap()),
            None => rest.to_string(),
        };
        let output = tokio::process::Command::new("bash")
            .args(["-euo", "pipefail", "-c", &command])
            .env("PATH", path_with(bin_dir))
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{label}: `{command}`: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        match label {
            "CLI" => {
                for id in &dead {
                    assert!(stdout.contains(&id.to_string()), "{id} listed:\n{stdout}");
                }
            }
            "replay" => assert!(stdout.contains("replayed 4"), "{stdout}"),
            "metrics" => assert!(
                stdout.contains("callbackd_delivery_outcomes_total"),
                "{stdout}"
            ),
            "console" => assert!(stdout.contains("<title>"), "{stdout}"),
            other => panic!("the demo prints a line the test does not know: {other}"),
        }
        ran.push(label.to_string());
    }
    assert_eq!(ran, ["console", "CLI", "replay", "metrics"]);

    let status = demo.stop().await;
    assert!(status.success(), "{status:?}");
}
