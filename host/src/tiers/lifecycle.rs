//! The tier lifecycle pass: what moves holders' levels with time rather than with events. Four kinds of work,
//! each in bounded batches, each batch one transaction under its holders' locks, and each rerun finding
//! nothing to do twice:
//! - a level set with `expires_at` is removed once that time has passed;
//! - ACTIVITY_REFRESH: a holder without an event in the program for `duration` plus `grace_days` is downgraded
//!   by the tier's policy, and its timer restarts;
//! - PERIOD_BASED (or no retention) with a CALENDAR_YEAR or FIXED_YEAR period (UTC): at each period end every
//!   member of the program, and every holder of the tier, is reviewed. A holder whose counters no longer
//!   qualify for its level gets a downgrade by the policy, due `status_validity.extend_months` plus
//!   `grace_days` after the period end, and the qualifying counters roll over (to 0, or to what exceeds the
//!   threshold of the level held). A review walks them in id order and keeps its place on the tier, so a crash
//!   resumes it after the last batch that committed; activity processed between the period end and the review
//!   counts toward the period that ended.
//! - pending downgrades fall due; qualifying again for the level before then cancels one (see `holders`).
//!
//! A downgrade never goes below the policy's `min_level`, and a holder whose counters still qualify for its
//! level keeps it. Archived tiers are left as they are, apart from manual expiry. Groups take part in manual
//! expiry only: they have no events of their own to count as activity and are no program's members, so their
//! levels move by qualification, the API and rules.

use super::{
    DowngradeMode, Level, Lifecycle, PeriodType, QualificationPeriod, RetentionMode, Rollover, repo,
};
use crate::holders::state::{self, Origin, TierChange};
use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Holders (or members, for a review) per batch of the background pass.
const BATCH: i64 = 2000;

/// Runs the pass every few seconds until `shutdown`; any number of server processes may run it at once.
pub async fn run_jobs(pool: PgPool, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        match run_once(&pool, Utc::now(), BATCH).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "tier lifecycle pass failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One batch (of up to `batch` holders or members) of each kind of work due at `at`; returns how many it
/// went through (0: none was due).
pub async fn run_once(pool: &PgPool, at: DateTime<Utc>, batch: i64) -> sqlx::Result<usize> {
    let mut done = expire(pool, at, batch).await?;
    let tiers = repo::with_lifecycle(pool).await?;
    let ids: Vec<Uuid> = tiers.iter().map(|t| t.id).collect();
    let mut all_levels = repo::levels_of(pool, &ids).await?;
    for tier in tiers {
        let levels: Vec<Level> = all_levels
            .extract_if(.., |l| l.tier_id == tier.id)
            .collect();
        let lifecycle = &tier.lifecycle.0;
        let policy = Policy::new(lifecycle, &levels);
        let retention = lifecycle.retention.as_ref();
        match (retention.map(|r| r.mode), &lifecycle.qualification_period) {
            (Some(RetentionMode::ActivityRefresh), _) => {
                let Some(duration) = retention
                    .and_then(|r| r.duration.as_deref())
                    .and_then(crate::duration::parse)
                else {
                    continue;
                };
                if policy.mode != DowngradeMode::Hold {
                    let cutoff = at - duration - chrono::Duration::days(policy.grace_days);
                    done += lapse(pool, &tier, &policy, cutoff, at, batch).await?;
                }
            }
            (_, Some(period)) => done += review(pool, &tier, &policy, period, at, batch).await?,
            _ => {}
        }
    }
    done += fall_due(pool, at, batch).await?;
    Ok(done)
}

/// A transaction for one batch. Its statements pick a batch's rows by `= ANY($1)` from tables that grow with
/// the members of a tier; Postgres's generic plan for a prepared statement guesses badly there and read a
/// whole 100,000-member tier per batch (1 s instead of 0.08 s, BENCHMARKS.md), so each gets a custom plan.
async fn begin(pool: &PgPool) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// What a tier's downgrade policy decides.
struct Policy<'a> {
    /// By rank, lowest first.
    levels: &'a [Level],
    mode: DowngradeMode,
    grace_days: i64,
    floor: Option<&'a Level>,
    rollover: Option<(Rollover, &'a [String])>,
    extend_months: u32,
}

impl<'a> Policy<'a> {
    fn new(lifecycle: &'a Lifecycle, levels: &'a [Level]) -> Policy<'a> {
        let downgrade = lifecycle.downgrade_policy.as_ref();
        Policy {
            levels,
            mode: downgrade.map_or(DowngradeMode::DropToQualifying, |d| d.mode),
            grace_days: downgrade.and_then(|d| d.grace_days).map_or(0, i64::from),
            floor: downgrade
                .and_then(|d| d.min_level.as_ref())
                .and_then(|key| levels.iter().find(|l| &l.key == key)),
            rollover: lifecycle
                .counters
                .as_ref()
                .map(|c| (c.rollover, c.qualifying.as_slice())),
            extend_months: lifecycle
                .status_validity
                .as_ref()
                .map_or(0, |v| v.extend_months),
        }
    }

    /// The counters its decisions read.
    fn counter_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .levels
            .iter()
            .filter_map(|l| l.qualification.as_ref())
            .flat_map(|q| q.criteria.iter().map(|c| c.counter.clone()))
            .chain(
                self.rollover
                    .iter()
                    .flat_map(|(_, keys)| keys.iter().cloned()),
            )
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    fn level(&self, id: Uuid) -> Option<&'a Level> {
        self.levels.iter().find(|l| l.id == id)
    }

    /// Where a holder of `current` must go: `None` keeps it (it still qualifies, the policy holds, or it is at
    /// the floor), `Some(None)` is the base.
    fn downgrade(&self, current: &Level, counters: &super::Counters) -> Option<Option<&'a Level>> {
        let qualified = self
            .levels
            .iter()
            .rev()
            .find(|l| l.qualification.as_ref().is_some_and(|q| q.met_by(counters)));
        if qualified.is_some_and(|q| q.rank >= current.rank) {
            return None;
        }
        let target = match self.mode {
            DowngradeMode::Hold => return None,
            DowngradeMode::DropToQualifying => qualified,
            DowngradeMode::DropOne => self.levels.iter().rev().find(|l| l.rank < current.rank),
        };
        match self.floor {
            Some(floor) if current.rank <= floor.rank => None,
            Some(floor) if target.is_none_or(|t| t.rank < floor.rank) => Some(Some(floor)),
            _ => Some(target),
        }
    }

    /// What a qualifying counter starts the next period with.
    fn rolled(
        &self,
        rollover: Rollover,
        key: &str,
        value: Decimal,
        held: Option<&Level>,
    ) -> Decimal {
        match rollover {
            Rollover::Reset => Decimal::ZERO,
            Rollover::Excess => {
                let threshold = held
                    .and_then(|l| l.qualification.as_ref())
                    .map_or(Decimal::ZERO, |q| q.threshold_of(key));
                (value - threshold).max(Decimal::ZERO)
            }
        }
    }
}

/// The first period end after `after`; `None` for a period of type NONE.
fn period_end_after(period: &QualificationPeriod, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let (month, day) = match period.period {
        PeriodType::CalendarYear => (1, 1),
        PeriodType::FixedYear => (
            period.start_month.unwrap_or(1),
            period.start_day.unwrap_or(1),
        ),
        PeriodType::Unbounded => return None,
    };
    [after.year(), after.year() + 1]
        .into_iter()
        .filter_map(|year| Utc.with_ymd_and_hms(year, month, day, 0, 0, 0).single())
        .find(|end| *end > after)
}

/// Each participant's counters among `keys`.
async fn counters(
    conn: &mut PgConnection,
    participants: &[Uuid],
    keys: &[String],
) -> sqlx::Result<HashMap<Uuid, super::Counters>> {
    let mut by_participant: HashMap<Uuid, super::Counters> = HashMap::new();
    for (participant, key, value) in state::counters_of(conn, participants, keys).await? {
        by_participant
            .entry(participant)
            .or_default()
            .insert(key, value);
    }
    Ok(by_participant)
}

/// Levels set with an `expires_at` that has passed go back to the base.
async fn expire(pool: &PgPool, at: DateTime<Utc>, batch: i64) -> sqlx::Result<usize> {
    let mut tx = begin(pool).await?;
    let holders = repo::expired_holders(&mut tx, at, batch).await?;
    if holders.is_empty() {
        return Ok(0);
    }
    crate::participants::lock(&mut tx, &holders).await?;
    crate::groups::lock_many(&mut tx, &holders).await?;
    let removed = repo::remove_expired(&mut tx, &holders, at).await?;
    record(&mut tx, removed).await?;
    tx.commit().await?;
    Ok(holders.len())
}

/// ACTIVITY_REFRESH: holders without activity since `cutoff` are downgraded (at `at`, by [`fall_due`]) or, still
/// qualified, keep their level; either way their timer restarts.
async fn lapse(
    pool: &PgPool,
    tier: &repo::LifecycleTier,
    policy: &Policy<'_>,
    cutoff: DateTime<Utc>,
    at: DateTime<Utc>,
    batch: i64,
) -> sqlx::Result<usize> {
    let mut tx = begin(pool).await?;
    let holders = repo::inactive_holders(&mut tx, tier.id, cutoff, at, batch).await?;
    if holders.is_empty() {
        return Ok(0);
    }
    crate::participants::lock(&mut tx, &holders).await?;
    // Under the locks: an event may have counted since.
    let positions = repo::inactive_positions(&mut tx, tier.id, &holders, cutoff, at).await?;
    let ids: Vec<Uuid> = positions.iter().map(|(holder, _)| *holder).collect();
    let counters = counters(&mut tx, &ids, &policy.counter_keys()).await?;
    let none = super::Counters::new();
    let downgrades: Vec<(Uuid, Option<Uuid>)> = positions
        .iter()
        .filter_map(|(holder, level)| {
            let current = policy.level(*level)?;
            let target = policy.downgrade(current, counters.get(holder).unwrap_or(&none))?;
            Some((*holder, target.map(|l| l.id)))
        })
        .collect();
    repo::restart_timers(&mut tx, tier.id, &ids, at).await?;
    repo::schedule_downgrades(&mut tx, tier.id, &downgrades, at).await?;
    tx.commit().await?;
    Ok(holders.len())
}

/// One batch of the review of the period that ended last, if it has not finished.
async fn review(
    pool: &PgPool,
    tier: &repo::LifecycleTier,
    policy: &Policy<'_>,
    period: &QualificationPeriod,
    at: DateTime<Utc>,
    batch: i64,
) -> sqlx::Result<usize> {
    let mut tx = begin(pool).await?;
    // Another process reviewing this tier has it.
    let Some(progress) = repo::claim_review(&mut tx, tier.id).await? else {
        return Ok(0);
    };
    let Some(end) = period_end_after(period, progress.reviewed_through.unwrap_or(tier.created_at))
    else {
        return Ok(0);
    };
    if end > at {
        return Ok(0);
    }
    // The program's members and the tier's holders (a level set by the API needs no enrollment), in id order.
    let mut members =
        crate::participants::members(&mut tx, tier.program_id, progress.cursor, batch).await?;
    members.extend(repo::holders_after(&mut tx, tier.id, progress.cursor, batch).await?);
    members.sort();
    members.dedup();
    members.truncate(usize::try_from(batch).unwrap_or(usize::MAX));
    crate::participants::lock(&mut tx, &members).await?;
    let held: HashMap<Uuid, Uuid> = repo::levels_held(&mut tx, tier.id, &members, at)
        .await?
        .into_iter()
        .collect();
    let counters = counters(&mut tx, &members, &policy.counter_keys()).await?;
    let none = super::Counters::new();
    let mut downgrades = Vec::new();
    let mut rollovers = Vec::new();
    for member in &members {
        let level = held.get(member).and_then(|id| policy.level(*id));
        let values = counters.get(member).unwrap_or(&none);
        if let Some(target) = level.and_then(|current| policy.downgrade(current, values)) {
            downgrades.push((*member, target.map(|l| l.id)));
        }
        let Some((rollover, keys)) = policy.rollover else {
            continue;
        };
        for key in keys {
            let Some(old) = values.get(key).copied() else {
                continue;
            };
            let new = policy.rolled(rollover, key, old, level);
            if new != old {
                rollovers.push(state::Rollover {
                    holder: *member,
                    key: key.clone(),
                    old,
                    new,
                });
            }
        }
    }
    let due = end
        .checked_add_months(Months::new(policy.extend_months))
        .unwrap_or(end)
        + chrono::Duration::days(policy.grace_days);
    repo::schedule_downgrades(&mut tx, tier.id, &downgrades, due).await?;
    let origin = Origin {
        organization_id: tier.organization_id,
        program_id: Some(tier.program_id),
        ..Origin::default()
    };
    state::roll_over(&mut tx, &origin, &rollovers).await?;
    let finished = members.len() < usize::try_from(batch).unwrap_or(usize::MAX);
    let next = match finished {
        true => repo::ReviewProgress {
            reviewed_through: Some(end),
            cursor: None,
        },
        false => repo::ReviewProgress {
            reviewed_through: progress.reviewed_through,
            cursor: members.last().copied(),
        },
    };
    repo::save_review(&mut tx, tier.id, &next).await?;
    tx.commit().await?;
    Ok(members.len() + usize::from(finished))
}

/// Downgrades whose time has come.
async fn fall_due(pool: &PgPool, at: DateTime<Utc>, batch: i64) -> sqlx::Result<usize> {
    let mut tx = begin(pool).await?;
    let holders = repo::downgrading_holders(&mut tx, at, batch).await?;
    if holders.is_empty() {
        return Ok(0);
    }
    crate::participants::lock(&mut tx, &holders).await?;
    let moved = repo::apply_downgrades(&mut tx, &holders, at).await?;
    record(&mut tx, moved).await?;
    tx.commit().await?;
    Ok(holders.len())
}

/// Records level changes in the state history, one statement per tier.
async fn record(conn: &mut PgConnection, moves: Vec<repo::Moved>) -> sqlx::Result<()> {
    let mut by_tier: BTreeMap<(Uuid, Uuid, String), Vec<TierChange>> = BTreeMap::new();
    for m in moves {
        let holder = m.holder();
        by_tier
            .entry((m.organization_id, m.program_id, m.tier_key))
            .or_default()
            .push(TierChange {
                holder,
                old: Some(m.old_level),
                new: m.new_level,
            });
    }
    for ((organization_id, program_id, key), changes) in by_tier {
        let origin = Origin {
            organization_id,
            program_id: Some(program_id),
            ..Origin::default()
        };
        state::record_tier_changes(conn, &origin, &key, changes).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn period(period: PeriodType, month: Option<u32>, day: Option<u32>) -> QualificationPeriod {
        QualificationPeriod {
            period,
            start_month: month,
            start_day: day,
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("timestamp")
    }

    #[test]
    fn a_period_ends_at_the_next_start_of_its_year() {
        let calendar = period(PeriodType::CalendarYear, None, None);
        assert_eq!(
            period_end_after(&calendar, at("2026-12-07T10:00:00Z")),
            Some(at("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            period_end_after(&calendar, at("2027-01-01T00:00:00Z")),
            Some(at("2028-01-01T00:00:00Z"))
        );
        let fixed = period(PeriodType::FixedYear, Some(2), Some(1));
        assert_eq!(
            period_end_after(&fixed, at("2026-12-07T10:00:00Z")),
            Some(at("2027-02-01T00:00:00Z"))
        );
        assert_eq!(
            period_end_after(&fixed, at("2027-01-15T00:00:00Z")),
            Some(at("2027-02-01T00:00:00Z"))
        );
        assert_eq!(
            period_end_after(
                &period(PeriodType::Unbounded, None, None),
                at("2026-12-07T10:00:00Z")
            ),
            None
        );
    }
}
