//! TLS towards the client: STARTTLS and implicit handshakes.

use std::net::SocketAddr;

use super::upstream_slot::DropReason;
use super::{End, Session, Step};
use crate::config::{ClientIdentity, TlsMode};
use crate::connection::{Stream, Transport};
use crate::labels::{SessionOutcome, TlsHandshake};
use crate::metrics::ListenerMetrics;
use crate::smtp::reply::Reply;
use crate::tls::ServerTls;

impl<S: Transport> Session<S> {
    pub(super) fn client_tls(&self) -> bool {
        self.client.stream().is_tls()
    }

    pub(super) async fn starttls(&mut self) -> Step {
        let context = std::sync::Arc::clone(&self.context);
        let Some(tls) = context.server_tls.as_ref().filter(|tls| tls.mode == TlsMode::StartTls) else {
            return self.reply(Reply::new(502, "5.5.1 STARTTLS is not offered on this listener"));
        };
        if self.client_tls() {
            return self.reply(Reply::new(503, "5.5.1 TLS is already active"));
        }
        self.client.queue_reply(&Reply::new(220, "2.0.0 Ready to start TLS"));
        if self.client.flush().await.is_err() {
            return Err(End::client_closed());
        }
        let Stream::Plain(socket) = self.client.replace_stream(Stream::Closed) else {
            return Err(End::silently(SessionOutcome::TlsFailed));
        };
        let Some(stream) = handshake(tls, socket, &context.metrics, &self.id, self.endpoints.peer).await else {
            return Err(End::silently(SessionOutcome::TlsFailed));
        };
        self.client.replace_stream(stream);
        // RFC 3207 §4.2: forget everything learnt before TLS.
        self.hello = None;
        self.end_transaction();
        if self.settings().client_identity == ClientIdentity::ProxyV2 {
            // A fresh upstream session whose PROXY header says the client uses TLS.
            self.upstream.quit().await;
            self.drop_upstream(DropReason::ClientTls);
        } else if self.upstream.is_open() {
            // The upstream session goes on: nothing the client began in
            // clear text (a MAIL, recipients) may survive into TLS there.
            let reply = self.exchange(b"RSET\r\n").await?;
            if !reply.is_positive() {
                tracing::warn!(session = %self.id, reply = %reply, "the upstream refused RSET after STARTTLS");
                return Err(End::with(
                    SessionOutcome::UpstreamLost,
                    421,
                    "4.3.0 Mail service temporarily unavailable; try again later",
                ));
            }
        }
        Ok(())
    }
}

/// A TLS handshake with a client, bounded in time; failures are counted
/// and logged with their reason.
pub(super) async fn handshake<S: Transport>(
    tls: &ServerTls,
    socket: S,
    metrics: &ListenerMetrics,
    id: &str,
    peer: SocketAddr,
) -> Option<Stream<S>> {
    match tokio::time::timeout(tls.handshake_timeout, tls.acceptor.accept(socket)).await {
        Ok(Ok(stream)) => {
            metrics.tls_handshake(TlsHandshake::Ok);
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
            metrics.tls_handshake(TlsHandshake::Failed);
            tracing::info!(session = %id, client = %peer.ip(), reason = %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.tls_handshake(TlsHandshake::Timeout);
            tracing::info!(session = %id, client = %peer.ip(), reason = "timeout", "TLS handshake failed");
            None
        }
    }
}

/// The TLS version of the client's connection, for the PROXY v2 header.
pub(super) fn client_tls_version<S>(stream: &Stream<S>) -> Option<&'static str> {
    match stream {
        Stream::ServerTls(tls) => match tls.get_ref().1.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => Some("TLSv1.3"),
            Some(rustls::ProtocolVersion::TLSv1_2) => Some("TLSv1.2"),
            _ => Some("TLS"),
        },
        _ => None,
    }
}
