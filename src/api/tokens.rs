//! Partner tokens (operators): create, list, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::caller::Caller;
use super::extract::path_id;
use super::{ApiContext, ApiError};
use crate::store::{NewToken, Partner, PartnerToken};

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/partners/{id}/tokens", get(list).post(create))
        .route("/partners/{id}/tokens/{token_id}", delete(revoke))
}

/// The token's audit view: never the token, never its hash.
fn view(t: &PartnerToken) -> Value {
    json!({ "id": t.id, "prefix": t.prefix, "created_at": t.created_at,
            "revoked_at": t.revoked_at })
}

/// 201 with the token itself, shown this once.
async fn create(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    let partner_id = path_id(&id, "partner")?;
    let mut tx = ctx.pool.begin().await?;
    let new = PartnerToken::create(&mut *tx, partner_id).await?;
    caller
        .audit(
            "token.create",
            "token",
            new.record.id,
            partner_id,
            None,
            Some(view(&new.record)),
        )
        .record(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(new)))
}

async fn list(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let partner_id = path_id(&id, "partner")?;
    Partner::get(&ctx.pool, partner_id).await?;
    let items = PartnerToken::list(&ctx.pool, partner_id).await?;
    Ok(Json(json!({ "items": items })))
}

/// Revokes at once: the next request with the token is a 401. Revoking a revoked token
/// answers it unchanged (and writes nothing).
async fn revoke(
    State(ctx): State<ApiContext>,
    caller: Caller,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<Json<PartnerToken>, ApiError> {
    let partner_id = path_id(&id, "partner")?;
    let token_id = path_id(&token_id, "token")?;
    let mut tx = ctx.pool.begin().await?;
    let (before, after) = PartnerToken::revoke(&mut *tx, partner_id, token_id).await?;
    if before.revoked_at.is_none() {
        caller
            .audit(
                "token.revoke",
                "token",
                token_id,
                partner_id,
                Some(view(&before)),
                Some(view(&after)),
            )
            .record(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Json(after))
}
