use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};
use uuid::Uuid;

use super::{Result, StoreError};
use crate::store::{Db, db};

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Partner {
    pub id: Uuid,
    pub name: String,
    /// A production endpoint this partner registers itself must be https (CONTRACT §8).
    pub production_requires_https: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, production_requires_https, created_at, updated_at";

/// The live partner with id `$1`; [`Partner::lock`] adds `FOR UPDATE`.
const BY_ID: &str = const_format::concatcp!(
    "SELECT ",
    COLUMNS,
    " FROM partners WHERE id = $1 AND deleted_at IS NULL"
);

impl Partner {
    pub async fn create(db: impl PgExecutor<'_>, name: &str) -> Result<Partner> {
        Ok(db::query_as(const_format::concatcp!(
            "INSERT INTO partners (name) VALUES ($1) RETURNING ",
            COLUMNS
        ))
        .bind(name)
        .fetch_one(db)
        .await?)
    }

    pub async fn list(pool: &Db) -> Result<Vec<Partner>> {
        Ok(db::query_as(const_format::concatcp!(
            "SELECT ",
            COLUMNS,
            " FROM partners WHERE deleted_at IS NULL ORDER BY created_at, id"
        ))
        .fetch_all(pool)
        .await?)
    }

    pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Partner> {
        db::query_as(BY_ID)
            .bind(id)
            .fetch_optional(db)
            .await?
            .ok_or(StoreError::NotFound("partner"))
    }

    /// The partner, its row locked until `tx` ends (so that an audited change records
    /// exactly what it replaced).
    pub async fn lock(tx: &mut PgConnection, id: Uuid) -> Result<Partner> {
        db::query_as(const_format::concatcp!(BY_ID, " FOR UPDATE"))
            .bind(id)
            .fetch_optional(tx)
            .await?
            .ok_or(StoreError::NotFound("partner"))
    }

    /// Changes the fields given; the others stay.
    pub async fn update(
        db: impl PgExecutor<'_>,
        id: Uuid,
        name: Option<&str>,
        production_requires_https: Option<bool>,
    ) -> Result<Partner> {
        db::query_as(const_format::concatcp!(
            "UPDATE partners SET name = coalesce($2, name),
                 production_requires_https = coalesce($3, production_requires_https),
                 updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL
             RETURNING ",
            COLUMNS
        ))
        .bind(id)
        .bind(name)
        .bind(production_requires_https)
        .fetch_optional(db)
        .await?
        .ok_or(StoreError::NotFound("partner"))
    }

    /// Soft delete: the partner and its endpoints disappear from the API, their pending
    /// deliveries are canceled, its tokens revoked, and the delivery history stays for the
    /// operators. Takes effect when the caller commits `tx`.
    pub async fn delete(tx: &mut Transaction<'static, Postgres>, id: Uuid) -> Result<()> {
        let hit = db::query(
            "UPDATE partners SET deleted_at = now(), updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if hit.rows_affected() == 0 {
            return Err(StoreError::NotFound("partner"));
        }
        db::query(
            "UPDATE endpoints SET deleted_at = now(), enabled = false, updated_at = now()
             WHERE partner_id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        db::query(
            "UPDATE partner_tokens SET revoked_at = now()
             WHERE partner_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        super::queue::transitions::cancel_pending(
            tx,
            super::queue::transitions::Scope::Partner(id),
            "partner deleted",
        )
        .await?;
        Ok(())
    }
}
