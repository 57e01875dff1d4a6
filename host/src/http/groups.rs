//! Groups and their members (E55–E63), and a participant's groups.

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, PathIds, Valid, ValidQuery};
use crate::error::Result;
use crate::groups::{
    self, Group, GroupDetail, GroupFilter, GroupMember, MemberInput, Membership, NewGroup, Role,
};
use crate::pagination::{Page, PageParams};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, rename_group, archive_group))
        .routes(routes!(list_members, add_members))
        .routes(routes!(set_role, remove_member))
        .routes(routes!(participant_groups))
}

/// Reads `[{participant_id, role?}]` at `key`: 1 to 100 distinct participants.
fn member_list(f: &Fields<'_>, key: &str) -> Vec<MemberInput> {
    let mut members: Vec<MemberInput> = Vec::new();
    match f.opt_array(key) {
        Some(items) if (1..=100).contains(&items.len()) => {
            for (m, _) in f.objects(key, items) {
                let id = m.req_uuid("participant_id");
                let role = m.opt_word("role").unwrap_or(Role::Member);
                if members
                    .iter()
                    .any(|other| other.participant_id == id && !id.is_nil())
                {
                    m.reject(
                        "participant_id",
                        "a participant not listed before",
                        "a participant is listed twice",
                    );
                }
                members.push(MemberInput {
                    participant_id: id,
                    role,
                });
            }
        }
        Some(_) => f.reject(key, "array of 1 to 100 members", "give 1 to 100 members"),
        None => f.missing(key),
    }
    members
}

impl Request for NewGroup {
    fn read(f: &Fields<'_>) -> Self {
        let members = member_list(f, "members");
        if !members.is_empty() && !members.iter().any(|m| m.role == Role::Admin) {
            f.reject(
                "members",
                "at least one ADMIN",
                "a group needs at least one ADMIN among its members",
            );
        }
        NewGroup {
            name: f.req_str("name", 1, 255),
            members,
            on_behalf_of_participant_id: f.opt_uuid("on_behalf_of_participant_id"),
        }
    }
}

#[derive(ToSchema)]
struct RenameGroup {
    #[schema(min_length = 1, max_length = 255)]
    name: String,
}

impl Request for RenameGroup {
    fn read(f: &Fields<'_>) -> Self {
        RenameGroup {
            name: f.req_str("name", 1, 255),
        }
    }
}

impl Request for GroupFilter {
    fn read(q: &Fields<'_>) -> Self {
        GroupFilter {
            include_archived: q.opt_bool("include_archived").unwrap_or(false),
            search: q.opt_str("search", 1, 255),
            page: PageParams::read(q),
        }
    }
}

/// LEFT members are listed too with `include_former`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct MembersQuery {
    include_former: Option<bool>,
    #[param(ignore)]
    page: PageParams,
}

impl Request for MembersQuery {
    fn read(q: &Fields<'_>) -> Self {
        MembersQuery {
            include_former: q.opt_bool("include_former"),
            page: PageParams::read(q),
        }
    }
}

/// One member (`participant_id`, `role`) or several (`members`), not both.
#[derive(ToSchema)]
#[schema(example = json!({"participant_id": "550e8400-e29b-41d4-a716-446655440000", "role": "MEMBER"}))]
struct AddMembers {
    participant_id: Option<Uuid>,
    /// Default MEMBER.
    role: Option<Role>,
    /// Several at once: 1 to 100 distinct participants.
    #[schema(min_items = 1, max_items = 100)]
    members: Option<Vec<MemberInput>>,
    on_behalf_of_participant_id: Option<Uuid>,
}

impl Request for AddMembers {
    fn read(f: &Fields<'_>) -> Self {
        let (mut participant_id, role) = (f.opt_uuid("participant_id"), f.opt_word("role"));
        let members = match (f.contains("members"), participant_id) {
            (true, None) => {
                if role.is_some() {
                    f.reject("role", "absent", "give each member's role inside members");
                }
                Some(member_list(f, "members"))
            }
            (false, _) => {
                participant_id = Some(f.req_uuid("participant_id"));
                None
            }
            (true, Some(_)) => {
                f.reject(
                    "members",
                    "either participant_id or members",
                    "add one member with participant_id, or several with members, not both",
                );
                None
            }
        };
        AddMembers {
            participant_id,
            role,
            members,
            on_behalf_of_participant_id: f.opt_uuid("on_behalf_of_participant_id"),
        }
    }
}

#[derive(ToSchema)]
struct SetRole {
    role: Role,
    on_behalf_of_participant_id: Option<Uuid>,
}

impl AddMembers {
    /// The members to add: the list, or the one named.
    fn members(self) -> Vec<MemberInput> {
        match (self.members, self.participant_id) {
            (Some(members), _) => members,
            (None, Some(participant_id)) => vec![MemberInput {
                participant_id,
                role: self.role.unwrap_or(Role::Member),
            }],
            (None, None) => Vec::new(),
        }
    }
}

impl Request for SetRole {
    fn read(f: &Fields<'_>) -> Self {
        SetRole {
            role: f.req_word("role"),
            on_behalf_of_participant_id: f.opt_uuid("on_behalf_of_participant_id"),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct Message {
    #[schema(example = "Member(s) added to group")]
    message: String,
}

#[derive(Serialize, ToSchema)]
struct RoleUpdated {
    #[schema(example = "Member role updated")]
    message: String,
    participant_id: Uuid,
    role: Role,
}

#[utoipa::path(post, path = "/groups", tag = "groups", request_body = NewGroup,
    responses((status = 201, description = "Group created with its ledger entity.", body = Group), Rejected, NotFound))]
async fn create_group(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Valid(new): Valid<NewGroup>,
) -> Result<impl IntoResponse> {
    let group = groups::create(&s.pool, &actor, new).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

#[utoipa::path(get, path = "/groups", tag = "groups", params(PageParams, GroupFilter),
    responses((status = 200, body = Page<Group>), Rejected))]
async fn list_groups(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<GroupFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(groups::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/groups/{id}", tag = "groups", params(PathId),
    responses((status = 200, body = GroupDetail), Rejected, NotFound))]
async fn get_group(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(groups::get(&s.pool, &actor, id).await?))
}

#[utoipa::path(patch, path = "/groups/{id}", tag = "groups", params(PathId), request_body = RenameGroup,
    responses((status = 200, body = Group), Rejected, NotFound, Conflict))]
async fn rename_group(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<RenameGroup>,
) -> Result<impl IntoResponse> {
    Ok(Json(groups::rename(&s.pool, &actor, id, &body.name).await?))
}

/// Archives the group for good: it stays readable, with its balances and history, and nothing changes it.
#[utoipa::path(delete, path = "/groups/{id}", tag = "groups", params(PathId),
    responses((status = 200, description = "Group archived.", body = Group), Rejected, NotFound, Conflict))]
async fn archive_group(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(groups::archive(&s.pool, &actor, id).await?))
}

#[utoipa::path(get, path = "/groups/{id}/members", tag = "groups", params(PathId, PageParams, MembersQuery),
    responses((status = 200, body = Page<GroupMember>), Rejected, NotFound))]
async fn list_members(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(q): ValidQuery<MembersQuery>,
) -> Result<impl IntoResponse> {
    let include_former = q.include_former.unwrap_or(false);
    Ok(Json(
        groups::members(&s.pool, &actor, id, include_former, q.page).await?,
    ))
}

/// Adds participants; a former member comes back ACTIVE with the role given. Fails if any is already an
/// ACTIVE member.
#[utoipa::path(post, path = "/groups/{id}/members", tag = "groups", params(PathId), request_body = AddMembers,
    responses((status = 201, description = "Added.", body = Message), Rejected, NotFound, Conflict))]
async fn add_members(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<AddMembers>,
) -> Result<impl IntoResponse> {
    let on_behalf_of = body.on_behalf_of_participant_id;
    groups::add_members(&s.pool, &actor, id, &body.members(), on_behalf_of).await?;
    let message = "Member(s) added to group".into();
    Ok((StatusCode::CREATED, Json(Message { message })))
}

#[utoipa::path(patch, path = "/groups/{id}/members/{participant_id}", tag = "groups",
    params(("id" = Uuid, Path, description = "Group id"), ("participant_id" = Uuid, Path)), request_body = SetRole,
    responses((status = 200, body = RoleUpdated), Rejected, NotFound, Conflict))]
async fn set_role(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(id, participant_id): PathIds,
    Valid(body): Valid<SetRole>,
) -> Result<impl IntoResponse> {
    let on_behalf_of = body.on_behalf_of_participant_id;
    groups::set_role(&s.pool, &actor, id, participant_id, body.role, on_behalf_of).await?;
    Ok(Json(RoleUpdated {
        message: "Member role updated".into(),
        participant_id,
        role: body.role,
    }))
}

/// The member leaves (status LEFT); what the group holds stays with it.
#[utoipa::path(delete, path = "/groups/{id}/members/{participant_id}", tag = "groups",
    params(("id" = Uuid, Path, description = "Group id"), ("participant_id" = Uuid, Path)),
    responses((status = 200, description = "Member removed.", body = Message), Rejected, NotFound, Conflict))]
async fn remove_member(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(id, participant_id): PathIds,
) -> Result<impl IntoResponse> {
    groups::remove_member(&s.pool, &actor, id, participant_id).await?;
    let message = "Member removed".into();
    Ok(Json(Message { message }))
}

/// The groups the participant is an ACTIVE member of, oldest membership first; the first is the group rules
/// mean by the event's participant's group.
#[utoipa::path(get, path = "/participants/{id}/groups", tag = "groups", params(PathId, PageParams),
    responses((status = 200, body = Page<Membership>), Rejected, NotFound))]
async fn participant_groups(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        groups::of_participant(&s.pool, &actor, id, page).await?,
    ))
}
