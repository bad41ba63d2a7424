//! Inbound recipients: the verdict on each, where it really routes, and
//! which recipients may share a transaction.

use super::settings::{Mode, NonBounceInvalidTag, UntaggedBounce, UntaggedStage};
use crate::batv::tag::{self, Parsed};
use crate::batv::{Day, Failure, KeyId};
use crate::smtp::address::{Domain, ForwardPath, Mailbox};
use crate::smtp::reply::Reply;

use super::actions::{Action, ActionRule, reply_for};
use super::exemptions::{Scope, Source};
use super::route::{self, Route};
use super::rules::{RecipientRule, RejectReason, VerdictReason, VerdictResult};
use super::{Policy, SenderKind};

pub const REPLY_TAG_EXPIRED: &str = "5.7.1 Bounce address tag has expired";
pub const REPLY_TAG_INVALID: &str = "5.7.1 Bounce address tag is invalid";
pub const REPLY_UNTAGGED: &str = "5.7.1 Bounce to an untagged address: we did not send the message it refers to";
pub const REPLY_UNRESOLVABLE: &str =
    "5.7.1 Bounce refused: the recipient address routes through too many hops to be verified";

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
    /// Listed in `unverified_recipients`, or a postmaster.
    Exempt,
}

impl Verdict {
    /// The `result` and `reason` labels.
    pub fn labels(self) -> (VerdictResult, VerdictReason) {
        match self {
            Verdict::Valid => (VerdictResult::Valid, VerdictReason::Ok),
            Verdict::Invalid(failure) => (VerdictResult::Invalid, failure.into()),
            Verdict::Missing => (VerdictResult::Missing, VerdictReason::Untagged),
            Verdict::Foreign => (VerdictResult::Untouched, VerdictReason::ForeignDomain),
            Verdict::NotBounce => (VerdictResult::Untouched, VerdictReason::NotBounce),
            Verdict::Exempt => (VerdictResult::Untouched, VerdictReason::Exempt),
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
    Reject(Reply, RejectReason),
    /// Accept at RCPT (sender callouts must keep working); judge later.
    Defer(Deferred),
}

/// The recipients of a bounce transaction must share one fate at DATA, so
/// a transaction holds either recipients to judge later or ones accepted
/// outright; a recipient of the other kind gets a 452 and comes back in a
/// transaction of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Accepted,
    Deferred(Deferred),
}

impl RecipientAction {
    pub fn class(&self) -> Class {
        match self {
            RecipientAction::Defer(deferred) => Class::Deferred(*deferred),
            _ => Class::Accepted,
        }
    }
}

impl Class {
    /// Whether a recipient of class `self` may join a transaction whose
    /// recipients so far are of class `existing`.
    pub fn joins(self, existing: Option<Class>) -> bool {
        existing.is_none_or(|existing| existing == self)
    }
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
    pub rule: RecipientRule,
    pub content: ContentCheck,
    /// A refusing verdict whose action is `mark`: the message is delivered
    /// with `X-Batv-Status` and the mark header.
    pub mark: bool,
    /// The source exemption that decided, if one did.
    pub exemption: Option<String>,
}

fn decide(
    action: RecipientAction,
    verdict: Verdict,
    key_id: Option<KeyId>,
    rule: RecipientRule,
    content: ContentCheck,
) -> RecipientDecision {
    RecipientDecision { action, verdict, key_id, rule, content, mark: false, exemption: None }
}

impl RecipientDecision {
    fn marked(self) -> Self {
        RecipientDecision { mark: true, ..self }
    }
}

impl Policy {
    /// Inbound: the verdict for one recipient of a transaction from `sender`.
    ///
    /// The recipient is judged where it really goes (see [`route`]): a
    /// spelling that an MTA routes to one of our domains is judged as that
    /// address, and one at the MTA's own names as ours. A recipient whose
    /// tag fails is judged like an untagged one: the content of a regular
    /// sender's message still decides whether it is an automatic reply.
    pub fn inbound_recipient(
        &self,
        sender: SenderKind,
        path: &ForwardPath,
        source: &Source<'_>,
        today: Day,
    ) -> RecipientDecision {
        let ForwardPath::Mailbox(written) = path else {
            return decide(
                RecipientAction::Forward,
                Verdict::Exempt,
                None,
                RecipientRule::Postmaster,
                ContentCheck::No,
            );
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
            return decide(
                RecipientAction::Forward,
                Verdict::Foreign,
                None,
                RecipientRule::ForeignDomain,
                ContentCheck::No,
            );
        };
        let judge = ContentCheck::Judge { patterns };
        let unverified = self.settings.is_unverified(target) || self.settings.is_unverified(written);
        let source = Source { recipient: Some(path), ..*source };
        match tag::parse(target) {
            Parsed::Tagged(_) | Parsed::Malformed => {
                self.tagged_recipient(sender, target, unverified, judge, &source, today)
            }
            Parsed::Untagged => self.untagged_recipient(sender, target, unverified, judge, &source, today),
        }
    }

    /// What a refusing verdict of `rule` does: every one marks in monitor mode.
    pub fn action(&self, rule: ActionRule) -> Action {
        if self.settings.mode == Mode::Monitor { Action::Mark } else { self.settings.actions.for_rule(rule) }
    }

    /// An exemption of `scope` for mail from `source` that the envelope can
    /// decide (not one that needs the message's Reporting-MTA).
    fn envelope_exemption(&self, scope: Scope, source: &Source<'_>) -> Option<String> {
        let exemptions = &self.settings.exemptions.0;
        let found = exemptions.iter().find(|exemption| !exemption.needs_content() && exemption.applies(scope, source));
        found.map(|exemption| exemption.name.clone())
    }

    /// Mail from a regular sender that may be an automatic reply: judged
    /// by its content, unless its recipient or its source is exempt.
    fn maybe_automatic(
        &self,
        unverified: bool,
        judge: ContentCheck,
        source: &Source<'_>,
    ) -> (ContentCheck, Option<String>) {
        if unverified {
            return (ContentCheck::No, None);
        }
        match self.envelope_exemption(Scope::AutoReply, source) {
            Some(name) => (ContentCheck::No, Some(name)),
            None => (judge, None),
        }
    }

    fn tagged_recipient(
        &self,
        sender: SenderKind,
        target: &Mailbox,
        unverified: bool,
        judge: ContentCheck,
        source: &Source<'_>,
        today: Day,
    ) -> RecipientDecision {
        let invalid = match self.codec.verify(target, today) {
            Ok(valid) => {
                return decide(
                    RecipientAction::Rewrite(valid.original),
                    Verdict::Valid,
                    Some(valid.key_id),
                    RecipientRule::ValidTag,
                    ContentCheck::No,
                );
            }
            Err(invalid) => invalid,
        };
        let verdict = Verdict::Invalid(invalid.reason);
        let monitor = self.settings.mode == Mode::Monitor;
        let refuse = match sender {
            SenderKind::Bounce => true,
            SenderKind::Regular => self.settings.non_bounce_invalid_tag == NonBounceInvalidTag::Reject,
        };
        let pass_on = |rule, content| match invalid.original.clone() {
            Some(original) => decide(RecipientAction::Rewrite(original), verdict, invalid.key_id, rule, content),
            None => decide(RecipientAction::Forward, verdict, None, rule, content),
        };
        if refuse {
            let text = if invalid.reason == Failure::Expired { REPLY_TAG_EXPIRED } else { REPLY_TAG_INVALID };
            let action = self.action(ActionRule::from(invalid.reason));
            return match reply_for(action, Reply::new(550, text)) {
                Some(reply) => decide(
                    RecipientAction::Reject(reply, invalid.reason.into()),
                    verdict,
                    invalid.key_id,
                    RecipientRule::InvalidTag,
                    ContentCheck::No,
                ),
                // Monitor mode still reads the content, to log what enforcing would do.
                None if monitor => pass_on(RecipientRule::Monitor, judge).marked(),
                None => pass_on(RecipientRule::InvalidTag, ContentCheck::No).marked(),
            };
        }
        // Passed on: judged from here on as if it had no tag.
        let unverified =
            unverified || invalid.original.as_ref().is_some_and(|original| self.settings.is_unverified(original));
        let (content, exemption) = self.maybe_automatic(unverified, judge, source);
        let rule = match (monitor, invalid.original.is_some()) {
            (true, _) => RecipientRule::Monitor,
            (false, true) => RecipientRule::NonBounceStrip,
            (false, false) => RecipientRule::NonBounce,
        };
        RecipientDecision { exemption, ..pass_on(rule, content) }
    }

    fn untagged_recipient(
        &self,
        sender: SenderKind,
        target: &Mailbox,
        unverified: bool,
        judge: ContentCheck,
        source: &Source<'_>,
        today: Day,
    ) -> RecipientDecision {
        if sender == SenderKind::Regular {
            let (content, exemption) = self.maybe_automatic(unverified, judge, source);
            let decision =
                decide(RecipientAction::Forward, Verdict::NotBounce, None, RecipientRule::NotBounce, content);
            return RecipientDecision { exemption, ..decision };
        }
        if unverified {
            return decide(
                RecipientAction::Forward,
                Verdict::Exempt,
                None,
                RecipientRule::UnverifiedRecipient,
                ContentCheck::No,
            );
        }
        if target.local_part().eq_ignore_ascii_case("postmaster") {
            // RFC 5321 §4.5.1: postmaster takes every report, at every domain.
            return decide(
                RecipientAction::Forward,
                Verdict::Exempt,
                None,
                RecipientRule::Postmaster,
                ContentCheck::No,
            );
        }
        if let Some(name) = self.envelope_exemption(Scope::UntaggedBounce, source) {
            let decision = decide(
                RecipientAction::Forward,
                Verdict::Exempt,
                None,
                RecipientRule::SourceExemption,
                ContentCheck::No,
            );
            return RecipientDecision { exemption: Some(name), ..decision };
        }
        if self.settings.mode == Mode::Monitor {
            return decide(RecipientAction::Forward, Verdict::Missing, None, RecipientRule::Monitor, judge);
        }
        if !self.enforcing_untagged(today) {
            return decide(
                RecipientAction::Forward,
                Verdict::Missing,
                None,
                RecipientRule::GracePeriod,
                ContentCheck::No,
            );
        }
        // "rcpt" refuses before any content exists, so it overrides "inspect".
        let (action, rule, content) = match (self.settings.untagged_bounce, self.settings.untagged_stage) {
            (UntaggedBounce::Accept, _) => (RecipientAction::Forward, RecipientRule::UntaggedAccept, ContentCheck::No),
            (_, UntaggedStage::Rcpt) => {
                match reply_for(self.action(ActionRule::UntaggedBounce), Reply::new(550, REPLY_UNTAGGED)) {
                    Some(reply) => (
                        RecipientAction::Reject(reply, RejectReason::Untagged),
                        RecipientRule::UntaggedRejectRcpt,
                        ContentCheck::No,
                    ),
                    None => {
                        let marked = decide(
                            RecipientAction::Forward,
                            Verdict::Missing,
                            None,
                            RecipientRule::UntaggedRejectRcpt,
                            ContentCheck::No,
                        );
                        return marked.marked();
                    }
                }
            }
            (UntaggedBounce::Inspect, UntaggedStage::Data) => {
                (RecipientAction::Defer(Deferred::Inspect), RecipientRule::UntaggedInspect, judge)
            }
            (UntaggedBounce::Reject, UntaggedStage::Data) => {
                (RecipientAction::Defer(Deferred::Reject), RecipientRule::UntaggedRejectData, ContentCheck::No)
            }
        };
        decide(action, Verdict::Missing, None, rule, content)
    }

    /// A spelling that holds an address the proxy cannot follow: a bounce
    /// to it is refused (it cannot be shown to be for a message we sent);
    /// other mail passes to the MTA, and its content still decides whether
    /// it is an automatic reply, which only the ledger can then accept.
    fn unresolvable_recipient(&self, sender: SenderKind) -> RecipientDecision {
        let judge = ContentCheck::Judge { patterns: None };
        let refusal = reply_for(self.action(ActionRule::UntaggedBounce), Reply::new(550, REPLY_UNRESOLVABLE));
        match (sender, refusal) {
            (SenderKind::Bounce, Some(reply)) => decide(
                RecipientAction::Reject(reply, RejectReason::UnresolvableRoute),
                Verdict::Missing,
                None,
                RecipientRule::UnresolvableRoute,
                judge,
            ),
            (SenderKind::Bounce, None) => {
                decide(RecipientAction::Forward, Verdict::Missing, None, RecipientRule::UnresolvableRoute, judge)
                    .marked()
            }
            (SenderKind::Regular, _) => {
                decide(RecipientAction::Forward, Verdict::NotBounce, None, RecipientRule::UnresolvableRoute, judge)
            }
        }
    }
}
