//! Decisions, without I/O: sign this sender? What to do with this
//! recipient? What reply, and why? The session asks; the policy answers
//! with a typed verdict that also names the rule, for logs and metrics.

pub mod route;

use crate::batv::{Codec, Day, Failure, KeyId, Parsed, tag};
use crate::config::DomainSet;
use crate::config::{EnforceAfter, Mode, NonBounceInvalidTag, PolicySettings, UntaggedBounce, UntaggedStage};
use crate::dsn::{self, Inspection};
use crate::smtp::address::{Domain, ForwardPath, Mailbox, ReversePath};
use crate::smtp::reply::Reply;
use route::Route;

/// Whether a transaction is a bounce, by its envelope sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderKind {
    /// Null sender or a bounce-sender local part (`mailer-daemon`).
    Bounce,
    Regular,
}

/// Why an outbound sender is left unsigned (label values for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsigned {
    NullSender,
    ForeignDomain,
    AlreadyTagged,
    Srs,
    ListSender,
    ExemptSender,
}

impl Unsigned {
    pub fn as_str(self) -> &'static str {
        match self {
            Unsigned::NullSender => "null_sender",
            Unsigned::ForeignDomain => "foreign_domain",
            Unsigned::AlreadyTagged => "already_tagged",
            Unsigned::Srs => "srs",
            Unsigned::ListSender => "list_sender",
            Unsigned::ExemptSender => "exempt_sender",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderDecision {
    Sign(Mailbox),
    /// Sign unless the recipients are exempt: hold MAIL until the first RCPT.
    SignUnlessExempt(Mailbox),
    Keep(Unsigned),
}

/// What the proxy concluded about one inbound recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid tag; stripped before the MTA sees it.
    Valid,
    /// A tag that failed verification, and why.
    Invalid(Failure),
    /// A bounce to one of our addresses without a tag.
    Missing,
    /// Not one of our domains: untouched.
    Foreign,
    /// Not a bounce, no tag: untouched.
    NotBounce,
    /// Listed in `unverified_recipients`, or `<Postmaster>`.
    Exempt,
}

impl Verdict {
    /// (result, reason) label values.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            Verdict::Valid => ("valid", "ok"),
            Verdict::Invalid(failure) => ("invalid", failure.as_str()),
            Verdict::Missing => ("missing", "untagged"),
            Verdict::Foreign => ("untouched", "foreign_domain"),
            Verdict::NotBounce => ("untouched", "not_bounce"),
            Verdict::Exempt => ("untouched", "exempt"),
        }
    }
}

/// How a bounce to an untagged recipient will be judged after RCPT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    /// Refuse the DATA command.
    Reject,
    /// Read the bounce and look for the original Message-ID.
    Inspect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientAction {
    Forward,
    /// Forward with the tag stripped.
    Rewrite(Mailbox),
    Reject(Reply),
    /// Accept at RCPT (sender callouts must keep working); judge later.
    Defer(Deferred),
}

/// Whether a recipient's message is judged by its content after DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContentCheck {
    /// The envelope decided.
    No,
    /// The content decides: an untagged bounce under inspection, or mail
    /// from a regular sender that may be an automatic reply. `patterns`
    /// names the domain whose Message-ID patterns apply (none for the
    /// MTA's own names, where only the ledger can accept).
    Judge { patterns: Option<Domain> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientDecision {
    pub action: RecipientAction,
    pub verdict: Verdict,
    pub key_id: Option<KeyId>,
    /// The rule that decided, for the log line.
    pub rule: &'static str,
    pub content: ContentCheck,
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

pub const REPLY_TAG_EXPIRED: &str = "5.7.1 Bounce address tag has expired";
pub const REPLY_TAG_INVALID: &str = "5.7.1 Bounce address tag is invalid";
pub const REPLY_UNTAGGED: &str = "5.7.1 Bounce to an untagged address: we did not send the message it refers to";
pub const REPLY_BOUNCE_NOT_OURS: &str = "5.7.1 Bounce refused: it does not refer to a message we sent";
pub const REPLY_UNRESOLVABLE: &str =
    "5.7.1 Bounce refused: the recipient address routes through too many hops to be verified";
pub const REPLY_AUTOREPLY_NOT_OURS: &str = "5.7.1 Automatic reply refused: it does not refer to a message we sent";

/// The verdict on a message judged by its content, with the rule that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentVerdict {
    Accept(&'static str),
    Reject(&'static str),
    /// The evidence cannot be checked now (ledger unreachable): try later.
    TempFail(&'static str),
}

impl ContentVerdict {
    /// (result, rule) label values.
    pub fn labels(self) -> (&'static str, &'static str) {
        match self {
            ContentVerdict::Accept(rule) => ("accept", rule),
            ContentVerdict::Reject(rule) => ("reject", rule),
            ContentVerdict::TempFail(rule) => ("tempfail", rule),
        }
    }
}

/// What can be decided from the message alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentPrecheck {
    Decided(ContentVerdict),
    /// Only the outbound ledger can tell.
    AskLedger,
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

    pub fn sender_kind(&self, path: &ReversePath) -> SenderKind {
        match path {
            ReversePath::Null => SenderKind::Bounce,
            ReversePath::Mailbox(mailbox) => {
                let local = mailbox.local_part().to_lowercase();
                if self.settings.bounce_senders.contains(&local) { SenderKind::Bounce } else { SenderKind::Regular }
            }
        }
    }

    /// Outbound: whether and how to sign `MAIL FROM`.
    pub fn outbound_sender(&self, path: &ReversePath, today: Day) -> SenderDecision {
        let ReversePath::Mailbox(mailbox) = path else {
            return SenderDecision::Keep(Unsigned::NullSender);
        };
        if !self.is_ours(mailbox) {
            return SenderDecision::Keep(Unsigned::ForeignDomain);
        }
        if let Some(reason) = never_signed(mailbox) {
            return SenderDecision::Keep(reason);
        }
        if self.settings.exempt_senders.iter().any(|pattern| pattern.matches(mailbox)) {
            return SenderDecision::Keep(Unsigned::ExemptSender);
        }
        let signed = self.codec.sign(mailbox, today);
        if self.settings.exempt_recipients.is_empty() {
            SenderDecision::Sign(signed)
        } else {
            SenderDecision::SignUnlessExempt(signed)
        }
    }

    /// Outbound: a recipient that must not see a tagged sender.
    pub fn exempt_recipient(&self, path: &ForwardPath) -> bool {
        path.mailbox().is_some_and(|mailbox| self.settings.exempt_recipients.iter().any(|p| p.matches(mailbox)))
    }

    /// Whether untagged bounces are refused today (false during the grace period).
    pub fn enforcing_untagged(&self, today: Day) -> bool {
        self.enforce_from.is_none_or(|from| today >= from)
    }

    /// Inbound: the verdict for one recipient of a transaction from `sender`.
    ///
    /// The recipient is judged where it really goes (see [`route`]): a
    /// spelling that an MTA routes to one of our domains is judged as that
    /// address, and one at the MTA's own names as ours. A recipient whose
    /// tag fails is judged like an untagged one: the content of a regular
    /// sender's message still decides whether it is an automatic reply.
    pub fn inbound_recipient(&self, sender: SenderKind, path: &ForwardPath, today: Day) -> RecipientDecision {
        let decide =
            |action, verdict, key_id, rule, content| RecipientDecision { action, verdict, key_id, rule, content };
        let ForwardPath::Mailbox(written) = path else {
            return decide(RecipientAction::Forward, Verdict::Exempt, None, "postmaster", ContentCheck::No);
        };
        let routed = route::follow(written);
        let target = match &routed {
            Route::AsWritten => written,
            Route::Rewritten(target) => target,
            Route::Unresolvable => return self.unresolvable_recipient(sender),
        };
        // The domain whose Message-ID patterns apply: none at the MTA's own names.
        let patterns = if self.is_ours(target) {
            Some(target.domain().clone())
        } else if route::is_address_literal(target.domain()) || self.mta_names.contains(target.domain()) {
            None
        } else {
            return decide(RecipientAction::Forward, Verdict::Foreign, None, "foreign_domain", ContentCheck::No);
        };
        let judge = ContentCheck::Judge { patterns };
        let monitor = self.settings.mode == Mode::Monitor;
        let unverified = self.settings.is_unverified(target) || self.settings.is_unverified(written);
        match tag::parse(target) {
            Parsed::Tagged(_) | Parsed::Malformed => match self.codec.verify(target, today) {
                Ok(valid) => decide(
                    RecipientAction::Rewrite(valid.original),
                    Verdict::Valid,
                    Some(valid.key_id),
                    "valid_tag",
                    ContentCheck::No,
                ),
                Err(invalid) => {
                    let verdict = Verdict::Invalid(invalid.reason);
                    let refuse = match sender {
                        SenderKind::Bounce => true,
                        SenderKind::Regular => self.settings.non_bounce_invalid_tag == NonBounceInvalidTag::Reject,
                    };
                    if refuse && !monitor {
                        let text =
                            if invalid.reason == Failure::Expired { REPLY_TAG_EXPIRED } else { REPLY_TAG_INVALID };
                        return decide(
                            RecipientAction::Reject(Reply::new(550, text)),
                            verdict,
                            invalid.key_id,
                            "invalid_tag",
                            ContentCheck::No,
                        );
                    }
                    // Passed on: judged from here on as if it had no tag.
                    let rule = if monitor { "monitor" } else { "non_bounce_strip" };
                    let unverified = unverified
                        || invalid.original.as_ref().is_some_and(|original| self.settings.is_unverified(original));
                    let content = if unverified { ContentCheck::No } else { judge };
                    match invalid.original {
                        Some(original) => {
                            decide(RecipientAction::Rewrite(original), verdict, invalid.key_id, rule, content)
                        }
                        None => decide(
                            RecipientAction::Forward,
                            verdict,
                            None,
                            if monitor { "monitor" } else { "non_bounce" },
                            content,
                        ),
                    }
                }
            },
            Parsed::Untagged => {
                if sender == SenderKind::Regular {
                    let content = if unverified { ContentCheck::No } else { judge };
                    return decide(RecipientAction::Forward, Verdict::NotBounce, None, "not_bounce", content);
                }
                if unverified {
                    return decide(
                        RecipientAction::Forward,
                        Verdict::Exempt,
                        None,
                        "unverified_recipient",
                        ContentCheck::No,
                    );
                }
                if target.local_part().eq_ignore_ascii_case("postmaster") {
                    // RFC 5321 §4.5.1: postmaster takes every report, at every domain.
                    return decide(RecipientAction::Forward, Verdict::Exempt, None, "postmaster", ContentCheck::No);
                }
                let (action, rule, content) = if monitor {
                    (RecipientAction::Forward, "monitor", judge)
                } else if !self.enforcing_untagged(today) {
                    (RecipientAction::Forward, "grace_period", ContentCheck::No)
                } else {
                    // "rcpt" refuses before any content exists, so it overrides "inspect".
                    match (self.settings.untagged_bounce, self.settings.untagged_stage) {
                        (UntaggedBounce::Accept, _) => (RecipientAction::Forward, "untagged_accept", ContentCheck::No),
                        (_, UntaggedStage::Rcpt) => (
                            RecipientAction::Reject(Reply::new(550, REPLY_UNTAGGED)),
                            "untagged_reject_rcpt",
                            ContentCheck::No,
                        ),
                        (UntaggedBounce::Inspect, UntaggedStage::Data) => {
                            (RecipientAction::Defer(Deferred::Inspect), "untagged_inspect", judge)
                        }
                        (UntaggedBounce::Reject, UntaggedStage::Data) => {
                            (RecipientAction::Defer(Deferred::Reject), "untagged_reject_data", ContentCheck::No)
                        }
                    }
                };
                decide(action, Verdict::Missing, None, rule, content)
            }
        }
    }

    /// A spelling that holds an address the proxy cannot follow: a bounce
    /// to it is refused (it cannot be shown to be for a message we sent);
    /// other mail passes to the MTA, and its content still decides whether
    /// it is an automatic reply, which only the ledger can then accept.
    fn unresolvable_recipient(&self, sender: SenderKind) -> RecipientDecision {
        let (action, verdict) = match sender {
            SenderKind::Bounce if self.settings.mode == Mode::Monitor => (RecipientAction::Forward, Verdict::Missing),
            SenderKind::Bounce => (RecipientAction::Reject(Reply::new(550, REPLY_UNRESOLVABLE)), Verdict::Missing),
            SenderKind::Regular => (RecipientAction::Forward, Verdict::NotBounce),
        };
        RecipientDecision {
            action,
            verdict,
            key_id: None,
            rule: "unresolvable_route",
            content: ContentCheck::Judge { patterns: None },
        }
    }

    pub fn monitor(&self) -> bool {
        self.settings.mode == Mode::Monitor
    }

    /// Judges a message to untagged recipients in `domains` by what it
    /// says it answers. A bounce (by its envelope) is judged whatever its
    /// form; a message from a regular sender only if it is automatic.
    pub fn precheck_content(
        &self,
        bounce: bool,
        inspection: &Inspection,
        domains: &[Option<Domain>],
    ) -> ContentPrecheck {
        if !bounce && inspection.kind == dsn::Kind::None {
            return ContentPrecheck::Decided(ContentVerdict::Accept("not_automatic"));
        }
        if inspection.referenced_ids.is_empty() {
            return ContentPrecheck::Decided(ContentVerdict::Reject("no_original_message_id"));
        }
        let ours = inspection
            .referenced_ids
            .iter()
            .any(|id| domains.iter().flatten().any(|domain| self.settings.matches_message_id(domain, id)));
        if ours {
            ContentPrecheck::Decided(ContentVerdict::Accept("message_id_pattern"))
        } else {
            ContentPrecheck::AskLedger
        }
    }
}

/// Senders that are never signed, whatever the configuration: tagged
/// already (by us or another scheme), SRS-rewritten, or list/VERP return
/// paths, which the list software decodes itself.
fn never_signed(mailbox: &Mailbox) -> Option<Unsigned> {
    let local = mailbox.local_part().to_ascii_lowercase();
    if tag::parse(mailbox) != Parsed::Untagged
        || ["prvs=", "msprvs1=", "btv1=="].iter().any(|prefix| local.starts_with(prefix))
    {
        return Some(Unsigned::AlreadyTagged);
    }
    if local.starts_with("srs0=") || local.starts_with("srs1=") {
        return Some(Unsigned::Srs);
    }
    if local.starts_with("owner-")
        || local.ends_with("-owner")
        || local.ends_with("-bounces")
        || local.contains("-bounces+")
        || local.contains("-return-")
    {
        return Some(Unsigned::ListSender);
    }
    None
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::batv::{HashAlgorithm, KeyRing, TagForm};
    use crate::config::AddressPattern;

    fn settings() -> PolicySettings {
        PolicySettings {
            mode: Mode::Enforce,
            untagged_bounce: UntaggedBounce::Reject,
            untagged_stage: UntaggedStage::Data,
            enforce_after: None,
            bounce_senders: vec!["mailer-daemon".into()],
            non_bounce_invalid_tag: NonBounceInvalidTag::Strip,
            exempt_senders: vec![],
            exempt_recipients: vec![],
            unverified_recipients: vec![],
            message_id_patterns: Default::default(),
            inspect_max_bytes: 256 * 1024,
        }
    }

    fn policy_with(settings: PolicySettings) -> Policy {
        let keys = KeyRing::parse("3 c2VjcmV0\n", Path::new("keys")).unwrap();
        let codec = Codec::new(&keys, HashAlgorithm::Sha256, 7, TagForm::Standard);
        let mut domains = DomainSet::default();
        domains.insert("example.com");
        let mut mta_names = DomainSet::default();
        for name in ["mx.example.net", "localhost"] {
            mta_names.insert(name);
        }
        Policy::new(settings, domains, mta_names, codec, Some(today()))
    }

    fn today() -> Day {
        Day::parse("2026-11-25").unwrap()
    }

    fn mailbox(text: &str) -> Mailbox {
        Mailbox::parse(text).unwrap()
    }

    fn rcpt(text: &str) -> ForwardPath {
        ForwardPath::parse(text).unwrap()
    }

    fn sender(text: &str) -> ReversePath {
        ReversePath::parse(text).unwrap()
    }

    #[test]
    fn bounce_senders() {
        let policy = policy_with(settings());
        assert_eq!(policy.sender_kind(&sender("")), SenderKind::Bounce);
        assert_eq!(policy.sender_kind(&sender("MAILER-DAEMON@remote.test")), SenderKind::Bounce);
        assert_eq!(policy.sender_kind(&sender("bob@remote.test")), SenderKind::Regular);
    }

    #[test]
    fn outbound_signing_table() {
        let policy =
            policy_with(PolicySettings { exempt_senders: vec![AddressPattern::new("noreply@*")], ..settings() });
        assert!(
            matches!(policy.outbound_sender(&sender("alice@example.com"), today()), SenderDecision::Sign(m) if m.local_part().starts_with("prvs=3"))
        );
        assert!(matches!(policy.outbound_sender(&sender("Alice@EXAMPLE.com"), today()), SenderDecision::Sign(_)));
        let kept = [
            ("", Unsigned::NullSender),
            ("bob@other.test", Unsigned::ForeignDomain),
            ("prvs=3123abcdef=alice@example.com", Unsigned::AlreadyTagged),
            ("msprvs1=17aaaaa=alice@example.com", Unsigned::AlreadyTagged),
            ("btv1==123==alice@example.com", Unsigned::AlreadyTagged),
            ("SRS0=HHH=TT=other.test=bob@example.com", Unsigned::Srs),
            ("owner-list@example.com", Unsigned::ListSender),
            ("mylist-bounces+carol=remote.test@example.com", Unsigned::ListSender),
            ("mylist-bounces@example.com", Unsigned::ListSender),
            ("noreply@example.com", Unsigned::ExemptSender),
        ];
        for (address, reason) in kept {
            assert_eq!(policy.outbound_sender(&sender(address), today()), SenderDecision::Keep(reason), "{address}");
        }
        let holding = policy_with(PolicySettings {
            exempt_recipients: vec![AddressPattern::new("lists.example.net")],
            ..settings()
        });
        assert!(matches!(
            holding.outbound_sender(&sender("alice@example.com"), today()),
            SenderDecision::SignUnlessExempt(_)
        ));
        assert!(holding.exempt_recipient(&rcpt("list@Lists.Example.net")));
        assert!(!holding.exempt_recipient(&rcpt("carol@remote.test")));
    }

    #[test]
    fn inbound_recipient_table() {
        let policy = policy_with(settings());
        let tagged = policy.codec().sign(&mailbox("alice@example.com"), today()).to_string();
        let expired = policy.codec().sign(&mailbox("alice@example.com"), Day::parse("2026-10-01").unwrap()).to_string();
        let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
        use RecipientAction::*;
        let table: Vec<(SenderKind, &str, RecipientAction, Verdict)> = vec![
            (SenderKind::Bounce, &tagged, Rewrite(mailbox("alice@example.com")), Verdict::Valid),
            (
                SenderKind::Bounce,
                &forged,
                Reject(Reply::new(550, REPLY_TAG_INVALID)),
                Verdict::Invalid(Failure::BadSignature),
            ),
            (
                SenderKind::Bounce,
                &expired,
                Reject(Reply::new(550, REPLY_TAG_EXPIRED)),
                Verdict::Invalid(Failure::Expired),
            ),
            (
                SenderKind::Bounce,
                "prvs=zz=alice@example.com",
                Reject(Reply::new(550, REPLY_TAG_INVALID)),
                Verdict::Invalid(Failure::Malformed),
            ),
            (SenderKind::Bounce, "alice@example.com", Defer(Deferred::Reject), Verdict::Missing),
            (SenderKind::Bounce, "prvs=1234abcdef=x@foreign.test", Forward, Verdict::Foreign),
            (SenderKind::Bounce, "Postmaster", Forward, Verdict::Exempt),
            (SenderKind::Regular, "alice@example.com", Forward, Verdict::NotBounce),
            (SenderKind::Regular, &tagged, Rewrite(mailbox("alice@example.com")), Verdict::Valid),
            (SenderKind::Regular, &expired, Rewrite(mailbox("alice@example.com")), Verdict::Invalid(Failure::Expired)),
        ];
        for (kind, address, action, verdict) in table {
            let decision = policy.inbound_recipient(kind, &rcpt(address), today());
            assert_eq!((decision.action, decision.verdict), (action, verdict), "{kind:?} {address}");
        }
    }

    #[test]
    fn untagged_bounce_settings() {
        let untagged = |settings: PolicySettings, day: &str| {
            policy_with(settings)
                .inbound_recipient(SenderKind::Bounce, &rcpt("alice@example.com"), Day::parse(day).unwrap())
                .action
        };
        let reply = RecipientAction::Reject(Reply::new(550, REPLY_UNTAGGED));
        assert_eq!(untagged(PolicySettings { untagged_stage: UntaggedStage::Rcpt, ..settings() }, "2026-11-25"), reply);
        let inspect_at_rcpt = PolicySettings {
            untagged_bounce: UntaggedBounce::Inspect,
            untagged_stage: UntaggedStage::Rcpt,
            ..settings()
        };
        assert_eq!(untagged(inspect_at_rcpt, "2026-11-25"), reply, "rcpt refuses before any content exists");
        assert_eq!(
            untagged(PolicySettings { untagged_bounce: UntaggedBounce::Accept, ..settings() }, "2026-11-25"),
            RecipientAction::Forward
        );
        assert_eq!(
            untagged(PolicySettings { untagged_bounce: UntaggedBounce::Inspect, ..settings() }, "2026-11-25"),
            RecipientAction::Defer(Deferred::Inspect)
        );
        assert_eq!(
            untagged(PolicySettings { mode: Mode::Monitor, ..settings() }, "2026-11-25"),
            RecipientAction::Forward
        );
        let grace = || PolicySettings { enforce_after: Some(EnforceAfter::DaysAfterFirstStart(7)), ..settings() };
        assert_eq!(untagged(grace(), "2026-12-01"), RecipientAction::Forward);
        assert_eq!(untagged(grace(), "2026-12-02"), RecipientAction::Defer(Deferred::Reject));
        let dated = || PolicySettings {
            enforce_after: Some(EnforceAfter::Date(Day::parse("2026-12-10").unwrap())),
            ..settings()
        };
        assert_eq!(untagged(dated(), "2026-12-09"), RecipientAction::Forward);
        assert_eq!(untagged(dated(), "2026-12-10"), RecipientAction::Defer(Deferred::Reject));
        let exempt =
            PolicySettings { unverified_recipients: vec![AddressPattern::new("alice@example.com")], ..settings() };
        assert_eq!(untagged(exempt, "2026-11-25"), RecipientAction::Forward);
    }

    #[test]
    fn monitor_mode_rejects_nothing() {
        let policy = policy_with(PolicySettings { mode: Mode::Monitor, ..settings() });
        let tagged = policy.codec().sign(&mailbox("alice@example.com"), today()).to_string();
        let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
        let decision = policy.inbound_recipient(SenderKind::Bounce, &rcpt(&forged), today());
        assert_eq!(decision.action, RecipientAction::Rewrite(mailbox("alice@example.com")));
        assert_eq!(decision.verdict, Verdict::Invalid(Failure::BadSignature));
        assert_eq!(status_header(&[Verdict::Valid, decision.verdict]).unwrap(), "invalid, bad_signature");
        assert_eq!(status_header(&[Verdict::Valid, Verdict::Missing]).unwrap(), "missing");
        assert_eq!(status_header(&[Verdict::Valid]).unwrap(), "valid");
        assert_eq!(status_header(&[Verdict::Foreign]), None);
    }

    #[test]
    fn spellings_that_route_to_our_domains_are_judged_as_ours() {
        let policy = policy_with(PolicySettings { untagged_bounce: UntaggedBounce::Inspect, ..settings() });
        let ours = Some(Domain::parse("example.com").unwrap());
        for spelling in [
            "alice%example.com@localhost",
            "alice%example.com@[127.0.0.1]",
            "alice%example.com@mx.example.net",
            "alice%example.com@remote.test",
            "example.com!alice@localhost",
            "\"alice@example.com\"@localhost",
            "alice%example.com%localhost@localhost",
        ] {
            let bounce = policy.inbound_recipient(SenderKind::Bounce, &rcpt(spelling), today());
            assert_eq!(bounce.verdict, Verdict::Missing, "{spelling}");
            assert_eq!(bounce.action, RecipientAction::Defer(Deferred::Inspect), "{spelling}");
            assert_eq!(bounce.content, ContentCheck::Judge { patterns: ours.clone() }, "{spelling}");
            let regular = policy.inbound_recipient(SenderKind::Regular, &rcpt(spelling), today());
            assert_eq!(
                regular.content,
                ContentCheck::Judge { patterns: ours.clone() },
                "automatic replies: {spelling}"
            );
        }
        // The MTA's own names and literals: judged, with no domain's patterns.
        for local in ["alice@localhost", "alice@MX.example.net", "alice@[127.0.0.1]", "alice@[IPv6:::1]"] {
            let bounce = policy.inbound_recipient(SenderKind::Bounce, &rcpt(local), today());
            assert_eq!(bounce.verdict, Verdict::Missing, "{local}");
            assert_eq!(bounce.content, ContentCheck::Judge { patterns: None }, "{local}");
        }
        // A tag inside a spelling is verified where the spelling leads.
        let tagged = policy.codec().sign(&mailbox("alice@example.com"), today()).to_string();
        let spelled = tagged.replace("@example.com", "%example.com@localhost");
        let decision = policy.inbound_recipient(SenderKind::Bounce, &rcpt(&spelled), today());
        assert_eq!(decision.action, RecipientAction::Rewrite(mailbox("alice@example.com")));
        // Elsewhere, and where it cannot be followed.
        let foreign = policy.inbound_recipient(SenderKind::Bounce, &rcpt("alice%remote.test@localhost"), today());
        assert_eq!(foreign.verdict, Verdict::Foreign);
        let deep = format!("alice{}@localhost", "%localhost".repeat(route::MAX_HOPS + 1));
        let refused = policy.inbound_recipient(SenderKind::Bounce, &rcpt(&deep), today());
        assert_eq!(refused.action, RecipientAction::Reject(Reply::new(550, REPLY_UNRESOLVABLE)));
        // Postmaster takes reports at every domain of ours.
        let postmaster = policy.inbound_recipient(SenderKind::Bounce, &rcpt("PostMaster@example.com"), today());
        assert_eq!((postmaster.action, postmaster.verdict), (RecipientAction::Forward, Verdict::Exempt));
    }

    #[test]
    fn a_failing_tag_is_judged_like_no_tag() {
        let policy = policy_with(settings());
        let ours = ContentCheck::Judge { patterns: Some(Domain::parse("example.com").unwrap()) };
        for forged in [
            "prvs=0999abcdef=alice@example.com",
            "alice+prvs=0999abcdef@example.com",
            "prvs=9123abcdef=alice@example.com",
        ] {
            let decision = policy.inbound_recipient(SenderKind::Regular, &rcpt(forged), today());
            assert!(matches!(decision.verdict, Verdict::Invalid(_)), "{forged}");
            assert_eq!(decision.content, ours, "{forged}: a failing tag must not switch inspection off");
            let untagged = policy.inbound_recipient(SenderKind::Regular, &rcpt("alice@example.com"), today());
            assert_eq!(untagged.content, decision.content);
        }
        let unverified = policy_with(PolicySettings {
            unverified_recipients: vec![AddressPattern::new("alice@example.com")],
            ..settings()
        });
        let decision =
            unverified.inbound_recipient(SenderKind::Regular, &rcpt("prvs=0999abcdef=alice@example.com"), today());
        assert_eq!(decision.content, ContentCheck::No, "unverified recipients stay unjudged, tagged or not");
    }

    #[test]
    fn non_bounce_invalid_tags_can_be_refused() {
        let policy = policy_with(PolicySettings { non_bounce_invalid_tag: NonBounceInvalidTag::Reject, ..settings() });
        let expired = policy.codec().sign(&mailbox("alice@example.com"), Day::parse("2026-10-01").unwrap()).to_string();
        let decision = policy.inbound_recipient(SenderKind::Regular, &rcpt(&expired), today());
        assert!(matches!(decision.action, RecipientAction::Reject(_)));
    }
}
