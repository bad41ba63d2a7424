//! What `[policy]` configures, as the decisions use it.

use std::collections::HashMap;

use crate::batv::Day;
use crate::smtp::address::{Domain, Mailbox};

use super::actions::Actions;
use super::exemptions::Exemptions;
use super::pattern::{AddressPattern, glob_match};

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
    /// What each refusing verdict does.
    pub actions: Actions,
    /// Exemptions by source, in file order.
    pub exemptions: Exemptions,
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
