//! Idempotency keys of balance operations and transfers (`idempotency_key` in the body), scoped per program:
//! the same key with the same request replays the first response with 200; with a different request, or
//! another operation, it is a 409 `idempotency_conflict`. Requests are compared by a hash of their meaning: key order, whitespace and
//! trailing decimal zeros do not matter (callers normalise amounts before hashing).

use crate::error::{Error, Result};
use crate::organizations::hex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct Key<'a> {
    pub organization_id: Uuid,
    pub program_id: Uuid,
    /// What the key was used for; another operation with the same key is a conflict.
    pub operation: &'static str,
    pub key: &'a str,
}

/// What to do with a request carrying a key.
pub enum Claim<T> {
    /// First use: perform the operation, then `remember` its response in the same transaction.
    New,
    /// Seen before with the same request: answer this.
    Replay(T),
}

/// Claims the key inside the caller's transaction. A concurrent first use is waited for, then replayed.
/// Keys are the organization's own: a program of another organization is not found, whatever keys it used,
/// so nothing tells whether a key exists elsewhere.
pub async fn claim<T: DeserializeOwned>(
    conn: &mut PgConnection,
    key: &Key<'_>,
    request: &Value,
) -> Result<Claim<T>> {
    let hash = hex(&Sha256::digest(request.to_string().as_bytes()));
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (organization_id, program_id, operation, key, request_hash)
         SELECT organization_id, id, $3, $4, $5 FROM programs WHERE id = $2 AND organization_id = $1
         ON CONFLICT DO NOTHING",
    )
    .bind(key.organization_id)
    .bind(key.program_id)
    .bind(key.operation)
    .bind(key.key)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Claim::New);
    }
    let stored: Option<(String, String, Option<Value>)> = sqlx::query_as(
        "SELECT operation, request_hash, response FROM idempotency_keys
          WHERE organization_id = $1 AND program_id = $2 AND key = $3",
    )
    .bind(key.organization_id)
    .bind(key.program_id)
    .bind(key.key)
    .fetch_optional(&mut *conn)
    .await?;
    match stored {
        None => Err(Error::NotFound("program")),
        Some((operation, stored_hash, Some(response)))
            if operation == key.operation && stored_hash == hash =>
        {
            serde_json::from_value(response)
                .map(Claim::Replay)
                .map_err(|err| {
                    Error::Internal(format!("a remembered response does not read back: {err}"))
                })
        }
        Some(_) => Err(Error::Conflict {
            code: "idempotency_conflict",
            message: format!(
                "idempotency_key {} was already used with a different request",
                key.key
            ),
        }),
    }
}

pub async fn remember(
    conn: &mut PgConnection,
    key: &Key<'_>,
    response: &impl Serialize,
) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET response = $4
          WHERE organization_id = $1 AND program_id = $2 AND key = $3",
    )
    .bind(key.organization_id)
    .bind(key.program_id)
    .bind(key.key)
    .bind(sqlx::types::Json(response))
    .execute(conn)
    .await?;
    Ok(())
}
