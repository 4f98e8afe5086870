//! Compliance documents (SBOMs, advisories, the KEV catalogue, VEX): the write rule every backend shares.
//!
//! A document is kept whole under its kind and name, replaced by a later import under the same name, and each
//! import that changes the bytes is one `compliance.document_imported` event (with the bytes' digest, not the
//! bytes) in the same transaction: the evaluator follows the feed, and the log says what it read when.
//! Importing the same bytes again writes nothing.

use sha2::{Digest as _, Sha256};
use vouch_events::{Action, Digest, DocumentLogged, EventDraft, PAYLOAD_VERSION};
use vouch_types::{DocumentKey, DocumentKind, DocumentRecord, MAX_DOCUMENT_BYTES, ValidationError};

use crate::{Change, StoreError};

/// The record to write and its event, or `None` when `current_digest` (the digest kept under that name, if
/// any) is already the digest of `body`. Refuses an empty document or one over [`MAX_DOCUMENT_BYTES`].
pub fn plan_document(
    current_digest: Option<[u8; 32]>,
    kind: DocumentKind,
    key: DocumentKey,
    body: Vec<u8>,
    change: &Change,
) -> Result<Option<(DocumentRecord, EventDraft)>, StoreError> {
    if body.is_empty() || body.len() > MAX_DOCUMENT_BYTES {
        return Err(ValidationError::new(
            "document",
            format!(
                "must hold 1 to {MAX_DOCUMENT_BYTES} bytes, not {}",
                body.len()
            ),
        )
        .into());
    }
    let digest: [u8; 32] = Sha256::digest(&body).into();
    if current_digest == Some(digest) {
        return Ok(None);
    }
    let event = EventDraft {
        device_id: None,
        actor: change.actor.clone(),
        action: Action::DocumentImported,
        before: None,
        after: Some(crate::plan::after(&DocumentLogged {
            v: PAYLOAD_VERSION,
            kind,
            key: key.clone(),
            digest: Digest(digest),
            bytes: body.len() as u64,
        })),
        reason: change.reason.clone(),
    };
    Ok(Some((
        DocumentRecord {
            kind,
            key,
            digest,
            body,
            imported_at: change.at,
        },
        event,
    )))
}

/// A document row as a backend reads it back: kind and key as text, checked here.
pub struct DocumentRow {
    /// `kind` column.
    pub kind: String,
    /// `key` column.
    pub key: String,
    /// `digest` column (32 bytes).
    pub digest: Vec<u8>,
    /// `body` column.
    pub body: Vec<u8>,
    /// `imported_at` column (µs since the epoch).
    pub imported_at: i64,
}

impl DocumentRow {
    /// The typed record, or `Corrupt` naming what did not parse.
    pub fn decode(self) -> Result<DocumentRecord, StoreError> {
        let corrupt = |why: String| StoreError::Corrupt {
            table: "documents",
            why,
        };
        Ok(DocumentRecord {
            kind: self
                .kind
                .parse()
                .map_err(|e| corrupt(format!("kind: {e}")))?,
            key: self.key.parse().map_err(|e| corrupt(format!("key: {e}")))?,
            digest: <[u8; 32]>::try_from(self.digest.as_slice())
                .map_err(|_| corrupt("digest is not 32 bytes".into()))?,
            body: self.body,
            imported_at: vouch_types::Timestamp::from_unix_micros(self.imported_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use vouch_types::{Actor, Timestamp};

    use super::*;

    fn change() -> Change {
        Change {
            actor: Actor::Cli("ops".into()),
            reason: None,
            at: Timestamp::from_unix_micros(1),
        }
    }

    #[test]
    fn the_same_bytes_write_nothing_and_sizes_are_bounded() {
        let key: DocumentKey = "kev".parse().unwrap();
        let (rec, event) = plan_document(
            None,
            DocumentKind::Kev,
            key.clone(),
            b"{}".to_vec(),
            &change(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(event.action, Action::DocumentImported);
        assert!(
            plan_document(
                Some(rec.digest),
                DocumentKind::Kev,
                key.clone(),
                b"{}".to_vec(),
                &change()
            )
            .unwrap()
            .is_none()
        );
        assert!(
            plan_document(None, DocumentKind::Kev, key.clone(), Vec::new(), &change()).is_err()
        );
        let big = vec![b' '; MAX_DOCUMENT_BYTES + 1];
        assert!(plan_document(None, DocumentKind::Kev, key, big, &change()).is_err());
    }
}
