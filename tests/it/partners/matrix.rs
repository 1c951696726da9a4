//! Every route of `/v1` with every role: operator, partner A (the owner of what the path
//! names), partner B, no token, a wrong token, A's revoked token. Allowed calls succeed;
//! every other one is a 401/403/404 that changes nothing.
//!
//! The app runs with `--role api` (no workers), so deliveries stay where the test puts them.

use std::collections::BTreeSet;

use callbackd::api::{ROUTE_ROLES, Role};
use callbackd::startup::Role as ProcessRole;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{call, fingerprint, make_token, partner_with_token};
use crate::support::app::{TestApp, TestDb, spawn_on};
use crate::support::receiver::Receiver;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Operators only: partners get 403 (or 404).
    Operator,
    /// Operators, and the partner that owns what the path names (others: 404).
    Owner,
    /// Operators and every partner, each seeing only its own (`/me`, the delivery list).
    Anyone,
}

/// Things of one partner for a route to name.
struct Target {
    partner: Uuid,
    endpoint: Uuid,
    notification: Uuid,
    dead: Uuid,
    pending: Uuid,
    token: Uuid,
}

struct Case {
    method: &'static str,
    template: &'static str,
    access: Access,
    ok: u16,
    request: fn(&Target) -> (String, Option<Value>),
}

fn cases() -> Vec<Case> {
    use Access::*;
    fn c(
        method: &'static str,
        template: &'static str,
        access: Access,
        ok: u16,
        request: fn(&Target) -> (String, Option<Value>),
    ) -> Case {
        Case {
            method,
            template,
            access,
            ok,
            request,
        }
    }
    fn notification(t: &Target) -> Value {
        json!({"partner_id": t.partner, "environment": "homologation",
               "event_type": "proposal.status",
               "proposal": "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d", "status": 3})
    }
    vec![
        c("GET", "/v1/me", Anyone, 200, |_| ("/v1/me".into(), None)),
        c("POST", "/v1/partners", Operator, 201, |_| {
            ("/v1/partners".into(), Some(json!({"name": "New"})))
        }),
        c("GET", "/v1/partners", Operator, 200, |_| {
            ("/v1/partners".into(), None)
        }),
        c("GET", "/v1/partners/{id}", Owner, 200, |t| {
            (format!("/v1/partners/{}", t.partner), None)
        }),
        c("PATCH", "/v1/partners/{id}", Operator, 200, |t| {
            (
                format!("/v1/partners/{}", t.partner),
                Some(json!({"name": "Renamed", "production_requires_https": false})),
            )
        }),
        c("DELETE", "/v1/partners/{id}", Operator, 204, |t| {
            (format!("/v1/partners/{}", t.partner), None)
        }),
        c("POST", "/v1/partners/{id}/tokens", Operator, 201, |t| {
            (format!("/v1/partners/{}/tokens", t.partner), None)
        }),
        c("GET", "/v1/partners/{id}/tokens", Operator, 200, |t| {
            (format!("/v1/partners/{}/tokens", t.partner), None)
        }),
        c(
            "DELETE",
            "/v1/partners/{id}/tokens/{token_id}",
            Operator,
            200,
            |t| {
                (
                    format!("/v1/partners/{}/tokens/{}", t.partner, t.token),
                    None,
                )
            },
        ),
        c("GET", "/v1/partners/{id}/endpoints", Owner, 200, |t| {
            (format!("/v1/partners/{}/endpoints", t.partner), None)
        }),
        c("POST", "/v1/partners/{id}/endpoints", Owner, 201, |t| {
            (
                format!("/v1/partners/{}/endpoints", t.partner),
                Some(
                    json!({"environment": "homologation", "url": "http://127.0.0.1:9/new",
                            "method": "GET", "auth": {"type": "bearer", "token": "t0k"}}),
                ),
            )
        }),
        c("GET", "/v1/endpoints/{id}", Owner, 200, |t| {
            (format!("/v1/endpoints/{}", t.endpoint), None)
        }),
        c("PATCH", "/v1/endpoints/{id}", Owner, 200, |t| {
            (
                format!("/v1/endpoints/{}", t.endpoint),
                Some(json!({"timeout_ms": 3000, "auth": {"type": "hmac", "secret": "new"}})),
            )
        }),
        c("DELETE", "/v1/endpoints/{id}", Owner, 204, |t| {
            (format!("/v1/endpoints/{}", t.endpoint), None)
        }),
        c("POST", "/v1/endpoints/{id}/test", Owner, 200, |t| {
            (
                format!("/v1/endpoints/{}/test", t.endpoint),
                Some(json!({})),
            )
        }),
        c("GET", "/v1/endpoints/{id}/tests", Owner, 200, |t| {
            (format!("/v1/endpoints/{}/tests", t.endpoint), None)
        }),
        c("POST", "/v1/notifications", Operator, 202, |t| {
            ("/v1/notifications".into(), Some(notification(t)))
        }),
        c("POST", "/v1/notifications/batch", Operator, 202, |t| {
            (
                "/v1/notifications/batch".into(),
                Some(json!([notification(t), notification(t)])),
            )
        }),
        c("GET", "/v1/notifications/{id}", Owner, 200, |t| {
            (format!("/v1/notifications/{}", t.notification), None)
        }),
        c("GET", "/v1/deliveries", Anyone, 200, |t| {
            (format!("/v1/deliveries?partner_id={}", t.partner), None)
        }),
        c("POST", "/v1/deliveries/replay", Operator, 202, |t| {
            (
                "/v1/deliveries/replay".into(),
                Some(json!({"state": "dead", "partner_id": t.partner})),
            )
        }),
        c("GET", "/v1/deliveries/{id}", Owner, 200, |t| {
            (format!("/v1/deliveries/{}", t.dead), None)
        }),
        c("POST", "/v1/deliveries/{id}/replay", Owner, 202, |t| {
            (format!("/v1/deliveries/{}/replay", t.dead), None)
        }),
        c("POST", "/v1/deliveries/{id}/cancel", Owner, 200, |t| {
            (format!("/v1/deliveries/{}/cancel", t.pending), None)
        }),
        c("GET", "/v1/audit", Operator, 200, |t| {
            (format!("/v1/audit?partner_id={}", t.partner), None)
        }),
        c("GET", "/v1/stats/timeline", Operator, 200, |_| {
            ("/v1/stats/timeline?window=1h".to_string(), None)
        }),
    ]
}

struct World {
    app: TestApp,
    receiver: Receiver,
}

impl World {
    /// A fresh endpoint of `partner` (at the receiver), a notification with a pending and a
    /// dead delivery to it, and a token.
    async fn target(&self, partner: Uuid) -> Target {
        let e = self
            .app
            .create_endpoint(
                partner,
                json!({"environment": "homologation", "url": format!("{}/cb", self.receiver.base),
                       "method": "POST", "auth": {"type": "hmac", "secret": "s3cr3t-hmac"}}),
            )
            .await;
        let endpoint: Uuid = e["id"].as_str().unwrap().parse().unwrap();
        let mut deliveries = Vec::new();
        let mut notification = Uuid::nil();
        for _ in 0..2 {
            let n = self
                .app
                .enqueue(json!({"partner_id": partner, "environment": "homologation",
                                "event_type": "proposal.status",
                                "proposal": Uuid::new_v4(), "status": 9}))
                .await;
            notification = n["id"].as_str().unwrap().parse().unwrap();
            let d = n["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["endpoint_id"] == endpoint.to_string())
                .unwrap();
            deliveries.push(d["id"].as_str().unwrap().parse::<Uuid>().unwrap());
        }
        // Dead, as a worker leaves it: out of the queue.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "UPDATE deliveries SET state = 'dead', attempts = 1 WHERE id = '{0}';
             DELETE FROM delivery_queue WHERE delivery_id = '{0}'",
            deliveries[0]
        )))
        .execute(&self.app.pool)
        .await
        .unwrap();
        let (token, _) = make_token(&self.app, partner).await;
        Target {
            partner,
            endpoint,
            notification,
            dead: deliveries[0],
            pending: deliveries[1],
            token,
        }
    }
}

#[tokio::test]
async fn every_route_with_every_role() {
    let app = spawn_on(TestDb::create().await, ProcessRole::Api, |_| {}).await;
    let receiver = Receiver::start().await;
    let (a, token_a) = partner_with_token(&app, "Partner A").await;
    let (_b, token_b) = partner_with_token(&app, "Partner B").await;
    let (revoked_id, revoked) = make_token(&app, a).await;
    let r = app
        .delete(&format!("/v1/partners/{a}/tokens/{revoked_id}"))
        .await;
    assert_eq!(r.status(), 200);
    let world = World { app, receiver };
    let app = &world.app;

    let cases = cases();
    // The matrix covers exactly the routes of the table, with the table's roles.
    let covered: BTreeSet<(&str, &str)> = cases.iter().map(|c| (c.method, c.template)).collect();
    let table: BTreeSet<(&str, &str)> = ROUTE_ROLES.iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(covered, table, "the matrix and ROUTE_ROLES disagree");
    assert_eq!(covered.len(), cases.len());
    for c in &cases {
        let roles = ROUTE_ROLES
            .iter()
            .find(|r| r.method == c.method && r.path == c.template)
            .unwrap()
            .roles;
        assert_eq!(
            roles.contains(&Role::Partner),
            c.access != Access::Operator,
            "{} {}",
            c.method,
            c.template
        );
    }

    let wrong = "cbk_0123456789ab_notAtokenAtAllnotAtokenAtAllnotAtokenAtAll0";
    for case in &cases {
        let what = format!("{} {}", case.method, case.template);
        let t = world.target(a).await;
        let (path, body) = (case.request)(&t);

        // Refused: no token, a wrong one, a revoked one; B always (except where everyone
        // sees only its own); A on operator routes.
        let mut refused: Vec<(&str, Option<&str>, Vec<u16>)> = vec![
            ("no token", None, vec![401]),
            ("wrong token", Some(wrong), vec![401]),
            ("revoked token", Some(&revoked), vec![401]),
        ];
        match case.access {
            Access::Operator => {
                refused.push(("partner B", Some(&token_b), vec![403, 404]));
                refused.push(("partner A", Some(&token_a), vec![403, 404]));
            }
            Access::Owner => refused.push(("partner B", Some(&token_b), vec![404])),
            Access::Anyone => {}
        }
        for (who, token, expected) in refused {
            let before = fingerprint(app).await;
            let receiver_before = world.receiver.requests().len();
            let (status, answer) = call(app, token, case.method, &path, body.as_ref()).await;
            assert!(
                expected.contains(&status),
                "{what} as {who}: {status} {answer}"
            );
            assert!(
                answer["error"]["code"].is_string(),
                "{what} as {who}: {answer}"
            );
            assert_eq!(
                fingerprint(app).await,
                before,
                "{what} as {who} changed something"
            );
            assert_eq!(
                world.receiver.requests().len(),
                receiver_before,
                "{what} as {who}"
            );
        }

        // Allowed: B on routes where everyone sees its own (and never A's), A on its own
        // things, the operator on everything.
        if case.access == Access::Anyone {
            let before = fingerprint(app).await;
            let (status, answer) = call(app, Some(&token_b), case.method, &path, None).await;
            assert_eq!(status, case.ok, "{what} as partner B: {answer}");
            assert_eq!(fingerprint(app).await, before, "{what} as partner B");
            if let Some(items) = answer["items"].as_array() {
                assert!(items.is_empty(), "{what}: B sees A's: {answer}");
            } else {
                assert_eq!(answer["role"], "partner");
                assert_ne!(answer["partner_id"], a.to_string());
            }
        }
        if case.access != Access::Operator {
            let (status, answer) =
                call(app, Some(&token_a), case.method, &path, body.as_ref()).await;
            assert_eq!(status, case.ok, "{what} as partner A: {answer}");
            if case.template == "/v1/deliveries/{id}/cancel" {
                assert_eq!(answer["last_error"], "canceled by partner");
            }
            if case.template == "/v1/deliveries" {
                let items = answer["items"].as_array().unwrap();
                assert!(!items.is_empty());
                assert!(items.iter().all(|d| d["partner_id"] == a.to_string()));
            }
        }
        // The operator acts on a throwaway partner's things (a DELETE would end A).
        let c = app.create_partner("Throwaway").await;
        let t = world.target(c).await;
        let (path, body) = (case.request)(&t);
        let (status, answer) = call(app, Some(&app.token), case.method, &path, body.as_ref()).await;
        assert_eq!(status, case.ok, "{what} as operator: {answer}");
    }

    // A's token made changes: each is in the audit log under A's actor and token.
    let (_, log) = call(
        app,
        Some(&app.token),
        "GET",
        &format!("/v1/audit?partner_id={a}&limit=1000"),
        None,
    )
    .await;
    let by_a: BTreeSet<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == format!("partner:{a}"))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        by_a,
        BTreeSet::from(["endpoint.create", "endpoint.update", "endpoint.delete"])
    );
}
