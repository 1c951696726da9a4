use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::caller::Caller;
use super::extract::{ApiJson, QueryPairs, path_id};
use super::{ApiContext, ApiError};
use crate::model::{DeliveryState, Environment, EventType, Trigger};
use crate::store::{Cursor, Delivery, DeliveryDetail, DeliveryFilter};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/deliveries", get(list))
        .route("/deliveries/replay", post(replay_bulk))
        .route("/deliveries/{id}", get(show))
        .route("/deliveries/{id}/replay", post(replay))
        .route("/deliveries/{id}/cancel", post(cancel))
}

fn parsed<T: std::str::FromStr>(v: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    v.parse::<T>().map_err(|e| e.to_string())
}

fn timestamp(v: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "expected an RFC 3339 timestamp such as 2026-11-25T20:00:00Z".to_string())
}

/// For a partner the list is its own deliveries only: `partner_id` is forced to the
/// caller's (naming another partner matches nothing).
async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    q: QueryPairs,
) -> Result<Json<Value>, ApiError> {
    q.only(&[
        "state",
        "partner_id",
        "endpoint_id",
        "environment",
        "event_type",
        "proposal",
        "since",
        "until",
        "limit",
        "cursor",
    ])?;
    let mut filter = DeliveryFilter {
        state: q.get("state", parsed)?,
        partner_id: q.get("partner_id", parsed)?,
        endpoint_id: q.get("endpoint_id", parsed)?,
        environment: q.get("environment", parsed)?,
        event_type: q.get("event_type", parsed)?,
        proposal: q.get("proposal", parsed)?,
        since: q.get("since", timestamp)?,
        until: q.get("until", timestamp)?,
    };
    let limit = q
        .get("limit", |v| match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
        })?
        .unwrap_or(DEFAULT_LIMIT);
    let cursor = q.get("cursor", |v| Cursor::decode(v).map_err(|e| e.message))?;
    if let Some(own) = caller.partner_id() {
        if filter.partner_id.is_some_and(|p| p != own) {
            return Ok(Json(json!({ "items": [], "next_cursor": null })));
        }
        filter.partner_id = Some(own);
    }
    let (items, next) = Delivery::list(&ctx.pool, &filter, limit, cursor).await?;
    Ok(Json(
        json!({ "items": items, "next_cursor": next.map(|c| c.encode()) }),
    ))
}

/// The delivery named in the path, if the caller may see it (404 otherwise).
async fn visible(ctx: &ApiContext, caller: Caller, id: &str) -> Result<DeliveryDetail, ApiError> {
    let d = Delivery::get(&ctx.pool, path_id(id, "delivery")?).await?;
    caller.check_partner(d.delivery.partner_id, "delivery")?;
    Ok(d)
}

async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    Ok(Json(visible(&ctx, caller, &id).await?))
}

async fn replay(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryDetail>), ApiError> {
    let id = visible(&ctx, caller, &id).await?.delivery.id;
    let d = Delivery::replay(&ctx.pool, id, caller.trigger()).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

async fn cancel(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let id = visible(&ctx, caller, &id).await?.delivery.id;
    let reason = match caller {
        Caller::Operator => "canceled by operator",
        Caller::Partner { .. } => "canceled by partner",
    };
    Ok(Json(Delivery::cancel_because(&ctx.pool, id, reason).await?))
}

/// The filter of a bulk replay: the list's filters, as a JSON body.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayFilter {
    state: Option<DeliveryState>,
    partner_id: Option<uuid::Uuid>,
    endpoint_id: Option<uuid::Uuid>,
    environment: Option<Environment>,
    event_type: Option<EventType>,
    proposal: Option<uuid::Uuid>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

async fn replay_bulk(
    State(ctx): State<ApiContext>,
    ApiJson(f): ApiJson<ReplayFilter>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let filter = DeliveryFilter {
        state: f.state,
        partner_id: f.partner_id,
        endpoint_id: f.endpoint_id,
        environment: f.environment,
        event_type: f.event_type,
        proposal: f.proposal,
        since: f.since,
        until: f.until,
    };
    let replayed =
        crate::store::replay_matching(&ctx.pool, &filter, Trigger::Operator, |_| {}).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": replayed }))))
}
