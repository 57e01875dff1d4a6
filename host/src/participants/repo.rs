use super::{Order, Participant, ParticipantFilter, State, Upsert, Wait};
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const COLUMNS: &str = "id, external_id, status, email, phone, first_name, last_name, display_name, created_at, updated_at";

/// Inserts or updates by `(organization, external_id)`; fields not supplied keep their value on update.
pub async fn upsert(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
    u: &Upsert,
) -> sqlx::Result<(Uuid, bool)> {
    sqlx::query_as(
        "INSERT INTO participants (id, organization_id, external_id, status, email, phone, first_name, last_name,
                                   display_name)
         VALUES ($1, $2, $3, COALESCE($4, 'ACTIVE'), $5, $6, $7, $8, $9)
         ON CONFLICT (organization_id, external_id) DO UPDATE SET
             status = COALESCE($4, participants.status),
             email = COALESCE($5, participants.email),
             phone = COALESCE($6, participants.phone),
             first_name = COALESCE($7, participants.first_name),
             last_name = COALESCE($8, participants.last_name),
             display_name = COALESCE($9, participants.display_name),
             updated_at = now()
         RETURNING id, (xmax = 0) AS created",
    )
    .bind(id)
    .bind(organization_id)
    .bind(&u.external_id)
    .bind(u.status)
    .bind(&u.email)
    .bind(&u.phone)
    .bind(&u.first_name)
    .bind(&u.last_name)
    .bind(&u.display_name)
    .fetch_one(conn)
    .await
}

/// Creates a bare participant for an unknown `external_id`; when another transaction creates it first,
/// returns that one. Takes no row lock on an existing participant: `DO UPDATE` would lock it as a key update,
/// which waits for (and deadlocked with) ingests whose foreign-key checks hold the same row.
pub async fn insert_if_absent(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
    external_id: &str,
) -> sqlx::Result<Uuid> {
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO participants (id, organization_id, external_id) VALUES ($1, $2, $3)
         ON CONFLICT (organization_id, external_id) DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(organization_id)
    .bind(external_id)
    .fetch_optional(&mut *conn)
    .await?;
    match inserted {
        Some(id) => Ok(id),
        // The conflicting row is committed (ON CONFLICT waited for it), so this statement sees it.
        None => find_by_external_id(conn, organization_id, external_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound),
    }
}

pub async fn create_many(
    conn: &mut PgConnection,
    rows: &[(Uuid, Uuid, String)],
) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut organizations = Vec::with_capacity(rows.len());
    let mut external_ids = Vec::with_capacity(rows.len());
    for (id, organization_id, external_id) in rows {
        ids.push(*id);
        organizations.push(*organization_id);
        external_ids.push(external_id.as_str());
    }
    sqlx::query(
        "INSERT INTO participants (id, organization_id, external_id)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[])",
    )
    .bind(&ids)
    .bind(&organizations)
    .bind(&external_ids)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn claim_names(
    conn: &mut PgConnection,
    names: &[(Uuid, String)],
) -> sqlx::Result<Vec<(Uuid, String)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let (organizations, external_ids): (Vec<Uuid>, Vec<String>) = names.iter().cloned().unzip();
    sqlx::query_as(
        "SELECT organization_id, external_id FROM unnest($1::uuid[], $2::text[]) AS t(organization_id, external_id)
          WHERE pg_try_advisory_xact_lock(hashtextextended(organization_id::text || '/' || external_id, 0))",
    )
    .bind(&organizations)
    .bind(&external_ids)
    .fetch_all(conn)
    .await
}

pub async fn find_by_external_id(
    conn: &mut PgConnection,
    organization_id: Uuid,
    external_id: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM participants WHERE organization_id = $1 AND external_id = $2",
    )
    .bind(organization_id)
    .bind(external_id)
    .fetch_optional(conn)
    .await
}

pub async fn enroll(conn: &mut PgConnection, pairs: &[(Uuid, Uuid)]) -> sqlx::Result<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let (participants, programs): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO participant_programs (participant_id, program_id)
         SELECT DISTINCT * FROM unnest($1::uuid[], $2::uuid[])
         ON CONFLICT (participant_id, program_id) DO UPDATE SET status = 'ACTIVE'
         WHERE participant_programs.status <> 'ACTIVE'",
    )
    .bind(&participants)
    .bind(&programs)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn members(
    conn: &mut PgConnection,
    program_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT participant_id FROM participant_programs
          WHERE program_id = $1 AND ($2::uuid IS NULL OR participant_id > $2)
          ORDER BY participant_id LIMIT $3",
    )
    .bind(program_id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn find(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Participant>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM participants WHERE id = $1 AND organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

type InlineState = (Vec<String>, Json<Map<String, Value>>, Vec<Uuid>);

pub async fn inline_state(pool: &PgPool, id: Uuid) -> sqlx::Result<InlineState> {
    sqlx::query_as(
        "SELECT ARRAY(SELECT tag FROM holder_tags WHERE holder_id = p.id ORDER BY tag) AS tags,
                (SELECT COALESCE(jsonb_object_agg(key, value), '{}') FROM holder_attributes
                  WHERE holder_id = p.id) AS attributes,
                ARRAY(SELECT program_id FROM participant_programs WHERE participant_id = p.id
                       ORDER BY enrolled_at) AS program_ids
           FROM participants p WHERE p.id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}

pub async fn lock(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("SELECT id FROM participants WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn lock_state(
    conn: &mut PgConnection,
    organization_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<State>> {
    lock_states(conn, Some(organization_id), ids, Wait::Block).await
}

pub async fn lock_states(
    conn: &mut PgConnection,
    organization_id: Option<Uuid>,
    ids: &[Uuid],
    wait: Wait,
) -> sqlx::Result<Vec<State>> {
    let lock = match wait {
        Wait::Block => "FOR NO KEY UPDATE",
        Wait::Skip => "FOR NO KEY UPDATE SKIP LOCKED",
    };
    read_states(conn, organization_id, ids, lock).await
}

/// The state of the participants, locked as `lock` says (or not at all when it is empty).
pub async fn read_states(
    conn: &mut PgConnection,
    organization_id: Option<Uuid>,
    ids: &[Uuid],
    lock: &str,
) -> sqlx::Result<Vec<State>> {
    sqlx::query_as(&format!(
        "WITH locked AS (
            SELECT id FROM participants WHERE id = ANY($1) AND ($2::uuid IS NULL OR organization_id = $2)
             ORDER BY id {lock})
         SELECT {STATE}
           FROM participants p JOIN locked USING (id)",
        STATE = state_select(),
    ))
    .bind(ids)
    .bind(organization_id)
    .fetch_all(conn)
    .await
}

fn state_select() -> String {
    format!(
        "p.id, p.organization_id, p.external_id, p.status, {state},
         ARRAY(SELECT program_id FROM participant_programs
                WHERE participant_id = p.id AND status = 'ACTIVE') AS programs",
        state = crate::holders::state::state_columns("p.id"),
    )
}

pub async fn member_states(
    conn: &mut PgConnection,
    program_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<State>> {
    sqlx::query_as(&format!(
        "SELECT {STATE}
           FROM participants p
           JOIN (SELECT participant_id FROM participant_programs
                  WHERE program_id = $1 AND ($2::uuid IS NULL OR participant_id > $2)
                  ORDER BY participant_id LIMIT $3) m ON m.participant_id = p.id
          ORDER BY p.id",
        STATE = state_select(),
    ))
    .bind(program_id)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn member_count(conn: &mut PgConnection, program_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM participant_programs WHERE program_id = $1")
        .bind(program_id)
        .fetch_one(conn)
        .await
}

pub async fn find_by_external_ids(
    conn: &mut PgConnection,
    organizations: &[Uuid],
    external_ids: &[String],
) -> sqlx::Result<Vec<(Uuid, String, Uuid)>> {
    sqlx::query_as(
        "SELECT p.organization_id, p.external_id, p.id
           FROM participants p JOIN unnest($1::uuid[], $2::text[]) AS t(organization_id, external_id)
             ON p.organization_id = t.organization_id AND p.external_id = t.external_id",
    )
    .bind(organizations)
    .bind(external_ids)
    .fetch_all(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    f: &ParticipantFilter,
    order: Order,
) -> sqlx::Result<Vec<Participant>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM participants WHERE organization_id = "
    ));
    q.push_bind(organization_id);
    if let Some(external_id) = &f.external_id {
        q.push(" AND external_id = ").push_bind(external_id.clone());
    }
    if let Some(program_id) = f.program_id {
        q.push(" AND EXISTS (SELECT 1 FROM participant_programs pp WHERE pp.participant_id = participants.id");
        q.push(" AND pp.program_id = ")
            .push_bind(program_id)
            .push(")");
    }
    if let Some(status) = f.status {
        q.push(" AND status = ").push_bind(status);
    }
    if let Some(search) = &f.search {
        let pattern = crate::search::like_pattern(search);
        q.push(" AND (");
        for (i, column) in [
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "display_name",
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                q.push(" OR ");
            }
            q.push(format_args!("{column} ILIKE "))
                .push_bind(pattern.clone());
        }
        q.push(")");
    }
    crate::search::push_range(&mut q, "created_at", f.from, f.to);
    order.push(&mut q, "id", f.page.cursor.clone(), f.page.limit);
    q.build_query_as().fetch_all(pool).await
}

/// E20's profile fields: `None` keeps a field, `Some("")` clears it.
pub async fn update_profile(
    conn: &mut PgConnection,
    id: Uuid,
    p: &super::ProfilePatch,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE participants SET
            external_id = COALESCE($2, external_id),
            email = CASE WHEN $3::text IS NULL THEN email ELSE NULLIF($3, '') END,
            phone = CASE WHEN $4::text IS NULL THEN phone ELSE NULLIF($4, '') END,
            first_name = CASE WHEN $5::text IS NULL THEN first_name ELSE NULLIF($5, '') END,
            last_name = CASE WHEN $6::text IS NULL THEN last_name ELSE NULLIF($6, '') END,
            display_name = CASE WHEN $7::text IS NULL THEN display_name ELSE NULLIF($7, '') END,
            updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(&p.external_id)
    .bind(&p.email)
    .bind(&p.phone)
    .bind(&p.first_name)
    .bind(&p.last_name)
    .bind(&p.display_name)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: super::ParticipantStatus,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE participants SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn exists(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM participants WHERE id = $1 AND organization_id = $2)",
    )
    .bind(id)
    .bind(organization_id)
    .fetch_one(conn)
    .await
}
