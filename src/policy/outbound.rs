//! Outbound decisions: whether and how a sender is signed, and what a
//! recipient does to a transaction whose signing waits on it.

use crate::batv::Moment;
use crate::batv::tag::{self, Parsed};
use crate::labels::label_enum;
use crate::smtp::address::{ForwardPath, Mailbox, ReversePath};

use super::Policy;
use super::exemptions::{Scope, Source};

label_enum! {
    /// Why an outbound sender is left unsigned (`reason` of
    /// `batv_proxy_senders_unsigned_total`).
    pub enum Unsigned {
        NullSender => "null_sender",
        ForeignDomain => "foreign_domain",
        AlreadyTagged => "already_tagged",
        Srs => "srs",
        ListSender => "list_sender",
        ExemptSender => "exempt_sender",
        ExemptRecipient => "exempt_recipient",
        ExemptSource => "exempt_source",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderDecision {
    Sign(Mailbox),
    /// Sign unless the recipients are exempt: hold MAIL until the first RCPT.
    SignUnlessExempt(Mailbox),
    /// Not signed; the exemption that decided, if one did.
    Keep(Unsigned, Option<String>),
}

/// Where a transaction's sender stands when a recipient comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderStage {
    /// MAIL went upstream as decided at MAIL.
    Sent,
    /// MAIL waits for the first recipient to choose the sender's form.
    Held,
    /// The first recipient chose: exempt recipients see the plain sender.
    Decided { exempt: bool },
}

/// The exemption name of a recipient in `exempt_recipients`.
pub const EXEMPT_RECIPIENTS: &str = "exempt_recipients";

/// What an outbound recipient does to its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundRecipient {
    /// Relay the RCPT.
    Relay,
    /// First send the held MAIL: signed, or plain for a recipient exempt
    /// by the exemption named.
    SendHeldMail { exemption: Option<String> },
    /// This recipient needs the other sender form: `452 4.5.3`, so the
    /// client sends it in a transaction of its own.
    SeparateTransaction,
}

impl Policy {
    /// Outbound: whether and how to sign `MAIL FROM` of a client at
    /// `source`, at `now` (which also picks the signing key when one is
    /// staged).
    pub fn outbound_sender(&self, path: &ReversePath, source: &Source<'_>, now: impl Into<Moment>) -> SenderDecision {
        let keep = |reason| SenderDecision::Keep(reason, None);
        let ReversePath::Mailbox(mailbox) = path else {
            return keep(Unsigned::NullSender);
        };
        if !self.is_ours(mailbox) {
            return keep(Unsigned::ForeignDomain);
        }
        if let Some(reason) = never_signed(mailbox) {
            return keep(reason);
        }
        if self.settings.exempt_senders.iter().any(|pattern| pattern.matches(mailbox)) {
            return keep(Unsigned::ExemptSender);
        }
        let by_source = Source { sender: Some(path), recipient: None, ..*source };
        let exemption =
            self.settings.exemptions.0.iter().find(|exemption| {
                exemption.recipient_domains.is_empty() && exemption.applies(Scope::Signing, &by_source)
            });
        if let Some(exemption) = exemption {
            return SenderDecision::Keep(Unsigned::ExemptSource, Some(exemption.name.clone()));
        }
        let signed = self.codec.sign(mailbox, now);
        if self.settings.exempt_recipients.is_empty() && !self.settings.exemptions.depend_on_recipients() {
            SenderDecision::Sign(signed)
        } else {
            SenderDecision::SignUnlessExempt(signed)
        }
    }

    /// Outbound: a recipient that must not see a tagged sender, by
    /// `exempt_recipients` or an exemption's `recipient_domains`.
    pub fn exempt_recipient(&self, path: &ForwardPath, source: &Source<'_>) -> bool {
        self.recipient_exemption(path, source).is_some()
    }

    /// The name of what exempts a recipient from signing: the exemption
    /// naming its domain, or `exempt_recipients` for the address list.
    pub fn recipient_exemption(&self, path: &ForwardPath, source: &Source<'_>) -> Option<String> {
        let listed =
            path.mailbox().is_some_and(|mailbox| self.settings.exempt_recipients.iter().any(|p| p.matches(mailbox)));
        if listed {
            return Some(EXEMPT_RECIPIENTS.to_owned());
        }
        let toward = Source { recipient: Some(path), ..*source };
        self.settings
            .exemptions
            .0
            .iter()
            .find(|exemption| !exemption.recipient_domains.is_empty() && exemption.applies(Scope::Signing, &toward))
            .map(|exemption| exemption.name.clone())
    }

    /// Outbound: what a recipient does to a transaction at `stage`. One
    /// sender form per transaction: recipients exempt from signing and the
    /// others never share one.
    pub fn outbound_recipient(&self, stage: SenderStage, path: &ForwardPath, source: &Source<'_>) -> OutboundRecipient {
        match stage {
            SenderStage::Sent => OutboundRecipient::Relay,
            SenderStage::Held => OutboundRecipient::SendHeldMail { exemption: self.recipient_exemption(path, source) },
            SenderStage::Decided { exempt } if exempt != self.exempt_recipient(path, source) => {
                OutboundRecipient::SeparateTransaction
            }
            SenderStage::Decided { .. } => OutboundRecipient::Relay,
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
