//! What every session of one listener shares, replaced as a whole on
//! reload, and the two things injected into it: how to reach the upstream
//! (a TCP dialler, or an in-memory one in the protocol tests) and the
//! clock that dates tags.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpStream;

use crate::batv::Day;
use crate::config::ListenerSettings;
use crate::ledger::Ledger;
use crate::metrics::ListenerMetrics;
use crate::policy::Policy;
use crate::tls::{ServerTls, UpstreamTls};
use crate::verdicts::VerdictLog;

/// Opens a byte stream to the upstream MTA.
pub trait Dial<S>: Send + Sync {
    fn dial<'a>(&'a self, target: &'a str) -> Pin<Box<dyn Future<Output = io::Result<S>> + Send + 'a>>;
}

/// Dials `host:port` over TCP, with Nagle off: SMTP is a dialogue of short lines.
pub struct TcpDialler;

impl Dial<TcpStream> for TcpDialler {
    fn dial<'a>(&'a self, target: &'a str) -> Pin<Box<dyn Future<Output = io::Result<TcpStream>> + Send + 'a>> {
        Box::pin(async move {
            let socket = TcpStream::connect(target).await?;
            let _ = socket.set_nodelay(true);
            Ok(socket)
        })
    }
}

/// The time tags are dated by: UTC days everywhere.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;

    fn today(&self) -> Day {
        let seconds = self.now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        Day::from_days_since_epoch((seconds / 86_400) as u32)
    }
}

pub struct SystemClock;

/// Today in UTC, by the system clock.
pub fn today() -> Day {
    SystemClock.today()
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock stopped at one instant, for tests and for `--date`.
pub struct FixedClock(pub SystemTime);

impl FixedClock {
    pub fn on(day: Day) -> Self {
        FixedClock(UNIX_EPOCH + Duration::from_secs(u64::from(day.days_since_epoch()) * 86_400 + 43_200))
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

/// Everything a session needs from its listener. `S` is the byte stream
/// sessions run over.
pub struct ListenerContext<S> {
    pub settings: ListenerSettings,
    pub policy: Policy,
    pub metrics: ListenerMetrics,
    pub server_tls: Option<ServerTls>,
    pub upstream_tls: Option<UpstreamTls>,
    /// Shared by every listener: outbound ones record, inbound ones look up.
    pub ledger: Arc<Ledger>,
    /// The XCLIENT attributes the upstream offered in an earlier session.
    pub xclient_attributes: Mutex<Option<Vec<String>>>,
    pub dialler: Arc<dyn Dial<S>>,
    pub clock: Arc<dyn Clock>,
    /// Where each transaction's verdicts go (the ring behind `/verdicts`).
    pub verdicts: Arc<VerdictLog>,
}
