//! Policies and operators' second factors in SQLite: each write one transaction with the events that the
//! shared rules in `vouch-store` plan.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use vouch_store::{
    Change, MfaRecord, MfaRow, PolicyRow, PolicyWrite, Result, StoreError, plan_mfa,
    plan_policy_write, step_column,
};
use vouch_types::{PolicyId, PolicyRecord, TokenId};

use crate::append;
use crate::rows::backend;

const POLICY_COLUMNS: &str = "id, version, text, mode, removed, author, at";

fn policy_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<PolicyRecord>> {
    Ok(PolicyRow {
        id: r.get(0)?,
        version: r.get(1)?,
        text: r.get(2)?,
        mode: r.get(3)?,
        removed: r.get(4)?,
        author: r.get(5)?,
        at: r.get(6)?,
    }
    .decode())
}

fn policy_rows(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<PolicyRecord>> {
    let sql = format!("SELECT {POLICY_COLUMNS} FROM policy_versions p {filter}");
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt.query_map(args, policy_from_row).map_err(backend)?;
    rows.map(|r| r.map_err(backend)?).collect()
}

/// The latest version of `id`, removed or not.
fn latest_policy(conn: &Connection, id: &PolicyId) -> Result<Option<PolicyRecord>> {
    Ok(policy_rows(
        conn,
        "WHERE id = ?1 ORDER BY version DESC LIMIT 1",
        [id.as_str()],
    )?
    .pop())
}

pub(crate) fn policies(conn: &Connection) -> Result<Vec<PolicyRecord>> {
    policy_rows(
        conn,
        "WHERE version = (SELECT MAX(version) FROM policy_versions WHERE id = p.id) AND NOT removed
         ORDER BY id",
        [],
    )
}

pub(crate) fn policy_history(conn: &Connection, id: &PolicyId) -> Result<Vec<PolicyRecord>> {
    policy_rows(conn, "WHERE id = ?1 ORDER BY version", [id.as_str()])
}

pub(crate) fn write_policies(
    conn: &mut Connection,
    writes: Vec<PolicyWrite>,
    change: Change,
) -> Result<Vec<PolicyRecord>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let mut written = Vec::new();
    let mut events = Vec::new();
    for write in &writes {
        // Read inside the transaction, after the earlier writes of this batch: a later write to the same
        // policy builds on them.
        let current = latest_policy(&tx, &write.id)?;
        let Some((next, event)) = plan_policy_write(current.as_ref(), write, &change)? else {
            continue;
        };
        tx.prepare_cached(
            "INSERT INTO policy_versions (id, version, text, mode, removed, author, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(backend)?
        .execute(params![
            next.id.as_str(),
            i64::from(next.version),
            next.text,
            next.mode.as_str(),
            next.removed,
            next.author.to_string(),
            next.at.unix_micros(),
        ])
        .map_err(backend)?;
        events.push((event, None));
        written.push(next);
    }
    if written.is_empty() {
        return Ok(written);
    }
    tx.prepare_cached("UPDATE policy_state SET generation = generation + 1 WHERE id = 1")
        .map_err(backend)?
        .execute([])
        .map_err(backend)?;
    append(&tx, events, change.at)?;
    tx.commit().map_err(backend)?;
    Ok(written)
}

pub(crate) fn policy_generation(conn: &Connection) -> Result<u64> {
    let g: i64 = conn
        .prepare_cached("SELECT generation FROM policy_state WHERE id = 1")
        .map_err(backend)?
        .query_row([], |r| r.get(0))
        .map_err(backend)?;
    Ok(g as u64)
}

pub(crate) fn get_mfa(conn: &Connection, token: TokenId) -> Result<Option<MfaRecord>> {
    conn.prepare_cached(
        "SELECT token_id, sealed_secret, confirmed, last_step FROM operator_mfa WHERE token_id = ?1",
    )
    .map_err(backend)?
    .query_row([&token.to_bytes()[..]], |r| {
        Ok(MfaRow {
            token: r.get(0)?,
            sealed_secret: r.get(1)?,
            confirmed: r.get(2)?,
            last_step: r.get(3)?,
        }
        .decode())
    })
    .optional()
    .map_err(backend)?
    .transpose()
}

pub(crate) fn put_mfa(conn: &mut Connection, mfa: MfaRecord, change: Change) -> Result<()> {
    let last_step = step_column(mfa.last_step)?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let id = mfa.token.to_bytes();
    let exists = tx
        .prepare_cached("SELECT 1 FROM tokens WHERE id = ?1")
        .map_err(backend)?
        .query_row([&id[..]], |_| Ok(()))
        .optional()
        .map_err(backend)?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound {
            what: "token",
            id: mfa.token.to_string(),
        });
    }
    tx.prepare_cached(
        "INSERT INTO operator_mfa (token_id, sealed_secret, confirmed, last_step) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (token_id) DO UPDATE SET sealed_secret = excluded.sealed_secret,
         confirmed = excluded.confirmed, last_step = excluded.last_step",
    )
    .map_err(backend)?
    .execute(params![&id[..], mfa.sealed_secret, mfa.confirmed, last_step])
    .map_err(backend)?;
    append(&tx, vec![(plan_mfa(&mfa, &change), None)], change.at)?;
    tx.commit().map_err(backend)
}

pub(crate) fn use_mfa_step(conn: &mut Connection, token: TokenId, step: u64) -> Result<bool> {
    let step = step_column(step)?;
    // One statement, so atomic on its own: of two uses of one code, the second finds `last_step` moved.
    let n = conn
        .prepare_cached(
            "UPDATE operator_mfa SET last_step = ?2 WHERE token_id = ?1 AND last_step < ?2",
        )
        .map_err(backend)?
        .execute(params![&token.to_bytes()[..], step])
        .map_err(backend)?;
    Ok(n == 1)
}
