//! `GET /v1/me` (anyone with a token): who the token is.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::caller::Caller;
use super::{ApiContext, ApiError};
use crate::store::Partner;

pub fn router() -> Router<ApiContext> {
    Router::new().route("/me", get(me))
}

/// `{"role": "operator"}` or `{"role": "partner", "partner_id", "token_id", "partner"}`:
/// what a client (the console) needs to know which view to show.
async fn me(State(ctx): State<ApiContext>, caller: Caller) -> Result<Json<Value>, ApiError> {
    Ok(Json(match caller {
        Caller::Operator => json!({ "role": "operator" }),
        Caller::Partner {
            partner_id,
            token_id,
        } => json!({
            "role": "partner",
            "partner_id": partner_id,
            "token_id": token_id,
            "partner": Partner::get(&ctx.pool, partner_id).await?,
        }),
    }))
}
