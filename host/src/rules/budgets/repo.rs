use super::{Budget, BudgetSpec, SLOTS, Schedule, split};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

const SELECT: &str =
    "SELECT b.rule_id, b.asset_id, b.\"limit\", b.schedule_type, b.cron_expression, b.interval,
        b.next_reset_at,
        (SELECT COALESCE(sum(s.remaining), 0) FROM budget_slots s
          WHERE s.rule_id = b.rule_id AND s.asset_id = b.asset_id) AS remaining,
        COALESCE(b.next_reset_at <= now(), false) AS due,
        a.scale
   FROM rule_budgets b JOIN assets a ON a.id = b.asset_id";

pub async fn of_rules(conn: &mut PgConnection, rule_ids: &[Uuid]) -> sqlx::Result<Vec<Budget>> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE b.rule_id = ANY($1) ORDER BY b.rule_id, b.created_at, b.asset_id"
    ))
    .bind(rule_ids)
    .fetch_all(conn)
    .await
}

async fn find(
    conn: &mut PgConnection,
    rule_id: Uuid,
    asset_id: Uuid,
) -> sqlx::Result<Option<Budget>> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE b.rule_id = $1 AND b.asset_id = $2"
    ))
    .bind(rule_id)
    .bind(asset_id)
    .fetch_optional(conn)
    .await
}

pub async fn replace(
    conn: &mut PgConnection,
    organization_id: Uuid,
    rule_id: Uuid,
    specs: &[(BudgetSpec, i16)],
) -> sqlx::Result<()> {
    let consumed: HashMap<Uuid, Decimal> = of_rules(conn, &[rule_id])
        .await?
        .into_iter()
        .map(|b| (b.asset_id, b.consumed()))
        .collect();
    sqlx::query("DELETE FROM rule_budgets WHERE rule_id = $1")
        .bind(rule_id)
        .execute(&mut *conn)
        .await?;
    let now = Utc::now();
    for (spec, scale) in specs {
        let (schedule_type, cron, interval, interval_ms) = match &spec.schedule {
            Schedule::Lifetime => (None, None, None, None),
            Schedule::Interval { text, millis } => {
                (Some("INTERVAL"), None, Some(text.clone()), Some(*millis))
            }
            Schedule::Cron(expression) => (Some("CRON"), Some(expression.clone()), None, None),
        };
        sqlx::query(
            "INSERT INTO rule_budgets (rule_id, asset_id, organization_id, \"limit\", schedule_type, cron_expression,
                                       interval, interval_ms, next_reset_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(rule_id)
        .bind(spec.asset_id)
        .bind(organization_id)
        .bind(spec.limit)
        .bind(schedule_type)
        .bind(cron)
        .bind(interval)
        .bind(interval_ms)
        .bind(spec.schedule.next_after(now, now))
        .execute(&mut *conn)
        .await?;
        let carried = consumed.get(&spec.asset_id).copied().unwrap_or_default();
        fill(
            conn,
            rule_id,
            spec.asset_id,
            (spec.limit - carried).max(Decimal::ZERO),
            *scale,
        )
        .await?;
    }
    Ok(())
}

async fn fill(
    conn: &mut PgConnection,
    rule_id: Uuid,
    asset_id: Uuid,
    total: Decimal,
    scale: i16,
) -> sqlx::Result<()> {
    let amounts = split(total, scale);
    let slots: Vec<i16> = (0..SLOTS).collect();
    sqlx::query(
        "INSERT INTO budget_slots (rule_id, asset_id, slot, remaining)
         SELECT $1, $2, slot, remaining FROM unnest($3::smallint[], $4::numeric[]) AS t(slot, remaining)
         ON CONFLICT (rule_id, asset_id, slot) DO UPDATE SET remaining = EXCLUDED.remaining",
    )
    .bind(rule_id)
    .bind(asset_id)
    .bind(&slots)
    .bind(&amounts)
    .execute(conn)
    .await?;
    Ok(())
}

/// Refills the budget to its limit and moves `next_reset_at` past now: always (`force`, E94), or only when
/// its period has ended (a lazy roll-over). Takes the budget row's lock, so concurrent roll-overs happen once.
pub async fn refill(
    conn: &mut PgConnection,
    rule_id: Uuid,
    asset_id: Uuid,
    force: bool,
) -> sqlx::Result<()> {
    type Locked = (
        Decimal,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<DateTime<Utc>>,
        bool,
        i16,
    );
    let locked: Option<Locked> = sqlx::query_as(
        "SELECT b.\"limit\", b.cron_expression, b.interval, b.interval_ms, b.next_reset_at,
                COALESCE(b.next_reset_at <= now(), false), a.scale
           FROM rule_budgets b JOIN assets a ON a.id = b.asset_id
          WHERE b.rule_id = $1 AND b.asset_id = $2
            FOR UPDATE OF b",
    )
    .bind(rule_id)
    .bind(asset_id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((limit, cron, interval, interval_ms, period_end, due, scale)) = locked else {
        return Ok(());
    };
    if !force && !due {
        return Ok(());
    }
    let schedule = match (cron, interval, interval_ms) {
        (Some(expression), _, _) => Schedule::Cron(expression),
        (None, Some(text), Some(millis)) => Schedule::Interval { text, millis },
        _ => Schedule::Lifetime,
    };
    let now = Utc::now();
    // Periods stay aligned to the original ones: count from the period that just ended.
    let next = schedule.next_after(period_end.unwrap_or(now).min(now), now);
    sqlx::query("UPDATE rule_budgets SET next_reset_at = $3 WHERE rule_id = $1 AND asset_id = $2")
        .bind(rule_id)
        .bind(asset_id)
        .bind(next)
        .execute(&mut *conn)
        .await?;
    fill(conn, rule_id, asset_id, limit, scale).await
}

pub async fn reset(
    conn: &mut PgConnection,
    rule_id: Uuid,
    asset_id: Uuid,
) -> sqlx::Result<Option<Budget>> {
    refill(conn, rule_id, asset_id, true).await?;
    find(conn, rule_id, asset_id).await
}

pub async fn draw(
    conn: &mut PgConnection,
    rule_id: Uuid,
    asset_id: Uuid,
    amount: Decimal,
    slot: i16,
) -> sqlx::Result<bool> {
    let due: Option<bool> = sqlx::query_scalar(
        "SELECT COALESCE(next_reset_at <= now(), false) FROM rule_budgets WHERE rule_id = $1 AND asset_id = $2",
    )
    .bind(rule_id)
    .bind(asset_id)
    .fetch_optional(&mut *conn)
    .await?;
    match due {
        None => return Ok(true),
        Some(true) => refill(conn, rule_id, asset_id, false).await?,
        Some(false) => {}
    }
    // The common case: this batch's slot covers the amount.
    let drawn = sqlx::query(
        "UPDATE budget_slots SET remaining = remaining - $4
          WHERE rule_id = $1 AND asset_id = $2 AND slot = $3 AND remaining >= $4",
    )
    .bind(rule_id)
    .bind(asset_id)
    .bind(slot.rem_euclid(SLOTS))
    .bind(amount)
    .execute(&mut *conn)
    .await?;
    if drawn.rows_affected() == 1 {
        return Ok(true);
    }
    // Otherwise gather: first from the slots no other transaction holds, without waiting; only when those
    // cannot cover the amount, wait for the rest, locking in slot order.
    for wait in [false, true] {
        let lock = if wait {
            "FOR UPDATE"
        } else {
            "FOR UPDATE SKIP LOCKED"
        };
        let slots: Vec<(i16, Decimal)> = sqlx::query_as(&format!(
            "SELECT slot, remaining FROM budget_slots WHERE rule_id = $1 AND asset_id = $2 ORDER BY slot {lock}"
        ))
        .bind(rule_id)
        .bind(asset_id)
        .fetch_all(&mut *conn)
        .await?;
        if slots.iter().map(|(_, r)| *r).sum::<Decimal>() >= amount {
            take(conn, rule_id, asset_id, slots, amount).await?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Takes `amount` from `slots` (locked by the caller), first slots first.
async fn take(
    conn: &mut PgConnection,
    rule_id: Uuid,
    asset_id: Uuid,
    slots: Vec<(i16, Decimal)>,
    amount: Decimal,
) -> sqlx::Result<()> {
    let mut left = amount;
    let (mut ids, mut remaining) = (Vec::new(), Vec::new());
    for (slot, available) in slots {
        let take = available.min(left);
        if take > Decimal::ZERO {
            ids.push(slot);
            remaining.push(available - take);
            left -= take;
        }
    }
    sqlx::query(
        "UPDATE budget_slots s SET remaining = t.remaining
           FROM unnest($3::smallint[], $4::numeric[]) AS t(slot, remaining)
          WHERE s.rule_id = $1 AND s.asset_id = $2 AND s.slot = t.slot",
    )
    .bind(rule_id)
    .bind(asset_id)
    .bind(&ids)
    .bind(&remaining)
    .execute(conn)
    .await?;
    Ok(())
}
