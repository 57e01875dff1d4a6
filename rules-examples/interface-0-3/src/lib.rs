//! A test fixture, not an example: a rule built against the 0.3.0 interface (`wit/0.3.0/rules.wit`), as every
//! module uploaded before 0.4.0 was. The server must keep running it unchanged: for every purchase, `points`
//! (default 10) of `asset_id` into HELD with the reference `order`, the tag `level-<key>-<rank>` for its level
//! in the tier `status` (0.3.0 gives each level with its rank), and the level `gold` of that tier.

wit_bindgen::generate!({ path: "../../wit/0.3.0", world: "rule" });

use exports::scrip::rules::evaluator::Guest;
use scrip::rules::types::{
    Action, Credit, CreditBucket, Event, Participant, RuleError, TagChange, TierChange,
};

struct ThirdInterface;

impl Guest for ThirdInterface {
    fn evaluate(event: Event, participant: Participant, config: String) -> Result<Vec<Action>, RuleError> {
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
        if data["type"] != "purchase" {
            return Ok(Vec::new());
        }
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        let asset_id = config["asset_id"]
            .as_str()
            .ok_or_else(|| RuleError::InvalidInput("config.asset_id is missing".into()))?;
        let points = config["points"].as_str().unwrap_or("10");
        let mut actions = vec![Action::Credit(Credit {
            asset_id: asset_id.to_owned(),
            amount: points.to_owned(),
            description: None,
            target: None,
            bucket: Some(CreditBucket::Held),
            expires_at: None,
            matures_at: None,
            reference_id: Some("order".into()),
        })];
        if let Some(level) = participant.tiers.iter().find(|t| t.tier == "status") {
            actions.push(Action::Tag(TagChange {
                tag: format!("level-{}-{}", level.level, level.rank),
                target: None,
            }));
        }
        actions.push(Action::SetTier(TierChange {
            tier: "status".into(),
            level: "gold".into(),
            expires_at: None,
            target: None,
        }));
        Ok(actions)
    }
}

export!(ThirdInterface);
