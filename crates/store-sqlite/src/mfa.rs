//! Operators' second factors in SQLite: the rows, and each write one transaction with the events that the
//! shared rules in `vouch-store` plan (tries, backoff, lock, reset).

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use vouch_store::{
    Change, MfaAttempt, MfaRecord, MfaRow, Result, StoreError, plan_mfa, plan_mfa_attempt,
    plan_mfa_failure, plan_mfa_reset, step_column,
};
use vouch_types::{Timestamp, TokenId};

use crate::append;
use crate::rows::backend;

const COLUMNS: &str =
    "token_id, sealed_secret, confirmed, last_step, failures, retry_at, enroll_until";

pub(crate) fn get_mfa(conn: &Connection, token: TokenId) -> Result<Option<MfaRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM operator_mfa WHERE token_id = ?1"
    ))
    .map_err(backend)?
    .query_row([&token.to_bytes()[..]], |r| {
        Ok(MfaRow {
            token: r.get(0)?,
            sealed_secret: r.get(1)?,
            confirmed: r.get(2)?,
            last_step: r.get(3)?,
            failures: r.get(4)?,
            retry_at: r.get(5)?,
            enroll_until: r.get(6)?,
        }
        .decode())
    })
    .optional()
    .map_err(backend)?
    .transpose()
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)
}

fn require_token(tx: &Connection, token: TokenId) -> Result<()> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM tokens WHERE id = ?1")
        .map_err(backend)?
        .query_row([&token.to_bytes()[..]], |_| Ok(()))
        .optional()
        .map_err(backend)?
        .is_some();
    if exists {
        Ok(())
    } else {
        Err(StoreError::NotFound {
            what: "token",
            id: token.to_string(),
        })
    }
}

fn upsert(tx: &Connection, mfa: &MfaRecord) -> Result<()> {
    let last_step = step_column(mfa.last_step)?;
    tx.prepare_cached(&format!(
        "INSERT INTO operator_mfa ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (token_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
         confirmed = excluded.confirmed, last_step = excluded.last_step, failures = excluded.failures,
         retry_at = excluded.retry_at, enroll_until = excluded.enroll_until"
    ))
    .map_err(backend)?
    .execute(params![
        &mfa.token.to_bytes()[..],
        mfa.sealed_secret,
        mfa.confirmed,
        last_step,
        i64::from(mfa.failures),
        mfa.retry_at.map(Timestamp::unix_micros),
        mfa.enroll_until.map(Timestamp::unix_micros),
    ])
    .map_err(backend)?;
    Ok(())
}

pub(crate) fn put_mfa(conn: &mut Connection, mfa: MfaRecord, change: Change) -> Result<()> {
    let tx = immediate(conn)?;
    require_token(&tx, mfa.token)?;
    upsert(&tx, &mfa)?;
    append(&tx, vec![(plan_mfa(&mfa, &change), None)], change.at)?;
    tx.commit().map_err(backend)
}

pub(crate) fn use_mfa_step(conn: &mut Connection, token: TokenId, step: u64) -> Result<bool> {
    let step = step_column(step)?;
    // One statement, so atomic on its own: of two uses of one code, the second finds `last_step` moved.
    let n = conn
        .prepare_cached(
            "UPDATE operator_mfa SET last_step = ?2, failures = 0, retry_at = NULL
             WHERE token_id = ?1 AND last_step < ?2",
        )
        .map_err(backend)?
        .execute(params![&token.to_bytes()[..], step])
        .map_err(backend)?;
    Ok(n == 1)
}

pub(crate) fn take_mfa_attempt(
    conn: &mut Connection,
    token: TokenId,
    now: Timestamp,
) -> Result<MfaAttempt> {
    let tx = immediate(conn)?;
    let attempt = plan_mfa_attempt(get_mfa(&tx, token)?.as_ref(), now);
    if let MfaAttempt::Granted(rec) = &attempt {
        upsert(&tx, rec)?;
        tx.commit().map_err(backend)?;
    }
    Ok(attempt)
}

pub(crate) fn record_mfa_failure(
    conn: &mut Connection,
    token: TokenId,
    change: Change,
    source: Option<String>,
) -> Result<()> {
    let tx = immediate(conn)?;
    let current = get_mfa(&tx, token)?;
    let (next, event) = plan_mfa_failure(token, current.as_ref(), &change, source.as_deref());
    if let Some(next) = &next {
        upsert(&tx, next)?;
    }
    append(&tx, vec![(event, None)], change.at)?;
    tx.commit().map_err(backend)
}

pub(crate) fn reset_mfa(
    conn: &mut Connection,
    token: TokenId,
    enroll_until: Timestamp,
    change: Change,
) -> Result<()> {
    let tx = immediate(conn)?;
    require_token(&tx, token)?;
    let current = get_mfa(&tx, token)?;
    let (next, event) = plan_mfa_reset(token, current.as_ref(), enroll_until, &change);
    upsert(&tx, &next)?;
    append(&tx, vec![(event, None)], change.at)?;
    tx.commit().map_err(backend)
}
