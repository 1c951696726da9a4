//! Every refusal to start is one line on stderr naming the setting and the fix, with a
//! non-zero exit: the real binary, as a person would meet it.

use super::run::{callbackd, closed_port, refusal};
use crate::support::app::TestDb;

const FAILURE: Option<i32> = Some(1);

#[tokio::test]
async fn serve_demo_migrate_and_the_cli_say_an_unreachable_database_in_one_line() {
    let port = closed_port();
    let url = format!("postgres://app:hunter2@127.0.0.1:{port}/shop");
    for args in [
        &["serve"][..],
        &["demo"],
        &["migrate"],
        &["partners", "list"],
        &["deliveries", "list", "--state", "dead"],
    ] {
        let mut command = callbackd(args);
        command.env("DATABASE_URL", &url);
        let refused = refusal(command).await;
        let line = refused.line();
        // The demo runs on <name>_demo next to the configured database.
        let tried = if args == ["demo"] {
            "shop_demo"
        } else {
            "shop"
        };
        assert!(
            line.starts_with(&format!(
                "callbackd: cannot reach PostgreSQL at postgres://app:***@127.0.0.1:{port}/{tried} ("
            )),
            "{args:?}: {line}"
        );
        assert!(
            line.ends_with(
                "start PostgreSQL there, or set DATABASE_URL to a server that is running"
            ),
            "{args:?}: {line}"
        );
        assert!(!line.contains("hunter2"), "{args:?}: {line}");
        assert!(
            line.to_lowercase().matches("refused").count() <= 1,
            "the cause once: {line}"
        );
        assert_eq!(refused.code, FAILURE, "{args:?}");
    }
}

#[tokio::test]
async fn a_malformed_secret_key_is_one_line_with_the_fix() {
    let mut command = callbackd(&["serve"]);
    command.env("CALLBACKD_SECRET_KEY", "not base64!").env(
        "DATABASE_URL",
        format!("postgres://127.0.0.1:{}/x", closed_port()),
    );
    let refused = refusal(command).await;
    assert_eq!(
        refused.line(),
        "callbackd: CALLBACKD_SECRET_KEY is malformed: set it to 32 bytes in base64 \
         (`openssl rand -base64 32`), or unset it to use the development key"
    );
    assert_eq!(refused.code, FAILURE);
}

#[tokio::test]
async fn a_key_other_than_the_databases_is_one_line_with_the_fix() {
    let db = TestDb::create().await;
    let key_one = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let key_two = "ZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY=";
    let mut first = callbackd(&["migrate"]);
    first
        .env("DATABASE_URL", &db.url)
        .env("CALLBACKD_SECRET_KEY", key_one);
    first.stdout(std::process::Stdio::null());
    assert!(first.status().await.unwrap().success());

    let mut second = callbackd(&["serve"]);
    second
        .env("DATABASE_URL", &db.url)
        .env("CALLBACKD_SECRET_KEY", key_two)
        .env("CALLBACKD_LISTEN", "127.0.0.1:0");
    let refused = refusal(second).await;
    let line = refused.line();
    assert!(
        line.starts_with("callbackd: CALLBACKD_SECRET_KEY is not the key this database's"),
        "{line}"
    );
    assert!(line.contains("start with the original key"), "{line}");
    assert!(!line.contains(key_two) && !line.contains(key_one), "{line}");
    assert_eq!(refused.code, FAILURE);
}

#[tokio::test]
async fn a_bad_setting_is_one_line_naming_its_variable() {
    let cases = [
        (
            "CALLBACKD_RETRY_BASE_MS",
            "soon",
            "callbackd: setting `retry_base_ms` is invalid (got string \"soon\", expected an \
             integer): fix CALLBACKD_RETRY_BASE_MS or `retry_base_ms` in the --config file",
        ),
        (
            "CALLBACKD_LEASE_MS",
            "10",
            "callbackd: setting `lease_ms` is invalid (must exceed endpoint_timeout_ms (a lease \
             must outlive the request it covers)): fix CALLBACKD_LEASE_MS or `lease_ms` in the \
             --config file",
        ),
        (
            "DATABASE_URL",
            "not a url",
            "callbackd: setting `database_url` is invalid (must start with postgres:// or postgresql://): fix \
             DATABASE_URL or `database_url` in the --config file",
        ),
    ];
    for (variable, value, expected) in cases {
        let mut command = callbackd(&["serve"]);
        command.env(variable, value);
        let refused = refusal(command).await;
        assert_eq!(refused.line(), expected, "{variable}={value:?}");
        assert_eq!(refused.code, FAILURE, "{variable}");
    }
}

#[tokio::test]
async fn a_listen_address_in_use_is_one_line_naming_callbackd_listen() {
    let db = TestDb::create().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let mut command = callbackd(&["serve"]);
    command
        .env("DATABASE_URL", &db.url)
        .env("CALLBACKD_LISTEN", address.to_string());
    let refused = refusal(command).await;
    assert_eq!(
        refused.line(),
        format!(
            "callbackd: cannot listen on {address}: the port is already in use: stop the process \
             that holds it, or set CALLBACKD_LISTEN to a free address"
        )
    );
    assert_eq!(refused.code, FAILURE);
    drop(taken);
}
