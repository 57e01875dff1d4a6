use super::{Reward, RewardFilter, RewardStatus};
use crate::pagination::Order;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const COLUMNS: &str = "r.id, r.program_id, r.asset_id, r.name, r.description, r.category, r.redemption_type, \
                       r.unit_cost, r.status, r.max_total, r.max_per_participant, r.redeemed_count, \
                       r.available_from, r.available_until, r.metadata, r.created_at, r.updated_at, a.scale";

pub async fn insert(
    conn: &mut PgConnection,
    organization_id: Uuid,
    r: &Reward,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO rewards (id, organization_id, program_id, asset_id, name, description, category,
                              redemption_type, unit_cost, status, max_total, max_per_participant,
                              available_from, available_until, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(r.id)
    .bind(organization_id)
    .bind(r.program_id)
    .bind(r.asset_id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(&r.category)
    .bind(r.redemption_type)
    .bind(r.unit_cost)
    .bind(r.status)
    .bind(r.max_total)
    .bind(r.max_per_participant)
    .bind(r.available_from)
    .bind(r.available_until)
    .bind(&r.metadata)
    .execute(conn)
    .await?;
    Ok(())
}

/// A reward of the organization's program; `lock` takes its row for the rest of the transaction.
pub async fn find(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<Reward>> {
    let lock = if lock { " FOR NO KEY UPDATE OF r" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM rewards r JOIN assets a ON a.id = r.asset_id
          WHERE r.id = $1 AND r.program_id = $2 AND r.organization_id = $3{lock}"
    ))
    .bind(id)
    .bind(program_id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    program_id: Uuid,
    filter: &RewardFilter,
    order: Order,
) -> sqlx::Result<Vec<Reward>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM rewards r JOIN assets a ON a.id = r.asset_id WHERE r.program_id = "
    ));
    q.push_bind(program_id);
    match filter.status {
        Some(status) => {
            q.push(" AND r.status = ").push_bind(status);
        }
        None if !filter.include_archived => {
            q.push(" AND r.status <> ")
                .push_bind(RewardStatus::Archived);
        }
        None => {}
    }
    if let Some(search) = &filter.search {
        q.push(" AND r.name ILIKE ")
            .push_bind(crate::search::like_pattern(search));
    }
    order.push(
        &mut q,
        "r.id",
        filter.page.cursor.clone(),
        filter.page.limit,
    );
    q.build_query_as().fetch_all(pool).await
}

pub async fn save(conn: &mut PgConnection, r: &Reward) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE rewards SET name = $2, description = $3, category = $4, unit_cost = $5, status = $6,
                max_total = $7, max_per_participant = $8, available_from = $9, available_until = $10,
                metadata = $11, updated_at = now()
          WHERE id = $1",
    )
    .bind(r.id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(&r.category)
    .bind(r.unit_cost)
    .bind(r.status)
    .bind(r.max_total)
    .bind(r.max_per_participant)
    .bind(r.available_from)
    .bind(r.available_until)
    .bind(&r.metadata)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn save_stock(conn: &mut PgConnection, r: &Reward) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE rewards SET redeemed_count = $2, status = $3, updated_at = now() WHERE id = $1",
    )
    .bind(r.id)
    .bind(r.redeemed_count)
    .bind(r.status)
    .execute(conn)
    .await?;
    Ok(())
}
