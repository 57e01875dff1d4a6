use super::holders::{HeldTier, Holder};
use super::{Level, LevelInput, NewTier, Tier, TierPatch};
use crate::pagination::PageParams;
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

const COLUMNS: &str =
    "id, program_id, key, display_name, lifecycle, status, archived_at, created_at, updated_at";
const LEVEL_COLUMNS: &str = "id, tier_id, key, rank, display_name, color, icon_url, benefits, qualification, \
                             created_at, updated_at";

pub async fn insert(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    id: Uuid,
    new: &NewTier,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO tiers (id, organization_id, program_id, key, display_name, lifecycle)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(organization_id)
    .bind(program_id)
    .bind(&new.key)
    .bind(&new.display_name)
    .bind(new.lifecycle.as_ref().map(Json))
    .execute(conn)
    .await?;
    Ok(())
}

/// Changes the fields given of existing levels, matched by key, and inserts the others (which have a rank).
pub async fn upsert_levels(
    conn: &mut PgConnection,
    tier_id: Uuid,
    levels: &[LevelInput],
) -> sqlx::Result<()> {
    for level in levels {
        let (set_name, name) = patch_parts(&level.display_name);
        let (set_color, color) = patch_parts(&level.color);
        let (set_icon, icon) = patch_parts(&level.icon_url);
        let (set_qualification, qualification) = match &level.qualification {
            Patch::Absent => (false, None),
            Patch::Null => (true, None),
            Patch::Set(q) => (true, Some(Json(q))),
        };
        let changed = sqlx::query(
            "UPDATE tier_levels
                SET rank = COALESCE($3, rank),
                    display_name = CASE WHEN $5 THEN $4 ELSE display_name END,
                    color = CASE WHEN $7 THEN $6 ELSE color END,
                    icon_url = CASE WHEN $9 THEN $8 ELSE icon_url END,
                    benefits = COALESCE($10, benefits),
                    qualification = CASE WHEN $11 THEN $12 ELSE qualification END,
                    updated_at = now()
              WHERE tier_id = $1 AND key = $2",
        )
        .bind(tier_id)
        .bind(&level.key)
        .bind(level.rank)
        .bind(name)
        .bind(set_name)
        .bind(color)
        .bind(set_color)
        .bind(icon)
        .bind(set_icon)
        .bind(level.benefits.as_ref().map(Json))
        .bind(set_qualification)
        .bind(qualification)
        .execute(&mut *conn)
        .await?;
        if changed.rows_affected() == 1 {
            continue;
        }
        sqlx::query(
            "INSERT INTO tier_levels (id, tier_id, key, rank, display_name, color, icon_url, benefits, qualification)
             VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, '{}'::jsonb), $9)",
        )
        .bind(Uuid::now_v7())
        .bind(tier_id)
        .bind(&level.key)
        .bind(level.rank)
        .bind(name)
        .bind(color)
        .bind(icon)
        .bind(level.benefits.as_ref().map(Json))
        .bind(qualification)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Whether a patch sets a text field, and to what (`None`: cleared).
fn patch_parts(patch: &Patch<String>) -> (bool, Option<&str>) {
    match patch {
        Patch::Absent => (false, None),
        Patch::Null => (true, None),
        Patch::Set(text) => (true, Some(text)),
    }
}

pub async fn find(
    conn: impl sqlx::PgExecutor<'_>,
    organization_id: Uuid,
    program_id: Uuid,
    key: &str,
) -> sqlx::Result<Option<Tier>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tiers WHERE organization_id = $1 AND program_id = $2 AND key = $3"
    ))
    .bind(organization_id)
    .bind(program_id)
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub async fn lock(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    key: &str,
) -> sqlx::Result<Option<Tier>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tiers WHERE organization_id = $1 AND program_id = $2 AND key = $3
            FOR NO KEY UPDATE"
    ))
    .bind(organization_id)
    .bind(program_id)
    .bind(key)
    .fetch_optional(conn)
    .await
}

pub async fn list(pool: &PgPool, program_id: Uuid, page: &PageParams) -> sqlx::Result<Vec<Tier>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tiers WHERE program_id = $1 AND ($2::uuid IS NULL OR id > $2)
          ORDER BY id LIMIT $3 + 1"
    ))
    .bind(program_id)
    .bind(page.cursor.as_ref().map(|c| c.id))
    .bind(page.limit)
    .fetch_all(pool)
    .await
}

/// The levels of these tiers, by tier and rank.
pub async fn levels_of(pool: &PgPool, tier_ids: &[Uuid]) -> sqlx::Result<Vec<Level>> {
    sqlx::query_as(&format!(
        "SELECT {LEVEL_COLUMNS} FROM tier_levels WHERE tier_id = ANY($1) ORDER BY tier_id, rank"
    ))
    .bind(tier_ids)
    .fetch_all(pool)
    .await
}

pub async fn level_keys(conn: &mut PgConnection, tier_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT key FROM tier_levels WHERE tier_id = $1")
        .bind(tier_id)
        .fetch_all(conn)
        .await
}

pub async fn update(conn: &mut PgConnection, id: Uuid, patch: &TierPatch) -> sqlx::Result<()> {
    let (set_name, name) = patch_parts(&patch.display_name);
    let (set_lifecycle, lifecycle) = match &patch.lifecycle {
        Patch::Absent => (false, None),
        Patch::Null => (true, None),
        Patch::Set(l) => (true, Some(Json(l))),
    };
    sqlx::query(
        "UPDATE tiers SET display_name = CASE WHEN $2 THEN $3 ELSE display_name END,
                lifecycle = CASE WHEN $4 THEN $5 ELSE lifecycle END, updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(set_name)
    .bind(name)
    .bind(set_lifecycle)
    .bind(lifecycle)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn archive(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE tiers SET status = 'ARCHIVED', archived_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The levels a holder holds in the program's tiers (or in the one of `key`), not expired, by tier key.
pub async fn held(
    pool: &PgPool,
    holder: Holder,
    program_id: Uuid,
    key: Option<&str>,
) -> sqlx::Result<Vec<HeldTier>> {
    sqlx::query_as(
        "SELECT t.key, l.key AS level, l.rank, l.benefits, h.acquired_at, h.expires_at
           FROM holder_tiers h JOIN tiers t ON t.id = h.tier_id JOIN tier_levels l ON l.id = h.level_id
          WHERE h.holder_type = $1 AND h.holder_id = $2 AND t.program_id = $3
            AND ($4::text IS NULL OR t.key = $4) AND (h.expires_at IS NULL OR h.expires_at > now())
          ORDER BY t.key",
    )
    .bind(holder.kind())
    .bind(holder.id())
    .bind(program_id)
    .bind(key)
    .fetch_all(pool)
    .await
}

pub async fn level_id(
    conn: &mut PgConnection,
    tier_id: Uuid,
    level: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT id FROM tier_levels WHERE tier_id = $1 AND key = $2")
        .bind(tier_id)
        .bind(level)
        .fetch_optional(conn)
        .await
}

/// Gives the holder the level (keeping `acquired_at` when it already held it) and returns the level it held
/// before, if any and not expired.
pub async fn assign(
    conn: &mut PgConnection,
    holder: Holder,
    tier_id: Uuid,
    level_id: Uuid,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<Option<String>> {
    let old = held_level(conn, holder, tier_id).await?;
    sqlx::query(
        "INSERT INTO holder_tiers (tier_id, holder_type, holder_id, level_id, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (holder_type, holder_id, tier_id) DO UPDATE
            SET acquired_at = CASE WHEN holder_tiers.level_id = $4
                                    AND (holder_tiers.expires_at IS NULL OR holder_tiers.expires_at > now())
                                   THEN holder_tiers.acquired_at ELSE now() END,
                level_id = $4, expires_at = $5",
    )
    .bind(tier_id)
    .bind(holder.kind())
    .bind(holder.id())
    .bind(level_id)
    .bind(expires_at)
    .execute(conn)
    .await?;
    Ok(old)
}

/// Takes the holder back to the base; returns the level it held, if any and not expired.
pub async fn unassign(
    conn: &mut PgConnection,
    holder: Holder,
    tier_id: Uuid,
) -> sqlx::Result<Option<String>> {
    let old = held_level(conn, holder, tier_id).await?;
    sqlx::query(
        "DELETE FROM holder_tiers WHERE holder_type = $1 AND holder_id = $2 AND tier_id = $3",
    )
    .bind(holder.kind())
    .bind(holder.id())
    .bind(tier_id)
    .execute(conn)
    .await?;
    Ok(old)
}

async fn held_level(
    conn: &mut PgConnection,
    holder: Holder,
    tier_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT l.key FROM holder_tiers h JOIN tier_levels l ON l.id = h.level_id
          WHERE h.holder_type = $1 AND h.holder_id = $2 AND h.tier_id = $3
            AND (h.expires_at IS NULL OR h.expires_at > now())",
    )
    .bind(holder.kind())
    .bind(holder.id())
    .bind(tier_id)
    .fetch_optional(conn)
    .await
}
