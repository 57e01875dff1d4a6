//! What the fuzz targets in `host/fuzz` exercise: each function takes arbitrary bytes and must neither panic
//! nor hang, whatever they are, and checks what must hold of what it accepts. The targets call these, and
//! the test suite replays the committed corpus and every crash found through them, so a fixed crash stays
//! fixed without an instrumented build.

use crate::rules::cel;
use crate::validation::{Request, Validator, query_map};
use chrono::{TimeZone, Utc};
use serde_json::{Value, json};

/// The bytes as a rule's CEL condition and as an amount expression, with the rules' caps; what compiles is
/// evaluated against a fixed event and participant.
pub fn cel(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let event = json!({"type": "purchase", "amount": 42.5, "currency": "EUR", "tags": ["vip", "web"],
        "items": [{"sku": "A1", "price": 19.99, "qty": 2}, {"sku": "B2", "price": 2.5, "qty": 1}],
        "customer": {"since": "2024-01-01T00:00:00Z", "country": "FR"}});
    let participant = json!({"tags": ["gold"], "counters": {"visits": 3}, "attributes": {"tier": "gold"},
        "tiers": {}});
    let now = Utc
        .with_ymd_and_hms(2026, 1, 2, 3, 4, 5)
        .single()
        .unwrap_or_default();
    let vars = cel::Variables::new(cel::from_json(&event), cel::from_json(&participant), now);
    let compiled = [cel::compile_condition(source), cel::compile(source)];
    for expression in compiled.into_iter().flatten() {
        let _ = expression.condition(&vars);
        let _ = expression.amount(&vars);
        let _ = expression.evaluate(&vars);
    }
    if let Ok(template) = cel::Template::parse(source) {
        let _ = template.render(&vars);
    }
}

/// The bytes as an amount and as a duration. An amount that parses reads back the same from its text and
/// formats at any scale; a duration that parses is positive and within the longest accepted.
pub fn parsers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(amount) = crate::money::parse_amount(text) {
        assert_eq!(
            crate::money::parse(&amount.to_string()),
            Some(amount),
            "{text}"
        );
        for scale in [0, 2, 18] {
            let shown = crate::money::format(amount, scale);
            assert!(
                crate::money::parse(&shown).is_some(),
                "{text} shows as {shown}"
            );
        }
    }
    if let Some(duration) = crate::duration::parse(text) {
        assert!(duration > chrono::Duration::zero(), "{text}");
        assert!(
            duration <= chrono::Duration::hours(crate::duration::MAX_HOURS),
            "{text}"
        );
    }
}

/// The bytes as a JSON request body, read by request types of every kind of operation; and, when they are
/// an object, its members as a query string read by list filters.
pub fn requests(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    read_body::<crate::programs::NewProgram>(&body);
    read_body::<crate::programs::ProgramPatch>(&body);
    read_body::<crate::assets::NewAsset>(&body);
    read_body::<crate::assets::AssetPatch>(&body);
    read_body::<crate::balances::Adjustment>(&body);
    read_body::<crate::rewards::NewReward>(&body);
    read_body::<crate::rewards::RewardPatch>(&body);
    read_body::<crate::redemptions::AmountRedemption>(&body);
    read_body::<crate::redemptions::ItemRedemption>(&body);
    read_body::<crate::redemptions::ReversalRequest>(&body);
    read_body::<crate::tiers::NewTier>(&body);
    read_body::<crate::tiers::TierPatch>(&body);
    let Value::Object(members) = &body else {
        return;
    };
    let pairs = members
        .iter()
        .map(|(key, value)| {
            let text = value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            (key.clone(), text)
        })
        .collect();
    let query = Value::Object(query_map(pairs));
    read_query::<crate::ledger::EntryFilter>(&query);
    read_query::<crate::rewards::RewardFilter>(&query);
    read_query::<crate::redemptions::RedemptionFilter>(&query);
    read_query::<crate::reports::liability::SummaryQuery>(&query);
    read_query::<crate::reports::liability::RollforwardQuery>(&query);
    read_query::<crate::reports::liability::ScheduleQuery>(&query);
    read_query::<crate::pagination::PageParams>(&query);
}

fn read_body<T: Request>(body: &Value) {
    let v = Validator::new();
    if let Ok(fields) = v.body(body) {
        T::read(&fields);
    }
    let _ = v.finish();
}

fn read_query<T: Request>(query: &Value) {
    let Value::Object(map) = query else {
        return;
    };
    let v = Validator::new();
    T::read(&v.query(map));
    let _ = v.finish();
}
