use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::extract::{ApiJson, path_id};
use super::{ApiContext, ApiError};
use crate::model::ValidationError;
use crate::store::Partner;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/partners", get(list).post(create))
        .route("/partners/{id}", get(show).patch(rename).delete(remove))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartnerBody {
    name: String,
}

fn valid_name(name: &str) -> Result<&str, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ValidationError::new("name", "must have 1 to 200 characters").into());
    }
    Ok(name)
}

async fn create(
    State(ctx): State<ApiContext>,
    ApiJson(body): ApiJson<PartnerBody>,
) -> Result<(StatusCode, Json<Partner>), ApiError> {
    let partner = Partner::create(&ctx.pool, valid_name(&body.name)?).await?;
    Ok((StatusCode::CREATED, Json(partner)))
}

async fn list(State(ctx): State<ApiContext>) -> Result<Json<serde_json::Value>, ApiError> {
    let items = Partner::list(&ctx.pool).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

async fn show(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<Partner>, ApiError> {
    Ok(Json(
        Partner::get(&ctx.pool, path_id(&id, "partner")?).await?,
    ))
}

async fn rename(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PartnerBody>,
) -> Result<Json<Partner>, ApiError> {
    let id = path_id(&id, "partner")?;
    Ok(Json(
        Partner::rename(&ctx.pool, id, valid_name(&body.name)?).await?,
    ))
}

async fn remove(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    Partner::delete(&ctx.pool, path_id(&id, "partner")?).await?;
    Ok(StatusCode::NO_CONTENT)
}
