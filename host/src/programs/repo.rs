use super::{NewProgram, Program, ProgramFilter};
use crate::pagination::Order;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const COLUMNS: &str = "id, name, description, on_unknown_participant, status, redemption_target_type, \
                       redemption_target_entity_id, created_at, updated_at, deleted_at";

pub async fn insert(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    new: &NewProgram,
) -> sqlx::Result<Program> {
    sqlx::query_as(&format!(
        "INSERT INTO programs (id, organization_id, name, description, on_unknown_participant)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(organization_id)
    .bind(&new.name)
    .bind(&new.description)
    .bind(new.on_unknown_participant)
    .fetch_one(pool)
    .await
}

pub async fn find(pool: &PgPool, organization_id: Uuid, id: Uuid) -> sqlx::Result<Option<Program>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM programs WHERE id = $1 AND organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn lock_for_update(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Program>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM programs WHERE id = $1 AND organization_id = $2 FOR NO KEY UPDATE"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    filter: &ProgramFilter,
    order: Order,
) -> sqlx::Result<Vec<Program>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM programs WHERE organization_id = "
    ));
    q.push_bind(organization_id);
    match filter.status {
        Some(status) => {
            q.push(" AND status = ").push_bind(status);
        }
        None if !filter.include_archived => {
            q.push(" AND status <> 'ARCHIVED'");
        }
        None => {}
    }
    if let Some(search) = &filter.search {
        q.push(" AND name ILIKE ")
            .push_bind(crate::search::like_pattern(search));
    }
    order.push(&mut q, "id", filter.page.cursor.clone(), filter.page.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn save(conn: &mut PgConnection, p: &Program) -> sqlx::Result<Program> {
    sqlx::query_as(&format!(
        "UPDATE programs SET name = $2, description = $3, on_unknown_participant = $4, status = $5,
                redemption_target_type = $6, redemption_target_entity_id = $7, deleted_at = $8, updated_at = now()
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(p.id)
    .bind(&p.name)
    .bind(&p.description)
    .bind(p.on_unknown_participant)
    .bind(p.status)
    .bind(p.redemption_target_type)
    .bind(p.redemption_target_entity_id)
    .bind(p.deleted_at)
    .fetch_one(conn)
    .await
}

pub async fn status(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<super::ProgramStatus>> {
    sqlx::query_scalar("SELECT status FROM programs WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn redemption_target(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<(super::ProgramStatus, super::RedemptionTarget, Option<Uuid>)>> {
    sqlx::query_as(
        "SELECT status, redemption_target_type, redemption_target_entity_id FROM programs
          WHERE id = $1 AND organization_id = $2",
    )
    .bind(id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await
}

pub async fn policies(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<super::Policy>> {
    sqlx::query_as("SELECT id, status, on_unknown_participant FROM programs WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// Adds or removes one tag of the program; `true` when that changed anything.
pub async fn set_tag(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    tag: &str,
    add: bool,
) -> sqlx::Result<bool> {
    let done = if add {
        sqlx::query(
            "INSERT INTO program_tags (program_id, organization_id, tag) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(program_id)
        .bind(organization_id)
        .bind(tag)
        .execute(conn)
        .await?
    } else {
        sqlx::query("DELETE FROM program_tags WHERE program_id = $1 AND tag = $2")
            .bind(program_id)
            .bind(tag)
            .execute(conn)
            .await?
    };
    Ok(done.rows_affected() == 1)
}

pub async fn tags(pool: &PgPool, program_id: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT tag FROM program_tags WHERE program_id = $1 ORDER BY tag")
        .bind(program_id)
        .fetch_all(pool)
        .await
}
