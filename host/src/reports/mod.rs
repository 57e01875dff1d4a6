//! Reports computed live from the ledger.

mod repo;

use crate::error::Result;
use crate::money;
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub struct ActivityRow {
    pub program_id: Uuid,
    pub program_name: String,
    pub created_at: DateTime<Utc>,
    pub event_count: i64,
    pub journal_count: i64,
    pub total_issued: Decimal,
    pub total_redeemed: Decimal,
    pub unique_participants: i64,
    pub last_activity_at: Option<DateTime<Utc>>,
    pub asset_count: i64,
    pub rule_count: i64,
    /// Largest scale among the program's assets: totals are rendered with that many decimals.
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
            // Tiers and the rewards catalogue are not built yet; no program can have any.
            "tier_count": 0,
            "reward_count": 0,
        })
        .serialize(s)
    }
}

#[derive(Debug, Default)]
pub struct ActivityQuery {
    /// Only programs whose latest ledger entry is after this instant; does not scope the metrics.
    pub since: Option<DateTime<Utc>>,
    /// Scopes `event_count`, `total_issued` and `total_redeemed`; programs with no activity in it are left out.
    pub window: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

/// E119. `total_issued` is value credited to participants; `total_redeemed` is value taken back from them by
/// DEBIT actions and redemptions; `unique_participants` counts those who earned or redeemed.
pub async fn program_activity(
    pool: &PgPool,
    actor: &Actor,
    query: ActivityQuery,
) -> Result<Page<ActivityRow>> {
    let rows = repo::program_activity(pool, actor.organization_id, &query).await?;
    Ok(Page::from_rows(rows, query.limit, |r| {
        Cursor::at(r.created_at, r.program_id)
    }))
}
