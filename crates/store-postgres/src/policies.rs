//! Policies and operators' second factors in PostgreSQL: each write one transaction (chain head locked first)
//! with the events that the shared rules in `vouch-store` plan.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use vouch_store::{
    Change, MfaRecord, MfaRow, PolicyRow, PolicyWrite, Result, StoreError, plan_mfa,
    plan_policy_write, step_column,
};
use vouch_types::{PolicyId, PolicyRecord, TokenId};

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

fn mfa_from_row(r: &Row) -> Result<MfaRecord> {
    let t = "operator_mfa";
    MfaRow {
        token: col(r, 0, t)?,
        sealed_secret: col(r, 1, t)?,
        confirmed: col(r, 2, t)?,
        last_step: col(r, 3, t)?,
    }
    .decode()
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

    pub(crate) async fn get_mfa_impl(&self, token: TokenId) -> Result<Option<MfaRecord>> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT token_id, sealed_secret, confirmed, last_step FROM operator_mfa WHERE token_id = $1",
                &[&token.to_bytes().to_vec()],
            )
            .await
            .map_err(backend)?
            .as_ref()
            .map(mfa_from_row)
            .transpose()
    }

    pub(crate) async fn put_mfa_impl(&self, mfa: MfaRecord, change: Change) -> Result<()> {
        let last_step = step_column(mfa.last_step)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let id = mfa.token.to_bytes().to_vec();
        if tx
            .query_opt("SELECT 1 FROM tokens WHERE id = $1", &[&id])
            .await
            .map_err(backend)?
            .is_none()
        {
            return Err(StoreError::NotFound {
                what: "token",
                id: mfa.token.to_string(),
            });
        }
        tx.execute(
            "INSERT INTO operator_mfa (token_id, sealed_secret, confirmed, last_step) VALUES ($1, $2, $3, $4)
             ON CONFLICT (token_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
             confirmed = excluded.confirmed, last_step = excluded.last_step",
            &[&id, &mfa.sealed_secret, &mfa.confirmed, &last_step],
        )
        .await
        .map_err(backend)?;
        append(&tx, head, vec![plan_mfa(&mfa, &change)], change.at).await?;
        tx.commit().await.map_err(backend)
    }

    pub(crate) async fn use_mfa_step_impl(&self, token: TokenId, step: u64) -> Result<bool> {
        let step = step_column(step)?;
        let client = self.client().await?;
        // One statement, so atomic on its own (no event, so no chain head to lock): of two servers using one
        // code, the second waits on the row lock, then finds `last_step` moved and changes nothing.
        let n = client
            .execute(
                "UPDATE operator_mfa SET last_step = $2 WHERE token_id = $1 AND last_step < $2",
                &[&token.to_bytes().to_vec(), &step],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }
}
