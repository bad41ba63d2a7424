//! One client session relayed to its own upstream session, command by
//! command. The proxy answers a command itself only when BATV, a limit or
//! the protocol demands it; everything else is the upstream's answer.
//!
//! Principles (DESIGN.md): nothing is queued, nothing is bounced, a `250`
//! after DATA is only ever the upstream's, and a broken upstream gives the
//! client a 4xx.

mod envelope;
mod message;
mod starttls;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::batv::Day;
use crate::config::{ClientIdentity, ListenerSettings, Role, TlsMode, UntaggedBounce, UpstreamTlsMode};
use crate::connection::{Connection, Incoming, ReadError, Stream};
use crate::dsn;
use crate::ledger::Ledger;
use crate::metrics::ListenerMetrics;
use crate::policy::{
    self, ContentCheck, ContentPrecheck, ContentVerdict, Deferred, Policy, RecipientAction, SenderDecision, SenderKind,
    Verdict,
};
use crate::smtp::address::{Domain, ForwardPath, Mailbox, ReversePath};
use crate::smtp::capabilities::{Capabilities, Offer, client_ehlo_reply};
use crate::smtp::command::{self, Command, Parameter, Parameters, Verb, xtext_encode};
use crate::smtp::data::{DataScanner, Scan, Violation};
use crate::smtp::header::HeaderGuard;
use crate::smtp::line::LineError;
use crate::smtp::reply::Reply;
use crate::tls::{ServerTls, UpstreamTls};

pub use message::queue_id;
use starttls::{client_tls_version, handshake};
pub use upstream::proxy_v2_header;

/// Longest line of a SASL exchange (RFC 4954 §4).
const MAX_SASL_LINE: usize = 12_288;

/// Where the process is in its life; sessions watch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// Stop after the transaction in progress.
    Draining,
    /// Stop now.
    Stopping,
}

/// Everything a session needs from its listener; replaced as a whole on reload.
pub struct ListenerContext {
    pub settings: ListenerSettings,
    pub policy: Policy,
    pub metrics: ListenerMetrics,
    pub server_tls: Option<ServerTls>,
    pub upstream_tls: Option<UpstreamTls>,
    /// Shared by every listener: outbound ones record, inbound ones look up.
    pub ledger: Arc<Ledger>,
    /// The XCLIENT attributes the upstream offered in an earlier session.
    pub xclient_attributes: std::sync::Mutex<Option<Vec<String>>>,
}

/// Today in UTC: tag days are UTC days everywhere.
pub fn today() -> Day {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    Day::from_days_since_epoch((seconds / 86_400) as u32)
}

fn next_session_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START
        .get_or_init(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()));
    format!("{:08x}{:06x}", start as u32, COUNTER.fetch_add(1, Ordering::Relaxed) & 0xff_ffff)
}

/// How a session ended, for the `sessions_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    ClientClosed,
    ClientTimeout,
    UpstreamUnavailable,
    UpstreamLost,
    UpstreamRefusedIdentity,
    TooManyErrors,
    TlsFailed,
    Shutdown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::ClientClosed => "client_closed",
            Outcome::ClientTimeout => "client_timeout",
            Outcome::UpstreamUnavailable => "upstream_unavailable",
            Outcome::UpstreamLost => "upstream_lost",
            Outcome::UpstreamRefusedIdentity => "upstream_refused_identity",
            Outcome::TooManyErrors => "too_many_errors",
            Outcome::TlsFailed => "tls_failed",
            Outcome::Shutdown => "shutdown",
        }
    }
}

/// The session ends: optionally with a last reply to the client.
#[derive(Debug)]
struct End {
    outcome: Outcome,
    reply: Option<Reply>,
}

impl End {
    fn with(outcome: Outcome, code: u16, text: &str) -> Self {
        End { outcome, reply: Some(Reply::new(code, text)) }
    }

    fn upstream_lost(error: &ReadError) -> Self {
        let text = match error {
            ReadError::Timeout => "4.4.2 Upstream mail server timed out; try again later",
            _ => "4.4.2 Upstream mail server closed the connection; try again later",
        };
        End::with(Outcome::UpstreamLost, 421, text)
    }
}

type Step = Result<(), End>;

struct Upstream {
    connection: Connection,
    /// XCLIENT already told the upstream who the client is.
    identified: bool,
    /// From the upstream's answer to the client's EHLO.
    capabilities: Capabilities,
}

struct Hello {
    extended: bool,
    domain: String,
    line: Vec<u8>,
}

/// The recipients of a bounce transaction must share one fate at DATA, so
/// a transaction holds either recipients to judge later or ones accepted
/// outright; a recipient of the other kind gets a 452 and comes back in a
/// transaction of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Accepted,
    Deferred(Deferred),
}

struct Recipient {
    verdict: Option<Verdict>,
}

/// A held outbound MAIL, waiting for the first RCPT to decide on signing.
struct HeldMail {
    original_line: Vec<u8>,
    signed_line: Vec<u8>,
}

struct Transaction {
    sender: ReversePath,
    kind: SenderKind,
    /// Outbound: the signed sender, if signed.
    signed: Option<Mailbox>,
    held: Option<HeldMail>,
    /// Outbound with recipient exemptions: whether this transaction's
    /// recipients are exempt ones (then it is unsigned).
    exempt_group: Option<bool>,
    /// Set when the upstream refused a held MAIL: every RCPT gets it.
    held_failure: Option<Reply>,
    class: Option<Class>,
    recipients: Vec<Recipient>,
    /// One entry per recipient whose mail the content decides: the domain
    /// whose Message-ID patterns apply, if any.
    inspect_domains: Vec<Option<Domain>>,
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

pub struct Session {
    context: Arc<ListenerContext>,
    id: String,
    peer: SocketAddr,
    client: Connection,
    upstream: Option<Upstream>,
    hello: Option<Hello>,
    transaction: Option<Transaction>,
    errors: usize,
    authenticated: bool,
    issued_tags: Vec<IssuedTag>,
    shutdown: watch::Receiver<Phase>,
}

/// Runs one session to its end.
/// `peer` comes from accept, so no system call is spent asking again.
pub async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    context: Arc<ListenerContext>,
    shutdown: watch::Receiver<Phase>,
) {
    let _ = socket.set_nodelay(true);
    let shared = Arc::clone(&context);
    let metrics = &shared.metrics;
    metrics.sessions_active.inc();
    let started = Instant::now();
    let id = next_session_id();
    let stream = match &context.server_tls {
        Some(tls) if tls.mode == TlsMode::Implicit => match handshake(tls, socket, metrics, &id, peer).await {
            Some(stream) => stream,
            None => {
                metrics.sessions_active.dec();
                metrics.session_ended("tls_failed");
                return;
            }
        },
        _ => Stream::Plain(socket),
    };
    let mut session = Session {
        id,
        peer: normalize(peer),
        client: Connection::new(stream).with_write_timeout(context.settings.limits.command_timeout),
        upstream: None,
        hello: None,
        transaction: None,
        errors: 0,
        authenticated: false,
        issued_tags: Vec::new(),
        shutdown,
        context,
    };
    let outcome = session.run().await;
    metrics.sessions_active.dec();
    metrics.session_ended(outcome.as_str());
    metrics.session_duration.observe(started.elapsed().as_secs_f64());
    tracing::debug!(session = %session.id, client = %session.peer.ip(), outcome = outcome.as_str(), "session ended");
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

impl Session {
    fn settings(&self) -> &ListenerSettings {
        &self.context.settings
    }

    fn policy(&self) -> &Policy {
        &self.context.policy
    }

    async fn run(&mut self) -> Outcome {
        let result = self.converse().await;
        let outcome = match result {
            Ok(()) => Outcome::Completed,
            Err(end) => {
                if let Some(reply) = &end.reply {
                    self.client.queue_reply(reply);
                }
                end.outcome
            }
        };
        self.client.shutdown().await;
        // Dropping the upstream closes it; the MTA discards a transaction
        // that never saw its final dot.
        self.upstream = None;
        outcome
    }

    async fn converse(&mut self) -> Step {
        self.open_upstream().await?;
        let greeting = Reply::new(220, &format!("{} ESMTP", self.settings().hostname));
        self.client.queue_reply(&greeting);
        loop {
            let incoming = self.next_command().await?;
            let line = match incoming {
                Incoming::Line(line) => line,
                Incoming::Bad(error) => {
                    let text = match error {
                        LineError::TooLong => "5.5.2 Line too long",
                        LineError::BareLf => "5.5.2 Bare LF in command; lines must end with CRLF",
                        LineError::BareCr => "5.5.2 Bare CR in command; lines must end with CRLF",
                        LineError::Nul => "5.5.2 NUL byte in command",
                    };
                    self.context.metrics.rejection("command", line_error_label(error));
                    self.reply(Reply::new(500, text))?;
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
            let upstream_time = self.handle(command, &line).await?;
            let added = started.elapsed().saturating_sub(upstream_time);
            self.context.metrics.added_latency(verb.as_str(), added.as_secs_f64());
        }
    }

    /// Queues a reply to the client and counts errors.
    fn reply(&mut self, reply: Reply) -> Step {
        let is_error = reply.is_error() && reply.code() != 452;
        let reply = self.without_issued_tags(reply);
        self.client.queue_reply(&reply);
        if is_error {
            self.errors += 1;
            if self.errors >= self.settings().limits.max_errors {
                return Err(End::with(Outcome::TooManyErrors, 421, "4.7.0 Too many errors; closing the connection"));
            }
        }
        Ok(())
    }

    /// Remembers a tag put on the client's sender, to keep it out of replies.
    fn issued(&mut self, original: &Mailbox, signed: &Mailbox) {
        let (original_local, signed_local) = (original.local_part(), signed.local_part());
        let decoration = signed_local
            .strip_suffix(original_local)
            .or_else(|| signed_local.strip_prefix(original_local))
            .unwrap_or(signed_local);
        if self.issued_tags.iter().any(|tag| tag.signed_local == signed_local) {
            return;
        }
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

    /// Waits for the next command line; flushes replies first when the
    /// client has nothing more pipelined.
    async fn next_command(&mut self) -> Result<Incoming, End> {
        let max = self.settings().limits.max_command_line;
        let timeout = self.settings().limits.command_timeout;
        loop {
            if let Some(incoming) = self.client.take_line(max) {
                return Ok(incoming);
            }
            let phase = *self.shutdown.borrow();
            if phase == Phase::Stopping || (phase == Phase::Draining && self.transaction.is_none()) {
                return Err(End::with(Outcome::Shutdown, 421, "4.3.2 Service shutting down; try again later"));
            }
            if self.client.flush().await.is_err() {
                return Err(End { outcome: Outcome::ClientClosed, reply: None });
            }
            self.client.release_idle_buffers();
            if let Some(upstream) = &mut self.upstream {
                upstream.connection.release_idle_buffers();
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::select! {
                read = self.client.fill() => match read {
                    Ok(0) | Err(_) => return Err(End { outcome: Outcome::ClientClosed, reply: None }),
                    Ok(_) => {}
                },
                _ = upstream_activity(&mut self.upstream) => {
                    // An idle upstream that speaks is closing (e.g. "421 timeout").
                    self.context.metrics.upstream_error("closed_idle");
                    self.upstream = None;
                    return Err(End::with(Outcome::UpstreamLost, 421, "4.4.2 Upstream mail server closed the connection; try again later"));
                }
                _ = self.shutdown.changed() => {}
                _ = deadline => {
                    return Err(End::with(Outcome::ClientTimeout, 421, "4.4.2 Timeout waiting for a command; closing the connection"));
                }
            }
        }
    }

    async fn handle(&mut self, command: Command, line: &[u8]) -> Result<std::time::Duration, End> {
        match command {
            Command::Hello { extended, domain } => self.hello(extended, domain, line).await,
            Command::Mail { path, parameters } => self.mail(path, parameters, line).await,
            Command::Rcpt { path, parameters } => self.rcpt(path, parameters, line).await,
            Command::Data => self.data().await,
            Command::Rset => {
                self.transaction = None;
                let (reply, spent) = self.relay(line).await?;
                self.reply(reply)?;
                Ok(spent)
            }
            Command::Relayed(_) => {
                let (reply, spent) = self.relay(line).await?;
                self.reply(reply)?;
                Ok(spent)
            }
            Command::Auth { .. } => self.auth(line).await,
            Command::StartTls => self.starttls().await,
            Command::NotOffered(verb) => {
                self.reply(Reply::new(502, &format!("5.5.1 {} is not available", verb.as_str())))?;
                Ok(Default::default())
            }
            Command::Unknown => {
                self.reply(Reply::new(500, "5.5.2 Command not recognized"))?;
                Ok(Default::default())
            }
            Command::Quit => unreachable!("QUIT is handled by the caller"),
        }
    }

    async fn quit(&mut self) -> Step {
        if let Some(upstream) = &mut self.upstream {
            upstream.connection.queue(b"QUIT\r\n");
            if upstream.connection.flush().await.is_ok() {
                let _ = upstream.connection.read_reply(std::time::Duration::from_secs(5)).await;
            }
        }
        self.client.queue_reply(&Reply::new(221, "2.0.0 Bye"));
        Ok(())
    }
}

/// Resolves when an idle upstream sends anything or closes; never when
/// there is no upstream.
/// Watching starts after a moment: a busy client's next command usually
/// comes first, and not polling the upstream in between saves a read
/// system call per command.
async fn upstream_activity(upstream: &mut Option<Upstream>) {
    match upstream {
        Some(upstream) => {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let _ = upstream.connection.fill().await;
        }
        None => std::future::pending().await,
    }
}

fn line_error_label(error: LineError) -> &'static str {
    match error {
        LineError::TooLong => "line_too_long",
        LineError::BareLf => Violation::BareLf.as_str(),
        LineError::BareCr => Violation::BareCr.as_str(),
        LineError::Nul => Violation::Nul.as_str(),
    }
}
