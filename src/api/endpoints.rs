//! A partner's callback endpoints. The same body serves POST (all required fields) and
//! PATCH (only what changes); both end in one fully validated record.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use super::extract::{ApiJson, path_id};
use super::{ApiContext, ApiError};
use crate::auth::AuthConfig;
use crate::model::{
    Environment, EventType, Method, Ordering, Signing, ValidationError, validate_url_shape,
};
use crate::netguard;
use crate::signing::SigningKeys;
use crate::store::SigningChange;
use crate::store::{Endpoint, EndpointRecord, Partner};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/partners/{id}/endpoints", get(list).post(create))
        .route("/endpoints/{id}", get(show).patch(change).delete(remove))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    environment: Option<Environment>,
    url: Option<String>,
    method: Option<Method>,
    event_types: Option<Vec<EventType>>,
    auth: Option<serde_json::Value>,
    timeout_ms: Option<i64>,
    max_attempts: Option<i64>,
    enabled: Option<bool>,
    ordering: Option<Ordering>,
    signing: Option<Signing>,
    signing_secret: Option<String>,
    signing_grace_s: Option<i64>,
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

/// Merges `body` over `current` (None when creating) and validates the result.
async fn record(
    ctx: &ApiContext,
    id: Uuid,
    partner_id: Uuid,
    body: EndpointBody,
    current: Option<&Endpoint>,
) -> Result<(EndpointRecord, Option<String>), ApiError> {
    let environment = required(
        body.environment.or(current.map(|c| c.environment)),
        "environment",
    )?;
    let method = required(body.method.or(current.map(|c| c.method)), "method")?;
    let url = required(body.url.clone().or(current.map(|c| c.url.clone())), "url")?;
    let parsed = validate_url_shape(&url)?;
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
            Ordering::PerProposal
        } else {
            Ordering::None
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
            let plain = serde_json::to_vec(&config).map_err(|e| ApiError::Internal(e.into()))?;
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
        let plain = serde_json::to_vec(keys).map_err(|e| ApiError::Internal(e.into()))?;
        Ok(SigningChange::Set(
            ctx.secrets.seal(&plain, &crate::signing::binding(id)),
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
            crate::signing::validate_secret(secret)?;
            let keys = match Endpoint::signing_sealed(&ctx.pool, id).await? {
                Some(sealed) if signed_now => {
                    let plain = ctx
                        .secrets
                        .open(&sealed, &crate::signing::binding(id))
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
            let secret = crate::signing::generate_secret();
            Ok((seal(&SigningKeys::new(secret.clone()))?, Some(secret)))
        }
        (None, None) if current.is_some() => Ok((SigningChange::Keep, None)),
        (None, None) => Ok((SigningChange::Clear, None)),
    }
}

async fn create(
    State(ctx): State<ApiContext>,
    Path(partner_id): Path<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<(StatusCode, Json<Endpoint>), ApiError> {
    let partner_id = path_id(&partner_id, "partner")?;
    Partner::get(&ctx.pool, partner_id).await?;
    let (r, revealed) = record(&ctx, Uuid::now_v7(), partner_id, body, None).await?;
    let mut created = Endpoint::insert(&ctx.pool, &r).await?;
    created.signing_secret = revealed;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn list(
    State(ctx): State<ApiContext>,
    Path(partner_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let partner_id = path_id(&partner_id, "partner")?;
    Partner::get(&ctx.pool, partner_id).await?;
    let mut items = Vec::new();
    for e in Endpoint::list(&ctx.pool, Some(partner_id)).await? {
        items.push(e.with_health(&ctx.pool).await?);
    }
    Ok(Json(serde_json::json!({ "items": items })))
}

async fn show(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    let endpoint = Endpoint::get(&ctx.pool, path_id(&id, "endpoint")?).await?;
    Ok(Json(endpoint.with_health(&ctx.pool).await?))
}

async fn change(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<Json<Endpoint>, ApiError> {
    let current = Endpoint::get(&ctx.pool, path_id(&id, "endpoint")?).await?;
    let (r, revealed) = record(&ctx, current.id, current.partner_id, body, Some(&current)).await?;
    let mut updated = Endpoint::update(&ctx.pool, &r).await?;
    updated.signing_secret = revealed;
    Ok(Json(updated))
}

async fn remove(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    Endpoint::delete(&ctx.pool, path_id(&id, "endpoint")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
