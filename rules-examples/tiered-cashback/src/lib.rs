//! Cashback on a scale-2 asset: 1.5 % of the first 100.00 spent, 3 % of the rest, rounded to the cent.

use scrip_rule::{Action, Amount, Config, Event, Participant, Rule, RuleError, credit};

struct TieredCashback;

impl Rule for TieredCashback {
    fn evaluate(event: &Event, _: &Participant, config: &Config) -> Result<Vec<Action>, RuleError> {
        let Some(spent) = event.amount("amount")? else {
            return Ok(vec![]);
        };
        let threshold = Amount::parse("100.00").unwrap_or(Amount::ZERO);
        let low = spent.min(threshold).percent("1.5");
        let high = (spent - threshold).max(Amount::ZERO).percent("3");
        let cashback = (low + high).round(2);
        Ok(if cashback.is_positive() {
            vec![credit(config.text("asset_id")?, cashback)]
        } else {
            vec![]
        })
    }
}

scrip_rule::export_rule!(TieredCashback);
