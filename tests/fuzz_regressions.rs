//! Inputs that the cargo-fuzz targets in `fuzz/` found to break a property,
//! minimised, kept in `fuzz/regressions/<target>/` and checked here with the
//! same property on stable Rust (`fuzz/properties.rs`, shared with the
//! targets), so CI keeps them fixed once they are.

#[path = "../fuzz/properties.rs"]
mod properties;

use properties::{command_round_trips, tag_properties};

#[test]
fn command_mail_bare_path_literal_gt() {
    command_round_trips(include_bytes!("../fuzz/regressions/command/mail-bare-path-literal-gt"));
}

#[test]
fn command_rcpt_bare_path_literal_gt() {
    command_round_trips(include_bytes!("../fuzz/regressions/command/rcpt-bare-path-literal-gt"));
}

#[test]
fn command_mail_bare_path_literal_quote() {
    command_round_trips(include_bytes!("../fuzz/regressions/command/mail-bare-path-literal-quote"));
}

#[test]
fn command_rcpt_bare_path_literal_quote() {
    command_round_trips(include_bytes!("../fuzz/regressions/command/rcpt-bare-path-literal-quote"));
}

#[test]
fn command_mail_quoted_local_literal_at() {
    command_round_trips(include_bytes!("../fuzz/regressions/command/mail-quoted-local-literal-at"));
}

#[test]
fn tag_sha256_titlecase_ascii_folded() {
    tag_properties(include_bytes!("../fuzz/regressions/tag/sha256-titlecase-ascii-folded"));
}

/// The cause of `command/mail-quoted-local-literal-at` at the level of
/// `Mailbox`, whose printed form must parse back to it.
#[test]
fn tag_mailbox_quoted_local_literal_at() {
    tag_properties(include_bytes!("../fuzz/regressions/tag/mailbox-quoted-local-literal-at"));
}

/// Every file in a folder of `fuzz/`, in name order.
fn inputs(folder: &str) -> Vec<Vec<u8>> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&folder).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", folder.display());
    files.into_iter().map(|path| std::fs::read(path).unwrap()).collect()
}

/// The seed inputs of the two targets, which hold today, keep holding.
#[test]
fn seeds_keep_their_properties() {
    for line in inputs("seeds/command") {
        command_round_trips(&line);
    }
    for input in inputs("seeds/tag") {
        tag_properties(&input);
    }
}

/// The corpus the fuzzers grew (minimised, one input per coverage feature)
/// reaches corners the seeds do not: replaying it on stable Rust keeps the
/// properties checked there too, between fuzzing runs.
#[test]
fn fuzz_corpus_keeps_its_properties() {
    for line in inputs("corpus/command") {
        command_round_trips(&line);
    }
    for input in inputs("corpus/tag") {
        tag_properties(&input);
    }
}

/// Every raw input the fuzzers reported (before minimising; they reduce to
/// the regressions above), replayed as found.
#[test]
fn raw_fuzzer_findings_stay_fixed() {
    for line in inputs("crashers/command") {
        command_round_trips(&line);
    }
    for input in inputs("crashers/tag") {
        tag_properties(&input);
    }
}
