//! Policies and operators' second factors in SQLite: each write one transaction with the events that the
//! shared rules in `vouch-store` plan.

use rusqlite::{Connection, TransactionBehavior, params};
use vouch_store::{Change, PolicyRow, PolicyWrite, Result, plan_policy_write};
use vouch_types::{PolicyId, PolicyRecord};

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
