//! Compliance documents in SQLite (migration 7): each import one transaction with its event.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use vouch_store::{Change, DocumentRow, Result, plan_document};
use vouch_types::{DocumentKey, DocumentKind, DocumentRecord};

use crate::append;
use crate::rows::backend;

pub(crate) fn put(
    conn: &mut Connection,
    kind: DocumentKind,
    key: DocumentKey,
    body: Vec<u8>,
    change: Change,
) -> Result<Option<DocumentRecord>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let current: Option<Vec<u8>> = tx
        .prepare_cached("SELECT digest FROM documents WHERE kind = ?1 AND key = ?2")
        .map_err(backend)?
        .query_row(params![kind.as_str(), key.as_str()], |r| r.get(0))
        .optional()
        .map_err(backend)?;
    let current = current.and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok());
    let Some((rec, event)) = plan_document(current, kind, key, body, &change)? else {
        return Ok(None);
    };
    tx.prepare_cached(
        "INSERT INTO documents (kind, key, digest, body, imported_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (kind, key) DO UPDATE SET digest = excluded.digest, body = excluded.body,
           imported_at = excluded.imported_at",
    )
    .map_err(backend)?
    .execute(params![
        rec.kind.as_str(),
        rec.key.as_str(),
        &rec.digest[..],
        &rec.body,
        rec.imported_at.unix_micros(),
    ])
    .map_err(backend)?;
    append(&tx, vec![(event, None)], change.at)?;
    tx.commit().map_err(backend)?;
    Ok(Some(rec))
}

pub(crate) fn list(conn: &Connection, kind: Option<DocumentKind>) -> Result<Vec<DocumentRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT kind, key, digest, body, imported_at FROM documents
             WHERE ?1 IS NULL OR kind = ?1 ORDER BY kind, key",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map(params![kind.map(DocumentKind::as_str)], |r| {
            Ok(DocumentRow {
                kind: r.get(0)?,
                key: r.get(1)?,
                digest: r.get(2)?,
                body: r.get(3)?,
                imported_at: r.get(4)?,
            })
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(backend)?.decode()?);
    }
    // Kinds sort by their order, not their names, for callers that read SBOMs before advisories.
    out.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
    Ok(out)
}
