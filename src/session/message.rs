//! DATA: the message streams through while the proxy scans it, keeps
//! what it must (the header section for the ledger, the start of an
//! untagged bounce for inspection) and holds the final dot when the
//! content decides.

use super::*;

/// The field that carries the proxy's verdict; only the proxy writes it.
const STATUS_FIELD: &str = "X-Batv-Status";

/// Longest header section kept to find an outbound message's Message-ID.
const HEADER_CAPTURE_LIMIT: usize = 64 * 1024;

/// What part of a message to keep while it streams through.
#[derive(Debug, Clone, Copy)]
struct Capture {
    limit: usize,
    /// Stop at the end of the header section.
    headers_only: bool,
    /// The content decides: hold the final dot until the verdict.
    judge: bool,
}

impl Capture {
    const NONE: Capture = Capture { limit: 0, headers_only: false, judge: false };
}

/// The Message-ID field of a header section.
fn own_message_id(header_section: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::new().parse_headers(header_section)?;
    message.message_id().map(|id| format!("<{id}>"))
}

impl Session {
    pub(super) async fn data(&mut self) -> Result<std::time::Duration, End> {
        let Some(transaction) = &self.transaction else {
            self.reply(Reply::new(503, "5.5.1 Need MAIL and RCPT before DATA"))?;
            return Ok(Default::default());
        };
        if transaction.recipients.is_empty() {
            self.reply(Reply::new(554, "5.5.1 No valid recipients"))?;
            return Ok(Default::default());
        }
        if transaction.class == Some(Class::Deferred(Deferred::Reject)) {
            tracing::info!(session = %self.id, client = %self.peer.ip(), sender = %transaction.sender, verdict = "missing", rule = "untagged_reject_data", "bounce refused at DATA");
            self.context.metrics.rejection("data", "untagged");
            self.context.metrics.message("rejected");
            self.transaction = None;
            let (_, spent) = self.relay(b"RSET\r\n").await?;
            self.reply(Reply::new(550, policy::REPLY_UNTAGGED))?;
            return Ok(spent);
        }
        let header = if self.policy().monitor() {
            let verdicts: Vec<Verdict> = transaction.recipients.iter().filter_map(|r| r.verdict).collect();
            policy::status_header(&verdicts)
        } else {
            None
        };
        let plan = self.capture_plan();
        let (reply, spent) = self.relay(b"DATA\r\n").await?;
        if reply.code() != 354 {
            self.transaction = None;
            self.reply(reply)?;
            return Ok(spent);
        }
        let reply = self.without_issued_tags(reply);
        self.client.queue_reply(&reply);
        let flushed = self.client.flush().await;
        if flushed.is_err() {
            return Err(End { outcome: Outcome::ClientClosed, reply: None });
        }
        let received = (self.settings().client_identity == ClientIdentity::None).then(|| self.received_header());
        let guard = HeaderGuard::new(&[STATUS_FIELD], received.is_some() || header.is_some());
        let upstream = self.upstream.as_mut().expect("relay leaves an upstream");
        if let Some(received) = received {
            // The MTA sees only the proxy: this trace field names the client.
            upstream.connection.queue(received.as_bytes());
        }
        if let Some(value) = header {
            upstream.connection.queue(format!("{STATUS_FIELD}: {value}\r\n").as_bytes());
        }
        self.stream_message(plan, guard).await?;
        Ok(spent)
    }

    /// What of the message to keep while it streams: the header section
    /// on outbound listeners (its Message-ID goes into the ledger), the
    /// start of the message when its content decides (untagged bounces and
    /// automatic replies under `untagged_bounce = "inspect"`).
    fn capture_plan(&self) -> Capture {
        let transaction = self.transaction.as_ref().expect("DATA has a transaction");
        match self.settings().role {
            Role::Outbound if self.context.ledger.is_on() => {
                Capture { limit: HEADER_CAPTURE_LIMIT, headers_only: true, judge: false }
            }
            Role::Outbound => Capture::NONE,
            Role::Inbound => {
                let judge = match transaction.class {
                    Some(Class::Deferred(Deferred::Inspect)) => true,
                    _ => {
                        !transaction.inspect_domains.is_empty()
                            && self.policy().settings().untagged_bounce == UntaggedBounce::Inspect
                    }
                };
                if judge {
                    Capture { limit: self.policy().settings().inspect_max_bytes, headers_only: false, judge: true }
                } else {
                    Capture::NONE
                }
            }
        }
    }

    /// Streams the message to the upstream as it arrives, then relays the
    /// upstream's final reply. A message that breaks the rules is not
    /// forwarded further and the upstream connection is dropped, so the
    /// MTA discards the partial message. When the content decides, the
    /// final dot is held back until the verdict.
    async fn stream_message(&mut self, plan: Capture, mut guard: HeaderGuard) -> Step {
        let limits = self.settings().limits.clone();
        let mut scanner = DataScanner::new();
        let mut guarded: Vec<u8> = Vec::new();
        let mut problem: Option<&'static str> = None;
        let mut captured: Vec<u8> = Vec::new();
        let mut capture_open = plan.limit > 0;
        let mut held_back: Vec<u8> = Vec::new();
        loop {
            if self.client.input().is_empty() {
                let stopping = *self.shutdown.borrow() == Phase::Stopping;
                if stopping {
                    self.upstream = None;
                    return Err(End::with(Outcome::Shutdown, 421, "4.3.2 Service shutting down; try again later"));
                }
                match self.client.fill_within(limits.data_timeout).await {
                    Ok(_) => {}
                    Err(ReadError::Timeout) => {
                        self.upstream = None;
                        return Err(End::with(
                            Outcome::ClientTimeout,
                            421,
                            "4.4.2 Timeout reading message data; closing the connection",
                        ));
                    }
                    Err(_) => {
                        self.upstream = None;
                        return Err(End { outcome: Outcome::ClientClosed, reply: None });
                    }
                }
            }
            let input = self.client.input();
            let (length, ended) = match scanner.scan(input) {
                Scan::Continue => (input.len(), false),
                Scan::End(length) => (length, true),
            };
            if problem.is_none() {
                if let Some(violation) = scanner.violation() {
                    problem = Some(violation.as_str());
                } else if scanner.size() > limits.max_message_size {
                    problem = Some("too_big");
                }
            }
            if capture_open {
                let chunk = &self.client.input()[..length];
                let take = chunk.len().min(plan.limit - captured.len());
                let search_from = captured.len().saturating_sub(3);
                captured.extend_from_slice(&chunk[..take]);
                if plan.headers_only
                    && let Some(end) = memchr::memmem::find(&captured[search_from..], b"\r\n\r\n")
                {
                    captured.truncate(search_from + end + 4);
                    capture_open = false;
                }
                if captured.len() >= plan.limit {
                    capture_open = false;
                }
            }
            if problem.is_none() {
                let upstream = self.upstream.as_mut().expect("DATA runs with an upstream");
                let mut chunk = &self.client.input()[..length];
                if !guard.done() {
                    guarded.clear();
                    guard.filter(chunk, &mut guarded);
                    chunk = &guarded;
                }
                if ended && plan.judge {
                    // The terminator's bytes in this chunk wait for the verdict.
                    let keep = chunk.len().min(3);
                    held_back.extend_from_slice(&chunk[chunk.len() - keep..]);
                    chunk = &chunk[..chunk.len() - keep];
                }
                let sent = if upstream.connection.has_queued_output() {
                    upstream.connection.queue(chunk);
                    upstream.connection.flush().await
                } else {
                    upstream.connection.write_now(chunk).await
                };
                if sent.is_err() {
                    problem = Some("upstream_lost");
                }
            }
            self.client.consume(length);
            if ended {
                break;
            }
        }
        let transaction = self.transaction.take().expect("DATA has a transaction");
        let sender = transaction.sender.to_string();
        if let Some(problem) = problem {
            // Never let the upstream finish this message.
            self.upstream = None;
            self.context.metrics.message(if problem == "upstream_lost" { "failed_upstream" } else { "rejected" });
            let reply = match problem {
                "too_big" => Reply::new(552, "5.3.4 Message size exceeds fixed limit"),
                "upstream_lost" => {
                    self.context.metrics.upstream_error("closed");
                    return Err(End::with(
                        Outcome::UpstreamLost,
                        421,
                        "4.4.2 Upstream mail server closed the connection; try again later",
                    ));
                }
                "nul" => Reply::new(550, "5.6.0 Message refused: NUL byte in message content (RFC 5321 section 2.3.8)"),
                _ => {
                    Reply::new(550, "5.5.2 Message refused: bare CR or LF in message content (RFC 5321 section 2.3.8)")
                }
            };
            self.context.metrics.rejection("data", problem);
            tracing::warn!(session = %self.id, client = %self.peer.ip(), sender = %sender, reason = problem, "message refused");
            return self.reply(reply);
        }
        if plan.judge {
            let verdict = self.judge_content(&transaction, &captured).await;
            if let Some(reply) = verdict {
                // Refused: the upstream never sees the final dot.
                self.upstream = None;
                self.context.metrics.message("rejected");
                return self.reply(reply);
            }
            let upstream = self.upstream.as_mut().expect("DATA runs with an upstream");
            if upstream.connection.write_now(&held_back).await.is_err() {
                self.upstream = None;
                self.context.metrics.upstream_error("closed");
                return Err(End::with(
                    Outcome::UpstreamLost,
                    421,
                    "4.4.2 Upstream mail server closed the connection; try again later",
                ));
            }
        }
        let upstream = self.upstream.as_mut().expect("DATA runs with an upstream");
        match upstream.connection.read_reply(limits.upstream_data_timeout).await {
            Ok(reply) => {
                let result = if reply.is_positive() { "accepted" } else { "refused_upstream" };
                self.context.metrics.message(result);
                let message_id =
                    if plan.headers_only && reply.is_positive() { own_message_id(&captured) } else { None };
                tracing::info!(
                    session = %self.id,
                    client = %self.peer.ip(),
                    sender = %sender,
                    size = scanner.size(),
                    result,
                    queue_id = queue_id(&reply).unwrap_or_default(),
                    message_id = message_id.as_deref().unwrap_or(""),
                    signed = transaction.signed.as_ref().map(ToString::to_string).unwrap_or_default(),
                    guarded_lines_removed = guard.removed(),
                    reply = %reply,
                    "message relayed"
                );
                if let Some(message_id) = message_id {
                    self.context.ledger.record(&message_id);
                }
                if reply.is_positive() {
                    self.errors = 0;
                }
                self.reply(reply)
            }
            Err(error) => {
                self.upstream = None;
                self.context.metrics.message("failed_upstream");
                self.context.metrics.upstream_error("no_final_reply");
                tracing::warn!(session = %self.id, sender = %sender, error = %error, "no final reply from upstream after DATA");
                Err(End::with(
                    Outcome::UpstreamLost,
                    451,
                    "4.4.2 No reply from the upstream mail server after the message; try again later",
                ))
            }
        }
    }

    /// The content verdict on a message whose recipients are untagged:
    /// `None` to accept, or the reply that refuses it.
    async fn judge_content(&self, transaction: &Transaction, captured: &[u8]) -> Option<Reply> {
        let inspection = dsn::inspect(captured);
        let bounce = transaction.kind == SenderKind::Bounce;
        let precheck = self.policy().precheck_content(bounce, &inspection, &transaction.inspect_domains);
        let verdict = match precheck {
            ContentPrecheck::Decided(verdict) => verdict,
            ContentPrecheck::AskLedger => match self.context.ledger.find(&inspection.referenced_ids).await {
                Ok(Some(_)) => ContentVerdict::Accept("ledger"),
                Ok(None) if self.context.ledger.is_on() => ContentVerdict::Reject("not_ours"),
                Ok(None) => ContentVerdict::Reject("no_pattern_no_ledger"),
                Err(error) => {
                    tracing::warn!(session = %self.id, error = %error, "the Message-ID ledger cannot answer");
                    ContentVerdict::TempFail("ledger_unavailable")
                }
            },
        };
        let monitor = self.policy().monitor();
        // Answers to mail sent before deployment have no tag and no ledger
        // entry: during the grace period they pass, logged.
        let grace = !self.policy().enforcing_untagged(today());
        let (result, rule) = verdict.labels();
        if verdict == ContentVerdict::Accept("not_automatic") {
            tracing::debug!(session = %self.id, sender = %transaction.sender, rule, "not an automatic message");
        } else {
            tracing::info!(
                session = %self.id,
                client = %self.peer.ip(),
                sender = %transaction.sender,
                kind = inspection.kind.as_str(),
                recognizer = inspection.rule,
                original_message_id = inspection.original_message_id.as_deref().unwrap_or(""),
                verdict = result,
                rule,
                monitor,
                grace,
                "content verdict"
            );
        }
        self.context.metrics.inspection(inspection.kind.as_str(), result, rule);
        if monitor || grace {
            return None;
        }
        let reply = match verdict {
            ContentVerdict::Accept(_) => return None,
            ContentVerdict::Reject(_) if inspection.kind == dsn::Kind::AutoReply => {
                Reply::new(550, policy::REPLY_AUTOREPLY_NOT_OURS)
            }
            ContentVerdict::Reject(_) => Reply::new(550, policy::REPLY_BOUNCE_NOT_OURS),
            ContentVerdict::TempFail(_) => {
                Reply::new(451, "4.3.0 Cannot check this message right now; try again later")
            }
        };
        self.context.metrics.rejection("data", rule);
        Some(reply)
    }

    /// A Received field (RFC 5321 §4.4) for MTAs that cannot learn the
    /// client otherwise (client_identity = "none").
    fn received_header(&self) -> String {
        let helo: String = self
            .hello
            .as_ref()
            .map_or("unknown", |hello| hello.domain.as_str())
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(255)
            .collect();
        let extended = self.hello.as_ref().is_none_or(|hello| hello.extended);
        let protocol = format!(
            "{}{}{}",
            if extended { "ESMTP" } else { "SMTP" },
            if self.client_tls() { "S" } else { "" },
            if self.authenticated { "A" } else { "" }
        );
        let date =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc2822).unwrap_or_default();
        format!(
            "Received: from {helo} ([{}])\r\n\tby {} (batv-proxy) with {protocol} id {};\r\n\t{date}\r\n",
            self.peer.ip(),
            self.settings().hostname,
            self.id
        )
    }
}

/// The upstream's queue id from its final reply (Postfix "queued as X",
/// Exim "id=X"), so a message can be followed into the MTA's log.
pub fn queue_id(reply: &Reply) -> Option<String> {
    let text = reply.lines().pop()?;
    let id = if let Some(index) = text.find("queued as ") {
        &text[index + 10..]
    } else if let Some(index) = text.find("InternalId=") {
        // Exchange: "250 2.6.0 <id> [InternalId=123, Hostname=EX1] Queued mail for delivery"
        &text[index + 11..]
    } else {
        let index = text.find("id=")?;
        &text[index + 3..]
    };
    id.split_whitespace().next().map(|id| id.trim_end_matches([')', '.', ',']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids() {
        assert_eq!(queue_id(&Reply::new(250, "2.0.0 Ok: queued as 4bXyZ12abc")).as_deref(), Some("4bXyZ12abc"));
        assert_eq!(queue_id(&Reply::new(250, "OK id=1vCdEf-000123-AB")).as_deref(), Some("1vCdEf-000123-AB"));
        assert_eq!(queue_id(&Reply::new(250, "2.0.0 Ok")), None);
        let exchange =
            Reply::new(250, "2.6.0 <a@b> [InternalId=6189810184257, Hostname=EX01.corp] Queued mail for delivery");
        assert_eq!(queue_id(&exchange).as_deref(), Some("6189810184257"));
    }
}
