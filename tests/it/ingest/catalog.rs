//! The event catalog: every seed example arrives byte for byte; every body rule refuses a
//! broken body with a 422 naming the field, over HTTP and in `callbackd_enqueue()` alike.

use std::time::Duration;

use callbackd::model::EventType;
use callbackd::model::catalog;
use serde_json::{Value, json};

use super::{PROPOSAL, expect_refusal, partner_with_receiver, post_raw, request_text};
use crate::support::app::spawn_app;
use crate::support::receiver::Receiver;

const SCHEDULE_EXAMPLES: &[(&str, &str)] = &[
    (
        "seed001 1",
        include_str!("../../fixtures/seed001_schedule_1.json"),
    ),
    (
        "seed001 2",
        include_str!("../../fixtures/seed001_schedule_2.json"),
    ),
    (
        "seed001 3",
        include_str!("../../fixtures/seed001_schedule_3.json"),
    ),
    (
        "seed001 4",
        include_str!("../../fixtures/seed001_schedule_4.json"),
    ),
    (
        "seed001 5",
        include_str!("../../fixtures/seed001_schedule_5.json"),
    ),
    (
        "seed001 6",
        include_str!("../../fixtures/seed001_schedule_6_repaired.json"),
    ),
    (
        "seed002 1",
        include_str!("../../fixtures/seed002_schedule_1.json"),
    ),
    (
        "seed002 3",
        include_str!("../../fixtures/seed002_schedule_3.json"),
    ),
    (
        "seed002 4",
        include_str!("../../fixtures/seed002_schedule_4.json"),
    ),
    (
        "seed002 5",
        include_str!("../../fixtures/seed002_schedule_5.json"),
    ),
    (
        "seed002 6",
        include_str!("../../fixtures/seed002_schedule_6_repaired.json"),
    ),
];

const INSTALLMENT_PLAN: &str = include_str!("../../fixtures/seed001_installment_plan.json");
const BANKING: &str = include_str!("../../fixtures/synthetic_banking.json");
const STATUS_9: &str = include_str!("../../fixtures/synthetic_status_9.json");
const STATUS_11: &str = include_str!("../../fixtures/synthetic_status_11.json");

#[tokio::test]
async fn every_seed_example_arrives_byte_for_byte() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;

    // (event_type, extra fields, body, expected event_name)
    let mut sent: Vec<(String, String, &str, Option<String>)> = Vec::new();
    for (name, body) in SCHEDULE_EXAMPLES {
        let tipo = serde_json::from_str::<Value>(body).unwrap()["TipoEvento"]
            .as_i64()
            .unwrap();
        let nome = catalog::event_name(EventType::ScheduleEvent, Some(tipo)).unwrap();
        assert!(body.contains(nome), "{name}: NomeEvento is {nome}");
        sent.push((
            "schedule.event".into(),
            String::new(),
            body,
            Some(nome.into()),
        ));
    }
    for (status, body) in [(6, INSTALLMENT_PLAN), (9, STATUS_9), (11, STATUS_11)] {
        let extra =
            format!(r#","proposal":"{PROPOSAL}","status":{status},"identifier":"OP-{status}""#);
        sent.push(("proposal.status".into(), extra, body, None));
    }
    for e in EventType::ALL
        .iter()
        .filter(|e| e.as_str().starts_with("banking."))
    {
        let name = catalog::event_name(*e, None).map(String::from);
        sent.push((e.to_string(), String::new(), BANKING, name));
    }

    let mut ids = Vec::new();
    for (event_type, extra, body, _) in &sent {
        let r = post_raw(
            &app,
            "/v1/notifications",
            request_text(partner, event_type, extra, body),
        )
        .await;
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "{event_type} {body}: {v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }

    let got = rx.wait_for(sent.len(), Duration::from_secs(10)).await;
    assert_eq!(got.len(), sent.len());
    for ((event_type, _, body, _), id) in sent.iter().zip(&ids) {
        let shown: Value = app
            .get(&format!("/v1/notifications/{id}"))
            .await
            .json()
            .await
            .unwrap();
        let delivery = shown["deliveries"][0]["id"].as_str().unwrap();
        let request = got
            .iter()
            .find(|r| r.header("x-callback-id") == Some(delivery))
            .expect("delivered");
        assert_eq!(
            request.header("x-callback-event"),
            Some(event_type.as_str())
        );
        assert_eq!(
            std::str::from_utf8(&request.body).unwrap(),
            *body,
            "{event_type} arrived changed"
        );
    }
    // Names in the views: event_name for schedule and banking events, status_name for status.
    for ((_, _, _, name), id) in sent.iter().zip(&ids) {
        let shown: Value = app
            .get(&format!("/v1/notifications/{id}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(shown["event_name"], json!(name), "{shown}");
        let delivery = app
            .delivery(shown["deliveries"][0]["id"].as_str().unwrap())
            .await;
        assert_eq!(delivery["event_name"], json!(name), "{delivery}");
        if shown["event_type"] == "proposal.status" {
            assert!(shown["status_name"].is_string(), "{shown}");
        }
    }
}

#[tokio::test]
async fn the_seeds_uncommented_type_6_is_malformed_json() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let before = app.row_counts().await;
    for raw in [
        include_str!("../../fixtures/seed001_schedule_6.txt"),
        include_str!("../../fixtures/seed002_schedule_6.txt"),
    ] {
        let r = post_raw(
            &app,
            "/v1/notifications",
            request_text(partner, "schedule.event", "", raw),
        )
        .await;
        expect_refusal(r, 400, None).await;
    }
    assert_eq!(app.row_counts().await, before);
}

fn schedule_4() -> Value {
    serde_json::from_str(include_str!("../../fixtures/seed001_schedule_4.json")).unwrap()
}

fn schedule(tipo: &str) -> Value {
    let text = SCHEDULE_EXAMPLES
        .iter()
        .find(|(name, _)| *name == format!("seed001 {tipo}"))
        .unwrap()
        .1;
    serde_json::from_str(text).unwrap()
}

fn set(mut v: Value, path: &[&str], to: Option<Value>) -> Value {
    let mut at = &mut v;
    for key in &path[..path.len() - 1] {
        at = match key.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*key],
        };
    }
    let last = path[path.len() - 1];
    match (to, last.parse::<usize>()) {
        (Some(x), Ok(i)) => at[i] = x,
        (Some(x), Err(_)) => at[last] = x,
        (None, _) => {
            at.as_object_mut().unwrap().shift_remove(last);
        }
    }
    v
}

/// Every body rule, each broken once: (event_type, status, body, field named).
fn broken_bodies() -> Vec<(&'static str, Option<i32>, Value, &'static str)> {
    let plan: Value = serde_json::from_str(INSTALLMENT_PLAN).unwrap();
    let s = "schedule.event";
    let bank = json!({"header": {"a": 1}, "body": {"b": 2}});
    vec![
        // schedule.event: the common fields
        (
            s,
            None,
            set(schedule_4(), &["TipoEvento"], None),
            "body.TipoEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["TipoEvento"], Some(json!(7))),
            "body.TipoEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["TipoEvento"], Some(json!(0))),
            "body.TipoEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["TipoEvento"], Some(json!("4"))),
            "body.TipoEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["TipoEvento"], Some(json!(4.5))),
            "body.TipoEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["NomeEvento"], None),
            "body.NomeEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["NomeEvento"], Some(json!(""))),
            "body.NomeEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["NroProposta"], Some(json!("3543603"))),
            "body.NroProposta",
        ),
        (
            s,
            None,
            set(schedule_4(), &["NroProposta"], Some(Value::Null)),
            "body.NroProposta",
        ),
        (
            s,
            None,
            set(schedule_4(), &["DtEvento"], None),
            "body.DtEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["DtEvento"], Some(json!("2024-02-30"))),
            "body.DtEvento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["DtEvento"], Some(json!("05/09/2024"))),
            "body.DtEvento",
        ),
        // the object of the type: missing, null, not an object; another type's object
        (
            s,
            None,
            set(schedule_4(), &["ProrrogacaoVencimento"], None),
            "body.ProrrogacaoVencimento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["ProrrogacaoVencimento"], Some(Value::Null)),
            "body.ProrrogacaoVencimento",
        ),
        (
            s,
            None,
            set(schedule_4(), &["ProrrogacaoVencimento"], Some(json!([]))),
            "body.ProrrogacaoVencimento",
        ),
        (
            s,
            None,
            set(
                schedule("1"),
                &["GeracaoBoleto"],
                Some(schedule("5")["GeracaoBoleto"].clone()),
            ),
            "body.GeracaoBoleto",
        ),
        (
            s,
            None,
            set(schedule_4(), &["TipoEvento"], Some(json!(2))),
            "body.AcrescimoAbatimento",
        ),
        // the fields of each type's object
        (
            s,
            None,
            set(
                schedule("2"),
                &["AcrescimoAbatimento", "VlrAcrescimo"],
                None,
            ),
            "body.AcrescimoAbatimento.VlrAcrescimo",
        ),
        (
            s,
            None,
            set(
                schedule("2"),
                &["AcrescimoAbatimento", "NroParcela"],
                Some(json!(2.5)),
            ),
            "body.AcrescimoAbatimento.NroParcela",
        ),
        (
            s,
            None,
            set(
                schedule("3"),
                &["LancamentoParcela", "ParcelaLiquidada"],
                Some(json!("true")),
            ),
            "body.LancamentoParcela.ParcelaLiquidada",
        ),
        (
            s,
            None,
            set(
                schedule("3"),
                &["LancamentoParcela", "VlrPagamento"],
                Some(json!("72.24")),
            ),
            "body.LancamentoParcela.VlrPagamento",
        ),
        (
            s,
            None,
            set(
                schedule("3"),
                &["LancamentoParcela", "DtVencimentoAtual"],
                None,
            ),
            "body.LancamentoParcela.DtVencimentoAtual",
        ),
        (
            s,
            None,
            set(
                schedule("3"),
                &["LancamentoParcela", "Boleto", "NroBoleto"],
                Some(json!("x")),
            ),
            "body.LancamentoParcela.Boleto.NroBoleto",
        ),
        (
            s,
            None,
            set(
                schedule("3"),
                &["LancamentoParcela", "Boleto"],
                Some(json!(1)),
            ),
            "body.LancamentoParcela.Boleto",
        ),
        (
            s,
            None,
            set(
                schedule_4(),
                &["ProrrogacaoVencimento", "DtVencimentoAtual"],
                Some(json!("2024-10-32")),
            ),
            "body.ProrrogacaoVencimento.DtVencimentoAtual",
        ),
        (
            s,
            None,
            set(
                schedule("5"),
                &["GeracaoBoleto", "CodigoBoleto"],
                Some(json!(5)),
            ),
            "body.GeracaoBoleto.CodigoBoleto",
        ),
        (
            s,
            None,
            set(schedule("5"), &["GeracaoBoleto", "VlrBoleto"], None),
            "body.GeracaoBoleto.VlrBoleto",
        ),
        (
            s,
            None,
            set(
                schedule("5"),
                &["GeracaoBoleto", "Liquidacao"],
                Some(json!(1)),
            ),
            "body.GeracaoBoleto.Liquidacao",
        ),
        (
            s,
            None,
            set(
                schedule("6"),
                &["CancelamentoBoleto", "Parcelas"],
                Some(json!(3)),
            ),
            "body.CancelamentoBoleto.Parcelas",
        ),
        (
            s,
            None,
            set(
                schedule("6"),
                &["CancelamentoBoleto", "Parcelas"],
                Some(json!([3, "4"])),
            ),
            "body.CancelamentoBoleto.Parcelas[1]",
        ),
        (
            s,
            None,
            set(schedule("6"), &["CancelamentoBoleto", "NroBoleto"], None),
            "body.CancelamentoBoleto.NroBoleto",
        ),
        // proposal.status with an installment plan
        (
            "proposal.status",
            Some(6),
            set(plan.clone(), &["QtdeParcelas"], None),
            "body.QtdeParcelas",
        ),
        (
            "proposal.status",
            Some(6),
            set(plan.clone(), &["QtdeParcelas"], Some(json!("8"))),
            "body.QtdeParcelas",
        ),
        (
            "proposal.status",
            Some(6),
            set(plan.clone(), &["Parcelas"], None),
            "body.Parcelas",
        ),
        (
            "proposal.status",
            Some(6),
            set(plan.clone(), &["Parcelas"], Some(json!({}))),
            "body.Parcelas",
        ),
        (
            "proposal.status",
            Some(6),
            set(plan.clone(), &["Parcelas", "1"], Some(json!(2))),
            "body.Parcelas[1]",
        ),
        (
            "proposal.status",
            Some(6),
            set(
                plan.clone(),
                &["Parcelas", "1", "VlrParcela"],
                Some(json!("1.4")),
            ),
            "body.Parcelas[1].VlrParcela",
        ),
        (
            "proposal.status",
            Some(6),
            set(
                plan.clone(),
                &["Parcelas", "0", "DtVencimento"],
                Some(json!("31-09-2024")),
            ),
            "body.Parcelas[0].DtVencimento",
        ),
        (
            "proposal.status",
            Some(6),
            set(plan.clone(), &["DtFinanciado"], Some(json!(20240906))),
            "body.DtFinanciado",
        ),
        (
            "proposal.status",
            Some(6),
            set(
                plan.clone(),
                &["Credito", "Conta", "CodigoBanco"],
                Some(json!(true)),
            ),
            "body.Credito.Conta.CodigoBanco",
        ),
        (
            "proposal.status",
            Some(6),
            set(plan, &["Credito"], Some(json!("none"))),
            "body.Credito",
        ),
        // banking.*: the header/body envelope
        (
            "banking.ted.sent",
            None,
            set(bank.clone(), &["header"], None),
            "body.header",
        ),
        (
            "banking.ted.sent",
            None,
            set(bank.clone(), &["body"], Some(json!("x"))),
            "body.body",
        ),
        (
            "banking.boleto.registered",
            None,
            json!({"Valor": 1}),
            "body.header",
        ),
        (
            "banking.transfer.received",
            None,
            set(bank, &["header"], Some(json!([]))),
            "body.header",
        ),
    ]
}

#[tokio::test]
async fn every_body_rule_refuses_over_http_naming_the_field_and_writes_nothing() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let before = app.row_counts().await;
    for (event_type, status, body, field) in broken_bodies() {
        let mut req = json!({"partner_id": partner, "environment": "production",
                             "event_type": event_type, "body": body});
        if let Some(status) = status {
            req["proposal"] = json!(PROPOSAL);
            req["status"] = json!(status);
        }
        let v = expect_refusal(app.post("/v1/notifications", &req).await, 422, Some(field)).await;
        assert_eq!(v["error"]["code"], "validation_failed");
        assert!(
            v["error"]["message"].as_str().unwrap().starts_with(field),
            "{v}"
        );
    }
    // Unknown event types, and a schedule event without a body.
    for (event_type, body, field) in [
        (
            "banking.pix.sent",
            json!({"header": {}, "body": {}}),
            "event_type",
        ),
        ("schedule.events", schedule_4(), "event_type"),
    ] {
        let req = json!({"partner_id": partner, "environment": "production",
                         "event_type": event_type, "body": body});
        expect_refusal(app.post("/v1/notifications", &req).await, 422, Some(field)).await;
    }
    let req = json!({"partner_id": partner, "environment": "production",
                     "event_type": "schedule.event"});
    expect_refusal(app.post("/v1/notifications", &req).await, 422, Some("body")).await;
    assert_eq!(app.row_counts().await, before);
    app.barrier_elsewhere().await;
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn callbackd_enqueue_refuses_the_same_bodies_naming_the_same_field() {
    let app = spawn_app().await;
    let rx = Receiver::start().await;
    let partner = partner_with_receiver(&app, &rx).await;
    let before = app.row_counts().await;
    let proposal: uuid::Uuid = PROPOSAL.parse().unwrap();
    for (event_type, status, body, field) in broken_bodies() {
        let err = sqlx::query(
            "SELECT callbackd_enqueue(partner_id => $1, environment => 'production',
                 event_type => $2, proposal => $3, status => $4, body => $5::text::json)",
        )
        .bind(partner)
        .bind(event_type)
        .bind(status.map(|_| proposal))
        .bind(status)
        .bind(body.to_string())
        .execute(&app.pool)
        .await
        .expect_err(field);
        let db = err
            .as_database_error()
            .unwrap()
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .unwrap();
        assert_eq!(db.code(), "CB001", "{field}: {}", db.message());
        assert_eq!(db.column(), Some(field), "{}", db.message());
        assert!(db.message().starts_with(field), "{}", db.message());
    }
    assert_eq!(app.row_counts().await, before);
}

#[tokio::test]
async fn the_sql_catalog_is_the_rust_catalog() {
    let app = spawn_app().await;
    for section in catalog::SECTIONS {
        let sql: Vec<String> = sqlx::query_scalar("SELECT callbackd_body_fields($1)")
            .bind(section)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(sql, catalog::fields(section), "{section}");
    }
    let sql: Vec<(i32, String, Option<String>)> =
        sqlx::query_as("SELECT * FROM callbackd_schedule_types() ORDER BY 1")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let rust: Vec<(i32, String, Option<String>)> = catalog::SCHEDULE_TYPES
        .iter()
        .map(|(t, n, o)| (*t as i32, n.to_string(), o.map(String::from)))
        .collect();
    assert_eq!(sql, rust);
    for e in EventType::ALL {
        for tipo in 0..=7 {
            let body = json!({ "TipoEvento": tipo });
            let sql: Option<String> =
                sqlx::query_scalar("SELECT callbackd_event_name($1, $2::text::json)")
                    .bind(e.as_str())
                    .bind(body.to_string())
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            assert_eq!(
                sql.as_deref(),
                catalog::event_name(*e, Some(tipo)),
                "{e} {tipo}"
            );
        }
    }
    // The date rule, both sides.
    for s in [
        "2024-09-05",
        "06-09-2024",
        "2024-02-29",
        "2023-02-29",
        "2024-09-05T10:11:12Z",
        "2024-09-05 10:11",
        "2024-09-05T",
        "0000-01-01",
        "31-04-2024",
        "2024-9-5",
        "x",
    ] {
        let sql: bool = sqlx::query_scalar("SELECT callbackd_is_date($1)")
            .bind(s)
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(sql, catalog::is_date(s), "{s}");
    }
}

#[tokio::test]
async fn endpoints_get_only_the_event_types_they_subscribe_to() {
    let app = spawn_app().await;
    let partner = app.create_partner("Acme").await;
    let mut ids = Vec::new();
    for (types, method) in [
        (json!(["proposal.status"]), "GET"),
        (json!(["schedule.event"]), "POST"),
        (json!(["banking.ted.sent", "banking.ted.received"]), "PUT"),
    ] {
        let e = app
            .create_endpoint(
                partner,
                json!({"environment": "production", "url": "http://127.0.0.1:9/cb",
                       "method": method, "event_types": types}),
            )
            .await;
        ids.push(e["id"].as_str().unwrap().to_string());
    }
    let (status_only, schedule_only, teds) = (&ids[0], &ids[1], &ids[2]);
    let cases = [
        (
            "proposal.status",
            format!(r#","proposal":"{PROPOSAL}","status":1"#),
            "{}",
            vec![status_only],
        ),
        (
            "schedule.event",
            String::new(),
            SCHEDULE_EXAMPLES[0].1,
            vec![schedule_only],
        ),
        ("banking.ted.received", String::new(), BANKING, vec![teds]),
        ("banking.boleto.registered", String::new(), BANKING, vec![]),
    ];
    for (event_type, extra, body, expected) in cases {
        let r = post_raw(
            &app,
            "/v1/notifications",
            request_text(partner, event_type, &extra, body),
        )
        .await;
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.unwrap();
        let got: Vec<&str> = v["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["endpoint_id"].as_str().unwrap())
            .collect();
        let expected: Vec<&str> = expected.iter().map(|s| s.as_str()).collect();
        assert_eq!(got, expected, "{event_type}");
    }
}
