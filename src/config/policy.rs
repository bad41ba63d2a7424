//! `[policy]`: what is judged and how, and the patterns that exempt.

use std::collections::HashMap;
use std::fmt;

use toml::Value;

use crate::batv::Day;
use crate::smtp::address::{Domain, Mailbox};

use super::section::Section;
use super::values::{Parsed, Problem, check_domain_entry, choice, invalid, size, texts, type_name, wrong_type};

/// A bounce says what it is about in its first few kilobytes; this leaves
/// room for a long header and a quoted original.
pub const DEFAULT_INSPECT_MAX_BYTES: u64 = 256 * 1024;
/// The sender local part that marks a bounce (RFC 5321 §4.5.5 names the
/// null sender; `MAILER-DAEMON` is what many MTAs write instead).
pub const DEFAULT_BOUNCE_SENDER: &str = "mailer-daemon";
/// The longest grace period `enforce_after = N` takes, ten years.
const MAX_GRACE_DAYS: i64 = 3650;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    /// Log and mark verdicts, reject nothing for BATV reasons.
    Monitor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntaggedBounce {
    Reject,
    Accept,
    /// Judge by the bounce's content (the original Message-ID).
    Inspect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntaggedStage {
    /// Accept at RCPT (so sender callouts keep working), refuse at DATA.
    Data,
    Rcpt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonBounceInvalidTag {
    /// Deliver with the tag stripped (replies to subscriptions made with a tagged sender).
    Strip,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnforceAfter {
    Date(Day),
    /// Days after the first start, remembered in `state_dir`.
    DaysAfterFirstStart(u32),
}

const MODES: &[(&str, Mode)] = &[("enforce", Mode::Enforce), ("monitor", Mode::Monitor)];
const UNTAGGED_BOUNCES: &[(&str, UntaggedBounce)] =
    &[("reject", UntaggedBounce::Reject), ("accept", UntaggedBounce::Accept), ("inspect", UntaggedBounce::Inspect)];
const UNTAGGED_STAGES: &[(&str, UntaggedStage)] = &[("data", UntaggedStage::Data), ("rcpt", UntaggedStage::Rcpt)];
const NON_BOUNCE_INVALID_TAGS: &[(&str, NonBounceInvalidTag)] =
    &[("strip", NonBounceInvalidTag::Strip), ("reject", NonBounceInvalidTag::Reject)];

/// A `*` wildcard pattern over an address (`*@lists.example.com`,
/// `owner-*`) or, without `@`, over a domain (`example.net`, `*.example.net`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressPattern(String);

impl AddressPattern {
    pub fn new(text: &str) -> Self {
        AddressPattern(text.trim().to_lowercase())
    }

    pub fn matches(&self, mailbox: &Mailbox) -> bool {
        if self.0.contains('@') {
            glob_match(&self.0, &mailbox.canonical_text().to_lowercase())
        } else {
            glob_match(&self.0, &mailbox.domain().canonical())
        }
    }
}

impl fmt::Display for AddressPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` matches any run of characters (greedy with backtracking, linear in practice).
pub(super) fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[derive(Debug, Clone)]
pub struct PolicySettings {
    pub mode: Mode,
    pub untagged_bounce: UntaggedBounce,
    pub untagged_stage: UntaggedStage,
    pub enforce_after: Option<EnforceAfter>,
    /// Sender local parts that mark a bounce, lower case.
    pub bounce_senders: Vec<String>,
    pub non_bounce_invalid_tag: NonBounceInvalidTag,
    /// Outbound: senders never signed.
    pub exempt_senders: Vec<AddressPattern>,
    /// Outbound: recipients that must not see a tagged sender.
    pub exempt_recipients: Vec<AddressPattern>,
    /// Inbound: recipients whose untagged bounces are let through.
    pub unverified_recipients: Vec<AddressPattern>,
    /// Per domain (lower case): `*` patterns matching the Message-IDs our
    /// mail systems write, without angle brackets.
    pub message_id_patterns: HashMap<String, Vec<String>>,
    /// How much of a message `inspect` reads.
    pub inspect_max_bytes: usize,
}

impl PolicySettings {
    /// Whether a Message-ID (brackets optional) matches a pattern of `domain`.
    /// A domain's patterns are those under its own name or under a
    /// `*.parent` key that covers it.
    pub fn matches_message_id(&self, domain: &Domain, message_id: &str) -> bool {
        let id = message_id.trim().trim_start_matches('<').trim_end_matches('>').to_lowercase();
        let matches = |key: &str| {
            self.message_id_patterns.get(key).is_some_and(|patterns| patterns.iter().any(|p| glob_match(p, &id)))
        };
        let name = domain.canonical();
        if matches(&name) {
            return true;
        }
        let mut rest = name.as_str();
        while let Some(dot) = rest.find('.') {
            rest = &rest[dot + 1..];
            if matches(&format!("*.{rest}")) {
                return true;
            }
        }
        false
    }

    /// Recipients whose untagged bounces and automatic replies pass.
    pub fn is_unverified(&self, mailbox: &Mailbox) -> bool {
        self.unverified_recipients.iter().any(|pattern| pattern.matches(mailbox))
    }
}

pub(super) fn read_policy(policy: &mut Section) -> PolicySettings {
    let patterns = |texts: Vec<String>| texts.iter().map(|text| AddressPattern::new(text)).collect();
    PolicySettings {
        mode: policy.get_or("mode", Mode::Enforce, choice(MODES)),
        untagged_bounce: policy.get_or("untagged_bounce", UntaggedBounce::Inspect, choice(UNTAGGED_BOUNCES)),
        untagged_stage: policy.get_or("untagged_stage", UntaggedStage::Data, choice(UNTAGGED_STAGES)),
        enforce_after: policy.get("enforce_after", enforce_after),
        bounce_senders: policy
            .get_or("bounce_senders", vec![DEFAULT_BOUNCE_SENDER.into()], texts)
            .iter()
            .map(|sender| sender.trim().to_lowercase())
            .collect(),
        non_bounce_invalid_tag: policy.get_or(
            "non_bounce_invalid_tag",
            NonBounceInvalidTag::Strip,
            choice(NON_BOUNCE_INVALID_TAGS),
        ),
        exempt_senders: patterns(policy.get_or("exempt_senders", Vec::new(), texts)),
        exempt_recipients: patterns(policy.get_or("exempt_recipients", Vec::new(), texts)),
        unverified_recipients: patterns(policy.get_or("unverified_recipients", Vec::new(), texts)),
        message_id_patterns: policy.get_or("message_id_patterns", HashMap::new(), message_id_patterns),
        inspect_max_bytes: policy.get_or("inspect_max_bytes", DEFAULT_INSPECT_MAX_BYTES, inspect_max_bytes) as usize,
    }
}

/// A date (`"2026-12-01"` or a TOML date) or a number of days after the first start.
fn enforce_after(_key: &str, value: &Value) -> Parsed<EnforceAfter> {
    match value {
        Value::String(text) => match Day::parse(text) {
            Some(day) => Ok(EnforceAfter::Date(day)),
            None => invalid(
                format!("\"{text}\" is not a date"),
                "write a date \"YYYY-MM-DD\" or a number of days after the first start",
            ),
        },
        Value::Datetime(datetime) => {
            match datetime.date.and_then(|d| Day::parse(&format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))) {
                Some(day) if datetime.time.is_none() => Ok(EnforceAfter::Date(day)),
                _ => invalid("must be a date without a time", "write enforce_after = \"2026-12-01\""),
            }
        }
        Value::Integer(days) if (0..=MAX_GRACE_DAYS).contains(days) => {
            Ok(EnforceAfter::DaysAfterFirstStart(*days as u32))
        }
        other => invalid(
            format!("must be a date or a number of days, not {}", type_name(other)),
            "write enforce_after = \"2026-12-01\" or enforce_after = 7",
        ),
    }
}

/// `"domain" = ["pattern", ...]` per domain; each domain's problem is
/// reported under its own key.
fn message_id_patterns(_key: &str, value: &Value) -> Parsed<HashMap<String, Vec<String>>> {
    let Value::Table(domains) = value else {
        return wrong_type(
            value,
            "a table of domain = [patterns]",
            "[policy.message_id_patterns] \"example.com\" = [\"*@mx.example.com\"]",
        );
    };
    let (mut patterns, mut problems) = (HashMap::new(), Vec::new());
    for (domain, value) in domains {
        let list: Vec<String> = match value {
            Value::Array(items) if items.iter().all(Value::is_str) => {
                items.iter().filter_map(Value::as_str).map(str::to_lowercase).collect()
            }
            _ => Vec::new(),
        };
        if list.is_empty() {
            problems.push(
                Problem::new(
                    "must be a non-empty list of patterns",
                    format!("write \"{domain}\" = [\"*@mx.{domain}\"]"),
                )
                .below(domain),
            );
        } else if check_domain_entry(domain.strip_prefix("*.").unwrap_or(domain)).is_err() {
            problems.push(
                Problem::new(format!("\"{domain}\" is not a domain name"), "use one of your domains as the key")
                    .below(domain),
            );
        } else {
            patterns.insert(domain.trim_end_matches('.').to_lowercase(), list);
        }
    }
    if problems.is_empty() { Ok(patterns) } else { Err(problems) }
}

/// At most what inspection reads: holding more per session would buy nothing.
fn inspect_max_bytes(key: &str, value: &Value) -> Parsed<u64> {
    let bytes = size(key, value)?;
    let most = crate::dsn::MAX_INSPECTED_BYTES as u64;
    if bytes > most {
        invalid(
            format!("{bytes} bytes is more than inspection reads ({most} bytes)"),
            "write \"1MiB\" or less; a bounce says what it is about in its first few kilobytes",
        )
    } else {
        Ok(bytes)
    }
}
