//! What the use-case tests share: a real SQLite store in a temporary directory and an operator's change.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use vouch_store::{Change, DeviceEdit, Store};
use vouch_store_sqlite::{Durability, SqliteStore};
use vouch_types::{Actor, DeviceId, DeviceState, Timestamp};

/// The fixed time the tests act at (late 2025).
pub const NOW_MICROS: i64 = 1_764_000_000_000_000;

/// A fresh SQLite store; keep the directory alive as long as the store.
pub fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("vouch.db"), Durability::Normal).unwrap();
    (dir, store)
}

/// A change made by the operator `who` at [`NOW_MICROS`].
pub fn change(who: &str) -> Change {
    Change {
        actor: Actor::System(who.into()),
        reason: None,
        at: Timestamp::from_unix_micros(NOW_MICROS),
    }
}

/// A capture from the shared corpus.
pub fn pcap(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/pcaps")
        .join(name)
}

/// Retires `id` (a state from which nothing enrolls or onboards).
pub async fn retire(store: &dyn Store, id: DeviceId) {
    store
        .edit_device(
            id,
            DeviceEdit::Transition(DeviceState::Retired),
            None,
            change("operator"),
        )
        .await
        .unwrap();
}
