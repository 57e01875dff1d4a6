//! On signup with a referrer: 500 to the referrer (by their external id) and 100 to the new participant.

use scrip_rule::{Action, Config, Event, Participant, Rule, RuleError, Target, credit, credit_to};

struct ReferralBonus;

impl Rule for ReferralBonus {
    fn evaluate(event: &Event, _: &Participant, config: &Config) -> Result<Vec<Action>, RuleError> {
        let (Some("signup"), Some(referrer)) = (
            event.field::<String>("type")?.as_deref(),
            event.field::<String>("referrer_id")?,
        ) else {
            return Ok(vec![]);
        };
        let asset = config.text("asset_id")?;
        Ok(vec![
            credit_to(Target::ExternalId(referrer), asset.clone(), "500"),
            credit(asset, "100"),
        ])
    }
}

scrip_rule::export_rule!(ReferralBonus);
