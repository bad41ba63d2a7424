//! What a refusing verdict does: reject it (the default), ask the sender
//! to try again later, or deliver it marked so the MTA or a Sieve script
//! can file it. Admins roll out softly with these: forged tags rejected at
//! once, untagged automatic replies only marked for a week.

use crate::batv::Failure;
use crate::labels::label_enum;
use crate::smtp::reply::Reply;

label_enum! {
    /// The verdicts whose action is configurable (`[policy.actions]`).
    pub enum ActionRule {
        /// A tag whose signature does not match, or that is no tag at all.
        ForgedTag => "forged_tag",
        /// A tag past its expiry day, or dated too far ahead.
        ExpiredTag => "expired_tag",
        /// A tag made with a key number the key file does not hold.
        UnknownKey => "unknown_key",
        /// A bounce to an untagged address that answers no message we sent.
        UntaggedBounce => "untagged_bounce",
        /// An automatic reply to an untagged address that answers no message we sent.
        UntaggedAutoreply => "untagged_autoreply",
        /// The ledger that would decide cannot answer.
        LedgerUnavailable => "ledger_unavailable",
    }
}

label_enum! {
    /// What a refusing verdict does.
    pub enum Action {
        /// `5xx`: refused for good.
        Reject => "reject",
        /// `4xx`: the sender tries again later.
        TempFail => "tempfail",
        /// Delivered, with `X-Batv-Status` and the `mark_header`.
        Mark => "mark",
    }
}

impl From<Failure> for ActionRule {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Expired | Failure::FutureDated => ActionRule::ExpiredTag,
            Failure::UnknownKey => ActionRule::UnknownKey,
            Failure::Missing | Failure::Malformed | Failure::BadSignature => ActionRule::ForgedTag,
        }
    }
}

/// A header field the proxy adds to marked mail, e.g. `X-Spam-Flag: YES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkHeader {
    pub name: String,
    pub value: String,
}

impl MarkHeader {
    /// The default: a field of the proxy's own that says what was found.
    pub fn default_field() -> Self {
        MarkHeader { name: "X-Batv-Mark".into(), value: "refused".into() }
    }
}

/// `[policy.actions]`: an action per rule, and the mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    pub forged_tag: Action,
    pub expired_tag: Action,
    pub unknown_key: Action,
    pub untagged_bounce: Action,
    pub untagged_autoreply: Action,
    pub ledger_unavailable: Action,
    pub mark_header: MarkHeader,
}

impl Default for Actions {
    /// Today's behaviour: refuse, and ask to retry when the ledger is away.
    fn default() -> Self {
        Actions {
            forged_tag: Action::Reject,
            expired_tag: Action::Reject,
            unknown_key: Action::Reject,
            untagged_bounce: Action::Reject,
            untagged_autoreply: Action::Reject,
            ledger_unavailable: Action::TempFail,
            mark_header: MarkHeader::default_field(),
        }
    }
}

impl Actions {
    pub fn for_rule(&self, rule: ActionRule) -> Action {
        match rule {
            ActionRule::ForgedTag => self.forged_tag,
            ActionRule::ExpiredTag => self.expired_tag,
            ActionRule::UnknownKey => self.unknown_key,
            ActionRule::UntaggedBounce => self.untagged_bounce,
            ActionRule::UntaggedAutoreply => self.untagged_autoreply,
            ActionRule::LedgerUnavailable => self.ledger_unavailable,
        }
    }
}

/// The reply for a refusal under `action`: `refusal` as it is, or its
/// temporary twin (`451 4.x.y` for `550 5.x.y`); `None` to deliver, marked.
pub fn reply_for(action: Action, refusal: Reply) -> Option<Reply> {
    match action {
        Action::Reject => Some(refusal),
        Action::TempFail => Some(temporary(&refusal)),
        Action::Mark => None,
    }
}

/// The same refusal, as a temporary one.
pub fn temporary(refusal: &Reply) -> Reply {
    if refusal.is_transient_failure() {
        return refusal.clone();
    }
    let text = refusal.text();
    let text = match text.strip_prefix('5') {
        Some(rest) if text.as_bytes().get(1) == Some(&b'.') => format!("4{rest}"),
        _ => text,
    };
    Reply::new(451, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tempfail_keeps_the_text_with_a_temporary_code() {
        let refusal = Reply::new(550, "5.7.1 Bounce address tag is invalid");
        assert_eq!(temporary(&refusal).to_bytes(), b"451 4.7.1 Bounce address tag is invalid\r\n");
        assert_eq!(reply_for(Action::Reject, refusal.clone()), Some(refusal.clone()));
        assert_eq!(reply_for(Action::Mark, refusal), None);
        let already = Reply::new(451, "4.3.0 later");
        assert_eq!(temporary(&already), already);
    }

    #[test]
    fn tag_failures_map_to_their_rules() {
        assert_eq!(ActionRule::from(Failure::BadSignature), ActionRule::ForgedTag);
        assert_eq!(ActionRule::from(Failure::Malformed), ActionRule::ForgedTag);
        assert_eq!(ActionRule::from(Failure::FutureDated), ActionRule::ExpiredTag);
        assert_eq!(ActionRule::from(Failure::UnknownKey), ActionRule::UnknownKey);
        let actions = Actions { untagged_autoreply: Action::Mark, ..Actions::default() };
        assert_eq!(actions.for_rule(ActionRule::UntaggedAutoreply), Action::Mark);
        assert_eq!(actions.for_rule(ActionRule::LedgerUnavailable), Action::TempFail);
    }
}
