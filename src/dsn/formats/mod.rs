//! Bounces that are not RFC 3464 reports: the plain-text formats of Unix
//! MTAs, groupware servers and mail services (`signatures`), and "simple"
//! bounces that only say in prose, in some language, that delivery failed
//! (`prose`).
//!
//! All sentences are found in one pass of an Aho-Corasick automaton over
//! the start of the notification text, lower-cased, with white space runs
//! collapsed, `>`-quoted lines left out and the text cut where a forwarded
//! or quoted message begins. So the work is linear and bounded whatever
//! the number of formats, and a person replying to, quoting or forwarding
//! a bounce does not make a bounce.

mod prose;
mod signatures;
mod text;

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use memchr::memmem;

use super::entity::{Entity, Headers, Structure};
use super::quoted::QuotedHeaders;
pub(crate) use signatures::FORMATS;

/// Sentence positions kept for the signature checks, which look at each
/// once per signature: a real notice has a few dozen, a hostile text many.
const MAX_POSITIONS: usize = 512;

/// Bytes of text searched for a format's separator line.
const MAX_SEPARATOR_OFFSET: usize = 16 * 1024;

/// What a plain-text bounce recognizer found.
pub(super) struct Found {
    pub(super) rule: &'static str,
    pub(super) description: &'static str,
    /// Where in the text the returned message is pasted, if a separator
    /// says so.
    pub(super) copy_starts_at: Option<usize>,
}

/// Rules this module can decide, for the verdict's documented set.
pub(crate) fn rules() -> impl Iterator<Item = &'static str> {
    FORMATS.iter().map(|format| format.rule).chain(["plain_bounce"])
}

/// What a sentence of the automaton stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Signature,
    Failure,
    Diagnostic,
}

struct Patterns {
    automaton: AhoCorasick,
    classes: Vec<Class>,
    /// Per format, per signature, the pattern ids of its sentences.
    signatures: Vec<Vec<Vec<usize>>>,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| {
    let mut sentences: Vec<String> = Vec::new();
    let mut classes = Vec::new();
    let mut id_of = |sentence: &str, class: Class, sentences: &mut Vec<String>| -> usize {
        let sentence = text::normalise(sentence);
        match sentences.iter().position(|known| *known == sentence) {
            Some(id) => id,
            None => {
                sentences.push(sentence);
                classes.push(class);
                sentences.len() - 1
            }
        }
    };
    let signatures = FORMATS
        .iter()
        .map(|format| {
            format
                .signatures
                .iter()
                .map(|signature| {
                    signature.iter().map(|sentence| id_of(sentence, Class::Signature, &mut sentences)).collect()
                })
                .collect()
        })
        .collect();
    for phrase in prose::FAILURE_PHRASES {
        id_of(phrase, Class::Failure, &mut sentences);
    }
    for marker in prose::DIAGNOSTIC_MARKERS {
        id_of(marker, Class::Diagnostic, &mut sentences);
    }
    // A contiguous NFA: 160 KB, built in about a millisecond; a DFA scans
    // ordinary mail about a tenth faster but takes 6.7 MB.
    let automaton = AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
        .build(&sentences)
        .expect("the fixed sentences build an automaton");
    Patterns { automaton, classes, signatures }
});

/// The sentences found in a region: for each pattern id, where it starts.
struct Matches {
    positions: Vec<(usize, usize)>,
    failures: usize,
    diagnostics: usize,
}

impl Matches {
    fn scan(region: &str) -> Matches {
        let patterns = &*PATTERNS;
        let mut matches = Matches { positions: Vec::new(), failures: 0, diagnostics: 0 };
        for found in patterns.automaton.find_overlapping_iter(region) {
            let id = found.pattern().as_usize();
            match patterns.classes[id] {
                Class::Failure => matches.failures += 1,
                Class::Diagnostic => matches.diagnostics += 1,
                Class::Signature => {}
            }
            if matches.positions.len() < MAX_POSITIONS {
                matches.positions.push((id, found.start()));
            }
        }
        matches
    }

    /// Whether the sentences occur in this order (each after the start of
    /// the previous one).
    fn in_order(&self, sentence_ids: &[usize]) -> bool {
        let mut from = 0;
        for &id in sentence_ids {
            match self.positions.iter().filter(|(found, at)| *found == id && *at >= from).map(|(_, at)| *at).min() {
                Some(at) => from = at + 1,
                None => return false,
            }
        }
        true
    }
}

/// The first format of [`FORMATS`] the message matches, then the
/// MTA-specific structural checks, then the generic ones.
pub(super) fn recognize(structure: &Structure<'_>, text: &str, runs: &[QuotedHeaders]) -> Option<Found> {
    let top = &structure.top().headers;
    let mail_system = from_mail_system(top);
    let region = text::region(text);
    let matches = Matches::scan(&region);
    for (format, signatures) in FORMATS.iter().zip(&PATTERNS.signatures) {
        if format.needs_mail_system_sender && !mail_system {
            continue;
        }
        if signatures.iter().any(|signature| matches.in_order(signature)) {
            return Some(Found {
                rule: format.rule,
                description: format.description,
                copy_starts_at: {
                    // A separator stands below the notification, near the top.
                    let head = &text.as_bytes()[..text.len().min(MAX_SEPARATOR_OFFSET)];
                    format.separators.iter().filter_map(|separator| memmem::find(head, separator.as_bytes())).min()
                },
            });
        }
    }
    if top.has("X-MS-Exchange-Message-Is-Ndr") || top.has("X-MS-Embedded-Report") {
        return found("exchange", "a message Microsoft Exchange marks as a non-delivery report");
    }
    if top.has("X-Failed-Recipients") && (mail_system || matches.failures > 0) {
        return found("exim", "an Exim bounce (X-Failed-Recipients)");
    }
    if has_postfix_parts(structure) {
        return found(
            "postfix_plain",
            "a Postfix bounce (Notification and Undelivered Message parts) without a delivery-status report",
        );
    }
    let subject = bounce_subject(top);
    let failure = matches.failures > 0;
    let diagnostics = matches.diagnostics > 0;
    if !(mail_system || (subject && failure)) {
        return None;
    }
    let copy = returns_original(structure, runs);
    if mail_system && (subject || (failure && (copy.is_some() || diagnostics))) {
        return found("plain_bounce", "a message from a mail-system address saying in prose that delivery failed");
    }
    if mail_system && copy == Some(Evidence::Transported) {
        return found("plain_bounce", "a message from a mail-system address returning a copy of a transported message");
    }
    // Re-sent by list software or a forwarding gateway: the sender is no
    // longer the mail system, but subject, text and copy still say bounce.
    if subject && failure && (copy.is_some() || diagnostics) {
        return found(
            "plain_bounce",
            "a bounce re-sent from another address: its subject, text and returned copy say so",
        );
    }
    None
}

fn found(rule: &'static str, description: &'static str) -> Option<Found> {
    Some(Found { rule, description, copy_starts_at: None })
}

/// Whether From names the mail system rather than a person, or the
/// delivering MTA recorded a null reverse-path.
pub(super) fn from_mail_system(headers: &Headers<'_>) -> bool {
    let null_return_path = headers.text("Return-Path").is_some_and(|path| path.trim() == "<>");
    null_return_path || headers.text("From").is_some_and(|from| MAIL_SYSTEM_SENDERS.is_match(&from.to_lowercase()))
}

/// One pass over a field for any of a few dozen markers, instead of one
/// substring search per marker.
fn any_of(markers: &[&str]) -> AhoCorasick {
    AhoCorasick::new(markers).expect("the fixed markers build an automaton")
}

static MAIL_SYSTEM_SENDERS: LazyLock<AhoCorasick> = LazyLock::new(|| any_of(prose::MAIL_SYSTEM_SENDERS));
static BOUNCE_SUBJECTS: LazyLock<AhoCorasick> = LazyLock::new(|| any_of(prose::BOUNCE_SUBJECTS));

/// Whether the subject is a bounce's (and not a reply to or forward of one).
fn bounce_subject(headers: &Headers<'_>) -> bool {
    let Some(subject) = headers.decoded_text("Subject") else { return false };
    let subject = subject.trim_start().to_lowercase();
    if prose::REPLY_PREFIXES.iter().any(|prefix| subject.starts_with(prefix)) {
        return false;
    }
    BOUNCE_SUBJECTS.is_match(&subject)
}

/// Postfix labels its bounce parts with fixed Content-Descriptions whatever
/// language the template is in: "Notification" for the text and
/// "Undelivered Message" (or "… Headers") for the returned copy.
fn has_postfix_parts(structure: &Structure<'_>) -> bool {
    let described = |entity: &Entity<'_>, wanted: &str| {
        entity.headers.text("Content-Description").is_some_and(|description| description.eq_ignore_ascii_case(wanted))
    };
    structure.leaves().any(|leaf| described(leaf, "Notification"))
        && structure
            .leaves()
            .any(|leaf| described(leaf, "Undelivered Message") || described(leaf, "Undelivered Message Headers"))
}

/// How a message shows it carries a copy of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Evidence {
    /// An attached copy, or a quoted header section with trace fields.
    Transported,
    /// A quoted header section of a message (From, Subject, Message-ID)
    /// without trace fields.
    Quoted,
}

fn returns_original(structure: &Structure<'_>, runs: &[QuotedHeaders]) -> Option<Evidence> {
    let parts = structure.entities.iter().skip(1).filter(|entity| !entity.is_container);
    if parts.into_iter().any(|part| part.returned_copy().is_some()) {
        return Some(Evidence::Transported);
    }
    let mut evidence = None;
    for run in runs.iter().filter(|run| run.message_id.is_some() && run.fields >= 2) {
        if run.has_trace {
            return Some(Evidence::Transported);
        }
        if run.has_message_fields {
            evidence = Some(Evidence::Quoted);
        }
    }
    evidence
}

#[cfg(test)]
mod tests;
