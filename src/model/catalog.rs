//! The body shapes of the event catalog (CONTRACT §6, seeds `001_…` and `003_…`).
//!
//! The shapes are data: each *section* is a list of `Name:kind` specs, and one small walker
//! checks a JSON object against a section. `migrations/0003_catalog.sql` holds the very same
//! lists (`callbackd_body_fields(section)`) and the same walker in plpgsql, so that
//! `callbackd_enqueue()` refuses exactly what the API refuses, naming the same field; a test
//! compares the two lists section by section.
//!
//! A spec is `Name:kind`; a trailing `?` means the key may be absent or `null`. Kinds:
//! `integer`, `number`, `boolean`, `string` (non-empty), `code` (string or integer: bank,
//! branch and account codes), `date` (`YYYY-MM-DD`, optionally followed by a time, or
//! `DD-MM-YYYY` as the installment plan of seed `001_…` writes it), `object`, `integer[]`,
//! `object[]`. An `object` or `object[]` field whose section `<section>.<Name>` exists is
//! checked against it too. Keys not listed are accepted (extra fields are welcome).

use serde_json::{Map, Value};

use super::{EventType, ValidationError};

/// Every section, in the order the test compares them with the SQL copy.
pub const SECTIONS: &[&str] = &[
    "schedule",
    "schedule.AcrescimoAbatimento",
    "schedule.LancamentoParcela",
    "schedule.LancamentoParcela.Boleto",
    "schedule.ProrrogacaoVencimento",
    "schedule.GeracaoBoleto",
    "schedule.CancelamentoBoleto",
    "installments",
    "installments.Credito",
    "installments.Credito.Conta",
    "installments.Parcelas",
    "banking",
];

/// The field specs of one section (empty for an unknown section).
pub fn fields(section: &str) -> &'static [&'static str] {
    match section {
        // schedule.event (seed 001): the common fields, then one object per TipoEvento.
        "schedule" => &[
            "TipoEvento:integer",
            "NomeEvento:string",
            "NroProposta:integer",
            "DtEvento:date",
            "AcrescimoAbatimento:object?",
            "LancamentoParcela:object?",
            "ProrrogacaoVencimento:object?",
            "GeracaoBoleto:object?",
            "CancelamentoBoleto:object?",
        ],
        "schedule.AcrescimoAbatimento" => &[
            "NroParcela:integer",
            "VlrSaldo:number",
            "VlrAcrescimo:number",
            "VlrAbatimento:number",
            "VlrSaldoAtual:number",
        ],
        "schedule.LancamentoParcela" => &[
            "NroParcela:integer",
            "VlrOriginalParcela:number",
            "VlrSaldo:number",
            "ParcelaLiquidada:boolean",
            "VlrEncargos:number",
            "VlrAbatimento:number",
            "VlrPagamento:number",
            "VlrDesconto:number",
            "VlrSaldoAtual:number",
            "VlrExcedente:number",
            "DtVencimento:date",
            "DtVencimentoAtual:date",
            "Boleto:object?",
        ],
        "schedule.LancamentoParcela.Boleto" => &["NroBoleto:integer?", "Liquidacao:boolean?"],
        "schedule.ProrrogacaoVencimento" => &[
            "NroParcela:integer",
            "DtVencimentoAnterior:date",
            "DtVencimentoAtual:date",
        ],
        "schedule.GeracaoBoleto" => &[
            "CodigoBoleto:string",
            "NroBoleto:integer",
            "VlrBoleto:number",
            "DtVencimento:date",
            "Liquidacao:boolean?",
        ],
        "schedule.CancelamentoBoleto" => &[
            "CodigoBoleto:string",
            "NroBoleto:integer",
            "Parcelas:integer[]",
        ],
        // proposal.status may carry the installment plan of seed 001.
        "installments" => &[
            "QtdeParcelas:integer",
            "VlrTotalDivida:number?",
            "DtFinanciado:date?",
            "Credito:object?",
            "Parcelas:object[]",
        ],
        "installments.Credito" => &["DtCredito:date?", "Conta:object?"],
        "installments.Credito.Conta" => &[
            "CodigoBanco:code?",
            "NomeBanco:string?",
            "Agencia:code?",
            "Conta:code?",
            "ContaDigito:code?",
        ],
        "installments.Parcelas" => &[
            "NroParcela:integer",
            "VlrParcela:number",
            "VlrPrincipal:number?",
            "VlrDespesas:number?",
            "VlrSaldoDevedor:number?",
            "DtVencimento:date",
        ],
        // The ten banking.* events (seed 003): a header and a body.
        "banking" => &["header:object", "body:object"],
        _ => &[],
    }
}

/// `TipoEvento` → the `NomeEvento` of seed 001 and the object that type carries.
pub const SCHEDULE_TYPES: [(i64, &str, Option<&str>); 6] = [
    (1, "Cancelamento de Agenda", None),
    (2, "Acréscimo/Abatimento", Some("AcrescimoAbatimento")),
    (3, "Lançamento na Parcela", Some("LancamentoParcela")),
    (
        4,
        "Prorrogação de Vencimento",
        Some("ProrrogacaoVencimento"),
    ),
    (5, "Geração de Boleto", Some("GeracaoBoleto")),
    (6, "Cancelamento de Boleto", Some("CancelamentoBoleto")),
];

/// The keys of the per-type objects, in the order of the seed.
const SCHEDULE_OBJECTS: [&str; 5] = [
    "AcrescimoAbatimento",
    "LancamentoParcela",
    "ProrrogacaoVencimento",
    "GeracaoBoleto",
    "CancelamentoBoleto",
];

/// The human name of an event, for responses and operator views: the `NomeEvento` of a
/// schedule event's `TipoEvento`, the seed-003 description of a banking event; `None` for
/// `proposal.status` (its `status_name` says it).
pub fn event_name(event_type: EventType, tipo_evento: Option<i64>) -> Option<&'static str> {
    use EventType::*;
    Some(match event_type {
        ProposalStatus => return None,
        ScheduleEvent => {
            let tipo = tipo_evento?;
            return SCHEDULE_TYPES
                .iter()
                .find(|(t, _, _)| *t == tipo)
                .map(|(_, name, _)| *name);
        }
        TransferSent => "Envio de transferência entre contas",
        TransferReceived => "Recebimento de transferência entre contas",
        TedSent => "Envio de TED para outra instituição",
        TedReceived => "Recebimento de TED de outra instituição",
        TedReturned => "Devolução de TED rejeitada pela instituição de destino",
        BoletoPaidOtherBank => "Pagamento de boleto de outra instituição",
        BoletoRegistered => "Registro de boleto",
        BoletoChanged => "Confirmação de alteração em boleto",
        BoletoWriteOff => "Confirmação de solicitação de baixa de boleto",
        BoletoPaymentConfirmed => "Confirmação de pagamento de boleto",
    })
}

/// Checks a notification body (already known to be a JSON object, when present) against the
/// shape its event type requires. Field paths start with `body`.
pub fn validate_body(event_type: EventType, body: Option<&Value>) -> Result<(), ValidationError> {
    let Some(Value::Object(obj)) = body else {
        // Presence and objectness are checked by NewNotification::validate.
        return Ok(());
    };
    match event_type {
        EventType::ProposalStatus => {
            if obj.contains_key("QtdeParcelas") || obj.contains_key("Parcelas") {
                check_section("body", obj, "installments")?;
            }
            Ok(())
        }
        EventType::ScheduleEvent => validate_schedule(obj),
        _ => check_section("body", obj, "banking"),
    }
}

fn validate_schedule(obj: &Map<String, Value>) -> Result<(), ValidationError> {
    check_section("body", obj, "schedule")?;
    let tipo = obj.get("TipoEvento").and_then(Value::as_i64).unwrap_or(0);
    let Some((_, _, object)) = SCHEDULE_TYPES.iter().find(|(t, _, _)| *t == tipo) else {
        return Err(ValidationError::new(
            "body.TipoEvento",
            format!("unknown TipoEvento {}: expected 1 to 6", obj["TipoEvento"]),
        ));
    };
    for key in SCHEDULE_OBJECTS {
        let present = !obj.get(key).is_none_or(Value::is_null);
        if Some(key) == *object && !present {
            return Err(ValidationError::new(
                format!("body.{key}"),
                format!("required for TipoEvento {tipo}"),
            ));
        }
        if Some(key) != *object && present {
            return Err(ValidationError::new(
                format!("body.{key}"),
                format!("must be null for TipoEvento {tipo}"),
            ));
        }
    }
    Ok(())
}

fn check_section(
    path: &str,
    obj: &Map<String, Value>,
    section: &str,
) -> Result<(), ValidationError> {
    for spec in fields(section) {
        let (name, kind) = spec.split_once(':').expect("spec is Name:kind");
        let (kind, optional) = match kind.strip_suffix('?') {
            Some(k) => (k, true),
            None => (kind, false),
        };
        let field = format!("{path}.{name}");
        let value = match obj.get(name) {
            None | Some(Value::Null) if optional => continue,
            None | Some(Value::Null) => {
                return Err(ValidationError::new(
                    field,
                    format!("required: {}", describe(kind)),
                ));
            }
            Some(v) => v,
        };
        let bad = || {
            let or_null = if optional { " or null" } else { "" };
            ValidationError::new(
                field.clone(),
                format!("must be {}{or_null}", describe(kind)),
            )
        };
        let nested = format!("{section}.{name}");
        match kind {
            "integer" if !is_integer(value) => return Err(bad()),
            "number" if !value.is_number() => return Err(bad()),
            "boolean" if !value.is_boolean() => return Err(bad()),
            "string" if value.as_str().is_none_or(str::is_empty) => return Err(bad()),
            "code" if !(is_integer(value) || value.is_string()) => return Err(bad()),
            "date" if !value.as_str().is_some_and(is_date) => return Err(bad()),
            "object" => match value {
                Value::Object(inner) => check_section(&field, inner, &nested)?,
                _ => return Err(bad()),
            },
            "integer[]" => match value {
                Value::Array(items) => {
                    if let Some(i) = items.iter().position(|v| !is_integer(v)) {
                        return Err(ValidationError::new(
                            format!("{field}[{i}]"),
                            "must be an integer",
                        ));
                    }
                }
                _ => return Err(bad()),
            },
            "object[]" => match value {
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("{field}[{i}]");
                        match item {
                            Value::Object(inner) => check_section(&at, inner, &nested)?,
                            _ => return Err(ValidationError::new(at, "must be an object")),
                        }
                    }
                }
                _ => return Err(bad()),
            },
            _ => {}
        }
    }
    Ok(())
}

fn describe(kind: &str) -> &'static str {
    match kind {
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "true or false",
        "string" => "a non-empty string",
        "code" => "a string or an integer",
        "date" => "a date (YYYY-MM-DD or DD-MM-YYYY)",
        "object" => "an object",
        "integer[]" => "an array of integers",
        "object[]" => "an array of objects",
        _ => "valid",
    }
}

/// A JSON number written without fraction or exponent (the SQL side tests the text).
fn is_integer(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

/// `YYYY-MM-DD`, optionally followed by `T` or a space and `hh:mm` plus seconds, fraction
/// and offset characters; or `DD-MM-YYYY`. The date must exist (year 1 or later).
pub fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().ok();
    if b.len() < 10 {
        return false;
    }
    let (y, m, d) = if digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10)
    {
        let rest = &b[10..];
        if !rest.is_empty() {
            let time_ok = rest.len() >= 6
                && (rest[0] == b'T' || rest[0] == b' ')
                && rest[1..3].iter().all(u8::is_ascii_digit)
                && rest[3] == b':'
                && rest[4..6].iter().all(u8::is_ascii_digit)
                && rest[6..]
                    .iter()
                    .all(|c| c.is_ascii_digit() || b":.+-Z".contains(c));
            if !time_ok {
                return false;
            }
        }
        (num(0..4), num(5..7), num(8..10))
    } else if b.len() == 10
        && digits(0..2)
        && b[2] == b'-'
        && digits(3..5)
        && b[5] == b'-'
        && digits(6..10)
    {
        (num(6..10), num(3..5), num(0..2))
    } else {
        return false;
    };
    match (y, m, d) {
        (Some(y), Some(m), Some(d)) if y >= 1 => {
            chrono::NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
