//! A partner's callback endpoints: the handlers. Their body and its validation are in
//! [`super::endpoint_body`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caller::Caller;
use super::endpoint_body::{EndpointBody, record};
use super::extract::{ApiJson, path_id};
use super::schema::Items;
use super::{ApiContext, ApiError};
use crate::store::{Endpoint, Partner};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, change, remove))
        .merge(super::endpoint_tests::router())
}

/// The endpoint's audit view: as the API shows it (auth as its secret-free public view).
fn view(e: &Endpoint) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or_default()
}

/// Register an endpoint
///
/// POST takes environment, url and method (required) and any of the rest.
#[utoipa::path(post, path = "/partners/{id}/endpoints", tag = "endpoints",
    operation_id = "createEndpoint", params(("id" = Uuid, Path, description = "the partner")), request_body = EndpointBody,
    responses((status = 201, description = "Created", body = Endpoint)))]
async fn create(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(partner_id): Path<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<(StatusCode, Json<Endpoint>), ApiError> {
    let partner_id = path_id(&partner_id, "partner")?;
    caller.check_partner(partner_id, "partner")?;
    let partner = Partner::get(&ctx.pool, partner_id).await?;
    let (r, revealed) = record(&ctx, caller, Uuid::now_v7(), &partner, body, None).await?;
    let mut tx = ctx.pool.begin().await?;
    let mut created = Endpoint::insert(&mut *tx, &r).await?;
    caller
        .audit(
            "endpoint.create",
            "endpoint",
            created.id,
            partner_id,
            None,
            Some(view(&created)),
        )
        .record(&mut *tx)
        .await?;
    tx.commit().await?;
    created.signing_secret = revealed;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A partner's endpoints, with health
#[utoipa::path(get, path = "/partners/{id}/endpoints", tag = "endpoints",
    operation_id = "listEndpoints", params(("id" = Uuid, Path, description = "the partner")),
    responses((status = 200, description = "Endpoints", body = Items<Endpoint>)))]
async fn list(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(partner_id): Path<String>,
) -> Result<Json<Items<Endpoint>>, ApiError> {
    let partner_id = path_id(&partner_id, "partner")?;
    caller.check_partner(partner_id, "partner")?;
    Partner::get(&ctx.pool, partner_id).await?;
    let mut items = Vec::new();
    for e in Endpoint::list(&ctx.pool, Some(partner_id)).await? {
        items.push(e.with_health(&ctx.pool).await?);
    }
    Ok(Json(Items { items }))
}

/// The endpoint named in the path, if the caller may see it (404 otherwise).
pub(super) async fn visible(
    ctx: &ApiContext,
    caller: Caller,
    id: &str,
) -> Result<Endpoint, ApiError> {
    let endpoint = Endpoint::get(&ctx.pool, path_id(id, "endpoint")?).await?;
    caller.check_partner(endpoint.partner_id, "endpoint")?;
    Ok(endpoint)
}

/// An endpoint, with health
#[utoipa::path(get, path = "/endpoints/{id}", tag = "endpoints", operation_id = "getEndpoint",
    params(("id" = Uuid, Path, description = "the endpoint")),
    responses((status = 200, description = "The endpoint", body = Endpoint)))]
async fn show(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    let endpoint = visible(&ctx, caller, &id).await?;
    Ok(Json(endpoint.with_health(&ctx.pool).await?))
}

/// Change an endpoint (any subset; without auth the stored credentials stay)
#[utoipa::path(patch, path = "/endpoints/{id}", tag = "endpoints",
    operation_id = "changeEndpoint", params(("id" = Uuid, Path, description = "the endpoint")), request_body = EndpointBody,
    responses((status = 200, description = "The endpoint", body = Endpoint)))]
async fn change(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<EndpointBody>,
) -> Result<Json<Endpoint>, ApiError> {
    let current = visible(&ctx, caller, &id).await?;
    let partner = Partner::get(&ctx.pool, current.partner_id).await?;
    let (r, revealed) = record(&ctx, caller, current.id, &partner, body, Some(&current)).await?;
    let mut tx = ctx.pool.begin().await?;
    let before = Endpoint::lock(&mut tx, current.id).await?;
    let mut after = Endpoint::update(&mut tx, &r).await?;
    caller
        .audit(
            "endpoint.update",
            "endpoint",
            after.id,
            after.partner_id,
            Some(view(&before)),
            Some(view(&after)),
        )
        .record(&mut *tx)
        .await?;
    tx.commit().await?;
    after.signing_secret = revealed;
    Ok(Json(after))
}

/// Delete an endpoint (soft; its pending deliveries are canceled)
#[utoipa::path(delete, path = "/endpoints/{id}", tag = "endpoints",
    operation_id = "deleteEndpoint", params(("id" = Uuid, Path, description = "the endpoint")),
    responses((status = 204, description = "Deleted")))]
async fn remove(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let current = visible(&ctx, caller, &id).await?;
    let mut tx = ctx.pool.begin().await?;
    let before = Endpoint::lock(&mut tx, current.id).await?;
    Endpoint::delete(&mut tx, current.id).await?;
    caller
        .audit(
            "endpoint.delete",
            "endpoint",
            current.id,
            current.partner_id,
            Some(view(&before)),
            None,
        )
        .record(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
