//! The upstream side of a session: an SMTP client of the MTA. It connects
//! (PROXY v2 header, TLS, greeting), tells the MTA who the real client is
//! (XCLIENT), runs commands and carries the message, and keeps the time
//! spent waiting on the MTA, so the session can tell what it adds itself.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::{ClientIdentity, UpstreamTlsMode};
use crate::connection::{Connection, ReadError, Stream, Transport};
use crate::listener::ListenerContext;
use crate::metrics::UpstreamError;
use crate::proxy_protocol;
use crate::resolve::{ClientName, client_name};
use crate::smtp::capabilities::Capabilities;
use crate::smtp::command::xtext_encode;
use crate::smtp::reply::Reply;
use crate::tls::UpstreamTls;

/// How long a QUIT may take before the connection is simply closed.
const QUIT_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle upstream is not watched before this: a busy client's next
/// command usually comes first, and not polling the upstream in between
/// saves a read system call per command.
const IDLE_WATCH_DELAY: Duration = Duration::from_millis(500);

/// Why there is no upstream session to go on with.
#[derive(Debug)]
pub enum UpstreamFailure {
    /// No connection, greeting or TLS.
    Unavailable,
    /// The MTA refused the session in its greeting.
    Refused { permanent: bool },
    /// The MTA refused to learn who the client is (XCLIENT).
    RefusedIdentity,
    /// The session broke: closed, timed out, or nonsense.
    Lost(ReadError),
}

/// Who the client is, as the MTA must learn it.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub peer: SocketAddr,
    /// The address the client connected to (for the PROXY header).
    pub local: SocketAddr,
    /// The client's TLS version, if it uses TLS.
    pub tls_version: Option<&'static str>,
    /// The client's HELO/EHLO domain and whether it said EHLO.
    pub hello: Option<(&'a str, bool)>,
    /// The session id, for log lines.
    pub session: &'a str,
}

pub struct UpstreamClient<S: Transport> {
    context: Arc<ListenerContext<S>>,
    connection: Connection<Stream<S>>,
    capabilities: Capabilities,
    /// XCLIENT already told the MTA who the client is.
    identified: bool,
    /// Time spent waiting for the MTA since [`Self::take_waited`].
    waited: Duration,
}

impl<S: Transport> UpstreamClient<S> {
    /// Opens a session with the MTA: dial, PROXY v2 header, TLS, greeting.
    pub async fn connect(context: &Arc<ListenerContext<S>>, client: Client<'_>) -> Result<Self, UpstreamFailure> {
        let settings = &context.settings;
        let limits = &settings.limits;
        let target = settings.upstream.as_str();
        let unavailable = |kind: UpstreamError, reason: &str| {
            context.metrics.upstream_error(kind);
            if kind == UpstreamError::Greeting {
                tracing::warn!(
                    session = client.session,
                    upstream = target,
                    error = reason,
                    "upstream MTA sent no greeting"
                );
            } else {
                tracing::warn!(
                    session = client.session,
                    upstream = target,
                    error = reason,
                    "cannot connect to the upstream MTA"
                );
            }
            UpstreamFailure::Unavailable
        };
        let mut socket = match tokio::time::timeout(limits.upstream_connect_timeout, context.dialler.dial(target)).await
        {
            Ok(Ok(socket)) => socket,
            Ok(Err(error)) => return Err(unavailable(UpstreamError::Connect, &error.to_string())),
            Err(_) => return Err(unavailable(UpstreamError::Connect, "timed out")),
        };
        if settings.client_identity == ClientIdentity::ProxyV2 {
            let tlvs = client.tls_version.map(proxy_protocol::ssl_tlv).unwrap_or_default();
            let header = proxy_protocol::header(client.peer, client.local, &tlvs);
            if let Err(error) = tokio::io::AsyncWriteExt::write_all(&mut socket, &header).await {
                return Err(unavailable(UpstreamError::Connect, &error.to_string()));
            }
        }
        let started = Instant::now();
        let tls = context.upstream_tls.as_ref();
        let stream = match tls.filter(|tls| tls.mode == UpstreamTlsMode::Implicit) {
            Some(tls) => handshake(context, tls, socket, client.session).await?,
            None => Stream::Plain(socket),
        };
        let mut connection = Connection::new(stream).with_write_timeout(limits.upstream_timeout);
        let greeting = match connection.read_reply(limits.upstream_timeout).await {
            Ok(greeting) => greeting,
            Err(error) => return Err(unavailable(UpstreamError::Greeting, &error.to_string())),
        };
        if greeting.code() != 220 {
            tracing::info!(session = client.session, reply = %greeting, "upstream MTA refused the session at greeting");
            return Err(UpstreamFailure::Refused { permanent: greeting.is_permanent_failure() });
        }
        if let Some(tls) = tls.filter(|tls| tls.mode == UpstreamTlsMode::StartTls) {
            connection = starttls(context, tls, connection, client.session).await?;
        }
        Ok(UpstreamClient {
            context: Arc::clone(context),
            connection,
            capabilities: Capabilities::default(),
            identified: false,
            waited: started.elapsed(),
        })
    }

    /// What the MTA offered in its answer to the client's EHLO.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Time spent waiting for the MTA since the last call.
    pub fn take_waited(&mut self) -> Duration {
        std::mem::take(&mut self.waited)
    }

    /// Relays the client's HELO/EHLO and keeps what the MTA offers.
    pub async fn hello(&mut self, line: &[u8]) -> Result<Reply, UpstreamFailure> {
        let reply = self.command(line).await?;
        if reply.code() == 250 {
            self.capabilities = Capabilities::from_ehlo(&reply);
        }
        Ok(reply)
    }

    /// Sends one command line and reads its reply.
    pub async fn command(&mut self, line: &[u8]) -> Result<Reply, UpstreamFailure> {
        let timeout = self.context.settings.limits.upstream_timeout;
        let started = Instant::now();
        let result = match self.connection.write_line(line).await {
            Ok(()) => self.connection.read_reply(timeout).await,
            Err(error) => Err(error.into()),
        };
        self.waited += started.elapsed();
        result.map_err(|error| self.lost(error))
    }

    fn lost(&self, error: ReadError) -> UpstreamFailure {
        self.context.metrics.upstream_error(match error {
            ReadError::Garbage(_) => UpstreamError::Garbage,
            ReadError::Timeout => UpstreamError::Timeout,
            _ => UpstreamError::Closed,
        });
        UpstreamFailure::Lost(error)
    }

    /// Passes message bytes on.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.connection.has_queued_output() {
            self.connection.queue(bytes);
            self.connection.flush().await
        } else {
            self.connection.write_now(bytes).await
        }
    }

    /// Queues bytes to go with the next write (fields the proxy prepends).
    pub fn queue(&mut self, bytes: &[u8]) {
        self.connection.queue(bytes);
    }

    /// The MTA's reply after the final dot.
    pub async fn final_reply(&mut self) -> Result<Reply, ReadError> {
        let started = Instant::now();
        let reply = self.connection.read_reply(self.context.settings.limits.upstream_data_timeout).await;
        self.waited += started.elapsed();
        reply
    }

    /// Ends the session politely.
    pub async fn quit(&mut self) {
        self.connection.queue(b"QUIT\r\n");
        if self.connection.flush().await.is_ok() {
            let _ = self.connection.read_reply(QUIT_TIMEOUT).await;
        }
    }

    /// Resolves when an idle MTA speaks or closes (an idle timeout: "421
    /// ... timeout exceeded"), after [`IDLE_WATCH_DELAY`].
    pub async fn idle_activity(&mut self) {
        tokio::time::sleep(IDLE_WATCH_DELAY).await;
        let _ = self.connection.fill().await;
    }

    pub fn release_idle_buffers(&mut self) {
        self.connection.release_idle_buffers();
    }

    /// XCLIENT: tells Postfix the real client, so its relay and anti-spam
    /// rules judge the client and not the proxy's loopback address. With
    /// the upstream's XCLIENT attributes known from an earlier session,
    /// XCLIENT goes first and saves an EHLO round trip; if the upstream
    /// then refuses, they are learnt again once.
    pub async fn identify(&mut self, client: Client<'_>) -> Result<(), UpstreamFailure> {
        let context = Arc::clone(&self.context);
        if context.settings.client_identity != ClientIdentity::Xclient || self.identified {
            return Ok(());
        }
        let started = Instant::now();
        let result = self.send_xclient(&context, client).await;
        self.waited += started.elapsed();
        result
    }

    async fn send_xclient(&mut self, context: &ListenerContext<S>, client: Client<'_>) -> Result<(), UpstreamFailure> {
        let settings = &context.settings;
        let timeout = settings.limits.upstream_timeout;
        let mut name = None;
        for attempt in 0..2 {
            let known = context.xclient_attributes.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let (attributes, cached) = match known {
                Some(attributes) if attempt == 0 => (attributes, true),
                _ => {
                    self.connection.queue(format!("EHLO {}\r\n", settings.hostname).as_bytes());
                    self.connection.flush().await.map_err(|e| self.lost(e.into()))?;
                    let ehlo = self.connection.read_reply(timeout).await.map_err(|e| self.lost(e))?;
                    let Some(attributes) =
                        Capabilities::from_ehlo(&ehlo).arguments("XCLIENT").filter(|_| ehlo.code() == 250)
                    else {
                        warn_once_identity(client.session);
                        tracing::error!(
                            session = client.session,
                            "the upstream MTA does not offer XCLIENT to the proxy, so it cannot learn the real client; \
                             refusing the session. Fix: add the proxy's address to smtpd_authorized_xclient_hosts in Postfix's \
                             main.cf, or set client_identity = \"proxy-v2\" or \"none\" for this listener"
                        );
                        return Err(UpstreamFailure::RefusedIdentity);
                    };
                    *context.xclient_attributes.lock().unwrap_or_else(|e| e.into_inner()) = Some(attributes.clone());
                    (attributes, false)
                }
            };
            let supports = |attribute: &str| attributes.iter().any(|a| a.eq_ignore_ascii_case(attribute));
            let mut line = format!("XCLIENT ADDR={}", xclient_address(client.peer.ip()));
            if supports("PORT") {
                line.push_str(&format!(" PORT={}", client.peer.port()));
            }
            if supports("NAME") || supports("REVERSE_NAME") {
                let name: &ClientName = match &mut name {
                    Some(name) => name,
                    None => name.insert(if settings.client_name_lookup {
                        client_name(client.peer.ip()).await
                    } else {
                        ClientName::unavailable()
                    }),
                };
                if supports("NAME") {
                    line.push_str(&format!(" NAME={}", xtext_encode(&name.verified)));
                }
                if supports("REVERSE_NAME") {
                    line.push_str(&format!(" REVERSE_NAME={}", xtext_encode(&name.reverse)));
                }
            }
            if let Some((domain, extended)) = client.hello {
                if supports("HELO") {
                    line.push_str(&format!(" HELO={}", xtext_encode(domain)));
                }
                if supports("PROTO") {
                    line.push_str(if extended { " PROTO=ESMTP" } else { " PROTO=SMTP" });
                }
            }
            line.push_str("\r\n");
            self.connection.queue(line.as_bytes());
            self.connection.flush().await.map_err(|e| self.lost(e.into()))?;
            let reply = self.connection.read_reply(timeout).await.map_err(|e| self.lost(e))?;
            if reply.is_positive() {
                self.identified = true;
                return Ok(());
            }
            if !cached {
                tracing::error!(
                    session = client.session,
                    reply = %reply,
                    "the upstream MTA refused XCLIENT; fix: add the proxy's address to smtpd_authorized_xclient_hosts"
                );
                return Err(UpstreamFailure::RefusedIdentity);
            }
            *context.xclient_attributes.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
        Err(UpstreamFailure::RefusedIdentity)
    }
}

async fn handshake<S: Transport>(
    context: &ListenerContext<S>,
    tls: &UpstreamTls,
    socket: S,
    session: &str,
) -> Result<Stream<S>, UpstreamFailure> {
    let timeout = context.settings.limits.upstream_timeout;
    match tokio::time::timeout(timeout, tls.connector.connect(tls.server_name.clone(), socket)).await {
        Ok(Ok(stream)) => Ok(Stream::ClientTls(Box::new(stream))),
        failure => {
            let reason = match failure {
                Ok(Err(error)) => error.to_string(),
                _ => "timed out".into(),
            };
            context.metrics.upstream_error(UpstreamError::Tls);
            tracing::error!(session, upstream = %context.settings.upstream, reason = %reason, "TLS handshake with the upstream MTA failed");
            Err(UpstreamFailure::Unavailable)
        }
    }
}

/// EHLO, STARTTLS and the handshake with the upstream.
async fn starttls<S: Transport>(
    context: &ListenerContext<S>,
    tls: &UpstreamTls,
    mut connection: Connection<Stream<S>>,
    session: &str,
) -> Result<Connection<Stream<S>>, UpstreamFailure> {
    let settings = &context.settings;
    let timeout = settings.limits.upstream_timeout;
    let refused = |why: &str| {
        context.metrics.upstream_error(UpstreamError::Tls);
        tracing::error!(session, upstream = %settings.upstream, why, "STARTTLS with the upstream MTA failed");
        UpstreamFailure::Unavailable
    };
    connection.queue(format!("EHLO {}\r\n", settings.hostname).as_bytes());
    connection.flush().await.map_err(|_| refused("the connection broke"))?;
    let ehlo = connection.read_reply(timeout).await.map_err(|_| refused("no EHLO reply"))?;
    if !Capabilities::from_ehlo(&ehlo).has("STARTTLS") {
        return Err(refused("upstream_tls = \"starttls\" but the upstream MTA does not offer STARTTLS"));
    }
    connection.queue(b"STARTTLS\r\n");
    connection.flush().await.map_err(|_| refused("the connection broke"))?;
    let reply = connection.read_reply(timeout).await.map_err(|_| refused("no STARTTLS reply"))?;
    if reply.code() != 220 {
        return Err(refused("the upstream MTA refused STARTTLS"));
    }
    let (stream, _) = connection.into_parts();
    let Stream::Plain(socket) = stream else {
        return Err(refused("the connection is already encrypted"));
    };
    let stream = handshake(context, tls, socket, session).await?;
    Ok(Connection::new(stream).with_write_timeout(timeout))
}

/// A one-time summary beside the per-session error lines.
fn warn_once_identity(session: &str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::error!(session, "client identity: XCLIENT is configured but the upstream does not offer it");
    }
}

/// Postfix's XCLIENT syntax for an address: IPv6 carries a prefix.
fn xclient_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("IPV6:{v6}"),
    }
}
