use super::{Rule, RuleFilter};
use crate::organizations::Actor;
use crate::pagination::Order;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const COLUMNS: &str = "id, program_id, name, description, condition, actions, \"order\", stop_after_match, \
                       active_from, active_to, status, history_id, created_at, updated_at, deleted_at, module_id, \
                       module_config, module_limits";

pub async fn insert(
    conn: &mut PgConnection,
    organization_id: Uuid,
    r: &Rule,
) -> sqlx::Result<Rule> {
    sqlx::query_as(&format!(
        "INSERT INTO rules (id, organization_id, program_id, name, description, condition, actions, \"order\",
                            stop_after_match, active_from, active_to, status, history_id, module_id, module_config,
                            module_limits)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING {COLUMNS}"
    ))
    .bind(r.id)
    .bind(organization_id)
    .bind(r.program_id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(&r.condition)
    .bind(&r.actions)
    .bind(r.order)
    .bind(r.stop_after_match)
    .bind(r.active_from)
    .bind(r.active_to)
    .bind(r.status)
    .bind(r.history_id)
    .bind(r.module_id)
    .bind(&r.module_config)
    .bind(r.module_limits)
    .fetch_one(conn)
    .await
}

pub async fn save(conn: &mut PgConnection, r: &Rule) -> sqlx::Result<Rule> {
    sqlx::query_as(&format!(
        "UPDATE rules SET name = $2, description = $3, condition = $4, actions = $5, \"order\" = $6,
                stop_after_match = $7, active_from = $8, active_to = $9, status = $10, history_id = $11,
                deleted_at = $12, module_id = $13, module_config = $14, module_limits = $15, updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(r.id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(&r.condition)
    .bind(&r.actions)
    .bind(r.order)
    .bind(r.stop_after_match)
    .bind(r.active_from)
    .bind(r.active_to)
    .bind(r.status)
    .bind(r.history_id)
    .bind(r.deleted_at)
    .bind(r.module_id)
    .bind(&r.module_config)
    .bind(r.module_limits)
    .fetch_one(conn)
    .await
}

pub async fn insert_history(
    conn: &mut PgConnection,
    actor: &Actor,
    rule: &Rule,
    change_type: &str,
    changes: Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO rule_history (id, rule_id, organization_id, program_id, change_type, changes, snapshot,
                                   changed_by_api_key_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(rule.history_id)
    .bind(rule.id)
    .bind(actor.organization_id)
    .bind(rule.program_id)
    .bind(change_type)
    .bind(changes)
    .bind(rule.to_json())
    .bind(actor.api_key_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn highest_order(conn: &mut PgConnection, program_id: Uuid) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT COALESCE(max(\"order\"), 0) FROM rules WHERE program_id = $1 AND status <> 'ARCHIVED'")
        .bind(program_id)
        .fetch_one(conn)
        .await
}

pub async fn find(pool: &PgPool, organization_id: Uuid, id: Uuid) -> sqlx::Result<Option<Rule>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rules WHERE id = $1 AND organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn lock(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Rule>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rules WHERE id = $1 AND organization_id = $2 FOR NO KEY UPDATE"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    f: &RuleFilter,
    order: Order,
) -> sqlx::Result<Vec<Rule>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM rules WHERE organization_id = "
    ));
    q.push_bind(organization_id);
    if let Some(program_id) = f.program_id {
        q.push(" AND program_id = ").push_bind(program_id);
    }
    match f.status {
        Some(status) => {
            q.push(" AND status = ").push_bind(status);
        }
        None if !f.include_archived => {
            q.push(" AND status <> 'ARCHIVED'");
        }
        None => {}
    }
    if let Some(search) = &f.search {
        q.push(" AND name ILIKE ")
            .push_bind(crate::search::like_pattern(search));
    }
    order.push(&mut q, "id", f.page.cursor.clone(), f.page.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn active(conn: &mut PgConnection, program_ids: &[Uuid]) -> sqlx::Result<Vec<Rule>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rules WHERE program_id = ANY($1) AND status = 'ACTIVE' ORDER BY program_id, \"order\""
    ))
    .bind(program_ids)
    .fetch_all(conn)
    .await
}

pub async fn history(
    pool: &PgPool,
    rule_id: Uuid,
    f: &super::HistoryFilter,
) -> sqlx::Result<Vec<super::HistoryEntry>> {
    let (after_key, after_id) = f
        .cursor
        .as_ref()
        .map_or((None, None), |c| (Some(c.key.clone()), Some(c.id)));
    sqlx::query_as(
        "SELECT id, rule_id, program_id, change_type, changed_at, changed_by_api_key_id,
                NULL::uuid AS changed_by_user_id, changes, snapshot
           FROM rule_history
          WHERE rule_id = $1 AND ($2::text IS NULL OR change_type = $2)
            AND ($3::timestamptz IS NULL OR changed_at >= $3) AND ($4::timestamptz IS NULL OR changed_at <= $4)
            AND ($5::text IS NULL OR (changed_at, id) < ($5::timestamptz, $6::uuid))
          ORDER BY changed_at DESC, id DESC
          LIMIT $7 + 1",
    )
    .bind(rule_id)
    .bind(f.change_type)
    .bind(f.from)
    .bind(f.to)
    .bind(after_key)
    .bind(after_id)
    .bind(f.limit)
    .fetch_all(pool)
    .await
}
