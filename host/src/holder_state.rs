//! The state API on a holder, participant or group alike: tags, attributes, counters (E22–E33, E69–E80) and
//! the state history (E47, E81). Each write runs under the holder's lock and is recorded with the API key
//! that made it; an archived group's state can be read, not changed.

use crate::error::{Error, Result};
use crate::holders::Holder;
use crate::holders::state::{self, Counter, HistoryEntry, HistoryFilter, Origin, WindowChange};
use crate::organizations::Actor;
use crate::pagination::Page;
use crate::participants::{self, normalize_tags};
use rust_decimal::Decimal;
use sqlx::PgPool;

/// What a caller does with the state it locked.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    Read,
    Write,
}

/// A transaction holding the holder's lock, and the origin its state changes record.
async fn locked(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    access: Access,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, Origin)> {
    let mut tx = pool.begin().await?;
    let found = match holder {
        Holder::Participant(id) => !participants::lock_state(&mut tx, actor.organization_id, &[id])
            .await?
            .is_empty(),
        Holder::Group(id) => match crate::groups::lock(&mut tx, actor.organization_id, id).await? {
            Some(group) if access == Access::Write => {
                group.require_active()?;
                true
            }
            found => found.is_some(),
        },
    };
    if !found {
        return Err(Error::NotFound(holder.noun()));
    }
    let origin = Origin {
        organization_id: actor.organization_id,
        api_key_id: Some(actor.api_key_id),
        ..Default::default()
    };
    Ok((tx, origin))
}

pub async fn tags(pool: &PgPool, actor: &Actor, holder: Holder) -> Result<Vec<String>> {
    let (mut tx, _) = locked(pool, actor, holder, Access::Read).await?;
    Ok(state::tags(&mut tx, holder.id()).await?)
}

pub async fn replace_tags(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    tags: &[String],
) -> Result<Vec<String>> {
    let (mut tx, origin) = locked(pool, actor, holder, Access::Write).await?;
    state::replace_tags(&mut tx, &origin, holder.id(), &normalize_tags(tags)).await?;
    let tags = state::tags(&mut tx, holder.id()).await?;
    tx.commit().await?;
    Ok(tags)
}

/// Adds a tag; `true` when it was not there before.
pub async fn add_tag(pool: &PgPool, actor: &Actor, holder: Holder, tag: &str) -> Result<bool> {
    let (mut tx, origin) = locked(pool, actor, holder, Access::Write).await?;
    let added = state::set_tag(&mut tx, &origin, holder.id(), tag, true).await?;
    tx.commit().await?;
    Ok(added)
}

pub async fn remove_tag(pool: &PgPool, actor: &Actor, holder: Holder, tag: &str) -> Result<()> {
    let (mut tx, origin) = locked(pool, actor, holder, Access::Write).await?;
    state::set_tag(&mut tx, &origin, holder.id(), tag, false).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn attributes(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
) -> Result<Vec<(String, String)>> {
    let (mut tx, _) = locked(pool, actor, holder, Access::Read).await?;
    Ok(state::attributes(&mut tx, holder.id()).await?)
}

/// Sets each attribute given (E27, E28, E74, E75); returns all attributes.
pub async fn set_attributes(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    pairs: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    let (mut tx, origin) = locked(pool, actor, holder, Access::Write).await?;
    for (key, value) in pairs {
        state::set_attribute(&mut tx, &origin, holder.id(), key, value).await?;
    }
    let attributes = state::attributes(&mut tx, holder.id()).await?;
    tx.commit().await?;
    Ok(attributes)
}

pub async fn remove_attribute(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    key: &str,
) -> Result<()> {
    let (mut tx, origin) = locked(pool, actor, holder, Access::Write).await?;
    state::remove_attribute(&mut tx, &origin, holder.id(), key).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn counters(pool: &PgPool, actor: &Actor, holder: Holder) -> Result<Vec<Counter>> {
    let (mut tx, _) = locked(pool, actor, holder, Access::Read).await?;
    Ok(state::counters(&mut tx, holder.id()).await?)
}

pub async fn counter(pool: &PgPool, actor: &Actor, holder: Holder, key: &str) -> Result<Counter> {
    let (mut tx, _) = locked(pool, actor, holder, Access::Read).await?;
    state::counter(&mut tx, holder.id(), key)
        .await?
        .ok_or(Error::NotFound("counter"))
}

pub async fn set_counter(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    key: &str,
    value: Decimal,
    window: WindowChange,
) -> Result<Counter> {
    let (mut tx, origin) = locked(pool, actor, holder, Access::Write).await?;
    let counter = state::set_counter(&mut tx, &origin, holder.id(), key, value, window).await?;
    tx.commit().await?;
    Ok(counter)
}

pub async fn delete_counter(pool: &PgPool, actor: &Actor, holder: Holder, key: &str) -> Result<()> {
    let (mut tx, origin) = locked(pool, actor, holder, Access::Write).await?;
    state::delete_counter(&mut tx, &origin, holder.id(), key).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn history(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    filter: HistoryFilter,
) -> Result<Page<HistoryEntry>> {
    require(pool, actor, holder).await?;
    Ok(state::history(pool, holder.id(), &filter).await?)
}

/// `NotFound` unless the holder exists in the actor's organization.
pub async fn require(pool: &PgPool, actor: &Actor, holder: Holder) -> Result<()> {
    match holder {
        Holder::Participant(id) => participants::require(pool, actor, id).await,
        Holder::Group(id) => crate::groups::require(pool, actor, id).await,
    }
}
