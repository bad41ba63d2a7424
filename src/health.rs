//! `/healthz`: whether every upstream MTA greets. A probe opens a session
//! with each upstream, so its answer is shared: requests within
//! [`FRESH_FOR`] get the last one, and one probe runs at a time, however
//! many monitors ask at once.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one probe's answer is served.
pub const FRESH_FOR: Duration = Duration::from_secs(5);

/// How to check one upstream MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub target: String,
    /// Send a PROXY v2 LOCAL header first (the MTA expects one).
    pub proxy_v2: bool,
    /// The greeting comes inside TLS: a TCP connect is all that is checked.
    pub implicit_tls: bool,
}

/// The outcome of probing every upstream.
#[derive(Debug, Clone)]
pub struct Report {
    pub healthy: bool,
    /// One line per upstream.
    pub text: String,
}

/// The last report, and the lock that lets one probe run at a time.
#[derive(Default)]
pub struct HealthCheck {
    last: Mutex<Option<(Instant, Vec<Probe>, Report)>>,
}

impl HealthCheck {
    /// A fresh enough report for `probes`, probing only when there is none.
    pub async fn report(&self, probes: &[Probe]) -> Report {
        // Held across the probe: concurrent requests wait for its answer.
        let mut last = self.last.lock().await;
        if let Some((at, probed, report)) = last.as_ref()
            && at.elapsed() < FRESH_FOR
            && probed == probes
        {
            return report.clone();
        }
        let mut report = Report { healthy: true, text: String::new() };
        for target in probes {
            match probe(target).await {
                Ok(()) => report.text.push_str(&format!("upstream {}: ok\n", target.target)),
                Err(problem) => {
                    report.healthy = false;
                    report.text.push_str(&format!("upstream {}: {problem}\n", target.target));
                }
            }
        }
        *last = Some((Instant::now(), probes.to_vec(), report.clone()));
        report
    }
}

/// Connects to an upstream and waits for its 220 greeting.
async fn probe(probe: &Probe) -> Result<(), String> {
    let attempt = async {
        let mut socket = TcpStream::connect(&probe.target).await.map_err(|e| format!("cannot connect: {e}"))?;
        if probe.implicit_tls {
            return Ok(());
        }
        if probe.proxy_v2 {
            // A LOCAL command: a health check, not a relayed client.
            socket.write_all(&crate::proxy_protocol::local_header()).await.map_err(|e| format!("cannot write: {e}"))?;
        }
        let mut greeting = [0u8; 512];
        let count = socket.read(&mut greeting).await.map_err(|e| format!("no greeting: {e}"))?;
        let _ = socket.write_all(b"QUIT\r\n").await;
        if greeting[..count].starts_with(b"220") {
            Ok(())
        } else {
            Err(format!("greeted with {:?}", String::from_utf8_lossy(&greeting[..count.min(60)]).trim()))
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt).await.unwrap_or_else(|_| Err("timed out".into()))
}
