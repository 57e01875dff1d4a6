//! A test fixture, not an example: a component built against an earlier draft of the rule interface
//! (`wit/rules.wit` here). It exports `scrip:rules/evaluator@0.1.0` with the wrong signature, so the server
//! must refuse it at upload.

wit_bindgen::generate!({ path: "wit", world: "rule" });

use exports::scrip::rules::evaluator::Guest;
use scrip::rules::types::{Action, Event, RuleError};

struct Stale;

impl Guest for Stale {
    fn evaluate(_: Event, _: String) -> Result<Vec<Action>, RuleError> {
        Ok(Vec::new())
    }
}

export!(Stale);
