//! Operators' second factors in PostgreSQL: the rows, and each write one transaction with the events that
//! the shared rules in `vouch-store` plan (tries, backoff, lock, reset). Writes with an event lock the chain
//! head first, like every other write; counting a try locks only the factor's row.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;
use vouch_store::{
    Change, MfaAttempt, MfaRecord, MfaRow, Result, StoreError, plan_mfa, plan_mfa_attempt,
    plan_mfa_failure, plan_mfa_reset, step_column,
};
use vouch_types::{Timestamp, TokenId};

use crate::rows::{backend, col};
use crate::{PostgresStore, append, lock_head};

const COLUMNS: &str =
    "token_id, sealed_secret, confirmed, last_step, failures, retry_at, enroll_until";

fn mfa_from_row(r: &Row) -> Result<MfaRecord> {
    let t = "operator_mfa";
    MfaRow {
        token: col(r, 0, t)?,
        sealed_secret: col(r, 1, t)?,
        confirmed: col(r, 2, t)?,
        last_step: col(r, 3, t)?,
        failures: col(r, 4, t)?,
        retry_at: col(r, 5, t)?,
        enroll_until: col(r, 6, t)?,
    }
    .decode()
}

/// The row for `token`, locked for the rest of the transaction when `lock`.
async fn read(c: &impl GenericClient, token: TokenId, lock: bool) -> Result<Option<MfaRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM operator_mfa WHERE token_id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(&sql, &[&token.to_bytes().to_vec()])
        .await
        .map_err(backend)?
        .as_ref()
        .map(mfa_from_row)
        .transpose()
}

async fn require_token(c: &impl GenericClient, token: TokenId) -> Result<()> {
    if c.query_opt(
        "SELECT 1 FROM tokens WHERE id = $1",
        &[&token.to_bytes().to_vec()],
    )
    .await
    .map_err(backend)?
    .is_none()
    {
        return Err(StoreError::NotFound {
            what: "token",
            id: token.to_string(),
        });
    }
    Ok(())
}

async fn upsert(c: &impl GenericClient, mfa: &MfaRecord) -> Result<()> {
    let last_step = step_column(mfa.last_step)?;
    c.execute(
        &format!(
            "INSERT INTO operator_mfa ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (token_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
             confirmed = excluded.confirmed, last_step = excluded.last_step, failures = excluded.failures,
             retry_at = excluded.retry_at, enroll_until = excluded.enroll_until"
        ),
        &[
            &mfa.token.to_bytes().to_vec(),
            &mfa.sealed_secret,
            &mfa.confirmed,
            &last_step,
            &i64::from(mfa.failures),
            &mfa.retry_at.map(Timestamp::unix_micros),
            &mfa.enroll_until.map(Timestamp::unix_micros),
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

impl PostgresStore {
    pub(crate) async fn get_mfa_impl(&self, token: TokenId) -> Result<Option<MfaRecord>> {
        let client = self.client().await?;
        read(&client, token, false).await
    }

    pub(crate) async fn put_mfa_impl(&self, mfa: MfaRecord, change: Change) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        require_token(&tx, mfa.token).await?;
        upsert(&tx, &mfa).await?;
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
                "UPDATE operator_mfa SET last_step = $2, failures = 0, retry_at = NULL
                 WHERE token_id = $1 AND last_step < $2",
                &[&token.to_bytes().to_vec(), &step],
            )
            .await
            .map_err(backend)?;
        Ok(n == 1)
    }

    pub(crate) async fn take_mfa_attempt_impl(
        &self,
        token: TokenId,
        now: Timestamp,
    ) -> Result<MfaAttempt> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let attempt = plan_mfa_attempt(read(&tx, token, true).await?.as_ref(), now);
        if let MfaAttempt::Granted(rec) = &attempt {
            upsert(&tx, rec).await?;
            tx.commit().await.map_err(backend)?;
        }
        Ok(attempt)
    }

    pub(crate) async fn record_mfa_failure_impl(
        &self,
        token: TokenId,
        change: Change,
        source: Option<String>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let current = read(&tx, token, true).await?;
        let (next, event) = plan_mfa_failure(token, current.as_ref(), &change, source.as_deref());
        if let Some(next) = &next {
            upsert(&tx, next).await?;
        }
        append(&tx, head, vec![event], change.at).await?;
        tx.commit().await.map_err(backend)
    }

    pub(crate) async fn reset_mfa_impl(
        &self,
        token: TokenId,
        enroll_until: Timestamp,
        change: Change,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        require_token(&tx, token).await?;
        let current = read(&tx, token, true).await?;
        let (next, event) = plan_mfa_reset(token, current.as_ref(), enroll_until, &change);
        upsert(&tx, &next).await?;
        append(&tx, head, vec![event], change.at).await?;
        tx.commit().await.map_err(backend)
    }
}
