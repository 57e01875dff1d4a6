//! Tier definitions (E97–E101): ranked tracks of levels inside a program. A level may carry `benefits` (free
//! JSON that rules read) and a `qualification` on the holder's counters; a tier may carry a `lifecycle`.
//! Keys of tiers and levels are immutable; a PATCH upserts levels by key. Archiving is one way: an archived
//! tier keeps its definition and its holders' levels for reading, and refuses changes (409 `tier_archived`).
//! What holders have is in `holders`.

pub mod holders;
pub mod lifecycle;
mod repo;

use crate::error::{Error, OnConstraint, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page, PageParams};
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sqlx::PgPool;
use uuid::Uuid;

crate::vocabulary!(
    /// An ARCHIVED tier is read-only, for good.
    pub enum TierStatus {
        Active = "ACTIVE",
        Archived = "ARCHIVED",
    }
);
crate::vocabulary!(
    /// Whether every criterion must hold, or one.
    pub enum QualificationMode {
        All = "ALL",
        Any = "ANY",
    }
);
crate::vocabulary!(
    /// How a counter compares with a criterion's threshold.
    pub enum Comparison {
        AtLeast = ">=",
        Above = ">",
        Equal = "==",
        AtMost = "<=",
        Below = "<",
    }
);
crate::vocabulary!(
    /// Re-evaluated at each period end, or lost after `duration` without activity.
    pub enum RetentionMode {
        PeriodBased = "PERIOD_BASED",
        ActivityRefresh = "ACTIVITY_REFRESH",
    }
);
crate::vocabulary!(
    /// The evaluation cycle of a PERIOD_BASED tier.
    pub enum PeriodType {
        CalendarYear = "CALENDAR_YEAR",
        FixedYear = "FIXED_YEAR",
        Unbounded = "NONE",
    }
);
crate::vocabulary!(
    /// What a downgrade does: drop to the highest level still qualified, drop one rank, or keep the level.
    pub enum DowngradeMode {
        DropToQualifying = "DROP_TO_QUALIFYING",
        DropOne = "DROP_ONE",
        Hold = "HOLD",
    }
);
crate::vocabulary!(
    /// At period end, qualifying counters go back to 0, or keep what exceeds the level's threshold.
    pub enum Rollover {
        Reset = "NONE",
        Excess = "EXCESS",
    }
);

/// What moves a holder up to a level automatically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Qualification {
    pub mode: QualificationMode,
    pub criteria: Vec<Criterion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Criterion {
    /// A counter key of the holder.
    pub counter: String,
    pub operator: Comparison,
    #[schema(value_type = f64)]
    pub threshold: serde_json::Number,
}

/// A holder's counter values; a counter it does not have is 0.
pub type Counters = std::collections::HashMap<String, Decimal>;

impl Qualification {
    pub fn met_by(&self, counters: &Counters) -> bool {
        let holds = |c: &Criterion| c.holds(counters.get(&c.counter).copied().unwrap_or_default());
        match self.mode {
            QualificationMode::All => self.criteria.iter().all(holds),
            QualificationMode::Any => self.criteria.iter().any(holds),
        }
    }

    /// What it asks of `counter`: the threshold of its criterion on it, 0 without one.
    pub fn threshold_of(&self, counter: &str) -> Decimal {
        self.criteria
            .iter()
            .filter(|c| c.counter == counter)
            .map(Criterion::threshold)
            .max()
            .unwrap_or_default()
    }
}

impl Criterion {
    /// A threshold as an amount; `None` when it is beyond what an amount holds (refused on input).
    pub fn amount(threshold: &serde_json::Number) -> Option<Decimal> {
        let text = threshold.to_string();
        text.parse()
            .or_else(|_| Decimal::from_scientific(&text))
            .ok()
    }

    fn threshold(&self) -> Decimal {
        Criterion::amount(&self.threshold).unwrap_or_default()
    }

    fn holds(&self, value: Decimal) -> bool {
        let threshold = self.threshold();
        match self.operator {
            Comparison::AtLeast => value >= threshold,
            Comparison::Above => value > threshold,
            Comparison::Equal => value == threshold,
            Comparison::AtMost => value <= threshold,
            Comparison::Below => value < threshold,
        }
    }
}

/// Every part is optional; a tier without a lifecycle changes only by rules and the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Lifecycle {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qualification_period: Option<QualificationPeriod>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_validity: Option<StatusValidity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downgrade_policy: Option<DowngradePolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<CounterPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Retention {
    pub mode: RetentionMode,
    /// ACTIVITY_REFRESH: a Go duration of inactivity after which the level is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QualificationPeriod {
    #[serde(rename = "type")]
    pub period: PeriodType,
    /// FIXED_YEAR: the month (1–12) and day (1–28) the year starts on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_month: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_day: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusValidity {
    /// Months the status stays valid past the period's end; 0 ends it at the period's end.
    pub extend_months: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DowngradePolicy {
    pub mode: DowngradeMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_days: Option<u32>,
    /// A level key: no downgrade goes below it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_level: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CounterPolicy {
    /// Counter keys that qualify for the tier.
    pub qualifying: Vec<String>,
    pub rollover: Rollover,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Level {
    pub id: Uuid,
    #[schema(example = "gold")]
    pub key: String,
    /// Higher is better; unique in the tier.
    pub rank: i32,
    pub display_name: Option<String>,
    /// A hex colour such as `#FFD700`.
    pub color: Option<String>,
    pub icon_url: Option<String>,
    #[schema(value_type = Object)]
    pub benefits: sqlx::types::Json<Value>,
    #[schema(value_type = Option<Qualification>)]
    pub qualification: Option<sqlx::types::Json<Qualification>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    #[schema(ignore)]
    pub tier_id: Uuid,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = TierDefinition)]
pub struct Tier {
    pub id: Uuid,
    pub program_id: Uuid,
    #[schema(example = "status")]
    pub key: String,
    pub display_name: Option<String>,
    /// Ordered by rank.
    #[sqlx(skip)]
    pub levels: Vec<Level>,
    #[schema(value_type = Option<Lifecycle>)]
    pub lifecycle: Option<sqlx::types::Json<Lifecycle>>,
    pub status: TierStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A level as a request gives it; on update, fields left out keep their value.
#[derive(Debug, Clone, utoipa::ToSchema)]
pub struct LevelInput {
    #[schema(pattern = "^[a-z][a-z0-9_]*$", min_length = 1, max_length = 100)]
    pub key: String,
    /// Required for a new level.
    pub rank: Option<i32>,
    #[schema(value_type = Option<String>, max_length = 255)]
    pub display_name: Patch<String>,
    #[schema(value_type = Option<String>, pattern = "^#[0-9A-Fa-f]{6}$")]
    pub color: Patch<String>,
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub icon_url: Patch<String>,
    #[schema(value_type = Option<Object>)]
    pub benefits: Option<Map<String, Value>>,
    /// `{}` removes it.
    #[schema(value_type = Option<QualificationChange>)]
    pub qualification: Patch<Qualification>,
}

/// A level's qualification as a request gives it: a new one, or `{}` to remove it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum QualificationChange {
    Set(Qualification),
    Remove(Removed),
}

/// `{}`: removes what it stands for.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Removed {}

#[derive(Debug, utoipa::ToSchema)]
#[schema(as = CreateTier, example = json!({"key": "status", "display_name": "Status",
    "levels": [{"key": "silver", "rank": 1}, {"key": "gold", "rank": 2, "benefits": {"points_multiplier": 2},
    "qualification": {"mode": "ALL", "criteria": [{"counter": "spend", "operator": ">=", "threshold": 1000}]}}]}))]
pub struct NewTier {
    #[schema(pattern = "^[a-z][a-z0-9_]*$", min_length = 1, max_length = 100)]
    pub key: String,
    #[schema(max_length = 255)]
    pub display_name: Option<String>,
    #[schema(min_items = 1)]
    pub levels: Vec<LevelInput>,
    pub lifecycle: Option<Lifecycle>,
}

/// Fields left out are unchanged; `lifecycle: {}` makes the tier rules-only; levels are upserted by key.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = UpdateTier, example = json!({"levels": [{"key": "gold", "benefits": {"points_multiplier": 3}}]}))]
pub struct TierPatch {
    #[schema(value_type = Option<String>, max_length = 255)]
    pub display_name: Patch<String>,
    pub levels: Option<Vec<LevelInput>>,
    #[schema(value_type = Option<Lifecycle>)]
    pub lifecycle: Patch<Lifecycle>,
}

fn archived(key: &str) -> Error {
    Error::Conflict {
        code: "tier_archived",
        message: format!("tier {key} is archived"),
    }
}

/// A downgrade floor must be a level of the tier.
fn check_min_level(lifecycle: Option<&Lifecycle>, keys: &[String]) -> Result<()> {
    let floor = lifecycle
        .and_then(|l| l.downgrade_policy.as_ref())
        .and_then(|d| d.min_level.as_ref());
    match floor {
        Some(level) if !keys.contains(level) => {
            Err(Error::invalid(crate::error::FieldError::invalid(
                "lifecycle.downgrade_policy.min_level",
                "a level key of the tier",
                Some(level.clone()),
                "min_level must name a level of the tier",
            )))
        }
        _ => Ok(()),
    }
}

fn clash(what: &str) -> impl FnOnce() -> Error + '_ {
    move || Error::Conflict {
        code: "conflict",
        message: format!("two levels of the tier would have the same {what}"),
    }
}

/// E97: not under an archived program.
pub async fn create(pool: &PgPool, actor: &Actor, program_id: Uuid, new: NewTier) -> Result<Tier> {
    let program = crate::programs::get(pool, actor, program_id).await?;
    if program.status == crate::programs::ProgramStatus::Archived {
        return Err(Error::Conflict {
            code: "program_archived",
            message: format!("program {program_id} is archived"),
        });
    }
    let keys: Vec<String> = new.levels.iter().map(|l| l.key.clone()).collect();
    check_min_level(new.lifecycle.as_ref(), &keys)?;
    let mut tx = pool.begin().await?;
    let id = Uuid::now_v7();
    repo::insert(&mut tx, actor.organization_id, program_id, id, &new)
        .await
        .on_constraint("tiers_key_unique", || Error::Conflict {
            code: "conflict",
            message: format!("the program already has a tier {}", new.key),
        })?;
    repo::upsert_levels(&mut tx, id, &new.levels)
        .await
        .on_constraint("tier_levels_key_unique", clash("key"))
        .on_constraint("tier_levels_rank_unique", clash("rank"))?;
    tx.commit()
        .await
        .map_err(Error::from)
        .on_constraint("tier_levels_rank_unique", clash("rank"))?;
    get(pool, actor, program_id, &new.key).await
}

/// E99: by key.
pub async fn get(pool: &PgPool, actor: &Actor, program_id: Uuid, key: &str) -> Result<Tier> {
    let mut tier = repo::find(pool, actor.organization_id, program_id, key)
        .await?
        .ok_or(Error::NotFound("tier"))?;
    tier.levels = repo::levels_of(pool, &[tier.id]).await?;
    Ok(tier)
}

/// E98: oldest first.
pub async fn list(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    page: PageParams,
) -> Result<Page<Tier>> {
    crate::programs::get(pool, actor, program_id).await?;
    let rows = repo::list(pool, program_id, &page).await?;
    let mut page = Page::from_rows(rows, page.limit, |t| Cursor::new("", t.id));
    let ids: Vec<Uuid> = page.data.iter().map(|t| t.id).collect();
    let mut levels = repo::levels_of(pool, &ids).await?;
    for tier in &mut page.data {
        tier.levels = levels.extract_if(.., |l| l.tier_id == tier.id).collect();
    }
    Ok(page)
}

/// E100: levels are matched by key and changed in place; a new key needs a rank.
pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    key: &str,
    patch: TierPatch,
) -> Result<Tier> {
    let mut tx = pool.begin().await?;
    let tier = repo::lock(&mut tx, actor.organization_id, program_id, key)
        .await?
        .ok_or(Error::NotFound("tier"))?;
    if tier.status == TierStatus::Archived {
        return Err(archived(key));
    }
    if let Some(levels) = &patch.levels {
        let existing = repo::level_keys(&mut tx, tier.id).await?;
        if let Some(new) = levels
            .iter()
            .find(|l| l.rank.is_none() && !existing.contains(&l.key))
        {
            return Err(Error::invalid(crate::error::FieldError::required(format!(
                "levels[{}].rank",
                levels
                    .iter()
                    .position(|l| l.key == new.key)
                    .unwrap_or_default()
            ))));
        }
        repo::upsert_levels(&mut tx, tier.id, levels)
            .await
            .on_constraint("tier_levels_rank_unique", clash("rank"))?;
    }
    let lifecycle = match &patch.lifecycle {
        Patch::Set(lifecycle) => Some(lifecycle),
        Patch::Null => None,
        Patch::Absent => tier.lifecycle.as_ref().map(|l| &l.0),
    };
    check_min_level(lifecycle, &repo::level_keys(&mut tx, tier.id).await?)?;
    repo::update(&mut tx, tier.id, &patch).await?;
    tx.commit()
        .await
        .map_err(Error::from)
        .on_constraint("tier_levels_rank_unique", clash("rank"))?;
    get(pool, actor, program_id, key).await
}

/// E101: one way; archiving an archived tier is 409 `tier_archived`.
pub async fn archive(pool: &PgPool, actor: &Actor, program_id: Uuid, key: &str) -> Result<Tier> {
    let mut tx = pool.begin().await?;
    let tier = repo::lock(&mut tx, actor.organization_id, program_id, key)
        .await?
        .ok_or(Error::NotFound("tier"))?;
    if tier.status == TierStatus::Archived {
        return Err(archived(key));
    }
    repo::archive(&mut tx, tier.id).await?;
    tx.commit().await?;
    get(pool, actor, program_id, key).await
}
