//! Decisions, without I/O: sign this sender? What to do with this
//! recipient? Read this message, and what reply does it get? The session
//! asks and moves bytes; the policy answers with typed verdicts that name
//! the rule that decided, the same values the logs and metrics carry.

pub mod actions;
mod content;
pub mod exemptions;
mod inbound;
mod outbound;
mod pattern;
pub mod route;
pub mod rules;
mod settings;
#[cfg(test)]
mod tests;

use crate::batv::{Codec, Day};
use crate::smtp::address::{Mailbox, ReversePath};
pub use actions::{Action, ActionRule, Actions, MarkHeader};
pub use exemptions::{Exemption, Exemptions, Scope, Source};
pub use pattern::{AddressPattern, ClientNetwork, DomainSet, glob_match};
pub use settings::{EnforceAfter, Mode, NonBounceInvalidTag, PolicySettings, UntaggedBounce, UntaggedStage};

pub use content::{
    Capture, ContentOutcome, ContentPrecheck, ContentVerdict, DataDecision, Evidence, LedgerAnswer, Marks,
    STATUS_FIELD, may_carry_calendar, status_header,
};
pub use inbound::{Class, ContentCheck, Deferred, RecipientAction, RecipientDecision, Verdict};
pub use outbound::{OutboundRecipient, SenderDecision, SenderStage, Unsigned};
pub use rules::{ContentResult, ContentRule, RecipientRule, RejectReason, Stage, VerdictReason, VerdictResult};

/// Whether a transaction is a bounce, by its envelope sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    /// Null sender or a bounce-sender local part (`mailer-daemon`).
    Bounce,
    Regular,
}

#[derive(Debug, Clone)]
pub struct Policy {
    settings: PolicySettings,
    domains: DomainSet,
    /// Names the MTA takes as its own (`batv.mta_names`).
    mta_names: DomainSet,
    codec: Codec,
    /// Untagged bounces are refused from this day on.
    enforce_from: Option<Day>,
}

impl Policy {
    /// `first_start` is the day the proxy first ran (for `enforce_after = N`).
    pub fn new(
        settings: PolicySettings,
        domains: DomainSet,
        mta_names: DomainSet,
        codec: Codec,
        first_start: Option<Day>,
    ) -> Self {
        let enforce_from = match &settings.enforce_after {
            Some(EnforceAfter::Date(day)) => Some(*day),
            Some(EnforceAfter::DaysAfterFirstStart(days)) => first_start.map(|start| start.plus(*days)),
            None => None,
        };
        Policy { settings, domains, mta_names, codec, enforce_from }
    }

    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.settings
    }

    pub fn is_ours(&self, mailbox: &Mailbox) -> bool {
        self.domains.contains(mailbox.domain())
    }

    pub fn monitor(&self) -> bool {
        self.settings.mode == Mode::Monitor
    }

    pub fn sender_kind(&self, path: &ReversePath) -> SenderKind {
        match path {
            ReversePath::Null => SenderKind::Bounce,
            ReversePath::Mailbox(mailbox) => {
                let local = mailbox.local_part().to_lowercase();
                if self.settings.bounce_senders.contains(&local) { SenderKind::Bounce } else { SenderKind::Regular }
            }
        }
    }

    /// Whether untagged bounces are refused today (false during the grace period).
    pub fn enforcing_untagged(&self, today: Day) -> bool {
        self.enforce_from.is_none_or(|from| today >= from)
    }
}
