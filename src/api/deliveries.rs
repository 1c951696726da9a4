use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::Caller;
use super::extract::{ApiJson, QueryPairs, path_id};
use super::schema::{Conflict, Page};
use super::{ApiContext, ApiError};
use crate::model::{DeliveryState, Environment, EventType, Trigger};
use crate::store::{Cursor, Delivery, DeliveryDetail, DeliveryFilter};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(replay_bulk))
        .routes(routes!(show))
        .routes(routes!(replay))
        .routes(routes!(cancel))
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

/// Deliveries, newest first
///
/// For a partner the list is its own deliveries only: `partner_id` is forced to the
/// caller's (naming another partner matches nothing).
#[utoipa::path(get, path = "/deliveries", tag = "deliveries", operation_id = "listDeliveries",
    params(
        ("state" = Option<DeliveryState>, Query),
        ("partner_id" = Option<Uuid>, Query),
        ("endpoint_id" = Option<Uuid>, Query),
        ("environment" = Option<Environment>, Query),
        ("event_type" = Option<EventType>, Query),
        ("proposal" = Option<Uuid>, Query),
        ("since" = Option<DateTime<Utc>>, Query, description = "on creation time, inclusive"),
        ("until" = Option<DateTime<Utc>>, Query, description = "on creation time, exclusive"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, description = "A page", body = Page<Delivery>)))]
async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    q: QueryPairs,
) -> Result<Json<Page<Delivery>>, ApiError> {
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
            return Ok(Json(Page {
                items: Vec::new(),
                next_cursor: None,
            }));
        }
        filter.partner_id = Some(own);
    }
    let (items, next) = Delivery::list(&ctx.pool, &filter, limit, cursor).await?;
    Ok(Json(Page {
        items,
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// The delivery named in the path, if the caller may see it (404 otherwise).
async fn visible(ctx: &ApiContext, caller: Caller, id: &str) -> Result<DeliveryDetail, ApiError> {
    let d = Delivery::get(&ctx.pool, path_id(id, "delivery")?).await?;
    caller.check_partner(d.delivery.partner_id, "delivery")?;
    Ok(d)
}

/// A delivery with its attempt log
#[utoipa::path(get, path = "/deliveries/{id}", tag = "deliveries", operation_id = "getDelivery",
    params(("id" = Uuid, Path, description = "the delivery")),
    responses((status = 200, description = "The delivery", body = DeliveryDetail)))]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    Ok(Json(visible(&ctx, caller, &id).await?))
}

/// Replay a dead or canceled delivery (new series)
#[utoipa::path(post, path = "/deliveries/{id}/replay", tag = "deliveries",
    operation_id = "replayDelivery", params(("id" = Uuid, Path, description = "the delivery")),
    responses(
        (status = 202, description = "Pending again", body = DeliveryDetail),
        Conflict,
    ))]
async fn replay(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<DeliveryDetail>), ApiError> {
    let id = visible(&ctx, caller, &id).await?.delivery.id;
    let d = Delivery::replay(&ctx.pool, id, caller.trigger()).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

/// Cancel a pending delivery
#[utoipa::path(post, path = "/deliveries/{id}/cancel", tag = "deliveries",
    operation_id = "cancelDelivery", params(("id" = Uuid, Path, description = "the delivery")),
    responses(
        (status = 200, description = "Canceled", body = DeliveryDetail),
        Conflict,
    ))]
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
#[derive(serde::Deserialize, ToSchema)]
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

/// How many deliveries a bulk replay made pending again.
#[derive(Serialize, ToSchema)]
struct Replayed {
    replayed: u64,
}

/// Replay every dead (or canceled) delivery matching a filter
#[utoipa::path(post, path = "/deliveries/replay", tag = "deliveries",
    operation_id = "replayMatching", request_body = ReplayFilter,
    responses((status = 202, description = "Replayed", body = Replayed)))]
async fn replay_bulk(
    State(ctx): State<ApiContext>,
    ApiJson(f): ApiJson<ReplayFilter>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
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
    Ok((StatusCode::ACCEPTED, Json(Replayed { replayed })))
}
