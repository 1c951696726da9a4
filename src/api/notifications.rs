//! `POST /v1/notifications` (with an optional Idempotency-Key), `POST
//! /v1/notifications/batch` and `GET /v1/notifications/{id}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::Caller;
use super::enqueue_group::Answer;
use super::extract::{ApiJson, parse_json, path_id};
use super::schema::{Conflict, Items};
use super::{ApiContext, ApiError, BatchItemError};
use crate::model::{NewNotification, TraceParent, ValidationError};
use crate::store::{Enqueued, Notification};

/// Most notifications one batch may carry.
pub const MAX_BATCH: usize = 1000;

/// The header that makes `POST /v1/notifications` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The W3C Trace Context header stored with a notification.
pub const TRACEPARENT: &str = "traceparent";

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(enqueue))
        .routes(routes!(enqueue_batch))
        .routes(routes!(show))
}

/// Enqueue a notification
///
/// Validates here, once; the group committer writes the call with whatever arrives with it
/// and answers after the group committed.
#[utoipa::path(post, path = "/notifications", tag = "notifications", operation_id = "enqueue",
    params(
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
            description = "Makes the request safe to retry: a repeat (per partner) answers 200 with the first result and creates nothing; the same key with a different request is a 409"),
        ("traceparent" = Option<String>, Header, description = "W3C Trace Context of the platform's request (00-<32 hex>-<16 hex>-<2 hex>). Stored with the notification; every attempt span links to it. A malformed value is ignored, never refused."),
    ),
    request_body = NewNotification,
    responses(
        (status = 202, description = "Enqueued", body = Enqueued),
        (status = 200, description = "A repeat of an Idempotency-Key: the first answer", body = Enqueued),
        Conflict,
    ))]
async fn enqueue(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    ApiJson(mut n): ApiJson<NewNotification>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    n.validate()?;
    n.traceparent = traceparent(&headers);
    Ok(match ctx.enqueuer.enqueue(n, key).await? {
        Answer::Created(answer) => (StatusCode::ACCEPTED, Json(answer)).into_response(),
        Answer::Repeated(answer) => {
            let mut response = (StatusCode::OK, Json(answer)).into_response();
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            response
        }
    })
}

/// The Idempotency-Key header, if any: once, 1 to 255 printable ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bad = |m: &str| ApiError::BadRequest(format!("Idempotency-Key: {m}"));
    if values.next().is_some() {
        return Err(bad("send the header once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 {
        return Err(bad("must be 1 to 255 characters long"));
    }
    if !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(bad("only printable ASCII characters are allowed"));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The request's W3C `traceparent`, normalized, when it carries exactly one valid one.
/// Anything else is ignored, never refused: the platform's tracing cannot fail an enqueue.
fn traceparent(headers: &HeaderMap) -> Option<String> {
    let values = headers.get_all(TRACEPARENT).iter().map(|v| v.as_bytes());
    TraceParent::from_values(values).map(|t| t.to_string())
}

/// Enqueue up to 1000 notifications, all or nothing
///
/// Validates every item first and reports every refused one; then enqueues them all in one
/// transaction with the direct set-based insert (no second validation). All or nothing.
#[utoipa::path(post, path = "/notifications/batch", tag = "notifications",
    operation_id = "enqueueBatch", params(("traceparent" = Option<String>, Header, description = "W3C Trace Context of the platform's request (00-<32 hex>-<16 hex>-<2 hex>). Stored with the notification; every attempt span links to it. A malformed value is ignored, never refused.")),
    request_body = Vec<NewNotification>,
    responses((status = 202, description = "Enqueued, in input order", body = Items<Enqueued>)))]
async fn enqueue_batch(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    if headers.contains_key(IDEMPOTENCY_KEY) {
        return Err(ApiError::BadRequest(
            "Idempotency-Key is supported on POST /v1/notifications only".into(),
        ));
    }
    let raw: Vec<Box<RawValue>> = parse_json(&body)?;
    if raw.len() > MAX_BATCH {
        return Err(ValidationError::new(
            "body",
            format!(
                "a batch holds at most {MAX_BATCH} notifications, got {}",
                raw.len()
            ),
        )
        .into());
    }
    let total = raw.len();
    let mut items = Vec::with_capacity(total);
    let mut refused = Vec::new();
    for (index, item) in raw.iter().enumerate() {
        match parse_json::<NewNotification>(item.get().as_bytes())
            .and_then(|n| n.validate().map(|()| n).map_err(ApiError::from))
        {
            Ok(n) => items.push((index, n)),
            Err(e) => refused.push(BatchItemError::new(index, e)),
        }
    }
    // Unknown partners are found for every item at once, not one by one in the transaction.
    let mut partners: Vec<_> = items.iter().map(|(_, n)| n.partner_id).collect();
    partners.sort_unstable();
    partners.dedup();
    let unknown = Notification::unknown_partners(&ctx.pool, &partners).await?;
    for (index, n) in &items {
        if unknown.contains(&n.partner_id) {
            refused.push(BatchItemError::new(
                *index,
                ValidationError::new(
                    "partner_id",
                    format!("unknown partner_id: {}", n.partner_id),
                )
                .into(),
            ));
        }
    }
    if !refused.is_empty() {
        refused.sort_by_key(|e| e.index);
        return Err(ApiError::BatchInvalid {
            total,
            items: refused,
        });
    }
    // One request, one trace context: every item of the batch links to it.
    let trace = traceparent(&headers);
    let items: Vec<NewNotification> = items
        .into_iter()
        .map(|(_, mut n)| {
            n.traceparent = trace.clone();
            n
        })
        .collect();
    match Notification::enqueue_batch(&ctx.pool, &items).await {
        Ok(answers) => Ok((StatusCode::ACCEPTED, Json(Items { items: answers })).into_response()),
        Err(e) => match (ApiError::from(e.error), e.index) {
            (ApiError::Internal(e), _) => Err(ApiError::Internal(e)),
            (refusal, Some(index)) => Err(ApiError::BatchInvalid {
                total,
                items: vec![BatchItemError::new(index, refusal)],
            }),
            // Refused in the batch, not item by item a moment later: the database changed.
            (refusal, None) => Err(refusal),
        },
    }
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::BadRequest(
            "expected a JSON body with Content-Type: application/json".into(),
        ))
    }
}

/// A notification with its deliveries
#[utoipa::path(get, path = "/notifications/{id}", tag = "notifications",
    operation_id = "getNotification",
    params(("id" = Uuid, Path, description = "the notification")),
    responses((status = 200, description = "The notification", body = Notification)))]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Notification>, ApiError> {
    let n = Notification::get(&ctx.pool, path_id(&id, "notification")?).await?;
    caller.check_partner(n.partner_id, "notification")?;
    Ok(Json(n))
}
