//! DATA: whether a message is relayed, what of it the proxy keeps while it
//! streams, and the verdict on a message judged by its content.

use super::settings::UntaggedBounce;
use crate::batv::Day;
use crate::dsn::{self, Inspection};
use crate::smtp::address::Domain;
use crate::smtp::reply::Reply;

use super::Policy;
use super::actions::{Action, ActionRule, MarkHeader, reply_for};
use super::exemptions::{Scope, Source};
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
    /// With `headers_only`: go on keeping, up to this many bytes in all,
    /// when the header section says the message may carry a calendar
    /// object (an invitation whose UID a meeting response will quote).
    pub calendar_limit: usize,
}

impl Capture {
    pub const NONE: Capture = Capture { limit: 0, headers_only: false, judge: false, calendar_limit: 0 };
}

/// Whether a header section announces content that may hold a calendar
/// object: a multipart message (an invitation is text and HTML beside a
/// text/calendar part) or a calendar itself. Mentions anywhere in the
/// section count; a false alarm only costs keeping the body.
pub fn may_carry_calendar(header_section: &[u8]) -> bool {
    const WORDS: [&[u8]; 3] = [b"multipart/", b"text/calendar", b"application/ics"];
    let lower = header_section.to_ascii_lowercase();
    WORDS.iter().any(|word| memchr::memmem::find(&lower, word).is_some())
}

/// What happens at DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataDecision {
    /// Refused without reading the message.
    Refuse { reply: Reply, reason: RejectReason },
    /// Relayed, keeping `capture`; `marks` go in front of the message
    /// (when the content decides, after its verdict).
    Relay { capture: Capture, marks: Marks },
}

/// The fields the proxy puts in front of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// The `X-Batv-Status` value.
    pub status: Option<String>,
    /// The configured mark header, for mail a verdict would refuse.
    pub mark: Option<MarkHeader>,
}

impl Marks {
    /// The header lines, CRLF-terminated.
    pub fn lines(&self) -> String {
        let mut lines = String::new();
        if let Some(status) = &self.status {
            lines.push_str(&format!("{STATUS_FIELD}: {status}\r\n"));
        }
        if let Some(mark) = &self.mark {
            lines.push_str(&format!("{}: {}\r\n", mark.name, mark.value));
        }
        lines
    }

    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.mark.is_none()
    }
}

/// The field that carries the proxy's verdict; only the proxy writes it.
pub const STATUS_FIELD: &str = "X-Batv-Status";

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentPrecheck {
    Decided(ContentVerdict),
    /// Only the outbound ledger can tell: is any of these ours?
    AskLedger(Vec<Evidence>),
}

/// Something a message carries that the ledger can vouch for: proof it
/// answers mail we sent, wherever it stands, since nobody outside could
/// know it except from that mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// A Message-ID outside the message's own field, and where it stood.
    MessageId { id: String, found: dsn::Found },
    /// The UID of a meeting response: the invitation we sent had it.
    CalendarUid(String),
}

impl Evidence {
    /// Where it was found, for logs and verdict records.
    pub fn found(&self) -> &'static str {
        match self {
            Evidence::MessageId { found, .. } => found.as_str(),
            Evidence::CalendarUid(_) => "calendar_uid",
        }
    }

    /// The id or UID itself.
    pub fn value(&self) -> &str {
        match self {
            Evidence::MessageId { id, .. } => id,
            Evidence::CalendarUid(uid) => uid,
        }
    }
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

/// The end of a content judgement: the verdict, and what it does: refuse
/// the message (`refusal`), or deliver it marked (`mark`), or neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentOutcome {
    pub verdict: ContentVerdict,
    /// Monitor mode: the verdict is logged, never enforced.
    pub monitor: bool,
    /// The grace period: answers to mail sent before deployment pass.
    pub grace: bool,
    /// The action a refusing verdict took.
    pub action: Option<Action>,
    pub refusal: Option<Reply>,
    /// Deliver with these in front (the status and the mark header).
    pub marks: Marks,
    /// The source exemption that accepted the message, if one did.
    pub exemption: Option<String>,
}

impl Policy {
    /// Outbound DATA: the header section is kept when the ledger records
    /// Message-IDs, and the body too (up to `inspect_max_bytes`) when it
    /// may hold an invitation whose UID the ledger records beside them.
    pub fn outbound_data(&self, ledger_on: bool) -> DataDecision {
        let capture = if ledger_on {
            Capture {
                limit: HEADER_CAPTURE_LIMIT,
                headers_only: true,
                judge: false,
                calendar_limit: self.settings.inspect_max_bytes,
            }
        } else {
            Capture::NONE
        };
        DataDecision::Relay { capture, marks: Marks::default() }
    }

    /// Inbound DATA, from the recipients' class, their verdicts, whether
    /// any of them is marked, and whether any recipient's message the
    /// content decides.
    pub fn inbound_data(
        &self,
        class: Option<Class>,
        verdicts: &[Verdict],
        marked: bool,
        content_decides: bool,
    ) -> DataDecision {
        let mut marked = marked;
        if class == Some(Class::Deferred(Deferred::Reject)) {
            match reply_for(self.action(ActionRule::UntaggedBounce), Reply::new(550, REPLY_UNTAGGED)) {
                Some(reply) => return DataDecision::Refuse { reply, reason: RejectReason::Untagged },
                None => marked = true,
            }
        }
        let judge = class == Some(Class::Deferred(Deferred::Inspect))
            || (content_decides && self.settings.untagged_bounce == UntaggedBounce::Inspect);
        let capture = if judge {
            Capture { limit: self.settings.inspect_max_bytes, headers_only: false, judge: true, calendar_limit: 0 }
        } else {
            Capture::NONE
        };
        let marks = Marks {
            status: if self.monitor() || marked { status_header(verdicts) } else { None },
            mark: marked.then(|| self.settings.actions.mark_header.clone()),
        };
        DataDecision::Relay { capture, marks }
    }

    /// Judges a message to untagged recipients by what it says it answers.
    /// A bounce (by its envelope) is judged whatever its form; a message
    /// from a regular sender only if it is automatic. `domains` holds, per
    /// judged recipient, the domain whose Message-ID patterns apply.
    ///
    /// A Message-ID *pattern* can be imitated by whoever forges a bounce,
    /// so it counts only for a message recognised as a bounce or automatic
    /// reply and only where mail software put the id (a returned copy, a
    /// report field, the message's own In-Reply-To or References). The
    /// ledger cannot be imitated: every id the message carries, and the
    /// UIDs of a meeting response, go to it whether or not the format was
    /// recognised, so an unrecognised bounce to mail we sent still passes.
    pub fn precheck_content(
        &self,
        bounce: bool,
        inspection: &Inspection,
        domains: &[Option<Domain>],
    ) -> ContentPrecheck {
        if !bounce && inspection.kind == dsn::Kind::None {
            return ContentPrecheck::Decided(ContentVerdict::Accept(ContentRule::NotAutomatic));
        }
        if inspection.references.is_empty() && inspection.calendar_uids.is_empty() {
            return ContentPrecheck::Decided(ContentVerdict::Reject(ContentRule::NoOriginalMessageId));
        }
        let recognised = inspection.kind != dsn::Kind::None;
        let ours = recognised
            && inspection.references.iter().filter(|reference| reference.found.is_structural()).any(|reference| {
                domains.iter().flatten().any(|domain| self.settings.matches_message_id(domain, &reference.id))
            });
        if ours {
            return ContentPrecheck::Decided(ContentVerdict::Accept(ContentRule::MessageIdPattern));
        }
        let message_ids = inspection
            .references
            .iter()
            .map(|reference| Evidence::MessageId { id: reference.id.clone(), found: reference.found });
        let calendar_uids = inspection.calendar_uids.iter().cloned().map(Evidence::CalendarUid);
        ContentPrecheck::AskLedger(message_ids.chain(calendar_uids).collect())
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

    /// What a content verdict does to a message from `source`: an
    /// exemption that needs the message's Reporting-MTA may accept it now;
    /// a refusing verdict takes its rule's action. Monitor mode marks, and
    /// the grace period passes answers to mail sent before deployment,
    /// which have no tag and no ledger entry.
    pub fn content_outcome(
        &self,
        verdict: ContentVerdict,
        bounce: bool,
        kind: dsn::Kind,
        source: &Source<'_>,
        base: Marks,
        today: Day,
    ) -> ContentOutcome {
        let monitor = self.monitor();
        let grace = !self.enforcing_untagged(today);
        let scope = if bounce { Scope::UntaggedBounce } else { Scope::AutoReply };
        let refusing = !matches!(verdict, ContentVerdict::Accept(_));
        let pass = |verdict, exemption| ContentOutcome {
            verdict,
            monitor,
            grace,
            action: None,
            refusal: None,
            marks: base.clone(),
            exemption,
        };
        if refusing && let Some(exemption) = self.settings.exemptions.find(scope, source) {
            return pass(ContentVerdict::Accept(ContentRule::Exemption), Some(exemption.name.clone()));
        }
        if !refusing || grace {
            return pass(verdict, None);
        }
        let (rule, refusal) = match verdict {
            ContentVerdict::TempFail(_) => (ActionRule::LedgerUnavailable, Reply::new(451, REPLY_CANNOT_CHECK)),
            _ if bounce => (ActionRule::UntaggedBounce, Reply::new(550, REPLY_BOUNCE_NOT_OURS)),
            _ if kind == dsn::Kind::AutoReply => {
                (ActionRule::UntaggedAutoreply, Reply::new(550, REPLY_AUTOREPLY_NOT_OURS))
            }
            _ => (ActionRule::UntaggedAutoreply, Reply::new(550, REPLY_BOUNCE_NOT_OURS)),
        };
        let action = self.action(rule);
        let refusal = reply_for(action, refusal);
        let marks = if refusal.is_none() {
            Marks {
                status: Some(
                    base.status.clone().unwrap_or_else(|| format!("{}, {}", kind.as_str(), verdict.rule().as_str())),
                ),
                mark: Some(self.settings.actions.mark_header.clone()),
            }
        } else {
            base
        };
        ContentOutcome { verdict, monitor, grace, action: Some(action), refusal, marks, exemption: None }
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
