//! A holder's state, participant's or group's: tags, attributes, counters and tier changes, changed by rules
//! and by the API alike. Every change is
//! recorded in the state history with what caused it. Callers hold the holder's lock.

use crate::holders::Holder;
use crate::pagination::{Cursor, Page};
use crate::webhooks::{self, Notice, WebhookEventType};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// What caused a change: a rule processing an event, or an API key.
#[derive(Debug, Clone, Copy, Default)]
pub struct Origin {
    pub organization_id: Uuid,
    pub program_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub rule_id: Option<Uuid>,
    pub api_key_id: Option<Uuid>,
}

/// A counter window: the Go duration as written and its length.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub text: String,
    pub millis: i64,
}

impl Window {
    pub fn parse(text: &str) -> Option<Window> {
        let length = crate::duration::parse(text)?;
        Some(Window {
            text: text.to_owned(),
            millis: length.num_milliseconds().max(1),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct Counter {
    #[schema(example = "purchases")]
    pub key: String,
    /// The effective value: 0 once the window has passed, even before the reset is written.
    #[schema(value_type = String, example = "3")]
    pub value: Decimal,
    /// The reset window, a duration such as `720h`.
    pub reset_after: Option<String>,
    pub last_reset_at: Option<DateTime<Utc>>,
}

impl Serialize for Counter {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "key": self.key,
            "value": self.value.normalize().to_string(),
            "reset_after": self.reset_after,
            "last_reset_at": self.last_reset_at,
        })
        .serialize(s)
    }
}

crate::api_enum!(pub StateType = STATE_TYPES ["tag", "counter", "attribute", "tier"]);
crate::api_enum!(pub StateOperation = STATE_OPERATIONS ["set", "delete", "add", "remove", "auto_reset"]);

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = StateChange)]
pub struct HistoryEntry {
    pub id: Uuid,
    #[schema(value_type = StateType)]
    pub state_type: String,
    pub key: String,
    #[schema(value_type = StateOperation)]
    pub operation: String,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    pub program_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub rule_id: Option<Uuid>,
    pub changed_by_api_key_id: Option<Uuid>,
    pub changed_at: DateTime<Utc>,
}

struct Change<'a> {
    state_type: &'static str,
    key: &'a str,
    operation: &'static str,
    old_value: Option<String>,
    new_value: Option<String>,
}

async fn record(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    c: Change<'_>,
) -> sqlx::Result<()> {
    record_many(conn, origin, &[(holder, c)]).await
}

/// Records changes of the same origin in one statement.
async fn record_many(
    conn: &mut PgConnection,
    origin: &Origin,
    changes: &[(Uuid, Change<'_>)],
) -> sqlx::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = changes.iter().map(|_| Uuid::now_v7()).collect();
    let holders: Vec<Uuid> = changes.iter().map(|(p, _)| *p).collect();
    let types: Vec<&str> = changes.iter().map(|(_, c)| c.state_type).collect();
    let keys: Vec<&str> = changes.iter().map(|(_, c)| c.key).collect();
    let operations: Vec<&str> = changes.iter().map(|(_, c)| c.operation).collect();
    let olds: Vec<Option<&str>> = changes
        .iter()
        .map(|(_, c)| c.old_value.as_deref())
        .collect();
    let news: Vec<Option<&str>> = changes
        .iter()
        .map(|(_, c)| c.new_value.as_deref())
        .collect();
    sqlx::query(
        "INSERT INTO state_history (id, organization_id, holder_id, state_type, key, operation, old_value,
                                    new_value, program_id, event_id, rule_id, changed_by_api_key_id)
         SELECT c.id, $8, c.holder_id, c.state_type, c.key, c.operation, c.old_value, c.new_value,
                $9, $10, $11, $12
           FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                AS c (id, holder_id, state_type, key, operation, old_value, new_value)",
    )
    .bind(&ids)
    .bind(&holders)
    .bind(&types)
    .bind(&keys)
    .bind(&operations)
    .bind(&olds)
    .bind(&news)
    .bind(origin.organization_id)
    .bind(origin.program_id)
    .bind(origin.event_id)
    .bind(origin.rule_id)
    .bind(origin.api_key_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds (`present`) or removes a tag, lower-cased; `false` when it already was, or was not, there.
pub async fn set_tag(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    tag: &str,
    present: bool,
) -> sqlx::Result<bool> {
    let tag = tag.to_lowercase();
    let sql = if present {
        "INSERT INTO holder_tags (holder_id, tag) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING tag"
    } else {
        "DELETE FROM holder_tags WHERE holder_id = $1 AND tag = $2 RETURNING tag"
    };
    let changed: Option<String> = sqlx::query_scalar(sql)
        .bind(holder)
        .bind(&tag)
        .fetch_optional(&mut *conn)
        .await?;
    if changed.is_some() {
        let (operation, old_value, new_value) = if present {
            ("add", None, Some(tag.clone()))
        } else {
            ("remove", Some(tag.clone()), None)
        };
        let change = Change {
            state_type: "tag",
            key: &tag,
            operation,
            old_value,
            new_value,
        };
        record(conn, origin, holder, change).await?;
    }
    Ok(changed.is_some())
}

/// Records that the holder's level in the tier `tier_key` went from `old` to `new` (`None`: no level,
/// the base), in the caller's transaction.
pub async fn record_tier_change(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Holder,
    tier_key: &str,
    old: Option<String>,
    new: Option<String>,
) -> sqlx::Result<()> {
    let change = TierChange { holder, old, new };
    record_tier_changes(conn, origin, tier_key, vec![change]).await
}

/// A holder's level in a tier went from `old` to `new` (`None`: the base).
#[derive(Debug, Clone, PartialEq)]
pub struct TierChange {
    pub holder: Holder,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The data of participant.tier_changed (groups' changes too, naming the group).
#[derive(Debug, Serialize)]
struct TierChanged<'a> {
    #[serde(flatten)]
    holder: Holder,
    program_id: Option<Uuid>,
    tier: &'a str,
    /// The level held before; absent: the base.
    previous_level: Option<&'a str>,
    /// The level held now; absent: the base (the level was removed).
    level: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<Uuid>,
}

/// Records changes of one tier's levels, in one statement, and tells webhooks of them.
pub async fn record_tier_changes(
    conn: &mut PgConnection,
    origin: &Origin,
    tier_key: &str,
    changes: Vec<TierChange>,
) -> sqlx::Result<()> {
    let notices: Vec<Notice> = changes
        .iter()
        .map(|c| {
            let changed = TierChanged {
                holder: c.holder,
                program_id: origin.program_id,
                tier: tier_key,
                previous_level: c.old.as_deref(),
                level: c.new.as_deref(),
                event_id: origin.event_id,
            };
            let kind = WebhookEventType::ParticipantTierChanged;
            Notice::new(origin.organization_id, kind, &changed)
        })
        .collect();
    webhooks::emit(conn, &notices).await?;
    let changes: Vec<(Uuid, Change)> = changes
        .into_iter()
        .map(|c| {
            let change = Change {
                state_type: "tier",
                key: tier_key,
                operation: if c.new.is_some() { "set" } else { "remove" },
                old_value: c.old,
                new_value: c.new,
            };
            (c.holder.id(), change)
        })
        .collect();
    record_many(conn, origin, &changes).await
}

pub async fn tags(conn: &mut PgConnection, holder: Uuid) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT tag FROM holder_tags WHERE holder_id = $1 ORDER BY tag")
        .bind(holder)
        .fetch_all(conn)
        .await
}

/// Makes the tag set exactly `wanted` (already normalised), recording each addition and removal.
pub async fn replace_tags(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    wanted: &[String],
) -> sqlx::Result<()> {
    let current = tags(conn, holder).await?;
    for gone in current.iter().filter(|t| !wanted.contains(t)) {
        set_tag(conn, origin, holder, gone, false).await?;
    }
    for new in wanted.iter().filter(|t| !current.contains(t)) {
        set_tag(conn, origin, holder, new, true).await?;
    }
    Ok(())
}

/// Sets an attribute, recording the change when the value differs. Returns the previous value.
pub async fn set_attribute(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    key: &str,
    value: &str,
) -> sqlx::Result<Option<String>> {
    let old: Option<String> =
        sqlx::query_scalar("SELECT value FROM holder_attributes WHERE holder_id = $1 AND key = $2")
            .bind(holder)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
    if old.as_deref() == Some(value) {
        return Ok(old);
    }
    sqlx::query(
        "INSERT INTO holder_attributes (holder_id, key, value) VALUES ($1, $2, $3)
         ON CONFLICT (holder_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
    )
    .bind(holder)
    .bind(key)
    .bind(value)
    .execute(&mut *conn)
    .await?;
    let change = Change {
        state_type: "attribute",
        key,
        operation: "set",
        old_value: old.clone(),
        new_value: Some(value.into()),
    };
    record(conn, origin, holder, change).await?;
    Ok(old)
}

/// Removes an attribute; `false` when it was not there.
pub async fn remove_attribute(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    key: &str,
) -> sqlx::Result<bool> {
    let old: Option<String> = sqlx::query_scalar(
        "DELETE FROM holder_attributes WHERE holder_id = $1 AND key = $2 RETURNING value",
    )
    .bind(holder)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let removed = old.is_some();
    if removed {
        let change = Change {
            state_type: "attribute",
            key,
            operation: "delete",
            old_value: old,
            new_value: None,
        };
        record(conn, origin, holder, change).await?;
    }
    Ok(removed)
}

pub async fn attributes(
    conn: &mut PgConnection,
    holder: Uuid,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as("SELECT key, value FROM holder_attributes WHERE holder_id = $1 ORDER BY key")
        .bind(holder)
        .fetch_all(conn)
        .await
}

/// A holder's tags, attributes and effective counters as three columns (`tags`, `attributes`, `counters`,
/// the last two JSON objects), for a query that selects holders with `holder_id` as their id: how rules read
/// a holder's state in the same statement that finds or locks it.
pub fn state_columns(holder_id: &str) -> String {
    format!(
        "ARRAY(SELECT tag FROM holder_tags WHERE holder_id = {holder_id} ORDER BY tag) AS tags,
         (SELECT COALESCE(jsonb_object_agg(key, value), '{{}}') FROM holder_attributes
           WHERE holder_id = {holder_id}) AS attributes,
         (SELECT COALESCE(jsonb_object_agg(c.key, CASE WHEN c.reset_after_ms IS NOT NULL
                 AND c.last_reset_at + c.reset_after_ms * interval '1 millisecond' <= now()
                 THEN 0 ELSE c.value END), '{{}}')
            FROM holder_counters c WHERE c.holder_id = {holder_id}) AS counters"
    )
}

const COUNTER_COLUMNS: &str = "key,
    CASE WHEN reset_after_ms IS NOT NULL AND last_reset_at + reset_after_ms * interval '1 millisecond' <= now()
         THEN 0 ELSE value END AS value,
    reset_after, last_reset_at";

pub async fn counters(conn: &mut PgConnection, holder: Uuid) -> sqlx::Result<Vec<Counter>> {
    sqlx::query_as(&format!(
        "SELECT {COUNTER_COLUMNS} FROM holder_counters WHERE holder_id = $1 ORDER BY key"
    ))
    .bind(holder)
    .fetch_all(conn)
    .await
}

pub async fn counter(
    conn: &mut PgConnection,
    holder: Uuid,
    key: &str,
) -> sqlx::Result<Option<Counter>> {
    sqlx::query_as(&format!(
        "SELECT {COUNTER_COLUMNS} FROM holder_counters WHERE holder_id = $1 AND key = $2"
    ))
    .bind(holder)
    .bind(key)
    .fetch_optional(conn)
    .await
}

/// How a write treats the counter's window.
pub enum WindowChange {
    Keep,
    Clear,
    Set(Window),
}

/// Adds `delta` (the COUNTER action), creating the counter at 0. A counter whose window has passed is reset
/// first, and the reset is recorded as `auto_reset`. Returns the old and new effective values, or, writing
/// nothing, why the new value would not be an amount.
pub async fn increment_counter(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    key: &str,
    delta: Decimal,
    window: WindowChange,
) -> sqlx::Result<Result<(Decimal, Decimal), crate::money::Invalid>> {
    let stored = stored_counter(conn, holder, key).await?;
    let old = stored.as_ref().map_or(Decimal::ZERO, |c| c.value);
    let new = match old.checked_add(delta).map(crate::money::bounded) {
        Some(Ok(new)) => new,
        Some(Err(invalid)) => return Ok(Err(invalid)),
        None => return Ok(Err(crate::money::Invalid::TooLarge)),
    };
    write_counter(conn, origin, holder, key, new, window, stored).await?;
    Ok(Ok((old, new)))
}

/// Sets the counter to `value` (the API's absolute set), restarting its window.
pub async fn set_counter(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    key: &str,
    value: Decimal,
    window: WindowChange,
) -> sqlx::Result<Counter> {
    let stored = stored_counter(conn, holder, key).await?;
    write_counter(
        conn,
        origin,
        holder,
        key,
        value,
        window,
        stored.map(|c| Stored { restart: true, ..c }),
    )
    .await?;
    counter(conn, holder, key)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

pub async fn delete_counter(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    key: &str,
) -> sqlx::Result<bool> {
    let old: Option<Decimal> = sqlx::query_scalar(
        "DELETE FROM holder_counters WHERE holder_id = $1 AND key = $2 RETURNING value",
    )
    .bind(holder)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let removed = old.is_some();
    if removed {
        let change = Change {
            state_type: "counter",
            key,
            operation: "delete",
            old_value: old.map(text),
            new_value: None,
        };
        record(conn, origin, holder, change).await?;
    }
    Ok(removed)
}

/// The effective values of these holders' counters of these keys.
pub async fn counters_of(
    conn: &mut PgConnection,
    holders: &[Uuid],
    keys: &[String],
) -> sqlx::Result<Vec<(Uuid, String, Decimal)>> {
    sqlx::query_as(&format!(
        "SELECT holder_id, key, value FROM (SELECT holder_id, {COUNTER_COLUMNS} FROM holder_counters
          WHERE holder_id = ANY($1) AND key = ANY($2)) c"
    ))
    .bind(holders)
    .bind(keys)
    .fetch_all(conn)
    .await
}

/// A counter's value at a period's end, and what it starts the next period with.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollover {
    pub holder: Uuid,
    pub key: String,
    pub old: Decimal,
    pub new: Decimal,
}

/// Sets counters to their next period's values (keeping their windows), recorded as `auto_reset`: one
/// statement for the values and one for the history.
pub async fn roll_over(
    conn: &mut PgConnection,
    origin: &Origin,
    rollovers: &[Rollover],
) -> sqlx::Result<()> {
    if rollovers.is_empty() {
        return Ok(());
    }
    let holders: Vec<Uuid> = rollovers.iter().map(|r| r.holder).collect();
    let keys: Vec<&str> = rollovers.iter().map(|r| r.key.as_str()).collect();
    let values: Vec<Decimal> = rollovers.iter().map(|r| r.new).collect();
    sqlx::query(
        "UPDATE holder_counters c SET value = r.value, updated_at = now()
           FROM unnest($1::uuid[], $2::text[], $3::numeric[]) AS r (holder_id, key, value)
          WHERE c.holder_id = r.holder_id AND c.key = r.key",
    )
    .bind(&holders)
    .bind(&keys)
    .bind(&values)
    .execute(&mut *conn)
    .await?;
    let changes: Vec<(Uuid, Change)> = rollovers
        .iter()
        .map(|r| {
            let change = Change {
                state_type: "counter",
                key: &r.key,
                operation: "auto_reset",
                old_value: Some(text(r.old)),
                new_value: Some(text(r.new)),
            };
            (r.holder, change)
        })
        .collect();
    record_many(conn, origin, &changes).await
}

struct Stored {
    /// The effective value (0 after an auto-reset).
    value: Decimal,
    expired: bool,
    /// Whether the write restarts the window (a reset, or an explicit set).
    restart: bool,
}

/// The counter as stored, with its window applied: a passed window is reset here and recorded.
async fn stored_counter(
    conn: &mut PgConnection,
    holder: Uuid,
    key: &str,
) -> sqlx::Result<Option<Stored>> {
    let row: Option<(Decimal, bool)> = sqlx::query_as(
        "SELECT value, (reset_after_ms IS NOT NULL
                        AND last_reset_at + reset_after_ms * interval '1 millisecond' <= now()) AS expired
           FROM holder_counters WHERE holder_id = $1 AND key = $2",
    )
    .bind(holder)
    .bind(key)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(value, expired)| Stored {
        value: if expired { Decimal::ZERO } else { value },
        expired,
        restart: expired,
    }))
}

async fn write_counter(
    conn: &mut PgConnection,
    origin: &Origin,
    holder: Uuid,
    key: &str,
    value: Decimal,
    window: WindowChange,
    stored: Option<Stored>,
) -> sqlx::Result<()> {
    if let Some(s) = stored.as_ref().filter(|s| s.expired) {
        let old: Decimal = sqlx::query_scalar(
            "SELECT value FROM holder_counters WHERE holder_id = $1 AND key = $2",
        )
        .bind(holder)
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
        let change = Change {
            state_type: "counter",
            key,
            operation: "auto_reset",
            old_value: Some(text(old)),
            new_value: Some(text(s.value)),
        };
        record(conn, origin, holder, change).await?;
    }
    let (set_window, window_text, window_ms) = match window {
        WindowChange::Keep => (false, None, None),
        WindowChange::Clear => (true, None, None),
        WindowChange::Set(w) => (true, Some(w.text), Some(w.millis)),
    };
    let restart = stored.as_ref().is_none_or(|s| s.restart);
    sqlx::query(
        "INSERT INTO holder_counters (holder_id, key, value, reset_after, reset_after_ms, last_reset_at)
         VALUES ($1, $2, $3, $5, $6, now())
         ON CONFLICT (holder_id, key) DO UPDATE SET
             value = EXCLUDED.value,
             reset_after = CASE WHEN $4 THEN EXCLUDED.reset_after ELSE holder_counters.reset_after END,
             reset_after_ms = CASE WHEN $4 THEN EXCLUDED.reset_after_ms ELSE holder_counters.reset_after_ms END,
             last_reset_at = CASE WHEN $7 THEN now() ELSE holder_counters.last_reset_at END,
             updated_at = now()",
    )
    .bind(holder)
    .bind(key)
    .bind(value)
    .bind(set_window)
    .bind(window_text)
    .bind(window_ms)
    .bind(restart)
    .execute(&mut *conn)
    .await?;
    let old = stored.map(|s| text(s.value));
    let change = Change {
        state_type: "counter",
        key,
        operation: "set",
        old_value: old,
        new_value: Some(text(value)),
    };
    record(conn, origin, holder, change).await
}

fn text(value: Decimal) -> String {
    value.normalize().to_string()
}

/// Which state changes E47 lists; pages hold at most 100.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryFilter {
    #[param(value_type = Option<StateType>, inline)]
    pub state_type: Option<&'static str>,
    #[param(min_length = 1, max_length = 255)]
    pub key: Option<String>,
    #[param(value_type = Option<StateOperation>, inline)]
    pub operation: Option<&'static str>,
    pub program_id: Option<Uuid>,
    /// Changed at or after.
    pub from: Option<DateTime<Utc>>,
    /// Changed at or before.
    pub to: Option<DateTime<Utc>>,
    /// The originating event happened at or after; a change made by an API call happened when it was made.
    pub event_from: Option<DateTime<Utc>>,
    /// The originating event happened at or before.
    pub event_to: Option<DateTime<Utc>>,
    /// State history pages hold at most 100 rows.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: i64,
    #[param(value_type = Option<String>, min_length = 1, max_length = 1000)]
    pub cursor: Option<Cursor>,
}

/// E47, newest first.
pub async fn history(
    pool: &PgPool,
    holder: Uuid,
    f: &HistoryFilter,
) -> sqlx::Result<Page<HistoryEntry>> {
    let (after_key, after_id) = f
        .cursor
        .as_ref()
        .map_or((None, None), |c| (Some(c.key.clone()), Some(c.id)));
    let rows: Vec<HistoryEntry> = sqlx::query_as(
        "SELECT h.id, h.state_type, h.key, h.operation, h.old_value, h.new_value, h.program_id, h.event_id,
                h.rule_id, h.changed_by_api_key_id, h.changed_at
           FROM state_history h LEFT JOIN events e ON e.id = h.event_id
          WHERE h.holder_id = $1
            AND ($2::text IS NULL OR h.state_type = $2) AND ($3::text IS NULL OR h.key = $3)
            AND ($4::text IS NULL OR h.operation = $4) AND ($5::uuid IS NULL OR h.program_id = $5)
            AND ($6::timestamptz IS NULL OR h.changed_at >= $6) AND ($7::timestamptz IS NULL OR h.changed_at <= $7)
            AND ($10::timestamptz IS NULL OR COALESCE(e.event_timestamp, h.changed_at) >= $10)
            AND ($11::timestamptz IS NULL OR COALESCE(e.event_timestamp, h.changed_at) <= $11)
            AND ($8::text IS NULL OR (h.changed_at, h.id) < ($8::timestamptz, $9::uuid))
          ORDER BY h.changed_at DESC, h.id DESC
          LIMIT $12 + 1",
    )
    .bind(holder)
    .bind(f.state_type)
    .bind(&f.key)
    .bind(f.operation)
    .bind(f.program_id)
    .bind(f.from)
    .bind(f.to)
    .bind(after_key)
    .bind(after_id)
    .bind(f.event_from)
    .bind(f.event_to)
    .bind(f.limit)
    .fetch_all(pool)
    .await?;
    Ok(Page::from_rows(rows, f.limit, |h| {
        Cursor::at(h.changed_at, h.id)
    }))
}

/// State changes an event's rules made, oldest first (for E87).
pub async fn changes_of_event(
    pool: &PgPool,
    organization_id: Uuid,
    event_id: Uuid,
) -> sqlx::Result<Vec<HistoryEntry>> {
    sqlx::query_as(
        "SELECT id, state_type, key, operation, old_value, new_value, program_id, event_id, rule_id,
                changed_by_api_key_id, changed_at
           FROM state_history WHERE event_id = $1 AND organization_id = $2 ORDER BY changed_at, id",
    )
    .bind(event_id)
    .bind(organization_id)
    .fetch_all(pool)
    .await
}

/// A recorded state change. Its id is also where it sorts among events' `state_as_of` (see
/// `events::PastEvent::state_as_of`): a change is written as it is made, never deferred, so it sorts after the
/// point its event began at and before the next one.
#[derive(Debug, sqlx::FromRow)]
pub struct PastChange {
    pub holder_id: Uuid,
    pub position: Uuid,
    state_type: String,
    key: String,
    operation: String,
    new_value: Option<String>,
    program_id: Option<Uuid>,
    changed_at: DateTime<Utc>,
}

/// Each holder's changes from its `from` (inclusive) to its bound, by holder and then in the order made.
/// A change's `changed_at` is when its transaction began, before its id was made: allowing an hour for the
/// database's clock and the servers' to differ, none made before the bound has a later `changed_at` than an
/// hour past it, and the index on (holder, changed_at) skips what came after.
pub async fn changes_between(
    conn: &mut PgConnection,
    holders: &[Uuid],
    froms: &[Uuid],
    bounds: &[Uuid],
) -> sqlx::Result<Vec<PastChange>> {
    sqlx::query_as(
        "SELECT h.holder_id, h.id AS position, h.state_type, h.key, h.operation, h.new_value, h.program_id,
                h.changed_at
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[]) AS w (holder_id, from_id, bound, until)
           JOIN state_history h ON h.holder_id = w.holder_id AND h.changed_at <= w.until
          WHERE h.id >= w.from_id AND h.id < w.bound
          ORDER BY h.holder_id, h.id",
    )
    .bind(holders)
    .bind(froms)
    .bind(bounds)
    .bind(
        bounds
            .iter()
            .map(|b| crate::ids::time_of(*b) + chrono::Duration::hours(1))
            .collect::<Vec<_>>(),
    )
    .fetch_all(conn)
    .await
}

/// A holder's state rebuilt from its history, change by change, in the shapes rules read it in.
#[derive(Debug, Clone, Default)]
pub struct Rebuilt {
    pub tags: std::collections::BTreeSet<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    /// Numbers, as the state's own query gives them.
    pub counters: serde_json::Map<String, serde_json::Value>,
    /// Levels held, by (program, tier key): the level's key and when it was set.
    pub levels: std::collections::BTreeMap<(Option<Uuid>, String), (String, DateTime<Utc>)>,
}

impl Rebuilt {
    /// The state after `change`.
    pub fn apply(&mut self, change: &PastChange) {
        let key = change.key.clone();
        let value = change.new_value.clone();
        match (change.state_type.as_str(), change.operation.as_str(), value) {
            ("tag", "add", _) => {
                self.tags.insert(key);
            }
            ("tag", _, _) => {
                self.tags.remove(&key);
            }
            ("attribute", "set", Some(value)) => {
                self.attributes
                    .insert(key, serde_json::Value::String(value));
            }
            ("attribute", _, _) => {
                self.attributes.remove(&key);
            }
            ("counter", "delete", _) | ("counter", _, None) => {
                self.counters.remove(&key);
            }
            ("counter", _, Some(value)) => {
                let number = serde_json::from_str::<serde_json::Number>(&value)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number);
                self.counters.insert(key, number);
            }
            ("tier", "set", Some(level)) => {
                self.levels
                    .insert((change.program_id, key), (level, change.changed_at));
            }
            ("tier", _, _) => {
                self.levels.remove(&(change.program_id, key));
            }
            _ => {}
        }
    }
}
