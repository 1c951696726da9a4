//! Test callbacks (`POST /v1/endpoints/{id}/test`): one real attempt to an endpoint with a
//! sample notification, through the same request building, auth and sender as a delivery.
//! Not queued, never retried; the caller records the outcome.

use std::time::Duration;

use chrono::Utc;
use reqwest::header::{HeaderName, HeaderValue};
use uuid::Uuid;

use super::credentials::Credentials;
use super::failure::Failure;
use super::request::{CallbackRequest, proposal_status_url, sign_standard_webhooks};
use super::{AttemptResult, CallbackSender};
use crate::model::{ErrorKind, EventType, Method};
use crate::store::Endpoint;

/// The proposal every sample `proposal.status` names (the one of the README's examples).
pub const SAMPLE_PROPOSAL: &str = "7d1e4c5a-2b3f-4a6e-9c8d-1e2f3a4b5c6d";
/// The status of the sample `proposal.status`: 9, Paid.
pub const SAMPLE_STATUS: i16 = 9;
pub const SAMPLE_IDENTIFIER: &str = "TEST-0001";

/// Every test request carries this header (`true`), so a receiver can tell tests apart.
pub const TEST_HEADER: &str = "x-callback-test";

/// The seeds' example bodies (tests/fixtures/README.md says where each one comes from).
const STATUS_9_BODY: &str = include_str!("../../tests/fixtures/synthetic_status_9.json");
const SCHEDULE_BODY: &str = include_str!("../../tests/fixtures/seed001_schedule_5.json");
const BANKING_BODY: &str = include_str!("../../tests/fixtures/synthetic_banking.json");

/// The body a sample of `event_type` carries on an endpoint with `method`.
pub fn sample_body(event_type: EventType, method: Method) -> Option<&'static str> {
    if !method.has_body() {
        return None;
    }
    Some(match event_type {
        EventType::ProposalStatus => STATUS_9_BODY,
        EventType::ScheduleEvent => SCHEDULE_BODY,
        _ => BANKING_BODY,
    })
}

/// Sends one sample `event_type` callback to `endpoint` with `X-Callback-Id: test_id`,
/// attempt 1, within the endpoint's timeout.
pub async fn send_test(
    sender: &CallbackSender,
    endpoint: &Endpoint,
    creds: &Credentials,
    event_type: EventType,
    test_id: Uuid,
) -> AttemptResult {
    let url = match event_type {
        EventType::ProposalStatus => proposal_status_url(
            &endpoint.url,
            SAMPLE_PROPOSAL.parse().expect("a UUID"),
            SAMPLE_STATUS,
            Some(SAMPLE_IDENTIFIER),
        ),
        _ => url::Url::parse(&endpoint.url),
    };
    let url = match url {
        Ok(u) => u,
        Err(e) => {
            return AttemptResult::failed(Failure::new(
                ErrorKind::Other,
                format!("request: endpoint URL does not parse: {e}"),
            ));
        }
    };
    let unix_time = Utc::now().timestamp();
    let mut request = CallbackRequest {
        url,
        method: endpoint.method,
        delivery_id: test_id,
        attempt: 1,
        event_type: event_type.as_str(),
        unix_time,
        body: sample_body(event_type, endpoint.method),
        // A test is outside every ordered series: no X-Callback-Sequence.
        sequence: None,
    }
    .build();
    request.headers_mut().insert(
        HeaderName::from_static(TEST_HEADER),
        HeaderValue::from_static("true"),
    );
    if let Some(keys) = &creds.signing {
        sign_standard_webhooks(&mut request, keys, test_id, unix_time);
    }
    let timeout = Duration::from_millis(endpoint.timeout_ms.max(1) as u64);
    sender
        .attempt(request, endpoint.id, &creds.auth, timeout)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_bodies_are_json_and_only_for_methods_with_a_body() {
        for e in EventType::ALL {
            assert_eq!(sample_body(*e, Method::Get), None);
            let body = sample_body(*e, Method::Post).unwrap();
            serde_json::from_str::<serde_json::Value>(body).unwrap();
        }
    }
}
