//! The outbound Message-ID ledger: which messages we sent, so that a
//! bounce or read receipt for one of them is recognised even when it comes
//! back to an untagged address. An embedded redb file by default, Redis
//! (one server, Sentinel or Cluster) when several proxy hosts share it.
//!
//! Recording never slows the relay: ids go to a writer task that commits
//! them in batches (group commit). redb commits are crash-safe, so a kill
//! -9 loses at most the last uncommitted batch and never corrupts the file.
//! When the store fails (a full disk, Redis away) the writer keeps the ids
//! and writes them later (see `writer`); meanwhile a lookup that finds
//! nothing cannot tell "not ours" from "not written yet", and says so
//! ([`LedgerError::Unavailable`]), which the policy answers with a 451.

mod redb_store;
mod redis_store;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::{ConfigError, LedgerSettings, LedgerStore as Store};

use self::redb_store::RedbFile;
use self::redis_store::RedisStore;
use self::writer::{Backend, Shared};
pub use crate::ledger_status::LedgerStatus;

/// How many recorded ids may wait for the writer task.
const CHANNEL: usize = 64 * 1024;

#[derive(Debug, Error)]
pub enum LedgerError {
    /// redb lets one process at a time have the file open.
    #[error("ledger file {path} is held by another batv-proxy (or another process); only one process can have it open")]
    Locked { path: PathBuf },
    #[error("ledger file {path}: {message}")]
    File { path: PathBuf, message: String },
    /// `key` is the `[ledger]` key to look at.
    #[error("redis: {message}")]
    Redis { key: &'static str, message: String },
    /// The store cannot answer now, or may lack ids this host recorded:
    /// a lookup that found nothing proves nothing.
    #[error("the ledger cannot answer now: {0}")]
    Unavailable(String),
}

impl LedgerError {
    /// As a configuration error naming the key to fix.
    pub fn config_error(&self, file: &Path) -> ConfigError {
        match self {
            LedgerError::Redis { key, .. } => {
                let fix = match *key {
                    "redis_password_file" => {
                        "check the password (redis_password_file or redis_password_env) and redis_username"
                    }
                    "redis_username" => "set redis_username and redis_password_file to an ACL user Redis knows",
                    "redis_ca_file" => {
                        "set redis_ca_file to the CA that signed Redis's certificate (and check the host name in redis_url)"
                    }
                    _ => {
                        "check redis_url: rediss://host:6380/0, redis+sentinel://host:26379/service, redis+cluster://host:6379"
                    }
                };
                ConfigError::new(file, &format!("ledger.{key}"), self.to_string(), fix)
            }
            _ => ConfigError::new(
                file,
                "ledger.path",
                self.to_string(),
                "point ledger.path (relative to state_dir) at the ledger's redb file, or at a new file in a directory \
                 the user batv-proxy runs as can write",
            ),
        }
    }
}

/// One recorded id and when it may be forgotten (seconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub id: String,
    pub expiry: u64,
}

/// Runs `work` on the blocking pool; a panic there is an error like another.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|join| Err(join.to_string()))
}

/// Whether the ledger `settings` describe could be opened, found without
/// opening it: nothing is created, no lock is taken and no connection is
/// made, so `check-config` neither leaves files behind (owned by whoever
/// ran it) nor fails because the running proxy holds the file. The Redis
/// client is built (URL, certificates), not connected: a Redis that is
/// down now may be up when a bounce needs it (`check-config --connect`
/// connects).
pub fn check(settings: &LedgerSettings) -> Result<(), LedgerError> {
    match &settings.store {
        Store::None => Ok(()),
        Store::File(path) => redb_store::check_file(path),
        Store::Redis(redis) => {
            RedisStore::new(redis)
                .map_err(|failure| LedgerError::Redis { key: failure.key, message: failure.message })?;
            redb_store::check_file(&settings.path)
        }
    }
}

/// `check-config --connect`: for Redis, connects with the configured TLS
/// and credentials and writes and reads a test key. A line to print, or
/// `None` when there is nothing to connect to.
pub fn connect_check(settings: &LedgerSettings) -> Result<Option<String>, LedgerError> {
    let Store::Redis(redis) = &settings.store else { return Ok(None) };
    let failed = |failure: redis_store::RedisFailure| LedgerError::Redis { key: failure.key, message: failure.message };
    let store = RedisStore::new(redis).map_err(failed)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LedgerError::Redis { key: "redis_url", message: e.to_string() })?;
    runtime.block_on(store.probe()).map(Some).map_err(failed)
}

/// `<id@host>` and `id@host` are the same Message-ID.
pub fn normalize(message_id: &str) -> String {
    message_id.trim().trim_start_matches('<').trim_end_matches('>').trim().to_owned()
}

/// The key under which an outbound invitation's iCalendar UID is kept,
/// apart from Message-IDs (a meeting response quotes the UID, often with
/// no In-Reply-To).
pub fn calendar_key(uid: &str) -> String {
    format!("uid:{}", uid.trim())
}

/// The ledger: off, or a store with its writer task.
pub struct Ledger {
    inner: Option<Inner>,
    status: Arc<LedgerStatus>,
}

struct Inner {
    /// `None` when opened only to look ids up (`judge`).
    sender: Option<mpsc::Sender<Entry>>,
    shared: Arc<Shared>,
    lookup: Lookup,
    /// How long an id is remembered, in seconds.
    retention: u64,
}

enum Lookup {
    File(Arc<RedbFile>),
    /// The file as a reader beside the running proxy, which writes it.
    ReadOnlyFile {
        file: Arc<redb::ReadOnlyDatabase>,
        path: PathBuf,
    },
    Redis(Arc<RedisStore>),
}

impl Ledger {
    /// Opens the store and starts its writer; `retention` is how long an
    /// id is remembered (the tag lifetime). `status` is where it reports
    /// (registered with the metrics).
    pub async fn open(
        settings: &LedgerSettings,
        retention: Duration,
        status: Arc<LedgerStatus>,
    ) -> Result<Arc<Ledger>, LedgerError> {
        let shared = Arc::new(Shared::new(Arc::clone(&status), settings.queue_max_entries));
        let (backend, lookup, description) = match &settings.store {
            Store::None => return Ok(Arc::new(Ledger { inner: None, status })),
            Store::File(path) => {
                let file = Arc::new(RedbFile::open(path)?);
                let description = format!("file {}", path.display());
                let backend = Backend::File { file: Arc::clone(&file), max_entries: settings.max_entries };
                (backend, Lookup::File(file), description)
            }
            Store::Redis(redis) => {
                let store = Arc::new(
                    RedisStore::new(redis)
                        .map_err(|failure| LedgerError::Redis { key: failure.key, message: failure.message })?,
                );
                // Ids a previous run queued are replayed; the file is made only when first needed.
                if settings.path.exists() {
                    let queue = Arc::new(RedbFile::open(&settings.path)?);
                    let handle =
                        queue.handle().map_err(|message| LedgerError::File { path: settings.path.clone(), message })?;
                    let length = redb_store::queue_len(&handle)
                        .map_err(|message| LedgerError::File { path: settings.path.clone(), message })?;
                    drop(handle);
                    shared.queued.store(length, std::sync::atomic::Ordering::Relaxed);
                    *shared.queue.lock().unwrap_or_else(|e| e.into_inner()) = Some(queue);
                }
                let description = store.describe();
                let backend = Backend::Redis { store: Arc::clone(&store), queue_path: settings.path.clone() };
                (backend, Lookup::Redis(store), description.trim_start_matches("redis ").to_owned())
            }
        };
        status.opened(match &lookup {
            Lookup::File(_) | Lookup::ReadOnlyFile { .. } => description,
            Lookup::Redis(_) => format!("redis {description}"),
        });
        let (sender, receiver) = mpsc::channel(CHANNEL);
        tokio::spawn(writer::run(backend, Arc::clone(&shared), receiver));
        let inner = Inner { sender: Some(sender), shared, lookup, retention: retention.as_secs().max(1) };
        Ok(Arc::new(Ledger { inner: Some(inner), status }))
    }

    /// Opens the store only to look ids up, beside a running proxy that
    /// writes it (`judge`): the file as a reader that follows the proxy's
    /// commits, or Redis (the ids a host queued during an outage are only
    /// in its own queue file, which this leaves alone).
    pub async fn open_to_read(settings: &LedgerSettings) -> Result<Arc<Ledger>, LedgerError> {
        let status = Arc::<LedgerStatus>::default();
        let shared = Arc::new(Shared::new(Arc::clone(&status), settings.queue_max_entries));
        let lookup = match &settings.store {
            Store::None => return Ok(Arc::new(Ledger { inner: None, status })),
            Store::File(path) => {
                let file = redb_store::open_read_only(path)?;
                Lookup::ReadOnlyFile { file: Arc::new(file), path: path.clone() }
            }
            Store::Redis(redis) => Lookup::Redis(Arc::new(
                RedisStore::new(redis)
                    .map_err(|failure| LedgerError::Redis { key: failure.key, message: failure.message })?,
            )),
        };
        let inner = Inner { sender: None, shared, lookup, retention: 1 };
        Ok(Arc::new(Ledger { inner: Some(inner), status }))
    }

    /// A ledger that records nothing.
    pub fn off() -> Arc<Ledger> {
        Arc::new(Ledger { inner: None, status: Arc::default() })
    }

    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    pub fn status(&self) -> &Arc<LedgerStatus> {
        &self.status
    }

    /// How many Message-IDs the ledger file holds (for the
    /// `batv_proxy_ledger_entries` gauge); `None` for other stores or when
    /// the file cannot be read now.
    pub fn file_entries(&self) -> Option<u64> {
        use redb::{ReadableDatabase, ReadableTableMetadata};
        let Lookup::File(file) = &self.inner.as_ref()?.lookup else { return None };
        let handle = file.handle().ok()?;
        let transaction = handle.begin_read().ok()?;
        transaction.open_table(redb_store::IDS).ok()?.len().ok()
    }

    /// Remembers a Message-ID of a message the upstream accepted.
    pub fn record(&self, message_id: &str) {
        let Some(inner) = &self.inner else { return };
        let id = normalize(message_id);
        if id.is_empty() || id.len() > 998 {
            return;
        }
        let expiry = redb_store::now() + inner.retention;
        let Some(sender) = &inner.sender else { return };
        if sender.try_send(Entry { id, expiry }).is_err() {
            self.status.dropped.inc();
            tracing::warn!("ledger writer is behind; a Message-ID was not recorded");
        }
    }

    /// The first of `ids` that we sent, if any. `Err` when the answer
    /// cannot be trusted: the store cannot be read, or it may lack ids
    /// this host recorded because writes are failing.
    pub async fn find(&self, ids: &[String]) -> Result<Option<String>, LedgerError> {
        let ids: Vec<String> = ids.iter().map(|id| normalize(id)).filter(|id| !id.is_empty()).collect();
        let Some(inner) = &self.inner else { return Ok(None) };
        if ids.is_empty() {
            return Ok(None);
        }
        if let Some(found) = inner.shared.in_memory(&ids) {
            return Ok(Some(found));
        }
        match &inner.lookup {
            Lookup::File(file) => {
                let (reading, wanted) = (Arc::clone(file), ids.clone());
                let found = blocking(move || reading.find(&wanted, false))
                    .await
                    .map_err(|message| LedgerError::File { path: file.path.clone(), message })?;
                match found {
                    Some(found) => Ok(Some(found)),
                    None if self.status.is_failing() => {
                        Err(LedgerError::Unavailable("ledger writes are failing; recent ids may be missing".into()))
                    }
                    None => Ok(None),
                }
            }
            Lookup::ReadOnlyFile { file, path } => {
                let (file, wanted) = (Arc::clone(file), ids.clone());
                blocking(move || redb_store::find(&*file, &wanted, false))
                    .await
                    .map_err(|message| LedgerError::File { path: path.clone(), message })
            }
            Lookup::Redis(store) => {
                let answer = store.find(&ids).await;
                if let Ok(redis_store::Found::Id(found)) = answer {
                    return Ok(Some(found));
                }
                if let Some(found) = self.find_queued(inner, &ids).await {
                    return Ok(Some(found));
                }
                match answer {
                    Ok(redis_store::Found::Nothing) => Ok(None),
                    Ok(_) => Err(LedgerError::Unavailable(
                        "a proxy host is still replaying ids it kept while Redis was away".into(),
                    )),
                    Err(failure) => Err(LedgerError::Unavailable(format!("redis: {}", failure.message))),
                }
            }
        }
    }

    /// The first of `ids` in the outage queue.
    async fn find_queued(&self, inner: &Inner, ids: &[String]) -> Option<String> {
        let queue = inner.shared.queue_file()?;
        if inner.shared.queued.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            return None;
        }
        let wanted = ids.to_vec();
        blocking(move || queue.find(&wanted, true)).await.ok().flatten()
    }
}

#[cfg(test)]
mod tests;
