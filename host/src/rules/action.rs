//! The action catalogue: what a rule's actions are, as the client writes them and as they are stored.

use crate::ledger::Bucket;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

crate::vocabulary!(
    /// What an action does.
    pub enum ActionType {
        Credit = "CREDIT",
        Debit = "DEBIT",
        Hold = "HOLD",
        Release = "RELEASE",
        Forfeit = "FORFEIT",
        VoidHold = "VOID_HOLD",
        Tag = "TAG",
        Untag = "UNTAG",
        Counter = "COUNTER",
        SetAttribute = "SET_ATTRIBUTE",
        SetTier = "SET_TIER",
        /// A SYSTEM event about the action's participant, after a delay (a one-time automation).
        ScheduleEvent = "SCHEDULE_EVENT",
        /// A SYSTEM event for each participant of the program (an immediate fan-out automation).
        Broadcast = "BROADCAST",
    }
);
crate::vocabulary!(
    /// What an action's target names.
    pub enum TargetType {
        Participant = "PARTICIPANT",
        /// The event's program itself: TAG and UNTAG only.
        Program = "PROGRAM",
        /// A group by `id`, or without one the group of the event's participant (its recipient if it has
        /// one): the ACTIVE group they joined first.
        Group = "GROUP",
    }
);
crate::api_enum!(pub CreditBucket = CREDIT_BUCKETS ["AVAILABLE", "HELD"]);

impl ActionType {
    /// Whether a SUSPENDED or CLOSED participant cannot be the target. Forfeit and void-hold are how value
    /// leaves a closed account; tags and attributes describe it.
    pub fn blocked_when_inactive(self) -> bool {
        use ActionType::*;
        match self {
            Credit | Debit | Hold | Release | Forfeit | Counter => true,
            VoidHold | Tag | Untag | SetAttribute | SetTier | ScheduleEvent | Broadcast => false,
        }
    }

    /// The fields an action of this type accepts, beyond `type` and `target`.
    pub fn fields(self) -> &'static [&'static str] {
        use ActionType::*;
        match self {
            Credit => &[
                "asset_id",
                "amount",
                "description",
                "bucket",
                "expires_at",
                "matures_at",
                "reference_id",
            ],
            Hold | Release => &["asset_id", "amount", "description", "reference_id"],
            Forfeit => &["asset_id", "amount", "description", "bucket"],
            VoidHold => &["asset_id", "description", "reference_id"],
            Debit => &["asset_id", "amount", "description", "allow_negative"],
            Tag | Untag => &["tag", "description"],
            Counter => &["key", "value", "reset_after", "description"],
            SetAttribute => &["key", "value", "description"],
            SetTier => &["tier", "level", "expires_at", "description"],
            ScheduleEvent => &["event_name", "delay", "payload", "description"],
            Broadcast => &["event_name", "payload", "description"],
        }
    }
}

/// An action as the client wrote it: one variant per type, with the fields that type takes. `amount` and
/// COUNTER's `value` are decimal literals or CEL; SET_ATTRIBUTE's `value`, `reference_id` and the target's ids
/// are static or CEL (see `cel::Template`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum Action {
    #[serde(rename = "CREDIT")]
    Credit(CreditAction),
    #[serde(rename = "DEBIT")]
    Debit(DebitAction),
    #[serde(rename = "HOLD")]
    Hold(HoldAction),
    #[serde(rename = "RELEASE")]
    Release(HoldAction),
    #[serde(rename = "FORFEIT")]
    Forfeit(ForfeitAction),
    #[serde(rename = "VOID_HOLD")]
    VoidHold(VoidHoldAction),
    #[serde(rename = "TAG")]
    Tag(TagAction),
    #[serde(rename = "UNTAG")]
    Untag(TagAction),
    #[serde(rename = "COUNTER")]
    Counter(CounterAction),
    #[serde(rename = "SET_ATTRIBUTE")]
    SetAttribute(AttributeAction),
    #[serde(rename = "SET_TIER")]
    SetTier(TierAction),
    #[serde(rename = "SCHEDULE_EVENT")]
    ScheduleEvent(ScheduleAction),
    #[serde(rename = "BROADCAST")]
    Broadcast(BroadcastAction),
}

/// Issues value to the target from the asset's source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CreditAction {
    pub asset_id: Uuid,
    pub amount: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// LOT assets: `AVAILABLE` (default) or `HELD` (a provisional accrual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<CreditBucket>)]
    pub bucket: Option<Bucket>,
    /// LOT assets: a Go duration from the event's time, or an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matures_at: Option<String>,
    /// LOT assets: stamps the lot (static or CEL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Returns value from the target to the asset's source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DebitAction {
    pub asset_id: Uuid,
    pub amount: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Let the balance go below zero.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_negative: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// HOLD and RELEASE: the amount, or everything selected when absent; on LOT assets `reference_id` picks lots.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct HoldAction {
    pub asset_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Takes value from `bucket` to breakage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ForfeitAction {
    pub asset_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[schema(value_type = CreditBucket)]
    pub bucket: Bucket,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Returns the provisional accrual of `reference_id` to its source (LOT assets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct VoidHoldAction {
    pub asset_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub reference_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// TAG and UNTAG.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TagAction {
    pub tag: String,
    /// Kept with the rule, as on every action; state changes record no description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Adds `value` (default 1) to a counter, optionally in a window that resets after `reset_after`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CounterAction {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_after: Option<String>,
    /// Kept with the rule, as on every action; state changes record no description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AttributeAction {
    pub key: String,
    pub value: String,
    /// Kept with the rule, as on every action; state changes record no description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// Gives the target a level of one of the program's tiers; skipped when the tier is archived.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct TierAction {
    /// The tier's key.
    pub tier: String,
    /// A level key of the tier.
    pub level: String,
    /// When the level is lost: a Go duration from the event's time, or an RFC 3339 timestamp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Kept with the rule, as on every action; state changes record no description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// A SYSTEM event `event_name` (with `payload`) about the action's participant, `delay` after the event's time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ScheduleAction {
    pub event_name: String,
    /// A Go duration, from the event's time.
    pub delay: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
}

/// A SYSTEM event `event_name` (with `payload`) for every participant of the program.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct BroadcastAction {
    pub event_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Action {
    pub fn kind(&self) -> ActionType {
        match self {
            Action::Credit(_) => ActionType::Credit,
            Action::Debit(_) => ActionType::Debit,
            Action::Hold(_) => ActionType::Hold,
            Action::Release(_) => ActionType::Release,
            Action::Forfeit(_) => ActionType::Forfeit,
            Action::VoidHold(_) => ActionType::VoidHold,
            Action::Tag(_) => ActionType::Tag,
            Action::Untag(_) => ActionType::Untag,
            Action::Counter(_) => ActionType::Counter,
            Action::SetAttribute(_) => ActionType::SetAttribute,
            Action::SetTier(_) => ActionType::SetTier,
            Action::ScheduleEvent(_) => ActionType::ScheduleEvent,
            Action::Broadcast(_) => ActionType::Broadcast,
        }
    }

    /// The asset a balance action moves, and its amount as written (absent: everything selected).
    pub fn money(&self) -> Option<(Uuid, Option<&str>)> {
        match self {
            Action::Credit(c) => Some((c.asset_id, Some(c.amount.as_str()))),
            Action::Debit(d) => Some((d.asset_id, Some(d.amount.as_str()))),
            Action::Hold(h) | Action::Release(h) => Some((h.asset_id, h.amount.as_deref())),
            Action::Forfeit(f) => Some((f.asset_id, f.amount.as_deref())),
            Action::VoidHold(v) => Some((v.asset_id, None)),
            Action::Tag(_)
            | Action::Untag(_)
            | Action::Counter(_)
            | Action::SetAttribute(_)
            | Action::SetTier(_)
            | Action::ScheduleEvent(_)
            | Action::Broadcast(_) => None,
        }
    }

    /// Whether the action can only work on a LOT asset's lots.
    pub fn needs_lots(&self) -> bool {
        match self {
            Action::Credit(c) => {
                c.bucket == Some(Bucket::Held)
                    || c.expires_at.is_some()
                    || c.matures_at.is_some()
                    || c.reference_id.is_some()
            }
            Action::Hold(h) | Action::Release(h) => h.reference_id.is_some(),
            Action::VoidHold(_) => true,
            _ => false,
        }
    }

    pub fn target(&self) -> Option<&Target> {
        match self {
            Action::Credit(c) => c.target.as_ref(),
            Action::Debit(d) => d.target.as_ref(),
            Action::Hold(h) | Action::Release(h) => h.target.as_ref(),
            Action::Forfeit(f) => f.target.as_ref(),
            Action::VoidHold(v) => v.target.as_ref(),
            Action::Tag(t) | Action::Untag(t) => t.target.as_ref(),
            Action::Counter(c) => c.target.as_ref(),
            Action::SetAttribute(a) => a.target.as_ref(),
            Action::SetTier(t) => t.target.as_ref(),
            Action::ScheduleEvent(s) => s.target.as_ref(),
            Action::Broadcast(_) => None,
        }
    }
}

/// When a lot expires or matures: after a duration from the event's time, or at a fixed time.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    After(chrono::Duration),
    At(DateTime<Utc>),
}

impl When {
    pub fn parse(text: &str) -> Option<When> {
        crate::duration::parse(text).map(When::After).or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| When::At(t.to_utc()))
        })
    }

    pub fn from(&self, event_time: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            When::After(length) => event_time + *length,
            When::At(at) => *at,
        }
    }
}

/// Whom an action applies to; the event's participant (or its recipient) when absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Target {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<TargetType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Rules store their actions as JSON: every type reads back into its variant and writes out unchanged.
    #[test]
    fn every_action_type_reads_and_writes_as_the_client_wrote_it() {
        let asset = "550e8400-e29b-41d4-a716-446655440001";
        let written = json!([
            {"type": "CREDIT", "asset_id": asset, "amount": "event.amount * 2.0", "bucket": "HELD",
             "expires_at": "8760h", "reference_id": "order-{{event.id}}", "target": {"external_id": "bob"}},
            {"type": "DEBIT", "asset_id": asset, "amount": "5", "allow_negative": true},
            {"type": "HOLD", "asset_id": asset, "amount": "5", "reference_id": "r1"},
            {"type": "RELEASE", "asset_id": asset},
            {"type": "FORFEIT", "asset_id": asset, "bucket": "AVAILABLE"},
            {"type": "VOID_HOLD", "asset_id": asset, "reference_id": "r1", "description": "cancelled"},
            {"type": "TAG", "tag": "vip"},
            {"type": "UNTAG", "tag": "vip"},
            {"type": "COUNTER", "key": "visits", "value": "2", "reset_after": "720h"},
            {"type": "SET_ATTRIBUTE", "key": "tier", "value": "gold"},
            {"type": "SET_TIER", "tier": "status", "level": "gold", "expires_at": "8760h"},
            {"type": "SCHEDULE_EVENT", "event_name": "check_in", "delay": "24h", "payload": {"step": 2}},
            {"type": "BROADCAST", "event_name": "double_points_weekend"},
        ]);
        let actions: Vec<Action> =
            serde_json::from_value(written.clone()).expect("every type reads");
        let kinds: Vec<&str> = actions.iter().map(|a| a.kind().as_str()).collect();
        assert_eq!(kinds, ActionType::NAMES);
        assert_eq!(serde_json::to_value(&actions).expect("writes"), written);
    }

    #[test]
    fn an_unknown_action_type_does_not_read() {
        let unknown = json!({"type": "BROADCAST_ALL", "event_name": "promo"});
        assert!(serde_json::from_value::<Action>(unknown).is_err());
    }
}
