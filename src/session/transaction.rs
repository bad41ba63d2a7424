//! A mail transaction as the session tracks it, from MAIL to the end of
//! DATA. Outbound and inbound transactions keep different things, so they
//! are different types.

use crate::policy::{Class, SenderKind, SenderStage, Verdict};
use crate::smtp::address::{Domain, Mailbox, ReversePath};
use crate::smtp::reply::Reply;

pub(super) enum Transaction {
    Outbound(Outbound),
    Inbound(Inbound),
}

impl Transaction {
    pub(super) fn sender(&self) -> &ReversePath {
        match self {
            Transaction::Outbound(outbound) => &outbound.sender,
            Transaction::Inbound(inbound) => &inbound.sender,
        }
    }

    /// Recipients the upstream accepted so far.
    pub(super) fn recipients(&self) -> usize {
        match self {
            Transaction::Outbound(outbound) => outbound.recipients,
            Transaction::Inbound(inbound) => inbound.verdicts.len(),
        }
    }
}

/// The form the sender of an outbound transaction has at the upstream.
pub(super) enum SenderForm {
    /// Sent as the client gave it (not ours, exempt, tagged already, ...).
    Plain,
    /// Sent signed.
    Signed(Mailbox),
    /// Answered `250` by the proxy and held until the first recipient
    /// shows whether to sign (`exempt_recipients`).
    Held(HeldMail),
    /// Held, then sent: signed, or plain for exempt recipients; the
    /// transaction keeps to that form.
    Decided { exempt: bool, signed: Option<Mailbox> },
    /// Held, and the upstream refused it: every recipient gets this reply.
    Refused(Reply),
}

/// A held outbound MAIL, in both forms.
pub(super) struct HeldMail {
    pub plain_line: Vec<u8>,
    pub signed_line: Vec<u8>,
    pub signed: Mailbox,
}

pub(super) struct Outbound {
    pub sender: ReversePath,
    pub form: SenderForm,
    pub recipients: usize,
}

impl Outbound {
    /// Where the sender stands, as the policy sees it; the upstream's
    /// refusal once it refused the held MAIL.
    pub(super) fn stage(&self) -> Result<SenderStage, Reply> {
        match &self.form {
            SenderForm::Plain | SenderForm::Signed(_) => Ok(SenderStage::Sent),
            SenderForm::Held(_) => Ok(SenderStage::Held),
            SenderForm::Decided { exempt, .. } => Ok(SenderStage::Decided { exempt: *exempt }),
            SenderForm::Refused(refusal) => Err(refusal.clone()),
        }
    }

    /// The signed sender the upstream has, if any.
    pub(super) fn signed(&self) -> Option<&Mailbox> {
        match &self.form {
            SenderForm::Signed(signed) | SenderForm::Decided { signed: Some(signed), .. } => Some(signed),
            _ => None,
        }
    }
}

pub(super) struct Inbound {
    pub sender: ReversePath,
    pub kind: SenderKind,
    /// The class every recipient so far shares; `None` before the first.
    pub class: Option<Class>,
    /// One per accepted recipient.
    pub verdicts: Vec<Verdict>,
    /// One per recipient whose mail the content decides: the domain whose
    /// Message-ID patterns apply, if any.
    pub judged: Vec<Option<Domain>>,
    /// A recipient's verdict refused with the action `mark`.
    pub marked: bool,
}
