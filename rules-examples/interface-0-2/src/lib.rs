//! A test fixture, not an example: a rule built against the 0.2.0 interface (`wit/0.2.0/rules.wit`), as every
//! module uploaded before 0.3.0 was. The server must keep running it unchanged: for every purchase, `points`
//! (default 10) of `asset_id` into HELD with the reference `order`, and the tag `level-<key>` for its level in
//! the tier `status` (which 0.2.0 gives as level key per tier key).

wit_bindgen::generate!({ path: "../../wit/0.2.0", world: "rule" });

use exports::scrip::rules::evaluator::Guest;
use scrip::rules::types::{Action, Credit, CreditBucket, Event, Participant, RuleError, TagChange};

struct SecondInterface;

impl Guest for SecondInterface {
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
        if let Some((_, level)) = participant.tiers.iter().find(|(tier, _)| tier == "status") {
            actions.push(Action::Tag(TagChange {
                tag: format!("level-{level}"),
                target: None,
            }));
        }
        Ok(actions)
    }
}

export!(SecondInterface);
