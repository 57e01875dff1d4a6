//! Participants: the end users who earn and spend, keyed by the client's `external_id`. Anything that changes
//! a participant's balances or state first locks the participant's row, so their balance rows are only ever
//! updated by one transaction at a time; several participants are locked in id order.

mod repo;
pub mod state;

use crate::error::{Error, FieldError, Result};
use crate::money;
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use repo::{enroll, find_by_external_id, insert_if_absent, lock, lock_state};

pub const STATUSES: &[&str] = &["ACTIVE", "SUSPENDED", "CLOSED"];

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Participant {
    pub id: Uuid,
    pub external_id: String,
    pub status: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What rules see of a participant (`participant.*` in CEL), read under the participant's lock. Counters are
/// numbers here, with windows applied.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct State {
    pub id: Uuid,
    pub external_id: String,
    pub status: String,
    pub tags: Vec<String>,
    pub attributes: sqlx::types::Json<Map<String, Value>>,
    pub counters: sqlx::types::Json<Map<String, Value>>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct BalanceRow {
    pub asset_id: Uuid,
    pub scale: i16,
    pub available: Decimal,
    pub held: Decimal,
    pub deferred: Decimal,
}

impl Serialize for BalanceRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "asset_id": self.asset_id,
            "available": money::format(self.available, self.scale),
            "held": money::format(self.held, self.scale),
            "deferred": money::format(self.deferred, self.scale),
        })
        .serialize(s)
    }
}

/// The detail view: profile, inline state, balances and enrolled programs.
#[derive(Debug, Serialize)]
pub struct Detail {
    #[serde(flatten)]
    pub participant: Participant,
    pub attributes: Map<String, Value>,
    pub tags: Vec<String>,
    pub counters: Map<String, Value>,
    pub balances: Vec<BalanceRow>,
    pub tiers: Map<String, Value>,
    pub program_ids: Vec<Uuid>,
}

#[derive(Default)]
pub struct Profile {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
}

pub struct Upsert {
    pub external_id: String,
    pub program_id: Option<Uuid>,
    pub status: Option<&'static str>,
    pub profile: Profile,
    pub attributes: Vec<(String, String)>,
    pub tags: Option<Vec<String>>,
}

#[derive(Default)]
pub struct ParticipantFilter {
    pub external_id: Option<String>,
    pub program_id: Option<Uuid>,
    pub status: Option<&'static str>,
    pub search: Option<String>,
    pub created: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub sort_by: &'static str,
    pub ascending: bool,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

pub const SORT_KEYS: &[&str] = &["created_at", "external_id", "status"];

/// Creates the participant, or updates the one with the same `external_id`. Returns whether it was created.
pub async fn upsert(pool: &PgPool, actor: &Actor, input: Upsert) -> Result<(Detail, bool)> {
    if let Some(program_id) = input.program_id {
        crate::programs::get(pool, actor, program_id).await?;
    }
    let mut tx = pool.begin().await?;
    let (id, created) =
        repo::upsert(&mut tx, actor.organization_id, Uuid::now_v7(), &input).await?;
    let origin = state::Origin {
        organization_id: actor.organization_id,
        program_id: input.program_id,
        api_key_id: Some(actor.api_key_id),
        ..Default::default()
    };
    if let Some(tags) = &input.tags {
        state::replace_tags(&mut tx, &origin, id, &normalize_tags(tags)).await?;
    }
    for (key, value) in &input.attributes {
        state::set_attribute(&mut tx, &origin, id, key, value).await?;
    }
    if let Some(program_id) = input.program_id {
        enroll(&mut tx, id, program_id).await?;
    }
    tx.commit().await?;
    Ok((get(pool, actor, id).await?, created))
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Detail> {
    let participant = repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("participant"))?;
    let (tags, attributes, program_ids) = repo::inline_state(pool, id).await?;
    let mut conn = pool.acquire().await?;
    let counters = state::counters(&mut conn, id)
        .await?
        .into_iter()
        .map(|c| (c.key, Value::String(c.value.normalize().to_string())))
        .collect();
    let balances = repo::balances(pool, actor.organization_id, id, None, None, None).await?;
    Ok(Detail {
        participant,
        attributes: attributes.0,
        tags,
        counters,
        balances,
        tiers: Map::new(),
        program_ids,
    })
}

pub async fn list(
    pool: &PgPool,
    actor: &Actor,
    filter: ParticipantFilter,
) -> Result<Page<Participant>> {
    let order = Order {
        column: filter.sort_by,
        sql_type: if filter.sort_by == "created_at" {
            "timestamptz"
        } else {
            "text"
        },
        descending: !filter.ascending,
    };
    let rows = repo::list(pool, actor.organization_id, &filter, order).await?;
    let sort_by = filter.sort_by;
    Ok(Page::from_rows(rows, filter.limit, |p| match sort_by {
        "external_id" => Cursor::new(&p.external_id, p.id),
        "status" => Cursor::new(&p.status, p.id),
        _ => Cursor::new(crate::time_key(p.created_at), p.id),
    }))
}

pub async fn balances(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Option<Uuid>,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Page<BalanceRow>> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("participant"))?;
    let after = cursor.map(|c| c.id);
    let rows = repo::balances(
        pool,
        actor.organization_id,
        id,
        asset_id,
        after,
        Some(limit + 1),
    )
    .await?;
    Ok(Page::from_rows(rows, limit, |b| {
        Cursor::new("", b.asset_id)
    }))
}

/// Finds the participant by `external_id`, creating it when `create` allows. Returns `None` when it does not
/// exist and may not be created. Runs in the caller's transaction.
pub async fn resolve_external(
    conn: &mut PgConnection,
    organization_id: Uuid,
    external_id: &str,
    create: bool,
) -> Result<Option<Uuid>> {
    if let Some(id) = find_by_external_id(conn, organization_id, external_id).await? {
        return Ok(Some(id));
    }
    if !create {
        return Ok(None);
    }
    Ok(Some(
        insert_if_absent(conn, organization_id, Uuid::now_v7(), external_id).await?,
    ))
}

/// Tags are case-insensitive: stored lower case, without duplicates.
pub fn normalize_tags(tags: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    tags
}

/// A deliberately loose check: one `@`, something before it, a dot in the domain, no spaces.
pub fn check_email(field: &str, email: &str) -> Result<(), FieldError> {
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(FieldError::invalid(
            field,
            "email address",
            Some(email.into()),
            "email must be a valid email address",
        ))
    }
}
