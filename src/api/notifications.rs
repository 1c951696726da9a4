use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{ApiJson, path_id};
use super::{ApiContext, ApiError};
use crate::model::NewNotification;
use crate::store::Notification;

pub fn router() -> Router<ApiContext> {
    Router::new()
        .route("/notifications", post(enqueue))
        .route("/notifications/{id}", get(show))
}

async fn enqueue(
    State(ctx): State<ApiContext>,
    ApiJson(n): ApiJson<NewNotification>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    n.validate()?;
    let (id, deliveries) = Notification::enqueue(&ctx.pool, &n).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "deliveries": deliveries })),
    ))
}

async fn show(
    State(ctx): State<ApiContext>,
    Path(id): Path<String>,
) -> Result<Json<Notification>, ApiError> {
    Ok(Json(
        Notification::get(&ctx.pool, path_id(&id, "notification")?).await?,
    ))
}
