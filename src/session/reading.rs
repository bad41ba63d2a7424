//! Waiting for the client: the next command, or more of a message, each
//! wait bounded, ended at once by a stop of the process, and, for a client
//! that idles between commands, freeing its buffers and watching the
//! upstream for an idle timeout of its own.

use tokio::sync::watch;

use super::{End, Phase, Session};
use crate::connection::{Connection, Incoming, ReadError, Stream, Transport};
use crate::labels::{SessionOutcome, UpstreamError};

/// A client that sends nothing for this long between commands is idle:
/// its buffers are freed (ten thousand idle sessions cost little memory)
/// and the upstream is watched for an idle timeout of its own.
const IDLE_MARK: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads more of what the client sends, for at most `timeout`; a stop
/// of the process ends the wait at once (`421 4.3.2`), so a drain never
/// waits on a stalled client.
pub(super) async fn read_client<S: Transport>(
    client: &mut Connection<Stream<S>>,
    shutdown: &mut watch::Receiver<Phase>,
    timeout: std::time::Duration,
) -> Result<ReadOutcome, End> {
    let outcome = |read: Result<usize, ReadError>| match read {
        Ok(_) => Ok(ReadOutcome::Read),
        Err(ReadError::Timeout) => Ok(ReadOutcome::TimedOut),
        Err(_) => Err(End::client_closed()),
    };
    client.read_deadline_in(timeout);
    loop {
        if *shutdown.borrow_and_update() == Phase::Stopping {
            return Err(End::shutdown());
        }
        tokio::select! {
            read = client.fill_before_deadline() => return outcome(read),
            changed = shutdown.changed() => {
                if changed.is_err() {
                    // No one can stop the process any more: just read.
                    return outcome(client.fill_before_deadline().await);
                }
            }
        }
    }
}

/// What a bounded read of the client came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadOutcome {
    Read,
    TimedOut,
}

impl<S: Transport> Session<S> {
    /// Waits for the next command line; flushes replies first when the
    /// client has nothing more pipelined.
    pub(super) async fn next_command(&mut self) -> Result<Incoming, End> {
        let max = self.settings().limits.max_command_line;
        let timeout = self.settings().limits.command_timeout;
        loop {
            if let Some(incoming) = self.client.take_line(max) {
                return Ok(incoming);
            }
            let phase = *self.shutdown.borrow();
            if phase == Phase::Stopping || (phase == Phase::Draining && self.transaction.is_none()) {
                return Err(End::shutdown());
            }
            if self.client.flush().await.is_err() {
                return Err(End::client_closed());
            }
            self.client.read_deadline_in(timeout);
            // A busy client's next command usually comes before the idle
            // mark; only a client idle past it frees the buffers and has
            // the upstream watched (which costs a read system call).
            self.idle.set_in(IDLE_MARK);
            let mut idle = false;
            loop {
                tokio::select! {
                    read = self.client.fill_before_deadline() => match read {
                        Ok(_) => break,
                        Err(ReadError::Timeout) => {
                            return Err(End::with(
                                SessionOutcome::ClientTimeout,
                                421,
                                "4.4.2 Timeout waiting for a command; closing the connection",
                            ));
                        }
                        Err(_) => return Err(End::client_closed()),
                    },
                    () = self.idle.expired(), if !idle => {
                        idle = true;
                        self.client.release_idle_buffers();
                        self.upstream.release_idle_buffers();
                    }
                    _ = self.upstream.idle_activity(), if idle => {
                        // An idle upstream that speaks is closing (e.g. "421 timeout").
                        self.context.metrics.upstream_error(UpstreamError::ClosedIdle);
                        return Err(End::with(
                            SessionOutcome::UpstreamLost,
                            421,
                            "4.4.2 Upstream mail server closed the connection; try again later",
                        ));
                    }
                    _ = self.shutdown.changed() => break,
                }
            }
        }
    }
}
