//! The `dsn` fuzz target's properties (fuzz/dsn_properties.rs) on stable
//! Rust, over everything committed that the target has seen or would start
//! from: its findings (fuzz/regressions/dsn), its minimised corpus, its
//! seeds, and the message corpus of tests/corpus, each also cut in half and
//! with its line endings changed.

#[path = "../fuzz/dsn_properties.rs"]
mod dsn_properties;

use std::path::Path;

fn files_under(directory: &Path, files: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, files);
        } else if path.extension().is_none_or(|extension| extension != "expect") {
            files.push(path);
        }
    }
}

#[test]
fn properties_hold_on_the_committed_inputs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for directory in ["fuzz/regressions/dsn", "fuzz/corpus/dsn", "fuzz/seeds/dsn", "tests/corpus", "tests/dsn_samples"]
    {
        files_under(&root.join(directory), &mut files);
    }
    assert!(files.len() > 500, "only {} inputs", files.len());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let variants = [
            bytes.clone(),
            bytes[..bytes.len() / 2].to_vec(),
            String::from_utf8_lossy(&bytes).replace("\r\n", "\n").replace('\n', "\r\n").into_bytes(),
        ];
        for variant in variants {
            let outcome = std::panic::catch_unwind(|| dsn_properties::inspection_properties(&variant));
            assert!(outcome.is_ok(), "{}", file.display());
        }
    }
}

/// The first finding of the fuzzer on this code: a `>`-quoted continuation
/// line that had lost the blank after its `>` was cut at the length of the
/// full prefix, inside a multi-byte character.
#[test]
fn quoted_continuation_cut_at_a_character_boundary() {
    dsn_properties::inspection_properties(include_bytes!("../fuzz/regressions/dsn/quoted-continuation-char-boundary"));
}
