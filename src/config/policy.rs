//! `[policy]`: what is judged and how, and the patterns that exempt.

use std::collections::HashMap;

use toml::Value;

use crate::batv::Day;
pub use crate::policy::{
    AddressPattern, EnforceAfter, Mode, NonBounceInvalidTag, PolicySettings, UntaggedBounce, UntaggedStage,
};

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

const MODES: &[(&str, Mode)] = &[("enforce", Mode::Enforce), ("monitor", Mode::Monitor)];
const UNTAGGED_BOUNCES: &[(&str, UntaggedBounce)] =
    &[("reject", UntaggedBounce::Reject), ("accept", UntaggedBounce::Accept), ("inspect", UntaggedBounce::Inspect)];
const UNTAGGED_STAGES: &[(&str, UntaggedStage)] = &[("data", UntaggedStage::Data), ("rcpt", UntaggedStage::Rcpt)];
const NON_BOUNCE_INVALID_TAGS: &[(&str, NonBounceInvalidTag)] =
    &[("strip", NonBounceInvalidTag::Strip), ("reject", NonBounceInvalidTag::Reject)];

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
