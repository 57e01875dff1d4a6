//! Reports computed live from the ledger: program activity (E119) here, the liability reports in
//! `liability`.

pub mod liability;
mod repo;

use crate::error::Result;
use crate::money;
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page, PageParams};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// One program's activity; totals are decimal strings.
#[derive(Debug, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = ProgramActivity)]
pub struct ActivityRow {
    pub program_id: Uuid,
    pub program_name: String,
    #[schema(ignore)]
    pub created_at: DateTime<Utc>,
    pub event_count: i64,
    pub journal_count: i64,
    #[schema(value_type = String, example = "1500")]
    pub total_issued: Decimal,
    #[schema(value_type = String, example = "200")]
    pub total_redeemed: Decimal,
    pub unique_participants: i64,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub asset_count: i64,
    pub rule_count: i64,
    pub tier_count: i64,
    pub reward_count: i64,
    /// Largest scale among the program's assets: totals are rendered with that many decimals.
    #[schema(ignore)]
    pub scale: i16,
}

impl Serialize for ActivityRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "program_id": self.program_id,
            "program_name": self.program_name,
            "event_count": self.event_count,
            "journal_count": self.journal_count,
            "total_issued": money::format(self.total_issued, self.scale),
            "total_redeemed": money::format(self.total_redeemed, self.scale),
            "unique_participants": self.unique_participants,
            "last_activity_at": self.last_activity_at,
            "asset_count": self.asset_count,
            "rule_count": self.rule_count,
            "tier_count": self.tier_count,
            "reward_count": self.reward_count,
        })
        .serialize(s)
    }
}

/// `from` scopes `event_count`, `total_issued` and `total_redeemed`; programs with no activity in the window
/// are left out.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// Only programs with ledger activity after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Scopes the counts and totals; requires `to`.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    #[param(ignore)]
    pub page: PageParams,
}

/// E119. `total_issued` is value credited to participants, net of provisional accruals returned by their
/// settlement or voided; `total_redeemed` is value taken back from them by DEBIT actions and redemptions, net
/// of reversals; `unique_participants` counts those who earned or redeemed; `last_activity_at` is the latest
/// event received or ledger entry; `reward_count` and `tier_count` count the rewards and tiers that are not
/// archived.
pub async fn program_activity(
    pool: &PgPool,
    actor: &Actor,
    query: ActivityQuery,
) -> Result<Page<ActivityRow>> {
    let rows = repo::program_activity(pool, actor.organization_id, &query).await?;
    Ok(Page::from_rows(rows, query.page.limit, |r| {
        Cursor::at(r.created_at, r.program_id)
    }))
}
