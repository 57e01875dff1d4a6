use super::{Asset, AssetFilter, AssetPatch, NewAsset};
use crate::pagination::Order;
use crate::validation::Patch;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const SELECT: &str = "SELECT a.id, a.name, a.symbol, a.inventory_mode, a.issuance_policy, a.scale,
        a.max_transaction_amount, a.status, a.created_at, a.updated_at, a.deleted_at,
        ARRAY(SELECT pa.program_id FROM program_assets pa WHERE pa.asset_id = a.id ORDER BY pa.created_at)
            AS program_ids
   FROM assets a";

pub async fn insert(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
    new: &NewAsset,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH asset AS (
            INSERT INTO assets (id, organization_id, name, symbol, inventory_mode, issuance_policy, scale,
                                max_transaction_amount)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id)
         INSERT INTO program_assets (program_id, asset_id, organization_id) SELECT $9, id, $2 FROM asset",
    )
    .bind(id)
    .bind(organization_id)
    .bind(&new.name)
    .bind(&new.symbol)
    .bind(new.inventory_mode)
    .bind(new.issuance_policy)
    .bind(new.scale)
    .bind(new.max_transaction_amount)
    .bind(new.program_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find(pool: &PgPool, organization_id: Uuid, id: Uuid) -> sqlx::Result<Option<Asset>> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE a.id = $1 AND a.organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn find_linked(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Asset>> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE a.id = $1 AND a.organization_id = $2
            AND EXISTS (SELECT 1 FROM program_assets pa WHERE pa.asset_id = a.id AND pa.program_id = $3)"
    ))
    .bind(id)
    .bind(organization_id)
    .bind(program_id)
    .fetch_optional(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    f: &AssetFilter,
    order: Order,
) -> sqlx::Result<Vec<Asset>> {
    let mut q = QueryBuilder::<Postgres>::new(SELECT);
    q.push(" WHERE a.organization_id = ")
        .push_bind(organization_id);
    if let Some(program_id) = f.program_id {
        q.push(" AND EXISTS (SELECT 1 FROM program_assets pa WHERE pa.asset_id = a.id AND pa.program_id = ");
        q.push_bind(program_id).push(")");
    }
    if let Some(status) = f.status {
        q.push(" AND a.status = ").push_bind(status);
    }
    if let Some(search) = &f.search {
        let pattern = crate::search::like_pattern(search);
        q.push(" AND (a.name ILIKE ").push_bind(pattern.clone());
        q.push(" OR a.symbol ILIKE ").push_bind(pattern).push(")");
    }
    order.push(&mut q, "a.id", f.page.cursor.clone(), f.page.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn update(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    patch: &AssetPatch,
) -> sqlx::Result<()> {
    let (set_max, max) = match &patch.max_transaction_amount {
        Patch::Absent => (false, None),
        Patch::Null => (true, None),
        Patch::Set(max) => (true, Some(*max)),
    };
    sqlx::query(
        "UPDATE assets SET name = COALESCE($3, name),
                max_transaction_amount = CASE WHEN $4 THEN $5 ELSE max_transaction_amount END,
                status = CASE WHEN $6 THEN 'ARCHIVED' ELSE status END,
                deleted_at = CASE WHEN $6 THEN now() ELSE deleted_at END,
                updated_at = now()
          WHERE id = $1 AND organization_id = $2",
    )
    .bind(id)
    .bind(organization_id)
    .bind(&patch.name)
    .bind(set_max)
    .bind(max)
    .bind(patch.status == Some(super::ArchiveStatus::Archived))
    .execute(pool)
    .await?;
    Ok(())
}

/// Why the asset cannot leave the program, if it cannot: value has moved in it there, or a rule that is not
/// archived names it (in an action or a budget).
pub async fn unlink_blocker(
    conn: &mut PgConnection,
    program_id: Uuid,
    asset_id: Uuid,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "SELECT CASE
                  WHEN EXISTS (SELECT 1 FROM journal_entries j JOIN postings x ON x.journal_entry_id = j.id
                                WHERE j.program_id = $1 AND x.asset_id = $2)
                    THEN 'the program has ledger entries in this asset'
                  ELSE (SELECT 'rule ' || r.id || ' uses this asset' FROM rules r
                         WHERE r.program_id = $1 AND r.status <> 'ARCHIVED'
                           AND (r.actions @> jsonb_build_array(jsonb_build_object('asset_id', $2::text))
                                OR EXISTS (SELECT 1 FROM rule_budgets b WHERE b.rule_id = r.id AND b.asset_id = $2))
                         ORDER BY r.id LIMIT 1)
                END",
    )
    .bind(program_id)
    .bind(asset_id)
    .fetch_one(conn)
    .await
}

/// Removes the link; `false` when there was none.
pub async fn unlink(
    conn: &mut PgConnection,
    program_id: Uuid,
    asset_id: Uuid,
) -> sqlx::Result<bool> {
    let done = sqlx::query("DELETE FROM program_assets WHERE program_id = $1 AND asset_id = $2")
        .bind(program_id)
        .bind(asset_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn link_asset(
    pool: &PgPool,
    organization_id: Uuid,
    program_id: Uuid,
    asset_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO program_assets (program_id, asset_id, organization_id) VALUES ($1, $2, $3)",
    )
    .bind(program_id)
    .bind(asset_id)
    .bind(organization_id)
    .execute(pool)
    .await?;
    Ok(())
}
