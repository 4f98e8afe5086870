//! The store conformance suite against a real SQLite file, plus tampering with the log through SQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use vouch_events::{ChainBreak, EventSeq};
use vouch_store::{Change, Store, verify_audit};
use vouch_store_sqlite::{Durability, SqliteStore};
use vouch_types::{Actor, Timestamp};

async fn fresh() -> Arc<dyn Store> {
    // The directory must outlive the store: leak it for the test's lifetime (the OS cleans /tmp).
    let dir = tempfile::tempdir().unwrap().keep();
    Arc::new(SqliteStore::open(dir.join("vouch.db"), Durability::Normal).unwrap())
}

vouch_store::conformance_suite!(fresh());

async fn logged_store(n: u32) -> (Arc<SqliteStore>, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("vouch.db");
    let store = Arc::new(SqliteStore::open(&path, Durability::Normal).unwrap());
    let change = Change {
        actor: Actor::Cli("tester".into()),
        reason: None,
        at: Timestamp::from_unix_micros(1),
    };
    let batch = (0..n)
        .map(vouch_store::conformance::sample_device)
        .collect();
    store.import_devices(batch, change).await.unwrap();
    (store, path)
}

fn sql(path: &std::path::Path, statement: &str) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(statement).unwrap();
}

#[tokio::test]
async fn editing_an_event_with_sql_is_named() {
    let (store, path) = logged_store(10).await;
    sql(
        &path,
        "UPDATE events SET reason = 'nothing to see' WHERE seq = 4",
    );
    let r = verify_audit(&*store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Altered { seq: EventSeq(4) })
    );
    assert_eq!(r.verified, 3);
}

#[tokio::test]
async fn deleting_an_event_with_sql_is_named() {
    let (store, path) = logged_store(10).await;
    sql(&path, "DELETE FROM events WHERE seq = 6");
    let r = verify_audit(&*store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Missing {
            expected: EventSeq(6),
            found: EventSeq(7)
        })
    );
}

#[tokio::test]
async fn deleting_and_renumbering_is_named() {
    let (store, path) = logged_store(10).await;
    sql(
        &path,
        "DELETE FROM events WHERE seq = 6; UPDATE events SET seq = seq - 1 WHERE seq > 6;",
    );
    let r = verify_audit(&*store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Altered { seq: EventSeq(6) })
    );
}

#[tokio::test]
async fn reordering_events_with_sql_is_named() {
    let (store, path) = logged_store(10).await;
    // Swap the contents of events 3 and 8, keeping positions.
    sql(
        &path,
        "UPDATE events SET seq = -3 WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = 8;
         UPDATE events SET seq = 8 WHERE seq = -3;",
    );
    let r = verify_audit(&*store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Altered { seq: EventSeq(3) })
    );
}

#[tokio::test]
async fn removing_the_newest_events_is_named() {
    let (store, path) = logged_store(10).await;
    sql(&path, "DELETE FROM events WHERE seq > 7");
    let r = verify_audit(&*store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Truncated {
            last: EventSeq(7),
            head: EventSeq(10)
        })
    );
}

#[tokio::test]
async fn reopening_keeps_everything() {
    let (store, path) = logged_store(25).await;
    drop(store);
    let again = SqliteStore::open(&path, Durability::Full).unwrap();
    let r = verify_audit(&again).await.unwrap();
    assert!(r.is_intact());
    assert_eq!(r.verified, 25);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let (_store, path) = logged_store(1).await;
    sql(&path, "PRAGMA user_version = 99");
    let err = SqliteStore::open(&path, Durability::Full).unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[tokio::test]
async fn pointing_an_event_at_another_device_is_named() {
    let (store, path) = logged_store(10).await;
    sql(&path, "UPDATE events SET device_num = 2 WHERE seq = 5");
    let r = verify_audit(&*store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Altered { seq: EventSeq(5) })
    );
}
