//! The writer task: takes recorded ids from the relay (which never waits
//! for it), writes them to the store in batches, and when the store
//! fails keeps them: in memory for the file store, which it closes and
//! reopens with backoff until writes work again (redb refuses every write
//! after an I/O error until reopened); in the outage queue in the redb
//! file for Redis, replayed oldest first once Redis takes writes again.
//! Both are bounded; what does not fit is counted as dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::redb_store::{self, RedbFile};
use super::redis_store::{Backlog, RedisStore};
use super::{Entry, blocking};
use crate::ledger_status::LedgerStatus;

/// Ids per commit or Redis round trip.
pub(super) const BATCH: usize = 512;
const FIRST_RETRY: Duration = Duration::from_millis(200);
const LAST_RETRY: Duration = Duration::from_secs(5);
/// An ERROR line per failing run, then one a minute while it lasts.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Where the ids go.
pub(super) enum Backend {
    File { file: Arc<RedbFile>, max_entries: u64 },
    Redis { store: Arc<RedisStore>, queue_path: std::path::PathBuf },
}

/// What the writer and the lookups share.
pub(super) struct Shared {
    pub status: Arc<LedgerStatus>,
    /// Received, not yet in the store (nor in the outage queue), oldest first.
    pub memory: Mutex<VecDeque<Entry>>,
    /// The outage queue's file, once opened (Redis only).
    pub queue: Mutex<Option<Arc<RedbFile>>>,
    pub queued: AtomicU64,
    pub queue_max: u64,
    /// Redis holds this proxy's backlog mark.
    marked: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub(super) fn new(status: Arc<LedgerStatus>, queue_max: u64) -> Self {
        Shared {
            status,
            memory: Mutex::new(VecDeque::new()),
            queue: Mutex::new(None),
            queued: AtomicU64::new(0),
            queue_max,
            marked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn queue_file(&self) -> Option<Arc<RedbFile>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first of `ids` still in memory.
    pub(super) fn in_memory(&self, ids: &[String]) -> Option<String> {
        let memory = self.memory();
        ids.iter().find(|id| memory.iter().any(|entry| &entry.id == *id)).cloned()
    }

    fn keep(&self, entry: Entry) {
        let mut memory = self.memory();
        if memory.len() as u64 >= self.queue_max {
            self.status.dropped.inc();
            return;
        }
        memory.push_back(entry);
    }

    fn update_pending(&self) {
        let pending = self.memory().len() as u64 + self.queued.load(Ordering::Relaxed);
        self.status.pending.set(pending as i64);
    }
}

/// Exponential backoff between attempts while the store fails.
struct Backoff(Duration);

impl Backoff {
    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(LAST_RETRY);
        wait
    }

    fn reset(&mut self) {
        self.0 = FIRST_RETRY;
    }
}

pub(super) async fn run(backend: Backend, shared: Arc<Shared>, mut receiver: mpsc::Receiver<Entry>) {
    let mut backoff = Backoff(FIRST_RETRY);
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut reopen = false;
    let mut logged: Option<Instant> = None;
    loop {
        let busy = !shared.memory().is_empty() || shared.queued.load(Ordering::Relaxed) > 0;
        if !busy {
            match receiver.recv().await {
                Some(entry) => shared.keep(entry),
                None => return,
            }
        } else if let Some(at) = retry_at {
            tokio::select! {
                received = receiver.recv() => match received {
                    Some(entry) => shared.keep(entry),
                    None => return,
                },
                () = tokio::time::sleep_until(at) => retry_at = None,
            }
        }
        while let Ok(entry) = receiver.try_recv() {
            shared.keep(entry);
        }
        if retry_at.is_some() {
            // Waiting out a failure: Redis's ids go to the queue meanwhile.
            if let Backend::Redis { queue_path, .. } = &backend {
                let _ = spill(&shared, queue_path).await;
            }
            shared.update_pending();
            continue;
        }
        let started = Instant::now();
        let attempt = match &backend {
            Backend::File { file, max_entries } => write_file(file, *max_entries, &shared, &mut reopen).await,
            Backend::Redis { store, queue_path } => write_redis(store, queue_path, &shared).await,
        };
        match attempt {
            Ok(written) => {
                if written {
                    shared.status.write_seconds.observe(started.elapsed().as_secs_f64());
                }
                backoff.reset();
                if let Some(failed_for) = written.then(|| shared.status.committed()).flatten() {
                    logged = None;
                    tracing::info!(
                        failed_for_seconds = failed_for,
                        pending = shared.status.pending.get(),
                        "ledger writes work again"
                    );
                }
            }
            Err(error) => {
                shared.update_pending();
                let first = shared.status.failed(&error);
                tracing::debug!(error = %error, "ledger write attempt failed");
                if first || logged.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                    logged = Some(Instant::now());
                    tracing::error!(
                        error = %error,
                        pending = shared.status.pending.get(),
                        "ledger write failed; the ids are kept and written again"
                    );
                }
                retry_at = Some(tokio::time::Instant::now() + backoff.next());
            }
        }
        shared.update_pending();
    }
}

/// One commit of the oldest ids in memory, after reopening the file when
/// the last attempt failed. `Ok(true)` when something was written.
async fn write_file(
    file: &Arc<RedbFile>,
    max_entries: u64,
    shared: &Shared,
    reopen: &mut bool,
) -> Result<bool, String> {
    if *reopen {
        let file = Arc::clone(file);
        blocking(move || file.reopen()).await?;
        *reopen = false;
    }
    let batch: Vec<Entry> = shared.memory().iter().take(BATCH).cloned().collect();
    if batch.is_empty() {
        return Ok(false);
    }
    let handle = file.handle()?;
    let count = batch.len();
    let result = blocking(move || redb_store::commit(&handle, &batch, max_entries)).await;
    match result {
        Ok(()) => {
            shared.memory().drain(..count);
            Ok(true)
        }
        Err(error) => {
            *reopen = true;
            Err(error)
        }
    }
}

/// New ids to Redis, or, while the queue holds older ones, behind them;
/// then one batch of the queue, oldest first. While the queue holds ids,
/// every write marks this proxy's backlog in Redis (other proxies answer
/// 451 rather than 550 for what they cannot find meanwhile); the write
/// that empties it removes the mark.
async fn write_redis(store: &RedisStore, queue_path: &std::path::Path, shared: &Shared) -> Result<bool, String> {
    if shared.queued.load(Ordering::Relaxed) > 0 {
        spill(shared, queue_path).await?;
    }
    let batch: Vec<Entry> = shared.memory().iter().take(BATCH).cloned().collect();
    if !batch.is_empty() {
        let count = batch.len();
        let backlog = if shared.marked.load(Ordering::Relaxed) { Backlog::Cleared } else { Backlog::Same };
        if let Err(failure) = store.write(&batch, backlog).await {
            let _ = spill(shared, queue_path).await;
            return Err(failure.message);
        }
        shared.marked.store(false, Ordering::Relaxed);
        shared.memory().drain(..count);
        return Ok(true);
    }
    let Some(queue) = shared.queue_file() else { return Ok(false) };
    let handle = queue.handle()?;
    let oldest = blocking({
        let handle = Arc::clone(&handle);
        move || redb_store::queue_oldest(&handle, BATCH)
    })
    .await?;
    if oldest.is_empty() {
        shared.queued.store(0, Ordering::Relaxed);
        if shared.marked.load(Ordering::Relaxed) {
            store.write(&[], Backlog::Cleared).await.map_err(|failure| failure.message)?;
            shared.marked.store(false, Ordering::Relaxed);
        }
        return Ok(false);
    }
    let entries: Vec<Entry> = oldest.iter().map(|(_, entry)| entry.clone()).collect();
    // Marked first: the mark reaches Redis even when WAIT then fails.
    shared.marked.store(true, Ordering::Relaxed);
    store.write(&entries, Backlog::Holding).await.map_err(|failure| failure.message)?;
    let count = oldest.len() as u64;
    let left = blocking(move || redb_store::queue_remove(&handle, &oldest)).await?;
    shared.queued.store(left, Ordering::Relaxed);
    shared.status.replayed.inc_by(count);
    if left == 0 {
        store.write(&[], Backlog::Cleared).await.map_err(|failure| failure.message)?;
        shared.marked.store(false, Ordering::Relaxed);
        tracing::info!(replayed = count, "ledger queue replayed: every id kept during the outage is in Redis");
    }
    Ok(true)
}

/// Moves the ids in memory to the outage queue, opening its file first if
/// needed; what exceeds `queue_max_entries` is dropped. On a file error
/// the ids stay in memory.
async fn spill(shared: &Shared, queue_path: &std::path::Path) -> Result<(), String> {
    let entries: Vec<Entry> = shared.memory().iter().cloned().collect();
    if entries.is_empty() {
        return Ok(());
    }
    let queue = match shared.queue_file() {
        Some(queue) => queue,
        None => {
            let path = queue_path.to_owned();
            let opened = blocking(move || RedbFile::open(&path).map_err(|e| e.to_string())).await?;
            let opened = Arc::new(opened);
            *shared.queue.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&opened));
            opened
        }
    };
    let room = shared.queue_max.saturating_sub(shared.queued.load(Ordering::Relaxed)) as usize;
    let (fits, over) = entries.split_at(entries.len().min(room));
    let handle = queue.handle()?;
    let fits = fits.to_vec();
    let count = fits.len();
    let pushed = blocking(move || redb_store::queue_push(&handle, &fits)).await;
    match pushed {
        Ok(length) => {
            shared.memory().drain(..entries.len());
            shared.queued.store(length, Ordering::Relaxed);
            shared.status.queued.inc_by(count as u64);
            shared.status.dropped.inc_by(over.len() as u64);
            Ok(())
        }
        Err(error) => {
            let queue = Arc::clone(&queue);
            let _ = blocking(move || queue.reopen()).await;
            Err(format!("cannot queue ids in {}: {error}", queue_path.display()))
        }
    }
}
