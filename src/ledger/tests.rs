use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTableMetadata};

use super::redb_store::{IDS, commit};
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
