use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::caller::Caller;
use super::extract::{ApiJson, path_id};
use super::{ApiContext, ApiError};
use crate::model::ValidationError;
use crate::store::Partner;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/partners", get(list).post(create))
        .route("/partners/{id}", get(show).patch(change).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPartnerBody {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerPatch {
    name: Option<String>,
    production_requires_https: Option<bool>,
}

fn valid_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ValidationError::new("name", "must have 1 to 200 characters").into());
    }
    Ok(name)
}

fn view(p: &Partner) -> serde_json::Value {
    serde_json::to_value(p).unwrap_or_default()
}

async fn create(
    State(ctx): State<ApiContext>,
    caller: Caller,
    ApiJson(body): ApiJson<NewPartnerBody>,
) -> Result<(StatusCode, Json<Partner>), ApiError> {
    let name = valid_name(&body.name)?;
    let mut tx = ctx.pool.begin().await?;
    let partner = Partner::create(&mut *tx, name).await?;
    caller
        .audit(
            "partner.create",
            "partner",
            partner.id,
            partner.id,
            None,
            Some(view(&partner)),
        )
        .record(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(partner)))
}

async fn list(State(ctx): State<ApiContext>) -> Result<Json<serde_json::Value>, ApiError> {
    let items = Partner::list(&ctx.pool).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Partner>, ApiError> {
    let id = path_id(&id, "partner")?;
    caller.check_partner(id, "partner")?;
    Ok(Json(Partner::get(&ctx.pool, id).await?))
}

/// `{"name"?, "production_requires_https"?}`: what is given changes.
async fn change(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PartnerPatch>,
) -> Result<Json<Partner>, ApiError> {
    let id = path_id(&id, "partner")?;
    let name = body.name.as_deref().map(valid_name).transpose()?;
    let mut tx = ctx.pool.begin().await?;
    let before = Partner::lock(&mut tx, id).await?;
    let after = Partner::update(&mut *tx, id, name, body.production_requires_https).await?;
    caller
        .audit(
            "partner.update",
            "partner",
            id,
            id,
            Some(view(&before)),
            Some(view(&after)),
        )
        .record(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(after))
}

async fn remove(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = path_id(&id, "partner")?;
    let mut tx = ctx.pool.begin().await?;
    let before = Partner::lock(&mut tx, id).await?;
    Partner::delete(&mut tx, id).await?;
    caller
        .audit(
            "partner.delete",
            "partner",
            id,
            id,
            Some(view(&before)),
            None,
        )
        .record(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
