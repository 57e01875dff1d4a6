//! What holders have: their level in each tier (E34–E37), set by the API and by rules, and raised by automatic
//! qualification after each event's rules. A holder is a participant or a group, in the same table and code. A
//! level set with `expires_at` is not held from that instant on; no level is the base, rank 0. Every change is
//! recorded in the holder's state history with its cause, and reported as participant.tier_changed.

use super::{Counters, Qualification, TierStatus, repo};
use crate::error::{Error, FieldError, Result};
use crate::holders::state::Origin;
use crate::organizations::Actor;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

use crate::holders::{Holder, HolderType};

/// A holder's level in one tier.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = ParticipantTierState)]
pub struct HeldTier {
    /// The tier's key.
    #[schema(example = "status")]
    pub key: String,
    /// The level's key.
    #[schema(example = "gold")]
    pub level: String,
    pub rank: i32,
    #[schema(value_type = Object)]
    pub benefits: sqlx::types::Json<Value>,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// The levels of a holder in a program's tiers (E34).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HeldTiers {
    pub data: Vec<HeldTier>,
}

/// E36's body.
#[derive(Debug, utoipa::ToSchema)]
#[schema(as = SetTier, example = json!({"level": "gold", "expires_at": "2027-12-31T23:59:59Z"}))]
pub struct SetLevel {
    /// A level key of the tier.
    #[schema(min_length = 1, max_length = 100)]
    pub level: String,
    /// When the level is lost; none keeps it until changed.
    pub expires_at: Option<DateTime<Utc>>,
}

/// E34: the holder's levels in the program's tiers, archived tiers included.
pub async fn list(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    program_id: Uuid,
) -> Result<HeldTiers> {
    crate::holder_state::require(pool, actor, holder).await?;
    crate::programs::get(pool, actor, program_id).await?;
    Ok(HeldTiers {
        data: repo::held(pool, holder, program_id, None).await?,
    })
}

/// E35: 404 when the holder holds no level of the tier.
pub async fn get(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    program_id: Uuid,
    key: &str,
) -> Result<HeldTier> {
    crate::holder_state::require(pool, actor, holder).await?;
    super::get(pool, actor, program_id, key).await?;
    repo::held(pool, holder, program_id, Some(key))
        .await?
        .pop()
        .ok_or(Error::NotFound(match holder {
            Holder::Participant(_) => "participant tier",
            Holder::Group(_) => "group tier",
        }))
}

/// E36: a participant and the program must be ACTIVE, a group not archived, and the tier not archived.
pub async fn set(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    program_id: Uuid,
    key: &str,
    set: SetLevel,
) -> Result<HeldTier> {
    if set.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(Error::invalid(FieldError::invalid(
            "expires_at",
            "a future timestamp",
            set.expires_at.map(|at| at.to_rfc3339()),
            "expires_at must be in the future",
        )));
    }
    let mut tx = pool.begin().await?;
    let tier = prepare(&mut tx, actor, holder, program_id, key).await?;
    let level = repo::level_id(&mut tx, tier, &set.level)
        .await?
        .ok_or_else(|| {
            Error::invalid(FieldError::invalid(
                "level",
                "a level key of the tier",
                Some(set.level.clone()),
                format!("tier {key} has no level {}", set.level),
            ))
        })?;
    let old = repo::assign(&mut tx, holder, tier, level, set.expires_at).await?;
    if old.as_deref() != Some(set.level.as_str()) {
        let origin = by_api(actor, program_id);
        crate::holders::state::record_tier_change(
            &mut tx,
            &origin,
            holder,
            key,
            old,
            Some(set.level.clone()),
        )
        .await?;
    }
    tx.commit().await?;
    get(pool, actor, holder, program_id, key).await
}

/// E37: back to the base; nothing to remove is not an error.
pub async fn remove(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    program_id: Uuid,
    key: &str,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let tier = prepare(&mut tx, actor, holder, program_id, key).await?;
    if let Some(old) = repo::unassign(&mut tx, holder, tier).await? {
        let origin = by_api(actor, program_id);
        crate::holders::state::record_tier_change(&mut tx, &origin, holder, key, Some(old), None)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// What a SET_TIER action did.
#[derive(Debug, Clone, PartialEq)]
pub enum Assigned {
    /// The holder holds the level now; it held `previous` before.
    Set { previous: Option<String> },
    /// The tier is archived: nothing changed, and the event goes on.
    TierArchived,
}

/// SET_TIER: gives the holder `level` of the program's tier `key` in the caller's transaction, under the
/// holder's lock, whatever a participant's status. `Err` says what the rule named that does not exist.
pub async fn assign_by_rule(
    conn: &mut sqlx::PgConnection,
    origin: &Origin,
    holder: Holder,
    key: &str,
    level: &str,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<std::result::Result<Assigned, String>> {
    let program_id = origin.program_id.unwrap_or_default();
    let Some(tier) = repo::find(&mut *conn, origin.organization_id, program_id, key).await? else {
        return Ok(Err(format!("the program has no tier {key}")));
    };
    if tier.status == TierStatus::Archived {
        return Ok(Ok(Assigned::TierArchived));
    }
    let Some(level_id) = repo::level_id(conn, tier.id, level).await? else {
        return Ok(Err(format!("tier {key} has no level {level}")));
    };
    let previous = repo::assign(conn, holder, tier.id, level_id, expires_at).await?;
    if previous.as_deref() != Some(level) {
        crate::holders::state::record_tier_change(
            conn,
            origin,
            holder,
            key,
            previous.clone(),
            Some(level.to_owned()),
        )
        .await?;
    }
    Ok(Ok(Assigned::Set { previous }))
}

fn by_api(actor: &Actor, program_id: Uuid) -> Origin {
    Origin {
        organization_id: actor.organization_id,
        program_id: Some(program_id),
        api_key_id: Some(actor.api_key_id),
        ..Origin::default()
    }
}

/// Locks the holder (404; 409 `participant_inactive`, `group_archived`), checks the program is ACTIVE (409
/// `program_inactive`) and the tier exists and is not archived (404, 409 `tier_archived`); returns the tier's id.
async fn prepare(
    conn: &mut sqlx::PgConnection,
    actor: &Actor,
    holder: Holder,
    program_id: Uuid,
    key: &str,
) -> Result<Uuid> {
    match holder {
        Holder::Participant(participant) => {
            let states =
                crate::participants::lock_state(conn, actor.organization_id, &[participant])
                    .await?;
            let state = states.first().ok_or(Error::NotFound("participant"))?;
            if state.status != crate::participants::ParticipantStatus::Active {
                return Err(Error::Conflict {
                    code: "participant_inactive",
                    message: format!("participant {participant} is {}", state.status),
                });
            }
        }
        Holder::Group(group) => crate::groups::lock(conn, actor.organization_id, group)
            .await?
            .ok_or(Error::NotFound("group"))?
            .require_active()?,
    }
    crate::programs::require_active(conn, actor.organization_id, program_id).await?;
    let tier = repo::lock(conn, actor.organization_id, program_id, key)
        .await?
        .ok_or(Error::NotFound("tier"))?;
    if tier.status == TierStatus::Archived {
        return Err(super::archived(key));
    }
    Ok(tier.id)
}

/// A participant's level in one tier of a program, as rules see it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Standing {
    pub holder_id: Uuid,
    pub program_id: Uuid,
    #[sqlx(flatten)]
    pub held: HeldTier,
}

/// The levels these participants hold now, in every program.
pub async fn standings(
    conn: &mut PgConnection,
    participants: &[Uuid],
) -> sqlx::Result<Vec<Standing>> {
    repo::standings(conn, HolderType::Participant.as_str(), participants, None).await
}

/// A level of one of a program's tiers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProgramLevel {
    pub tier_key: String,
    pub level: String,
    pub rank: i32,
    pub benefits: sqlx::types::Json<Value>,
}

/// Every level of the program's tiers.
pub async fn levels_of_program(
    conn: &mut PgConnection,
    program_id: Uuid,
) -> sqlx::Result<Vec<ProgramLevel>> {
    repo::levels_of_program(conn, program_id).await
}

/// The levels a group holds now in one program.
pub async fn group_standings(
    conn: &mut PgConnection,
    group: Uuid,
    program_id: Uuid,
) -> sqlx::Result<Vec<Standing>> {
    let within = Some((program_id, None));
    repo::standings(conn, HolderType::Group.as_str(), &[group], within).await
}

/// The tiers of the programs an event-processing batch serves: which programs have any, and of the ACTIVE
/// ones, which count activity and which levels each reaches by qualification. Read once per batch.
#[derive(Debug, Default)]
pub struct Tracks {
    tiered: HashSet<Uuid>,
    active: HashMap<Uuid, Vec<Track>>,
}

/// An ACTIVE tier as automatic qualification and activity counting see it.
#[derive(Debug)]
pub struct Track {
    id: Uuid,
    key: String,
    /// ACTIVITY_REFRESH: each event the holder has in the program restarts its inactivity timer.
    counts_activity: bool,
    /// The levels with a qualification, best first.
    rungs: Vec<Rung>,
}

#[derive(Debug)]
struct Rung {
    level_id: Uuid,
    key: String,
    rank: i32,
    qualification: Qualification,
}

impl Tracks {
    pub async fn load(conn: &mut PgConnection, programs: &[Uuid]) -> sqlx::Result<Tracks> {
        let rows = repo::tracks(conn, programs).await?;
        let mut tracks = Tracks::default();
        for row in rows {
            tracks.tiered.insert(row.program_id);
            if row.status == TierStatus::Archived {
                continue;
            }
            let active = tracks.active.entry(row.program_id).or_default();
            if active.last().is_none_or(|t| t.id != row.tier_id) {
                active.push(Track {
                    id: row.tier_id,
                    key: row.tier_key.clone(),
                    counts_activity: row
                        .lifecycle
                        .as_ref()
                        .and_then(|l| l.retention.as_ref())
                        .is_some_and(|r| r.mode == super::RetentionMode::ActivityRefresh),
                    rungs: Vec::new(),
                });
            }
            if let (Some(track), Some(level_id), Some(key), Some(rank), Some(qualification)) = (
                active.last_mut(),
                row.level_id,
                row.level_key,
                row.rank,
                row.qualification,
            ) {
                track.rungs.push(Rung {
                    level_id,
                    key,
                    rank,
                    qualification: qualification.0,
                });
            }
        }
        for track in tracks.active.values_mut().flatten() {
            track.rungs.sort_by_key(|r| std::cmp::Reverse(r.rank));
        }
        Ok(tracks)
    }

    /// Whether any of these programs has a tier, archived or not: only then do rules need to see levels.
    pub fn any(&self) -> bool {
        !self.tiered.is_empty()
    }

    /// The program's ACTIVE tiers.
    pub fn of(&self, program_id: Uuid) -> &[Track] {
        self.active.get(&program_id).map_or(&[], Vec::as_slice)
    }
}

/// What an event's rules leave for a holder's tiers to do, in the event's transaction under the holder's
/// lock: a participant's event counts as activity in the tiers that count it, and in each tier the holder
/// moves up to the best level its counters now qualify for when that is above its level (never down; not in
/// the tiers a SET_TIER of the event decided). Qualifying again for the level it holds cancels a pending
/// downgrade. A group's activity is not counted: its levels change by qualification, the API and rules.
#[derive(Debug)]
pub struct AfterEvent {
    holder: Holder,
    /// Tiers whose inactivity timer restarts.
    active: Vec<Uuid>,
    /// (tier, level, tier key, level key)
    upgrades: Vec<(Uuid, Uuid, String, String)>,
    /// Tiers whose pending downgrade is cancelled.
    requalified: Vec<Uuid>,
}

impl AfterEvent {
    /// Reads what is needed; writes nothing.
    pub async fn plan(
        conn: &mut PgConnection,
        tracks: &[Track],
        holder: Holder,
        set_by_rule: &[&str],
    ) -> sqlx::Result<AfterEvent> {
        let ids: Vec<Uuid> = tracks.iter().map(|t| t.id).collect();
        let held = repo::positions(conn, holder, &ids).await?;
        let counts_activity = matches!(holder, Holder::Participant(_));
        let mut plan = AfterEvent {
            holder,
            active: tracks
                .iter()
                .filter(|t| t.counts_activity && held.iter().any(|h| h.tier_id == t.id))
                .filter(|_| counts_activity)
                .map(|t| t.id)
                .collect(),
            upgrades: Vec::new(),
            requalified: Vec::new(),
        };
        let qualifying: Vec<&Track> = tracks
            .iter()
            .filter(|t| !t.rungs.is_empty() && !set_by_rule.contains(&t.key.as_str()))
            .collect();
        if qualifying.is_empty() {
            return Ok(plan);
        }
        let counters: Counters = crate::holders::state::counters(conn, holder.id())
            .await?
            .into_iter()
            .map(|c| (c.key, c.value))
            .collect();
        for track in qualifying {
            let Some(best) = track
                .rungs
                .iter()
                .find(|r| r.qualification.met_by(&counters))
            else {
                continue;
            };
            let position = held.iter().find(|h| h.tier_id == track.id);
            let rank = position.map_or(0, |p| p.rank);
            if best.rank > rank {
                plan.upgrades
                    .push((track.id, best.level_id, track.key.clone(), best.key.clone()));
            } else if best.rank == rank && position.is_some_and(|p| p.downgrading) {
                plan.requalified.push(track.id);
            }
        }
        Ok(plan)
    }

    /// Whether applying it writes (the caller opens what its writes need first).
    pub fn writes(&self) -> bool {
        !(self.active.is_empty() && self.upgrades.is_empty() && self.requalified.is_empty())
    }

    /// Whether the holder's levels change.
    pub fn moves(&self) -> bool {
        !self.upgrades.is_empty()
    }

    pub async fn apply(self, conn: &mut PgConnection, origin: &Origin) -> sqlx::Result<()> {
        let holder = self.holder;
        if !self.active.is_empty() {
            repo::touch(conn, holder, &self.active).await?;
        }
        for tier in &self.requalified {
            repo::cancel_downgrade(conn, holder, *tier).await?;
        }
        for (tier_id, level_id, tier, level) in self.upgrades {
            let previous = repo::assign(conn, holder, tier_id, level_id, None).await?;
            crate::holders::state::record_tier_change(
                conn,
                origin,
                holder,
                &tier,
                previous,
                Some(level),
            )
            .await?;
        }
        Ok(())
    }
}
