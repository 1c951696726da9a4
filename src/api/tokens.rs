//! Partner tokens (operators): create, list, revoke.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::caller::Caller;
use super::extract::path_id;
use super::schema::Items;
use super::{ApiContext, ApiError};
use crate::store::{NewToken, Partner, PartnerToken};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
}

/// The token's audit view: never the token, never its hash.
fn view(t: &PartnerToken) -> Value {
    json!({ "id": t.id, "prefix": t.prefix, "created_at": t.created_at,
            "revoked_at": t.revoked_at })
}

/// Create a partner token (shown once); takes no body
///
/// 201 with the token itself, shown this once.
#[utoipa::path(post, path = "/partners/{id}/tokens", tag = "tokens", operation_id = "createToken",
    params(("id" = Uuid, Path, description = "the partner")),
    responses((status = 201, description = "Created: the token is in `token`, this once", body = NewToken)))]
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

/// A partner's tokens (never the tokens themselves)
#[utoipa::path(get, path = "/partners/{id}/tokens", tag = "tokens", operation_id = "listTokens",
    params(("id" = Uuid, Path, description = "the partner")),
    responses((status = 200, description = "Tokens, oldest first", body = Items<PartnerToken>)))]
async fn list(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<Items<PartnerToken>>, ApiError> {
    let partner_id = path_id(&id, "partner")?;
    Partner::get(&ctx.pool, partner_id).await?;
    let items = PartnerToken::list(&ctx.pool, partner_id).await?;
    Ok(Json(Items { items }))
}

/// Revoke a partner token at once (revoking it again answers it unchanged)
///
/// Revokes at once: the next request with the token is a 401. Revoking a revoked token
/// answers it unchanged (and writes nothing).
#[utoipa::path(delete, path = "/partners/{id}/tokens/{token_id}", tag = "tokens",
    operation_id = "revokeToken",
    params(("id" = Uuid, Path, description = "the partner"), ("token_id" = Uuid, Path, description = "the token")),
    responses((status = 200, description = "The revoked token", body = PartnerToken)))]
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
