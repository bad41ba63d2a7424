//! `[server]` and `[metrics]`: settings of the process as a whole.

use std::net::SocketAddr;
use std::time::Duration;

use super::section::Section;
use super::values::{duration, number, socket_address};

/// After SIGTERM: long enough for a message in progress at a normal pace.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct ServerSettings {
    pub drain_timeout: Duration,
    /// `None`: one per CPU.
    pub worker_threads: Option<usize>,
}

pub(super) fn read_server(server: &mut Section) -> ServerSettings {
    ServerSettings {
        drain_timeout: server.get_or("drain_timeout", DEFAULT_DRAIN_TIMEOUT, duration),
        worker_threads: server.get("worker_threads", number(1..=1024)),
    }
}

/// Where `/metrics`, `/healthz` and `/verdicts` are served (`None`:
/// nowhere), and how many recent verdicts are kept for `/verdicts`.
pub(super) fn read_metrics(metrics: &mut Section) -> (Option<SocketAddr>, usize) {
    (
        metrics.get("listen", socket_address("listen = \"127.0.0.1:9325\"")),
        metrics.get_or("verdicts", crate::verdicts::DEFAULT_CAPACITY, number(0..=1_000_000)),
    )
}
