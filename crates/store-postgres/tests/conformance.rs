//! The store conformance suite against a real PostgreSQL server, plus tampering with the log through SQL.
//!
//! The server is `VOUCH_TEST_POSTGRES_URL` when set (a role that may create databases), otherwise a throw-away
//! cluster this test process starts. There is no skipping: without a server these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};

use vouch_events::{ChainBreak, EventSeq};
use vouch_store::{Change, Store, verify_audit};
use vouch_store_postgres::PostgresStore;
use vouch_store_postgres::testing::{TempCluster, create_database, with_database};
use vouch_types::{Actor, Timestamp};

fn server_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("VOUCH_TEST_POSTGRES_URL") {
            return url;
        }
        let cluster = TempCluster::start()
            .unwrap_or_else(|e| panic!("no PostgreSQL for the store tests: {e}"));
        let url = cluster.url("postgres");
        // The cluster lives until the process exits; its watchdog cleans up then.
        std::mem::forget(cluster);
        url
    })
    .clone()
}

async fn fresh_url() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let base = tokio::task::spawn_blocking(server_url).await.unwrap();
    let db = format!(
        "vouch_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    create_database(&base, &db).await.unwrap();
    with_database(&base, &db)
}

async fn fresh() -> Arc<dyn Store> {
    Arc::new(PostgresStore::connect(&fresh_url().await, 8).await.unwrap())
}

vouch_store::conformance_suite!(fresh());

async fn logged_store(n: u32) -> (PostgresStore, tokio_postgres::Client) {
    let url = fresh_url().await;
    let store = PostgresStore::connect(&url, 4).await.unwrap();
    let change = Change {
        actor: Actor::Cli("tester".into()),
        reason: None,
        at: Timestamp::from_unix_micros(1),
    };
    let batch = (0..n)
        .map(vouch_store::conformance::sample_device)
        .collect();
    store.import_devices(batch, change).await.unwrap();
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    (store, client)
}

#[tokio::test]
async fn editing_an_event_with_sql_is_named() {
    let (store, sql) = logged_store(10).await;
    sql.batch_execute("UPDATE events SET actor = 'cli:someone-else' WHERE seq = 4")
        .await
        .unwrap();
    let r = verify_audit(&store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Altered { seq: EventSeq(4) })
    );
    assert_eq!(r.verified, 3);
}

#[tokio::test]
async fn deleting_an_event_with_sql_is_named() {
    let (store, sql) = logged_store(10).await;
    sql.batch_execute("DELETE FROM events WHERE seq = 6")
        .await
        .unwrap();
    let r = verify_audit(&store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Missing {
            expected: EventSeq(6),
            found: EventSeq(7)
        })
    );
}

#[tokio::test]
async fn reordering_events_with_sql_is_named() {
    let (store, sql) = logged_store(10).await;
    sql.batch_execute(
        "UPDATE events SET seq = -3 WHERE seq = 3; UPDATE events SET seq = 3 WHERE seq = 8;
         UPDATE events SET seq = 8 WHERE seq = -3;",
    )
    .await
    .unwrap();
    let r = verify_audit(&store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Altered { seq: EventSeq(3) })
    );
}

#[tokio::test]
async fn removing_the_newest_events_is_named() {
    let (store, sql) = logged_store(10).await;
    sql.batch_execute("DELETE FROM events WHERE seq > 7")
        .await
        .unwrap();
    let r = verify_audit(&store).await.unwrap();
    assert_eq!(
        r.first_break,
        Some(ChainBreak::Truncated {
            last: EventSeq(7),
            head: EventSeq(10)
        })
    );
}

#[tokio::test]
async fn migrations_are_idempotent_across_restarts() {
    let url = fresh_url().await;
    let a = PostgresStore::connect(&url, 2).await.unwrap();
    let b = PostgresStore::connect(&url, 2).await.unwrap();
    a.ping().await.unwrap();
    b.ping().await.unwrap();
}
