//! Replays the fuzz corpus (`host/fuzz/corpus/<target>`, which keeps every crash found once it is fixed)
//! through the functions the fuzz targets call: an input that once broke a parser, CEL or request validation
//! fails this test if it breaks it again.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
    for input in inputs {
        let data = std::fs::read(&input).unwrap_or_else(|err| panic!("{}: {err}", input.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} breaks {target}", input.display());
    }
}

#[test]
fn the_cel_corpus_compiles_and_evaluates_without_panicking() {
    replay("cel", scrip::fuzzing::cel);
}

#[test]
fn the_parser_corpus_keeps_amounts_and_durations_well_formed() {
    replay("parsers", scrip::fuzzing::parsers);
}

#[test]
fn the_request_corpus_is_validated_without_panicking() {
    replay("requests", scrip::fuzzing::requests);
}
