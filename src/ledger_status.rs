//! What the ledger's writer reports: counters and gauges for
//! `/metrics`, and one line for `/healthz`. Shared by the writer task,
//! the lookups and the status endpoint; the metric objects are registered
//! by `cluster_metrics`. Below both `ledger` and `metrics`, which share it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Since when writes fail, and the last error.
#[derive(Debug, Clone)]
struct Failing {
    since: i64,
    error: String,
}

#[derive(Debug)]
pub struct LedgerStatus {
    /// Commits (file) or batch writes (Redis) that failed.
    pub write_errors: Counter,
    /// Ids recorded but not yet in the store: in memory, or in the outage queue.
    pub pending: Gauge,
    /// Ids put in the outage queue because Redis could not take them.
    pub queued: Counter,
    /// Queued ids written to Redis once it was back.
    pub replayed: Counter,
    /// Ids lost: the queue was full, or the writer was behind.
    pub dropped: Counter,
    /// Time one batch took to reach the store.
    pub write_seconds: Histogram,
    /// Unix time of the last successful write; 0: none yet.
    last_commit: AtomicI64,
    failing: Mutex<Option<Failing>>,
    /// `file /var/lib/...` or `redis ...`; `None`: no ledger.
    store: Mutex<Option<String>>,
}

impl Default for LedgerStatus {
    fn default() -> Self {
        LedgerStatus {
            write_errors: Counter::default(),
            pending: Gauge::default(),
            queued: Counter::default(),
            replayed: Counter::default(),
            dropped: Counter::default(),
            // 100 µs to ~26 s.
            write_seconds: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
            last_commit: AtomicI64::new(0),
            failing: Mutex::new(None),
            store: Mutex::new(None),
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl LedgerStatus {
    /// The ledger is open: its store named for `/healthz`; the age of
    /// the last write counts from now.
    pub fn opened(&self, store: String) {
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
        self.last_commit.store(unix_now(), Ordering::Relaxed);
    }

    /// A write reached the store. Returns for how long writes had failed, if they had.
    pub fn committed(&self) -> Option<i64> {
        self.last_commit.store(unix_now(), Ordering::Relaxed);
        let was = self.failing.lock().unwrap_or_else(|e| e.into_inner()).take();
        was.map(|failing| unix_now() - failing.since)
    }

    /// A write failed. Returns true for the first failure of a run.
    pub fn failed(&self, error: &str) -> bool {
        self.write_errors.inc();
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let first = failing.is_none();
        let since = failing.as_ref().map_or_else(unix_now, |f| f.since);
        *failing = Some(Failing { since, error: error.to_owned() });
        first
    }

    /// How many batches were written (for tests).
    #[cfg(test)]
    pub fn write_seconds_count(&self) -> u64 {
        let mut text = String::new();
        let mut scratch = prometheus_client::registry::Registry::default();
        scratch.register("w", "", self.write_seconds.clone());
        prometheus_client::encoding::text::encode(&mut text, &scratch).unwrap();
        text.lines().find_map(|l| l.strip_prefix("w_count ")).and_then(|n| n.parse().ok()).unwrap_or(0)
    }

    /// Whether the last write failed: the store may lack ids this host recorded.
    pub fn is_failing(&self) -> bool {
        self.failing.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Seconds since the last successful write (or since the ledger opened).
    pub fn last_commit_age(&self) -> Option<i64> {
        let last = self.last_commit.load(Ordering::Relaxed);
        (last > 0).then(|| (unix_now() - last).max(0))
    }

    /// `/healthz`'s line about the ledger and whether it is healthy;
    /// `None` without a ledger.
    pub fn health(&self) -> Option<(bool, String)> {
        let store = self.store.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        let pending = self.pending.get();
        let age = self.last_commit_age().unwrap_or(0);
        Some(match self.failing.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            None => (true, format!("ledger {store}: ok ({pending} pending)\n")),
            Some(failing) => (
                false,
                format!(
                    "ledger {store}: failing for {} s ({}); {pending} ids pending, last write {age} s ago\n",
                    (unix_now() - failing.since).max(0),
                    failing.error
                ),
            ),
        })
    }
}
