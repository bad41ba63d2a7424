//! The upstream side of a session: connecting, TLS, telling the MTA who the
//! client is (PROXY v2 or XCLIENT), and command round trips.

use super::*;

impl Session {
    /// Connects to the upstream, announces the client (PROXY v2) and reads
    /// its greeting.
    pub(super) async fn open_upstream(&mut self) -> Step {
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
    pub(super) async fn exchange(&mut self, line: &[u8]) -> Result<Reply, End> {
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
    pub(super) async fn relay(&mut self, line: &[u8]) -> Result<(Reply, std::time::Duration), End> {
        let started = Instant::now();
        let reply = self.exchange(line).await?;
        Ok((reply, started.elapsed()))
    }
}

fn warn_once_identity() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::error!("client identity: XCLIENT is configured but the upstream does not offer it");
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
