//! `GET /v1/me` (anyone with a token): who the token is.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::caller::{Caller, Role};
use super::{ApiContext, ApiError};
use crate::store::Partner;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(me))
}

/// Who the token is: `{"role": "operator"}`, or a partner with its record
#[derive(Serialize, ToSchema)]
struct Me {
    role: Role,
    /// Partner tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_id: Option<Uuid>,
    /// Partner tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_id: Option<Uuid>,
    /// Partner tokens only.
    #[serde(skip_serializing_if = "Option::is_none")]
    partner: Option<Partner>,
}

/// Who the token is (the console uses it to pick its view)
///
/// `{"role": "operator"}` or `{"role": "partner", "partner_id", "token_id", "partner"}`:
/// what a client (the console) needs to know which view to show.
#[utoipa::path(get, path = "/me", tag = "tokens", operation_id = "me",
    responses((status = 200, description = "The caller", body = Me)))]
async fn me(State(ctx): State<ApiContext>, caller: Caller) -> Result<Json<Me>, ApiError> {
    Ok(Json(match caller {
        Caller::Operator => Me {
            role: Role::Operator,
            partner_id: None,
            token_id: None,
            partner: None,
        },
        Caller::Partner {
            partner_id,
            token_id,
        } => Me {
            role: Role::Partner,
            partner_id: Some(partner_id),
            token_id: Some(token_id),
            partner: Some(Partner::get(&ctx.pool, partner_id).await?),
        },
    }))
}
