use super::wire_enum;

/// Where a delivery stands. `pending` covers both "due later" and "claimed by a worker now".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Dead,
    Canceled,
}

wire_enum!(DeliveryState, "delivery state", {
    Pending => "pending",
    Delivered => "delivered",
    Dead => "dead",
    Canceled => "canceled",
});

/// Why a series of attempts was started (CONTRACT §7): the enqueue, an operator's replay
/// (API with the operator token, bulk replay, CLI), a partner's replay (partner token), or
/// the automatic replay after the endpoint recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Initial,
    Operator,
    Partner,
    AutoRecovery,
}

wire_enum!(Trigger, "trigger", {
    Initial => "initial",
    Operator => "operator",
    Partner => "partner",
    AutoRecovery => "auto_recovery",
});

/// The kind of a failed attempt (CONTRACT §7), from the error text the sender wrote (it
/// always starts with its kind) and the status code. `None` for a success.
///
/// The attempt log computes the same thing in SQL: the generated column `error_kind` of
/// `migrations/0005_reliability.sql`, which is kept as it is so every writer and every old
/// row gets it for free. This function serves the places that have no row (the metrics
/// label, alerts). The two are checked against each other by `tests/recovery` (any change
/// here needs a new migration that redefines the column).
pub fn error_kind(error: Option<&str>, status_code: Option<i32>) -> Option<&'static str> {
    let error = error?;
    let status = status_code.unwrap_or(0);
    Some(if error.starts_with("internal") {
        "internal"
    } else if error.starts_with("timeout") {
        "timeout"
    } else if error.starts_with("dns") {
        "dns"
    } else if error.starts_with("connect") {
        "connect"
    } else if error.starts_with("tls") {
        "tls"
    } else if error.starts_with("redirect") {
        "redirect"
    } else if error.starts_with("forbidden target") {
        "forbidden_target"
    } else if error.starts_with("auth rejected") {
        "auth_rejected"
    } else if status == 413 {
        "body_too_large"
    } else if (400..=499).contains(&status) {
        "http_4xx"
    } else if (500..=599).contains(&status) {
        "http_5xx"
    } else if error.starts_with("auth") {
        "auth"
    } else {
        "other"
    })
}
