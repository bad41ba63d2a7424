//! `[policy]`: what is judged and how, and the patterns that exempt.

use std::collections::HashMap;

use toml::Value;

use crate::batv::Day;
use crate::policy::{Action, Actions, ClientNetwork, Exemption, Exemptions, MarkHeader, Scope};
pub use crate::policy::{
    AddressPattern, EnforceAfter, Mode, NonBounceInvalidTag, PolicySettings, UntaggedBounce, UntaggedStage,
};

use super::section::Presence;

use super::section::Section;
use super::values::{
    Parsed, Problem, check_domain_entry, choice, invalid, is_host_name, size, text, texts, type_name, wrong_type,
};

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
        actions: policy.table("actions", "[policy.actions]", Presence::Optional, read_actions),
        exemptions: Exemptions(
            policy
                .tables("exemption", "[[policy.exemption]]", Presence::Optional, read_exemption)
                .into_iter()
                .flatten()
                .collect(),
        ),
    }
}

const ACTIONS: &[(&str, Action)] =
    &[("reject", Action::Reject), ("tempfail", Action::TempFail), ("mark", Action::Mark)];
const SCOPES: &[(&str, Scope)] =
    &[("untagged_bounce", Scope::UntaggedBounce), ("auto_reply", Scope::AutoReply), ("signing", Scope::Signing)];

/// `[policy.actions]`: one action per rule, every one `reject` by default
/// but `ledger_unavailable`, which asks the sender to retry.
fn read_actions(actions: &mut Section) -> Actions {
    let defaults = Actions::default();
    Actions {
        forged_tag: actions.get_or("forged_tag", defaults.forged_tag, choice(ACTIONS)),
        expired_tag: actions.get_or("expired_tag", defaults.expired_tag, choice(ACTIONS)),
        unknown_key: actions.get_or("unknown_key", defaults.unknown_key, choice(ACTIONS)),
        untagged_bounce: actions.get_or("untagged_bounce", defaults.untagged_bounce, choice(ACTIONS)),
        untagged_autoreply: actions.get_or("untagged_autoreply", defaults.untagged_autoreply, choice(ACTIONS)),
        ledger_unavailable: actions.get_or("ledger_unavailable", defaults.ledger_unavailable, choice(ACTIONS)),
        mark_header: actions.get_or("mark_header", defaults.mark_header, mark_header),
    }
}

/// `"Name: value"`, a header field as it is written.
fn mark_header(key: &str, value: &Value) -> Parsed<MarkHeader> {
    let field = text("mark_header = \"X-Spam-Flag: YES\"")(key, value)?;
    let valid_name = |name: &str| !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    match field.split_once(':') {
        Some((name, value))
            if valid_name(name.trim_end())
                && !value.trim().is_empty()
                && value.chars().all(|c| c == ' ' || c == '\t' || (c.is_ascii() && !c.is_ascii_control())) =>
        {
            Ok(MarkHeader { name: name.trim_end().to_owned(), value: value.trim().to_owned() })
        }
        _ => invalid(
            format!("\"{field}\" is not a header field"),
            "write mark_header = \"X-Spam-Flag: YES\" (a name, a colon, a value, printable ASCII on one line)",
        ),
    }
}

/// One `[[policy.exemption]]`; `None` when it cannot be used.
fn read_exemption(exemption: &mut Section) -> Option<Exemption> {
    let host = |text: &str| {
        let name = text.trim().to_ascii_lowercase();
        let bare = name.strip_prefix("*.").or_else(|| name.strip_prefix('.')).unwrap_or(&name);
        if is_host_name(bare) {
            Ok(name)
        } else {
            Err(Problem::new(
                format!("\"{text}\" is not a host name"),
                "write mx.example.net, or .example.net for every name under it",
            ))
        }
    };
    let network = |text: &str| {
        ClientNetwork::parse(text).ok_or_else(|| {
            Problem::new(
                format!("\"{text}\" is not an address or network"),
                "write addresses or CIDR networks: \"192.0.2.0/24\"",
            )
        })
    };
    let pattern = |text: &str| Ok::<_, Problem>(AddressPattern::new(text));
    let name = exemption.require(
        "name",
        "add name = \"partner-relays\" (it names the exemption in logs and metrics)",
        text("name = \"partner-relays\""),
    );
    let scopes = exemption.require(
        "exempts",
        "add exempts = [\"untagged_bounce\", \"auto_reply\", \"signing\"] (what it exempts)",
        |key, value| {
            let words = texts(key, value)?;
            let mut scopes = Vec::new();
            for word in &words {
                match SCOPES.iter().find(|(name, _)| name == word) {
                    Some((_, scope)) => scopes.push(*scope),
                    None => {
                        return invalid(
                            format!("\"{word}\" is not something an exemption exempts"),
                            "use \"untagged_bounce\", \"auto_reply\" and \"signing\"",
                        );
                    }
                }
            }
            if scopes.is_empty() {
                invalid("exempts nothing", "list what it exempts: \"untagged_bounce\", \"auto_reply\", \"signing\"")
            } else {
                Ok(scopes)
            }
        },
    );
    let exemption_read = Exemption {
        name: name.clone().unwrap_or_default(),
        scopes: scopes.clone().unwrap_or_default(),
        listeners: exemption.get_or("listeners", Vec::new(), texts),
        clients: exemption.get_each("clients", network).unwrap_or_default(),
        client_names: exemption.get_each("client_names", host).unwrap_or_default(),
        senders: exemption.get_each("senders", pattern).unwrap_or_default(),
        reporting_mtas: exemption.get_each("reporting_mtas", host).unwrap_or_default(),
        recipient_domains: exemption.get_each("recipient_domains", pattern).unwrap_or_default(),
    };
    if !exemption_read.has_criteria() {
        exemption.report(
            "exempts",
            "the exemption names no clients, client_names, senders, reporting_mtas or recipient_domains, so it would exempt all mail",
            "say whose mail it exempts",
        );
        return None;
    }
    if !exemption_read.recipient_domains.is_empty() && exemption_read.scopes != [Scope::Signing] {
        exemption.report(
            "recipient_domains",
            "recipient_domains say where signed senders must not go, which only signing knows",
            "use recipient_domains with exempts = [\"signing\"] alone",
        );
    }
    name?;
    scopes?;
    Some(exemption_read)
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
