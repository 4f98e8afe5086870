//! Policies and operators' second factors in PostgreSQL: each write one transaction (chain head locked first)
//! with the events that the shared rules in `vouch-store` plan.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use vouch_store::{Change, PolicyRow, PolicyWrite, Result, plan_policy_write};
use vouch_types::{PolicyId, PolicyRecord};

use crate::rows::{backend, col};
use crate::{PostgresStore, append, lock_head};

const POLICY_COLUMNS: &str = "id, version, text, mode, removed, author, at";

fn policy_from_row(r: &Row) -> Result<PolicyRecord> {
    let t = "policy_versions";
    PolicyRow {
        id: col(r, 0, t)?,
        version: col(r, 1, t)?,
        text: col(r, 2, t)?,
        mode: col(r, 3, t)?,
        removed: col(r, 4, t)?,
        author: col(r, 5, t)?,
        at: col(r, 6, t)?,
    }
    .decode()
}

async fn policy_rows(
    c: &impl GenericClient,
    filter: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<PolicyRecord>> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policy_versions p {filter}");
    let stmt = c.prepare_cached(&sql).await.map_err(backend)?;
    c.query(&stmt, args)
        .await
        .map_err(backend)?
        .iter()
        .map(policy_from_row)
        .collect()
}

impl PostgresStore {
    pub(crate) async fn policies_impl(&self) -> Result<Vec<PolicyRecord>> {
        let client = self.client().await?;
        policy_rows(
            &client,
            "WHERE version = (SELECT MAX(version) FROM policy_versions WHERE id = p.id) AND NOT removed
             ORDER BY id",
            &[],
        )
        .await
    }

    pub(crate) async fn policy_history_impl(&self, id: &PolicyId) -> Result<Vec<PolicyRecord>> {
        let client = self.client().await?;
        policy_rows(&client, "WHERE id = $1 ORDER BY version", &[&id.as_str()]).await
    }

    pub(crate) async fn write_policies_impl(
        &self,
        writes: Vec<PolicyWrite>,
        change: Change,
    ) -> Result<Vec<PolicyRecord>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // The head lock serialises policy writers too: nobody else adds a version between our read and insert.
        let head = lock_head(&tx).await?;
        let mut written = Vec::new();
        let mut events = Vec::new();
        for write in &writes {
            // Read inside the transaction, after the earlier writes of this batch: a later write to the same
            // policy builds on them.
            let current = policy_rows(
                &tx,
                "WHERE id = $1 ORDER BY version DESC LIMIT 1",
                &[&write.id.as_str()],
            )
            .await?
            .pop();
            let Some((next, event)) = plan_policy_write(current.as_ref(), write, &change)? else {
                continue;
            };
            let stmt = tx
                .prepare_cached(
                    "INSERT INTO policy_versions (id, version, text, mode, removed, author, at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .await
                .map_err(backend)?;
            tx.execute(
                &stmt,
                &[
                    &next.id.as_str(),
                    &i64::from(next.version),
                    &next.text,
                    &next.mode.as_str(),
                    &next.removed,
                    &next.author.to_string(),
                    &next.at.unix_micros(),
                ],
            )
            .await
            .map_err(backend)?;
            events.push(event);
            written.push(next);
        }
        if written.is_empty() {
            return Ok(written);
        }
        tx.execute(
            "UPDATE policy_state SET generation = generation + 1 WHERE id = 1",
            &[],
        )
        .await
        .map_err(backend)?;
        append(&tx, head, events, change.at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(written)
    }

    pub(crate) async fn policy_generation_impl(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_one("SELECT generation FROM policy_state WHERE id = 1", &[])
            .await
            .map_err(backend)?;
        Ok(col::<i64>(&row, 0, "policy_state")? as u64)
    }
}
