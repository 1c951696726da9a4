//! Status filters: an endpoint narrows `proposal.status` to `statuses` and `schedule.event`
//! to `schedule_types`; every enqueue path (single call, batch, SQL function) honours them.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::app::{TestApp, spawn_app};

/// Endpoint ids in an enqueue answer.
fn fanned_out(answer: &Value) -> Vec<String> {
    let mut ids: Vec<String> = answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["endpoint_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

fn status(partner: Uuid, status: i64) -> Value {
    json!({"partner_id": partner, "environment": "production",
           "event_type": "proposal.status", "proposal": Uuid::new_v4(), "status": status})
}

async fn endpoint(app: &TestApp, partner: Uuid, extra: Value) -> String {
    let mut body = json!({"environment": "production", "url": "https://partner.example/cb",
                          "method": "POST",
                          "event_types": ["proposal.status", "schedule.event"]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.create_endpoint(partner, body).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn status_filters_hold_on_every_enqueue_path() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let picky = endpoint(&app, partner, json!({"statuses": [11, 9, 9]})).await;
    let all = endpoint(&app, partner, json!({})).await;
    let mut both = vec![picky.clone(), all.clone()];
    both.sort();
    let only_all = vec![all.clone()];

    // A single call.
    assert_eq!(fanned_out(&app.enqueue(status(partner, 9)).await), both);
    assert_eq!(fanned_out(&app.enqueue(status(partner, 2)).await), only_all);

    // A batch.
    let r = app
        .post(
            "/v1/notifications/batch",
            &json!([status(partner, 11), status(partner, 3)]),
        )
        .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    assert_eq!(fanned_out(&v["items"][0]), both);
    assert_eq!(fanned_out(&v["items"][1]), only_all);

    // The SQL function, inside the platform's transaction.
    for (s, want) in [(9, both.clone()), (5, only_all.clone())] {
        let id: Uuid = sqlx::query_scalar(
            "SELECT callbackd_enqueue($1, 'production', 'proposal.status', $2, $3)",
        )
        .bind(partner)
        .bind(Uuid::new_v4())
        .bind(s)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let mut got: Vec<String> = sqlx::query_scalar(
            "SELECT endpoint_id::text FROM deliveries WHERE notification_id = $1",
        )
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        got.sort();
        assert_eq!(got, want, "status {s}");
    }

    // Shown as stored (sorted, without repeats); null means all again.
    let ep: Value = app
        .get(&format!("/v1/endpoints/{picky}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ep["statuses"], json!([9, 11]));
    assert_eq!(ep["schedule_types"], Value::Null);
    let audit = app
        .get(&format!("/v1/audit?partner_id={partner}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(audit.contains(r#""statuses":[9,11]"#), "{audit}");
    let r = app
        .patch(
            &format!("/v1/endpoints/{picky}"),
            &json!({"statuses": null}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(fanned_out(&app.enqueue(status(partner, 2)).await), both);
}

#[tokio::test]
async fn schedule_type_filters_hold() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let picky = endpoint(&app, partner, json!({"schedule_types": [1, 3]})).await;
    for (fixture, wanted) in [
        ("seed001_schedule_1.json", true),
        ("seed001_schedule_2.json", false),
        ("seed001_schedule_3.json", true),
    ] {
        let body: Value = serde_json::from_str(
            &std::fs::read_to_string(format!("tests/fixtures/{fixture}")).unwrap(),
        )
        .unwrap();
        let answer = app
            .enqueue(json!({"partner_id": partner, "environment": "production",
                            "event_type": "schedule.event", "body": body}))
            .await;
        let expected: Vec<String> = if wanted { vec![picky.clone()] } else { vec![] };
        assert_eq!(fanned_out(&answer), expected, "{fixture}");
    }
}

#[tokio::test]
async fn invalid_filters_are_refused_naming_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let ep = endpoint(&app, partner, json!({"statuses": [9]})).await;
    for (field, value) in [
        ("statuses", json!([12])),
        ("statuses", json!([-1])),
        ("statuses", json!([])),
        ("statuses", json!("9")),
        ("schedule_types", json!([0])),
        ("schedule_types", json!([7])),
        ("schedule_types", json!([1.5])),
    ] {
        let r = app
            .patch(&format!("/v1/endpoints/{ep}"), &json!({ field: value }))
            .await;
        assert_eq!(r.status(), 422, "{field}: {value}");
        let text = r.text().await.unwrap();
        assert!(text.contains(field), "{field}: {value}: {text}");
    }
    let now: Value = app
        .get(&format!("/v1/endpoints/{ep}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(now["statuses"], json!([9]));
}
