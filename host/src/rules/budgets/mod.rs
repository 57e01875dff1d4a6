//! Rule budgets: a cap on what one rule may credit of one asset, for its lifetime or per period (INTERVAL or
//! CRON, in UTC). The allowance is split over `SLOTS` rows so that concurrent workers draw from different
//! rows (see the migration); a draw never takes a slot below zero, so the budget is never overspent. A credit
//! the budget cannot cover in full is suppressed, not clipped. Periods roll over lazily, on the first draw or
//! read after `next_reset_at`. When a batch's own slot runs dry it gathers from slots no one else holds; only
//! when the budget is nearly spent does it wait for slots other batches hold, where two batches can deadlock:
//! Postgres then aborts one and its batch is retried, so the cost is latency, never a wrong answer.

mod repo;

use crate::money;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;
use std::str::FromStr;
use uuid::Uuid;

pub const SLOTS: i16 = 16;

#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Lifetime,
    Interval { text: String, millis: i64 },
    Cron(String),
}

impl Schedule {
    /// The first period end after `now`, counting periods from `start`; `None` for a lifetime budget.
    pub fn next_after(&self, start: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Lifetime => None,
            Schedule::Interval { millis, .. } => {
                let elapsed = (now - start).num_milliseconds().max(0);
                let periods = elapsed / millis + 1;
                Some(start + chrono::Duration::milliseconds(periods.saturating_mul(*millis)))
            }
            Schedule::Cron(expression) => croner::Cron::from_str(expression)
                .ok()?
                .find_next_occurrence(&now, false)
                .ok(),
        }
    }

    /// Checks a cron expression as budgets accept it: five or six fields, UTC only.
    pub fn cron(expression: &str) -> Result<Schedule, String> {
        if expression.contains("TZ=") {
            return Err(
                "cron expressions are evaluated in UTC and may not set CRON_TZ or TZ".into(),
            );
        }
        let cron = croner::Cron::from_str(expression)
            .map_err(|e| format!("invalid cron expression: {e}"))?;
        // A date that never comes (`0 0 30 2 *`) would leave the budget without a period end.
        if cron.find_next_occurrence(&Utc::now(), false).is_err() {
            return Err(format!(
                "cron expression {expression} never matches a date: the budget would never reset"
            ));
        }
        Ok(Schedule::Cron(expression.to_owned()))
    }
}

/// A budget as requested.
#[derive(Debug, Clone)]
pub struct BudgetSpec {
    pub asset_id: Uuid,
    pub limit: Decimal,
    pub schedule: Schedule,
}

/// A budget as stored, with what remains of it in the current period.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Budget {
    pub rule_id: Uuid,
    pub asset_id: Uuid,
    pub limit: Decimal,
    pub schedule_type: Option<String>,
    pub cron_expression: Option<String>,
    pub interval: Option<String>,
    pub next_reset_at: Option<DateTime<Utc>>,
    pub remaining: Decimal,
    /// The period has ended and the roll-over is not written yet: nothing is consumed.
    pub due: bool,
    pub scale: i16,
}

impl Budget {
    pub fn consumed(&self) -> Decimal {
        if self.due {
            Decimal::ZERO
        } else {
            (self.limit - self.remaining).max(Decimal::ZERO)
        }
    }
}

/// A budget as the API shows it: amounts at the asset's scale.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Budget)]
pub struct BudgetView {
    pub asset_id: Uuid,
    pub limit: String,
    /// Issued in the current period.
    pub consumed: String,
    pub schedule_type: Option<String>,
    pub cron_expression: Option<String>,
    pub interval: Option<String>,
    pub next_reset_at: Option<DateTime<Utc>>,
}

impl Budget {
    pub fn view(&self) -> BudgetView {
        BudgetView {
            asset_id: self.asset_id,
            limit: money::format(self.limit, self.scale),
            consumed: money::format(self.consumed(), self.scale),
            schedule_type: self.schedule_type.clone(),
            cron_expression: self.cron_expression.clone(),
            interval: self.interval.clone(),
            next_reset_at: self.next_reset_at,
        }
    }
}

impl Serialize for Budget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.view().serialize(s)
    }
}

/// Splits `total` over the slots in whole units of the asset's scale, so every slot stays within scale.
fn split(total: Decimal, scale: i16) -> Vec<Decimal> {
    let unit = Decimal::new(1, u32::try_from(scale).unwrap_or(0));
    let units = (total / unit).trunc();
    let slots = Decimal::from(SLOTS);
    let base = (units / slots).trunc();
    let extra = units - base * slots;
    (0..SLOTS)
        .map(|slot| {
            (base
                + if Decimal::from(slot) < extra {
                    Decimal::ONE
                } else {
                    Decimal::ZERO
                })
                * unit
        })
        .collect()
}

/// Takes `amount` from the rule's budget for the asset. `true` when drawn, or when there is no budget;
/// `false` when what remains cannot cover it.
pub async fn draw(
    conn: &mut PgConnection,
    rule_id: Uuid,
    asset_id: Uuid,
    amount: Decimal,
    slot: i16,
) -> sqlx::Result<bool> {
    repo::draw(conn, rule_id, asset_id, amount, slot).await
}

/// The budgets of these rules, ordered by rule, with what remains of each in its period.
pub async fn of_rules(conn: &mut PgConnection, rule_ids: &[Uuid]) -> sqlx::Result<Vec<Budget>> {
    repo::of_rules(conn, rule_ids).await
}

/// Replaces a rule's budgets. An asset that stays budgeted keeps what its current period consumed.
pub async fn replace(
    conn: &mut PgConnection,
    organization_id: Uuid,
    rule_id: Uuid,
    specs: &[(BudgetSpec, i16)],
) -> sqlx::Result<()> {
    repo::replace(conn, organization_id, rule_id, specs).await
}

/// E94: refills the budget now; `None` when the rule has no budget for the asset.
pub async fn reset(
    conn: &mut PgConnection,
    rule_id: Uuid,
    asset_id: Uuid,
) -> sqlx::Result<Option<Budget>> {
    repo::reset(conn, rule_id, asset_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_the_total_and_the_scale() {
        let slots = split(Decimal::new(10001, 2), 2);
        assert_eq!(slots.len(), 16);
        assert_eq!(slots.iter().sum::<Decimal>(), Decimal::new(10001, 2));
        assert!(slots.iter().all(|s| s.scale() <= 2));
        assert_eq!(
            split(Decimal::from(5), 0)
                .iter()
                .filter(|s| !s.is_zero())
                .count(),
            5
        );
    }

    #[test]
    fn a_cron_date_that_never_comes_is_refused() {
        assert!(Schedule::cron("0 0 30 2 *").is_err());
        assert!(Schedule::cron("0 0 29 2 *").is_ok());
    }

    #[test]
    fn periods_advance_past_now() {
        let start = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .map(|t| t.to_utc())
            .unwrap_or_default();
        let now = start + chrono::Duration::hours(25);
        let daily = Schedule::Interval {
            text: "24h".into(),
            millis: 86_400_000,
        };
        assert_eq!(
            daily.next_after(start, now),
            Some(start + chrono::Duration::hours(48))
        );
        let monthly = Schedule::cron("0 0 1 * *").unwrap_or(Schedule::Lifetime);
        assert_eq!(
            monthly.next_after(start, now).map(|t| t.to_rfc3339()),
            Some("2024-02-01T00:00:00+00:00".into())
        );
        assert!(Schedule::cron("CRON_TZ=Europe/Paris 0 0 * * *").is_err());
        assert!(Schedule::cron("not a cron").is_err());
        assert_eq!(Schedule::Lifetime.next_after(start, now), None);
    }
}
