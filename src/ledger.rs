//! The outbound Message-ID ledger: which messages we sent, so that a
//! bounce or read receipt for one of them is recognised even when it comes
//! back to an untagged address. An embedded redb file by default, Redis
//! when several proxy hosts share it.
//!
//! Recording never slows the relay: ids go to a writer task that commits
//! them in batches (group commit). redb commits are crash-safe, so a kill
//! -9 loses at most the last uncommitted batch and never corrupts the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::config::LedgerStore as Store;

/// Message-ID (no angle brackets) → expiry, seconds since the epoch.
const IDS: TableDefinition<&str, u64> = TableDefinition::new("message_ids");
/// (expiry, Message-ID) → (), to purge the oldest first.
const BY_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("by_expiry");

const BATCH: usize = 512;
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
const REDIS_PREFIX: &str = "batv-proxy:ledger:";

/// The first bytes of every redb file (redb's `MAGICNUMBER`).
const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

#[derive(Debug, Error)]
pub enum LedgerError {
    /// redb lets one process at a time have the file open.
    #[error("ledger file {path} is held by another batv-proxy (or another process); only one process can have it open")]
    Locked { path: PathBuf },
    #[error("ledger file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("redis: {0}")]
    Redis(String),
}

/// Whether `store` could be opened, found without opening it: nothing is
/// created and no lock is taken, so `check-config` neither leaves files
/// behind (owned by whoever ran it) nor fails because the running proxy
/// holds the file. Connecting to Redis is left to run time: a Redis that
/// is down now may be up when a bounce needs it.
pub fn check(store: &Store) -> Result<(), LedgerError> {
    match store {
        Store::None => Ok(()),
        Store::File(path) => check_file(path),
        Store::Redis(url) => {
            redis::Client::open(url.as_str()).map(drop).map_err(|error| LedgerError::Redis(error.to_string()))
        }
    }
}

fn check_file(path: &Path) -> Result<(), LedgerError> {
    use std::io::{ErrorKind, Read};
    let error = |message: String| LedgerError::File { path: path.to_owned(), message };
    match std::fs::metadata(path) {
        Ok(metadata) if !metadata.is_file() => Err(error("is not a file".into())),
        Ok(metadata) => {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| error(format!("cannot open it for reading and writing: {e}")))?;
            // An empty file is made into a database; anything else must already be one.
            let mut start = [0u8; REDB_MAGIC.len()];
            if metadata.len() > 0 && (file.read_exact(&mut start).is_err() || start != REDB_MAGIC) {
                return Err(error("is not a redb database (the ledger's own file)".into()));
            }
            Ok(())
        }
        // Not there yet (a file on the way, too, says "not a directory").
        Err(missing) if matches!(missing.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            // It will be made, with the directories up to it.
            let mut ancestor = path.parent();
            while let Some(directory) = ancestor.filter(|d| !d.as_os_str().is_empty()) {
                match std::fs::metadata(directory) {
                    Ok(metadata) if metadata.is_dir() => return Ok(()),
                    Ok(_) => return Err(error(format!("{} is not a directory", directory.display()))),
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                        ancestor = directory.parent()
                    }
                    Err(e) => return Err(error(format!("cannot reach {}: {e}", directory.display()))),
                }
            }
            Ok(())
        }
        Err(e) => Err(error(e.to_string())),
    }
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

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub enum Ledger {
    Off,
    File(FileLedger),
    Redis(RedisLedger),
}

impl Ledger {
    /// Opens the store; `retention` is how long an id is remembered (the
    /// tag lifetime), `max_entries` bounds the file store.
    pub async fn open(store: &Store, retention: Duration, max_entries: u64) -> Result<Arc<Ledger>, LedgerError> {
        Ok(Arc::new(match store {
            Store::None => Ledger::Off,
            Store::File(path) => Ledger::File(FileLedger::open(path, retention, max_entries)?),
            Store::Redis(url) => Ledger::Redis(RedisLedger::open(url, retention).await?),
        }))
    }

    pub fn is_on(&self) -> bool {
        !matches!(self, Ledger::Off)
    }

    /// Remembers a Message-ID of a message the upstream accepted.
    pub fn record(&self, message_id: &str) {
        let id = normalize(message_id);
        if id.is_empty() || id.len() > 998 {
            return;
        }
        match self {
            Ledger::Off => {}
            Ledger::File(file) => file.record(id),
            Ledger::Redis(redis) => redis.record(id),
        }
    }

    /// How many Message-IDs the ledger file holds (for the
    /// `batv_proxy_ledger_entries` gauge); `None` for other stores or when
    /// the file cannot be read now.
    pub fn file_entries(&self) -> Option<u64> {
        let Ledger::File(file) = self else { return None };
        let transaction = file.database.begin_read().ok()?;
        transaction.open_table(IDS).ok()?.len().ok()
    }

    /// The first of `ids` that we sent, if any.
    pub async fn find(&self, ids: &[String]) -> Result<Option<String>, LedgerError> {
        let ids: Vec<String> = ids.iter().map(|id| normalize(id)).filter(|id| !id.is_empty()).collect();
        if ids.is_empty() {
            return Ok(None);
        }
        match self {
            Ledger::Off => Ok(None),
            Ledger::File(file) => file.find(ids).await,
            Ledger::Redis(redis) => redis.find(ids).await,
        }
    }
}

pub struct FileLedger {
    database: Arc<Database>,
    path: PathBuf,
    sender: mpsc::Sender<String>,
}

impl FileLedger {
    fn open(path: &Path, retention: Duration, max_entries: u64) -> Result<Self, LedgerError> {
        let error = |message: String| LedgerError::File { path: path.to_owned(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| error(format!("cannot create its directory: {e}")))?;
        }
        let database = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::Locked { path: path.to_owned() },
            other => error(other.to_string()),
        })?;
        let transaction = database.begin_write().map_err(|e| error(e.to_string()))?;
        transaction.open_table(IDS).map_err(|e| error(e.to_string()))?;
        transaction.open_table(BY_EXPIRY).map_err(|e| error(e.to_string()))?;
        transaction.commit().map_err(|e| error(e.to_string()))?;
        let database = Arc::new(database);
        let (sender, receiver) = mpsc::channel(64 * 1024);
        let writer = Arc::clone(&database);
        let path_for_writer = path.to_owned();
        tokio::spawn(async move {
            write_batches(writer, receiver, retention.as_secs(), max_entries, path_for_writer).await;
        });
        Ok(FileLedger { database, path: path.to_owned(), sender })
    }

    fn record(&self, id: String) {
        if self.sender.try_send(id).is_err() {
            tracing::warn!(ledger = %self.path.display(), "ledger writer is behind; a Message-ID was not recorded");
        }
    }

    async fn find(&self, ids: Vec<String>) -> Result<Option<String>, LedgerError> {
        let database = Arc::clone(&self.database);
        let path = self.path.clone();
        let lookup = tokio::task::spawn_blocking(move || -> Result<Option<String>, String> {
            let transaction = database.begin_read().map_err(|e| e.to_string())?;
            let table = transaction.open_table(IDS).map_err(|e| e.to_string())?;
            let now = now();
            for id in ids {
                if let Some(expiry) = table.get(id.as_str()).map_err(|e| e.to_string())?
                    && expiry.value() >= now
                {
                    return Ok(Some(id));
                }
            }
            Ok(None)
        });
        match lookup.await {
            Ok(result) => result.map_err(|message| LedgerError::File { path, message }),
            Err(join) => Err(LedgerError::File { path, message: join.to_string() }),
        }
    }
}

/// The writer task: commits queued ids in batches, purges expired ids and
/// keeps the store under `max_entries`, dropping the oldest first.
async fn write_batches(
    database: Arc<Database>,
    mut receiver: mpsc::Receiver<String>,
    retention: u64,
    max_entries: u64,
    path: PathBuf,
) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(id) => batch.push(id),
                Err(_) => break,
            }
        }
        let database = Arc::clone(&database);
        let result = tokio::task::spawn_blocking(move || commit(&database, &batch, retention, max_entries)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(message)) => tracing::error!(ledger = %path.display(), error = %message, "ledger write failed"),
            Err(join) => tracing::error!(ledger = %path.display(), error = %join, "ledger writer failed"),
        }
    }
}

fn commit(database: &Database, batch: &[String], retention: u64, max_entries: u64) -> Result<(), String> {
    let now = now();
    let expiry = now + retention;
    let transaction = database.begin_write().map_err(|e| e.to_string())?;
    {
        let mut ids = transaction.open_table(IDS).map_err(|e| e.to_string())?;
        let mut by_expiry = transaction.open_table(BY_EXPIRY).map_err(|e| e.to_string())?;
        for id in batch {
            let previous = ids.insert(id.as_str(), expiry).map_err(|e| e.to_string())?.map(|old| old.value());
            if let Some(old) = previous {
                by_expiry.remove((old, id.as_str())).map_err(|e| e.to_string())?;
            }
            by_expiry.insert((expiry, id.as_str()), ()).map_err(|e| e.to_string())?;
        }
        // Expired ids, then the oldest beyond the bound.
        loop {
            let Some((key, _)) = by_expiry.first().map_err(|e| e.to_string())? else { break };
            let (when, id) = key.value();
            let over = ids.len().map_err(|e| e.to_string())? > max_entries;
            if when >= now && !over {
                break;
            }
            let id = id.to_owned();
            drop(key);
            by_expiry.remove((when, id.as_str())).map_err(|e| e.to_string())?;
            ids.remove(id.as_str()).map_err(|e| e.to_string())?;
        }
    }
    transaction.commit().map_err(|e| e.to_string())
}

pub struct RedisLedger {
    connection: redis::aio::ConnectionManager,
    retention: u64,
}

impl RedisLedger {
    async fn open(url: &str, retention: Duration) -> Result<Self, LedgerError> {
        let client = redis::Client::open(url).map_err(|e| LedgerError::Redis(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        // Lazy: an unreachable Redis at startup must not stop the proxy.
        let connection = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| LedgerError::Redis(e.to_string()))?;
        Ok(RedisLedger { connection, retention: retention.as_secs().max(1) })
    }

    fn record(&self, id: String) {
        let mut connection = self.connection.clone();
        let retention = self.retention;
        tokio::spawn(async move {
            let key = format!("{REDIS_PREFIX}{id}");
            let result: redis::RedisResult<()> =
                redis::cmd("SET").arg(&key).arg(1).arg("EX").arg(retention).query_async(&mut connection).await;
            if let Err(error) = result {
                tracing::warn!(error = %error, "redis unreachable: a Message-ID was not recorded");
            }
        });
    }

    async fn find(&self, ids: Vec<String>) -> Result<Option<String>, LedgerError> {
        let mut connection = self.connection.clone();
        let keys: Vec<String> = ids.iter().map(|id| format!("{REDIS_PREFIX}{id}")).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await
            .map_err(|e| LedgerError::Redis(e.to_string()))?;
        Ok(ids.into_iter().zip(values).find(|(_, value)| value.is_some()).map(|(id, _)| id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_normalize() {
        assert_eq!(normalize(" <abc@example.com> "), "abc@example.com");
        assert_eq!(normalize("abc@example.com"), "abc@example.com");
    }

    #[tokio::test]
    async fn file_ledger_records_finds_bounds_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        {
            let ledger = Ledger::open(&Store::File(path.clone()), Duration::from_secs(3600), 5).await.unwrap();
            for n in 0..8 {
                ledger.record(&format!("<m{n}@example.com>"));
            }
            // The writer commits asynchronously.
            let found = wait_for(&ledger, "m7@example.com").await;
            assert_eq!(found.as_deref(), Some("m7@example.com"));
            assert_eq!(ledger.find(&["<nope@example.com>".into()]).await.unwrap(), None);
        }
        // Reopened once the writer task has let go: still there, and bounded
        // to 5 entries, oldest dropped.
        let mut reopened = None;
        for _ in 0..100 {
            match Database::create(&path) {
                Ok(database) => {
                    reopened = Some(database);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let database = reopened.expect("the ledger file stays locked");
        let transaction = database.begin_read().unwrap();
        let ids = transaction.open_table(IDS).unwrap();
        assert!(ids.len().unwrap() <= 5, "{}", ids.len().unwrap());
        assert!(ids.get("m7@example.com").unwrap().is_some());
    }

    async fn wait_for(ledger: &Ledger, id: &str) -> Option<String> {
        for _ in 0..100 {
            if let Some(found) = ledger.find(&[id.to_owned()]).await.unwrap() {
                return Some(found);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    #[tokio::test]
    async fn a_second_opener_is_told_who_holds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.redb");
        let store = Store::File(path.clone());
        let _first = Ledger::open(&store, Duration::from_secs(3600), 1000).await.unwrap();
        let Err(second) = Ledger::open(&store, Duration::from_secs(3600), 1000).await else { panic!("opened twice") };
        assert!(matches!(second, LedgerError::Locked { .. }), "{second}");
        let message = second.to_string();
        assert!(message.contains("another batv-proxy") && message.contains(&path.display().to_string()), "{message}");
        assert!(check(&store).is_ok(), "checking does not need the lock: {:?}", check(&store));
    }

    #[test]
    fn check_finds_what_would_stop_the_ledger_from_opening() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| Store::File(dir.path().join(name));
        std::fs::write(dir.path().join("plain"), "not a database").unwrap();
        std::fs::write(dir.path().join("empty.redb"), "").unwrap();
        assert!(check(&file("new/deeper/ledger.redb")).is_ok(), "directories are made at start");
        assert!(check(&file("empty.redb")).is_ok(), "redb makes an empty file a database");
        for (store, needle) in [
            (file("plain"), "not a redb database"),
            (file("plain/ledger.redb"), "is not a directory"),
            (Store::File(dir.path().to_owned()), "is not a file"),
            (Store::Redis("redis://[::1".into()), "redis"),
        ] {
            let error = check(&store).expect_err(needle).to_string();
            assert!(error.contains(needle), "{store:?}: {error}");
        }
        assert!(check(&Store::Redis("redis://127.0.0.1:1/0".into())).is_ok(), "no connection is tried");
    }

    #[test]
    fn expired_ids_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let database = Database::create(dir.path().join("l.redb")).unwrap();
        commit(&database, &["old@x".into()], 0, 100).unwrap();
        std::thread::sleep(Duration::from_millis(1100));
        commit(&database, &["new@x".into()], 3600, 100).unwrap();
        let transaction = database.begin_read().unwrap();
        let ids = transaction.open_table(IDS).unwrap();
        assert!(ids.get("old@x").unwrap().is_none());
        assert!(ids.get("new@x").unwrap().is_some());
    }
}
