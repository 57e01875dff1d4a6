//! The rewards catalog (E102–E105).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, PathIds, Valid, ValidQuery};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::rewards::{
    self, NewReward, RedemptionType, Reward, RewardFilter, RewardPatch, caps_unit_based_only,
    window_backwards,
};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rewards, create_reward))
        .routes(routes!(get_reward, update_reward))
}

/// A cap: a whole number of at least 1.
fn cap(f: &Fields<'_>, key: &str) -> Option<i64> {
    f.opt_int(key, 1, i64::MAX)
}

impl Request for NewReward {
    fn read(f: &Fields<'_>) -> Self {
        let new = NewReward {
            name: f.req_str("name", 1, 255),
            redemption_type: f.req_word("redemption_type"),
            asset_id: f.req_uuid("asset_id"),
            unit_cost: f.req_positive_decimal("unit_cost").unwrap_or_default(),
            status: f.req_word("status"),
            description: f.opt_str("description", 0, 1000),
            category: f.opt_str("category", 0, 100),
            max_total: cap(f, "max_total"),
            max_per_participant: cap(f, "max_per_participant"),
            available_from: f.opt_time("available_from"),
            available_until: f.opt_time("available_until"),
            metadata: f.opt_object("metadata").cloned(),
        };
        if new.redemption_type == RedemptionType::AmountBased {
            for (field, given) in [
                ("max_total", new.max_total),
                ("max_per_participant", new.max_per_participant),
            ] {
                if given.is_some() {
                    f.push(caps_unit_based_only(field));
                }
            }
        }
        if let (Some(from), Some(until)) = (new.available_from, new.available_until)
            && from >= until
        {
            f.push(window_backwards());
        }
        new
    }
}

impl Request for RewardPatch {
    fn read(f: &Fields<'_>) -> Self {
        for immutable in ["redemption_type", "asset_id"] {
            if f.contains(immutable) {
                f.reject(
                    immutable,
                    "absent",
                    format!("{immutable} cannot change once a reward exists"),
                );
            }
        }
        f.require_any();
        RewardPatch {
            name: f.opt_str("name", 1, 255),
            description: f.patch("description", |f, k| f.opt_str(k, 0, 1000)),
            category: f.patch("category", |f, k| f.opt_str(k, 0, 100)),
            unit_cost: f.opt_positive_decimal("unit_cost"),
            status: f.opt_word("status"),
            max_total: f.patch("max_total", cap),
            max_per_participant: f.patch("max_per_participant", cap),
            available_from: f.patch("available_from", |f, k| f.opt_time(k)),
            available_until: f.patch("available_until", |f, k| f.opt_time(k)),
            metadata: f.opt_object("metadata").cloned(),
        }
    }
}

impl Request for RewardFilter {
    fn read(q: &Fields<'_>) -> Self {
        RewardFilter {
            status: q.opt_word("status"),
            include_archived: q.opt_bool("include_archived").unwrap_or(false),
            search: q.opt_str("search", 1, 255),
            sort_by: q.opt_word("sort_by"),
            ascending: q.ascending(),
            page: PageParams::read(q),
        }
    }
}

#[utoipa::path(post, path = "/programs/{id}/rewards", tag = "rewards", params(PathId), request_body = NewReward,
    responses((status = 201, description = "Reward created.", body = Reward), Rejected, NotFound, Conflict))]
async fn create_reward(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(program_id): PathId,
    Valid(new): Valid<NewReward>,
) -> Result<impl IntoResponse> {
    let reward = rewards::create(&s.pool, &actor, program_id, new).await?;
    Ok((StatusCode::CREATED, Json(reward)))
}

#[utoipa::path(get, path = "/programs/{id}/rewards", tag = "rewards", params(PathId, PageParams, RewardFilter),
    responses((status = 200, body = Page<Reward>), Rejected, NotFound))]
async fn list_rewards(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(program_id): PathId,
    ValidQuery(filter): ValidQuery<RewardFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        rewards::list(&s.pool, &actor, program_id, filter).await?,
    ))
}

#[utoipa::path(get, path = "/programs/{id}/rewards/{reward_id}", tag = "rewards",
    params(("id" = Uuid, Path, description = "Program id"), ("reward_id" = Uuid, Path)),
    responses((status = 200, body = Reward), Rejected, NotFound))]
async fn get_reward(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
) -> Result<impl IntoResponse> {
    Ok(Json(rewards::get(&s.pool, &actor, program_id, id).await?))
}

#[utoipa::path(patch, path = "/programs/{id}/rewards/{reward_id}", tag = "rewards",
    params(("id" = Uuid, Path, description = "Program id"), ("reward_id" = Uuid, Path)), request_body = RewardPatch,
    responses((status = 200, body = Reward), Rejected, NotFound, Conflict))]
async fn update_reward(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
    Valid(patch): Valid<RewardPatch>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        rewards::update(&s.pool, &actor, program_id, id, patch).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::{Patch, Validator};
    use serde_json::json;

    fn errors_of<T: Request>(body: serde_json::Value) -> Vec<String> {
        let v = Validator::new();
        let f = v.body(&body).expect("an object");
        T::read(&f);
        match v.finish() {
            Ok(()) => Vec::new(),
            Err(crate::error::Error::Invalid(fields)) => {
                fields.into_iter().map(|e| e.field).collect()
            }
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn amount_based_rewards_refuse_caps() {
        let body = json!({"name": "Gift card", "redemption_type": "AMOUNT_BASED", "unit_cost": "10",
            "asset_id": "550e8400-e29b-41d4-a716-446655440001", "status": "ACTIVE", "max_total": 5});
        assert_eq!(errors_of::<NewReward>(body), vec!["max_total"]);
    }

    #[test]
    fn a_patch_cannot_change_the_type_or_asset() {
        let body = json!({"redemption_type": "AMOUNT_BASED", "asset_id": "550e8400-e29b-41d4-a716-446655440001"});
        assert_eq!(
            errors_of::<RewardPatch>(body),
            vec!["redemption_type", "asset_id"]
        );
    }

    #[test]
    fn a_null_cap_clears_it() {
        let v = Validator::new();
        let body = json!({"max_total": null});
        let patch = RewardPatch::read(&v.body(&body).expect("an object"));
        assert_eq!(patch.max_total, Patch::Null);
    }
}
