//! One client session relayed to its own upstream session, command by
//! command. The proxy answers a command itself only when BATV, a limit or
//! the protocol demands it; everything else is the upstream's answer.
//!
//! Principles (DESIGN.md): nothing is queued, nothing is bounced, a `250`
//! after DATA is only ever the upstream's, and a broken upstream gives the
//! client a 4xx. Every decision comes from `policy`; the session moves
//! bytes and asks. ARCHITECTURE.md tells a session's life.

mod envelope;
mod message;
mod reading;
mod starttls;
#[cfg(test)]
mod tests;
mod transaction;
mod upstream_slot;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::watch;

use crate::batv::Day;
use crate::config::{ListenerSettings, TlsMode};
use crate::connection::{Connection, Incoming, ReadError, Stream, Transport};
use crate::deadline::Deadline;
use crate::labels::{CommandLabel, SessionOutcome};
use crate::listener::ListenerContext;
use crate::policy::{Policy, RejectReason, Source, Stage};
use crate::smtp::address::{Mailbox, ReversePath};
use crate::smtp::command::{Command, Verb};
use crate::smtp::line::LineError;
use crate::smtp::reply::Reply;
use crate::upstream::{Client, UpstreamClient, UpstreamFailure};
use crate::verdicts::VerdictRecord;

pub use message::queue_id;
use starttls::{client_tls_version, handshake};
use transaction::Transaction;
use upstream_slot::{DropReason, UpstreamSlot};

/// Where the process is in its life; sessions watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Stop after the transaction in progress.
    Draining,
    /// Stop now.
    Stopping,
}

/// The two ends of the client's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub peer: SocketAddr,
    /// The address the client connected to (for the PROXY v2 header).
    pub local: SocketAddr,
}

fn next_session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START
        .get_or_init(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    format!("{:08x}{:06x}", start as u32, COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff_ffff)
}

/// The session ends: optionally with a last reply to the client.
#[derive(Debug)]
struct End {
    outcome: SessionOutcome,
    reply: Option<Reply>,
}

impl End {
    fn with(outcome: SessionOutcome, code: u16, text: &str) -> Self {
        End { outcome, reply: Some(Reply::new(code, text)) }
    }

    fn silently(outcome: SessionOutcome) -> Self {
        End { outcome, reply: None }
    }

    fn client_closed() -> Self {
        End::silently(SessionOutcome::ClientClosed)
    }

    fn shutdown() -> Self {
        End::with(SessionOutcome::Shutdown, 421, "4.3.2 Service shutting down; try again later")
    }

    fn upstream_lost(error: &ReadError) -> Self {
        let text = match error {
            ReadError::Timeout => "4.4.2 Upstream mail server timed out; try again later",
            _ => "4.4.2 Upstream mail server closed the connection; try again later",
        };
        End::with(SessionOutcome::UpstreamLost, 421, text)
    }
}

impl From<UpstreamFailure> for End {
    fn from(failure: UpstreamFailure) -> Self {
        match failure {
            UpstreamFailure::Unavailable => End::with(
                SessionOutcome::UpstreamUnavailable,
                421,
                "4.4.0 Mail service temporarily unavailable; try again later",
            ),
            UpstreamFailure::Refused { permanent: true } => {
                End::with(SessionOutcome::UpstreamUnavailable, 554, "5.3.2 Mail service not available")
            }
            UpstreamFailure::Refused { permanent: false } => End::with(
                SessionOutcome::UpstreamUnavailable,
                421,
                "4.3.2 Mail service temporarily unavailable; try again later",
            ),
            UpstreamFailure::RefusedIdentity => End::with(
                SessionOutcome::UpstreamRefusedIdentity,
                421,
                "4.3.5 Mail service temporarily unavailable; try again later",
            ),
            UpstreamFailure::Lost(error) => End::upstream_lost(&error),
        }
    }
}

type Step = Result<(), End>;

struct Hello {
    extended: bool,
    domain: String,
    line: Vec<u8>,
}

/// A tag this session put on a sender. Replies relayed to the client are
/// cleaned of it: a refusal that quotes the signed sender would hand the
/// client a valid tag for an address it may not own.
struct IssuedTag {
    /// The signed local part, and the client's own in its place.
    signed_local: String,
    original_local: String,
    /// What signing added (`prvs=TAG=` or `+prvs=TAG`), removed wherever it stands.
    decoration: String,
}

/// Tags remembered per session; a session that signs more senders than
/// this forgets the oldest.
const MAX_ISSUED_TAGS: usize = 32;

/// Longest line of a SASL exchange (RFC 4954 §4).
const MAX_SASL_LINE: usize = 12_288;

pub struct Session<S: Transport> {
    context: Arc<ListenerContext<S>>,
    id: String,
    endpoints: Endpoints,
    client: Connection<Stream<S>>,
    upstream: UpstreamSlot<S>,
    hello: Option<Hello>,
    transaction: Option<Transaction>,
    errors: usize,
    authenticated: bool,
    issued_tags: Vec<IssuedTag>,
    /// When a client waiting for its next command counts as idle.
    idle: Deadline,
    /// The client's forward-confirmed name, once looked up (only when an
    /// exemption names clients by name).
    client_name: Option<Option<String>>,
    /// What the current transaction came to so far, for the verdict log.
    record: Option<VerdictRecord>,
    shutdown: watch::Receiver<Phase>,
}

/// Runs one session over `stream` to its end. `endpoints` come from
/// accept, so no system call is spent asking again.
pub async fn serve<S: Transport>(
    stream: S,
    endpoints: Endpoints,
    context: Arc<ListenerContext<S>>,
    shutdown: watch::Receiver<Phase>,
) {
    let metrics = context.metrics.clone();
    metrics.sessions_active.inc();
    let started = Instant::now();
    let id = next_session_id();
    let endpoints = Endpoints { peer: normalize(endpoints.peer), local: normalize(endpoints.local) };
    let stream = match &context.server_tls {
        Some(tls) if tls.mode == TlsMode::Implicit => {
            match Box::pin(handshake(tls, stream, &metrics, &id, endpoints.peer)).await {
                Some(stream) => stream,
                None => {
                    metrics.sessions_active.dec();
                    metrics.session_ended(SessionOutcome::TlsFailed);
                    return;
                }
            }
        }
        _ => Stream::Plain(stream),
    };
    let mut session = Session {
        id,
        endpoints,
        client: Connection::new(stream).with_write_timeout(context.settings.limits.command_timeout),
        upstream: UpstreamSlot::new(),
        hello: None,
        transaction: None,
        errors: 0,
        authenticated: false,
        issued_tags: Vec::new(),
        idle: Deadline::new(),
        client_name: None,
        record: None,
        shutdown,
        context,
    };
    let outcome = session.run().await;
    metrics.sessions_active.dec();
    metrics.session_ended(outcome);
    metrics.session_duration.observe(started.elapsed().as_secs_f64());
    tracing::debug!(session = %session.id, client = %session.endpoints.peer.ip(), outcome = outcome.as_str(), "session ended");
}

/// IPv4 clients on a dual-stack socket appear as `::ffff:a.b.c.d`.
fn normalize(address: SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => address,
        },
        v4 => v4,
    }
}

/// Who the client is, as the upstream must learn it.
fn identity<'a, S: Transport>(
    endpoints: &Endpoints,
    client: &Connection<Stream<S>>,
    hello: Option<&'a Hello>,
    session: &'a str,
) -> Client<'a> {
    Client {
        peer: endpoints.peer,
        local: endpoints.local,
        tls_version: client_tls_version(client.stream()),
        hello: hello.map(|hello| (hello.domain.as_str(), hello.extended)),
        session,
    }
}

/// The label a command's added latency is recorded under.
fn command_label(verb: Verb) -> CommandLabel {
    match verb {
        Verb::Ehlo => CommandLabel::Ehlo,
        Verb::Helo => CommandLabel::Helo,
        Verb::Mail => CommandLabel::Mail,
        Verb::Rcpt => CommandLabel::Rcpt,
        Verb::Data => CommandLabel::Data,
        Verb::Rset => CommandLabel::Rset,
        Verb::Noop => CommandLabel::Noop,
        _ => CommandLabel::Other,
    }
}

impl<S: Transport> Session<S> {
    fn settings(&self) -> &ListenerSettings {
        &self.context.settings
    }

    fn policy(&self) -> &Policy {
        &self.context.policy
    }

    fn today(&self) -> Day {
        self.context.clock.today()
    }

    async fn run(&mut self) -> SessionOutcome {
        let outcome = match self.converse().await {
            Ok(()) => SessionOutcome::Completed,
            Err(end) => {
                if let Some(reply) = &end.reply {
                    self.client.queue_reply(reply);
                }
                end.outcome
            }
        };
        self.client.shutdown().await;
        // Closing the upstream makes the MTA discard a transaction that
        // never saw its final dot.
        self.upstream.close();
        self.end_transaction();
        outcome
    }

    async fn converse(&mut self) -> Step {
        let first = Box::pin(UpstreamClient::connect(&self.context, self.client_identity())).await?;
        self.upstream.install(first);
        let greeting = Reply::new(220, &format!("{} ESMTP", self.settings().hostname));
        self.client.queue_reply(&greeting);
        loop {
            let line = match self.next_command().await? {
                Incoming::Line(line) => line,
                Incoming::Bad(error) => {
                    self.refuse_line(error)?;
                    continue;
                }
            };
            let started = Instant::now();
            let command = match Command::parse(&line) {
                Ok(command) => command,
                Err(error) => {
                    let (code, enhanced) = error.reply();
                    self.reply(Reply::new(code, &format!("{enhanced} {error}")))?;
                    continue;
                }
            };
            let verb = command.verb();
            if verb == Verb::Quit {
                return self.quit().await;
            }
            // Boxed: a session's future is as large as the largest future
            // it awaits, for its whole life; boxing the command's keeps an
            // idle session (thousands of them) at a third of the size.
            Box::pin(self.handle(command, &line)).await?;
            let waited = self.upstream.take_waited();
            self.context
                .metrics
                .added_latency(command_label(verb), started.elapsed().saturating_sub(waited).as_secs_f64());
        }
    }

    /// One row per command: which handler runs it.
    async fn handle(&mut self, command: Command, line: &[u8]) -> Step {
        match command {
            Command::Hello { extended, domain } => self.hello(extended, domain, line).await,
            Command::Mail { path, parameters } => self.mail(path, parameters, line).await,
            Command::Rcpt { path, parameters } => self.rcpt(path, parameters, line).await,
            // Boxed, as the rarer and larger steps: a command's box is then small.
            Command::Data => Box::pin(self.data()).await,
            Command::Rset => {
                self.end_transaction();
                self.relay(line).await
            }
            Command::Relayed(_) => self.relay(line).await,
            Command::Auth { .. } => Box::pin(self.auth(line)).await,
            Command::StartTls => Box::pin(self.starttls()).await,
            Command::NotOffered(verb) => {
                self.reply(Reply::new(502, &format!("5.5.1 {} is not available", verb.as_str())))
            }
            Command::Unknown => self.reply(Reply::new(500, "5.5.2 Command not recognized")),
            // Handled by the caller, before any other.
            Command::Quit => Ok(()),
        }
    }

    /// A command line that breaks the framing rules.
    fn refuse_line(&mut self, error: LineError) -> Step {
        let text = match error {
            LineError::TooLong => "5.5.2 Line too long",
            LineError::BareLf => "5.5.2 Bare LF in command; lines must end with CRLF",
            LineError::BareCr => "5.5.2 Bare CR in command; lines must end with CRLF",
            LineError::Nul => "5.5.2 NUL byte in command",
        };
        self.context.metrics.rejection(Stage::Command, RejectReason::from(error));
        self.reply(Reply::new(500, text))
    }

    /// Queues a reply to the client and counts errors.
    fn reply(&mut self, reply: Reply) -> Step {
        let is_error = reply.is_error() && reply.code() != 452;
        let reply = self.without_issued_tags(reply);
        self.client.queue_reply(&reply);
        if is_error {
            self.errors += 1;
            if self.errors >= self.settings().limits.max_errors {
                return Err(End::with(
                    SessionOutcome::TooManyErrors,
                    421,
                    "4.7.0 Too many errors; closing the connection",
                ));
            }
        }
        Ok(())
    }

    /// A refusal of the proxy's own, counted by stage and reason.
    fn refuse(&mut self, stage: Stage, reason: RejectReason, reply: Reply) -> Step {
        self.context.metrics.rejection(stage, reason);
        self.reply(reply)
    }

    /// Remembers a tag put on the client's sender, to keep it out of replies.
    fn issued(&mut self, original: &Mailbox, signed: &Mailbox) {
        let (original_local, signed_local) = (original.local_part(), signed.local_part());
        if self.issued_tags.iter().any(|tag| tag.signed_local == signed_local) {
            return;
        }
        let decoration = signed_local
            .strip_suffix(original_local)
            .or_else(|| signed_local.strip_prefix(original_local))
            .unwrap_or(signed_local);
        if self.issued_tags.len() == MAX_ISSUED_TAGS {
            self.issued_tags.remove(0);
        }
        self.issued_tags.push(IssuedTag {
            signed_local: signed_local.to_owned(),
            original_local: original_local.to_owned(),
            decoration: decoration.to_owned(),
        });
    }

    /// The reply with every tag this session made replaced by the address
    /// the client gave.
    fn without_issued_tags(&self, mut reply: Reply) -> Reply {
        // Every tag has an '='; most replies have none.
        if self.issued_tags.is_empty() || !reply.text_contains(b'=') {
            return reply;
        }
        for tag in &self.issued_tags {
            if let Some(clean) = reply.replaced(&tag.signed_local, &tag.original_local) {
                reply = clean;
            }
            if let Some(clean) = reply.replaced(&tag.decoration, "") {
                reply = clean;
            }
        }
        reply
    }

    /// Forgets the transaction, and files what it came to.
    fn end_transaction(&mut self) {
        self.transaction = None;
        if let Some(record) = self.record.take() {
            self.context.verdicts.push(record);
        }
    }

    /// Starts the record of a transaction from `sender`.
    fn start_record(&mut self, sender: &ReversePath) {
        self.end_transaction();
        let listener = &self.context.settings.name;
        let record = VerdictRecord::new(
            self.context.clock.now(),
            &self.id,
            listener,
            self.endpoints.peer.ip(),
            sender.to_string(),
        );
        self.record = Some(record);
    }

    /// Where mail in this session comes from, for exemptions.
    fn source<'a>(&'a self, sender: Option<&'a ReversePath>) -> Source<'a> {
        Source {
            listener: &self.settings().name,
            client: Some(self.endpoints.peer.ip()),
            client_name: self.client_name.as_ref().and_then(Option::as_deref),
            sender,
            reporting_mta: None,
            recipient: None,
        }
    }

    /// Looks the client's name up once, when an exemption needs it.
    async fn learn_client_name(&mut self) {
        if self.client_name.is_none() && self.policy().settings().exemptions.need_client_names() {
            let name = crate::resolve::client_name(self.endpoints.peer.ip()).await;
            self.client_name = Some(name.confirmed().map(str::to_owned));
        }
    }

    /// Who the client is, for the upstream.
    fn client_identity(&self) -> Client<'_> {
        identity(&self.endpoints, &self.client, self.hello.as_ref(), &self.id)
    }

    /// The upstream session, identified; a new one, with the client's
    /// EHLO replayed, when the last was dropped on purpose.
    async fn upstream(&mut self) -> Result<&mut UpstreamClient<S>, End> {
        let identity = identity(&self.endpoints, &self.client, self.hello.as_ref(), &self.id);
        if self.upstream.is_open() {
            let client = self.upstream.client()?;
            client.identify(identity).await?;
            return Ok(client);
        }
        if self.authenticated {
            // A new upstream session would not carry the client's AUTH.
            return Err(End::with(
                SessionOutcome::UpstreamLost,
                421,
                "4.3.0 Session reset after a refused message; please reconnect",
            ));
        }
        let hello = self.hello.as_ref().map(|hello| hello.line.as_slice());
        self.upstream.reopen(&self.context, identity, hello).await
    }

    /// Relays a command unchanged and queues the upstream's reply.
    async fn relay(&mut self, line: &[u8]) -> Step {
        let reply = self.upstream().await?.command(line).await?;
        self.reply(reply)
    }

    /// Sends one command upstream and returns the reply.
    async fn exchange(&mut self, line: &[u8]) -> Result<Reply, End> {
        Ok(self.upstream().await?.command(line).await?)
    }

    async fn quit(&mut self) -> Step {
        self.upstream.quit().await;
        self.client.queue_reply(&Reply::new(221, "2.0.0 Bye"));
        Ok(())
    }

    /// Drops the upstream session on purpose: the MTA discards the
    /// transaction that never saw its final dot.
    fn drop_upstream(&mut self, reason: DropReason) {
        self.upstream.drop_session(reason, &self.id);
    }
}
