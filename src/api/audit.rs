//! `GET /v1/audit` (operators): every change to partners, endpoints and tokens.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::QueryPairs;
use super::schema::Page;
use super::{ApiContext, ApiError};
use crate::store::AuditRecord;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(list))
}

/// Every change to partners, endpoints and tokens, newest first
///
/// `?partner_id=&since=&limit=&cursor=`, newest first; `next_cursor` continues.
#[utoipa::path(get, path = "/audit", tag = "audit", operation_id = "listAudit",
    params(
        ("partner_id" = Option<Uuid>, Query),
        ("since" = Option<DateTime<Utc>>, Query, description = "inclusive"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, description = "A page", body = Page<AuditRecord>)))]
async fn list(
    State(ctx): State<ApiContext>,
    q: QueryPairs,
) -> Result<Json<Page<AuditRecord>>, ApiError> {
    q.only(&["partner_id", "since", "limit", "cursor"])?;
    let partner_id = q.get("partner_id", |v| {
        v.parse::<uuid::Uuid>().map_err(|e| e.to_string())
    })?;
    let since = q.get("since", |v| {
        DateTime::parse_from_rfc3339(v)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "expected an RFC 3339 timestamp such as 2026-11-25T20:00:00Z".to_string())
    })?;
    let limit = q
        .get("limit", |v| match v.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(format!("must be a whole number from 1 to {MAX_LIMIT}")),
        })?
        .unwrap_or(DEFAULT_LIMIT);
    let cursor = q.get("cursor", |v| {
        v.parse::<i64>()
            .map_err(|_| "not a cursor this API returned".to_string())
    })?;
    let items = AuditRecord::list(&ctx.pool, partner_id, since, limit, cursor).await?;
    let next = if items.len() == limit as usize {
        items.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Json(Page {
        items,
        next_cursor: next,
    }))
}
