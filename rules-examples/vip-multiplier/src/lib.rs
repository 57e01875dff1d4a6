//! One point per whole unit spent; VIPs earn double, and members of the program's `status` tier earn their
//! level's `points_multiplier` benefit. The fifth purchase makes a participant a VIP.

use scrip_rule::{Action, Amount, Config, Event, Participant, Rule, RuleError, count, credit, tag};

struct VipMultiplier;

impl Rule for VipMultiplier {
    fn evaluate(
        event: &Event,
        participant: &Participant,
        config: &Config,
    ) -> Result<Vec<Action>, RuleError> {
        let Some(spent) = event.amount("amount")? else {
            return Ok(vec![]);
        };
        let multiplier = if participant.has_tag("vip") {
            Amount::whole(2)
        } else {
            participant
                .benefit("status", "points_multiplier")
                .and_then(|m| Amount::parse(&m.to_string()))
                .unwrap_or(Amount::whole(1))
        };
        let points = (spent.round(0) * multiplier).round(0);
        let mut actions = vec![
            credit(config.text("asset_id")?, points),
            count("purchases", "1"),
        ];
        // Counters are as the event began: this is the fifth purchase when four came before.
        if participant.counter("purchases") == Amount::whole(4) {
            actions.push(tag("vip"));
        }
        Ok(actions)
    }
}

scrip_rule::export_rule!(VipMultiplier);
