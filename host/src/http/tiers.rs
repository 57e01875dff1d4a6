//! Tier definitions (E97–E101), participants' tiers (E34–E37) and groups' tiers (the same, under `/groups`).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, PathIdKey, Valid, ValidQuery};
use crate::error::Result;
use crate::holders::Holder;
use crate::pagination::{Page, PageParams};
use crate::tiers::holders::{self, HeldTier, HeldTiers, SetLevel};
use crate::tiers::{
    self, Comparison, CounterPolicy, Criterion, DowngradePolicy, LevelInput, Lifecycle, NewTier,
    PeriodType, Qualification, QualificationMode, QualificationPeriod, Retention, RetentionMode,
    Rollover, StatusValidity, Tier, TierPatch,
};
use crate::validation::{Fields, Patch, Request};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tiers, create_tier))
        .routes(routes!(get_tier, update_tier))
        .routes(routes!(archive_tier))
        .routes(routes!(participant_tiers))
        .routes(routes!(
            participant_tier,
            set_participant_tier,
            remove_participant_tier
        ))
        .routes(routes!(group_tiers))
        .routes(routes!(group_tier, set_group_tier, remove_group_tier))
}

/// The program whose tiers a participant's tier state is read or changed in.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InProgram {
    pub program_id: Uuid,
}

impl Request for InProgram {
    fn read(q: &Fields<'_>) -> Self {
        InProgram {
            program_id: q.req_uuid("program_id"),
        }
    }
}

impl Request for SetLevel {
    fn read(f: &Fields<'_>) -> Self {
        SetLevel {
            level: f.req_str("level", 1, 100),
            expires_at: f.opt_time("expires_at"),
        }
    }
}

/// E34.
#[utoipa::path(get, path = "/participants/{id}/state/tiers", tag = "tiers", params(PathId, InProgram),
    responses((status = 200, body = HeldTiers), Rejected, NotFound))]
async fn participant_tiers(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(participant): PathId,
    ValidQuery(q): ValidQuery<InProgram>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        holders::list(
            &s.pool,
            &actor,
            Holder::Participant(participant),
            q.program_id,
        )
        .await?,
    ))
}

/// E35: 404 when the participant holds no level of the tier.
#[utoipa::path(get, path = "/participants/{id}/state/tiers/{key}", tag = "tiers",
    params(("id" = Uuid, Path, description = "Participant id"), ("key" = String, Path, description = "Tier key"), InProgram),
    responses((status = 200, body = HeldTier), Rejected, NotFound))]
async fn participant_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(participant, key): PathIdKey,
    ValidQuery(q): ValidQuery<InProgram>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        holders::get(
            &s.pool,
            &actor,
            Holder::Participant(participant),
            q.program_id,
            &key,
        )
        .await?,
    ))
}

/// E36: an ACTIVE participant in an ACTIVE program; 409 `tier_archived` for an archived tier.
#[utoipa::path(put, path = "/participants/{id}/state/tiers/{key}", tag = "tiers",
    params(("id" = Uuid, Path, description = "Participant id"), ("key" = String, Path, description = "Tier key"), InProgram),
    request_body = SetLevel, responses((status = 200, description = "Updated tier state.", body = HeldTier), Rejected, NotFound, Conflict))]
async fn set_participant_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(participant, key): PathIdKey,
    ValidQuery(q): ValidQuery<InProgram>,
    Valid(set): Valid<SetLevel>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        holders::set(
            &s.pool,
            &actor,
            Holder::Participant(participant),
            q.program_id,
            &key,
            set,
        )
        .await?,
    ))
}

/// E37: back to the base (rank 0).
#[utoipa::path(delete, path = "/participants/{id}/state/tiers/{key}", tag = "tiers",
    params(("id" = Uuid, Path, description = "Participant id"), ("key" = String, Path, description = "Tier key"), InProgram),
    responses((status = 204, description = "Removed."), Rejected, NotFound, Conflict))]
async fn remove_participant_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(participant, key): PathIdKey,
    ValidQuery(q): ValidQuery<InProgram>,
) -> Result<impl IntoResponse> {
    holders::remove(
        &s.pool,
        &actor,
        Holder::Participant(participant),
        q.program_id,
        &key,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/groups/{id}/state/tiers", tag = "groups", params(PathId, InProgram),
    responses((status = 200, body = HeldTiers), Rejected, NotFound))]
async fn group_tiers(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(group): PathId,
    ValidQuery(q): ValidQuery<InProgram>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        holders::list(&s.pool, &actor, Holder::Group(group), q.program_id).await?,
    ))
}

/// 404 when the group holds no level of the tier.
#[utoipa::path(get, path = "/groups/{id}/state/tiers/{key}", tag = "groups",
    params(("id" = Uuid, Path, description = "Group id"), ("key" = String, Path, description = "Tier key"), InProgram),
    responses((status = 200, body = HeldTier), Rejected, NotFound))]
async fn group_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(group, key): PathIdKey,
    ValidQuery(q): ValidQuery<InProgram>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        holders::get(&s.pool, &actor, Holder::Group(group), q.program_id, &key).await?,
    ))
}

/// A group that is not archived, in an ACTIVE program; 409 `tier_archived` for an archived tier.
#[utoipa::path(put, path = "/groups/{id}/state/tiers/{key}", tag = "groups",
    params(("id" = Uuid, Path, description = "Group id"), ("key" = String, Path, description = "Tier key"), InProgram),
    request_body = SetLevel, responses((status = 200, description = "Updated tier state.", body = HeldTier), Rejected, NotFound, Conflict))]
async fn set_group_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(group, key): PathIdKey,
    ValidQuery(q): ValidQuery<InProgram>,
    Valid(set): Valid<SetLevel>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        holders::set(
            &s.pool,
            &actor,
            Holder::Group(group),
            q.program_id,
            &key,
            set,
        )
        .await?,
    ))
}

/// Back to the base (rank 0).
#[utoipa::path(delete, path = "/groups/{id}/state/tiers/{key}", tag = "groups",
    params(("id" = Uuid, Path, description = "Group id"), ("key" = String, Path, description = "Tier key"), InProgram),
    responses((status = 204, description = "Removed."), Rejected, NotFound, Conflict))]
async fn remove_group_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(group, key): PathIdKey,
    ValidQuery(q): ValidQuery<InProgram>,
) -> Result<impl IntoResponse> {
    holders::remove(&s.pool, &actor, Holder::Group(group), q.program_id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A key of a tier or level: a lowercase letter, then lowercase letters, digits and `_`.
fn key(f: &Fields<'_>, field: &str) -> String {
    let key = f.req_str(field, 1, 100);
    let mut chars = key.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !key.is_empty() && !well_formed {
        f.reject(
            field,
            "^[a-z][a-z0-9_]*$",
            format!("{field} must start with a lowercase letter and hold lowercase letters, digits and _"),
        );
    }
    key
}

/// An object field where `{}` clears and `null` or absence leaves unchanged (lifecycle, qualification).
fn cleared_by_empty<T>(
    f: &Fields<'_>,
    field: &str,
    read: impl FnOnce(&Fields<'_>) -> T,
) -> Patch<T> {
    match f.opt_object(field) {
        None => Patch::Absent,
        Some(map) if map.is_empty() => Patch::Null,
        Some(map) => Patch::Set(read(&f.nested(map, f.path(field)))),
    }
}

fn qualification(q: &Fields<'_>) -> Qualification {
    let mut criteria = Vec::new();
    match q.opt_array("criteria") {
        Some(items) if !items.is_empty() && items.len() <= 20 => {
            for (c, _) in q.objects("criteria", items) {
                let threshold = match c.raw("threshold") {
                    Some(Value::Number(n)) if Criterion::amount(n).is_some() => n.clone(),
                    _ => {
                        c.reject("threshold", "number", "threshold must be a number");
                        serde_json::Number::from(0)
                    }
                };
                criteria.push(Criterion {
                    counter: c.req_str("counter", 1, 255),
                    operator: c.req_word::<Comparison>("operator"),
                    threshold,
                });
            }
        }
        _ => q.reject(
            "criteria",
            "1 to 20 criteria",
            "criteria must hold 1 to 20 criteria",
        ),
    }
    Qualification {
        mode: q.req_word::<QualificationMode>("mode"),
        criteria,
    }
}

fn lifecycle(l: &Fields<'_>) -> Lifecycle {
    let part = |name: &str| l.opt_object(name).map(|map| l.nested(map, l.path(name)));
    let retention = part("retention").map(|r| {
        let mode = r.req_word::<RetentionMode>("mode");
        let duration = r.opt_str("duration", 1, 64);
        match (&duration, mode) {
            (Some(text), _) if crate::duration::parse(text).is_none() => r.reject(
                "duration",
                "Go duration such as 8760h",
                "duration must be a positive Go duration of at most 876000h",
            ),
            (None, RetentionMode::ActivityRefresh) => r.reject(
                "duration",
                "Go duration such as 8760h",
                "ACTIVITY_REFRESH retention needs a duration",
            ),
            _ => {}
        }
        Retention { mode, duration }
    });
    let qualification_period = part("qualification_period").map(|p| {
        let period = p.req_word::<PeriodType>("type");
        let start_month = p.opt_int("start_month", 1, 12).map(|m| m as u32);
        let start_day = p.opt_int("start_day", 1, 28).map(|d| d as u32);
        if period == PeriodType::FixedYear && (start_month.is_none() || start_day.is_none()) {
            p.reject(
                "start_month",
                "start_month and start_day",
                "a FIXED_YEAR period needs start_month and start_day",
            );
        }
        QualificationPeriod {
            period,
            start_month,
            start_day,
        }
    });
    let status_validity = part("status_validity").map(|s| StatusValidity {
        extend_months: s.opt_int("extend_months", 0, 120).unwrap_or(0) as u32,
    });
    let downgrade_policy = part("downgrade_policy").map(|d| DowngradePolicy {
        mode: d
            .opt_word("mode")
            .unwrap_or(tiers::DowngradeMode::DropToQualifying),
        grace_days: d.opt_int("grace_days", 0, 3650).map(|g| g as u32),
        min_level: d.opt_str("min_level", 1, 100),
    });
    let counters = part("counters").map(|c| CounterPolicy {
        qualifying: c.opt_string_list("qualifying", 255).unwrap_or_default(),
        rollover: c.opt_word("rollover").unwrap_or(Rollover::Reset),
    });
    Lifecycle {
        retention,
        qualification_period,
        status_validity,
        downgrade_policy,
        counters,
    }
}

/// The levels of a body: each with a well-formed key; `rank_required` on create.
fn levels(f: &Fields<'_>, rank_required: bool) -> Option<Vec<LevelInput>> {
    let items = f.opt_array("levels")?;
    if items.is_empty() || items.len() > 100 {
        f.reject(
            "levels",
            "1 to 100 levels",
            "levels must hold 1 to 100 levels",
        );
    }
    let mut levels = Vec::with_capacity(items.len());
    for (l, _) in f.objects("levels", items) {
        let rank = match rank_required {
            true => Some(l.req_int("rank", 1, i64::from(i32::MAX))),
            false => l.opt_int("rank", 1, i64::from(i32::MAX)),
        };
        let color = l.patch("color", |l, k| l.opt_str(k, 4, 9));
        if let Patch::Set(c) = &color
            && !(c.len() == 7
                && c.starts_with('#')
                && c[1..].chars().all(|d| d.is_ascii_hexdigit()))
        {
            l.reject(
                "color",
                "#RRGGBB",
                "color must be a hex colour such as #FFD700",
            );
        }
        levels.push(LevelInput {
            key: key(&l, "key"),
            rank: rank.map(|r| r as i32),
            display_name: l.patch("display_name", |l, k| l.opt_str(k, 0, 255)),
            color,
            icon_url: l.patch("icon_url", |l, k| l.opt_str(k, 1, 2048)),
            benefits: l.opt_object("benefits").cloned(),
            qualification: cleared_by_empty(&l, "qualification", qualification),
        });
    }
    let mut keys: Vec<&str> = levels.iter().map(|l| l.key.as_str()).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        f.reject(
            "levels",
            "distinct level keys",
            "two levels have the same key",
        );
    }
    Some(levels)
}

impl Request for NewTier {
    fn read(f: &Fields<'_>) -> Self {
        if f.raw("levels").is_none() {
            f.reject("levels", "1 to 100 levels", "levels is required");
        }
        NewTier {
            key: key(f, "key"),
            display_name: f.opt_str("display_name", 0, 255),
            levels: levels(f, true).unwrap_or_default(),
            lifecycle: match cleared_by_empty(f, "lifecycle", lifecycle) {
                Patch::Set(l) => Some(l),
                _ => None,
            },
        }
    }
}

impl Request for TierPatch {
    fn read(f: &Fields<'_>) -> Self {
        for immutable in ["key"] {
            if f.contains(immutable) {
                f.reject(immutable, "absent", "a tier's key cannot change");
            }
        }
        f.require_any();
        TierPatch {
            display_name: f.patch("display_name", |f, k| f.opt_str(k, 0, 255)),
            levels: levels(f, false),
            lifecycle: cleared_by_empty(f, "lifecycle", lifecycle),
        }
    }
}

#[utoipa::path(post, path = "/programs/{id}/tiers", tag = "tiers", params(PathId), request_body = NewTier,
    responses((status = 201, description = "Tier created, ACTIVE.", body = Tier), Rejected, NotFound, Conflict))]
async fn create_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(program_id): PathId,
    Valid(new): Valid<NewTier>,
) -> Result<impl IntoResponse> {
    let tier = tiers::create(&s.pool, &actor, program_id, new).await?;
    Ok((StatusCode::CREATED, Json(tier)))
}

#[utoipa::path(get, path = "/programs/{id}/tiers", tag = "tiers", params(PathId, PageParams),
    responses((status = 200, body = Page<Tier>), Rejected, NotFound))]
async fn list_tiers(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(program_id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(tiers::list(&s.pool, &actor, program_id, page).await?))
}

#[utoipa::path(get, path = "/programs/{id}/tiers/{key}", tag = "tiers",
    params(("id" = Uuid, Path, description = "Program id"), ("key" = String, Path, description = "Tier key")),
    responses((status = 200, body = Tier), Rejected, NotFound))]
async fn get_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(program_id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    Ok(Json(tiers::get(&s.pool, &actor, program_id, &key).await?))
}

/// E100: 409 `tier_archived` once archived.
#[utoipa::path(patch, path = "/programs/{id}/tiers/{key}", tag = "tiers",
    params(("id" = Uuid, Path, description = "Program id"), ("key" = String, Path, description = "Tier key")),
    request_body = TierPatch, responses((status = 200, body = Tier), Rejected, NotFound, Conflict))]
async fn update_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(program_id, key): PathIdKey,
    Valid(patch): Valid<TierPatch>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        tiers::update(&s.pool, &actor, program_id, &key, patch).await?,
    ))
}

/// E101: one way.
#[utoipa::path(post, path = "/programs/{id}/tiers/{key}/archive", tag = "tiers",
    params(("id" = Uuid, Path, description = "Program id"), ("key" = String, Path, description = "Tier key")),
    responses((status = 200, body = Tier), Rejected, NotFound, Conflict))]
async fn archive_tier(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(program_id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    Ok(Json(
        tiers::archive(&s.pool, &actor, program_id, &key).await?,
    ))
}
