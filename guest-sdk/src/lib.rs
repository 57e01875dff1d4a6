//! Write a Scrip rule in Rust, compile it to a WebAssembly component and upload it: the server runs it for
//! every event of its program, in a fresh, fuel-limited sandbox, and applies the actions it returns exactly as
//! it applies a CEL rule's.
//!
//! ```ignore
//! use scrip_rule::{Action, Config, Event, Participant, Rule, RuleError, credit};
//!
//! struct PurchasePoints;
//!
//! impl Rule for PurchasePoints {
//!     fn evaluate(event: &Event, _: &Participant, config: &Config) -> Result<Vec<Action>, RuleError> {
//!         let kind: Option<String> = event.field("type")?;
//!         Ok(match kind.as_deref() {
//!             Some("purchase") => vec![credit(config.text("asset_id")?, "10")],
//!             _ => vec![],
//!         })
//!     }
//! }
//!
//! scrip_rule::export_rule!(PurchasePoints);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`. The component exports
//! `scrip:rules/evaluator@0.4.0`; the server also runs components built with 0.3, 0.2 or 0.1 of this crate
//! (`@0.3.0`, `@0.2.0`, `@0.1.0`), and refuses any other interface.

mod amount;

pub use amount::Amount;

/// Generated from `wit/rules.wit`; rules use the re-exports below instead.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "rule",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "scrip_rule::bindings",
    });
}

use bindings::scrip::rules::types as wit;
pub use wit::{
    Action, AttributeChange, BalanceChange, CounterChange, Credit, CreditBucket, Debit, Forfeit,
    ForfeitBucket, RuleError, TagChange, Target, TierChange, TierLevel,
};

/// JSON text from the host, parsed on first use: a rule that never reads it never pays for parsing.
struct Json {
    text: String,
    value: std::cell::OnceCell<serde_json::Value>,
}

impl Json {
    fn new(text: String) -> Json {
        Json {
            text,
            value: std::cell::OnceCell::new(),
        }
    }

    fn value(&self) -> &serde_json::Value {
        self.value
            .get_or_init(|| serde_json::from_str(&self.text).unwrap_or(serde_json::Value::Null))
    }

    /// A member; `None` when it is absent or null.
    fn member(&self, name: &str) -> Option<&serde_json::Value> {
        self.value().get(name).filter(|v| !v.is_null())
    }

    /// A member read into `T`; `what` names it in the error.
    fn read<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
        what: &str,
    ) -> Result<Option<T>, RuleError> {
        self.member(name)
            .map(|value| {
                T::deserialize(value)
                    .map_err(|e| RuleError::InvalidInput(format!("{what}{name}: {e}")))
            })
            .transpose()
    }

    /// A member as an exact decimal, written as a string or a number.
    fn amount(&self, name: &str, what: &str) -> Result<Option<Amount>, RuleError> {
        self.member(name)
            .map(|value| {
                Amount::from_json(value)
                    .ok_or_else(|| RuleError::InvalidInput(format!("{what}{name} is not a number")))
            })
            .transpose()
    }
}

/// The event being processed.
pub struct Event {
    pub id: String,
    pub program_id: String,
    /// RFC 3339.
    pub timestamp: String,
    data: Json,
}

impl Event {
    /// The client's `event_data`.
    pub fn data(&self) -> &serde_json::Value {
        self.data.value()
    }

    /// The client's `event_data` as the JSON text it arrived as.
    pub fn data_text(&self) -> &str {
        &self.data.text
    }

    /// `event_data` read into your own type.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, RuleError> {
        serde_json::from_str(&self.data.text).map_err(|e| RuleError::InvalidInput(e.to_string()))
    }

    /// One field of `event_data`; `None` when it is absent or null.
    pub fn field<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, RuleError> {
        self.data.read(name, "")
    }

    /// A numeric field as an exact decimal (JSON numbers keep the digits they were sent with).
    pub fn amount(&self, name: &str) -> Result<Option<Amount>, RuleError> {
        self.data.amount(name, "")
    }
}

/// The participant the event is about, as the event began.
pub struct Participant {
    pub id: String,
    pub external_id: String,
    pub tags: Vec<String>,
    pub attributes: Vec<(String, String)>,
    pub counters: Vec<(String, String)>,
    pub balances: Vec<(String, String)>,
    /// Its levels in the program's tiers; a tier where it is at the base is not listed.
    pub tiers: Vec<TierLevel>,
}

impl Participant {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.eq_ignore_ascii_case(tag))
    }

    pub fn attribute(&self, key: &str) -> Option<&str> {
        lookup(&self.attributes, key)
    }

    /// The AVAILABLE balance in an asset; zero when the participant has none.
    pub fn balance(&self, asset_id: &str) -> Amount {
        lookup(&self.balances, asset_id)
            .and_then(Amount::parse)
            .unwrap_or(Amount::ZERO)
    }

    /// The participant's level (its key) in the program's tier with this key, if any.
    pub fn tier(&self, tier: &str) -> Option<&str> {
        self.level(tier).map(|l| l.level.as_str())
    }

    /// The participant's level in the program's tier with this key, with its rank and benefits, if any.
    pub fn level(&self, tier: &str) -> Option<&TierLevel> {
        self.tiers.iter().find(|l| l.tier == tier)
    }

    /// A benefit of the participant's level in the tier (`benefit("status", "points_multiplier")`); `None`
    /// at the base, or when the level does not have it.
    pub fn benefit(&self, tier: &str, name: &str) -> Option<serde_json::Value> {
        let level = self.level(tier)?;
        let benefits: serde_json::Value = serde_json::from_str(&level.benefits).ok()?;
        benefits.get(name).cloned()
    }

    /// A counter's value; zero when the participant has none.
    pub fn counter(&self, key: &str) -> Amount {
        lookup(&self.counters, key)
            .and_then(Amount::parse)
            .unwrap_or(Amount::ZERO)
    }
}

fn lookup<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The rule's `config`: what this deployment of the module is set up with.
pub struct Config(Json);

impl Config {
    pub fn get<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<Option<T>, RuleError> {
        self.0.read(name, "config ")
    }

    /// A text setting the rule cannot do without (an asset id, say).
    pub fn text(&self, name: &str) -> Result<String, RuleError> {
        self.get::<String>(name)?
            .ok_or_else(|| RuleError::InvalidInput(format!("config {name} is missing")))
    }

    /// A decimal setting, written as a string or a number.
    pub fn amount(&self, name: &str) -> Result<Option<Amount>, RuleError> {
        self.0.amount(name, "config ")
    }
}

/// A rule: what an event earns.
pub trait Rule {
    fn evaluate(
        event: &Event,
        participant: &Participant,
        config: &Config,
    ) -> Result<Vec<Action>, RuleError>;
}

/// Credits `amount` (a decimal string or an [`Amount`]) of the asset to the event's participant. On LOT
/// assets, [`Action::expires_at`], [`Action::matures_at`], [`Action::reference`] and [`Action::held`] say
/// what the lot is.
pub fn credit(asset_id: impl Into<String>, amount: impl ToString) -> Action {
    Action::Credit(Credit {
        asset_id: asset_id.into(),
        amount: amount.to_string(),
        description: None,
        target: None,
        bucket: None,
        expires_at: None,
        matures_at: None,
        reference_id: None,
    })
}

/// Credits another participant, named by their external id (a referrer, say).
pub fn credit_to(target: Target, asset_id: impl Into<String>, amount: impl ToString) -> Action {
    let mut action = credit(asset_id, amount);
    if let Action::Credit(c) = &mut action {
        c.target = Some(target);
    }
    action
}

fn balance_change(asset_id: impl Into<String>, amount: Option<String>) -> BalanceChange {
    BalanceChange {
        asset_id: asset_id.into(),
        amount,
        description: None,
        reference_id: None,
        target: None,
    }
}

/// Moves `amount` from AVAILABLE to HELD (on LOT assets, [`Action::reference`] stamps the lots held).
pub fn hold(asset_id: impl Into<String>, amount: impl ToString) -> Action {
    Action::Hold(balance_change(asset_id, Some(amount.to_string())))
}

/// Moves `amount` from HELD back to AVAILABLE; on LOT assets [`Action::reference`] selects the lots.
pub fn release(asset_id: impl Into<String>, amount: impl ToString) -> Action {
    Action::Release(balance_change(asset_id, Some(amount.to_string())))
}

/// Takes `amount` of AVAILABLE value from the participant for good.
pub fn forfeit(asset_id: impl Into<String>, amount: impl ToString) -> Action {
    Action::Forfeit(Forfeit {
        asset_id: asset_id.into(),
        amount: Some(amount.to_string()),
        bucket: ForfeitBucket::Available,
        description: None,
        reference_id: None,
        target: None,
    })
}

/// Returns the provisional (HELD) lots stamped `reference_id` to their source (LOT assets).
pub fn void_hold(asset_id: impl Into<String>, reference_id: impl Into<String>) -> Action {
    let mut change = balance_change(asset_id, None);
    change.reference_id = Some(reference_id.into());
    Action::VoidHold(change)
}

impl Action {
    /// A credit's lot, or a level set by `set_tier`, expires after a Go duration from the event's time
    /// ("8760h"), or at an RFC 3339 time.
    pub fn expires_at(mut self, when: impl Into<String>) -> Action {
        match &mut self {
            Action::Credit(c) => c.expires_at = Some(when.into()),
            Action::SetTier(t) => t.expires_at = Some(when.into()),
            _ => {}
        }
        self
    }

    /// A credit's lot is DEFERRED until this duration from the event's time, or this RFC 3339 time.
    pub fn matures_at(mut self, when: impl Into<String>) -> Action {
        if let Action::Credit(c) = &mut self {
            c.matures_at = Some(when.into());
        }
        self
    }

    /// Stamps a credit's lot, or selects the lots of a hold, release, forfeit or void-hold.
    pub fn reference(mut self, reference_id: impl Into<String>) -> Action {
        let reference_id = Some(reference_id.into());
        match &mut self {
            Action::Credit(c) => c.reference_id = reference_id,
            Action::Hold(b) | Action::Release(b) | Action::VoidHold(b) => {
                b.reference_id = reference_id
            }
            Action::Forfeit(f) => f.reference_id = reference_id,
            _ => {}
        }
        self
    }

    /// A credit into HELD: a provisional accrual, settled by a later credit with the same reference.
    pub fn held(mut self) -> Action {
        if let Action::Credit(c) = &mut self {
            c.bucket = Some(CreditBucket::Held);
        }
        self
    }

    /// Applies the action to `target` instead of the event's participant: another participant, or a group
    /// (`Target::Group(None)`: the participant's own).
    pub fn to(mut self, target: Target) -> Action {
        let target = Some(target);
        match &mut self {
            Action::Credit(c) => c.target = target,
            Action::Debit(d) => d.target = target,
            Action::Tag(t) | Action::Untag(t) => t.target = target,
            Action::Counter(c) => c.target = target,
            Action::SetAttribute(a) => a.target = target,
            Action::Hold(b) | Action::Release(b) | Action::VoidHold(b) => b.target = target,
            Action::Forfeit(f) => f.target = target,
            Action::SetTier(t) => t.target = target,
        }
        self
    }
}

pub fn debit(asset_id: impl Into<String>, amount: impl ToString) -> Action {
    Action::Debit(Debit {
        asset_id: asset_id.into(),
        amount: amount.to_string(),
        description: None,
        allow_negative: false,
        target: None,
    })
}

pub fn tag(tag: impl Into<String>) -> Action {
    Action::Tag(TagChange {
        tag: tag.into(),
        target: None,
    })
}

pub fn untag(tag: impl Into<String>) -> Action {
    Action::Untag(TagChange {
        tag: tag.into(),
        target: None,
    })
}

/// Adds `value` to a counter.
pub fn count(key: impl Into<String>, value: impl ToString) -> Action {
    Action::Counter(CounterChange {
        key: key.into(),
        value: value.to_string(),
        reset_after: None,
        target: None,
    })
}

pub fn set_attribute(key: impl Into<String>, value: impl Into<String>) -> Action {
    Action::SetAttribute(AttributeChange {
        key: key.into(),
        value: value.into(),
        target: None,
    })
}

/// Gives the participant `level` of the program's tier `tier` (skipped when the tier is archived).
pub fn set_tier(tier: impl Into<String>, level: impl Into<String>) -> Action {
    Action::SetTier(TierChange {
        tier: tier.into(),
        level: level.into(),
        expires_at: None,
        target: None,
    })
}

#[doc(hidden)]
pub fn __event(e: wit::Event) -> Event {
    Event {
        id: e.id,
        program_id: e.program_id,
        timestamp: e.timestamp,
        data: Json::new(e.data),
    }
}

#[doc(hidden)]
pub fn __config(text: String) -> Config {
    Config(Json::new(text))
}

#[doc(hidden)]
pub fn __participant(p: wit::Participant) -> Participant {
    Participant {
        id: p.id,
        external_id: p.external_id,
        tags: p.tags,
        attributes: p.attributes,
        counters: p.counters,
        balances: p.balances,
        tiers: p.tiers,
    }
}

/// Exports a [`Rule`] as the component's `scrip:rules/evaluator@0.4.0`.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty) => {
        #[doc(hidden)]
        pub struct __ScripRule;

        impl $crate::bindings::exports::scrip::rules::evaluator::Guest for __ScripRule {
            fn evaluate(
                event: $crate::bindings::scrip::rules::types::Event,
                participant: $crate::bindings::scrip::rules::types::Participant,
                config: String,
            ) -> Result<Vec<$crate::Action>, $crate::RuleError> {
                let (event, participant, config) =
                    ($crate::__event(event), $crate::__participant(participant), $crate::__config(config));
                <$rule as $crate::Rule>::evaluate(&event, &participant, &config)
            }
        }

        $crate::bindings::export_bindings!(__ScripRule with_types_in $crate::bindings);
    };
}
