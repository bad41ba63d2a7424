//! DATA: the message streams through while the proxy scans it, keeps
//! what the policy asks for (the header section for the ledger, the start
//! of a message the content decides) and holds the final dot back while
//! the content is judged.

use super::reading::{ReadOutcome, read_client};
use super::transaction::{Inbound, Transaction};
use super::upstream_slot::DropReason;
use super::{End, Session, Step};
use crate::config::ClientIdentity;
use crate::connection::{ReadError, Transport};
use crate::dsn;
use crate::labels::{MessageOutcome, SessionOutcome, UpstreamError};
use crate::ledger;
use crate::policy::{
    Action, Capture, ContentOutcome, ContentPrecheck, ContentRule, DataDecision, Evidence, LedgerAnswer, Marks,
    RejectReason, STATUS_FIELD, Scope, SenderKind, Source, Stage, may_carry_calendar,
};
use crate::smtp::data::{DataScanner, Scan, Violation};
use crate::smtp::header::HeaderGuard;
use crate::smtp::reply::Reply;
use crate::verdicts::MessageRecord;

/// Why a message is not finished upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    Violation(Violation),
    TooBig,
    UpstreamLost,
}

/// A message on its way through: what is known of it, and where its bytes
/// go (to the upstream, held back while the content is judged, or nowhere
/// once it is refused).
struct Streaming {
    scanner: DataScanner,
    capturer: Capturer,
    guard: HeaderGuard,
    /// Scratch for the guard's output.
    guarded: Vec<u8>,
    problem: Option<Problem>,
    ended: bool,
    /// Held back until the content's verdict: the proxy's fields may go in
    /// front of it, and a refused message never reaches the MTA at all.
    holding: bool,
    held: Vec<u8>,
    /// Refused: the rest is read and dropped.
    discarding: bool,
}

impl Streaming {
    fn new(plan: Capture, guard: HeaderGuard) -> Self {
        Streaming {
            scanner: DataScanner::new(),
            capturer: Capturer::new(plan),
            guard,
            guarded: Vec::new(),
            problem: None,
            ended: false,
            holding: plan.judge,
            held: Vec::new(),
            discarding: false,
        }
    }
}

/// A content judgement and what it rested on, for the verdict log.
struct Judged {
    outcome: ContentOutcome,
    kind: dsn::Kind,
    recognizer: &'static str,
    original_message_id: Option<String>,
    /// The id or UID the ledger knew, and where the message carried it.
    ledger_match: Option<String>,
    ledger_found: Option<&'static str>,
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
            let header_end = search_from + end + 4;
            self.plan.headers_only = false;
            if self.plan.calendar_limit > header_end && may_carry_calendar(&self.kept[..header_end]) {
                // Keep the body too: it may hold an invitation.
                self.plan.limit = self.plan.calendar_limit;
                self.kept.truncate(self.plan.limit);
                let more = (chunk.len() - take).min(self.plan.limit - self.kept.len());
                self.kept.extend_from_slice(&chunk[take..take + more]);
            } else {
                self.kept.truncate(header_end);
                self.open = false;
            }
        }
        if self.kept.len() >= self.plan.limit {
            self.open = false;
        }
    }
}

/// How the ledger files a piece of evidence: Message-IDs as themselves,
/// calendar UIDs apart from them.
fn ledger_key(evidence: &Evidence) -> String {
    match evidence {
        Evidence::MessageId { id, .. } => id.clone(),
        Evidence::CalendarUid(uid) => ledger::calendar_key(uid),
    }
}

/// The length of the header section, its blank line included (all of
/// `message` when it has none).
fn header_length(message: &[u8]) -> usize {
    memchr::memmem::find(message, b"\r\n\r\n").map_or(message.len(), |end| end + 4)
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
                self.policy().inbound_data(inbound.class, &inbound.verdicts, inbound.marked, !inbound.judged.is_empty())
            }
        };
        let (capture, marks) = match decision {
            DataDecision::Refuse { reply, reason } => {
                tracing::info!(session = %self.id, client = %self.endpoints.peer.ip(), sender = %transaction.sender(), verdict = "missing", rule = "untagged_reject_data", "bounce refused at DATA");
                self.context.metrics.rejection(Stage::Data, reason);
                self.context.metrics.message(MessageOutcome::Rejected);
                self.note_message(MessageRecord { reply: reply.to_string(), ..MessageRecord::default() });
                self.end_transaction();
                self.exchange(b"RSET\r\n").await?;
                return self.reply(reply);
            }
            DataDecision::Relay { capture, marks } => (capture, marks),
        };
        let reply = self.exchange(b"DATA\r\n").await?;
        if reply.code() != 354 {
            self.note_message(MessageRecord { reply: reply.to_string(), ..MessageRecord::default() });
            self.end_transaction();
            return self.reply(reply);
        }
        let reply = self.without_issued_tags(reply);
        self.client.queue_reply(&reply);
        if self.client.flush().await.is_err() {
            return Err(End::client_closed());
        }
        let received = (self.settings().client_identity == ClientIdentity::None).then(|| self.received_header());
        let received = received.unwrap_or_default();
        let mark_name = self.policy().settings().actions.mark_header.name.clone();
        // The proxy's fields stand in front of the client's first line;
        // when the content decides, they may come after the verdict.
        let prepends = !received.is_empty() || !marks.is_empty() || capture.judge;
        let guard = HeaderGuard::new(&[STATUS_FIELD, &mark_name], prepends);
        let mut message = Streaming::new(capture, guard);
        if !capture.judge {
            let upstream = self.upstream.client()?;
            upstream.queue(received.as_bytes());
            upstream.queue(marks.lines().as_bytes());
        }
        self.pump(&mut message).await?;
        let mut refusal = None;
        let mut judged_record = MessageRecord::default();
        if let Transaction::Inbound(inbound) = &transaction
            && capture.judge
            && message.problem.is_none()
        {
            let judged = self.judge_content(inbound, &message.capturer.kept, marks).await;
            let (result, rule) = judged.outcome.verdict.labels();
            judged_record = MessageRecord {
                kind: Some(judged.kind.as_str()),
                recognizer: Some(judged.recognizer),
                verdict: Some(result.as_str()),
                rule: Some(rule.as_str()),
                action: judged.outcome.action.map(Action::as_str),
                exemption: judged.outcome.exemption.clone(),
                original_message_id: judged.original_message_id,
                ledger_match: judged.ledger_match,
                ledger_found: judged.ledger_found,
                ..MessageRecord::default()
            };
            let outcome = judged.outcome;
            match outcome.refusal {
                Some(reply) => {
                    // The upstream never sees a byte of it.
                    self.drop_upstream(DropReason::RefusedMessage);
                    message.discarding = true;
                    refusal = Some(reply);
                }
                None => {
                    let mut front = received.into_bytes();
                    front.extend_from_slice(outcome.marks.lines().as_bytes());
                    front.append(&mut message.held);
                    if self.upstream.client()?.send(&front).await.is_err() {
                        message.problem = Some(Problem::UpstreamLost);
                    }
                }
            }
            message.holding = false;
            if !message.ended {
                self.pump(&mut message).await?;
            }
        }
        if let Some(refusal) = refusal {
            self.context.metrics.message(MessageOutcome::Rejected);
            self.note_message(MessageRecord { reply: refusal.to_string(), ..judged_record });
            self.end_transaction();
            return self.reply(refusal);
        }
        let step = self.finish(transaction, capture, message, judged_record).await;
        self.end_transaction();
        step
    }

    /// The message's fate in the transaction's record.
    fn note_message(&mut self, message: MessageRecord) {
        if let Some(record) = &mut self.record {
            record.message = Some(message);
        }
    }

    /// Reads the client's message data and passes it on, until the end of
    /// the message or, while holding for a verdict, until the content to
    /// judge is complete.
    async fn pump(&mut self, message: &mut Streaming) -> Result<(), End> {
        let limits = &self.context.settings.limits;
        let Session { client, upstream, shutdown, .. } = self;
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
            let (length, ended) = match message.scanner.scan(input) {
                Scan::Continue => (input.len(), false),
                Scan::End(length) => (length, true),
            };
            if message.problem.is_none() {
                if let Some(violation) = message.scanner.violation() {
                    message.problem = Some(Problem::Violation(violation));
                } else if message.scanner.size() > limits.max_message_size {
                    message.problem = Some(Problem::TooBig);
                }
            }
            let chunk = &client.input()[..length];
            message.capturer.take(chunk);
            if message.problem.is_none() && !message.discarding {
                let chunk = if message.guard.done() {
                    chunk
                } else {
                    message.guarded.clear();
                    message.guard.filter(chunk, &mut message.guarded);
                    &message.guarded
                };
                if message.holding {
                    message.held.extend_from_slice(chunk);
                } else if upstream.client()?.send(chunk).await.is_err() {
                    message.problem = Some(Problem::UpstreamLost);
                }
            }
            client.consume(length);
            message.ended = ended;
            if ended || (message.holding && !message.capturer.open) {
                return Ok(());
            }
        }
    }

    /// After the client's final dot: refuse a broken message, and relay the
    /// upstream's final reply to one that went through.
    async fn finish(
        &mut self,
        transaction: Transaction,
        plan: Capture,
        message: Streaming,
        record: MessageRecord,
    ) -> Step {
        if let Some(problem) = message.problem {
            return self.refuse_broken(&transaction, problem, record);
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
        let queue_id = queue_id(&reply);
        let captured = &message.capturer.kept;
        let message_id = if plan.headers_only && reply.is_positive() { own_message_id(captured) } else { None };
        let calendar_uids = if plan.headers_only && reply.is_positive() && captured.len() > header_length(captured) {
            dsn::outbound_calendar_uids(captured)
        } else {
            Vec::new()
        };
        let signed = match &transaction {
            Transaction::Outbound(outbound) => outbound.signed().map(ToString::to_string).unwrap_or_default(),
            Transaction::Inbound(_) => String::new(),
        };
        tracing::info!(
            session = %self.id,
            client = %self.endpoints.peer.ip(),
            sender = %sender,
            size = message.scanner.size(),
            result = outcome.as_str(),
            queue_id = queue_id.as_deref().unwrap_or_default(),
            message_id = message_id.as_deref().unwrap_or(""),
            signed,
            calendar_uids = calendar_uids.len(),
            guarded_lines_removed = message.guard.removed(),
            reply = %reply,
            "message relayed"
        );
        self.note_message(MessageRecord {
            reply: self.without_issued_tags(reply.clone()).to_string(),
            queue_id,
            message_id: message_id.clone(),
            ..record
        });
        if let Some(message_id) = message_id {
            self.context.ledger.record(&message_id);
        }
        for uid in &calendar_uids {
            self.context.ledger.record(&ledger::calendar_key(uid));
        }
        if reply.is_positive() {
            self.errors = 0;
        }
        self.reply(reply)
    }

    /// A message that broke a rule while streaming: the upstream never
    /// finishes it.
    fn refuse_broken(&mut self, transaction: &Transaction, problem: Problem, record: MessageRecord) -> Step {
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
        self.note_message(MessageRecord { reply: reply.to_string(), ..record });
        tracing::warn!(session = %self.id, client = %self.endpoints.peer.ip(), sender = %transaction.sender(), reason = reason.as_str(), "message refused");
        self.reply(reply)
    }

    /// The content verdict on a message to untagged recipients, asking the
    /// ledger when the message alone cannot decide.
    async fn judge_content(&self, inbound: &Inbound, captured: &[u8], marks: Marks) -> Judged {
        let inspection = dsn::inspect(captured);
        let bounce = inbound.kind == SenderKind::Bounce;
        let mut matched: Option<Evidence> = None;
        let verdict = match self.policy().precheck_content(bounce, &inspection, &inbound.judged) {
            ContentPrecheck::Decided(verdict) => verdict,
            ContentPrecheck::AskLedger(evidence) => {
                let answer = if !self.context.ledger.is_on() {
                    LedgerAnswer::Off
                } else {
                    let keys: Vec<String> = evidence.iter().map(ledger_key).collect();
                    match self.context.ledger.find(&keys).await {
                        Ok(Some(found)) => {
                            matched = evidence.into_iter().find(|item| ledger::normalize(&ledger_key(item)) == found);
                            LedgerAnswer::Found
                        }
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
        let source =
            Source { reporting_mta: inspection.reporting_mta.as_deref(), ..self.source(Some(&inbound.sender)) };
        let outcome = self.policy().content_outcome(verdict, bounce, inspection.kind, &source, marks, self.today());
        let (result, rule) = outcome.verdict.labels();
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
                ledger_match = matched.as_ref().map_or("", Evidence::value),
                ledger_found = matched.as_ref().map_or("", Evidence::found),
                verdict = result.as_str(),
                rule = rule.as_str(),
                action = outcome.action.map(Action::as_str).unwrap_or(""),
                exemption = outcome.exemption.as_deref().unwrap_or(""),
                monitor = outcome.monitor,
                grace = outcome.grace,
                "content verdict"
            );
        }
        self.context.metrics.inspection(inspection.kind, result, rule);
        if let Some(exemption) = &outcome.exemption {
            self.context.metrics.exemption(exemption, if bounce { Scope::UntaggedBounce } else { Scope::AutoReply });
        }
        if outcome.refusal.is_none() && outcome.action == Some(Action::Mark) {
            self.context.metrics.marked(Stage::Data, rule.as_str());
        }
        if outcome.refusal.is_some()
            && let Some(reason) = rule.rejection()
        {
            self.context.metrics.rejection(Stage::Data, reason);
        }
        Judged {
            outcome,
            kind: inspection.kind,
            recognizer: inspection.rule,
            original_message_id: inspection.original_message_id,
            ledger_found: matched.as_ref().map(Evidence::found),
            ledger_match: matched.map(|evidence| evidence.value().to_owned()),
        }
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
    let text = std::str::from_utf8(reply.last_line()).ok()?;
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
        let mut capturer = Capturer::new(Capture { limit: 1024, headers_only: true, judge: false, calendar_limit: 0 });
        for chunk in [&b"Subject: x\r\nMessage-ID: <a@b>\r"[..], b"\n\r", b"\nbody\r\n"] {
            capturer.take(chunk);
        }
        assert_eq!(capturer.kept, b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\n");
        let mut bounded = Capturer::new(Capture { limit: 4, headers_only: false, judge: true, calendar_limit: 0 });
        bounded.take(b"abcdefgh");
        assert_eq!(bounded.kept, b"abcd");
    }

    #[test]
    fn a_message_that_may_hold_an_invitation_is_kept_past_its_header_section() {
        let plan = Capture { limit: 1024, headers_only: true, judge: false, calendar_limit: 64 };
        let invitation = b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/calendar\r\n\r\nBEGIN:VCALENDAR and far more than sixty-four bytes in all";
        for split in [10, 49, 50, invitation.len()] {
            let mut capturer = Capturer::new(plan);
            capturer.take(&invitation[..split]);
            capturer.take(&invitation[split..]);
            assert_eq!(capturer.kept, &invitation[..64], "split at {split}");
            assert!(!capturer.open);
        }
        // A plain message stops at its header section, and so does any
        // message when no calendar limit is set.
        let plain = b"Content-Type: text/plain\r\n\r\nmultipart/ in the body does not count";
        let mut capturer = Capturer::new(plan);
        capturer.take(plain);
        assert_eq!(capturer.kept, b"Content-Type: text/plain\r\n\r\n");
        let mut capturer = Capturer::new(Capture { calendar_limit: 0, ..plan });
        capturer.take(invitation);
        assert_eq!(header_length(&capturer.kept), capturer.kept.len());
    }
}
