//! The redb file: the ledger itself (`store = "file"`) and the queue of
//! ids waiting for Redis (`store = "redis"`). After an I/O error (a full
//! disk) redb refuses every later write until the database is opened
//! again, so the file can be closed and reopened in place while readers
//! hold on to the old handle for a moment.
//!
//! Every function that touches the file blocks: callers run them on
//! tokio's blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use redb::{
    ConcurrencyMode, Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, ReadableTableMetadata,
    TableDefinition,
};

use super::{Entry, LedgerError};

/// Message-ID (no angle brackets) → expiry, seconds since the epoch.
pub(super) const IDS: TableDefinition<&str, u64> = TableDefinition::new("message_ids");
/// (expiry, Message-ID) → (), to purge the oldest first.
const BY_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("by_expiry");
/// Outage queue: sequence number → (Message-ID, expiry), oldest first.
const QUEUE: TableDefinition<u64, (&str, u64)> = TableDefinition::new("redis_queue");
/// Message-ID → its sequence number in the queue, for lookups.
const QUEUED_IDS: TableDefinition<&str, u64> = TableDefinition::new("redis_queue_ids");

/// The first bytes of every redb file (redb's `MAGICNUMBER`).
pub(super) const REDB_MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

type Result<T> = std::result::Result<T, String>;

/// The file and its current handle; `None` between a close and a reopen.
pub(super) struct RedbFile {
    pub(super) path: PathBuf,
    database: RwLock<Option<Arc<Database>>>,
    /// A read-only handle for lookups while the writing one is failed:
    /// in single-writer mode redb refuses reads through the writer after
    /// an I/O error too, but ids committed before are still in the file.
    reader: Mutex<Option<Arc<ReadOnlyDatabase>>>,
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

impl RedbFile {
    /// Opens (creating it and its directory if needed) and makes the tables.
    pub(super) fn open(path: &Path) -> std::result::Result<Self, LedgerError> {
        let error = |message: String| LedgerError::File { path: path.to_owned(), message };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| error(format!("cannot create its directory: {e}")))?;
        }
        let database = create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::Locked { path: path.to_owned() },
            other => error(other.to_string()),
        })?;
        make_tables(&database).map_err(error)?;
        Ok(RedbFile {
            path: path.to_owned(),
            database: RwLock::new(Some(Arc::new(database))),
            reader: Mutex::new(None),
        })
    }

    /// The handle to use now.
    pub(super) fn handle(&self) -> Result<Arc<Database>> {
        self.database
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| "the ledger file is being reopened after an I/O error".to_owned())
    }

    /// The first of `ids` found (see [`find`]), read through the writing
    /// handle or, when that fails, through a read-only one, so that a full
    /// disk does not hide the ids committed before it.
    pub(super) fn find(&self, ids: &[String], in_queue: bool) -> Result<Option<String>> {
        let through_writer = self.handle().and_then(|database| find(&*database, ids, in_queue));
        let Err(failure) = through_writer else { return through_writer };
        let reader = {
            let mut slot = self.reader.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some(reader) => Arc::clone(reader),
                None => {
                    let opened = Arc::new(open_read_only(&self.path).map_err(|_| failure.clone())?);
                    *slot = Some(Arc::clone(&opened));
                    opened
                }
            }
        };
        find(&*reader, ids, in_queue).map_err(|_| failure)
    }

    /// Closes the database and opens it again, which clears redb's
    /// "previous I/O error" state. Fails while a reader still holds the
    /// old handle, or while the disk still refuses (then call again later).
    pub(super) fn reopen(&self) -> Result<()> {
        let mut slot = self.database.write().unwrap_or_else(|e| e.into_inner());
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).take();
        // Dropping the last handle closes the file and lets go of its lock.
        if let Some(old) = slot.take()
            && let Err(still_shared) = Arc::try_unwrap(old)
        {
            *slot = Some(still_shared);
            return Err("a lookup still holds the ledger file".into());
        }
        let database = create(&self.path).map_err(text)?;
        make_tables(&database)?;
        *slot = Some(Arc::new(database));
        Ok(())
    }
}

fn create(path: &Path) -> std::result::Result<Database, redb::DatabaseError> {
    // A small cache: lookups are point reads, and memory is the relay's.
    // One writer, and readers (`judge`) beside it that follow its commits.
    Database::builder()
        .set_cache_size(16 * 1024 * 1024)
        .set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .create(path)
}

/// The file as a reader beside the process that writes it.
pub(super) fn open_read_only(path: &Path) -> std::result::Result<ReadOnlyDatabase, LedgerError> {
    Database::builder()
        .set_cache_size(4 * 1024 * 1024)
        .set_concurrency_mode(ConcurrencyMode::SingleWriter)
        .open_read_only(path)
        .map_err(|error| LedgerError::File { path: path.to_owned(), message: error.to_string() })
}

fn make_tables(database: &Database) -> Result<()> {
    let transaction = database.begin_write().map_err(text)?;
    transaction.open_table(IDS).map_err(text)?;
    transaction.open_table(BY_EXPIRY).map_err(text)?;
    transaction.open_table(QUEUE).map_err(text)?;
    transaction.open_table(QUEUED_IDS).map_err(text)?;
    transaction.commit().map_err(text)
}

pub(super) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Records `batch` in the ledger, purges expired ids and keeps the store
/// under `max_entries`, dropping the oldest first.
pub(super) fn commit(database: &Database, batch: &[Entry], max_entries: u64) -> Result<()> {
    let now = now();
    let transaction = database.begin_write().map_err(text)?;
    {
        let mut ids = transaction.open_table(IDS).map_err(text)?;
        let mut by_expiry = transaction.open_table(BY_EXPIRY).map_err(text)?;
        for entry in batch.iter().filter(|entry| entry.expiry >= now) {
            let previous = ids.insert(entry.id.as_str(), entry.expiry).map_err(text)?.map(|old| old.value());
            if let Some(old) = previous {
                by_expiry.remove((old, entry.id.as_str())).map_err(text)?;
            }
            by_expiry.insert((entry.expiry, entry.id.as_str()), ()).map_err(text)?;
        }
        // Expired ids, then the oldest beyond the bound.
        loop {
            let Some((key, _)) = by_expiry.first().map_err(text)? else { break };
            let (when, id) = key.value();
            let over = ids.len().map_err(text)? > max_entries;
            if when >= now && !over {
                break;
            }
            let id = id.to_owned();
            drop(key);
            by_expiry.remove((when, id.as_str())).map_err(text)?;
            ids.remove(id.as_str()).map_err(text)?;
        }
    }
    transaction.commit().map_err(text)
}

/// The first of `ids` in `table` (the ledger or the queue's index) that
/// has not expired.
pub(super) fn find(database: &impl ReadableDatabase, ids: &[String], in_queue: bool) -> Result<Option<String>> {
    let transaction = database.begin_read().map_err(text)?;
    let now = now();
    if in_queue {
        let index = transaction.open_table(QUEUED_IDS).map_err(text)?;
        for id in ids {
            if index.get(id.as_str()).map_err(text)?.is_some() {
                return Ok(Some(id.clone()));
            }
        }
        return Ok(None);
    }
    let table = transaction.open_table(IDS).map_err(text)?;
    for id in ids {
        if let Some(expiry) = table.get(id.as_str()).map_err(text)?
            && expiry.value() >= now
        {
            return Ok(Some(id.clone()));
        }
    }
    Ok(None)
}

/// Appends `entries` to the outage queue; returns how many it holds now.
pub(super) fn queue_push(database: &Database, entries: &[Entry]) -> Result<u64> {
    let transaction = database.begin_write().map_err(text)?;
    let length = {
        let mut queue = transaction.open_table(QUEUE).map_err(text)?;
        let mut index = transaction.open_table(QUEUED_IDS).map_err(text)?;
        let mut next = queue.last().map_err(text)?.map_or(0, |(key, _)| key.value() + 1);
        for entry in entries {
            if index.get(entry.id.as_str()).map_err(text)?.is_some() {
                continue;
            }
            queue.insert(next, (entry.id.as_str(), entry.expiry)).map_err(text)?;
            index.insert(entry.id.as_str(), next).map_err(text)?;
            next += 1;
        }
        queue.len().map_err(text)?
    };
    transaction.commit().map_err(text)?;
    Ok(length)
}

/// The oldest `count` queued entries with their sequence numbers.
pub(super) fn queue_oldest(database: &Database, count: usize) -> Result<Vec<(u64, Entry)>> {
    let transaction = database.begin_read().map_err(text)?;
    let queue = transaction.open_table(QUEUE).map_err(text)?;
    let mut oldest = Vec::new();
    for item in queue.iter().map_err(text)?.take(count) {
        let (key, value) = item.map_err(text)?;
        let (id, expiry) = value.value();
        oldest.push((key.value(), Entry { id: id.to_owned(), expiry }));
    }
    Ok(oldest)
}

/// Removes replayed entries; returns how many are left.
pub(super) fn queue_remove(database: &Database, done: &[(u64, Entry)]) -> Result<u64> {
    let transaction = database.begin_write().map_err(text)?;
    let length = {
        let mut queue = transaction.open_table(QUEUE).map_err(text)?;
        let mut index = transaction.open_table(QUEUED_IDS).map_err(text)?;
        for (sequence, entry) in done {
            queue.remove(*sequence).map_err(text)?;
            index.remove(entry.id.as_str()).map_err(text)?;
        }
        queue.len().map_err(text)?
    };
    transaction.commit().map_err(text)?;
    Ok(length)
}

pub(super) fn queue_len(database: &Database) -> Result<u64> {
    let transaction = database.begin_read().map_err(text)?;
    transaction.open_table(QUEUE).map_err(text)?.len().map_err(text)
}

/// Whether `path` could be opened, found without opening it: nothing is
/// created and no lock is taken.
pub(super) fn check_file(path: &Path) -> std::result::Result<(), LedgerError> {
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
