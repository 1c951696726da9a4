//! Who is calling. `/v1` needs `Authorization: Bearer <token>`: the operator token
//! (`CALLBACKD_API_TOKEN`, every route) or a partner token (`cbk_…`, the routes of
//! [`ROUTE_ROLES`] that allow `partner`, and only that partner's things).
//!
//! Two fences keep a partner in its own yard:
//! 1. this middleware refuses (403) every route the table does not open to partners, so a
//!    new route is operator-only until someone decides otherwise;
//! 2. the handlers of partner routes check that what the path names belongs to the caller
//!    ([`Caller::check_partner`]) and answer 404 otherwise, so existence does not leak.

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use secrecy::ExposeSecret;
use serde::Serialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{ApiContext, ApiError};
use crate::store::{AuditEntry, PartnerToken, TOKEN_PREFIX};

/// The authenticated caller of a `/v1` request, in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Operator,
    Partner { partner_id: Uuid, token_id: Uuid },
}

/// A role as the route table and the OpenAPI document (`x-roles`) name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Partner,
}

/// One route of `/v1` and who may call it. For `partner`, `scope` says what the partner
/// reaches through it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RouteRoles {
    pub method: &'static str,
    pub path: &'static str,
    pub roles: &'static [Role],
    pub scope: &'static str,
}

const OP: &[Role] = &[Role::Operator];
const BOTH: &[Role] = &[Role::Operator, Role::Partner];

const fn route(
    method: &'static str,
    path: &'static str,
    roles: &'static [Role],
    scope: &'static str,
) -> RouteRoles {
    RouteRoles {
        method,
        path,
        roles,
        scope,
    }
}

/// Every `/v1` route and its roles (CONTRACT §8). The middleware enforces the roles; the
/// `scope` of partner routes is enforced by their handlers. `docs/partners.md` shows the
/// same table, and the OpenAPI document states it as `x-roles` per operation.
pub const ROUTE_ROLES: &[RouteRoles] = &[
    route("GET", "/v1/me", BOTH, "the caller itself"),
    route("POST", "/v1/partners", OP, ""),
    route("GET", "/v1/partners", OP, ""),
    route("GET", "/v1/partners/{id}", BOTH, "own partner only"),
    route("PATCH", "/v1/partners/{id}", OP, ""),
    route("DELETE", "/v1/partners/{id}", OP, ""),
    route("POST", "/v1/partners/{id}/tokens", OP, ""),
    route("GET", "/v1/partners/{id}/tokens", OP, ""),
    route("DELETE", "/v1/partners/{id}/tokens/{token_id}", OP, ""),
    route(
        "GET",
        "/v1/partners/{id}/endpoints",
        BOTH,
        "own partner only",
    ),
    route(
        "POST",
        "/v1/partners/{id}/endpoints",
        BOTH,
        "own partner only",
    ),
    route("GET", "/v1/endpoints/{id}", BOTH, "own endpoints only"),
    route("PATCH", "/v1/endpoints/{id}", BOTH, "own endpoints only"),
    route("DELETE", "/v1/endpoints/{id}", BOTH, "own endpoints only"),
    route(
        "POST",
        "/v1/endpoints/{id}/test",
        BOTH,
        "own endpoints only",
    ),
    route(
        "GET",
        "/v1/endpoints/{id}/tests",
        BOTH,
        "own endpoints only",
    ),
    route("POST", "/v1/notifications", OP, ""),
    route("POST", "/v1/notifications/batch", OP, ""),
    route(
        "GET",
        "/v1/notifications/{id}",
        BOTH,
        "own notifications only",
    ),
    route(
        "GET",
        "/v1/deliveries",
        BOTH,
        "partner_id forced to the caller's",
    ),
    route("POST", "/v1/deliveries/replay", OP, ""),
    route("GET", "/v1/deliveries/{id}", BOTH, "own deliveries only"),
    route(
        "POST",
        "/v1/deliveries/{id}/replay",
        BOTH,
        "own deliveries only",
    ),
    route(
        "POST",
        "/v1/deliveries/{id}/cancel",
        BOTH,
        "own deliveries only",
    ),
    route("GET", "/v1/audit", OP, ""),
    route("GET", "/v1/stats/timeline", OP, ""),
];

/// The roles of a route, by method and matched path (with or without the `/v1` prefix).
pub fn roles_of(method: &str, matched_path: &str) -> Option<&'static [Role]> {
    let path = matched_path.strip_prefix("/v1").unwrap_or(matched_path);
    ROUTE_ROLES
        .iter()
        .find(|r| r.method == method && &r.path[3..] == path)
        .map(|r| r.roles)
}

impl Caller {
    /// `operator` or `partner:<partner id>`, as the audit log names actors.
    pub fn actor(&self) -> String {
        match self {
            Caller::Operator => "operator".to_string(),
            Caller::Partner { partner_id, .. } => format!("partner:{partner_id}"),
        }
    }

    pub fn token_id(&self) -> Option<Uuid> {
        match self {
            Caller::Operator => None,
            Caller::Partner { token_id, .. } => Some(*token_id),
        }
    }

    /// The partner a partner token belongs to; None for the operator.
    pub fn partner_id(&self) -> Option<Uuid> {
        match self {
            Caller::Operator => None,
            Caller::Partner { partner_id, .. } => Some(*partner_id),
        }
    }

    pub fn is_partner(&self) -> bool {
        matches!(self, Caller::Partner { .. })
    }

    /// What a replay by this caller records as the series' trigger (CONTRACT §7).
    pub fn trigger(&self) -> crate::model::Trigger {
        match self {
            Caller::Operator => crate::model::Trigger::Operator,
            Caller::Partner { .. } => crate::model::Trigger::Partner,
        }
    }

    /// Ok when the caller may see things of `owner`; a 404 for `what` otherwise (never a
    /// 403: another partner's things do not exist for a partner).
    pub fn check_partner(&self, owner: Uuid, what: &'static str) -> Result<(), ApiError> {
        match self {
            Caller::Partner { partner_id, .. } if *partner_id != owner => {
                Err(ApiError::NotFound(what))
            }
            _ => Ok(()),
        }
    }

    /// An audit entry for a change this caller makes.
    pub fn audit(
        &self,
        action: &'static str,
        target_type: &'static str,
        target_id: Uuid,
        partner_id: Uuid,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> AuditEntry {
        AuditEntry {
            actor: self.actor(),
            token_id: self.token_id(),
            action,
            target_type,
            target_id,
            partner_id,
            before,
            after,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .copied()
            .ok_or(ApiError::Unauthorized)
    }
}

/// Resolves the bearer token to a [`Caller`] (401 when there is none, or it is wrong or
/// revoked), refuses partners on routes that are not theirs (403), and hands the caller to
/// the handler.
pub async fn require_token(
    State(ctx): State<ApiContext>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let caller = resolve(&ctx, presented).await?;
    if let Caller::Partner { .. } = caller {
        let path = request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str())
            .unwrap_or("");
        let allowed = roles_of(request.method().as_str(), path)
            .is_some_and(|roles| roles.contains(&Role::Partner));
        if !allowed {
            return Err(ApiError::Forbidden);
        }
    }
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

async fn resolve(ctx: &ApiContext, presented: &str) -> Result<Caller, ApiError> {
    if presented.is_empty() {
        return Err(ApiError::Unauthorized);
    }
    // Constant-time, so response timing does not reveal how much of a guess was right.
    let operator: bool = presented
        .as_bytes()
        .ct_eq(ctx.api_token.expose_secret().as_bytes())
        .into();
    if operator {
        return Ok(Caller::Operator);
    }
    // Partner tokens are looked up by their SHA-256: timing tells nothing about the token.
    if presented.starts_with(TOKEN_PREFIX)
        && presented.len() <= 128
        && let Some(o) = PartnerToken::authenticate(&ctx.pool, presented).await?
    {
        return Ok(Caller::Partner {
            partner_id: o.partner_id,
            token_id: o.token_id,
        });
    }
    Err(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table_is_well_formed() {
        for (i, r) in ROUTE_ROLES.iter().enumerate() {
            assert!(r.path.starts_with("/v1/"), "{}", r.path);
            assert!(
                r.roles.contains(&Role::Operator),
                "operators reach every route"
            );
            assert_eq!(
                r.roles.contains(&Role::Partner),
                !r.scope.is_empty(),
                "a partner route states its scope: {} {}",
                r.method,
                r.path
            );
            assert!(
                !ROUTE_ROLES[..i]
                    .iter()
                    .any(|o| o.method == r.method && o.path == r.path),
                "listed twice: {} {}",
                r.method,
                r.path
            );
        }
        assert_eq!(roles_of("GET", "/v1/partners"), Some(OP));
        assert_eq!(roles_of("GET", "/partners/{id}"), Some(BOTH));
        assert_eq!(roles_of("PUT", "/v1/partners/{id}"), None);
    }

    /// docs/partners.md shows the table the middleware enforces, row for row.
    #[test]
    fn the_partner_guide_states_the_same_roles() {
        let doc = include_str!("../../docs/partners.md");
        let rows: Vec<&str> = doc
            .lines()
            .filter(|l| l.starts_with("| `") && l.contains("`/v1/"))
            .collect();
        assert_eq!(rows.len(), ROUTE_ROLES.len(), "{rows:#?}");
        for r in ROUTE_ROLES {
            let roles = if r.roles.contains(&Role::Partner) {
                "operator, partner"
            } else {
                "operator"
            };
            let row = format!(
                "| `{}` | `{}` | {} | {} |",
                r.method, r.path, roles, r.scope
            )
            .replace("|  |", "| |");
            assert!(
                rows.contains(&row.as_str()),
                "docs/partners.md lacks: {row}"
            );
        }
    }

    #[test]
    fn partners_never_enqueue_or_manage_tokens_or_read_the_audit() {
        for r in ROUTE_ROLES {
            if r.path.starts_with("/v1/notifications") && r.method == "POST"
                || r.path.contains("/tokens")
                || r.path == "/v1/audit"
                || r.path == "/v1/deliveries/replay"
                || r.path == "/v1/partners"
            {
                assert_eq!(r.roles, OP, "{} {}", r.method, r.path);
            }
        }
    }
}
