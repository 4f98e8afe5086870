//! Certificates and enrollment tokens in SQLite: each write one transaction with the device change and the
//! events that the shared rules in `vouch-store` plan.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use vouch_store::{
    CertRow, CertificateRecord, Change, EnrollmentTokenRecord, EnrollmentTokenRow, Issuance,
    Result, StatusPlan, StoreError, plan_enrollment_token_created, plan_issuance, plan_release,
    plan_revocation, status_columns,
};
use vouch_types::{Device, DeviceId, RevocationReason, Serial, Timestamp, TokenId};

use crate::rows::backend;
use crate::{append, device_event_seq, get_device, not_found, update_device};

const CERT_COLUMNS: &str =
    "c.serial, d.id, c.fingerprint, c.not_before, c.not_after, c.revoked_at, c.reason, c.der
     FROM certificates c JOIN devices d ON d.num = c.device_num";

fn uuid(b: Vec<u8>, table: &'static str) -> Result<DeviceId> {
    uuid::Uuid::from_slice(&b)
        .map(DeviceId::from_uuid)
        .map_err(|e| StoreError::corrupt(table, e))
}

fn cert_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<CertificateRecord>> {
    let device: Vec<u8> = r.get(1)?;
    let mut row = CertRow {
        serial: r.get(0)?,
        device_id: DeviceId::from_uuid(uuid::Uuid::nil()),
        fingerprint: r.get(2)?,
        not_before: r.get(3)?,
        not_after: r.get(4)?,
        revoked_at: r.get(5)?,
        reason: r.get(6)?,
        der: r.get(7)?,
    };
    Ok(uuid(device, "certificates").and_then(|id| {
        row.device_id = id;
        row.decode()
    }))
}

fn certs(
    conn: &Connection,
    filter: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<CertificateRecord>> {
    let sql = format!("SELECT {CERT_COLUMNS} {filter}");
    let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
    let rows = stmt.query_map(args, cert_from_row).map_err(backend)?;
    rows.map(|r| r.map_err(backend)?).collect()
}

/// The certificate with this serial, and its device's `num`.
fn cert_for_update(conn: &Connection, serial: Serial) -> Result<(CertificateRecord, i64, Device)> {
    let cert = certs(conn, "WHERE c.serial = ?1", [serial.as_bytes()])?
        .pop()
        .ok_or_else(|| StoreError::NotFound {
            what: "certificate",
            id: serial.to_string(),
        })?;
    let (num, device) =
        get_device(conn, cert.device_id)?.ok_or_else(|| not_found(cert.device_id))?;
    Ok((cert, num, device))
}

fn write_status(
    conn: &Connection,
    num: i64,
    plan: StatusPlan,
    at: Timestamp,
) -> Result<CertificateRecord> {
    let (revoked_at, reason) = status_columns(plan.cert.status);
    conn.prepare_cached("UPDATE certificates SET revoked_at = ?2, reason = ?3 WHERE serial = ?1")
        .map_err(backend)?
        .execute(params![plan.cert.serial.as_bytes(), revoked_at, reason])
        .map_err(backend)?;
    if let Some(d) = &plan.device {
        update_device(conn, d, device_event_seq(conn, &plan.events)?)?;
    }
    conn.prepare_cached(
        "UPDATE pki_state SET revocation_generation = revocation_generation + 1 WHERE id = 1",
    )
    .map_err(backend)?
    .execute([])
    .map_err(backend)?;
    append(
        conn,
        plan.events.into_iter().map(|e| (e, Some(num))).collect(),
        at,
    )?;
    Ok(plan.cert)
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<EnrollmentTokenRecord>> {
    let device: Vec<u8> = r.get(1)?;
    let mut row = EnrollmentTokenRow {
        id: r.get(0)?,
        device_id: DeviceId::from_uuid(uuid::Uuid::nil()),
        secret_hash: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        used_at: r.get(5)?,
    };
    Ok(uuid(device, "enrollment_tokens").and_then(|id| {
        row.device_id = id;
        row.decode()
    }))
}

pub(crate) fn get_enrollment_token(
    conn: &Connection,
    id: TokenId,
) -> Result<Option<EnrollmentTokenRecord>> {
    conn.prepare_cached(
        "SELECT t.id, d.id, t.secret_hash, t.created_at, t.expires_at, t.used_at
         FROM enrollment_tokens t JOIN devices d ON d.num = t.device_num WHERE t.id = ?1",
    )
    .map_err(backend)?
    .query_row([&id.to_bytes()[..]], token_from_row)
    .optional()
    .map_err(backend)?
    .transpose()
}

pub(crate) fn create_enrollment_token(
    conn: &mut Connection,
    t: EnrollmentTokenRecord,
    change: Change,
) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let (num, _) = get_device(&tx, t.device_id)?.ok_or_else(|| not_found(t.device_id))?;
    let n = tx
        .prepare_cached("INSERT INTO enrollment_tokens (id, device_num, secret_hash, created_at, expires_at, used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING").map_err(backend)?.execute(params![
                &t.id.to_bytes()[..],
                num,
                &t.secret_hash[..],
                t.created_at.unix_micros(),
                t.expires_at.unix_micros(),
                t.used_at.map(Timestamp::unix_micros)
            ],
        )
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::AlreadyExists {
            what: "enrollment token",
            id: t.id.to_string(),
        });
    }
    append(
        &tx,
        vec![(plan_enrollment_token_created(&t, &change), Some(num))],
        change.at,
    )?;
    tx.commit().map_err(backend)
}

/// A pending issuance in the group commit queue, with where to send its outcome.
pub(crate) type IssuanceJob = (
    Issuance,
    Change,
    tokio::sync::oneshot::Sender<Result<Device>>,
);

/// Records every queued issuance in one transaction (group commit): each in a savepoint, so that one refused
/// issuance is rolled back alone, then one commit — one fsync — for all. Outcomes are sent only after the
/// commit: a certificate is never handed out before it is durable.
pub(crate) fn record_issuances(conn: &mut Connection, jobs: Vec<IssuanceJob>) {
    let mut outcomes = Vec::with_capacity(jobs.len());
    let committed = (|| -> Result<()> {
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        for (issuance, change, reply) in jobs {
            let sp = tx.savepoint().map_err(backend)?;
            let outcome = record_issuance(&sp, issuance, change);
            if outcome.is_ok() {
                sp.commit().map_err(backend)?;
            }
            outcomes.push((reply, outcome));
        }
        tx.commit().map_err(backend)
    })();
    for (reply, outcome) in outcomes {
        let outcome = match (&committed, outcome) {
            (Ok(()), o) => o,
            (Err(e), _) => Err(StoreError::Backend(format!("the group commit failed: {e}"))),
        };
        let _ = reply.send(outcome);
    }
}

/// The most issuances committed together.
const MAX_GROUP: usize = 256;

/// Starts the thread that group-commits issuances with the writer connection; it ends when the store (the
/// last sender) is dropped.
pub(crate) fn spawn_issuance_writer(
    writer: std::sync::Arc<std::sync::Mutex<Connection>>,
    appended: vouch_store::Announcer,
) -> std::sync::mpsc::Sender<IssuanceJob> {
    let (tx, rx) = std::sync::mpsc::channel::<IssuanceJob>();
    let spawned = std::thread::Builder::new()
        .name("vouch-issuance-writer".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut jobs = vec![first];
                while jobs.len() < MAX_GROUP
                    && let Ok(next) = rx.try_recv()
                {
                    jobs.push(next);
                }
                match writer.lock() {
                    Ok(mut conn) => {
                        record_issuances(&mut conn, jobs);
                        appended.announce();
                    }
                    Err(_) => {
                        for (_, _, reply) in jobs {
                            let _ = reply.send(Err(StoreError::Backend(
                                "writer connection poisoned".into(),
                            )));
                        }
                    }
                }
            }
        });
    if let Err(e) = spawned {
        // Without the thread the receiver is dropped: every issuance then fails with a clear error.
        tracing::error!(error = %e, "could not start the issuance writer");
    }
    tx
}

/// Records one issuance inside an open transaction or savepoint.
fn record_issuance(tx: &Connection, issuance: Issuance, change: Change) -> Result<Device> {
    let cert = issuance.cert;
    let (num, device) = get_device(tx, cert.device_id)?.ok_or_else(|| not_found(cert.device_id))?;
    let token = match issuance.token {
        None => None,
        Some(id) => Some(get_enrollment_token(tx, id)?),
    };
    let plan = plan_issuance(&device, token.as_ref().map(Option::as_ref), &cert, &change)?;
    if let Some(t) = &plan.token {
        tx.prepare_cached("UPDATE enrollment_tokens SET used_at = ?2 WHERE id = ?1")
            .map_err(backend)?
            .execute(params![
                &t.id.to_bytes()[..],
                t.used_at.map(Timestamp::unix_micros)
            ])
            .map_err(backend)?;
    }
    let (revoked_at, reason) = status_columns(cert.status);
    let n = tx
        .prepare_cached("INSERT INTO certificates (serial, device_num, fingerprint, not_before, not_after, revoked_at, reason, der)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING").map_err(backend)?.execute(params![
                cert.serial.as_bytes(),
                num,
                &cert.fingerprint.as_bytes()[..],
                cert.not_before.unix_micros(),
                cert.not_after.unix_micros(),
                revoked_at,
                reason,
                cert.der
            ],
        )
        .map_err(backend)?;
    if n == 0 {
        return Err(StoreError::AlreadyExists {
            what: "certificate",
            id: cert.serial.to_string(),
        });
    }
    update_device(tx, &plan.device, device_event_seq(tx, &plan.events)?)?;
    append(
        tx,
        plan.events.into_iter().map(|e| (e, Some(num))).collect(),
        change.at,
    )?;
    Ok(plan.device)
}

pub(crate) fn get_certificate(
    conn: &Connection,
    serial: Serial,
) -> Result<Option<CertificateRecord>> {
    Ok(certs(conn, "WHERE c.serial = ?1", [serial.as_bytes()])?.pop())
}

pub(crate) fn get_certificate_by_fingerprint(
    conn: &Connection,
    fp: vouch_types::CertFingerprint,
) -> Result<Option<CertificateRecord>> {
    Ok(certs(conn, "WHERE c.fingerprint = ?1", [&fp.as_bytes()[..]])?.pop())
}

pub(crate) fn device_certificates(
    conn: &Connection,
    id: DeviceId,
) -> Result<Vec<CertificateRecord>> {
    certs(
        conn,
        "WHERE d.id = ?1 ORDER BY c.not_before DESC, c.serial",
        [&id.as_bytes()[..]],
    )
}

pub(crate) fn expiring_certificates(
    conn: &Connection,
    before: Timestamp,
    limit: u32,
) -> Result<Vec<CertificateRecord>> {
    certs(
        conn,
        "WHERE c.revoked_at IS NULL AND c.not_after < ?1 ORDER BY c.not_after, c.serial LIMIT ?2",
        params![before.unix_micros(), i64::from(limit)],
    )
}

pub(crate) fn revoked_certificates(
    conn: &Connection,
) -> Result<Vec<(Serial, Timestamp, RevocationReason)>> {
    let mut stmt = conn
        .prepare_cached("SELECT serial, revoked_at, reason FROM certificates WHERE revoked_at IS NOT NULL ORDER BY serial")
        .map_err(backend)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(backend)?;
    rows.map(|r| {
        let (serial, at, code) = r.map_err(backend)?;
        let bad = |why: String| StoreError::corrupt("certificates", why);
        let serial = Serial::from_slice(&serial).map_err(|e| bad(e.to_string()))?;
        let reason = u8::try_from(code)
            .ok()
            .and_then(RevocationReason::from_code)
            .ok_or_else(|| bad(format!("certificate {serial}: unknown reason code {code}")))?;
        Ok((serial, Timestamp::from_unix_micros(at), reason))
    })
    .collect()
}

pub(crate) fn revoke_certificate(
    conn: &mut Connection,
    serial: Serial,
    reason: RevocationReason,
    change: Change,
) -> Result<CertificateRecord> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let (cert, num, device) = cert_for_update(&tx, serial)?;
    let Some(plan) = plan_revocation(&cert, &device, reason, &change)? else {
        return Ok(cert);
    };
    let out = write_status(&tx, num, plan, change.at)?;
    tx.commit().map_err(backend)?;
    Ok(out)
}

pub(crate) fn release_certificate(
    conn: &mut Connection,
    serial: Serial,
    change: Change,
) -> Result<CertificateRecord> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let (cert, num, device) = cert_for_update(&tx, serial)?;
    let plan = plan_release(&cert, &device, &change)?;
    let out = write_status(&tx, num, plan, change.at)?;
    tx.commit().map_err(backend)?;
    Ok(out)
}

pub(crate) fn revocation_generation(conn: &Connection) -> Result<u64> {
    let g: i64 = conn
        .prepare_cached("SELECT revocation_generation FROM pki_state WHERE id = 1")
        .map_err(backend)?
        .query_row([], |r| r.get(0))
        .map_err(backend)?;
    Ok(g as u64)
}
