//! The commands that build a transaction: HELO/EHLO, MAIL, RCPT, and the
//! SASL exchange of AUTH. Each checks whether it may run now, then
//! proceeds with what the policy decided.

use super::reading::{ReadOutcome, read_client};
use super::transaction::{HeldMail, Inbound, Outbound, SenderForm, Transaction};
use super::{End, Hello, MAX_SASL_LINE, Session, Step};
use crate::config::{Role, TlsMode};
use crate::connection::{Incoming, Transport};
use crate::labels::SessionOutcome;
use crate::policy::{
    ContentCheck, OutboundRecipient, RecipientAction, RejectReason, Scope, SenderDecision, SenderKind, Stage, Unsigned,
    Verdict,
};
use crate::smtp::address::{ForwardPath, Mailbox, ReversePath};
use crate::smtp::capabilities::{Offer, client_ehlo_reply};
use crate::smtp::command::{self, Parameter, Parameters, xtext_encode};
use crate::smtp::reply::Reply;
use crate::verdicts::RecipientRecord;

impl<S: Transport> Session<S> {
    pub(super) async fn hello(&mut self, extended: bool, domain: String, line: &[u8]) -> Step {
        self.end_transaction();
        self.hello = Some(Hello { extended, domain, line: line.to_vec() });
        let upstream = self.upstream().await?;
        let reply = upstream.hello(line).await?;
        if reply.code() != 250 {
            return self.reply(reply);
        }
        let answer = if extended {
            let tls_active = self.client_tls();
            let offer = Offer {
                max_message_size: self.settings().limits.max_message_size,
                // With TLS configured, AUTH is offered only inside it.
                auth: tls_active || self.context.server_tls.is_none(),
                starttls: !tls_active
                    && self.context.server_tls.as_ref().is_some_and(|tls| tls.mode == TlsMode::StartTls),
            };
            let capabilities = self.upstream.client()?.capabilities().clone();
            client_ehlo_reply(&self.settings().hostname, &capabilities, offer)
        } else {
            Reply::new(250, &self.settings().hostname)
        };
        self.reply(answer)
    }

    /// Whether MAIL may run now: `None` if so, else the refusal.
    fn check_mail(&self, parameters: &Parameters) -> Option<(Option<(Stage, RejectReason)>, Reply)> {
        if self.transaction.is_some() {
            return Some((None, Reply::new(503, "5.5.1 Nested MAIL command")));
        }
        if self.context.server_tls.as_ref().is_some_and(|tls| tls.require) && !self.client_tls() {
            return Some((
                Some((Stage::Mail, RejectReason::TlsRequired)),
                Reply::new(530, "5.7.0 Must issue a STARTTLS command first"),
            ));
        }
        if self.settings().require_auth && !self.authenticated {
            return Some((
                Some((Stage::Mail, RejectReason::AuthRequired)),
                Reply::new(530, "5.7.0 Authentication required"),
            ));
        }
        let size = parameters.get("SIZE").and_then(Parameter::value).and_then(|v| v.parse::<u64>().ok());
        if size.is_some_and(|size| size > self.settings().limits.max_message_size) {
            return Some((
                Some((Stage::Mail, RejectReason::TooBig)),
                Reply::new(552, "5.3.4 Message size exceeds fixed limit"),
            ));
        }
        None
    }

    pub(super) async fn mail(&mut self, path: ReversePath, parameters: Parameters, line: &[u8]) -> Step {
        if let Some((rejection, reply)) = self.check_mail(&parameters) {
            if let Some((stage, reason)) = rejection {
                self.context.metrics.rejection(stage, reason);
            }
            return self.reply(reply);
        }
        self.learn_client_name().await;
        match self.settings().role {
            Role::Inbound => {
                let kind = self.policy().sender_kind(&path);
                let reply = self.exchange(line).await?;
                if reply.is_positive() {
                    self.start_record(&path);
                    let inbound = Inbound {
                        sender: path,
                        kind,
                        class: None,
                        verdicts: Vec::new(),
                        judged: Vec::new(),
                        marked: false,
                    };
                    self.transaction = Some(Transaction::Inbound(inbound));
                }
                self.reply(reply)
            }
            Role::Outbound => self.outbound_mail(path, &parameters, line).await,
        }
    }

    async fn outbound_mail(&mut self, path: ReversePath, parameters: &Parameters, line: &[u8]) -> Step {
        let decision = self.policy().outbound_sender(&path, &self.source(Some(&path)), self.context.clock.now());
        let mut unsigned = None;
        if let (SenderDecision::Sign(signed) | SenderDecision::SignUnlessExempt(signed), Some(original)) =
            (&decision, path.mailbox())
        {
            self.issued(original, signed);
        }
        let (form, forwarded) = match decision {
            SenderDecision::Sign(signed) => {
                let forwarded = command::mail_line(&ReversePath::Mailbox(signed.clone()), parameters);
                (SenderForm::Signed(signed), forwarded)
            }
            SenderDecision::SignUnlessExempt(signed) => {
                let signed_line = command::mail_line(&ReversePath::Mailbox(signed.clone()), parameters);
                let held = HeldMail { plain_line: line.to_vec(), signed_line, signed };
                self.start_record(&path);
                let outbound = Outbound { sender: path, form: SenderForm::Held(held), recipients: 0 };
                self.transaction = Some(Transaction::Outbound(outbound));
                // Answered for real after the first RCPT shows whether to sign.
                return self.reply(Reply::new(250, "2.1.0 Ok"));
            }
            SenderDecision::Keep(reason, exemption) => {
                self.context.metrics.sender_unsigned(reason);
                unsigned = Some(reason);
                match exemption {
                    Some(exemption) => {
                        self.context.metrics.exemption(&exemption, Scope::Signing);
                        tracing::info!(session = %self.id, client = %self.endpoints.peer.ip(), sender = %path, exemption, "sender not signed: exempt source")
                    }
                    None => {
                        tracing::debug!(session = %self.id, sender = %path, reason = reason.as_str(), "sender not signed")
                    }
                }
                (SenderForm::Plain, line.to_vec())
            }
        };
        let reply = self.exchange(&forwarded).await?;
        if reply.is_positive() {
            self.start_record(&path);
            if let SenderForm::Signed(signed) = &form {
                self.note_signed(&path, signed);
            }
            let signed = if let SenderForm::Signed(signed) = &form { Some(signed) } else { None };
            self.note_sender_form(unsigned, signed);
            self.transaction = Some(Transaction::Outbound(Outbound { sender: path, form, recipients: 0 }));
        }
        self.reply(reply)
    }

    /// The sender's form in the transaction's record: signed with the
    /// key its tag names, or why not.
    fn note_sender_form(&mut self, unsigned: Option<Unsigned>, signed: Option<&Mailbox>) {
        let key = signed.and_then(crate::batv::tag::key_of).map(|key| key.number());
        if let Some(record) = &mut self.record {
            match unsigned {
                Some(reason) => record.unsigned_reason = Some(reason.as_str()),
                None => record.signed_with_key = key,
            }
        }
    }

    /// A recipient's fate in the transaction's record.
    fn note_recipient(&mut self, recipient: RecipientRecord) {
        if let Some(record) = &mut self.record {
            record.recipients.push(recipient);
        }
    }

    fn note_signed(&self, sender: &ReversePath, signed: &Mailbox) {
        self.context.metrics.tags_signed.inc();
        tracing::debug!(
            session = %self.id,
            client = %self.endpoints.peer.ip(),
            sender = %sender,
            signed = %signed,
            key_id = crate::batv::tag::key_of(signed).map(|k| k.number()),
            "sender signed"
        );
    }

    /// RCPT works on the transaction taken out of the session, so that it
    /// can talk to the upstream while changing it; it goes back whatever
    /// the outcome.
    pub(super) async fn rcpt(&mut self, path: ForwardPath, parameters: Parameters, line: &[u8]) -> Step {
        let Some(mut transaction) = self.transaction.take() else {
            return self.reply(Reply::new(503, "5.5.1 Need MAIL before RCPT"));
        };
        let step = if transaction.recipients() >= self.settings().limits.max_recipients {
            self.note_recipient(RecipientRecord {
                address: path.to_string().trim_matches(['<', '>']).to_owned(),
                verdict: "untouched",
                reason: "too_many_recipients",
                rule: "max_recipients",
                action: None,
                exemption: None,
                reply: 452,
            });
            self.refuse(Stage::Rcpt, RejectReason::TooManyRecipients, Reply::new(452, "4.5.3 Too many recipients"))
        } else {
            match &mut transaction {
                Transaction::Outbound(outbound) => self.outbound_rcpt(outbound, &path, line).await,
                Transaction::Inbound(inbound) => self.inbound_rcpt(inbound, path, parameters, line).await,
            }
        };
        self.transaction = Some(transaction);
        step
    }

    async fn outbound_rcpt(&mut self, outbound: &mut Outbound, path: &ForwardPath, line: &[u8]) -> Step {
        let reply = match self.outbound_rcpt_reply(outbound, path, line).await? {
            Ok(reply) => reply,
            Err((reason, refusal)) => {
                self.note_outbound_recipient(outbound, path, refusal.code());
                return self.refuse(Stage::Rcpt, reason, refusal);
            }
        };
        if reply.is_positive() {
            outbound.recipients += 1;
        }
        self.note_outbound_recipient(outbound, path, reply.code());
        self.reply(reply)
    }

    /// The reply to an outbound RCPT: the upstream's (or its refusal of the
    /// held MAIL), or the proxy's own refusal and why.
    async fn outbound_rcpt_reply(
        &mut self,
        outbound: &mut Outbound,
        path: &ForwardPath,
        line: &[u8],
    ) -> Result<Result<Reply, (RejectReason, Reply)>, End> {
        let stage = match outbound.stage() {
            Ok(stage) => stage,
            Err(refusal) => return Ok(Ok(refusal)),
        };
        match self.context.policy.outbound_recipient(stage, path, &self.source(Some(&outbound.sender))) {
            OutboundRecipient::SeparateTransaction => {
                let refusal = Reply::new(452, "4.5.3 Please send to this recipient in a separate transaction");
                return Ok(Err((RejectReason::MixedExemption, refusal)));
            }
            OutboundRecipient::SendHeldMail { exemption } => {
                if let SenderForm::Held(held) = std::mem::replace(&mut outbound.form, SenderForm::Plain) {
                    outbound.form = self.send_held_mail(&outbound.sender, held, exemption, path).await?;
                }
                if let SenderForm::Refused(refusal) = &outbound.form {
                    return Ok(Ok(refusal.clone()));
                }
            }
            OutboundRecipient::Relay => {}
        }
        Ok(Ok(self.exchange(line).await?))
    }

    fn note_outbound_recipient(&mut self, outbound: &Outbound, path: &ForwardPath, reply: u16) {
        let signed = outbound.signed().is_some();
        self.note_recipient(RecipientRecord {
            address: path.to_string().trim_matches(['<', '>']).to_owned(),
            verdict: "outbound",
            reason: if signed { "signed" } else { "unsigned" },
            rule: "outbound",
            action: None,
            exemption: None,
            reply,
        });
    }

    /// Sends a held MAIL in the form the first recipient chose; returns
    /// the sender's form from now on (refused if the upstream refused it).
    async fn send_held_mail(
        &mut self,
        sender: &ReversePath,
        held: HeldMail,
        exemption: Option<String>,
        first_recipient: &ForwardPath,
    ) -> Result<SenderForm, End> {
        let exempt = exemption.is_some();
        let line = if exempt { &held.plain_line } else { &held.signed_line };
        let reply = self.exchange(line).await?;
        if !reply.is_positive() {
            return Ok(SenderForm::Refused(reply));
        }
        self.note_sender_form(exempt.then_some(Unsigned::ExemptRecipient), Some(&held.signed));
        if let Some(exemption) = exemption {
            self.context.metrics.sender_unsigned(Unsigned::ExemptRecipient);
            self.context.metrics.exemption(&exemption, Scope::Signing);
            tracing::info!(session = %self.id, sender = %sender, recipient = %first_recipient, exemption, "sender not signed: exempt recipient");
            Ok(SenderForm::Decided { exempt, signed: None })
        } else {
            self.note_signed(sender, &held.signed);
            Ok(SenderForm::Decided { exempt, signed: Some(held.signed) })
        }
    }

    async fn inbound_rcpt(
        &mut self,
        inbound: &mut Inbound,
        path: ForwardPath,
        mut parameters: Parameters,
        line: &[u8],
    ) -> Step {
        let decision =
            self.policy().inbound_recipient(inbound.kind, &path, &self.source(Some(&inbound.sender)), self.today());
        let (result, reason) = decision.verdict.labels();
        if inbound.kind == SenderKind::Bounce || decision.verdict != Verdict::NotBounce {
            tracing::info!(
                session = %self.id,
                client = %self.endpoints.peer.ip(),
                sender = %inbound.sender,
                recipient = %path,
                verdict = result.as_str(),
                reason = reason.as_str(),
                key_id = decision.key_id.map(|k| k.number()),
                rule = decision.rule.as_str(),
                action = if decision.mark { "mark" } else { "" },
                exemption = decision.exemption.as_deref().unwrap_or(""),
                "recipient verdict"
            );
        } else if let Some(exemption) = &decision.exemption {
            tracing::info!(session = %self.id, client = %self.endpoints.peer.ip(), sender = %inbound.sender, recipient = %path, exemption, "automatic replies not judged: exempt source");
        }
        self.context.metrics.verification(result, reason);
        if let Some(exemption) = &decision.exemption {
            let scope = if inbound.kind == SenderKind::Bounce { Scope::UntaggedBounce } else { Scope::AutoReply };
            self.context.metrics.exemption(exemption, scope);
        }
        if decision.mark {
            self.context.metrics.marked(Stage::Rcpt, decision.rule.as_str());
        }
        let class = decision.action.class();
        let note = |reply: u16| RecipientRecord {
            address: path.to_string().trim_matches(['<', '>']).to_owned(),
            verdict: result.as_str(),
            reason: reason.as_str(),
            rule: decision.rule.as_str(),
            action: match &decision.action {
                RecipientAction::Reject(refusal, _) if refusal.is_transient_failure() => Some("tempfail"),
                RecipientAction::Reject(..) => Some("reject"),
                _ if decision.mark => Some("mark"),
                _ => None,
            },
            exemption: decision.exemption.clone(),
            reply,
        };
        let forwarded = match decision.action.clone() {
            RecipientAction::Reject(reply, reason) => {
                self.note_recipient(note(reply.code()));
                return self.refuse(Stage::Rcpt, reason, reply);
            }
            RecipientAction::Rewrite(original) => {
                let upstream_has_dsn = self.upstream.client().is_ok_and(|upstream| upstream.capabilities().has("DSN"));
                if parameters.get("ORCPT").is_none() && upstream_has_dsn && path.to_string().is_ascii() {
                    // DSNs must keep naming the address the client gave.
                    let given = path.mailbox().map(Mailbox::to_string).unwrap_or_default();
                    parameters.push(Parameter::new("ORCPT", Some(&format!("rfc822;{}", xtext_encode(&given)))));
                }
                command::rcpt_line(&ForwardPath::Mailbox(original), &parameters)
            }
            RecipientAction::Forward | RecipientAction::Defer(_) => line.to_vec(),
        };
        if !class.joins(inbound.class) {
            self.note_recipient(note(452));
            return self.refuse(
                Stage::Rcpt,
                RejectReason::MixedVerdicts,
                Reply::new(452, "4.5.3 Please send to this recipient in a separate transaction"),
            );
        }
        let reply = self.exchange(&forwarded).await?;
        self.note_recipient(note(reply.code()));
        if reply.is_positive() {
            inbound.class = Some(class);
            inbound.verdicts.push(decision.verdict);
            inbound.marked |= decision.mark;
            if let ContentCheck::Judge { patterns } = decision.content {
                inbound.judged.push(patterns);
            }
        }
        self.reply(reply)
    }

    /// Relays a SASL exchange verbatim; its lines are never logged.
    pub(super) async fn auth(&mut self, line: &[u8]) -> Step {
        if self.transaction.is_some() {
            return self.reply(Reply::new(503, "5.5.1 AUTH not allowed during a mail transaction"));
        }
        if self.context.server_tls.is_some() && !self.client_tls() {
            return self.reply(Reply::new(538, "5.7.11 Encryption required for authentication; issue STARTTLS first"));
        }
        let mut reply = self.exchange(line).await?;
        while reply.code() == 334 {
            let challenge = self.without_issued_tags(reply);
            self.client.queue_reply(&challenge);
            if self.client.flush().await.is_err() {
                return Err(End::client_closed());
            }
            let Incoming::Line(response) = self.sasl_line().await? else {
                // Cancel the exchange upstream, as the client would with "*".
                self.exchange(b"*\r\n").await?;
                return self.reply(Reply::new(501, "5.5.2 Malformed authentication response"));
            };
            reply = self.exchange(&response).await?;
        }
        if reply.code() == 235 {
            self.authenticated = true;
        }
        self.reply(reply)
    }

    /// The client's next SASL response line.
    async fn sasl_line(&mut self) -> Result<Incoming, End> {
        let timeout = self.settings().limits.command_timeout;
        loop {
            if let Some(incoming) = self.client.take_line(MAX_SASL_LINE) {
                return Ok(incoming);
            }
            if read_client(&mut self.client, &mut self.shutdown, timeout).await? == ReadOutcome::TimedOut {
                return Err(End::with(SessionOutcome::ClientTimeout, 421, "4.4.2 Timeout during authentication"));
            }
        }
    }
}
