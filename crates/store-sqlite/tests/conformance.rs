//! The store conformance suite against a real SQLite file, plus tampering with the log through SQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use vouch_events::{ChainBreak, EventSeq};
use vouch_store::conformance::RawSql;
use vouch_store::{Change, Store, verify_audit};
use vouch_store_sqlite::{Durability, SqliteStore};
use vouch_types::{Actor, Timestamp};

async fn fresh() -> Arc<dyn Store> {
    // The directory must outlive the store: leak it for the test's lifetime (the OS cleans /tmp).
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(SqliteStore::open(dir.join("vouch.db"), Durability::Normal).unwrap())
}

vouch_store::conformance_suite!(fresh());

async fn reopenable() -> (Arc<dyn Store>, vouch_store::conformance::feed::Reopen) {
    let path = tempfile::tempdir().unwrap().keep().join("vouch.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, Durability::Normal).unwrap());
    let reopen: vouch_store::conformance::feed::Reopen = Arc::new(move || {
        let path = path.clone();
        Box::pin(async move {
            Arc::new(SqliteStore::open(path, Durability::Normal).unwrap()) as Arc<dyn Store>
        })
    });
    (store, reopen)
}

vouch_store::feed_suite!(reopenable());

mod observations {
    use super::*;
    vouch_store::observe_suite!(reopenable());
}

async fn tamperable() -> (Arc<dyn Store>, RawSql) {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("vouch.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path, Durability::Normal).unwrap());
    let sql: RawSql = Arc::new(move |statement: String| {
        let path = path.clone();
        Box::pin(async move {
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute_batch(&statement).unwrap();
        })
    });
    (store, sql)
}

vouch_store::tamper_suite!(tamperable());

#[tokio::test]
async fn pointing_an_event_at_another_device_is_named() {
    let (store, sql) = tamperable().await;
    let batch = (0..10)
        .map(vouch_store::conformance::sample_device)
        .collect();
    let change = Change {
        actor: Actor::Cli("tester".into()),
        reason: None,
        at: Timestamp::from_unix_micros(1),
    };
    store.import_devices(batch, change).await.unwrap();
    sql("UPDATE events SET device_num = 2 WHERE seq = 5".into()).await;
    let r = verify_audit(&*store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Altered { seq: EventSeq(5) })
    );
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("vouch.db");
    let store = SqliteStore::open(&path, Durability::Normal).unwrap();
    let change = Change {
        actor: Actor::Cli("tester".into()),
        reason: None,
        at: Timestamp::from_unix_micros(1),
    };
    let batch = (0..25)
        .map(vouch_store::conformance::sample_device)
        .collect();
    store.import_devices(batch, change).await.unwrap();
    drop(store);
    let again = SqliteStore::open(&path, Durability::Full).unwrap();
    let r = verify_audit(&again).await.unwrap();
    assert!(r.is_intact());
    assert_eq!(r.verified, 25);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("vouch.db");
    drop(SqliteStore::open(&path, Durability::Normal).unwrap());
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = SqliteStore::open(&path, Durability::Full).unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
}
