//! The audit log: every change to partners, endpoints and tokens, by whom, with the target
//! before and after. Written in the transaction of the change itself.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgExecutor, Postgres, QueryBuilder};
use uuid::Uuid;

use super::Result;
use crate::store::{Db, db};

/// One change, as the API layer describes it.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// `operator` or `partner:<partner id>`
    pub actor: String,
    pub token_id: Option<Uuid>,
    /// `<target type>.<verb>`, e.g. `endpoint.update`
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: Uuid,
    pub partner_id: Uuid,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// One change to a partner, endpoint or token, written in the change's transaction.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub token_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Uuid,
    pub partner_id: Uuid,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Field names whose string values are secrets wherever they appear. The views recorded
/// (an endpoint's public auth view, a token's id and prefix) hold none; this is the
/// second line of defence.
const SECRET_FIELDS: &[&str] = &[
    "secret",
    "password",
    "token",
    "key",
    "client_secret",
    "private_key_pem",
    "secret_access_key",
    "session_token",
    "signing_secret",
    "token_hash",
];

/// Replaces the string value of every secret-named field by `"***"`.
pub fn mask_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if v.is_string() && SECRET_FIELDS.contains(&k.as_str()) {
                    *v = Value::String("***".into());
                } else {
                    mask_secrets(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_secrets),
        _ => {}
    }
}

impl AuditEntry {
    pub async fn record(mut self, db: impl PgExecutor<'_>) -> Result<()> {
        for v in [&mut self.before, &mut self.after].into_iter().flatten() {
            mask_secrets(v);
        }
        db::query(
            "INSERT INTO audit_log (actor, token_id, action, target_type, target_id, partner_id,
                                    before, after)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&self.actor)
        .bind(self.token_id)
        .bind(self.action)
        .bind(self.target_type)
        .bind(self.target_id)
        .bind(self.partner_id)
        .bind(&self.before)
        .bind(&self.after)
        .execute(db)
        .await?;
        Ok(())
    }
}

impl AuditRecord {
    /// Newest first; `before_id` continues a previous page.
    pub async fn list(
        pool: &Db,
        partner_id: Option<Uuid>,
        since: Option<DateTime<Utc>>,
        limit: u32,
        before_id: Option<i64>,
    ) -> Result<Vec<AuditRecord>> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT id, at, actor, token_id, action, target_type, target_id, partner_id, before,
                    after FROM audit_log WHERE true",
        );
        if let Some(p) = partner_id {
            q.push(" AND partner_id = ").push_bind(p);
        }
        if let Some(t) = since {
            q.push(" AND at >= ").push_bind(t);
        }
        if let Some(id) = before_id {
            q.push(" AND id < ").push_bind(id);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit));
        Ok(q.build_query_as()
            .persistent(db::prepared())
            .fetch_all(pool)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_named_strings_are_masked_at_any_depth() {
        let mut v = serde_json::json!({
            "url": "https://x.example",
            "auth": {"type": "hmac", "secret": "s3cret", "session_token": true},
            "items": [{"password": "p"}, {"username": "u"}]
        });
        mask_secrets(&mut v);
        assert_eq!(
            v,
            serde_json::json!({
                "url": "https://x.example",
                "auth": {"type": "hmac", "secret": "***", "session_token": true},
                "items": [{"password": "***"}, {"username": "u"}]
            })
        );
    }
}
