use super::{ActivityQuery, ActivityRow};
use sqlx::PgPool;
use uuid::Uuid;

pub async fn program_activity(
    pool: &PgPool,
    organization_id: Uuid,
    q: &ActivityQuery,
) -> sqlx::Result<Vec<ActivityRow>> {
    let (after_key, after_id) = q
        .page
        .cursor
        .as_ref()
        .map_or((None, None), |c| (Some(c.key.clone()), Some(c.id)));
    sqlx::query_as(
        "WITH program AS (
             SELECT id, name, created_at FROM programs
              WHERE organization_id = $1
                AND ($5::text IS NULL OR (created_at, id) > ($5::timestamptz, $6::uuid))),
         movement AS (
             SELECT j.program_id, j.action_type, j.created_at, x.entity_id, x.amount
               FROM journal_entries j JOIN postings x ON x.journal_entry_id = j.id
              WHERE j.organization_id = $1 AND x.entity_type IN ('PARTICIPANT', 'GROUP')
                AND j.action_type IN ('CREDIT', 'DEBIT', 'REDEMPTION')),
         activity AS (
             SELECT p.id AS program_id, p.name AS program_name, p.created_at,
                    (SELECT count(*) FROM events e WHERE e.program_id = p.id
                        AND ($3::timestamptz IS NULL OR e.created_at BETWEEN $3 AND $4)) AS event_count,
                    (SELECT count(*) FROM journal_entries j WHERE j.program_id = p.id) AS journal_count,
                    (SELECT count(*) FROM journal_entries j WHERE j.program_id = p.id
                        AND ($3::timestamptz IS NULL OR j.created_at BETWEEN $3 AND $4)) AS window_entries,
                    (SELECT COALESCE(sum(m.amount), 0) FROM movement m
                      WHERE m.program_id = p.id AND m.action_type = 'CREDIT' AND m.amount > 0
                        AND ($3::timestamptz IS NULL OR m.created_at BETWEEN $3 AND $4)) AS total_issued,
                    (SELECT COALESCE(-sum(m.amount), 0) FROM movement m
                      WHERE m.program_id = p.id AND m.action_type IN ('DEBIT', 'REDEMPTION') AND m.amount < 0
                        AND ($3::timestamptz IS NULL OR m.created_at BETWEEN $3 AND $4)) AS total_redeemed,
                    (SELECT count(DISTINCT m.entity_id) FROM movement m WHERE m.program_id = p.id)
                        AS unique_participants,
                    (SELECT max(j.created_at) FROM journal_entries j WHERE j.program_id = p.id) AS last_activity_at,
                    (SELECT count(*) FROM program_assets pa WHERE pa.program_id = p.id) AS asset_count,
                    (SELECT count(*) FROM rules r WHERE r.program_id = p.id AND r.status <> 'ARCHIVED') AS rule_count,
                    (SELECT COALESCE(max(a.scale), 0::smallint) FROM program_assets pa JOIN assets a ON a.id = pa.asset_id
                      WHERE pa.program_id = p.id) AS scale
               FROM program p)
         -- Tiers and the rewards catalogue are not built yet: no program has any.
         SELECT program_id, program_name, created_at, event_count, journal_count, total_issued, total_redeemed,
                unique_participants, last_activity_at, asset_count, rule_count, 0::bigint AS tier_count,
                0::bigint AS reward_count, scale
           FROM activity
          WHERE ($2::timestamptz IS NULL OR last_activity_at > $2)
            AND ($3::timestamptz IS NULL OR event_count > 0 OR window_entries > 0)
          ORDER BY created_at, program_id
          LIMIT $7 + 1",
    )
    .bind(organization_id)
    .bind(q.since)
    .bind(q.from)
    .bind(q.to)
    .bind(after_key)
    .bind(after_id)
    .bind(q.page.limit)
    .fetch_all(pool)
    .await
}
