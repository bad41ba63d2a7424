//! The commands that build a transaction: HELO/EHLO, MAIL, RCPT, and the
//! SASL exchange of AUTH.

use super::*;

impl Session {
    pub(super) async fn hello(
        &mut self,
        extended: bool,
        domain: String,
        line: &[u8],
    ) -> Result<std::time::Duration, End> {
        self.transaction = None;
        self.hello = Some(Hello { extended, domain, line: line.to_vec() });
        let (reply, spent) = self.relay(line).await?;
        let hostname = self.settings().hostname.clone();
        let max_message_size = self.settings().limits.max_message_size;
        let reply = if reply.code() == 250 {
            let capabilities = Capabilities::from_ehlo(&reply);
            let tls_active = self.client_tls();
            let answer = if extended {
                let offer = Offer {
                    max_message_size,
                    // With TLS configured, AUTH is offered only inside it.
                    auth: tls_active || self.context.server_tls.is_none(),
                    starttls: !tls_active
                        && self.context.server_tls.as_ref().is_some_and(|tls| tls.mode == TlsMode::StartTls),
                };
                client_ehlo_reply(&hostname, &capabilities, offer)
            } else {
                Reply::new(250, &hostname)
            };
            if let Some(upstream) = &mut self.upstream {
                upstream.capabilities = capabilities;
            }
            answer
        } else {
            reply
        };
        self.reply(reply)?;
        Ok(spent)
    }

    pub(super) async fn mail(
        &mut self,
        path: ReversePath,
        parameters: Parameters,
        line: &[u8],
    ) -> Result<std::time::Duration, End> {
        if self.transaction.is_some() {
            self.reply(Reply::new(503, "5.5.1 Nested MAIL command"))?;
            return Ok(Default::default());
        }
        if self.context.server_tls.as_ref().is_some_and(|tls| tls.require) && !self.client_tls() {
            self.context.metrics.rejection("mail", "tls_required");
            self.reply(Reply::new(530, "5.7.0 Must issue a STARTTLS command first"))?;
            return Ok(Default::default());
        }
        if self.settings().require_auth && !self.authenticated {
            self.context.metrics.rejection("mail", "auth_required");
            self.reply(Reply::new(530, "5.7.0 Authentication required"))?;
            return Ok(Default::default());
        }
        if let Some(size) = parameters.get("SIZE").and_then(Parameter::value).and_then(|v| v.parse::<u64>().ok())
            && size > self.settings().limits.max_message_size
        {
            self.context.metrics.rejection("mail", "too_big");
            self.reply(Reply::new(552, "5.3.4 Message size exceeds fixed limit"))?;
            return Ok(Default::default());
        }
        let kind = self.policy().sender_kind(&path);
        let mut transaction = Transaction {
            sender: path.clone(),
            kind,
            signed: None,
            held: None,
            exempt_group: None,
            held_failure: None,
            class: None,
            recipients: Vec::new(),
            inspect_domains: Vec::new(),
        };
        let mut forwarded = line.to_vec();
        if self.settings().role == Role::Outbound {
            let decision = self.policy().outbound_sender(&path, today());
            if let (SenderDecision::Sign(signed) | SenderDecision::SignUnlessExempt(signed), Some(original)) =
                (&decision, path.mailbox())
            {
                self.issued(original, signed);
            }
            match decision {
                SenderDecision::Sign(signed) => {
                    forwarded = command::mail_line(&ReversePath::Mailbox(signed.clone()), &parameters);
                    transaction.signed = Some(signed);
                }
                SenderDecision::SignUnlessExempt(signed) => {
                    let signed_line = command::mail_line(&ReversePath::Mailbox(signed.clone()), &parameters);
                    transaction.signed = Some(signed);
                    transaction.held = Some(HeldMail { original_line: line.to_vec(), signed_line });
                    // Answered after the first RCPT shows whether to sign.
                    self.transaction = Some(transaction);
                    self.reply(Reply::new(250, "2.1.0 Ok"))?;
                    return Ok(Default::default());
                }
                SenderDecision::Keep(reason) => {
                    self.context.metrics.sender_unsigned(reason.as_str());
                    tracing::debug!(session = %self.id, sender = %path, reason = reason.as_str(), "sender not signed");
                }
            }
        }
        let (reply, spent) = self.relay(&forwarded).await?;
        if reply.is_positive() {
            if let Some(signed) = &transaction.signed {
                self.context.metrics.tags_signed.inc();
                tracing::debug!(session = %self.id, client = %self.peer.ip(), sender = %path, signed = %signed, key_id = %self.policy().codec().signing_key(), "sender signed");
            }
            self.transaction = Some(transaction);
        }
        self.reply(reply)?;
        Ok(spent)
    }

    pub(super) async fn rcpt(
        &mut self,
        path: ForwardPath,
        parameters: Parameters,
        line: &[u8],
    ) -> Result<std::time::Duration, End> {
        let Some(transaction) = &self.transaction else {
            self.reply(Reply::new(503, "5.5.1 Need MAIL before RCPT"))?;
            return Ok(Default::default());
        };
        if let Some(failure) = &transaction.held_failure {
            let failure = failure.clone();
            self.reply(failure)?;
            return Ok(Default::default());
        }
        if transaction.recipients.len() >= self.settings().limits.max_recipients {
            self.context.metrics.rejection("rcpt", "too_many_recipients");
            self.reply(Reply::new(452, "4.5.3 Too many recipients"))?;
            return Ok(Default::default());
        }
        match self.settings().role {
            Role::Outbound => self.outbound_rcpt(&path, line).await,
            Role::Inbound => self.inbound_rcpt(path, parameters, line).await,
        }
    }

    async fn outbound_rcpt(&mut self, path: &ForwardPath, line: &[u8]) -> Result<std::time::Duration, End> {
        let exempt = self.policy().exempt_recipient(path);
        let mut spent = std::time::Duration::ZERO;
        let transaction = self.transaction.as_mut().expect("checked by rcpt");
        if let Some(held) = transaction.held.take() {
            // The first recipient decides whether this transaction is signed.
            transaction.exempt_group = Some(exempt);
            let mail = if exempt { held.original_line } else { held.signed_line };
            if exempt {
                transaction.signed = None;
            }
            let signed = transaction.signed.clone();
            let sender = transaction.sender.clone();
            let (reply, time) = self.relay(&mail).await?;
            spent += time;
            if !reply.is_positive() {
                if let Some(transaction) = &mut self.transaction {
                    transaction.held_failure = Some(reply.clone());
                }
                self.reply(reply)?;
                return Ok(spent);
            }
            match signed {
                Some(signed) => {
                    self.context.metrics.tags_signed.inc();
                    tracing::debug!(session = %self.id, client = %self.peer.ip(), sender = %sender, signed = %signed, "sender signed");
                }
                None => {
                    self.context.metrics.sender_unsigned("exempt_recipient");
                    tracing::info!(session = %self.id, sender = %sender, recipient = %path, "sender not signed: exempt recipient");
                }
            }
        } else if transaction.exempt_group.is_some_and(|group| group != exempt) {
            // One sender form per transaction: the client sends this one separately.
            self.context.metrics.rejection("rcpt", "mixed_exemption");
            self.reply(Reply::new(452, "4.5.3 Please send to this recipient in a separate transaction"))?;
            return Ok(spent);
        }
        let (reply, time) = self.relay(line).await?;
        spent += time;
        if reply.is_positive()
            && let Some(transaction) = &mut self.transaction
        {
            transaction.recipients.push(Recipient { verdict: None });
        }
        self.reply(reply)?;
        Ok(spent)
    }

    async fn inbound_rcpt(
        &mut self,
        path: ForwardPath,
        mut parameters: Parameters,
        line: &[u8],
    ) -> Result<std::time::Duration, End> {
        let transaction = self.transaction.as_ref().expect("checked by rcpt");
        let decision = self.policy().inbound_recipient(transaction.kind, &path, today());
        let (result, reason) = decision.verdict.labels();
        let bounce = transaction.kind == SenderKind::Bounce;
        if bounce || decision.verdict != Verdict::NotBounce {
            tracing::info!(
                session = %self.id,
                client = %self.peer.ip(),
                sender = %transaction.sender,
                recipient = %path,
                verdict = result,
                reason,
                key_id = decision.key_id.map(|k| k.number()),
                rule = decision.rule,
                "recipient verdict"
            );
        }
        self.context.metrics.verification(result, reason);
        let class = match &decision.action {
            RecipientAction::Defer(deferred) => Class::Deferred(*deferred),
            _ => Class::Accepted,
        };
        let forwarded = match decision.action {
            RecipientAction::Reject(reply) => {
                self.context.metrics.rejection("rcpt", reason);
                self.reply(reply)?;
                return Ok(Default::default());
            }
            RecipientAction::Rewrite(original) => {
                let upstream_has_dsn = self.upstream.as_ref().is_some_and(|u| u.capabilities.has("DSN"));
                if parameters.get("ORCPT").is_none() && upstream_has_dsn && path.to_string().is_ascii() {
                    // DSNs must keep naming the address the client gave.
                    let given = path.mailbox().map(Mailbox::to_string).unwrap_or_default();
                    parameters.push(Parameter::new("ORCPT", Some(&format!("rfc822;{}", xtext_encode(&given)))));
                }
                command::rcpt_line(&ForwardPath::Mailbox(original), &parameters)
            }
            RecipientAction::Forward | RecipientAction::Defer(_) => line.to_vec(),
        };
        if transaction.class.is_some_and(|existing| existing != class) {
            self.context.metrics.rejection("rcpt", "mixed_verdicts");
            self.reply(Reply::new(452, "4.5.3 Please send to this recipient in a separate transaction"))?;
            return Ok(Default::default());
        }
        let (reply, spent) = self.relay(&forwarded).await?;
        if reply.is_positive()
            && let Some(transaction) = &mut self.transaction
        {
            transaction.class = Some(class);
            transaction.recipients.push(Recipient { verdict: Some(decision.verdict) });
            if let ContentCheck::Judge { patterns } = decision.content {
                transaction.inspect_domains.push(patterns);
            }
        }
        self.reply(reply)?;
        Ok(spent)
    }

    /// Relays a SASL exchange verbatim; its lines are never logged.
    pub(super) async fn auth(&mut self, line: &[u8]) -> Result<std::time::Duration, End> {
        if self.transaction.is_some() {
            self.reply(Reply::new(503, "5.5.1 AUTH not allowed during a mail transaction"))?;
            return Ok(Default::default());
        }
        if self.context.server_tls.is_some() && !self.client_tls() {
            self.reply(Reply::new(538, "5.7.11 Encryption required for authentication; issue STARTTLS first"))?;
            return Ok(Default::default());
        }
        let started = Instant::now();
        let mut reply = self.exchange(line).await?;
        while reply.code() == 334 {
            let challenge = self.without_issued_tags(reply.clone());
            self.client.queue_reply(&challenge);
            if self.client.flush().await.is_err() {
                return Err(End { outcome: Outcome::ClientClosed, reply: None });
            }
            let response = loop {
                if let Some(incoming) = self.client.take_line(MAX_SASL_LINE) {
                    break incoming;
                }
                match self.client.fill_within(self.settings().limits.command_timeout).await {
                    Ok(_) => {}
                    Err(ReadError::Timeout) => {
                        return Err(End::with(Outcome::ClientTimeout, 421, "4.4.2 Timeout during authentication"));
                    }
                    Err(_) => {
                        return Err(End { outcome: Outcome::ClientClosed, reply: None });
                    }
                }
            };
            let Incoming::Line(response) = response else {
                // Cancel the exchange upstream, as the client would with "*".
                let _ = self.exchange(b"*\r\n").await?;
                self.reply(Reply::new(501, "5.5.2 Malformed authentication response"))?;
                return Ok(started.elapsed());
            };
            reply = self.exchange(&response).await?;
        }
        if reply.code() == 235 {
            self.authenticated = true;
        }
        self.reply(reply)?;
        Ok(started.elapsed())
    }
}
