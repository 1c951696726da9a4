//! Property tests: ingest validation never panics and accepts what it should; callback URL
//! building always yields a URL that keeps the endpoint's query and carries the identifier
//! exactly.

use callbackd::model::NewNotification;
use callbackd::outbound::proposal_status_url;
use percent_encoding::percent_decode_str;
use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

const EVENT_TYPES: [&str; 13] = [
    "proposal.status",
    "schedule.event",
    "banking.transfer.sent",
    "banking.transfer.received",
    "banking.ted.sent",
    "banking.ted.received",
    "banking.ted.returned",
    "banking.boleto.paid_other_bank",
    "banking.boleto.registered",
    "banking.boleto.changed",
    "banking.boleto.write_off",
    "banking.boleto.payment_confirmed",
    "no.such.event",
];

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A notification-shaped object whose every field may be missing, of the wrong type, or odd.
fn notification_like() -> impl Strategy<Value = Value> {
    (
        prop::option::of(prop_oneof![Just(json!(Uuid::new_v4())), any_json()]),
        prop::option::of(prop_oneof![
            Just(json!("production")),
            Just(json!("homologation")),
            any_json()
        ]),
        prop::option::of(prop_oneof![
            prop::sample::select(&EVENT_TYPES[..]).prop_map(|e| json!(e)),
            any_json()
        ]),
        prop::option::of(prop_oneof![Just(json!(Uuid::new_v4())), any_json()]),
        prop::option::of(prop_oneof![(-3i64..15).prop_map(|n| json!(n)), any_json()]),
        prop::option::of(prop_oneof![".{0,250}".prop_map(Value::String), any_json()]),
        prop::option::of(any_json()),
        prop::option::of(("[a-z]{1,8}", any_json())),
    )
        .prop_map(|(p, env, et, prop_, status, ident, body, extra)| {
            let mut o = serde_json::Map::new();
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    o.insert(k.to_string(), v);
                }
            };
            put("partner_id", p);
            put("environment", env);
            put("event_type", et);
            put("proposal", prop_);
            put("status", status);
            put("identifier", ident);
            put("body", body);
            if let Some((k, v)) = extra {
                put(&k, Some(v));
            }
            Value::Object(o)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn ingest_never_panics_on_arbitrary_text(text in ".{0,400}") {
        if let Ok(n) = serde_json::from_str::<NewNotification>(&text) {
            let _ = n.validate();
            let _ = n.fingerprint();
        }
    }

    #[test]
    fn ingest_never_panics_on_notification_shaped_json(v in notification_like()) {
        let text = v.to_string();
        if let Ok(n) = serde_json::from_str::<NewNotification>(&text) {
            let _ = n.validate();
            let _ = n.fingerprint();
        }
    }

    #[test]
    fn valid_status_changes_are_accepted_and_round_trip(
        partner in any::<u128>().prop_map(Uuid::from_u128),
        production in any::<bool>(),
        proposal in any::<u128>().prop_map(Uuid::from_u128),
        status in 0i16..=11,
        identifier in prop::option::of("\\PC{0,200}"),
        body in prop::option::of(prop::collection::btree_map("[a-zA-Z]{1,10}", any_json(), 0..5)),
    ) {
        let environment = if production { "production" } else { "homologation" };
        let body_text = body.map(|m| Value::Object(m.into_iter().collect()).to_string());
        let mut text = format!(
            r#"{{"partner_id":"{partner}","environment":"{environment}","event_type":"proposal.status","proposal":"{proposal}","status":{status}"#
        );
        if let Some(i) = &identifier {
            text.push_str(&format!(r#","identifier":{}"#, json!(i)));
        }
        if let Some(b) = &body_text {
            text.push_str(&format!(r#","body":{b}"#));
        }
        text.push('}');
        let n: NewNotification = serde_json::from_str(&text).unwrap();
        n.validate().unwrap();
        prop_assert_eq!(n.partner_id, partner);
        prop_assert_eq!(n.proposal, Some(proposal));
        prop_assert_eq!(n.identifier.as_deref(), identifier.as_deref());
        prop_assert_eq!(n.body.as_ref().map(|b| b.get().to_string()), body_text);
        let fp: Value = serde_json::from_str(&n.fingerprint()).unwrap();
        prop_assert_eq!(&fp["status"], &json!(status));
        prop_assert_eq!(&fp["environment"], &json!(environment));
    }

    #[test]
    fn callback_urls_keep_the_query_and_carry_the_identifier(
        https in any::<bool>(),
        host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,6}){1,2}",
        port in prop::option::of(1u16..),
        path in "(/[a-zA-Z0-9._~%-]{0,10}){0,3}",
        query in prop::option::of("[a-zA-Z0-9=&._~%+-]{0,40}"),
        proposal in any::<u128>().prop_map(Uuid::from_u128),
        status in 0i16..=11,
        identifier in prop::option::of(".{0,60}"),
    ) {
        let scheme = if https { "https" } else { "http" };
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let endpoint = format!("{scheme}://{host}{port}{path}{query}");
        let Ok(original) = url::Url::parse(&endpoint) else {
            return Ok(()); // not an URL registration would accept
        };
        let built = proposal_status_url(&endpoint, proposal, status, identifier.as_deref()).unwrap();
        // It parses back to itself.
        let again = url::Url::parse(built.as_str()).unwrap();
        prop_assert_eq!(&again, &built);
        prop_assert_eq!(built.host_str(), original.host_str());
        prop_assert_eq!(built.path(), original.path());
        let q = built.query().unwrap();
        let ours = format!("proposal={proposal}&status={status}&identifier=");
        match original.query() {
            Some(orig) if !orig.is_empty() => {
                let expected_prefix = format!("{orig}&{ours}");
                prop_assert!(q.starts_with(&expected_prefix), "{} vs {}", q, orig);
            }
            _ => prop_assert!(q.starts_with(&ours)),
        }
        let encoded = &q[q.rfind("&identifier=").map(|i| i + 12).unwrap_or(ours.len())..];
        prop_assert!(!encoded.contains(['&', '=', '+', ' ', '#']), "{}", encoded);
        let decoded = percent_decode_str(encoded).decode_utf8().unwrap();
        prop_assert_eq!(decoded.as_ref(), identifier.as_deref().unwrap_or(""));
    }
}
