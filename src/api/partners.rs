use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::Caller;
use super::extract::{ApiJson, path_id};
use super::schema::Items;
use super::{ApiContext, ApiError};
use crate::model::ValidationError;
use crate::store::Partner;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, change, remove))
}

/// POST /v1/partners
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PartnerBody {
    #[schema(min_length = 1, max_length = 200)]
    name: String,
}

/// PATCH /v1/partners/{id}: what is given changes
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PartnerPatch {
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// Whether a production endpoint this partner registers with its own token must be https.
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

/// Create a partner
#[utoipa::path(post, path = "/partners", tag = "partners", operation_id = "createPartner",
    request_body = PartnerBody,
    responses((status = 201, description = "Created", body = Partner)))]
async fn create(
    State(ctx): State<ApiContext>,
    caller: Caller,
    ApiJson(body): ApiJson<PartnerBody>,
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

/// List partners
#[utoipa::path(get, path = "/partners", tag = "partners", operation_id = "listPartners",
    responses((status = 200, description = "Partners", body = Items<Partner>)))]
async fn list(State(ctx): State<ApiContext>) -> Result<Json<Items<Partner>>, ApiError> {
    let items = Partner::list(&ctx.pool).await?;
    Ok(Json(Items { items }))
}

/// A partner
#[utoipa::path(get, path = "/partners/{id}", tag = "partners", operation_id = "getPartner",
    params(("id" = Uuid, Path, description = "the partner")),
    responses((status = 200, description = "The partner", body = Partner)))]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Partner>, ApiError> {
    let id = path_id(&id, "partner")?;
    caller.check_partner(id, "partner")?;
    Ok(Json(Partner::get(&ctx.pool, id).await?))
}

/// Rename a partner, or change its production_requires_https
///
/// `{"name"?, "production_requires_https"?}`: what is given changes.
#[utoipa::path(patch, path = "/partners/{id}", tag = "partners", operation_id = "changePartner",
    params(("id" = Uuid, Path, description = "the partner")), request_body = PartnerPatch,
    responses((status = 200, description = "The partner", body = Partner)))]
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

/// Delete a partner (soft; its pending deliveries are canceled)
#[utoipa::path(delete, path = "/partners/{id}", tag = "partners", operation_id = "deletePartner",
    params(("id" = Uuid, Path, description = "the partner")),
    responses((status = 204, description = "Deleted")))]
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
