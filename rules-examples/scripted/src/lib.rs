//! A test fixture, not an example: returns the actions its config lists for the event's type, so a test can
//! drive every action of the interface through a real component. Config:
//! `{"on": {"<event type>": [{"type": "credit", "asset_id": "…", "amount": "10", …}, …]}}`, where `type` is
//! credit, debit, hold, release, forfeit or void-hold, and the optional `reference_id`, `expires_at`,
//! `matures_at`, `bucket` ("held") and `allow_negative` are passed on; or `set-tier` with `tier`, `level`
//! and an optional `expires_at`. Any action with `group` (a group id, or null for the participant's group)
//! applies to that group.

use scrip_rule::{
    Action, Config, Event, ForfeitBucket, Participant, Rule, RuleError, Target, credit, debit, forfeit,
    hold, release, set_tier, void_hold,
};
use serde_json::Value;

struct Scripted;

impl Rule for Scripted {
    fn evaluate(event: &Event, _: &Participant, config: &Config) -> Result<Vec<Action>, RuleError> {
        let Some(kind) = event.field::<String>("type")? else {
            return Ok(vec![]);
        };
        let script: Option<Value> = config.get("on")?;
        let listed = script
            .as_ref()
            .and_then(|on| on.get(&kind))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        listed
            .iter()
            .map(|spec| {
                let action = action(spec)?;
                Ok(match spec.get("group") {
                    Some(group) => action.to(Target::Group(group.as_str().map(str::to_owned))),
                    None => action,
                })
            })
            .collect()
    }
}

fn action(spec: &Value) -> Result<Action, RuleError> {
    let text = |name: &str| spec.get(name).and_then(Value::as_str).map(str::to_owned);
    let required = |name: &str| {
        text(name).ok_or_else(|| RuleError::InvalidInput(format!("an action needs {name}")))
    };
    if required("type")? == "set-tier" {
        let action = set_tier(required("tier")?, required("level")?);
        return Ok(match text("expires_at") {
            Some(when) => action.expires_at(when),
            None => action,
        });
    }
    let asset = required("asset_id")?;
    let amount = || required("amount");
    let mut action = match required("type")?.as_str() {
        "credit" => credit(&asset, amount()?),
        "debit" => {
            let mut action = debit(&asset, amount()?);
            if let Action::Debit(d) = &mut action {
                d.allow_negative = spec["allow_negative"] == true;
            }
            action
        }
        "hold" => hold(&asset, amount()?),
        // Without an amount: everything the reference selects.
        "release" => {
            let mut action = release(&asset, "0");
            if let Action::Release(b) = &mut action {
                b.amount = text("amount");
            }
            action
        }
        "forfeit" => {
            let mut action = forfeit(&asset, amount()?);
            if let (Action::Forfeit(f), Some("held")) = (&mut action, text("bucket").as_deref()) {
                f.bucket = ForfeitBucket::Held;
            }
            action
        }
        "void-hold" => void_hold(&asset, required("reference_id")?),
        other => return Err(RuleError::InvalidInput(format!("unknown action type {other}"))),
    };
    if let Some(reference) = text("reference_id") {
        action = action.reference(reference);
    }
    if let Some(when) = text("expires_at") {
        action = action.expires_at(when);
    }
    if let Some(when) = text("matures_at") {
        action = action.matures_at(when);
    }
    if text("bucket").as_deref() == Some("held") && matches!(action, Action::Credit(_)) {
        action = action.held();
    }
    Ok(action)
}

scrip_rule::export_rule!(Scripted);
