//! DATA: the message streams through while the proxy scans it, keeps
//! what the policy asks for (the header section for the ledger, the start
//! of a message the content decides) and holds the final dot back while
//! the content is judged.

use super::transaction::{Inbound, Transaction};
use super::upstream_slot::DropReason;
use super::{End, ReadOutcome, Session, Step, read_client};
use crate::config::ClientIdentity;
use crate::connection::{ReadError, Transport};
use crate::dsn;
use crate::labels::{MessageOutcome, SessionOutcome, UpstreamError};
use crate::policy::{
    Capture, ContentOutcome, ContentPrecheck, ContentRule, DataDecision, LedgerAnswer, RejectReason, SenderKind, Stage,
};
use crate::smtp::data::{DataScanner, Scan, Violation};
use crate::smtp::header::HeaderGuard;
use crate::smtp::reply::Reply;

/// The field that carries the proxy's verdict; only the proxy writes it.
const STATUS_FIELD: &str = "X-Batv-Status";

/// Why a message is not finished upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Violation(Violation),
    TooBig,
    UpstreamLost,
}

/// A message as it was received and passed on.
struct Received {
    problem: Option<Problem>,
    /// What the capture plan kept.
    captured: Vec<u8>,
    /// The terminator's bytes, held back while the content is judged.
    held_back: Vec<u8>,
    size: u64,
    /// Lines of client copies of the proxy's fields that were removed.
    guarded_lines_removed: usize,
}

/// Keeps what a [`Capture`] plan asks for of a streaming message.
struct Capturer {
    plan: Capture,
    kept: Vec<u8>,
    open: bool,
}

impl Capturer {
    fn new(plan: Capture) -> Self {
        Capturer { plan, kept: Vec::new(), open: plan.limit > 0 }
    }

    fn take(&mut self, chunk: &[u8]) {
        if !self.open {
            return;
        }
        let take = chunk.len().min(self.plan.limit - self.kept.len());
        let search_from = self.kept.len().saturating_sub(3);
        self.kept.extend_from_slice(&chunk[..take]);
        if self.plan.headers_only
            && let Some(end) = memchr::memmem::find(&self.kept[search_from..], b"\r\n\r\n")
        {
            self.kept.truncate(search_from + end + 4);
            self.open = false;
        }
        if self.kept.len() >= self.plan.limit {
            self.open = false;
        }
    }
}

/// The Message-ID field of a header section.
fn own_message_id(header_section: &[u8]) -> Option<String> {
    let message = mail_parser::MessageParser::new().parse_headers(header_section)?;
    message.message_id().map(|id| format!("<{id}>"))
}

impl<S: Transport> Session<S> {
    pub(super) async fn data(&mut self) -> Step {
        let Some(transaction) = self.transaction.take() else {
            return self.reply(Reply::new(503, "5.5.1 Need MAIL and RCPT before DATA"));
        };
        if transaction.recipients() == 0 {
            self.transaction = Some(transaction);
            return self.reply(Reply::new(554, "5.5.1 No valid recipients"));
        }
        let decision = match &transaction {
            Transaction::Outbound(_) => self.policy().outbound_data(self.context.ledger.is_on()),
            Transaction::Inbound(inbound) => {
                self.policy().inbound_data(inbound.class, &inbound.verdicts, !inbound.judged.is_empty())
            }
        };
        let (capture, status) = match decision {
            DataDecision::Refuse { reply, reason } => {
                tracing::info!(session = %self.id, client = %self.endpoints.peer.ip(), sender = %transaction.sender(), verdict = "missing", rule = "untagged_reject_data", "bounce refused at DATA");
                self.context.metrics.rejection(Stage::Data, reason);
                self.context.metrics.message(MessageOutcome::Rejected);
                self.exchange(b"RSET\r\n").await?;
                return self.reply(reply);
            }
            DataDecision::Relay { capture, status_header } => (capture, status_header),
        };
        let reply = self.exchange(b"DATA\r\n").await?;
        if reply.code() != 354 {
            return self.reply(reply);
        }
        let reply = self.without_issued_tags(reply);
        self.client.queue_reply(&reply);
        if self.client.flush().await.is_err() {
            return Err(End::client_closed());
        }
        let received = (self.settings().client_identity == ClientIdentity::None).then(|| self.received_header());
        let guard = HeaderGuard::new(&[STATUS_FIELD], received.is_some() || status.is_some());
        let upstream = self.upstream.client()?;
        if let Some(received) = received {
            // The MTA sees only the proxy: this trace field names the client.
            upstream.queue(received.as_bytes());
        }
        if let Some(value) = status {
            upstream.queue(format!("{STATUS_FIELD}: {value}\r\n").as_bytes());
        }
        let message = self.receive(capture, guard).await?;
        self.finish(transaction, capture, message).await
    }

    /// Streams the message to the upstream as it arrives. A message that
    /// breaks the rules is not forwarded further; when the content
    /// decides, the final dot is held back.
    async fn receive(&mut self, plan: Capture, mut guard: HeaderGuard) -> Result<Received, End> {
        let limits = &self.context.settings.limits;
        let Session { client, upstream, shutdown, .. } = self;
        let upstream = upstream.client()?;
        let mut scanner = DataScanner::new();
        let mut capturer = Capturer::new(plan);
        let (mut problem, mut held_back, mut guarded) = (None, Vec::new(), Vec::new());
        loop {
            if client.input().is_empty()
                && read_client(client, shutdown, limits.data_timeout).await? == ReadOutcome::TimedOut
            {
                return Err(End::with(
                    SessionOutcome::ClientTimeout,
                    421,
                    "4.4.2 Timeout reading message data; closing the connection",
                ));
            }
            let input = client.input();
            let (length, ended) = match scanner.scan(input) {
                Scan::Continue => (input.len(), false),
                Scan::End(length) => (length, true),
            };
            if problem.is_none() {
                if let Some(violation) = scanner.violation() {
                    problem = Some(Problem::Violation(violation));
                } else if scanner.size() > limits.max_message_size {
                    problem = Some(Problem::TooBig);
                }
            }
            capturer.take(&client.input()[..length]);
            if problem.is_none() {
                let mut chunk = &client.input()[..length];
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
                if upstream.send(chunk).await.is_err() {
                    problem = Some(Problem::UpstreamLost);
                }
            }
            client.consume(length);
            if ended {
                break;
            }
        }
        Ok(Received {
            problem,
            captured: capturer.kept,
            held_back,
            size: scanner.size(),
            guarded_lines_removed: guard.removed(),
        })
    }

    /// After the client's final dot: refuse a broken message, judge one the
    /// content decides, and relay the upstream's final reply.
    async fn finish(&mut self, transaction: Transaction, plan: Capture, message: Received) -> Step {
        if let Some(problem) = message.problem {
            return self.refuse_broken(&transaction, problem);
        }
        if plan.judge
            && let Transaction::Inbound(inbound) = &transaction
        {
            let outcome = self.judge_content(inbound, &message.captured).await;
            if let Some(refusal) = outcome.refusal {
                // The upstream never sees the final dot.
                self.drop_upstream(DropReason::RefusedMessage);
                self.context.metrics.message(MessageOutcome::Rejected);
                return self.reply(refusal);
            }
            if self.upstream.client()?.send(&message.held_back).await.is_err() {
                self.context.metrics.upstream_error(UpstreamError::Closed);
                return Err(End::upstream_lost(&ReadError::Closed));
            }
        }
        let sender = transaction.sender().to_string();
        let reply = match self.upstream.client()?.final_reply().await {
            Ok(reply) => reply,
            Err(error) => {
                self.context.metrics.message(MessageOutcome::FailedUpstream);
                self.context.metrics.upstream_error(UpstreamError::NoFinalReply);
                tracing::warn!(session = %self.id, sender = %sender, error = %error, "no final reply from upstream after DATA");
                return Err(End::with(
                    SessionOutcome::UpstreamLost,
                    451,
                    "4.4.2 No reply from the upstream mail server after the message; try again later",
                ));
            }
        };
        let outcome = if reply.is_positive() { MessageOutcome::Accepted } else { MessageOutcome::RefusedUpstream };
        self.context.metrics.message(outcome);
        let message_id =
            if plan.headers_only && reply.is_positive() { own_message_id(&message.captured) } else { None };
        let signed = match &transaction {
            Transaction::Outbound(outbound) => outbound.signed().map(ToString::to_string).unwrap_or_default(),
            Transaction::Inbound(_) => String::new(),
        };
        tracing::info!(
            session = %self.id,
            client = %self.endpoints.peer.ip(),
            sender = %sender,
            size = message.size,
            result = outcome.as_str(),
            queue_id = queue_id(&reply).unwrap_or_default(),
            message_id = message_id.as_deref().unwrap_or(""),
            signed,
            guarded_lines_removed = message.guarded_lines_removed,
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

    /// A message that broke a rule while streaming: the upstream never
    /// finishes it.
    fn refuse_broken(&mut self, transaction: &Transaction, problem: Problem) -> Step {
        self.drop_upstream(DropReason::BrokenMessage);
        let (reason, reply) = match problem {
            Problem::UpstreamLost => {
                self.context.metrics.message(MessageOutcome::FailedUpstream);
                self.context.metrics.upstream_error(UpstreamError::Closed);
                return Err(End::upstream_lost(&ReadError::Closed));
            }
            Problem::TooBig => (RejectReason::TooBig, Reply::new(552, "5.3.4 Message size exceeds fixed limit")),
            Problem::Violation(Violation::Nul) => (
                RejectReason::Nul,
                Reply::new(550, "5.6.0 Message refused: NUL byte in message content (RFC 5321 section 2.3.8)"),
            ),
            Problem::Violation(violation) => (
                violation.into(),
                Reply::new(550, "5.5.2 Message refused: bare CR or LF in message content (RFC 5321 section 2.3.8)"),
            ),
        };
        self.context.metrics.message(MessageOutcome::Rejected);
        self.context.metrics.rejection(Stage::Data, reason);
        tracing::warn!(session = %self.id, client = %self.endpoints.peer.ip(), sender = %transaction.sender(), reason = reason.as_str(), "message refused");
        self.reply(reply)
    }

    /// The content verdict on a message to untagged recipients, asking the
    /// ledger when the message alone cannot decide.
    async fn judge_content(&self, inbound: &Inbound, captured: &[u8]) -> ContentOutcome {
        let inspection = dsn::inspect(captured);
        let bounce = inbound.kind == SenderKind::Bounce;
        let verdict = match self.policy().precheck_content(bounce, &inspection, &inbound.judged) {
            ContentPrecheck::Decided(verdict) => verdict,
            ContentPrecheck::AskLedger => {
                let answer = if !self.context.ledger.is_on() {
                    LedgerAnswer::Off
                } else {
                    match self.context.ledger.find(&inspection.referenced_ids).await {
                        Ok(Some(_)) => LedgerAnswer::Found,
                        Ok(None) => LedgerAnswer::NotFound,
                        Err(error) => {
                            tracing::warn!(session = %self.id, error = %error, "the Message-ID ledger cannot answer");
                            LedgerAnswer::Unavailable
                        }
                    }
                };
                self.policy().ledger_verdict(answer)
            }
        };
        let outcome = self.policy().content_outcome(verdict, inspection.kind, self.today());
        let (result, rule) = verdict.labels();
        if rule == ContentRule::NotAutomatic {
            tracing::debug!(session = %self.id, sender = %inbound.sender, rule = rule.as_str(), "not an automatic message");
        } else {
            tracing::info!(
                session = %self.id,
                client = %self.endpoints.peer.ip(),
                sender = %inbound.sender,
                kind = inspection.kind.as_str(),
                recognizer = inspection.rule,
                original_message_id = inspection.original_message_id.as_deref().unwrap_or(""),
                verdict = result.as_str(),
                rule = rule.as_str(),
                monitor = outcome.monitor,
                grace = outcome.grace,
                "content verdict"
            );
        }
        self.context.metrics.inspection(inspection.kind, result, rule);
        if outcome.refusal.is_some()
            && let Some(reason) = rule.rejection()
        {
            self.context.metrics.rejection(Stage::Data, reason);
        }
        outcome
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
        let date = time::OffsetDateTime::from(self.context.clock.now())
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        format!(
            "Received: from {helo} ([{}])\r\n\tby {} (batv-proxy) with {protocol} id {};\r\n\t{date}\r\n",
            self.endpoints.peer.ip(),
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

    #[test]
    fn the_capture_keeps_the_header_section_across_chunks() {
        let mut capturer = Capturer::new(Capture { limit: 1024, headers_only: true, judge: false });
        for chunk in [&b"Subject: x\r\nMessage-ID: <a@b>\r"[..], b"\n\r", b"\nbody\r\n"] {
            capturer.take(chunk);
        }
        assert_eq!(capturer.kept, b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\n");
        let mut bounded = Capturer::new(Capture { limit: 4, headers_only: false, judge: true });
        bounded.take(b"abcdefgh");
        assert_eq!(bounded.kept, b"abcd");
    }
}
