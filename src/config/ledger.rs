//! `[ledger]`: where the outbound Message-ID ledger lives.

use std::path::{Path, PathBuf};

use super::section::Section;
use super::values::{choice, number, relative_to, text};

/// Enough for a week of a busy site's outbound mail in a few hundred MB.
pub const DEFAULT_LEDGER_MAX_ENTRIES: u64 = 1_000_000;
/// The file's name in `state_dir`.
pub const DEFAULT_LEDGER_FILE: &str = "ledger.redb";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerStore {
    None,
    /// An embedded database file.
    File(PathBuf),
    /// A Redis URL, for several proxy hosts.
    Redis(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSettings {
    pub store: LedgerStore,
    pub max_entries: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        LedgerSettings { store: LedgerStore::None, max_entries: DEFAULT_LEDGER_MAX_ENTRIES }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    None,
    File,
    Redis,
}

const STORES: &[(&str, Kind)] = &[("none", Kind::None), ("file", Kind::File), ("redis", Kind::Redis)];

/// A relative `path` is taken in `state_dir`: the ledger is state, not configuration.
pub(super) fn read_ledger(ledger: &mut Section, state_dir: &Path) -> LedgerSettings {
    let kind = ledger.get_or("store", Kind::None, choice(STORES));
    let path = ledger.get_or("path", DEFAULT_LEDGER_FILE.to_owned(), text("path = \"ledger.redb\""));
    let redis_url = ledger.get("redis_url", text("redis_url = \"redis://127.0.0.1:6379/0\""));
    let max_entries = ledger.get_or("max_entries", DEFAULT_LEDGER_MAX_ENTRIES, number(1000..=1_000_000_000));
    let store = match (kind, redis_url) {
        (Kind::None, _) => LedgerStore::None,
        (Kind::File, _) => LedgerStore::File(relative_to(state_dir, &path)),
        (Kind::Redis, Some(url)) if ["redis://", "rediss://", "unix://"].iter().any(|s| url.starts_with(s)) => {
            LedgerStore::Redis(url)
        }
        (Kind::Redis, Some(url)) => {
            ledger.report(
                "redis_url",
                format!("\"{url}\" is not a Redis URL"),
                "write redis_url = \"redis://host:6379/0\"",
            );
            LedgerStore::None
        }
        (Kind::Redis, None) => {
            if !ledger.is_set("redis_url") {
                ledger.report("redis_url", "missing", "add redis_url = \"redis://host:6379/0\"");
            }
            LedgerStore::None
        }
    };
    LedgerSettings { store, max_entries }
}
