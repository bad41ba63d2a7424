//! Recall of `dsn::inspect` over the committed corpus in tests/corpus/:
//! bounces made here by real MTAs (tests/corpus/generated/, made by
//! tests/tools/make-dsn-corpus.sh), samples written from the documented
//! formats of software that cannot run here (tests/corpus/written/), and
//! ordinary mail that looks like bounces (tests/corpus/lookalike/).
//!
//! Each `NAME.eml` has a `NAME.expect` beside it:
//!
//! ```text
//! kind: dsn | autoreply | none
//! original: <id@host> | none
//! ```
//!
//! `original` is the Message-ID of the message the sample answers when the
//! sample carries it, `none` when it does not. The family is the sample's
//! directory. The test prints, per family, how many samples were
//! recognised as their kind, how many originals were found, wrong ids and
//! false alarms, and fails below 97 % recall or ID recall, on any wrong id,
//! and on any ordinary message not judged `none`.
//!
//! `cargo test --test dsn_recall -- --ignored --nocapture` with
//! `DSN_EXTERNAL_CORPUS=DIR` measures a directory of `.eml` files laid out
//! like the sisimai project's set-of-emails (`maildir/bsd`, `maildir/not`),
//! whose expectations follow from the file names; see
//! [`external_expectation`]. Nothing of that corpus is committed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use batv_proxy::dsn::{Inspection, Kind, inspect};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expectation {
    kind: Kind,
    /// For ordinary mail: whether any automatic kind is a false alarm, or
    /// only `dsn` (feedback reports may be taken for automatic replies).
    only_dsn_is_false_alarm: bool,
    /// `Some(None)`: carries no original id; `None`: unknown (external).
    original: Option<Option<String>>,
}

#[derive(Default)]
struct Tally {
    answers: usize,
    recognised: usize,
    with_id: usize,
    id_found: usize,
    wrong_ids: usize,
    ordinary: usize,
    false_alarms: usize,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, name: &str, expected: &Expectation, got: &Inspection, body: &[u8]) {
        let describe = || {
            format!(
                "{name}: expected {:?}/{:?}, got {}/{} {:?} ({})",
                expected.kind, expected.original, got.kind, got.rule, got.original_message_id, got.reason
            )
        };
        if expected.kind == Kind::None {
            self.ordinary += 1;
            if got.kind == Kind::Dsn || (got.kind != Kind::None && !expected.only_dsn_is_false_alarm) {
                self.false_alarms += 1;
                self.failures.push(describe());
            }
        } else {
            self.answers += 1;
            if got.kind == expected.kind {
                self.recognised += 1;
            } else {
                self.failures.push(describe());
            }
        }
        match &expected.original {
            Some(Some(id)) => {
                self.with_id += 1;
                match &got.original_message_id {
                    Some(found) if found == id => self.id_found += 1,
                    Some(_) => {
                        self.wrong_ids += 1;
                        self.failures.push(describe());
                    }
                    None if expected.kind != Kind::None => self.failures.push(describe()),
                    None => {}
                }
            }
            Some(None) => {
                if got.original_message_id.is_some() {
                    self.wrong_ids += 1;
                    self.failures.push(describe());
                }
            }
            None => {
                // External corpus: the id must at least occur in the message
                // beyond its own header line.
                if let Some(found) = &got.original_message_id {
                    let mut text = String::from_utf8_lossy(body).replace("=\n", "").replace("=\r\n", "");
                    text.push_str(&base64_blocks(&text));
                    let own_line = text
                        .lines()
                        .take_while(|line| !line.trim().is_empty())
                        .find(|line| line.to_ascii_lowercase().starts_with("message-id:"))
                        .unwrap_or_default();
                    if !text.replacen(own_line, "", 1).contains(found.as_str()) {
                        self.wrong_ids += 1;
                        self.failures.push(describe());
                    }
                }
                if carries_original_id(body) && expected.kind != Kind::None {
                    self.with_id += 1;
                    if got.original_message_id.is_some() {
                        self.id_found += 1;
                    } else {
                        self.failures.push(format!("{} (no id)", describe()));
                    }
                }
            }
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.answers += other.answers;
        self.recognised += other.recognised;
        self.with_id += other.with_id;
        self.id_found += other.id_found;
        self.wrong_ids += other.wrong_ids;
        self.ordinary += other.ordinary;
        self.false_alarms += other.false_alarms;
    }
}

/// The text of the base64-encoded blocks of a message (runs of lines of
/// base64 alphabet only), decoded, so that an id in an encoded copy is seen.
fn base64_blocks(text: &str) -> String {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    // A block starts with a long line; its last line may be short.
    let is_base64_line = |line: &str, in_block: bool| {
        let line = line.trim_end();
        line.len() >= if in_block { 2 } else { 16 }
            && line.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='))
    };
    let mut decoded = String::new();
    let mut block = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if is_base64_line(line, !block.is_empty()) {
            block.push_str(line.trim_end());
        } else if !block.is_empty() {
            if let Ok(bytes) = lenient.decode(&block) {
                decoded.push_str(&String::from_utf8_lossy(&bytes));
            }
            block.clear();
        }
    }
    decoded
}

/// Whether the body carries a header line `Message-ID: <...>` (of a
/// returned or quoted copy) or an `Original-Message-ID` naming another
/// message than the bounce itself (anonymised samples sometimes give both
/// the same id).
fn carries_original_id(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let body_start = text.find("\n\n").or_else(|| text.find("\r\n\r\n")).unwrap_or(text.len());
    let id_of = |line: &str| line.split_once(':').map(|(_, value)| value.trim().to_owned());
    let own =
        text[..body_start].lines().find(|line| line.to_ascii_lowercase().starts_with("message-id:")).and_then(id_of);
    text[body_start..].lines().any(|line| {
        let line = line.trim_start_matches(['>', ' ', '\t']);
        let lower = line.to_ascii_lowercase();
        (lower.starts_with("message-id:") || lower.starts_with("original-message-id:"))
            && line.contains('<')
            && line.contains('@')
            && id_of(line) != own
    })
}

fn percent(part: usize, whole: usize) -> String {
    if whole == 0 { "-".to_owned() } else { format!("{:.1} %", 100.0 * part as f64 / whole as f64) }
}

fn print_table(title: &str, tallies: &BTreeMap<String, Tally>) -> Tally {
    println!("\n{title}");
    println!(
        "{:<22} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>9}",
        "family", "answers", "recognised", "recall", "with id", "id recall", "wrong", "false al."
    );
    let mut total = Tally::default();
    for (family, tally) in tallies {
        println!(
            "{:<22} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>5}/{:<3}",
            family,
            tally.answers,
            tally.recognised,
            percent(tally.recognised, tally.answers),
            tally.with_id,
            percent(tally.id_found, tally.with_id),
            tally.wrong_ids,
            tally.false_alarms,
            tally.ordinary
        );
        total.merge(tally);
    }
    println!(
        "{:<22} {:>8} {:>10} {:>9} {:>9} {:>9} {:>7} {:>5}/{:<3}",
        "TOTAL",
        total.answers,
        total.recognised,
        percent(total.recognised, total.answers),
        total.with_id,
        percent(total.id_found, total.with_id),
        total.wrong_ids,
        total.false_alarms,
        total.ordinary
    );
    total
}

fn eml_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&directory) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "eml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn parse_expectation(text: &str, file: &Path) -> Expectation {
    let mut kind = None;
    let mut original = None;
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
        let (key, value) = line.split_once(':').unwrap_or_else(|| panic!("{}: bad line {line:?}", file.display()));
        match (key.trim(), value.trim()) {
            ("kind", "dsn") => kind = Some(Kind::Dsn),
            ("kind", "autoreply") => kind = Some(Kind::AutoReply),
            ("kind", "none") => kind = Some(Kind::None),
            ("original", "none") => original = Some(None),
            ("original", id) if id.starts_with('<') && id.ends_with('>') => original = Some(Some(id.to_owned())),
            _ => panic!("{}: bad line {line:?}", file.display()),
        }
    }
    Expectation {
        only_dsn_is_false_alarm: false,
        kind: kind.unwrap_or_else(|| panic!("{}: no kind", file.display())),
        original: Some(original.unwrap_or_else(|| panic!("{}: no original", file.display()))),
    }
}

fn corpus_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The family of a committed sample: its set and directory, e.g.
/// `generated/postfix`.
fn family_of(file: &Path, root: &Path) -> String {
    let relative = file.strip_prefix(root).unwrap_or(file);
    let parts: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    parts[..parts.len().saturating_sub(1)].join("/")
}

#[test]
fn committed_corpus_recall() {
    let root = corpus_directory();
    let files = eml_files(&root);
    assert!(files.len() >= 100, "only {} samples under {}", files.len(), root.display());
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for file in &files {
        let expect_file = file.with_extension("expect");
        let expect_text =
            std::fs::read_to_string(&expect_file).unwrap_or_else(|error| panic!("{}: {error}", expect_file.display()));
        let expected = parse_expectation(&expect_text, &expect_file);
        let bytes = std::fs::read(file).unwrap();
        let got = inspect(&bytes);
        let name = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        tallies.entry(family_of(file, &root)).or_default().add(&name, &expected, &got, &bytes);
    }
    let total = print_table("committed corpus (tests/corpus)", &tallies);
    let failures: Vec<&String> = tallies.values().flat_map(|tally| &tally.failures).collect();
    for failure in &failures {
        println!("  {failure}");
    }
    let recall = total.recognised as f64 / total.answers as f64;
    let id_recall = total.id_found as f64 / total.with_id as f64;
    assert!(recall >= 0.97, "recall {recall:.3} below 0.97");
    assert!(id_recall >= 0.97, "original Message-ID recall {id_recall:.3} below 0.97");
    assert_eq!(total.wrong_ids, 0, "wrong original ids");
    assert_eq!(total.false_alarms, 0, "ordinary messages judged automatic");
}

#[test]
fn every_sample_has_an_expectation_and_the_reverse() {
    let root = corpus_directory();
    for file in eml_files(&root) {
        assert!(file.with_extension("expect").is_file(), "{} has no .expect", file.display());
    }
    let mut pending = vec![root];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "expect") {
                assert!(path.with_extension("eml").is_file(), "{} has no .eml", path.display());
            }
        }
    }
}

/// Expectations from the file names of sisimai's set-of-emails: `arf-*`
/// are feedback reports (never `dsn`; an automatic reply is no false
/// alarm), `rfc3834-*` automatic replies, everything in `not/` ordinary
/// mail, and every other file (`lhost-*`, `rhost-*`, `rfc3464-*`) a
/// delivery status notification, except [`EXTERNAL_EXCEPTIONS`]. The family
/// is the name without its number. The original id is not known from the
/// name: an id found must occur in the message beyond its own Message-ID
/// field, and one is expected whenever the body carries a `Message-ID:` or
/// `Original-Message-ID:` line naming another message than the bounce.
fn external_expectation(file: &Path) -> (String, Expectation) {
    let name = file.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let family = name.trim_end_matches(|character: char| character.is_ascii_digit()).trim_end_matches('-').to_owned();
    let in_not = file.parent().is_some_and(|parent| parent.ends_with("not"));
    let exception = EXTERNAL_EXCEPTIONS.iter().find(|(file, _, _)| *file == name).map(|(_, kind, _)| *kind);
    let kind = if let Some(kind) = exception {
        kind
    } else if in_not || family == "arf" {
        Kind::None
    } else if family == "rfc3834" {
        Kind::AutoReply
    } else {
        Kind::Dsn
    };
    let family = if in_not { "not-bounce".to_owned() } else { family };
    let only_dsn_is_false_alarm = family == "arf";
    (family, Expectation { kind, only_dsn_is_false_alarm, original: None })
}

/// Files of sisimai's set whose name says otherwise than their content,
/// judged by what DESIGN.md wants of the proxy, with the reason.
const EXTERNAL_EXCEPTIONS: &[(&str, Kind, &str)] = &[
    ("lhost-sendmail-14", Kind::None, "a person forwarding a bounce (Fwd:, Begin forwarded message)"),
    ("lhost-amazonses-09", Kind::None, "an Amazon SNS notification in JSON, mail a subscriber asked for"),
    ("lhost-amazonses-10", Kind::None, "an Amazon SNS notification in JSON, mail a subscriber asked for"),
    ("lhost-amazonses-11", Kind::None, "an Amazon SNS notification in JSON, mail a subscriber asked for"),
    ("lhost-amazonses-12", Kind::None, "an Amazon SNS notification in JSON, mail a subscriber asked for"),
    ("lhost-amazonses-13", Kind::None, "an Amazon SNS notification in JSON, mail a subscriber asked for"),
    ("rb-issue-368-bug", Kind::Dsn, "kept with the non-bounces for a parser bug report, but a bounce by content"),
];

#[test]
#[ignore = "needs DSN_EXTERNAL_CORPUS=DIR, a corpus that is not committed"]
fn external_corpus_recall() {
    let Some(root) = std::env::var_os("DSN_EXTERNAL_CORPUS").map(PathBuf::from) else {
        println!("DSN_EXTERNAL_CORPUS is not set");
        return;
    };
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    for file in eml_files(&root) {
        let (family, expected) = external_expectation(&file);
        let bytes = std::fs::read(&file).unwrap();
        let got = inspect(&bytes);
        let name = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
        tallies.entry(family).or_default().add(&name, &expected, &got, &bytes);
    }
    print_table(&format!("external corpus ({})", root.display()), &tallies);
    if std::env::var_os("DSN_SHOW_FAILURES").is_some() {
        for failure in tallies.values().flat_map(|tally| &tally.failures) {
            println!("  {failure}");
        }
    }
}
