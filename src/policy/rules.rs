//! The names of what the policy decides: which rule decided a recipient
//! or a message, and why something was refused. They are the label values
//! of the metrics and the `rule`/`reason` fields of the logs.

use crate::batv::Failure;
use crate::labels::label_enum;
use crate::smtp::data::Violation;
use crate::smtp::line::LineError;

label_enum! {
    /// What decided a recipient's verdict (`rule` in `recipient verdict`).
    pub enum RecipientRule {
        ValidTag => "valid_tag",
        InvalidTag => "invalid_tag",
        NonBounceStrip => "non_bounce_strip",
        NonBounce => "non_bounce",
        Monitor => "monitor",
        GracePeriod => "grace_period",
        UntaggedInspect => "untagged_inspect",
        UntaggedRejectData => "untagged_reject_data",
        UntaggedRejectRcpt => "untagged_reject_rcpt",
        UntaggedAccept => "untagged_accept",
        UnverifiedRecipient => "unverified_recipient",
        ForeignDomain => "foreign_domain",
        Postmaster => "postmaster",
        NotBounce => "not_bounce",
        UnresolvableRoute => "unresolvable_route",
        SourceExemption => "source_exemption",
    }
}

label_enum! {
    /// What decided a message judged by its content (`rule` in `content verdict`).
    pub enum ContentRule {
        NotAutomatic => "not_automatic",
        NoOriginalMessageId => "no_original_message_id",
        MessageIdPattern => "message_id_pattern",
        Ledger => "ledger",
        NotOurs => "not_ours",
        NoPatternNoLedger => "no_pattern_no_ledger",
        LedgerUnavailable => "ledger_unavailable",
        Exemption => "exemption",
    }
}

label_enum! {
    /// The outcome of a content judgement (`result` of `batv_proxy_inspections_total`).
    pub enum ContentResult {
        Accept => "accept",
        Reject => "reject",
        TempFail => "tempfail",
    }
}

label_enum! {
    /// The `result` of a recipient verdict (`batv_proxy_verifications_total`).
    pub enum VerdictResult {
        Valid => "valid",
        Invalid => "invalid",
        Missing => "missing",
        Untouched => "untouched",
    }
}

label_enum! {
    /// The `reason` of a recipient verdict.
    pub enum VerdictReason {
        Ok => "ok",
        Malformed => "malformed",
        UnknownKey => "unknown_key",
        Expired => "expired",
        FutureDated => "future_dated",
        BadSignature => "bad_signature",
        Untagged => "untagged",
        ForeignDomain => "foreign_domain",
        NotBounce => "not_bounce",
        Exempt => "exempt",
    }
}

impl From<Failure> for VerdictReason {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Missing => VerdictReason::Untagged,
            Failure::Malformed => VerdictReason::Malformed,
            Failure::UnknownKey => VerdictReason::UnknownKey,
            Failure::Expired => VerdictReason::Expired,
            Failure::FutureDated => VerdictReason::FutureDated,
            Failure::BadSignature => VerdictReason::BadSignature,
        }
    }
}

label_enum! {
    /// Where in the dialogue the proxy refused something (`stage`).
    pub enum Stage {
        Command => "command",
        Mail => "mail",
        Rcpt => "rcpt",
        Data => "data",
    }
}

label_enum! {
    /// Why the proxy itself refused a command or a message (`reason` of
    /// `batv_proxy_rejections_total`).
    pub enum RejectReason {
        LineTooLong => "line_too_long",
        BareLf => "bare_lf",
        BareCr => "bare_cr",
        Nul => "nul",
        TlsRequired => "tls_required",
        AuthRequired => "auth_required",
        TooBig => "too_big",
        TooManyRecipients => "too_many_recipients",
        MixedVerdicts => "mixed_verdicts",
        MixedExemption => "mixed_exemption",
        Untagged => "untagged",
        UnresolvableRoute => "unresolvable_route",
        Malformed => "malformed",
        UnknownKey => "unknown_key",
        Expired => "expired",
        FutureDated => "future_dated",
        BadSignature => "bad_signature",
        NoOriginalMessageId => "no_original_message_id",
        NotOurs => "not_ours",
        NoPatternNoLedger => "no_pattern_no_ledger",
        LedgerUnavailable => "ledger_unavailable",
    }
}

impl From<Failure> for RejectReason {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Missing => RejectReason::Untagged,
            Failure::Malformed => RejectReason::Malformed,
            Failure::UnknownKey => RejectReason::UnknownKey,
            Failure::Expired => RejectReason::Expired,
            Failure::FutureDated => RejectReason::FutureDated,
            Failure::BadSignature => RejectReason::BadSignature,
        }
    }
}

impl From<Violation> for RejectReason {
    fn from(violation: Violation) -> Self {
        match violation {
            Violation::BareLf => RejectReason::BareLf,
            Violation::BareCr => RejectReason::BareCr,
            Violation::Nul => RejectReason::Nul,
        }
    }
}

impl From<LineError> for RejectReason {
    fn from(error: LineError) -> Self {
        match error {
            LineError::TooLong => RejectReason::LineTooLong,
            LineError::BareLf => RejectReason::BareLf,
            LineError::BareCr => RejectReason::BareCr,
            LineError::Nul => RejectReason::Nul,
        }
    }
}

impl ContentRule {
    /// The rejection reason of a refused content verdict; `None` for the
    /// rules that accept.
    pub fn rejection(self) -> Option<RejectReason> {
        match self {
            ContentRule::NoOriginalMessageId => Some(RejectReason::NoOriginalMessageId),
            ContentRule::NotOurs => Some(RejectReason::NotOurs),
            ContentRule::NoPatternNoLedger => Some(RejectReason::NoPatternNoLedger),
            ContentRule::LedgerUnavailable => Some(RejectReason::LedgerUnavailable),
            ContentRule::NotAutomatic
            | ContentRule::MessageIdPattern
            | ContentRule::Ledger
            | ContentRule::Exemption => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_snake_case() {
        let mut all: Vec<&str> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        all.sort();
        let count = all.len();
        all.dedup();
        assert_eq!(all.len(), count, "a rejection reason is named twice");
        for label in RecipientRule::ALL.iter().map(|r| r.as_str()).chain(ContentRule::ALL.iter().map(|r| r.as_str())) {
            assert!(label.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{label}");
        }
        assert_eq!(VerdictReason::from(Failure::BadSignature).as_str(), Failure::BadSignature.as_str());
        assert_eq!(RejectReason::from(Failure::Expired).as_str(), Failure::Expired.as_str());
        assert_eq!(RejectReason::from(Violation::Nul).as_str(), Violation::Nul.as_str());
    }
}
