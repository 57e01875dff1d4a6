//! Benchmark: one rule evaluation, wasm against CEL, without the database. Usage (numbers in BENCHMARKS.md):
//!
//!     rules-examples/build.sh && cargo run --release -p scrip --example rule_eval -- 3000
//!
//! Wasm: the purchase-points component from `rules-examples/dist/`, each iteration a fresh store, instantiate
//! and call, as the event pipeline does (`Runtime::evaluate`); then the same split into its phases
//! (`Runtime::phases`) to show where the time goes. CEL: the quickstart rule's condition and an amount
//! expression, compiled once, evaluated against variables bound once per event (as the pipeline does);
//! binding them is timed on its own.

use scrip::rules::cel::{self, Variables};
use scrip::wasm::{Ceiling, Input, Limits, Outcome, Runtime};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn main() -> Result<(), scrip::BoxError> {
    let iterations: usize = std::env::args().nth(1).map_or(Ok(5_000), |n| n.parse())?;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../rules-examples/dist/purchase-points.wasm"
    );
    let bytes = std::fs::read(path)?;
    let runtime = Runtime::new(Ceiling::DEFAULT)?;
    let prepared = runtime.prepare(&bytes)?;
    let event = json!({"type": "purchase", "amount": "49.99", "sku": "A-1"});
    let input = |id: Uuid| Input {
        event_id: id,
        program_id: Uuid::nil(),
        timestamp: chrono::Utc::now(),
        data: event.clone(),
        participant_id: Uuid::nil(),
        external_id: "user_123".into(),
        tags: vec!["vip".into()],
        attributes: vec![("segment".into(), "premium".into())],
        counters: vec![("purchases".into(), "4".into())],
        tiers: vec![scrip::wasm::TierLevel {
            tier: "status".into(),
            level: "gold".into(),
            rank: 2,
            benefits: r#"{"points_multiplier": 2}"#.into(),
        }],
        balances: vec![(Uuid::nil().to_string(), "120".into())],
        config: json!({"asset_id": Uuid::nil(), "points": "10"}),
    };

    let mut wasm = Vec::with_capacity(iterations);
    let mut fuel = 0;
    for _ in 0..iterations {
        let input = input(Uuid::now_v7());
        let start = Instant::now();
        let outcome = runtime.evaluate(&prepared, &input, Limits::DEFAULT);
        wasm.push(start.elapsed());
        match outcome {
            Outcome::Actions { fuel: used, .. } => fuel = used,
            other => return Err(format!("purchase-points failed: {other:?}").into()),
        }
    }

    let names = [
        "store + WASI context",
        "input to WIT values",
        "instantiate",
        "call (lower, run, lift)",
        "drop (reset the instance)",
    ];
    let mut phases: [Vec<Duration>; 5] = Default::default();
    for _ in 0..iterations {
        let split = runtime.phases(&prepared, &input(Uuid::now_v7()), Limits::DEFAULT)?;
        for (times, took) in phases.iter_mut().zip(split) {
            times.push(took);
        }
    }

    let condition = cel::compile(r#"event.type == "purchase""#)?;
    let amount = cel::compile("double(event.amount) * 10.0")?;
    let participant = json!({"tags": ["vip"], "attributes": {}, "counters": {}});
    let bind = || {
        Variables::new(
            cel::from_json(&event),
            cel::from_json(&participant),
            chrono::Utc::now(),
        )
    };
    let (mut binding, mut cel_times) = (Vec::with_capacity(iterations), Vec::new());
    for _ in 0..iterations {
        let start = Instant::now();
        std::hint::black_box(bind());
        binding.push(start.elapsed());
    }
    let vars = bind();
    for _ in 0..iterations {
        let start = Instant::now();
        let matched = condition.condition(&vars)?;
        let points = amount.amount(&vars)?;
        cel_times.push(start.elapsed());
        std::hint::black_box((matched, points));
    }

    println!("component: {} bytes, {fuel} fuel per call", bytes.len());
    report("wasm instantiate + call", &mut wasm);
    for (name, times) in names.iter().zip(phases.iter_mut()) {
        report(&format!("  {name}"), times);
    }
    report("CEL condition + amount", &mut cel_times);
    report("  binding, once per event", &mut binding);
    Ok(())
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{name:<28} p50 {:>9.1?}  p99 {:>9.1?}  n={}",
        at(0.50),
        at(0.99),
        times.len()
    );
}
