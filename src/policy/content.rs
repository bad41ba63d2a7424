//! DATA: whether a message is relayed, what of it the proxy keeps while it
//! streams, and the verdict on a message judged by its content.

use crate::batv::Day;
use crate::config::UntaggedBounce;
use crate::dsn::{self, Inspection};
use crate::smtp::address::Domain;
use crate::smtp::reply::Reply;

use super::Policy;
use super::inbound::{Class, Deferred, REPLY_UNTAGGED, Verdict};
use super::rules::{ContentResult, ContentRule, RejectReason};

pub const REPLY_BOUNCE_NOT_OURS: &str = "5.7.1 Bounce refused: it does not refer to a message we sent";
pub const REPLY_AUTOREPLY_NOT_OURS: &str = "5.7.1 Automatic reply refused: it does not refer to a message we sent";
pub const REPLY_CANNOT_CHECK: &str = "4.3.0 Cannot check this message right now; try again later";

/// Longest header section kept to find an outbound message's Message-ID.
pub const HEADER_CAPTURE_LIMIT: usize = 64 * 1024;

/// What part of a message to keep while it streams through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capture {
    pub limit: usize,
    /// Stop at the end of the header section.
    pub headers_only: bool,
    /// The content decides: hold the final dot until the verdict.
    pub judge: bool,
}

impl Capture {
    pub const NONE: Capture = Capture { limit: 0, headers_only: false, judge: false };
}

/// What happens at DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDecision {
    /// Refused without reading the message.
    Refuse { reply: Reply, reason: RejectReason },
    /// Relayed, keeping `capture`, with the proxy's `X-Batv-Status` value in front.
    Relay { capture: Capture, status_header: Option<String> },
}

/// The verdict on a message judged by its content, with the rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentVerdict {
    Accept(ContentRule),
    Reject(ContentRule),
    /// The evidence cannot be checked now (ledger unreachable): try later.
    TempFail(ContentRule),
}

impl ContentVerdict {
    /// The `result` and `rule` labels.
    pub fn labels(self) -> (ContentResult, ContentRule) {
        match self {
            ContentVerdict::Accept(rule) => (ContentResult::Accept, rule),
            ContentVerdict::Reject(rule) => (ContentResult::Reject, rule),
            ContentVerdict::TempFail(rule) => (ContentResult::TempFail, rule),
        }
    }

    pub fn rule(self) -> ContentRule {
        self.labels().1
    }
}

/// What can be decided from the message alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentPrecheck {
    Decided(ContentVerdict),
    /// Only the outbound ledger can tell.
    AskLedger,
}

/// What the ledger said about the message's Message-IDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerAnswer {
    Found,
    NotFound,
    /// No ledger is configured.
    Off,
    /// It cannot answer now (Redis unreachable).
    Unavailable,
}

/// The end of a content judgement: the verdict, and the reply that refuses
/// the message, if it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentOutcome {
    pub verdict: ContentVerdict,
    /// Monitor mode: the verdict is logged, never enforced.
    pub monitor: bool,
    /// The grace period: answers to mail sent before deployment pass.
    pub grace: bool,
    pub refusal: Option<Reply>,
}

impl Policy {
    /// Outbound DATA: the header section is kept when the ledger records
    /// Message-IDs.
    pub fn outbound_data(&self, ledger_on: bool) -> DataDecision {
        let capture = if ledger_on {
            Capture { limit: HEADER_CAPTURE_LIMIT, headers_only: true, judge: false }
        } else {
            Capture::NONE
        };
        DataDecision::Relay { capture, status_header: None }
    }

    /// Inbound DATA, from the recipients' class, their verdicts and
    /// whether any recipient's message the content decides.
    pub fn inbound_data(&self, class: Option<Class>, verdicts: &[Verdict], content_decides: bool) -> DataDecision {
        if class == Some(Class::Deferred(Deferred::Reject)) {
            return DataDecision::Refuse { reply: Reply::new(550, REPLY_UNTAGGED), reason: RejectReason::Untagged };
        }
        let judge = class == Some(Class::Deferred(Deferred::Inspect))
            || (content_decides && self.settings.untagged_bounce == UntaggedBounce::Inspect);
        let capture = if judge {
            Capture { limit: self.settings.inspect_max_bytes, headers_only: false, judge: true }
        } else {
            Capture::NONE
        };
        let status_header = if self.monitor() { status_header(verdicts) } else { None };
        DataDecision::Relay { capture, status_header }
    }

    /// Judges a message to untagged recipients by what it says it answers.
    /// A bounce (by its envelope) is judged whatever its form; a message
    /// from a regular sender only if it is automatic. `domains` holds, per
    /// judged recipient, the domain whose Message-ID patterns apply.
    pub fn precheck_content(
        &self,
        bounce: bool,
        inspection: &Inspection,
        domains: &[Option<Domain>],
    ) -> ContentPrecheck {
        if !bounce && inspection.kind == dsn::Kind::None {
            return ContentPrecheck::Decided(ContentVerdict::Accept(ContentRule::NotAutomatic));
        }
        if inspection.referenced_ids.is_empty() {
            return ContentPrecheck::Decided(ContentVerdict::Reject(ContentRule::NoOriginalMessageId));
        }
        let ours = inspection
            .referenced_ids
            .iter()
            .any(|id| domains.iter().flatten().any(|domain| self.settings.matches_message_id(domain, id)));
        if ours {
            ContentPrecheck::Decided(ContentVerdict::Accept(ContentRule::MessageIdPattern))
        } else {
            ContentPrecheck::AskLedger
        }
    }

    /// The verdict once the ledger has answered.
    pub fn ledger_verdict(&self, answer: LedgerAnswer) -> ContentVerdict {
        match answer {
            LedgerAnswer::Found => ContentVerdict::Accept(ContentRule::Ledger),
            LedgerAnswer::NotFound => ContentVerdict::Reject(ContentRule::NotOurs),
            LedgerAnswer::Off => ContentVerdict::Reject(ContentRule::NoPatternNoLedger),
            LedgerAnswer::Unavailable => ContentVerdict::TempFail(ContentRule::LedgerUnavailable),
        }
    }

    /// The reply a content verdict earns. Monitor mode and the grace period
    /// enforce nothing: answers to mail sent before deployment have no tag
    /// and no ledger entry, and pass, logged.
    pub fn content_outcome(&self, verdict: ContentVerdict, kind: dsn::Kind, today: Day) -> ContentOutcome {
        let monitor = self.monitor();
        let grace = !self.enforcing_untagged(today);
        let refusal = match verdict {
            _ if monitor || grace => None,
            ContentVerdict::Accept(_) => None,
            ContentVerdict::Reject(_) if kind == dsn::Kind::AutoReply => {
                Some(Reply::new(550, REPLY_AUTOREPLY_NOT_OURS))
            }
            ContentVerdict::Reject(_) => Some(Reply::new(550, REPLY_BOUNCE_NOT_OURS)),
            ContentVerdict::TempFail(_) => Some(Reply::new(451, REPLY_CANNOT_CHECK)),
        };
        ContentOutcome { verdict, monitor, grace, refusal }
    }
}

/// The `X-Batv-Status` value for a message in monitor mode, from its
/// recipients' verdicts: the worst one wins.
pub fn status_header(verdicts: &[Verdict]) -> Option<String> {
    if let Some(failure) = verdicts.iter().find_map(|v| if let Verdict::Invalid(f) = v { Some(*f) } else { None }) {
        return Some(format!("invalid, {}", failure.as_str()));
    }
    if verdicts.contains(&Verdict::Missing) {
        return Some("missing".into());
    }
    verdicts.contains(&Verdict::Valid).then(|| "valid".into())
}
