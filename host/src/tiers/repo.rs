use super::holders::{HeldTier, Standing};
use super::{Level, LevelInput, Lifecycle, NewTier, Qualification, Tier, TierPatch, TierStatus};
use crate::holders::{Holder, HolderType};
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
pub async fn levels_of(
    pool: impl sqlx::PgExecutor<'_>,
    tier_ids: &[Uuid],
) -> sqlx::Result<Vec<Level>> {
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
    let mut conn = pool.acquire().await?;
    let found = standings(
        &mut conn,
        holder.kind().as_str(),
        &[holder.id()],
        Some((program_id, key)),
    )
    .await?;
    Ok(found.into_iter().map(|s| s.held).collect())
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

/// Gives the holder the level (keeping `acquired_at` when it already held it), cancelling any pending
/// downgrade and restarting its inactivity timer; returns the level it held before, if any and not expired.
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
                level_id = $4, expires_at = $5, active_at = now(), downgrade_at = NULL, downgrade_to = NULL",
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

/// The levels these holders hold now, not expired, by holder and tier key: in every program, or in one
/// program (and in its tier of that key, when given).
pub async fn standings(
    conn: &mut PgConnection,
    holder_type: &str,
    holders: &[Uuid],
    within: Option<(Uuid, Option<&str>)>,
) -> sqlx::Result<Vec<Standing>> {
    let (program_id, key) = within.map_or((None, None), |(program, key)| (Some(program), key));
    sqlx::query_as(
        "SELECT h.holder_id, t.program_id, t.key, l.key AS level, l.rank, l.benefits, h.acquired_at,
                h.expires_at
           FROM holder_tiers h JOIN tiers t ON t.id = h.tier_id JOIN tier_levels l ON l.id = h.level_id
          WHERE h.holder_type = $1 AND h.holder_id = ANY($2) AND (h.expires_at IS NULL OR h.expires_at > now())
            AND ($3::uuid IS NULL OR t.program_id = $3) AND ($4::text IS NULL OR t.key = $4)
          ORDER BY h.holder_id, t.key",
    )
    .bind(holder_type)
    .bind(holders)
    .bind(program_id)
    .bind(key)
    .fetch_all(conn)
    .await
}

/// A tier of a program with one of its levels that has a qualification, if any.
#[derive(sqlx::FromRow)]
pub struct TrackRow {
    pub program_id: Uuid,
    pub tier_id: Uuid,
    pub tier_key: String,
    pub status: TierStatus,
    pub lifecycle: Option<Json<Lifecycle>>,
    pub level_id: Option<Uuid>,
    pub level_key: Option<String>,
    pub rank: Option<i32>,
    pub qualification: Option<Json<Qualification>>,
}

/// Every tier of these programs, once per level with a qualification (once without a level when none has),
/// grouped by tier.
pub async fn tracks(conn: &mut PgConnection, programs: &[Uuid]) -> sqlx::Result<Vec<TrackRow>> {
    sqlx::query_as(
        "SELECT t.program_id, t.id AS tier_id, t.key AS tier_key, t.status, t.lifecycle,
                l.id AS level_id, l.key AS level_key, l.rank, l.qualification
           FROM tiers t LEFT JOIN tier_levels l ON l.tier_id = t.id AND l.qualification IS NOT NULL
          WHERE t.program_id = ANY($1)
          ORDER BY t.program_id, t.id",
    )
    .bind(programs)
    .fetch_all(conn)
    .await
}

/// Where a holder stands in one tier.
#[derive(sqlx::FromRow)]
pub struct Position {
    pub tier_id: Uuid,
    pub rank: i32,
    /// A period review decided a downgrade that has not happened yet.
    pub downgrading: bool,
}

pub async fn positions(
    conn: &mut PgConnection,
    holder: Holder,
    tiers: &[Uuid],
) -> sqlx::Result<Vec<Position>> {
    sqlx::query_as(
        "SELECT h.tier_id, l.rank, h.downgrade_at IS NOT NULL AS downgrading
           FROM holder_tiers h JOIN tier_levels l ON l.id = h.level_id
          WHERE h.holder_type = $1 AND h.holder_id = $2 AND h.tier_id = ANY($3)
            AND (h.expires_at IS NULL OR h.expires_at > now())",
    )
    .bind(holder.kind())
    .bind(holder.id())
    .bind(tiers)
    .fetch_all(conn)
    .await
}

/// Restarts the holder's inactivity timer in these tiers.
pub async fn touch(conn: &mut PgConnection, holder: Holder, tiers: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE holder_tiers SET active_at = now()
          WHERE holder_type = $1 AND holder_id = $2 AND tier_id = ANY($3)",
    )
    .bind(holder.kind())
    .bind(holder.id())
    .bind(tiers)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn cancel_downgrade(
    conn: &mut PgConnection,
    holder: Holder,
    tier_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE holder_tiers SET downgrade_at = NULL, downgrade_to = NULL
          WHERE holder_type = $1 AND holder_id = $2 AND tier_id = $3",
    )
    .bind(holder.kind())
    .bind(holder.id())
    .bind(tier_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// An ACTIVE tier with a lifecycle, as the lifecycle pass reads it.
#[derive(sqlx::FromRow)]
pub struct LifecycleTier {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub program_id: Uuid,
    pub lifecycle: Json<Lifecycle>,
    pub created_at: DateTime<Utc>,
}

pub async fn with_lifecycle(pool: &PgPool) -> sqlx::Result<Vec<LifecycleTier>> {
    sqlx::query_as(
        "SELECT id, organization_id, program_id, lifecycle, created_at FROM tiers
          WHERE status = 'ACTIVE' AND lifecycle IS NOT NULL ORDER BY id",
    )
    .fetch_all(pool)
    .await
}

/// A holder's level that the lifecycle pass changed (`new_level` `None`: back to the base).
#[derive(sqlx::FromRow)]
pub struct Moved {
    pub organization_id: Uuid,
    pub program_id: Uuid,
    pub tier_key: String,
    pub holder_type: HolderType,
    pub holder_id: Uuid,
    pub old_level: String,
    pub new_level: Option<String>,
}

impl Moved {
    pub fn holder(&self) -> Holder {
        Holder::of(self.holder_type, self.holder_id)
    }
}

/// Up to `limit` holders, participants or groups, with a level whose `expires_at` has passed, in id order.
pub async fn expired_holders(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT holder_id FROM (
            SELECT holder_id FROM holder_tiers
             WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2) due
          ORDER BY holder_id",
    )
    .bind(at)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn remove_expired(
    conn: &mut PgConnection,
    holders: &[Uuid],
    at: DateTime<Utc>,
) -> sqlx::Result<Vec<Moved>> {
    sqlx::query_as(
        "WITH removed AS (
            DELETE FROM holder_tiers
             WHERE holder_id = ANY($1) AND expires_at <= $2
            RETURNING tier_id, holder_type, holder_id, level_id)
         SELECT t.organization_id, t.program_id, t.key AS tier_key, r.holder_type, r.holder_id,
                l.key AS old_level,
                NULL::text AS new_level
           FROM removed r JOIN tiers t ON t.id = r.tier_id JOIN tier_levels l ON l.id = r.level_id",
    )
    .bind(holders)
    .bind(at)
    .fetch_all(conn)
    .await
}

/// Holding a level of the tier, not already downgrading: who has had no activity since `cutoff`.
const INACTIVE: &str = "holder_type = 'PARTICIPANT' AND tier_id = $1 AND downgrade_at IS NULL
    AND COALESCE(active_at, acquired_at) <= $2 AND (expires_at IS NULL OR expires_at > $3)";

/// Up to `limit` holders of the tier inactive since `cutoff`, in id order.
pub async fn inactive_holders(
    conn: &mut PgConnection,
    tier_id: Uuid,
    cutoff: DateTime<Utc>,
    at: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(&format!(
        "SELECT holder_id FROM holder_tiers WHERE {INACTIVE} ORDER BY holder_id LIMIT $4"
    ))
    .bind(tier_id)
    .bind(cutoff)
    .bind(at)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// `(holder, level)` of those of `holders` still inactive since `cutoff`.
pub async fn inactive_positions(
    conn: &mut PgConnection,
    tier_id: Uuid,
    holders: &[Uuid],
    cutoff: DateTime<Utc>,
    at: DateTime<Utc>,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(&format!(
        "SELECT holder_id, level_id FROM holder_tiers WHERE {INACTIVE} AND holder_id = ANY($4)"
    ))
    .bind(tier_id)
    .bind(cutoff)
    .bind(at)
    .bind(holders)
    .fetch_all(conn)
    .await
}

pub async fn restart_timers(
    conn: &mut PgConnection,
    tier_id: Uuid,
    holders: &[Uuid],
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE holder_tiers SET active_at = $3
          WHERE holder_type = 'PARTICIPANT' AND tier_id = $1 AND holder_id = ANY($2)",
    )
    .bind(tier_id)
    .bind(holders)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Each holder is to move to its level (`None`: the base) at `when`.
pub async fn schedule_downgrades(
    conn: &mut PgConnection,
    tier_id: Uuid,
    downgrades: &[(Uuid, Option<Uuid>)],
    when: DateTime<Utc>,
) -> sqlx::Result<()> {
    if downgrades.is_empty() {
        return Ok(());
    }
    let holders: Vec<Uuid> = downgrades.iter().map(|(h, _)| *h).collect();
    let targets: Vec<Option<Uuid>> = downgrades.iter().map(|(_, l)| *l).collect();
    sqlx::query(
        "UPDATE holder_tiers h SET downgrade_at = $4, downgrade_to = d.level_id
           FROM unnest($2::uuid[], $3::uuid[]) AS d (holder_id, level_id)
          WHERE h.holder_type = 'PARTICIPANT' AND h.tier_id = $1 AND h.holder_id = d.holder_id",
    )
    .bind(tier_id)
    .bind(&holders)
    .bind(&targets)
    .bind(when)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a tier's period reviews stand.
pub struct ReviewProgress {
    /// The last period end whose review finished.
    pub reviewed_through: Option<DateTime<Utc>>,
    /// The last member the review under way has done.
    pub cursor: Option<Uuid>,
}

/// The tier's review progress, for this transaction alone: `None` when another transaction has it.
pub async fn claim_review(
    conn: &mut PgConnection,
    tier_id: Uuid,
) -> sqlx::Result<Option<ReviewProgress>> {
    let claimed: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 19))")
            .bind(tier_id)
            .fetch_one(&mut *conn)
            .await?;
    if !claimed {
        return Ok(None);
    }
    let (reviewed_through, cursor) =
        sqlx::query_as("SELECT reviewed_through, review_cursor FROM tiers WHERE id = $1")
            .bind(tier_id)
            .fetch_one(conn)
            .await?;
    Ok(Some(ReviewProgress {
        reviewed_through,
        cursor,
    }))
}

pub async fn save_review(
    conn: &mut PgConnection,
    tier_id: Uuid,
    progress: &ReviewProgress,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE tiers SET reviewed_through = $2, review_cursor = $3 WHERE id = $1")
        .bind(tier_id)
        .bind(progress.reviewed_through)
        .bind(progress.cursor)
        .execute(conn)
        .await?;
    Ok(())
}

/// Up to `limit` participants holding (or having held) a level of the tier, in id order after `after`.
pub async fn holders_after(
    conn: &mut PgConnection,
    tier_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT holder_id FROM holder_tiers
          WHERE tier_id = $1 AND holder_type = 'PARTICIPANT' AND ($2::uuid IS NULL OR holder_id > $2)
          ORDER BY holder_id LIMIT $3",
    )
    .bind(tier_id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// `(holder, level)` of those of `holders` holding a level of the tier at `at`.
pub async fn levels_held(
    conn: &mut PgConnection,
    tier_id: Uuid,
    holders: &[Uuid],
    at: DateTime<Utc>,
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    sqlx::query_as(
        "SELECT holder_id, level_id FROM holder_tiers
          WHERE holder_type = 'PARTICIPANT' AND tier_id = $1 AND holder_id = ANY($2)
            AND (expires_at IS NULL OR expires_at > $3)",
    )
    .bind(tier_id)
    .bind(holders)
    .bind(at)
    .fetch_all(conn)
    .await
}

/// Up to `limit` participants with a downgrade due in an ACTIVE tier, in id order.
pub async fn downgrading_holders(
    conn: &mut PgConnection,
    at: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT holder_id FROM (
            SELECT h.holder_id FROM holder_tiers h JOIN tiers t ON t.id = h.tier_id AND t.status = 'ACTIVE'
             WHERE h.holder_type = 'PARTICIPANT' AND h.downgrade_at <= $1 ORDER BY h.downgrade_at LIMIT $2) due
          ORDER BY holder_id",
    )
    .bind(at)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Moves these holders to the levels their due downgrades name, or removes the level (the base); the timer
/// of an ACTIVITY_REFRESH tier restarts at the new level.
pub async fn apply_downgrades(
    conn: &mut PgConnection,
    holders: &[Uuid],
    at: DateTime<Utc>,
) -> sqlx::Result<Vec<Moved>> {
    sqlx::query_as(
        "WITH due AS (
            SELECT h.tier_id, h.holder_type, h.holder_id, h.downgrade_to, t.organization_id, t.program_id, t.key AS tier_key,
                   old.key AS old_level, new.key AS new_level
              FROM holder_tiers h JOIN tiers t ON t.id = h.tier_id AND t.status = 'ACTIVE'
              JOIN tier_levels old ON old.id = h.level_id LEFT JOIN tier_levels new ON new.id = h.downgrade_to
             WHERE h.holder_type = 'PARTICIPANT' AND h.holder_id = ANY($1) AND h.downgrade_at <= $2
               AND (h.expires_at IS NULL OR h.expires_at > $2)
               FOR UPDATE OF h),
         moved AS (
            UPDATE holder_tiers h SET level_id = due.downgrade_to, acquired_at = $2, active_at = $2,
                                      downgrade_at = NULL, downgrade_to = NULL
              FROM due
             WHERE h.holder_type = 'PARTICIPANT' AND h.holder_id = due.holder_id AND h.tier_id = due.tier_id
               AND due.downgrade_to IS NOT NULL),
         dropped AS (
            DELETE FROM holder_tiers h USING due
             WHERE h.holder_type = 'PARTICIPANT' AND h.holder_id = due.holder_id AND h.tier_id = due.tier_id
               AND due.downgrade_to IS NULL)
         SELECT organization_id, program_id, tier_key, holder_type, holder_id, old_level, new_level FROM due",
    )
    .bind(holders)
    .bind(at)
    .fetch_all(conn)
    .await
}

/// Every level of every tier of a program, archived tiers too: a backtest meets levels held in the past.
pub async fn levels_of_program(
    conn: &mut PgConnection,
    program_id: Uuid,
) -> sqlx::Result<Vec<super::holders::ProgramLevel>> {
    sqlx::query_as(
        "SELECT t.key AS tier_key, l.key AS level, l.rank, l.benefits
           FROM tiers t JOIN tier_levels l ON l.tier_id = t.id
          WHERE t.program_id = $1",
    )
    .bind(program_id)
    .fetch_all(conn)
    .await
}
