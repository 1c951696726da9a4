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
use crate::model::{Environment, EventType, Method, ValidationError, validate_url_shape};
use crate::netguard;
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
) -> Result<EndpointRecord, ApiError> {
    let environment = required(
        body.environment.or(current.map(|c| c.environment)),
        "environment",
    )?;
    let method = required(body.method.or(current.map(|c| c.method)), "method")?;
    let url = required(body.url.clone().or(current.map(|c| c.url.clone())), "url")?;
    let parsed = validate_url_shape(&url)?;
    if environment == Environment::Production
        && ctx.settings.production_requires_https
        && parsed.scheme() != "https"
    {
        return Err(ValidationError::new(
            "url",
            "production endpoints must use https on this deployment (production_requires_https)",
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

    Ok(EndpointRecord {
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
    })
}

async fn create(
    State(ctx): State<ApiContext>,
    Path(partner_id): Path<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<(StatusCode, Json<Endpoint>), ApiError> {
    let partner_id = path_id(&partner_id, "partner")?;
    Partner::get(&ctx.pool, partner_id).await?;
    let r = record(&ctx, Uuid::now_v7(), partner_id, body, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(Endpoint::insert(&ctx.pool, &r).await?),
    ))
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
    let r = record(&ctx, current.id, current.partner_id, body, Some(&current)).await?;
    Ok(Json(Endpoint::update(&ctx.pool, &r).await?))
}

async fn remove(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    Endpoint::delete(&ctx.pool, path_id(&id, "endpoint")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
