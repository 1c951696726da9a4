//! The catalog's walker: dates, the schedule's rules, installment plans, banking, event names.

use super::*;
use serde_json::json;

fn check(event_type: EventType, body: Value) -> Result<(), String> {
    validate_body(event_type, Some(&body)).map_err(|e| e.field)
}

#[test]
fn dates() {
    for ok in [
        "2024-09-05",
        "06-09-2024",
        "2024-02-29",
        "2024-09-05T10:11:12Z",
        "2024-09-05 10:11:12.123-03:00",
    ] {
        assert!(is_date(ok), "{ok}");
    }
    for bad in [
        "2023-02-29",
        "2024-13-01",
        "32-01-2024",
        "0000-01-01",
        "2024-9-5",
        "2024-09-05X",
        "2024-09-05T",
        "2024/09/05",
        "",
        "hoje",
        "2024-09-05T10:11 and more",
    ] {
        assert!(!is_date(bad), "{bad}");
    }
}

#[test]
fn schedule_rules() {
    let ok = json!({"TipoEvento": 4, "NomeEvento": "Prorrogação de Vencimento",
        "NroProposta": 1, "DtEvento": "2024-09-05",
        "ProrrogacaoVencimento": {"NroParcela": 1, "DtVencimentoAnterior": "2024-09-15",
                                  "DtVencimentoAtual": "2024-10-30"}});
    check(EventType::ScheduleEvent, ok.clone()).unwrap();
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("TipoEvento", json!(7)), "body.TipoEvento"),
        (with("TipoEvento", json!("4")), "body.TipoEvento"),
        (with("NroProposta", json!(1.5)), "body.NroProposta"),
        (with("DtEvento", json!("2024-02-30")), "body.DtEvento"),
        (
            with("ProrrogacaoVencimento", Value::Null),
            "body.ProrrogacaoVencimento",
        ),
        (
            with("GeracaoBoleto", json!({})),
            "body.GeracaoBoleto.CodigoBoleto",
        ),
        (
            with("ProrrogacaoVencimento", json!({"NroParcela": 1})),
            "body.ProrrogacaoVencimento.DtVencimentoAnterior",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(check(EventType::ScheduleEvent, body).unwrap_err(), field);
    }
    let mut both = ok.clone();
    both["CancelamentoBoleto"] = json!({"CodigoBoleto": "x", "NroBoleto": 1, "Parcelas": [1, "2"]});
    assert_eq!(
        check(EventType::ScheduleEvent, both).unwrap_err(),
        "body.CancelamentoBoleto.Parcelas[1]"
    );
}

#[test]
fn installment_plans_and_banking() {
    check(EventType::ProposalStatus, json!({"Descricao": "anything"})).unwrap();
    assert_eq!(
        check(
            EventType::ProposalStatus,
            json!({"QtdeParcelas": 1, "Parcelas": [{"NroParcela": 1, "VlrParcela": "1.4",
                                                    "DtVencimento": "16-09-2024"}]})
        )
        .unwrap_err(),
        "body.Parcelas[0].VlrParcela"
    );
    check(
        EventType::TedSent,
        json!({"header": {"a": 1}, "body": {"b": 2}}),
    )
    .unwrap();
    assert_eq!(
        check(EventType::TedSent, json!({"header": {}})).unwrap_err(),
        "body.body"
    );
}

#[test]
fn names() {
    assert_eq!(
        event_name(EventType::ScheduleEvent, Some(5)),
        Some("Geração de Boleto")
    );
    assert_eq!(event_name(EventType::ScheduleEvent, Some(9)), None);
    assert_eq!(event_name(EventType::ProposalStatus, None), None);
    for e in EventType::ALL {
        if *e != EventType::ProposalStatus && *e != EventType::ScheduleEvent {
            assert!(event_name(*e, None).is_some());
        }
    }
    for s in SECTIONS {
        assert!(!fields(s).is_empty(), "{s}");
    }
}
