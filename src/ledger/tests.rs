use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTableMetadata};

use super::redb_store::{IDS, RedbFile, commit};
use super::*;
use crate::config::LedgerStore;

fn file_settings(path: &Path, max_entries: u64) -> LedgerSettings {
    LedgerSettings {
        store: LedgerStore::File(path.to_owned()),
        max_entries,
        path: path.to_owned(),
        queue_max_entries: 1000,
    }
}

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
        let status = Arc::new(LedgerStatus::default());
        let ledger =
            Ledger::open(&file_settings(&path, 5), Duration::from_secs(3600), Arc::clone(&status)).await.unwrap();
        for n in 0..8 {
            ledger.record(&format!("<m{n}@example.com>"));
        }
        // The writer commits asynchronously: wait until nothing is pending.
        for _ in 0..100 {
            if status.pending.get() == 0 && status.write_seconds_count() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(ledger.find(&["m7@example.com".into()]).await.unwrap().as_deref(), Some("m7@example.com"));
        assert_eq!(status.pending.get(), 0);
        assert_eq!(ledger.find(&["<nope@example.com>".into()]).await.unwrap(), None);
        assert!(status.health().unwrap().0, "{:?}", status.health());
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

#[tokio::test]
async fn a_second_opener_is_told_who_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.redb");
    let settings = file_settings(&path, 1000);
    let _first = Ledger::open(&settings, Duration::from_secs(3600), Arc::default()).await.unwrap();
    let Err(second) = Ledger::open(&settings, Duration::from_secs(3600), Arc::default()).await else {
        panic!("opened twice")
    };
    assert!(matches!(second, LedgerError::Locked { .. }), "{second}");
    let message = second.to_string();
    assert!(message.contains("another batv-proxy") && message.contains(&path.display().to_string()), "{message}");
    assert!(check(&settings).is_ok(), "checking does not need the lock: {:?}", check(&settings));
}

#[test]
fn check_finds_what_would_stop_the_ledger_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str| file_settings(&dir.path().join(name), 1000);
    std::fs::write(dir.path().join("plain"), "not a database").unwrap();
    std::fs::write(dir.path().join("empty.redb"), "").unwrap();
    assert!(check(&file("new/deeper/ledger.redb")).is_ok(), "directories are made at start");
    assert!(check(&file("empty.redb")).is_ok(), "redb makes an empty file a database");
    let redis = |url: &str| {
        let mut settings = file("queue.redb");
        settings.store = LedgerStore::Redis(crate::config::RedisSettings {
            topology: crate::config::RedisTopology::Single(url.into()),
            tls: url.starts_with("rediss"),
            ca_file: None,
            client_cert: None,
            username: None,
            password: None,
            wait_replicas: 0,
        });
        settings
    };
    for (settings, needle) in [
        (file("plain"), "not a redb database"),
        (file("plain/ledger.redb"), "is not a directory"),
        (file_settings(dir.path(), 1000), "is not a file"),
        (redis("redis://[::1"), "redis"),
    ] {
        let error = check(&settings).expect_err(needle).to_string();
        assert!(error.contains(needle), "{settings:?}: {error}");
    }
    assert!(check(&redis("redis://127.0.0.1:1/0")).is_ok(), "no connection is tried");
    assert!(check(&redis("rediss://127.0.0.1:1/0")).is_ok(), "TLS is built in (rustls)");
}

#[test]
fn expired_ids_are_purged() {
    let dir = tempfile::tempdir().unwrap();
    let database = Database::create(dir.path().join("l.redb")).unwrap();
    let entry = |id: &str, expiry: u64| Entry { id: id.into(), expiry };
    let now = redb_store::now();
    commit(&database, &[entry("old@x", now + 1)], 100).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    commit(&database, &[entry("new@x", now + 3600)], 100).unwrap();
    let transaction = database.begin_read().unwrap();
    let ids = transaction.open_table(IDS).unwrap();
    assert!(ids.get("old@x").unwrap().is_none());
    assert!(ids.get("new@x").unwrap().is_some());
}

#[test]
fn the_outage_queue_gives_back_the_oldest_first_and_forgets_what_was_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let file = RedbFile::open(&dir.path().join("queue.redb")).unwrap();
    let handle = file.handle().unwrap();
    let entry = |n: u32| Entry { id: format!("q{n}@x"), expiry: 4_000_000_000 };
    redb_store::queue_push(&handle, &(0..5).map(entry).collect::<Vec<_>>()).unwrap();
    let length = redb_store::queue_push(&handle, &[entry(5), entry(2)]).unwrap();
    assert_eq!(length, 6, "an id already queued is not queued twice");
    let oldest = redb_store::queue_oldest(&handle, 3).unwrap();
    let ids: Vec<&str> = oldest.iter().map(|(_, e)| e.id.as_str()).collect();
    assert_eq!(ids, ["q0@x", "q1@x", "q2@x"]);
    assert_eq!(redb_store::find(&*handle, &["q1@x".into()], true).unwrap().as_deref(), Some("q1@x"));
    assert_eq!(redb_store::queue_remove(&handle, &oldest).unwrap(), 3);
    assert_eq!(redb_store::find(&*handle, &["q1@x".into()], true).unwrap(), None);
    let next: Vec<String> = redb_store::queue_oldest(&handle, 10).unwrap().into_iter().map(|(_, e)| e.id).collect();
    assert_eq!(next, ["q3@x", "q4@x", "q5@x"]);
    drop(handle);
    file.reopen().expect("reopened in place when no reader holds it");
    assert_eq!(redb_store::queue_len(&file.handle().unwrap()).unwrap(), 3, "kept across the reopen");
}

/// Sizing for docs/cluster.md: bytes per entry of the redb ledger, for
/// 100 000 Message-IDs of 50 characters committed in batches of 512 as the
/// writer does. Run: cargo test --release --lib -- --ignored --nocapture redb_bytes_per_entry
#[test]
#[ignore]
fn redb_bytes_per_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sizing.redb");
    let database = Database::create(&path).unwrap();
    let count = 100_000u32;
    let expiry = redb_store::now() + 7 * 86_400;
    let ids: Vec<Entry> =
        (0..count).map(|n| Entry { id: format!("20261204173012.{n:010}@mailhost0001.example.com"), expiry }).collect();
    assert_eq!(ids[0].id.len(), 50);
    for batch in ids.chunks(super::writer::BATCH) {
        commit(&database, batch, 1_000_000).unwrap();
    }
    drop(database);
    let bytes = std::fs::metadata(&path).unwrap().len();
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&path).unwrap().blocks() * 512
    };
    eprintln!(
        "redb: {count} ids of 50 characters: file {bytes} bytes ({:.0} per entry), allocated {allocated} ({:.0} per entry)",
        bytes as f64 / f64::from(count),
        allocated as f64 / f64::from(count)
    );
}
