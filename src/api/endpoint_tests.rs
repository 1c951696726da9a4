//! Test callbacks (CONTRACT §8): a real attempt through the normal delivery path with a sample
//! notification, answered at once and recorded apart from the deliveries.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::caller::Caller;
use super::endpoints::visible;
use super::{ApiContext, ApiError};
use crate::model::{ErrorKind, EventType, ValidationError, hints};
use crate::outbound::test_callback;
use crate::store::{Endpoint, EndpointTest};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/endpoints/{id}/test", post(test))
        .route("/endpoints/{id}/tests", get(tests))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestBody {
    event_type: Option<EventType>,
}

/// One real attempt with a sample notification (CONTRACT §8), answered with its outcome and
/// recorded in `endpoint_tests`. The body is optional (`{}` or none: a `proposal.status`, or
/// the endpoint's first event type when it does not take `proposal.status`).
async fn test(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let endpoint = visible(&ctx, caller, &id).await?;
    let body: TestBody = if body.iter().all(u8::is_ascii_whitespace) {
        TestBody::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let subscribed: Vec<EventType> = endpoint
        .event_types
        .iter()
        .filter_map(|e| e.parse().ok())
        .collect();
    let event_type = match body.event_type {
        Some(e) if !subscribed.contains(&e) => {
            return Err(ValidationError::new(
                "event_type",
                format!(
                    "this endpoint does not take {e}; it takes {}",
                    endpoint.event_types.join(", ")
                ),
            )
            .into());
        }
        Some(e) => e,
        None if subscribed.contains(&EventType::ProposalStatus) => EventType::ProposalStatus,
        None => *subscribed
            .first()
            .ok_or_else(|| ValidationError::new("event_type", "the endpoint takes no events"))?,
    };
    let (auth_sealed, signing_sealed) =
        Endpoint::sealed_credentials(&ctx.pool, endpoint.id).await?;
    let creds = crate::outbound::open_credentials(
        &ctx.secrets,
        endpoint.id,
        &auth_sealed,
        signing_sealed.as_deref(),
    )
    .map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?;
    let test_id = Uuid::now_v7();
    let result =
        test_callback::send_test(&ctx.sender, &endpoint, &creds, event_type, test_id).await;
    let record = EndpointTest {
        id: test_id,
        endpoint_id: endpoint.id,
        partner_id: endpoint.partner_id,
        event_type: event_type.as_str().to_string(),
        actor: caller.actor(),
        token_id: caller.token_id(),
        started_at: result.started_at,
        duration_ms: result.duration.as_millis().min(i32::MAX as u128) as i32,
        delivered: result.succeeded(),
        status_code: result.status_code.map(i32::from),
        error: result.error.clone(),
        error_kind: result.error_kind,
        response_body: result.response_body.clone(),
    };
    EndpointTest::insert(&ctx.pool, &record).await?;
    // A 2xx is a 2xx: an endpoint waiting to recover starts replaying its dead deliveries.
    if record.delivered && endpoint.auto_replay_dead_on_recovery {
        crate::store::auto_replay_pass(
            &ctx.pool,
            &[endpoint.id],
            ctx.settings.auto_replay_per_second,
        )
        .await?;
    }
    // What the partner's server answered (status, the first 4 KiB of its body, the time
    // taken) and, when it failed, what to check.
    let answer = serde_json::json!({
        "id": record.id,
        "delivered": record.delivered,
        "status_code": record.status_code,
        "error": record.error,
        "duration_ms": record.duration_ms,
        "event_type": record.event_type,
        "started_at": record.started_at,
        "response_body": record.response_body,
    });
    Ok(Json(with_hint(answer, &record)))
}

/// Adds what a partner needs to fix a failed test: `error_kind` and its `hint` in both
/// languages (`{"en", "pt"}`), both null for a success.
fn with_hint(mut value: serde_json::Value, test: &EndpointTest) -> serde_json::Value {
    let kind: Option<ErrorKind> = test.error_kind;
    if let Some(o) = value.as_object_mut() {
        o.insert("error_kind".into(), serde_json::json!(kind));
        o.insert(
            "hint".into(),
            serde_json::json!(kind.and_then(hints::hints)),
        );
    }
    value
}

/// The endpoint's test callbacks, newest first (the last 100 are kept).
async fn tests(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let endpoint = visible(&ctx, caller, &id).await?;
    let items: Vec<serde_json::Value> = EndpointTest::list(&ctx.pool, endpoint.id)
        .await?
        .iter()
        .map(|t| serde_json::to_value(t).map(|v| with_hint(v, t)))
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Json(serde_json::json!({ "items": items })))
}
