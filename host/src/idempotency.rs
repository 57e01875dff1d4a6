//! Idempotency keys of balance operations and transfers (`idempotency_key` in the body). The same key with
//! the same request replays the first response with 200; with a different request it is a 409
//! `idempotency_conflict`. Requests are compared by a hash of their meaning: key order, whitespace and
//! trailing decimal zeros do not matter (callers normalise amounts before hashing).

use crate::error::{Error, OnConstraint, Result};
use crate::organizations::hex;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct Key<'a> {
    pub organization_id: Uuid,
    pub program_id: Uuid,
    pub operation: &'static str,
    pub key: &'a str,
}

/// What to do with a request carrying a key.
pub enum Claim {
    /// First use: perform the operation, then `remember` its response in the same transaction.
    New,
    /// Seen before with the same request: answer this.
    Replay(Value),
}

/// Claims the key inside the caller's transaction. A concurrent first use is waited for, then replayed.
pub async fn claim(conn: &mut PgConnection, key: &Key<'_>, request: &Value) -> Result<Claim> {
    let hash = hex(&Sha256::digest(request.to_string().as_bytes()));
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (organization_id, program_id, operation, key, request_hash)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(key.organization_id)
    .bind(key.program_id)
    .bind(key.operation)
    .bind(key.key)
    .bind(&hash)
    .execute(&mut *conn)
    .await
    .on_constraint("idempotency_keys_program_id_fkey", || {
        Error::NotFound("program")
    })?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::New);
    }
    let (stored_hash, response): (String, Option<Value>) = sqlx::query_as(
        "SELECT request_hash, response FROM idempotency_keys WHERE program_id = $1 AND operation = $2 AND key = $3",
    )
    .bind(key.program_id)
    .bind(key.operation)
    .bind(key.key)
    .fetch_one(&mut *conn)
    .await?;
    match response {
        Some(response) if stored_hash == hash => Ok(Claim::Replay(response)),
        _ => Err(Error::Conflict {
            code: "idempotency_conflict",
            message: format!(
                "idempotency_key {} was already used with a different request",
                key.key
            ),
        }),
    }
}

pub async fn remember(conn: &mut PgConnection, key: &Key<'_>, response: &Value) -> Result<()> {
    sqlx::query("UPDATE idempotency_keys SET response = $4 WHERE program_id = $1 AND operation = $2 AND key = $3")
        .bind(key.program_id)
        .bind(key.operation)
        .bind(key.key)
        .bind(response)
        .execute(conn)
        .await?;
    Ok(())
}
