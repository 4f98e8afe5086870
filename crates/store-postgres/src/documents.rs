//! Compliance documents in PostgreSQL (migration 7): each import one transaction (chain head locked first)
//! with its event.

use vouch_store::{Change, DocumentRow, Result, plan_document};
use vouch_types::{DocumentKey, DocumentKind, DocumentRecord};

use crate::rows::{backend, col};
use crate::{PostgresStore, append, lock_head};

impl PostgresStore {
    pub(crate) async fn put_document_impl(
        &self,
        kind: DocumentKind,
        key: DocumentKey,
        body: Vec<u8>,
        change: Change,
    ) -> Result<Option<DocumentRecord>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // The head lock serialises importers: nobody replaces the row between our read and our write.
        let head = lock_head(&tx).await?;
        let current = tx
            .query_opt(
                "SELECT digest FROM documents WHERE kind = $1 AND key = $2",
                &[&kind.as_str(), &key.as_str()],
            )
            .await
            .map_err(backend)?
            .map(|r| col::<Vec<u8>>(&r, 0, "documents"))
            .transpose()?
            .and_then(|d| <[u8; 32]>::try_from(d.as_slice()).ok());
        let Some((rec, event)) = plan_document(current, kind, key, body, &change)? else {
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO documents (kind, key, digest, body, imported_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kind, key) DO UPDATE SET digest = excluded.digest, body = excluded.body,
               imported_at = excluded.imported_at",
            &[
                &rec.kind.as_str(),
                &rec.key.as_str(),
                &&rec.digest[..],
                &rec.body,
                &rec.imported_at.unix_micros(),
            ],
        )
        .await
        .map_err(backend)?;
        append(&tx, head, vec![event], change.at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(rec))
    }

    pub(crate) async fn documents_impl(
        &self,
        kind: Option<DocumentKind>,
    ) -> Result<Vec<DocumentRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT kind, key, digest, body, imported_at FROM documents
                 WHERE $1::text IS NULL OR kind = $1",
                &[&kind.map(DocumentKind::as_str)],
            )
            .await
            .map_err(backend)?;
        let t = "documents";
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(
                DocumentRow {
                    kind: col(r, 0, t)?,
                    key: col(r, 1, t)?,
                    digest: col(r, 2, t)?,
                    body: col(r, 3, t)?,
                    imported_at: col(r, 4, t)?,
                }
                .decode()?,
            );
        }
        // By kind's order, then name: as SQLite answers.
        out.sort_by(|a, b| (a.kind, &a.key).cmp(&(b.kind, &b.key)));
        Ok(out)
    }
}
