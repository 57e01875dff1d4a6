//! The quickstart's rule as a component: `points` (default 10) of `asset_id` for every purchase, until the
//! participant holds `max_balance` (optional) of it.

use scrip_rule::{Action, Amount, Config, Event, Participant, Rule, RuleError, credit};

struct PurchasePoints;

impl Rule for PurchasePoints {
    fn evaluate(
        event: &Event,
        participant: &Participant,
        config: &Config,
    ) -> Result<Vec<Action>, RuleError> {
        if event.field::<String>("type")?.as_deref() != Some("purchase") {
            return Ok(vec![]);
        }
        let asset = config.text("asset_id")?;
        if let Some(cap) = config.amount("max_balance")?
            && participant.balance(&asset) >= cap
        {
            return Ok(vec![]);
        }
        let points = config.amount("points")?.unwrap_or(Amount::whole(10));
        Ok(vec![credit(asset, points)])
    }
}

scrip_rule::export_rule!(PurchasePoints);
