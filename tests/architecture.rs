//! The layering ARCHITECTURE.md promises: each module uses only modules
//! below it, so the decisions (`policy`, `batv`, `dsn`) never reach up into
//! I/O and no import cycle comes back. A new module must take its place in
//! the order here and in ARCHITECTURE.md.

use std::collections::BTreeMap;
use std::path::Path;

/// Top to bottom: a module may use only those after it.
const LAYERS: &[&str] = &[
    "cli",
    "judge",
    "ask",
    "server",
    "assemble",
    "session",
    "upstream",
    "status",
    "listener",
    "health",
    "ledger",
    "tls",
    "metrics",
    "cluster_metrics",
    "ledger_status",
    "resolve",
    "connection",
    "deadline",
    "logging",
    "config",
    "key_status",
    "keyfile",
    "policy",
    "verdicts",
    "dsn",
    "batv",
    "domains",
    "smtp",
    "proxy_protocol",
    "labels",
];

/// The Rust source of a module (a file or a directory), comments removed.
fn module_code(root: &Path, module: &str) -> String {
    let mut files = Vec::new();
    let file = root.join(format!("{module}.rs"));
    if file.exists() {
        files.push(file);
    }
    let mut stack = vec![root.join(module)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap())
        .flat_map(|text| text.lines().map(|line| line.split("//").next().unwrap_or("").to_owned()).collect::<Vec<_>>())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_module_uses_one_above_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
    let declared: Vec<String> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod ").or_else(|| line.trim().strip_prefix("mod ")))
        .map(|name| name.trim_end_matches(';').to_owned())
        .collect();
    for module in &declared {
        assert!(
            LAYERS.contains(&module.as_str()),
            "module {module} has no place in the layering (tests/architecture.rs, ARCHITECTURE.md)"
        );
    }
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(index, name)| (*name, index)).collect();
    let mut violations = Vec::new();
    for module in LAYERS {
        let code = module_code(&root, module);
        for other in LAYERS.iter().filter(|other| *other != module) {
            let used = code.contains(&format!("crate::{other}::"))
                || code.contains(&format!("crate::{other};"))
                || code.contains(&format!("crate::{other}}}"))
                || code.contains(&format!("crate::{other},"))
                || code.contains(&format!("crate::{other}{{"));
            if used && rank[other] < rank[module] {
                violations.push(format!("{module} uses {other}, which stands above it"));
            }
        }
    }
    assert!(violations.is_empty(), "{violations:#?}");
    let architecture = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    let listed: Vec<&str> = architecture
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|name| LAYERS.contains(name))
        .collect();
    assert_eq!(listed, LAYERS, "ARCHITECTURE.md's module table is not in the layering order");
}

/// No source file grows past what one person reads in one go, test
/// tables included.
#[test]
fn no_source_file_is_above_600_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![root];
    let mut long = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path).unwrap().lines().count();
                if lines > 600 {
                    long.push(format!("{}: {lines} lines", path.display()));
                }
            }
        }
    }
    assert!(long.is_empty(), "{long:#?}");
}
