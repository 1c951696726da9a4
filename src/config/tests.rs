//! The settings' loading, validation and redaction, against the compiled-in defaults.

use super::*;
use secrecy::ExposeSecret;

#[test]
fn compiled_in_defaults_match_the_contract() {
    let s = Settings::defaults();
    assert_eq!(
        s.database_url,
        "postgres://postgres@127.0.0.1:5432/callbackd"
    );
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.retry_base_ms, 1000);
    assert_eq!(s.retry_max_ms, 900_000);
    assert_eq!(s.max_attempts, 10);
    assert!(!s.allow_private_targets);
    assert_eq!(s.lease_ms, 60_000);
    s.validate().unwrap();
}

#[test]
fn environment_variables_override_the_defaults() {
    let env = [
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/other"),
        ("CALLBACKD_LISTEN", "127.0.0.1:9999"),
        ("CALLBACKD_RETRY_BASE_MS", "5"),
        ("CALLBACKD_RETRY_MAX_MS", "50"),
        ("CALLBACKD_MAX_ATTEMPTS", "3"),
        ("CALLBACKD_ALLOW_PRIVATE_TARGETS", "true"),
        ("CALLBACKD_WORKER_CONCURRENCY", "7"),
        ("CALLBACKD_LEASE_MS", "30000"),
        ("CALLBACKD_API_TOKEN", "t0ken"),
        ("UNRELATED", "x"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let s = Settings::load_with_env(None, env).unwrap();
    assert_eq!(s.database_url, "postgres://postgres@127.0.0.1:5432/other");
    assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(
        (s.retry_base_ms, s.retry_max_ms, s.max_attempts),
        (5, 50, 3)
    );
    assert!(s.allow_private_targets);
    assert_eq!(s.worker_concurrency, 7);
    assert_eq!(s.lease_ms, 30_000);
    assert_eq!(s.api_token.expose_secret(), "t0ken");
}

#[test]
fn metrics_listen_is_empty_or_an_address() {
    assert_eq!(Settings::defaults().metrics_address().unwrap(), None);
    let env = [("CALLBACKD_METRICS_LISTEN", "127.0.0.1:9100")]
        .map(|(k, v)| (k.to_string(), v.to_string()));
    let s = Settings::load_with_env(None, env).unwrap();
    assert_eq!(
        s.metrics_address().unwrap().map(|a| a.to_string()),
        Some("127.0.0.1:9100".to_string())
    );
    for bad in ["9100", "localhost", "127.0.0.1:99999", "\u{0}"] {
        let env = [("CALLBACKD_METRICS_LISTEN".to_string(), bad.to_string())];
        let err = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains("metrics_listen"), "{bad}: {err}");
    }
}

#[test]
fn a_bad_value_is_a_clear_error() {
    let env = [("CALLBACKD_RETRY_BASE_MS".to_string(), "soon".to_string())];
    let err = Settings::load_with_env(None, env).unwrap_err().to_string();
    assert!(err.contains("retry_base_ms"), "{err}");
}

#[test]
fn lease_must_outlive_the_endpoint_timeout() {
    let mut s = Settings::defaults();
    s.lease_ms = s.endpoint_timeout_ms;
    let err = s.validate().unwrap_err().to_string();
    assert!(err.contains("lease_ms"), "{err}");
}

#[test]
fn debug_output_hides_secrets() {
    let mut s = Settings::defaults();
    s.api_token = "tok-very-secret".into();
    s.secret_key = "key-very-secret".into();
    s.database_url = "postgres://u:pw-very-secret@h/db".into();
    let shown = format!("{s:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
}

#[test]
fn pooler_and_failover_settings_come_from_the_environment() {
    let defaults = Settings::defaults();
    assert!(defaults.session_database_url.is_empty());
    let env = [
        (
            "DATABASE_URL",
            "postgres://u:pw-very-secret@h1:6432,h2:6432/db",
        ),
        (
            "CALLBACKD_SESSION_DATABASE_URL",
            "postgres://u:pw-very-secret@h1:5432,h2:5432/db",
        ),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let s = Settings::load_with_env(None, env).unwrap();
    assert_eq!(
        s.session_database_url,
        "postgres://u:pw-very-secret@h1:5432,h2:5432/db"
    );
    let shown = format!("{s:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    assert!(shown.contains("h1:6432,h2:6432"), "{shown}");
}

#[test]
fn transaction_pooling_needs_a_session_url_and_a_known_mode_and_vacuum_rows_a_sane_count() {
    assert_eq!(Settings::defaults().database_pool_mode, PoolMode::Session);
    let load = |vars: &[(&str, &str)]| {
        Settings::load_with_env(
            None,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    };
    let err = load(&[("CALLBACKD_DATABASE_POOL_MODE", "transaction")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("session_database_url"), "{err}");
    let err = load(&[("CALLBACKD_DATABASE_POOL_MODE", "statement")])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("database_pool_mode") && err.contains("statement"),
        "{err}"
    );
    for bad in ["-1", "1000000001", "18446744073709551615", "lots"] {
        let err = load(&[("CALLBACKD_QUEUE_VACUUM_DEAD_ROWS", bad)])
            .unwrap_err()
            .to_string();
        assert!(err.contains("queue_vacuum_dead_rows"), "{bad}: {err}");
    }
    let s = load(&[
        ("CALLBACKD_DATABASE_POOL_MODE", "transaction"),
        ("CALLBACKD_SESSION_DATABASE_URL", "postgres://h:5432/db"),
    ])
    .unwrap();
    assert_eq!(s.database_pool_mode, PoolMode::Transaction);
}

#[test]
fn a_bad_host_list_is_a_clear_error() {
    for (key, var) in [
        ("database_url", "DATABASE_URL"),
        ("session_database_url", "CALLBACKD_SESSION_DATABASE_URL"),
    ] {
        let env = [(
            var.to_string(),
            "postgres://h1:5432,h2:99999/db".to_string(),
        )];
        let err = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(err.contains(key) && err.contains("h2:99999"), "{err}");
    }
}

#[test]
fn alert_settings_come_from_the_environment() {
    let env = [
        ("CALLBACKD_ALERTS_WEBHOOK_URL", "https://ops.example/hook"),
        ("CALLBACKD_ALERTS_TOKEN", "alert-very-secret"),
        ("CALLBACKD_ALERTS_FAILURE_STREAK", "3"),
        ("CALLBACKD_ALERTS_MIN_INTERVAL_S", "60"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()));
    let s = Settings::load_with_env(None, env).unwrap();
    assert_eq!(s.alerts_webhook_url, "https://ops.example/hook");
    assert_eq!(s.alerts_token.expose_secret(), "alert-very-secret");
    assert_eq!((s.alerts_failure_streak, s.alerts_min_interval_s), (3, 60));
    assert!(!format!("{s:?}").contains("very-secret"));
    let defaults = Settings::defaults();
    assert!(defaults.alerts_webhook_url.is_empty());
    assert_eq!(defaults.alerts_failure_streak, 10);
    assert_eq!(defaults.alerts_min_interval_s, 300);
}
