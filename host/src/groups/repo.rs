use super::{Group, GroupFilter, GroupMember, GroupState, MemberInput, Membership};
use crate::pagination::{Order, PageParams};
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const COLUMNS: &str = "id, name, status, created_at, updated_at, deleted_at";

pub async fn insert(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
    name: &str,
    on_behalf_of: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO groups (id, organization_id, name, created_on_behalf_of) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(organization_id)
    .bind(name)
    .bind(on_behalf_of)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(
    db: impl sqlx::PgExecutor<'_>,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Group>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM groups WHERE id = $1 AND organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(db)
    .await
}

pub async fn lock(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Group>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM groups WHERE id = $1 AND organization_id = $2 FOR NO KEY UPDATE"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await
}

pub async fn lock_many(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<()> {
    sqlx::query("SELECT id FROM groups WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    f: &GroupFilter,
) -> sqlx::Result<Vec<Group>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM groups WHERE organization_id = "
    ));
    q.push_bind(organization_id);
    if !f.include_archived {
        q.push(" AND status = 'ACTIVE'");
    }
    if let Some(search) = &f.search {
        q.push(" AND name ILIKE ")
            .push_bind(crate::search::like_pattern(search));
    }
    Order::NEWEST_FIRST.push(&mut q, "id", f.page.cursor.clone(), f.page.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn rename(conn: &mut PgConnection, id: Uuid, name: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE groups SET name = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(name)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn archive(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE groups SET status = 'ARCHIVED', deleted_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn known_participants(
    conn: &mut PgConnection,
    organization_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM participants WHERE organization_id = $1 AND id = ANY($2)")
        .bind(organization_id)
        .bind(ids)
        .fetch_all(conn)
        .await
}

/// Adds members, or makes former ones ACTIVE again with the role given.
pub async fn upsert_members(
    conn: &mut PgConnection,
    id: Uuid,
    members: &[MemberInput],
    on_behalf_of: Option<Uuid>,
) -> sqlx::Result<()> {
    let participants: Vec<Uuid> = members.iter().map(|m| m.participant_id).collect();
    let roles: Vec<super::Role> = members.iter().map(|m| m.role).collect();
    sqlx::query(
        "INSERT INTO group_members (group_id, participant_id, role, changed_on_behalf_of)
         SELECT $1, m.participant_id, m.role, $4 FROM unnest($2::uuid[], $3::text[]) AS m (participant_id, role)
         ON CONFLICT (group_id, participant_id) DO UPDATE
            SET role = EXCLUDED.role, status = 'ACTIVE', joined_at = now(), left_at = NULL,
                changed_on_behalf_of = EXCLUDED.changed_on_behalf_of",
    )
    .bind(id)
    .bind(&participants)
    .bind(&roles)
    .bind(on_behalf_of)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which of these participants are ACTIVE members.
pub async fn active_among(
    conn: &mut PgConnection,
    id: Uuid,
    participants: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT participant_id FROM group_members
          WHERE group_id = $1 AND participant_id = ANY($2) AND status = 'ACTIVE' ORDER BY participant_id",
    )
    .bind(id)
    .bind(participants)
    .fetch_all(conn)
    .await
}

pub async fn active_role(
    conn: &mut PgConnection,
    id: Uuid,
    participant: Uuid,
) -> sqlx::Result<Option<super::Role>> {
    sqlx::query_scalar(
        "SELECT role FROM group_members WHERE group_id = $1 AND participant_id = $2 AND status = 'ACTIVE'",
    )
    .bind(id)
    .bind(participant)
    .fetch_optional(conn)
    .await
}

/// ACTIVE ADMINs other than `participant`.
pub async fn other_admins(
    conn: &mut PgConnection,
    id: Uuid,
    participant: Uuid,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM group_members
          WHERE group_id = $1 AND participant_id <> $2 AND status = 'ACTIVE' AND role = 'ADMIN'",
    )
    .bind(id)
    .bind(participant)
    .fetch_one(conn)
    .await
}

pub async fn set_role(
    conn: &mut PgConnection,
    id: Uuid,
    participant: Uuid,
    role: super::Role,
    on_behalf_of: Option<Uuid>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE group_members SET role = $3, changed_on_behalf_of = $4 WHERE group_id = $1 AND participant_id = $2",
    )
    .bind(id)
    .bind(participant)
    .bind(role)
    .bind(on_behalf_of)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn leave(conn: &mut PgConnection, id: Uuid, participant: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE group_members SET status = 'LEFT', left_at = now() WHERE group_id = $1 AND participant_id = $2",
    )
    .bind(id)
    .bind(participant)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn members(
    pool: &PgPool,
    id: Uuid,
    include_former: bool,
    page: &PageParams,
) -> sqlx::Result<Vec<GroupMember>> {
    sqlx::query_as(
        "SELECT m.participant_id, p.external_id, m.role, m.status, m.joined_at, m.left_at
           FROM group_members m JOIN participants p ON p.id = m.participant_id
          WHERE m.group_id = $1 AND ($2 OR m.status = 'ACTIVE') AND ($3::uuid IS NULL OR m.participant_id > $3)
          ORDER BY m.participant_id LIMIT $4 + 1",
    )
    .bind(id)
    .bind(include_former)
    .bind(page.cursor.as_ref().map(|c| c.id))
    .bind(page.limit)
    .fetch_all(pool)
    .await
}

pub async fn of_participant(
    pool: &PgPool,
    participant: Uuid,
    page: &PageParams,
) -> sqlx::Result<Vec<Membership>> {
    let (after_key, after_id) = page
        .cursor
        .as_ref()
        .map_or((None, None), |c| (Some(c.key.clone()), Some(c.id)));
    sqlx::query_as(
        "SELECT g.id AS group_id, g.name, g.status AS group_status, m.role, m.joined_at
           FROM group_members m JOIN groups g ON g.id = m.group_id
          WHERE m.participant_id = $1 AND m.status = 'ACTIVE'
            AND ($2::text IS NULL OR (m.joined_at, g.id) > ($2::timestamptz, $3::uuid))
          ORDER BY m.joined_at, g.id LIMIT $4 + 1",
    )
    .bind(participant)
    .bind(after_key)
    .bind(after_id)
    .bind(page.limit)
    .fetch_all(pool)
    .await
}

/// The participant's first ACTIVE membership of an ACTIVE group, as `g` (the group) and `m`.
const FIRST_GROUP: &str = "FROM group_members m JOIN groups g ON g.id = m.group_id
    WHERE m.participant_id = $1 AND m.status = 'ACTIVE' AND g.status = 'ACTIVE'
    ORDER BY m.joined_at, m.group_id LIMIT 1";

pub async fn first_state_of(
    conn: &mut PgConnection,
    participant: Uuid,
) -> sqlx::Result<Option<GroupState>> {
    let state = crate::holders::state::state_columns("g.id");
    sqlx::query_as(&format!("SELECT g.id, {state} {FIRST_GROUP}"))
        .bind(participant)
        .fetch_optional(conn)
        .await
}

pub async fn first_of(conn: &mut PgConnection, participant: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(&format!("SELECT g.id {FIRST_GROUP}"))
        .bind(participant)
        .fetch_optional(conn)
        .await
}
