//! Uploaded rule modules: WebAssembly components checked (compiled and linked against the rule interface)
//! before they are stored, so no rule can refer to a module the server cannot run. One copy per content.

use crate::error::{Error, FieldError, Result};
use crate::organizations::Actor;
use crate::wasm::{Runtime, sha256};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Module {
    pub id: Uuid,
    /// Hex digest of the component's bytes.
    pub sha256: String,
    /// Bytes.
    pub size: i32,
    /// The rule interface version the component exports.
    #[schema(example = "scrip:rules/evaluator@0.4.0")]
    pub interface: String,
    pub created_at: DateTime<Utc>,
}

/// Stores a component after checking it; the same bytes again return the module already stored (`false`).
/// Compiling takes a while, so it runs off the async workers.
pub async fn upload(
    pool: &PgPool,
    runtime: Arc<Runtime>,
    actor: &Actor,
    bytes: Vec<u8>,
) -> Result<(Module, bool)> {
    let (checked, bytes) = tokio::task::spawn_blocking(move || (runtime.check(&bytes), bytes))
        .await
        .map_err(|e| Error::Internal(format!("module check panicked: {e}")))?;
    let interface = checked.map_err(|message| {
        Error::invalid(FieldError::invalid(
            "body",
            "WebAssembly component",
            None,
            message,
        ))
    })?;
    let sha = sha256(&bytes);
    let size = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    let inserted: Option<Module> = sqlx::query_as(
        "INSERT INTO rule_modules (id, organization_id, sha256, size, interface, bytes, created_by_api_key_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT ON CONSTRAINT rule_modules_content DO NOTHING
         RETURNING id, sha256, size, interface, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(actor.organization_id)
    .bind(&sha)
    .bind(size)
    .bind(interface)
    .bind(&bytes)
    .bind(actor.api_key_id)
    .fetch_optional(pool)
    .await?;
    match inserted {
        Some(module) => Ok((module, true)),
        None => Ok((
            find_by_sha(pool, actor, &sha)
                .await?
                .ok_or(Error::NotFound("module"))?,
            false,
        )),
    }
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Module> {
    sqlx::query_as("SELECT id, sha256, size, interface, created_at FROM rule_modules WHERE id = $1 AND organization_id = $2")
        .bind(id)
        .bind(actor.organization_id)
        .fetch_optional(pool)
        .await?
        .ok_or(Error::NotFound("module"))
}

async fn find_by_sha(pool: &PgPool, actor: &Actor, sha: &str) -> sqlx::Result<Option<Module>> {
    sqlx::query_as("SELECT id, sha256, size, interface, created_at FROM rule_modules WHERE organization_id = $1 AND sha256 = $2")
        .bind(actor.organization_id)
        .bind(sha)
        .fetch_optional(pool)
        .await
}

/// Whether the organization has this module (rules may only use their own).
pub async fn exists(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM rule_modules WHERE id = $1 AND organization_id = $2)",
    )
    .bind(id)
    .bind(organization_id)
    .fetch_one(conn)
    .await
}

/// The bytes of modules, by id, for compiling the rules that use them.
pub async fn bytes_of(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<(Uuid, Vec<u8>)>> {
    sqlx::query_as("SELECT id, bytes FROM rule_modules WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
}
