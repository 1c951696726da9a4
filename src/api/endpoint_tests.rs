//! Test callbacks (CONTRACT §8): a real attempt through the normal delivery path with a sample
//! notification, answered at once and recorded apart from the deliveries.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caller::Caller;
use super::endpoints::visible;
use super::schema::Items;
use super::{ApiContext, ApiError};
use crate::model::hints::{self, Hint};
use crate::model::{ErrorKind, EventType, ValidationError};
use crate::outbound::test_callback;
use crate::store::{Endpoint, EndpointTest};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(test))
        .routes(routes!(tests))
}

/// Optional; omitted: proposal.status, or the endpoint's first event type when it does not
/// take proposal.status.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
struct TestBody {
    event_type: Option<EventType>,
}

/// The outcome of one test callback (never retried; not a delivery).
#[derive(Serialize, ToSchema)]
struct TestResult {
    /// The request's X-Callback-Id.
    id: Uuid,
    /// The endpoint answered 2xx.
    delivered: bool,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
    #[schema(value_type = EventType)]
    event_type: String,
    started_at: DateTime<Utc>,
    /// The first 4 KiB of the answer.
    response_body: Option<String>,
    #[serde(flatten)]
    advice: Advice,
}

/// What a partner needs to fix a failed test: `error_kind` and its `hint` in both
/// languages, both null for a success.
#[derive(Serialize, ToSchema)]
struct Advice {
    /// The kind of failure; null when delivered.
    error_kind: Option<ErrorKind>,
    /// What to check for this error_kind, in English and Portuguese; null when delivered.
    hint: Option<Hint>,
}

impl Advice {
    fn of(test: &EndpointTest) -> Self {
        let kind = test.error_kind;
        Advice {
            error_kind: kind,
            hint: kind.and_then(hints::hints),
        }
    }
}

/// A recorded test callback, with what to check when it failed.
#[derive(Serialize, ToSchema)]
#[schema(as = EndpointTest)]
struct RecordedTest {
    #[serde(flatten)]
    test: EndpointTest,
    #[serde(flatten)]
    advice: Advice,
}

/// Send one real test callback with a sample notification and answer its outcome
///
/// One real attempt with a sample notification (CONTRACT §8), answered with its outcome and
/// recorded in `endpoint_tests`. The body is optional (`{}` or none: a `proposal.status`, or
/// the endpoint's first event type when it does not take `proposal.status`).
#[utoipa::path(post, path = "/endpoints/{id}/test", tag = "endpoints",
    operation_id = "testEndpoint", params(("id" = Uuid, Path, description = "the endpoint")),
    request_body(content = Option<TestBody>),
    responses((status = 200, description = "Sent (or failed to send): the outcome", body = TestResult)))]
async fn test(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<TestResult>, ApiError> {
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
    let advice = Advice::of(&record);
    Ok(Json(TestResult {
        id: record.id,
        delivered: record.delivered,
        status_code: record.status_code,
        error: record.error,
        duration_ms: record.duration_ms,
        event_type: record.event_type,
        started_at: record.started_at,
        response_body: record.response_body,
        advice,
    }))
}

/// The endpoint's test callbacks, newest first (the last 100 are kept)
#[utoipa::path(get, path = "/endpoints/{id}/tests", tag = "endpoints",
    operation_id = "listEndpointTests", params(("id" = Uuid, Path, description = "the endpoint")),
    responses((status = 200, description = "Tests", body = Items<RecordedTest>)))]
async fn tests(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Items<RecordedTest>>, ApiError> {
    let endpoint = visible(&ctx, caller, &id).await?;
    let items = EndpointTest::list(&ctx.pool, endpoint.id)
        .await?
        .into_iter()
        .map(|test| RecordedTest {
            advice: Advice::of(&test),
            test,
        })
        .collect();
    Ok(Json(Items { items }))
}
