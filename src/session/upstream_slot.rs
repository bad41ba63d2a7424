//! The session's hold on its upstream session. The proxy drops it on
//! purpose when the MTA must discard a transaction (a refused or broken
//! message never gets its final dot) or must learn something only a new
//! session carries (the client's TLS, in a PROXY header); the next command
//! that needs the MTA then opens a new one and replays the client's EHLO.

use std::future::pending;
use std::sync::Arc;
use std::time::Duration;

use super::End;
use crate::connection::Transport;
use crate::labels::SessionOutcome;
use crate::labels::label_enum;
use crate::listener::ListenerContext;
use crate::upstream::{Client, UpstreamClient};

label_enum! {
    /// Why the proxy dropped an upstream session on purpose.
    pub(super) enum DropReason {
        /// The proxy refused the message: the MTA must never see its end.
        RefusedMessage => "refused_message",
        /// The message broke a rule while streaming (bare CR/LF, NUL, size).
        BrokenMessage => "broken_message",
        /// The client started TLS; a PROXY v2 header must say so.
        ClientTls => "client_tls",
    }
}

pub(super) struct UpstreamSlot<S: Transport> {
    open: Option<UpstreamClient<S>>,
    /// Why the last session was dropped, for the log line of the next.
    dropped: Option<DropReason>,
    /// Time waited on sessions since dropped, not yet taken.
    waited: Duration,
}

impl<S: Transport> UpstreamSlot<S> {
    pub(super) fn new() -> Self {
        UpstreamSlot { open: None, dropped: None, waited: Duration::ZERO }
    }

    pub(super) fn install(&mut self, client: UpstreamClient<S>) -> &mut UpstreamClient<S> {
        self.dropped = None;
        self.open.insert(client)
    }

    pub(super) fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The open session.
    pub(super) fn client(&mut self) -> Result<&mut UpstreamClient<S>, End> {
        self.open.as_mut().ok_or_else(|| {
            End::with(
                SessionOutcome::UpstreamLost,
                421,
                "4.4.2 Upstream mail server closed the connection; try again later",
            )
        })
    }

    /// Opens a new session after a drop: connect, identify, and replay
    /// the client's HELO/EHLO so the MTA is where the client thinks it is.
    pub(super) async fn reopen(
        &mut self,
        context: &Arc<ListenerContext<S>>,
        identity: Client<'_>,
        hello: Option<&[u8]>,
    ) -> Result<&mut UpstreamClient<S>, End> {
        tracing::debug!(
            session = identity.session,
            after = self.dropped.map(DropReason::as_str).unwrap_or(""),
            "opening a new upstream session"
        );
        let mut client = Box::pin(UpstreamClient::connect(context, identity)).await?;
        client.identify(identity).await?;
        if let Some(line) = hello {
            client.hello(line).await?;
        }
        Ok(self.install(client))
    }

    /// Drops the session on purpose; see the module comment.
    pub(super) fn drop_session(&mut self, reason: DropReason, session: &str) {
        if let Some(mut client) = self.open.take() {
            self.waited += client.take_waited();
            tracing::debug!(session, reason = reason.as_str(), "upstream session dropped");
        }
        self.dropped = Some(reason);
    }

    /// Closes whatever is open, at the end of the client's session.
    pub(super) fn close(&mut self) {
        self.open = None;
    }

    /// Time spent waiting for the MTA since the last call.
    pub(super) fn take_waited(&mut self) -> Duration {
        let open = self.open.as_mut().map_or(Duration::ZERO, UpstreamClient::take_waited);
        std::mem::take(&mut self.waited) + open
    }

    pub(super) fn release_idle_buffers(&mut self) {
        if let Some(client) = &mut self.open {
            client.release_idle_buffers();
        }
    }

    /// Resolves when an idle upstream speaks or closes; never without one.
    pub(super) async fn idle_activity(&mut self) {
        match &mut self.open {
            Some(client) => client.idle_activity().await,
            None => pending().await,
        }
    }

    pub(super) async fn quit(&mut self) {
        if let Some(client) = &mut self.open {
            client.quit().await;
        }
    }
}
