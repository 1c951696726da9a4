use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Result, StoreError};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Partner {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Partner {
    pub async fn create(pool: &PgPool, name: &str) -> Result<Partner> {
        Ok(sqlx::query_as(
            "INSERT INTO partners (name) VALUES ($1) RETURNING id, name, created_at, updated_at",
        )
        .bind(name)
        .fetch_one(pool)
        .await?)
    }

    pub async fn list(pool: &PgPool) -> Result<Vec<Partner>> {
        Ok(sqlx::query_as(
            "SELECT id, name, created_at, updated_at FROM partners
             WHERE deleted_at IS NULL ORDER BY created_at, id",
        )
        .fetch_all(pool)
        .await?)
    }

    pub async fn get(pool: &PgPool, id: Uuid) -> Result<Partner> {
        sqlx::query_as(
            "SELECT id, name, created_at, updated_at FROM partners
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("partner"))
    }

    pub async fn rename(pool: &PgPool, id: Uuid, name: &str) -> Result<Partner> {
        sqlx::query_as(
            "UPDATE partners SET name = $2, updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL
             RETURNING id, name, created_at, updated_at",
        )
        .bind(id)
        .bind(name)
        .fetch_optional(pool)
        .await?
        .ok_or(StoreError::NotFound("partner"))
    }

    /// Soft delete: the partner and its endpoints disappear from the API, their pending
    /// deliveries are canceled, and the delivery history stays for the operators.
    pub async fn delete(pool: &PgPool, id: Uuid) -> Result<()> {
        let mut tx = pool.begin().await?;
        let hit = sqlx::query(
            "UPDATE partners SET deleted_at = now(), updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if hit.rows_affected() == 0 {
            return Err(StoreError::NotFound("partner"));
        }
        sqlx::query(
            "UPDATE endpoints SET deleted_at = now(), enabled = false, updated_at = now()
             WHERE partner_id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        super::deliveries::cancel_pending(
            &mut tx,
            super::deliveries::Scope::Partner(id),
            "partner deleted",
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
