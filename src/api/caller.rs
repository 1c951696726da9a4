//! Who is calling: `/v1` needs `Authorization: Bearer <CALLBACKD_API_TOKEN>`.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;

use super::{ApiContext, ApiError};

pub async fn require_token(
    State(ctx): State<ApiContext>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant-time, so response timing does not reveal how much of a guess was right.
    let ok: bool = presented.as_bytes().ct_eq(ctx.api_token.as_bytes()).into();
    if !ok || presented.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    Ok(next.run(request).await)
}
