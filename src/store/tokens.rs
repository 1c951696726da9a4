//! Partner API tokens: made by operators, shown once, stored as SHA-256 only.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use sqlx::PgExecutor;
use uuid::Uuid;

use super::{Result, StoreError};
use crate::store::{Db, db};

/// What every partner token starts with, so that one pasted in the wrong place (a log, a
/// repository) is recognizable and can be searched for by secret scanners.
pub const TOKEN_PREFIX: &str = "cbk_";

/// A token as lists show it: never the token itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct PartnerToken {
    pub id: Uuid,
    pub partner_id: Uuid,
    /// `cbk_` and the part before the second `_`: names the token without revealing it.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A token just made: the only time `token` exists outside the caller's hands.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = NewPartnerToken)]
pub struct NewToken {
    #[serde(flatten)]
    pub record: PartnerToken,
    /// The token itself, shown this once (callbackd keeps only its SHA-256).
    pub token: String,
}

/// Who a presented partner token belongs to.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct TokenOwner {
    pub token_id: Uuid,
    pub partner_id: Uuid,
}

const COLUMNS: &str = "id, partner_id, prefix, created_at, last_used_at, revoked_at";

/// SHA-256 of the whole token. A token carries 256 random bits, so a plain (unsalted,
/// fast) hash is enough: there is nothing to brute-force.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// `cbk_<12 hex>_<43 base64url>`: the prefix identifies, the rest is 256 random bits.
fn mint() -> (String, String) {
    let id: [u8; 6] = rand::random();
    let prefix = format!(
        "{TOKEN_PREFIX}{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let secret =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let token = format!("{prefix}_{secret}");
    (prefix, token)
}

impl PartnerToken {
    /// Makes a token for a live partner (NotFound otherwise).
    pub async fn create(db: impl PgExecutor<'_>, partner_id: Uuid) -> Result<NewToken> {
        let (prefix, token) = mint();
        let record: PartnerToken = db::query_as(const_format::concatcp!(
            "INSERT INTO partner_tokens (partner_id, prefix, token_hash)
             SELECT p.id, $2, $3 FROM partners p WHERE p.id = $1 AND p.deleted_at IS NULL
             RETURNING ",
            COLUMNS
        ))
        .bind(partner_id)
        .bind(&prefix)
        .bind(token_hash(&token))
        .fetch_optional(db)
        .await?
        .ok_or(StoreError::NotFound("partner"))?;
        Ok(NewToken { record, token })
    }

    pub async fn list(pool: &Db, partner_id: Uuid) -> Result<Vec<PartnerToken>> {
        Ok(db::query_as(const_format::concatcp!(
            "SELECT ",
            COLUMNS,
            " FROM partner_tokens WHERE partner_id = $1 ORDER BY created_at, id"
        ))
        .bind(partner_id)
        .fetch_all(pool)
        .await?)
    }

    /// Revokes a token of `partner_id` (NotFound if it has no such token; revoking twice is
    /// a no-op that answers the token as it is). Returns the token before and after.
    pub async fn revoke(
        db: impl PgExecutor<'_>,
        partner_id: Uuid,
        id: Uuid,
    ) -> Result<(PartnerToken, PartnerToken)> {
        #[derive(sqlx::FromRow)]
        struct Revoked {
            #[sqlx(flatten)]
            token: PartnerToken,
            old_revoked_at: Option<DateTime<Utc>>,
        }
        let r: Revoked = db::query_as(
            "WITH old AS (SELECT id, revoked_at FROM partner_tokens
                          WHERE id = $1 AND partner_id = $2 FOR UPDATE)
             UPDATE partner_tokens t SET revoked_at = coalesce(t.revoked_at, now())
             FROM old WHERE t.id = old.id
             RETURNING t.id, t.partner_id, t.prefix, t.created_at, t.last_used_at,
                       t.revoked_at, old.revoked_at AS old_revoked_at",
        )
        .bind(id)
        .bind(partner_id)
        .fetch_optional(db)
        .await?
        .ok_or(StoreError::NotFound("token"))?;
        let before = PartnerToken {
            revoked_at: r.old_revoked_at,
            ..r.token.clone()
        };
        let after = r.token;
        Ok((before, after))
    }

    /// The owner of a live token (not revoked, its partner not deleted), or None. Records
    /// the use, at most once a minute per token, in the same statement.
    pub async fn authenticate(pool: &Db, token: &str) -> Result<Option<TokenOwner>> {
        Ok(db::query_as(
            "WITH t AS (
                 SELECT t.id, t.partner_id, t.last_used_at
                 FROM partner_tokens t JOIN partners p ON p.id = t.partner_id
                 WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND p.deleted_at IS NULL),
             used AS (
                 UPDATE partner_tokens SET last_used_at = now() FROM t
                 WHERE partner_tokens.id = t.id
                   AND (t.last_used_at IS NULL OR t.last_used_at < now() - interval '1 minute'))
             SELECT id AS token_id, partner_id FROM t",
        )
        .bind(token_hash(token))
        .fetch_optional(pool)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_prefixed_and_distinct() {
        let (prefix, token) = mint();
        assert!(
            prefix.starts_with(TOKEN_PREFIX) && prefix.len() == 16,
            "{prefix}"
        );
        assert!(token.starts_with(&format!("{prefix}_")), "{token}");
        assert_eq!(token.len(), 16 + 1 + 43);
        assert_ne!(mint().1, token);
        assert_eq!(token_hash(&token).len(), 32);
    }
}
