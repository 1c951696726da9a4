use std::sync::Arc;

use uuid::Uuid;

use super::*;
use serde_json::json;

#[test]
fn parse_and_refuse() {
    assert_eq!(AuthConfig::from_json(None).unwrap(), AuthConfig::None);
    assert_eq!(
        AuthConfig::from_json(Some(&json!({"type": "none"}))).unwrap(),
        AuthConfig::None
    );
    let b = AuthConfig::from_json(Some(&json!({"type": "bearer", "token": "t"}))).unwrap();
    assert_eq!(b.type_name(), "bearer");
    assert_eq!(b.public_view(), json!({"type": "bearer"}));

    let missing = AuthConfig::from_json(Some(&json!({"type": "bearer"}))).unwrap_err();
    assert_eq!(missing.field, "auth.token", "{missing:?}");
    assert!(missing.message.contains("token"), "{missing:?}");
    let empty = AuthConfig::from_json(Some(&json!({"type": "bearer", "token": ""}))).unwrap_err();
    assert_eq!(empty.field, "auth.token");
    let unknown = AuthConfig::from_json(Some(&json!({"type": "kerberos"}))).unwrap_err();
    assert_eq!(unknown.field, "auth.type", "{unknown:?}");
    let no_type = AuthConfig::from_json(Some(&json!({"token": "x"}))).unwrap_err();
    assert_eq!(no_type.field, "auth.type", "{no_type:?}");
    let extra = AuthConfig::from_json(Some(&json!({"type": "bearer", "token": "t", "tokn": "x"})));
    assert!(extra.is_err(), "unknown fields are refused");
    assert!(AuthConfig::from_json(Some(&json!("bearer"))).is_err());
}

#[test]
fn every_type_round_trips_and_hides_its_secrets() {
    let configs = [
        json!({"type": "api_key", "key": "k-secret-1"}),
        json!({"type": "x_api_key", "key": "k-secret-2"}),
        json!({"type": "basic", "username": "u", "password": "p-secret-3"}),
        json!({"type": "digest", "username": "u", "password": "p-secret-4"}),
        json!({"type": "hmac", "secret": "h-secret-5"}),
        json!({"type": "jwt", "algorithm": "HS256", "key": "j-secret-6-0123456789abcdef0123", "issuer": "callbackd"}),
        json!({"type": "oauth2", "token_url": "https://auth.example/token", "client_id": "cid", "client_secret": "o-secret-7", "scope": "cb"}),
        json!({"type": "aws_sigv4", "access_key_id": "AKIDEXAMPLE", "secret_access_key": "a-secret-8", "region": "us-east-1", "service": "execute-api", "session_token": "a-secret-9"}),
    ];
    for c in configs {
        let parsed = AuthConfig::from_json(Some(&c)).unwrap_or_else(|e| panic!("{c}: {e:?}"));
        assert_eq!(parsed.type_name(), c["type"]);
        let stored = serde_json::to_value(&parsed).unwrap();
        assert_eq!(stored, c, "what is sealed is what came in");
        let view = parsed.public_view().to_string();
        assert!(!view.contains("secret-"), "{view}");
        let debug = format!("{parsed:?}");
        assert!(!debug.contains("secret-"), "{debug}");
    }
}

#[test]
fn sessions_live_per_endpoint_until_the_auth_changes() {
    let sessions = AuthSessions::default();
    let (e1, e2) = (Uuid::new_v4(), Uuid::new_v4());
    let digest = |p: &str| {
        AuthConfig::from_json(Some(
            &json!({"type": "digest", "username": "u", "password": p}),
        ))
        .unwrap()
    };
    let a = sessions.session_for(e1, &digest("one"));
    assert!(Arc::ptr_eq(&a, &sessions.session_for(e1, &digest("one"))));
    assert!(!Arc::ptr_eq(&a, &sessions.session_for(e2, &digest("one"))));
    let changed = sessions.session_for(e1, &digest("two"));
    assert!(
        !Arc::ptr_eq(&a, &changed),
        "a new password starts a new session"
    );
    assert!(Arc::ptr_eq(
        &changed,
        &sessions.session_for(e1, &digest("two"))
    ));
}
