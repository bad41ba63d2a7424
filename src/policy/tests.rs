use std::path::Path;

use super::*;
use super::{AddressPattern, Mode, NonBounceInvalidTag, PolicySettings, UntaggedBounce, UntaggedStage};
use crate::batv::{Day, Failure};
use crate::batv::{HashAlgorithm, KeyRing, TagForm};
use crate::smtp::address::{Domain, ForwardPath, Mailbox, ReversePath};
use crate::smtp::reply::Reply;
use inbound::{REPLY_TAG_EXPIRED, REPLY_TAG_INVALID, REPLY_UNRESOLVABLE, REPLY_UNTAGGED};

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
        actions: Actions::default(),
        exemptions: Exemptions::default(),
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
    let policy = policy_with(PolicySettings { exempt_senders: vec![AddressPattern::new("noreply@*")], ..settings() });
    assert!(
        matches!(policy.outbound_sender(&sender("alice@example.com"), &Source::default(), today()), SenderDecision::Sign(m) if m.local_part().starts_with("prvs=3"))
    );
    assert!(matches!(
        policy.outbound_sender(&sender("Alice@EXAMPLE.com"), &Source::default(), today()),
        SenderDecision::Sign(_)
    ));
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
        assert_eq!(
            policy.outbound_sender(&sender(address), &Source::default(), today()),
            SenderDecision::Keep(reason, None),
            "{address}"
        );
    }
    let holding =
        policy_with(PolicySettings { exempt_recipients: vec![AddressPattern::new("lists.example.net")], ..settings() });
    assert!(matches!(
        holding.outbound_sender(&sender("alice@example.com"), &Source::default(), today()),
        SenderDecision::SignUnlessExempt(_)
    ));
    assert!(holding.exempt_recipient(&rcpt("list@Lists.Example.net"), &Source::default()));
    assert!(!holding.exempt_recipient(&rcpt("carol@remote.test"), &Source::default()));
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
            Reject(Reply::new(550, REPLY_TAG_INVALID), RejectReason::BadSignature),
            Verdict::Invalid(Failure::BadSignature),
        ),
        (
            SenderKind::Bounce,
            &expired,
            Reject(Reply::new(550, REPLY_TAG_EXPIRED), RejectReason::Expired),
            Verdict::Invalid(Failure::Expired),
        ),
        (
            SenderKind::Bounce,
            "prvs=zz=alice@example.com",
            Reject(Reply::new(550, REPLY_TAG_INVALID), RejectReason::Malformed),
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
        let decision = policy.inbound_recipient(kind, &rcpt(address), &Source::default(), today());
        assert_eq!((decision.action, decision.verdict), (action, verdict), "{kind:?} {address}");
    }
}

#[test]
fn untagged_bounce_settings() {
    let untagged = |settings: PolicySettings, day: &str| {
        policy_with(settings)
            .inbound_recipient(
                SenderKind::Bounce,
                &rcpt("alice@example.com"),
                &Source::default(),
                Day::parse(day).unwrap(),
            )
            .action
    };
    let reply = RecipientAction::Reject(Reply::new(550, REPLY_UNTAGGED), RejectReason::Untagged);
    assert_eq!(untagged(PolicySettings { untagged_stage: UntaggedStage::Rcpt, ..settings() }, "2026-11-25"), reply);
    let inspect_at_rcpt =
        PolicySettings { untagged_bounce: UntaggedBounce::Inspect, untagged_stage: UntaggedStage::Rcpt, ..settings() };
    assert_eq!(untagged(inspect_at_rcpt, "2026-11-25"), reply, "rcpt refuses before any content exists");
    assert_eq!(
        untagged(PolicySettings { untagged_bounce: UntaggedBounce::Accept, ..settings() }, "2026-11-25"),
        RecipientAction::Forward
    );
    assert_eq!(
        untagged(PolicySettings { untagged_bounce: UntaggedBounce::Inspect, ..settings() }, "2026-11-25"),
        RecipientAction::Defer(Deferred::Inspect)
    );
    assert_eq!(untagged(PolicySettings { mode: Mode::Monitor, ..settings() }, "2026-11-25"), RecipientAction::Forward);
    let grace = || PolicySettings { enforce_after: Some(EnforceAfter::DaysAfterFirstStart(7)), ..settings() };
    assert_eq!(untagged(grace(), "2026-12-01"), RecipientAction::Forward);
    assert_eq!(untagged(grace(), "2026-12-02"), RecipientAction::Defer(Deferred::Reject));
    let dated =
        || PolicySettings { enforce_after: Some(EnforceAfter::Date(Day::parse("2026-12-10").unwrap())), ..settings() };
    assert_eq!(untagged(dated(), "2026-12-09"), RecipientAction::Forward);
    assert_eq!(untagged(dated(), "2026-12-10"), RecipientAction::Defer(Deferred::Reject));
    let exempt = PolicySettings { unverified_recipients: vec![AddressPattern::new("alice@example.com")], ..settings() };
    assert_eq!(untagged(exempt, "2026-11-25"), RecipientAction::Forward);
}

#[test]
fn monitor_mode_rejects_nothing() {
    let policy = policy_with(PolicySettings { mode: Mode::Monitor, ..settings() });
    let tagged = policy.codec().sign(&mailbox("alice@example.com"), today()).to_string();
    let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
    let decision = policy.inbound_recipient(SenderKind::Bounce, &rcpt(&forged), &Source::default(), today());
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
        let bounce = policy.inbound_recipient(SenderKind::Bounce, &rcpt(spelling), &Source::default(), today());
        assert_eq!(bounce.verdict, Verdict::Missing, "{spelling}");
        assert_eq!(bounce.action, RecipientAction::Defer(Deferred::Inspect), "{spelling}");
        assert_eq!(bounce.content, ContentCheck::Judge { patterns: ours.clone() }, "{spelling}");
        let regular = policy.inbound_recipient(SenderKind::Regular, &rcpt(spelling), &Source::default(), today());
        assert_eq!(regular.content, ContentCheck::Judge { patterns: ours.clone() }, "automatic replies: {spelling}");
    }
    // The MTA's own names and literals: judged, with no domain's patterns.
    for local in ["alice@localhost", "alice@MX.example.net", "alice@[127.0.0.1]", "alice@[IPv6:::1]"] {
        let bounce = policy.inbound_recipient(SenderKind::Bounce, &rcpt(local), &Source::default(), today());
        assert_eq!(bounce.verdict, Verdict::Missing, "{local}");
        assert_eq!(bounce.content, ContentCheck::Judge { patterns: None }, "{local}");
    }
    // A tag inside a spelling is verified where the spelling leads.
    let tagged = policy.codec().sign(&mailbox("alice@example.com"), today()).to_string();
    let spelled = tagged.replace("@example.com", "%example.com@localhost");
    let decision = policy.inbound_recipient(SenderKind::Bounce, &rcpt(&spelled), &Source::default(), today());
    assert_eq!(decision.action, RecipientAction::Rewrite(mailbox("alice@example.com")));
    // Elsewhere, and where it cannot be followed.
    let foreign =
        policy.inbound_recipient(SenderKind::Bounce, &rcpt("alice%remote.test@localhost"), &Source::default(), today());
    assert_eq!(foreign.verdict, Verdict::Foreign);
    let deep = format!("alice{}@localhost", "%localhost".repeat(route::MAX_HOPS + 1));
    let refused = policy.inbound_recipient(SenderKind::Bounce, &rcpt(&deep), &Source::default(), today());
    assert_eq!(
        refused.action,
        RecipientAction::Reject(Reply::new(550, REPLY_UNRESOLVABLE), RejectReason::UnresolvableRoute)
    );
    // Postmaster takes reports at every domain of ours.
    let postmaster =
        policy.inbound_recipient(SenderKind::Bounce, &rcpt("PostMaster@example.com"), &Source::default(), today());
    assert_eq!((postmaster.action, postmaster.verdict), (RecipientAction::Forward, Verdict::Exempt));
}

#[test]
fn a_failing_tag_is_judged_like_no_tag() {
    let policy = policy_with(settings());
    let ours = ContentCheck::Judge { patterns: Some(Domain::parse("example.com").unwrap()) };
    for forged in
        ["prvs=0999abcdef=alice@example.com", "alice+prvs=0999abcdef@example.com", "prvs=9123abcdef=alice@example.com"]
    {
        let decision = policy.inbound_recipient(SenderKind::Regular, &rcpt(forged), &Source::default(), today());
        assert!(matches!(decision.verdict, Verdict::Invalid(_)), "{forged}");
        assert_eq!(decision.content, ours, "{forged}: a failing tag must not switch inspection off");
        let untagged =
            policy.inbound_recipient(SenderKind::Regular, &rcpt("alice@example.com"), &Source::default(), today());
        assert_eq!(untagged.content, decision.content);
    }
    let unverified = policy_with(PolicySettings {
        unverified_recipients: vec![AddressPattern::new("alice@example.com")],
        ..settings()
    });
    let decision = unverified.inbound_recipient(
        SenderKind::Regular,
        &rcpt("prvs=0999abcdef=alice@example.com"),
        &Source::default(),
        today(),
    );
    assert_eq!(decision.content, ContentCheck::No, "unverified recipients stay unjudged, tagged or not");
}

#[test]
fn non_bounce_invalid_tags_can_be_refused() {
    let policy = policy_with(PolicySettings { non_bounce_invalid_tag: NonBounceInvalidTag::Reject, ..settings() });
    let expired = policy.codec().sign(&mailbox("alice@example.com"), Day::parse("2026-10-01").unwrap()).to_string();
    let decision = policy.inbound_recipient(SenderKind::Regular, &rcpt(&expired), &Source::default(), today());
    assert!(matches!(decision.action, RecipientAction::Reject(..)));
}

/// What the content decides from the message alone, and what it asks the
/// ledger: a pattern counts only for a recognised message and an id where
/// software put it; the ledger is asked about every id and UID.
#[test]
fn content_precheck_table() {
    use crate::dsn::{Found, Inspection, Kind, Reference};
    let mut patterns = std::collections::HashMap::new();
    patterns.insert("example.com".to_owned(), vec!["*@mx.example.com".to_owned()]);
    let policy = policy_with(PolicySettings { message_id_patterns: patterns, ..settings() });
    let domains = [Some(Domain::parse("example.com").unwrap())];
    let inspection = |kind: Kind, references: &[(&str, Found)], calendar_uids: &[&str]| Inspection {
        kind,
        original_message_id: None,
        referenced_ids: vec![],
        rule: "test",
        reason: String::new(),
        references: references.iter().map(|(id, found)| Reference { id: (*id).into(), found: *found }).collect(),
        calendar_uids: calendar_uids.iter().map(|uid| (*uid).into()).collect(),
        reporting_mta: None,
    };
    let decided = |rule| ContentPrecheck::Decided(ContentVerdict::Accept(rule));
    let rejected = |rule| ContentPrecheck::Decided(ContentVerdict::Reject(rule));
    let ask = |evidence: Vec<Evidence>| ContentPrecheck::AskLedger(evidence);
    let id = |id: &str, found| Evidence::MessageId { id: id.into(), found };
    let ours = "<1.2@mx.example.com>";
    let cases: Vec<(&str, bool, Inspection, ContentPrecheck)> = vec![
        (
            "a person's mail",
            false,
            inspection(Kind::None, &[(ours, Found::InReplyTo)], &[]),
            decided(ContentRule::NotAutomatic),
        ),
        ("a bounce naming nothing", true, inspection(Kind::Dsn, &[], &[]), rejected(ContentRule::NoOriginalMessageId)),
        (
            "a bounce with a pattern id in its returned copy",
            true,
            inspection(Kind::Dsn, &[(ours, Found::ReturnedHeader)], &[]),
            decided(ContentRule::MessageIdPattern),
        ),
        (
            "an automatic reply with a pattern id in In-Reply-To",
            false,
            inspection(Kind::AutoReply, &[(ours, Found::InReplyTo)], &[]),
            decided(ContentRule::MessageIdPattern),
        ),
        (
            "a pattern id only in the text goes to the ledger",
            true,
            inspection(Kind::Dsn, &[(ours, Found::QuotedText)], &[]),
            ask(vec![id(ours, Found::QuotedText)]),
        ),
        (
            "a pattern id in the copy's References goes to the ledger",
            true,
            inspection(Kind::Dsn, &[(ours, Found::ReturnedReferences)], &[]),
            ask(vec![id(ours, Found::ReturnedReferences)]),
        ),
        (
            "an unrecognised bounce's ids all go to the ledger",
            true,
            inspection(Kind::None, &[(ours, Found::InReplyTo), ("<x@y>", Found::QuotedText)], &[]),
            ask(vec![id(ours, Found::InReplyTo), id("<x@y>", Found::QuotedText)]),
        ),
        (
            "a meeting response's UIDs go to the ledger after its ids",
            true,
            inspection(Kind::AutoReply, &[("<x@y>", Found::InReplyTo)], &["uid-1"]),
            ask(vec![id("<x@y>", Found::InReplyTo), Evidence::CalendarUid("uid-1".into())]),
        ),
        (
            "a UID alone is evidence enough to ask",
            true,
            inspection(Kind::None, &[], &["uid-1"]),
            ask(vec![Evidence::CalendarUid("uid-1".into())]),
        ),
        (
            "another domain's pattern does not count",
            true,
            inspection(Kind::Dsn, &[("<1.2@mx.other.test>", Found::ReturnedHeader)], &[]),
            ask(vec![id("<1.2@mx.other.test>", Found::ReturnedHeader)]),
        ),
    ];
    for (name, bounce, inspection, expected) in cases {
        assert_eq!(policy.precheck_content(bounce, &inspection, &domains), expected, "{name}");
    }
    let no_domains: [Option<Domain>; 1] = [None];
    let copy = inspection(Kind::Dsn, &[(ours, Found::ReturnedHeader)], &[]);
    assert_eq!(
        policy.precheck_content(true, &copy, &no_domains),
        ask(vec![id(ours, Found::ReturnedHeader)]),
        "patterns apply per judged recipient's domain"
    );
    assert_eq!(id(ours, Found::QuotedText).found(), "quoted_text");
    assert_eq!(Evidence::CalendarUid("u".into()).found(), "calendar_uid");
}
