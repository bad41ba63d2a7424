//! TLS towards the client: STARTTLS and implicit handshakes.

use super::*;

impl Session {
    pub(super) fn client_tls(&self) -> bool {
        self.client.stream().is_tls()
    }

    pub(super) async fn starttls(&mut self) -> Result<std::time::Duration, End> {
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
        } else if self.upstream.is_some() {
            // The upstream session goes on: nothing the client began in
            // clear text (a MAIL, recipients) may survive into TLS there.
            let started = Instant::now();
            let reply = self.exchange(b"RSET\r\n").await?;
            if !reply.is_positive() {
                tracing::warn!(session = %self.id, reply = %reply, "the upstream refused RSET after STARTTLS");
                return Err(End::with(
                    Outcome::UpstreamLost,
                    421,
                    "4.3.0 Mail service temporarily unavailable; try again later",
                ));
            }
            return Ok(started.elapsed());
        }
        Ok(Default::default())
    }
}

/// A TLS handshake with a client, bounded in time; failures are counted
/// and logged with their reason.
pub(super) async fn handshake(
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
pub(super) fn client_tls_version(stream: &Stream) -> Option<&'static str> {
    match stream {
        Stream::ServerTls(tls) => match tls.get_ref().1.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
            Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
            _ => Some("TLS"),
        },
        _ => None,
    }
}
