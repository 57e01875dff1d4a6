use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub async fn find_or_create_organization(
    conn: &mut PgConnection,
    id: Uuid,
    name: &str,
) -> sqlx::Result<Uuid> {
    // The no-op update makes RETURNING yield the existing row too, also when two callers race.
    sqlx::query_scalar(
        "INSERT INTO organizations (id, name) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id",
    )
    .bind(id)
    .bind(name)
    .fetch_one(conn)
    .await
}

pub async fn insert_api_key(
    conn: &mut PgConnection,
    id: Uuid,
    organization_id: Uuid,
    key_hash: &[u8],
    prefix: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (id, organization_id, key_hash, key_prefix) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(organization_id)
    .bind(key_hash)
    .bind(prefix)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_active_key(pool: &PgPool, key_hash: &[u8]) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT id, organization_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(key_hash)
    .fetch_optional(pool)
    .await
}

pub async fn any_organization(pool: &PgPool) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations)")
        .fetch_one(pool)
        .await
}
