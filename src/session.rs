//! One client session relayed to its own upstream session, command by
//! command. The proxy answers a command itself only when BATV, a limit or
//! the protocol demands it; everything else is the upstream's answer.
//!
//! Principles (DESIGN.md): nothing is queued, nothing is bounced, a `250`
//! after DATA is only ever the upstream's, and a broken upstream gives the
//! client a 4xx.

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
    self, ContentPrecheck, ContentVerdict, Deferred, Policy, RecipientAction, SenderDecision, SenderKind, Verdict,
};
use crate::smtp::address::{Domain, ForwardPath, Mailbox, ReversePath};
use crate::smtp::capabilities::{Capabilities, Offer, client_ehlo_reply};
use crate::smtp::command::{self, Command, Parameter, Parameters, Verb, xtext_encode};
use crate::smtp::data::{DataScanner, Scan, Violation};
use crate::smtp::line::LineError;
use crate::smtp::reply::Reply;
use crate::tls::{ServerTls, UpstreamTls};

/// Longest line of a SASL exchange (RFC 4954 §4).
const MAX_SASL_LINE: usize = 12_288;

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
    /// Domains of our untagged recipients whose mail the content decides.
    inspect_domains: Vec<Domain>,
}

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
        self.client.queue_reply(&reply);
        if is_error {
            self.errors += 1;
            if self.errors >= self.settings().limits.max_errors {
                return Err(End::with(Outcome::TooManyErrors, 421, "4.7.0 Too many errors; closing the connection"));
            }
        }
        Ok(())
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

    /// Connects to the upstream, announces the client (PROXY v2) and reads
    /// its greeting.
    async fn open_upstream(&mut self) -> Step {
        let limits = self.settings().limits.clone();
        let target = self.settings().upstream.clone();
        let unavailable = || {
            End::with(Outcome::UpstreamUnavailable, 421, "4.4.0 Mail service temporarily unavailable; try again later")
        };
        let connect = tokio::time::timeout(limits.upstream_connect_timeout, TcpStream::connect(&target)).await;
        let mut socket = match connect {
            Ok(Ok(socket)) => socket,
            failure => {
                let reason = match failure {
                    Ok(Err(error)) => error.to_string(),
                    _ => "timed out".into(),
                };
                self.context.metrics.upstream_error("connect");
                tracing::warn!(session = %self.id, upstream = %target, error = %reason, "cannot connect to the upstream MTA");
                return Err(unavailable());
            }
        };
        let _ = socket.set_nodelay(true);
        if self.settings().client_identity == ClientIdentity::ProxyV2 {
            let tlvs = client_tls_version(self.client.stream()).map(crate::tls::proxy_v2_ssl_tlv).unwrap_or_default();
            let local = match self.client.stream().tcp().local_addr() {
                Ok(local) => normalize(local),
                Err(_) => return Err(End { outcome: Outcome::ClientClosed, reply: None }),
            };
            let header = proxy_v2_header(self.peer, local, &tlvs);
            if tokio::io::AsyncWriteExt::write_all(&mut socket, &header).await.is_err() {
                self.context.metrics.upstream_error("connect");
                return Err(unavailable());
            }
        }
        let implicit = self.context.upstream_tls.as_ref().filter(|tls| tls.mode == UpstreamTlsMode::Implicit);
        let stream = match implicit {
            Some(tls) => match self.upstream_handshake(tls, socket).await {
                Some(stream) => stream,
                None => return Err(unavailable()),
            },
            None => Stream::Plain(socket),
        };
        let mut connection = Connection::new(stream).with_write_timeout(limits.upstream_timeout);
        let greeting = match connection.read_reply(limits.upstream_timeout).await {
            Ok(greeting) => greeting,
            Err(error) => {
                self.context.metrics.upstream_error("greeting");
                tracing::warn!(session = %self.id, upstream = %target, error = %error, "upstream MTA sent no greeting");
                return Err(unavailable());
            }
        };
        if greeting.code() != 220 {
            // The MTA refuses service (e.g. 554 or 421): pass its verdict on.
            tracing::info!(session = %self.id, reply = %greeting, "upstream MTA refused the session at greeting");
            return Err(if greeting.is_permanent_failure() {
                End::with(Outcome::UpstreamUnavailable, 554, "5.3.2 Mail service not available")
            } else {
                End::with(
                    Outcome::UpstreamUnavailable,
                    421,
                    "4.3.2 Mail service temporarily unavailable; try again later",
                )
            });
        }
        let starttls = self.context.upstream_tls.as_ref().filter(|tls| tls.mode == UpstreamTlsMode::StartTls);
        if let Some(tls) = starttls {
            connection = match self.upstream_starttls(tls, connection).await {
                Some(connection) => connection,
                None => return Err(unavailable()),
            };
        }
        self.upstream = Some(Upstream { connection, identified: false, capabilities: Capabilities::default() });
        Ok(())
    }

    async fn upstream_handshake(&self, tls: &UpstreamTls, socket: TcpStream) -> Option<Stream> {
        let timeout = self.settings().limits.upstream_timeout;
        match tokio::time::timeout(timeout, tls.connector.connect(tls.server_name.clone(), socket)).await {
            Ok(Ok(stream)) => Some(Stream::ClientTls(Box::new(stream))),
            failure => {
                let reason = match failure {
                    Ok(Err(error)) => error.to_string(),
                    _ => "timed out".into(),
                };
                self.context.metrics.upstream_error("tls");
                tracing::error!(session = %self.id, upstream = %self.settings().upstream, reason = %reason, "TLS handshake with the upstream MTA failed");
                None
            }
        }
    }

    /// EHLO, STARTTLS and the handshake with the upstream.
    async fn upstream_starttls(&self, tls: &UpstreamTls, mut connection: Connection) -> Option<Connection> {
        let timeout = self.settings().limits.upstream_timeout;
        connection.queue(format!("EHLO {}\r\n", self.settings().hostname).as_bytes());
        connection.flush().await.ok()?;
        let ehlo = connection.read_reply(timeout).await.ok()?;
        if !Capabilities::from_ehlo(&ehlo).has("STARTTLS") {
            self.context.metrics.upstream_error("tls");
            tracing::error!(session = %self.id, upstream = %self.settings().upstream, "upstream_tls = \"starttls\" but the upstream MTA does not offer STARTTLS");
            return None;
        }
        connection.queue(b"STARTTLS\r\n");
        connection.flush().await.ok()?;
        let reply = connection.read_reply(timeout).await.ok()?;
        if reply.code() != 220 {
            self.context.metrics.upstream_error("tls");
            tracing::error!(session = %self.id, reply = %reply, "the upstream MTA refused STARTTLS");
            return None;
        }
        let (stream, _) = connection.into_parts();
        let Stream::Plain(socket) = stream else { return None };
        let timeout = self.settings().limits.upstream_timeout;
        self.upstream_handshake(tls, socket).await.map(|stream| Connection::new(stream).with_write_timeout(timeout))
    }

    /// Makes sure an upstream session exists and knows who the client is:
    /// reconnects after an aborted transaction, sends XCLIENT, and replays
    /// the client's EHLO on a fresh connection.
    async fn ready_upstream(&mut self) -> Result<&mut Upstream, End> {
        if self.upstream.is_none() {
            if self.authenticated {
                // A new upstream session would not carry the client's AUTH.
                return Err(End::with(
                    Outcome::UpstreamLost,
                    421,
                    "4.3.0 Session reset after a refused message; please reconnect",
                ));
            }
            self.open_upstream().await?;
            if let Some(hello) = self.hello.as_ref().map(|h| h.line.clone()) {
                self.identify_upstream().await?;
                let reply = self.exchange_ready(&hello).await?;
                if let Some(upstream) = &mut self.upstream {
                    upstream.capabilities = Capabilities::from_ehlo(&reply);
                }
            }
        }
        self.identify_upstream().await?;
        Ok(self.upstream.as_mut().expect("opened above"))
    }

    /// XCLIENT: tells Postfix the real client, so its relay and anti-spam
    /// rules judge the client and not the proxy's loopback address.
    async fn identify_upstream(&mut self) -> Step {
        if self.settings().client_identity != ClientIdentity::Xclient {
            return Ok(());
        }
        let context = Arc::clone(&self.context);
        let settings = &context.settings;
        let timeout = settings.limits.upstream_timeout;
        let helo = self.hello.as_ref().map(|h| (h.domain.clone(), h.extended));
        let (peer, id) = (self.peer, self.id.clone());
        let upstream = self.upstream.as_mut().expect("identify after open");
        if upstream.identified {
            return Ok(());
        }
        let connection = &mut upstream.connection;
        let lost = |error: ReadError| End::upstream_lost(&error);
        let refuse = || {
            End::with(
                Outcome::UpstreamRefusedIdentity,
                421,
                "4.3.5 Mail service temporarily unavailable; try again later",
            )
        };
        let mut name = None;
        // With the upstream's XCLIENT attributes known from an earlier
        // session, XCLIENT goes first and saves an EHLO round trip; if the
        // upstream then refuses, learn them again once.
        for attempt in 0..2 {
            let known = context.xclient_attributes.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let (attributes, cached) = match known {
                Some(attributes) if attempt == 0 => (attributes, true),
                _ => {
                    connection.queue(format!("EHLO {}\r\n", settings.hostname).as_bytes());
                    connection.flush().await.map_err(|e| lost(e.into()))?;
                    let ehlo = connection.read_reply(timeout).await.map_err(lost)?;
                    let Some(attributes) =
                        Capabilities::from_ehlo(&ehlo).arguments("XCLIENT").filter(|_| ehlo.code() == 250)
                    else {
                        warn_once_identity();
                        tracing::error!(
                            session = %id,
                            "the upstream MTA does not offer XCLIENT to the proxy, so it cannot learn the real client; \
                             refusing the session. Fix: add the proxy's address to smtpd_authorized_xclient_hosts in Postfix's \
                             main.cf, or set client_identity = \"proxy-v2\" or \"none\" for this listener"
                        );
                        return Err(refuse());
                    };
                    *context.xclient_attributes.lock().unwrap_or_else(|e| e.into_inner()) = Some(attributes.clone());
                    (attributes, false)
                }
            };
            let supports = |attribute: &str| attributes.iter().any(|a| a.eq_ignore_ascii_case(attribute));
            let mut line = format!("XCLIENT ADDR={}", xclient_address(peer.ip()));
            if supports("PORT") {
                line.push_str(&format!(" PORT={}", peer.port()));
            }
            if supports("NAME") || supports("REVERSE_NAME") {
                if name.is_none() {
                    name = Some(if settings.client_name_lookup {
                        client_name(peer.ip()).await
                    } else {
                        ClientName::unavailable()
                    });
                }
                let name = name.as_ref().expect("looked up above");
                if supports("NAME") {
                    line.push_str(&format!(" NAME={}", xtext_encode(&name.verified)));
                }
                if supports("REVERSE_NAME") {
                    line.push_str(&format!(" REVERSE_NAME={}", xtext_encode(&name.reverse)));
                }
            }
            if let Some((domain, extended)) = &helo {
                if supports("HELO") {
                    line.push_str(&format!(" HELO={}", xtext_encode(domain)));
                }
                if supports("PROTO") {
                    line.push_str(if *extended { " PROTO=ESMTP" } else { " PROTO=SMTP" });
                }
            }
            line.push_str("\r\n");
            connection.queue(line.as_bytes());
            connection.flush().await.map_err(|e| lost(e.into()))?;
            let reply = connection.read_reply(timeout).await.map_err(lost)?;
            if reply.is_positive() {
                upstream.identified = true;
                return Ok(());
            }
            if !cached {
                tracing::error!(
                    session = %id,
                    reply = %reply,
                    "the upstream MTA refused XCLIENT; fix: add the proxy's address to smtpd_authorized_xclient_hosts"
                );
                return Err(refuse());
            }
            *context.xclient_attributes.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        Err(refuse())
    }

    /// Sends one command upstream and returns the reply.
    async fn exchange(&mut self, line: &[u8]) -> Result<Reply, End> {
        self.ready_upstream().await?;
        self.exchange_ready(line).await
    }

    /// [`Self::exchange`] on an upstream that is already open and identified.
    async fn exchange_ready(&mut self, line: &[u8]) -> Result<Reply, End> {
        let timeout = self.settings().limits.upstream_timeout;
        let upstream = self.upstream.as_mut().expect("exchange_ready needs an open upstream");
        let connection = &mut upstream.connection;
        let result = match connection.write_line(line).await {
            Ok(()) => connection.read_reply(timeout).await,
            Err(error) => Err(error.into()),
        };
        result.map_err(|error| {
            self.context.metrics.upstream_error(match error {
                ReadError::Garbage(_) => "garbage",
                ReadError::Timeout => "timeout",
                _ => "closed",
            });
            self.upstream = None;
            End::upstream_lost(&error)
        })
    }

    /// Relays a command unchanged and its reply; returns the time spent upstream.
    async fn relay(&mut self, line: &[u8]) -> Result<(Reply, std::time::Duration), End> {
        let started = Instant::now();
        let reply = self.exchange(line).await?;
        Ok((reply, started.elapsed()))
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

    fn client_tls(&self) -> bool {
        self.client.stream().is_tls()
    }

    async fn starttls(&mut self) -> Result<std::time::Duration, End> {
        let context = Arc::clone(&self.context);
        let Some(tls) = context.server_tls.as_ref().filter(|tls| tls.mode == TlsMode::StartTls) else {
            self.reply(Reply::new(502, "5.5.1 STARTTLS is not offered on this listener"))?;
            return Ok(Default::default());
        };
        if self.client_tls() {
            self.reply(Reply::new(503, "5.5.1 TLS is already active"))?;
            return Ok(Default::default());
        }
        self.client.queue_reply(&Reply::new(220, "2.0.0 Ready to start TLS"));
        if self.client.flush().await.is_err() {
            return Err(End { outcome: Outcome::ClientClosed, reply: None });
        }
        let Stream::Plain(socket) = self.client.take_stream() else {
            unreachable!("only a plain connection upgrades");
        };
        match handshake(tls, socket, &context.metrics, &self.id, self.peer).await {
            Some(stream) => self.client.set_stream(stream),
            None => {
                return Err(End { outcome: Outcome::TlsFailed, reply: None });
            }
        }
        // RFC 3207 §4.2: forget everything learnt before TLS.
        self.hello = None;
        self.transaction = None;
        if self.settings().client_identity == ClientIdentity::ProxyV2
            && let Some(mut upstream) = self.upstream.take()
        {
            // A fresh upstream session whose PROXY header says the client uses TLS.
            upstream.connection.queue(b"QUIT\r\n");
            let _ = upstream.connection.flush().await;
        }
        Ok(Default::default())
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

    async fn hello(&mut self, extended: bool, domain: String, line: &[u8]) -> Result<std::time::Duration, End> {
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

    async fn mail(
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
            match self.policy().outbound_sender(&path, today()) {
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

    async fn rcpt(
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
            let unverified =
                path.mailbox().is_some_and(|mailbox| self.context.policy.settings().is_unverified(mailbox));
            let judged_by_content = match decision.verdict {
                _ if matches!(class, Class::Deferred(Deferred::Inspect)) => true,
                // Automatic replies come from regular senders.
                Verdict::NotBounce => !unverified,
                // Monitor mode reads untagged bounces too, to log what enforcing would do.
                Verdict::Missing => decision.rule == "monitor",
                _ => false,
            };
            if judged_by_content && let Some(mailbox) = path.mailbox() {
                transaction.inspect_domains.push(mailbox.domain().clone());
            }
        }
        self.reply(reply)?;
        Ok(spent)
    }

    async fn data(&mut self) -> Result<std::time::Duration, End> {
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
        self.client.queue_reply(&reply);
        let flushed = self.client.flush().await;
        if flushed.is_err() {
            return Err(End { outcome: Outcome::ClientClosed, reply: None });
        }
        let received = (self.settings().client_identity == ClientIdentity::None).then(|| self.received_header());
        let upstream = self.upstream.as_mut().expect("relay leaves an upstream");
        if let Some(received) = received {
            // The MTA sees only the proxy: this trace field names the client.
            upstream.connection.queue(received.as_bytes());
        }
        if let Some(value) = header {
            upstream.connection.queue(format!("X-Batv-Status: {value}\r\n").as_bytes());
        }
        self.stream_message(plan).await?;
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
    async fn stream_message(&mut self, plan: Capture) -> Step {
        let limits = self.settings().limits.clone();
        let mut scanner = DataScanner::new();
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

    /// Relays a SASL exchange verbatim; its lines are never logged.
    async fn auth(&mut self, line: &[u8]) -> Result<std::time::Duration, End> {
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
            self.client.queue_reply(&reply);
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

/// A TLS handshake with a client, bounded in time; failures are counted
/// and logged with their reason.
async fn handshake(
    tls: &ServerTls,
    socket: TcpStream,
    metrics: &ListenerMetrics,
    id: &str,
    peer: SocketAddr,
) -> Option<Stream> {
    match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(socket)).await {
        Ok(Ok(stream)) => {
            metrics.tls_handshake("ok");
            let (_, connection) = stream.get_ref();
            tracing::debug!(
                session = %id,
                client = %peer.ip(),
                version = ?connection.protocol_version(),
                sni = connection.server_name().unwrap_or(""),
                "TLS established"
            );
            Some(Stream::ServerTls(Box::new(stream)))
        }
        Ok(Err(error)) => {
            metrics.tls_handshake("failed");
            tracing::info!(session = %id, client = %peer.ip(), reason = %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.tls_handshake("timeout");
            tracing::info!(session = %id, client = %peer.ip(), reason = "timeout", "TLS handshake failed");
            None
        }
    }
}

/// The TLS version of the client's connection, for the PROXY v2 header.
fn client_tls_version(stream: &Stream) -> Option<&'static str> {
    match stream {
        Stream::ServerTls(tls) => match tls.get_ref().1.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
            Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
            _ => Some("TLS"),
        },
        _ => None,
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

fn warn_once_identity() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::error!("client identity: XCLIENT is configured but the upstream does not offer it");
    }
}

fn line_error_label(error: LineError) -> &'static str {
    match error {
        LineError::TooLong => "line_too_long",
        LineError::BareLf => Violation::BareLf.as_str(),
        LineError::BareCr => Violation::BareCr.as_str(),
    }
}

/// The client's host names as Postfix's XCLIENT wants them.
struct ClientName {
    /// Forward-confirmed (the name resolves back to the address), or a
    /// `[UNAVAILABLE]` / `[TEMPUNAVAIL]` placeholder.
    verified: String,
    /// What the PTR record says, unconfirmed.
    reverse: String,
}

impl ClientName {
    fn unavailable() -> Self {
        ClientName { verified: "[UNAVAILABLE]".into(), reverse: "[UNAVAILABLE]".into() }
    }
}

const NAME_LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reverse lookup, then forward confirmation, as Postfix's smtpd does
/// when it sees the client itself; through the system resolver.
async fn client_name(ip: IpAddr) -> ClientName {
    let lookup = tokio::task::spawn_blocking(move || {
        let temporary = |error: &dns_lookup::LookupError| matches!(error.kind(), dns_lookup::LookupErrorKind::Again);
        let reverse = match dns_lookup::lookup_addr(&ip) {
            Ok(name) => name,
            Err(error) if temporary(&error) => {
                return ClientName { verified: "[TEMPUNAVAIL]".into(), reverse: "[TEMPUNAVAIL]".into() };
            }
            Err(_) => return ClientName::unavailable(),
        };
        let verified = match dns_lookup::lookup_host(&reverse) {
            Ok(addresses) => {
                let confirmed = addresses.into_iter().any(|address| address == ip);
                if confirmed { reverse.clone() } else { "[UNAVAILABLE]".into() }
            }
            Err(error) if temporary(&error) => "[TEMPUNAVAIL]".into(),
            Err(_) => "[UNAVAILABLE]".into(),
        };
        ClientName { verified, reverse }
    });
    match tokio::time::timeout(NAME_LOOKUP_TIMEOUT, lookup).await {
        Ok(Ok(name)) => name,
        _ => ClientName { verified: "[TEMPUNAVAIL]".into(), reverse: "[TEMPUNAVAIL]".into() },
    }
}

/// Postfix's XCLIENT syntax for an address: IPv6 carries a prefix.
fn xclient_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPV6:{v6}"),
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

/// A PROXY protocol v2 header (haproxy's proxy-protocol.txt §2.2) for a
/// TCP connection from `source` to `destination`.
pub fn proxy_v2_header(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
    let mut header = SIGNATURE.to_vec();
    header.push(0x21); // version 2, PROXY command
    match (source, destination) {
        (SocketAddr::V4(source), SocketAddr::V4(destination)) => {
            header.push(0x11); // TCP over IPv4
            header.extend_from_slice(&(12 + tlvs.len() as u16).to_be_bytes());
            header.extend_from_slice(&source.ip().octets());
            header.extend_from_slice(&destination.ip().octets());
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
        }
        _ => {
            let v6 = |address: SocketAddr| match address.ip() {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            header.push(0x21); // TCP over IPv6
            header.extend_from_slice(&(36 + tlvs.len() as u16).to_be_bytes());
            header.extend_from_slice(&v6(source).octets());
            header.extend_from_slice(&v6(destination).octets());
            header.extend_from_slice(&source.port().to_be_bytes());
            header.extend_from_slice(&destination.port().to_be_bytes());
        }
    }
    header.extend_from_slice(tlvs);
    header
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
    fn proxy_header_layout() {
        let header = proxy_v2_header("192.0.2.7:4567".parse().unwrap(), "198.51.100.1:25".parse().unwrap(), &[]);
        assert_eq!(header.len(), 16 + 12);
        assert_eq!(&header[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&header[16..20], &[192, 0, 2, 7]);
        assert_eq!(&header[24..26], &4567u16.to_be_bytes());
        let v6 = proxy_v2_header("[2001:db8::1]:1000".parse().unwrap(), "[2001:db8::2]:25".parse().unwrap(), &[]);
        assert_eq!(v6.len(), 16 + 36);
        assert_eq!(v6[13], 0x21);
        let with_tls =
            proxy_v2_header("192.0.2.7:4567".parse().unwrap(), "198.51.100.1:25".parse().unwrap(), &[0x20, 0, 0]);
        assert_eq!(&with_tls[14..16], &15u16.to_be_bytes());
        assert_eq!(&with_tls[28..], &[0x20, 0, 0]);
    }
}
