//! The body of `POST /v1/partners/{id}/endpoints` and `PATCH /v1/endpoints/{id}`, and its
//! validation: the same body serves POST (all required fields) and PATCH (only what
//! changes); both end in one fully validated [`EndpointRecord`].

use serde::Deserialize;
use uuid::Uuid;

use super::caller::Caller;
use super::{ApiContext, ApiError};
use crate::model::{
    DeliveryOrder, Environment, EventType, Method, Signing, ValidationError, validate_url_shape,
};
use crate::netguard;
use crate::outbound::auth::AuthConfig;
use crate::outbound::signing::{self, SigningKeys};
use crate::store::{Endpoint, EndpointRecord, Partner, SigningChange};

/// POST takes environment, url and method (required) and any of the rest; PATCH any
/// subset. Unknown fields are refused.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct EndpointBody {
    environment: Option<Environment>,
    /// http or https; no credentials, no fragment; public addresses only unless
    /// CALLBACKD_ALLOW_PRIVATE_TARGETS.
    #[schema(max_length = 2048)]
    url: Option<String>,
    method: Option<Method>,
    /// Omitted: every type the method can carry (GET: proposal.status only).
    event_types: Option<Vec<EventType>>,
    /// Omitted on POST: none; on PATCH: the stored credentials stay. A PATCH with auth
    /// replaces all of it.
    #[schema(value_type = Option<crate::model::AuthSchema>)]
    auth: Option<serde_json::Value>,
    /// Default 15000 (CALLBACKD_ENDPOINT_TIMEOUT_MS); at most the lease minus one second,
    /// and never over 120000.
    #[schema(minimum = 100, maximum = 120000)]
    timeout_ms: Option<i64>,
    /// Default CALLBACKD_MAX_ATTEMPTS.
    #[schema(minimum = 1, maximum = 100)]
    max_attempts: Option<i64>,
    /// Default true.
    enabled: Option<bool>,
    /// per_proposal: one delivery of a proposal at a time, in order, with
    /// X-Callback-Sequence. Default per_proposal when the endpoint takes proposal.status or
    /// schedule.event, else none.
    ordering: Option<DeliveryOrder>,
    /// standard_webhooks: requests carry webhook-id, webhook-timestamp and
    /// webhook-signature. Without signing_secret callbackd generates one and returns it once.
    signing: Option<Signing>,
    /// whsec_ and a base64 key of 24 to 64 bytes. On a signed endpoint a new secret
    /// rotates: the old one keeps signing for signing_grace_s. Cannot be combined with
    /// signing none.
    #[schema(write_only)]
    signing_secret: Option<String>,
    /// How long a rotated-out secret keeps signing, in seconds (default 86400).
    #[schema(minimum = 0, maximum = 2592000)]
    signing_grace_s: Option<i64>,
    /// Replay the dead deliveries of the last auto_replay_window_s automatically once the
    /// endpoint answers 2xx again (docs/recovery-and-alerts.md). Default false.
    auto_replay_dead_on_recovery: Option<bool>,
    /// Default 86400.
    #[schema(minimum = 1, maximum = 2592000)]
    auto_replay_window_s: Option<i64>,
    /// Send a W3C traceparent header (the attempt span's trace context) with each callback;
    /// only while traces are exported (CALLBACKD_OTLP_ENDPOINT). Default false.
    propagate_trace_context: Option<bool>,
    /// Absent: keep (or none, when creating); null: no limit; a number: requests per second.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100000)]
    rate_limit_per_s: Option<Option<i64>>,
    /// Absent: keep (all, when creating); null: all; a list: only these proposal statuses.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<i64>>)]
    statuses: Option<Option<Vec<i64>>>,
    /// Absent: keep (all, when creating); null: all; a list: only these `TipoEvento`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<i64>>)]
    schedule_types: Option<Option<Vec<i64>>>,
}

/// A filter list as stored: null (all), or a non-empty sorted set of values in `lo..=hi`.
fn filter(
    value: Option<Option<Vec<i64>>>,
    current: Option<Option<Vec<i16>>>,
    field: &str,
    lo: i64,
    hi: i64,
) -> Result<Option<Vec<i16>>, ValidationError> {
    let Some(value) = value else {
        return Ok(current.flatten());
    };
    let Some(mut list) = value else {
        return Ok(None);
    };
    if list.is_empty() {
        return Err(ValidationError::new(
            field,
            "must name at least one value, or be null for all",
        ));
    }
    if let Some(bad) = list.iter().find(|v| !(lo..=hi).contains(*v)) {
        return Err(ValidationError::new(
            field,
            format!("{bad} is not between {lo} and {hi}"),
        ));
    }
    list.sort_unstable();
    list.dedup();
    Ok(Some(list.into_iter().map(|v| v as i16).collect()))
}

/// Tells a field that is present (even as null) from one that is absent.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

fn required<T>(v: Option<T>, field: &str) -> Result<T, ValidationError> {
    v.ok_or_else(|| ValidationError::new(field, "required"))
}

fn in_range(v: i64, field: &str, lo: i64, hi: i64) -> Result<i32, ValidationError> {
    if (lo..=hi).contains(&v) {
        Ok(v as i32)
    } else {
        Err(ValidationError::new(
            field,
            format!("must be between {lo} and {hi}"),
        ))
    }
}

/// Merges `body` over `current` (None when creating) and validates the result. The SSRF
/// rule applies to everyone (unless the deployment allows private targets); a partner's
/// own production endpoints must be https unless the operator lifted that for it.
pub(super) async fn record(
    ctx: &ApiContext,
    caller: Caller,
    id: Uuid,
    partner: &Partner,
    body: EndpointBody,
    current: Option<&Endpoint>,
) -> Result<(EndpointRecord, Option<String>), ApiError> {
    let partner_id = partner.id;
    let environment = required(
        body.environment.or(current.map(|c| c.environment)),
        "environment",
    )?;
    let method = required(body.method.or(current.map(|c| c.method)), "method")?;
    let url = required(body.url.clone().or(current.map(|c| c.url.clone())), "url")?;
    let parsed = validate_url_shape(&url)?;
    // Checked when the target is set or changed, so toggling an old endpoint still works.
    let sets_target = current.is_none() || body.url.is_some() || body.environment.is_some();
    let https_required = ctx.settings.production_requires_https
        || (caller.is_partner() && partner.production_requires_https);
    if sets_target
        && https_required
        && environment == Environment::Production
        && parsed.scheme() != "https"
    {
        return Err(ValidationError::new(
            "url",
            "a production endpoint must use https (production_requires_https: on this deployment, or for this partner until the operator lifts it)",
        )
        .into());
    }
    if body.url.is_some() && !ctx.settings.allow_private_targets {
        netguard::check_url(&parsed)
            .await
            .map_err(|e| ValidationError::new("url", e.to_string()))?;
    }

    let event_types = match (&body.event_types, current) {
        (Some(list), _) => list.clone(),
        (None, Some(c)) => c
            .event_types
            .iter()
            .filter_map(|e| e.parse().ok())
            .collect(),
        (None, None) => EventType::defaults_for(method),
    };
    if event_types.is_empty() {
        return Err(
            ValidationError::new("event_types", "must name at least one event type").into(),
        );
    }
    if let Some(e) = event_types.iter().find(|e| !e.carried_by(method)) {
        return Err(ValidationError::new(
            "event_types",
            format!("{e} needs a body, which a {method} endpoint cannot carry: use POST or PUT"),
        )
        .into());
    }
    // Ordered by default wherever there is a proposal to order by.
    let orderable = event_types
        .iter()
        .any(|e| matches!(e, EventType::ProposalStatus | EventType::ScheduleEvent));
    let ordering = body
        .ordering
        .or(current.map(|c| c.ordering))
        .unwrap_or(if orderable {
            DeliveryOrder::PerProposal
        } else {
            DeliveryOrder::None
        });
    let mut names: Vec<String> = Vec::with_capacity(event_types.len());
    for e in event_types {
        if !names.iter().any(|n| n == e.as_str()) {
            names.push(e.as_str().to_string());
        }
    }

    let max_timeout = ctx.settings.max_endpoint_timeout_ms() as i64;
    let timeout_ms = body
        .timeout_ms
        .or(current.map(|c| i64::from(c.timeout_ms)))
        .unwrap_or(ctx.settings.endpoint_timeout_ms as i64);
    let max_attempts = body
        .max_attempts
        .or(current.map(|c| i64::from(c.max_attempts)))
        .unwrap_or(i64::from(ctx.settings.max_attempts));

    // Sealed only when the body brings an auth object; a PATCH without one keeps the old.
    let (auth_type, auth_public, auth_sealed) = match (&body.auth, current) {
        (None, Some(c)) => (String::new(), c.auth.clone(), Vec::new()),
        (auth, _) => {
            let config = AuthConfig::from_json(auth.as_ref())?;
            // The OAuth2 token URL is called by callbackd too: same SSRF rule as `url`.
            if let AuthConfig::OAuth2(o) = &config
                && !ctx.settings.allow_private_targets
                && let Ok(token_url) = url::Url::parse(&o.token_url)
            {
                netguard::check_url(&token_url)
                    .await
                    .map_err(|e| ValidationError::new("auth.token_url", e.to_string()))?;
            }
            // The plaintext credentials are wiped once sealed.
            let plain = zeroize::Zeroizing::new(
                serde_json::to_vec(&config).map_err(|e| ApiError::Internal(e.into()))?,
            );
            (
                config.type_name().to_string(),
                config.public_view(),
                ctx.secrets.seal(&plain, id.as_bytes()),
            )
        }
    };

    let (signing, revealed) = signing_change(ctx, id, &body, current).await?;
    let record = EndpointRecord {
        id,
        partner_id,
        environment,
        url: parsed.to_string(),
        method,
        event_types: names,
        auth_type,
        auth_public,
        auth_sealed,
        timeout_ms: in_range(timeout_ms, "timeout_ms", 100, max_timeout)?,
        max_attempts: in_range(max_attempts, "max_attempts", 1, 100)?,
        enabled: body.enabled.or(current.map(|c| c.enabled)).unwrap_or(true),
        ordering,
        signing,
        auto_replay_dead_on_recovery: body
            .auto_replay_dead_on_recovery
            .or(current.map(|c| c.auto_replay_dead_on_recovery))
            .unwrap_or(false),
        auto_replay_window_s: in_range(
            body.auto_replay_window_s
                .or(current.map(|c| i64::from(c.auto_replay_window_s)))
                .unwrap_or(86_400),
            "auto_replay_window_s",
            1,
            30 * 86_400,
        )?,
        statuses: filter(
            body.statuses.clone(),
            current.map(|c| c.statuses.clone()),
            "statuses",
            0,
            11,
        )?,
        schedule_types: filter(
            body.schedule_types.clone(),
            current.map(|c| c.schedule_types.clone()),
            "schedule_types",
            1,
            6,
        )?,
        propagate_trace_context: body
            .propagate_trace_context
            .or(current.map(|c| c.propagate_trace_context))
            .unwrap_or(false),
        rate_limit_per_s: match body.rate_limit_per_s {
            Some(Some(rate)) => Some(in_range(rate, "rate_limit_per_s", 1, 100_000)?),
            Some(None) => None,
            None => current.and_then(|c| c.rate_limit_per_s),
        },
    };
    Ok((record, revealed))
}

/// What the body asks of the Standard Webhooks keys. A new `signing_secret` on a signed
/// endpoint rotates: the old secret keeps signing for `signing_grace_s` (default one day).
/// A secret callbackd generates is returned once, in this answer.
async fn signing_change(
    ctx: &ApiContext,
    id: Uuid,
    body: &EndpointBody,
    current: Option<&Endpoint>,
) -> Result<(SigningChange, Option<String>), ApiError> {
    let signed_now = current.is_some_and(|c| c.signing != "none");
    let grace = body.signing_grace_s.unwrap_or(86_400);
    if !(0..=30 * 86_400).contains(&grace) {
        return Err(
            ValidationError::new("signing_grace_s", "must be between 0 and 2592000").into(),
        );
    }
    let seal = |keys: &SigningKeys| -> Result<SigningChange, ApiError> {
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(keys).map_err(|e| ApiError::Internal(e.into()))?,
        );
        Ok(SigningChange::Set(
            ctx.secrets.seal(&plain, &signing::binding(id)),
        ))
    };
    match (body.signing, &body.signing_secret) {
        (Some(Signing::None), Some(_)) => Err(ValidationError::new(
            "signing_secret",
            "cannot be combined with \"signing\": \"none\"",
        )
        .into()),
        (Some(Signing::None), None) => Ok((SigningChange::Clear, None)),
        (_, Some(secret)) => {
            signing::validate_secret(secret)?;
            let stored = match current {
                Some(c) => Endpoint::sealed_credentials(&ctx.pool, c.id).await?.1,
                None => None,
            };
            let keys = match stored {
                Some(sealed) if signed_now => {
                    let plain = ctx
                        .secrets
                        .open(&sealed, &signing::binding(id))
                        .map_err(|e| ApiError::Internal(e.into()))?;
                    let old: SigningKeys =
                        serde_json::from_slice(&plain).map_err(|e| ApiError::Internal(e.into()))?;
                    old.rotate(
                        secret.clone(),
                        chrono::Utc::now(),
                        chrono::Duration::seconds(grace),
                    )
                }
                _ => SigningKeys::new(secret.clone()),
            };
            Ok((seal(&keys)?, None))
        }
        (Some(Signing::StandardWebhooks), None) if signed_now => Ok((SigningChange::Keep, None)),
        (Some(Signing::StandardWebhooks), None) => {
            let secret = signing::generate_secret();
            Ok((seal(&SigningKeys::new(secret.clone()))?, Some(secret)))
        }
        (None, None) if current.is_some() => Ok((SigningChange::Keep, None)),
        (None, None) => Ok((SigningChange::Clear, None)),
    }
}
