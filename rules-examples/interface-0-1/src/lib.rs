//! A test fixture, not an example: a rule built against the 0.1.0 interface (`wit/0.1.0/rules.wit`), as
//! every module uploaded before 0.2.0 was. The server must keep running it unchanged: `points` (default 10)
//! of `asset_id` for every purchase, and the tag `interface-0-1`.

wit_bindgen::generate!({ path: "../../wit/0.1.0", world: "rule" });

use exports::scrip::rules::evaluator::Guest;
use scrip::rules::types::{Action, Credit, Event, Participant, RuleError, TagChange};

struct FirstInterface;

impl Guest for FirstInterface {
    fn evaluate(event: Event, _: Participant, config: String) -> Result<Vec<Action>, RuleError> {
        let data: serde_json::Value = serde_json::from_str(&event.data).unwrap_or_default();
        if data["type"] != "purchase" {
            return Ok(Vec::new());
        }
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        let asset_id = config["asset_id"]
            .as_str()
            .ok_or_else(|| RuleError::InvalidInput("config.asset_id is missing".into()))?;
        let points = config["points"].as_str().unwrap_or("10");
        Ok(vec![
            Action::Credit(Credit {
                asset_id: asset_id.to_owned(),
                amount: points.to_owned(),
                description: None,
                target: None,
            }),
            Action::Tag(TagChange {
                tag: "interface-0-1".into(),
                target: None,
            }),
        ])
    }
}

export!(FirstInterface);
