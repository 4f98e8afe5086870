//! What can go wrong in a store, typed so that callers can answer each case precisely.

use vouch_types::{IllegalTransition, ValidationError};

/// A store operation that did not happen. Nothing was changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of thing (`device`, `token`).
        what: &'static str,
        /// Its id as text.
        id: String,
    },
    /// A thing with this id exists already.
    #[error("{what} {id} already exists")]
    AlreadyExists {
        /// What kind of thing.
        what: &'static str,
        /// Its id as text.
        id: String,
    },
    /// The record (a device, a policy) changed since the caller read it.
    #[error("{id} is at revision {actual}, not {expected}: read it again and retry")]
    RevisionMismatch {
        /// The record.
        id: String,
        /// The revision the caller expected.
        expected: u64,
        /// The revision stored.
        actual: u64,
    },
    /// The lifecycle does not allow the move.
    #[error(transparent)]
    IllegalTransition(#[from] IllegalTransition),
    /// A certificate step was refused (token used or expired, certificate not on hold, …).
    #[error(transparent)]
    Refused(#[from] crate::Refusal),
    /// The change would produce an invalid record.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A stored row could not be read back into a domain value: the database was edited outside Vouch or
    /// is damaged.
    #[error("corrupt row in {table}: {why}")]
    Corrupt {
        /// The table holding the row.
        table: &'static str,
        /// What could not be decoded.
        why: String,
    },
    /// Applying the schema failed.
    #[error("migration {version} failed: {why}")]
    Migration {
        /// The migration's version.
        version: u32,
        /// The engine's message.
        why: String,
    },
    /// The database is newer than this build of Vouch.
    #[error(
        "the database schema is at version {found}, newer than this build of Vouch knows ({known})"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: u32,
        /// The newest version this build knows.
        known: u32,
    },
    /// A consumer's cursor would move backwards (two processes share a consumer id, or a replayed commit).
    #[error("the cursor of {consumer} is at {saved}; {offered} would move it backwards")]
    CursorBackwards {
        /// The consumer.
        consumer: String,
        /// The position saved.
        saved: u64,
        /// The earlier position offered.
        offered: u64,
    },
    /// The engine failed (I/O, connection, constraint); the message is the engine's.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// A `Corrupt` error for `table`.
    pub fn corrupt(table: &'static str, why: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            table,
            why: why.to_string(),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Backend(format!("encoding a record: {e}"))
    }
}
