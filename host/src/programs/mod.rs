//! Programs: the container for rules, participants' enrollments and linked assets.

mod repo;

use crate::error::{Error, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page};
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub use repo::lock_for_update;

crate::vocabulary!(
    /// Only an ACTIVE program processes events; an ARCHIVED one is hidden from lists by default.
    pub enum ProgramStatus {
        Active = "ACTIVE",
        Suspended = "SUSPENDED",
        Archived = "ARCHIVED",
    }
);
pub const STATUSES: &[&str] = ProgramStatus::NAMES;
crate::api_enum!(
    /// What an event for an unknown `external_id` does: create the participant, or fail.
    pub UnknownParticipantPolicy = UNKNOWN_PARTICIPANT_POLICIES ["CREATE", "REJECT"]
);
crate::api_enum!(
    /// Where redeemed value goes.
    pub RedemptionTarget = REDEMPTION_TARGETS ["SYSTEM_REDEMPTION", "SYSTEM_BREAKAGE", "LEDGER_ENTITY"]
);

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Program {
    pub id: Uuid,
    #[schema(example = "Coffee Rewards")]
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = UnknownParticipantPolicy)]
    pub on_unknown_participant: String,
    pub status: ProgramStatus,
    #[schema(value_type = RedemptionTarget)]
    pub redemption_target_type: String,
    pub redemption_target_entity_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub struct NewProgram {
    pub name: String,
    pub description: Option<String>,
    pub on_unknown_participant: &'static str,
}

#[derive(Default)]
pub struct ProgramFilter {
    pub include_archived: bool,
    pub status: Option<&'static str>,
    pub search: Option<String>,
    pub sort_by_name: bool,
    pub ascending: bool,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

pub struct ProgramPatch {
    pub name: Option<String>,
    pub description: Patch<String>,
    pub on_unknown_participant: Option<&'static str>,
    pub status: Option<ProgramStatus>,
    pub redemption_target_type: Option<&'static str>,
    pub redemption_target_entity_id: Patch<Uuid>,
}

pub async fn create(pool: &PgPool, actor: &Actor, new: NewProgram) -> Result<Program> {
    Ok(repo::insert(pool, actor.organization_id, Uuid::now_v7(), &new).await?)
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Program> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("program"))
}

pub async fn list(pool: &PgPool, actor: &Actor, filter: ProgramFilter) -> Result<Page<Program>> {
    let order = Order {
        column: if filter.sort_by_name {
            "name"
        } else {
            "created_at"
        },
        sql_type: if filter.sort_by_name {
            "text"
        } else {
            "timestamptz"
        },
        descending: !filter.ascending,
    };
    let limit = filter.limit;
    let rows = repo::list(pool, actor.organization_id, &filter, order).await?;
    Ok(Page::from_rows(rows, limit, |p| {
        if filter.sort_by_name {
            Cursor::new(&p.name, p.id)
        } else {
            Cursor::at(p.created_at, p.id)
        }
    }))
}

pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    patch: ProgramPatch,
) -> Result<Program> {
    let mut tx = pool.begin().await?;
    let mut program = lock_for_update(&mut tx, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    if let Some(name) = patch.name {
        program.name = name;
    }
    match patch.description {
        Patch::Set(text) => program.description = Some(text),
        Patch::Null => program.description = None,
        Patch::Absent => {}
    }
    if let Some(policy) = patch.on_unknown_participant {
        program.on_unknown_participant = policy.into();
    }
    if let Some(target) = patch.redemption_target_type {
        program.redemption_target_type = target.into();
        program.redemption_target_entity_id = match patch.redemption_target_entity_id {
            Patch::Set(entity) => Some(entity),
            _ => None,
        };
    }
    if let Some(status) = patch.status {
        program.deleted_at = match (status, program.deleted_at) {
            (ProgramStatus::Archived, Some(at)) => Some(at),
            (ProgramStatus::Archived, None) => Some(Utc::now()),
            _ => None,
        };
        program.status = status;
    }
    let program = repo::save(&mut tx, &program).await?;
    tx.commit().await?;
    Ok(program)
}

/// Whether the program exists and is ACTIVE, read in the caller's transaction.
pub async fn is_active(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<bool> {
    Ok(repo::status(conn, id).await? == Some(ProgramStatus::Active))
}

/// What processing an event needs to know of its program.
#[derive(Debug, sqlx::FromRow)]
pub struct Policy {
    pub id: Uuid,
    pub status: ProgramStatus,
    pub on_unknown_participant: String,
}

/// The policies of these programs, by id, read in the caller's transaction.
pub async fn policies(
    conn: &mut sqlx::PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<std::collections::HashMap<Uuid, Policy>> {
    let rows = repo::policies(conn, ids).await?;
    Ok(rows.into_iter().map(|p| (p.id, p)).collect())
}
