//! The quickstart's rule as a component: `points` (default 10) of `asset_id` for every purchase.

use scrip_rule::{Action, Config, Event, Participant, Rule, RuleError, credit};

struct PurchasePoints;

impl Rule for PurchasePoints {
    fn evaluate(event: &Event, _: &Participant, config: &Config) -> Result<Vec<Action>, RuleError> {
        if event.field::<String>("type")?.as_deref() != Some("purchase") {
            return Ok(vec![]);
        }
        let points = config
            .amount("points")?
            .unwrap_or(scrip_rule::Amount::whole(10));
        Ok(vec![credit(config.text("asset_id")?, points)])
    }
}

scrip_rule::export_rule!(PurchasePoints);
