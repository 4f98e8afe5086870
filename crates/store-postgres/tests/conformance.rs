//! The store conformance suite against a real PostgreSQL server, plus tampering with the log through SQL.
//!
//! The server is `VOUCH_TEST_POSTGRES_URL` when set (a role that may create databases), otherwise a throw-away
//! cluster this test process starts. There is no skipping: without a server these tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, OnceLock};

use vouch_store::Store;
use vouch_store::conformance::RawSql;
use vouch_store_postgres::PostgresStore;
use vouch_store_postgres::testing::{TempCluster, create_database, with_database};

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

async fn reopenable() -> (Arc<dyn Store>, vouch_store::conformance::feed::Reopen) {
    let url = fresh_url().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url, 4).await.unwrap());
    let reopen: vouch_store::conformance::feed::Reopen = Arc::new(move || {
        let url = url.clone();
        Box::pin(async move {
            Arc::new(PostgresStore::connect(&url, 4).await.unwrap()) as Arc<dyn Store>
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
    let url = fresh_url().await;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::connect(&url, 4).await.unwrap());
    let sql: RawSql = Arc::new(move |statement: String| {
        let url = url.clone();
        Box::pin(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            let task = tokio::spawn(conn);
            client.batch_execute(&statement).await.unwrap();
            drop(client);
            let _ = task.await;
        })
    });
    (store, sql)
}

vouch_store::tamper_suite!(tamperable());

#[tokio::test]
async fn migrations_are_idempotent_across_restarts() {
    let url = fresh_url().await;
    let a = PostgresStore::connect(&url, 2).await.unwrap();
    let b = PostgresStore::connect(&url, 2).await.unwrap();
    a.ping().await.unwrap();
    b.ping().await.unwrap();
}
