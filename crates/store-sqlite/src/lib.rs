//! Vouch's embedded store: one SQLite file in WAL mode.
//!
//! One writer connection (SQLite has one writer at a time anyway) and a few reader connections that WAL lets
//! run beside it. Every write is one `BEGIN IMMEDIATE` transaction holding the device rows, their events and the
//! chain head, so a crash (even `kill -9`) leaves either all of a change or none of it. Calls run on tokio's
//! blocking pool because rusqlite is synchronous; rusqlite rather than an async driver because the direct,
//! prepared-statement path is several times faster for bulk imports.
//!
//! Why one long file: it is the one `impl Store` (every trait method, each a transaction over the writer or a
//! pooled reader) with the connection pool and the group-commit writer it runs on; the SQL of each area beside
//! the devices and events (certificates, cursors, second factors, observations, policies) is in its own module.

mod certs;
mod cursors;
mod documents;
mod mfa;
mod observe;
mod policies;
mod rows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use vouch_events::{Digest, Event, EventDraft, EventSeq};
use vouch_store::{
    Backend, CertificateRecord, Change, DeviceEdit, DevicePage, DeviceQuery, Edited,
    EnrollmentTokenRecord, ImportOutcome, Issuance, MfaAttempt, MfaRecord, PolicyWrite, Result,
    Store, StoreError, TokenRecord, decode_head, plan_create, plan_edit, plan_token_created,
    plan_token_revoked,
};
use vouch_types::{
    CertFingerprint, Device, DeviceId, DeviceState, NewDevice, PolicyId, PolicyRecord,
    RevocationReason, Serial, Timestamp, TokenId,
};

use vouch_store::{Announcer, ObservationSeq, ObservationSnapshot, QueuedObservation, Wakeup};
use vouch_types::{ConsumerId, DocumentKey, DocumentKind, DocumentRecord, Observation};

use rows::{backend, device_from_doc, event_from_row, token_from_row};

/// The schema, one migration per entry; a migration is never edited once released, only appended.
const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_certificates.sql")),
    (3, include_str!("migrations/0003_policies.sql")),
    (4, include_str!("migrations/0004_mfa_attempts.sql")),
    (5, include_str!("migrations/0005_consumer_cursors.sql")),
    (6, include_str!("migrations/0006_observations.sql")),
    (7, include_str!("migrations/0007_documents.sql")),
];

/// How many idle reader connections are kept.
const MAX_READERS: usize = 8;

/// When SQLite makes a commit durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync at every commit: a committed change survives a power loss (the default).
    #[default]
    Full,
    /// fsync at checkpoints only: a committed change survives a crash of the process, not of the machine.
    Normal,
}

/// The SQLite store.
pub struct SqliteStore {
    path: PathBuf,
    writer: Arc<Mutex<Connection>>,
    /// Issuances waiting for the next group commit, taken by the issuance writer thread.
    issuances: std::sync::mpsc::Sender<certs::IssuanceJob>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// At most [`MAX_READERS`] reads at once: a read waits for a pooled connection instead of opening one
    /// (opening costs far more than a read, and bursts of concurrent reads would pay it again and again).
    reader_permits: Arc<tokio::sync::Semaphore>,
    /// Fired after every committed write, for the change feed of this process (another process writing the
    /// same file is seen by polling only).
    appended: Announcer,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_conn(path: &Path, durability: Durability, read_only: bool) -> Result<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(backend)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
    }
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)
        .map_err(backend)?;
    // 64 MiB of page cache per connection: the id index of a million devices stays in memory.
    conn.pragma_update(None, "cache_size", -65_536)
        .map_err(backend)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(backend)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(backend)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(|e| StoreError::Migration {
                version,
                why: e.to_string(),
            })?;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version))
            .and_then(|()| tx.commit())
            .map_err(|e| StoreError::Migration {
                version,
                why: e.to_string(),
            })?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let mut writer = open_conn(&path, durability, false)?;
        migrate(&mut writer)?;
        let writer = Arc::new(Mutex::new(writer));
        let appended = Announcer::default();
        Ok(Self {
            path,
            issuances: certs::spawn_issuance_writer(writer.clone(), appended.clone()),
            appended,
            writer,
            readers: Arc::new(Mutex::new(Vec::new())),
            reader_permits: Arc::new(tokio::sync::Semaphore::new(MAX_READERS)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the writer connection on the blocking pool, then wakes the change feed: nearly every
    /// write appends events, and a wake-up that finds nothing new costs one read.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let out = self.write_quietly(f).await;
        if out.is_ok() {
            self.appended.announce();
        }
        out
    }

    /// Runs `f` with the writer connection on the blocking pool, for writes that append no event.
    async fn write_quietly<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .map_err(|_| StoreError::Backend("writer connection poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    /// Runs `f` with a reader connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        let permit = self
            .reader_permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Backend("reader pool closed".into()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let idle = readers
                .lock()
                .map_err(|_| StoreError::Backend("reader pool poisoned".into()))?
                .pop();
            let conn = match idle {
                Some(c) => c,
                None => open_conn(&path, Durability::Full, true)?,
            };
            let out = f(&conn);
            if let Ok(mut pool) = readers.lock()
                && pool.len() < MAX_READERS
            {
                pool.push(conn);
            }
            out
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }
}

/// The position the next appended event will take.
pub(crate) fn next_seq(tx: &Connection) -> Result<i64> {
    Ok(head(tx)?.0.0 as i64 + 1)
}

/// The position the device's record will take when `drafts` are appended next: that of the last event about
/// the device record itself (created, imported, updated, transitioned).
pub(crate) fn device_event_seq(tx: &Connection, drafts: &[EventDraft]) -> Result<i64> {
    use vouch_events::Action::*;
    let offset = drafts
        .iter()
        .rposition(|d| {
            matches!(
                d.action,
                DeviceCreated | DeviceImported | DeviceUpdated | DeviceTransitioned
            )
        })
        .ok_or_else(|| StoreError::Backend("a device change without a device event".into()))?;
    Ok(next_seq(tx)? + offset as i64)
}

fn head(tx: &Connection) -> Result<(EventSeq, Digest)> {
    let row: Option<(i64, Vec<u8>)> = tx
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(backend)?;
    match row {
        None => Ok((EventSeq(0), Digest::GENESIS)),
        Some((seq, hash)) => decode_head(seq, &hash),
    }
}

/// Appends `drafts` after the current head, in order, and records the new head; returns the last event
/// sealed. Each draft comes with the `num` of the device it is about. Call inside the transaction that makes
/// the changes they describe.
pub(crate) fn append(
    tx: &Connection,
    drafts: Vec<(EventDraft, Option<i64>)>,
    at: Timestamp,
) -> Result<Option<Event>> {
    if drafts.is_empty() {
        return Ok(None);
    }
    let mut last = None;
    let (mut seq, mut prev) = head(tx)?;
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO events (seq, at, device_num, actor, action, before, after, reason, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(backend)?;
    for (d, device_num) in drafts {
        seq = EventSeq(seq.0 + 1);
        let e = d.seal(seq, at, prev);
        stmt.execute(params![
            e.seq.0 as i64,
            e.at.unix_micros(),
            device_num,
            e.draft.actor.to_string(),
            e.draft.action.as_str(),
            e.draft.before,
            e.draft.after,
            e.draft.reason.as_ref().map(|r| r.as_str()),
            &e.prev_hash.0[..],
            &e.hash.0[..],
        ])
        .map_err(backend)?;
        prev = e.hash;
        last = Some(e);
    }
    tx.prepare_cached(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )
    .map_err(backend)?
    .execute(params![seq.0 as i64, &prev.0[..]])
    .map_err(backend)?;
    Ok(last)
}

/// Writes `device`, whose record is the `after` of event `doc_seq`, with `sql`, whose parameters ?1..?10 are
/// the devices columns in table order; returns the number of rows changed.
fn write_device(tx: &Connection, sql: &str, device: &Device, doc_seq: i64) -> Result<usize> {
    tx.prepare_cached(sql)
        .map_err(backend)?
        .execute(params![
            &device.id.as_bytes()[..],
            device.state.as_str(),
            device.class.as_str(),
            device.zone.as_ref().map(|z| z.as_str()),
            device.vendor.as_ref().map(|v| v.as_str()),
            device.identifiers.mac.map(|m| m.to_string()),
            device.identifiers.serial.as_ref().map(|s| s.as_str()),
            device.identifiers.cert_fingerprint.map(|f| f.to_string()),
            device.revision as i64,
            doc_seq,
        ])
        .map_err(backend)
}

/// Inserts `device` (its record in event `doc_seq`) unless its id exists; its `num` if inserted.
fn insert_device(tx: &Connection, device: &Device, doc_seq: i64) -> Result<Option<i64>> {
    let n = write_device(
        tx,
        "INSERT INTO devices (id, state, class, zone, vendor, mac, serial, cert_fp, revision, doc_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (id) DO NOTHING",
        device,
        doc_seq,
    )?;
    Ok((n == 1).then(|| tx.last_insert_rowid()))
}

/// Writes `device` over its row; its record is the `after` of event `doc_seq`.
pub(crate) fn update_device(tx: &Connection, device: &Device, doc_seq: i64) -> Result<()> {
    write_device(
        tx,
        "UPDATE devices SET state = ?2, class = ?3, zone = ?4, vendor = ?5, mac = ?6, serial = ?7, cert_fp = ?8,
         revision = ?9, doc_seq = ?10 WHERE id = ?1",
        device,
        doc_seq,
    )?;
    Ok(())
}

/// The device and its `num`.
pub(crate) fn get_device(conn: &Connection, id: DeviceId) -> Result<Option<(i64, Device)>> {
    let row: Option<(i64, Option<String>)> = conn
        .prepare_cached("SELECT d.num, e.after FROM devices d JOIN events e ON e.seq = d.doc_seq WHERE d.id = ?1")
        .map_err(backend)?
        .query_row([&id.as_bytes()[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(backend)?;
    row.map(|(num, d)| Ok((num, device_from_doc(d.as_deref().unwrap_or_default())?)))
        .transpose()
}

pub(crate) fn not_found(id: DeviceId) -> StoreError {
    StoreError::NotFound {
        what: "device",
        id: id.to_string(),
    }
}

/// Events with their device's UUID read back through `device_num`.
const EVENT_COLUMNS: &str =
    "e.seq, e.at, d.id, e.actor, e.action, e.before, e.after, e.reason, e.prev_hash, e.hash
     FROM events e LEFT JOIN devices d ON d.num = e.device_num";

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(backend))
            .await
    }

    async fn create_device(&self, new: NewDevice, change: Change) -> Result<Device> {
        let (device, event) = plan_create(new, &change, false)?;
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let Some(num) = insert_device(&tx, &device, next_seq(&tx)?)? else {
                return Err(StoreError::AlreadyExists {
                    what: "device",
                    id: device.id.to_string(),
                });
            };
            append(&tx, vec![(event, Some(num))], change.at)?;
            tx.commit().map_err(backend)?;
            Ok(device)
        })
        .await
    }

    async fn import_devices(&self, batch: Vec<NewDevice>, change: Change) -> Result<ImportOutcome> {
        // Validate the whole batch before touching the database: one bad record refuses the batch.
        let planned = batch
            .into_iter()
            .map(|n| plan_create(n, &change, true))
            .collect::<Result<Vec<_>>>()?;
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let mut outcome = ImportOutcome::default();
            let mut events = Vec::with_capacity(planned.len());
            // The events are appended in insertion order: the i-th inserted device's record lands at next + i.
            let mut doc_seq = next_seq(&tx)?;
            for (device, event) in planned {
                if let Some(num) = insert_device(&tx, &device, doc_seq)? {
                    doc_seq += 1;
                    outcome.created += 1;
                    events.push((event, Some(num)));
                } else {
                    outcome.existing += 1;
                }
            }
            append(&tx, events, change.at)?;
            tx.commit().map_err(backend)?;
            Ok(outcome)
        })
        .await
    }

    async fn get_device(&self, id: DeviceId) -> Result<Device> {
        self.read(move |c| {
            get_device(c, id)?
                .map(|(_, d)| d)
                .ok_or_else(|| not_found(id))
        })
        .await
    }

    async fn list_devices(&self, query: &DeviceQuery) -> Result<DevicePage> {
        let q = query.clone();
        self.read(move |c| {
            let mut sql = String::from(
                "SELECT e.after FROM devices d JOIN events e ON e.seq = d.doc_seq WHERE 1 = 1",
            );
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(states) = q.states() {
                sql.push_str(" AND d.state IN (");
                for (i, s) in states.iter().enumerate() {
                    arg(
                        &mut sql,
                        if i == 0 { "?" } else { ", ?" },
                        s.as_str().to_owned().into(),
                    );
                }
                if states.is_empty() {
                    sql.push_str("NULL");
                }
                sql.push(')');
            }
            if let Some(class) = q.class {
                arg(
                    &mut sql,
                    " AND d.class = ?",
                    class.as_str().to_owned().into(),
                );
            }
            if let Some(zone) = &q.zone {
                arg(&mut sql, " AND d.zone = ?", zone.as_str().to_owned().into());
            }
            if let Some(vendor) = &q.vendor {
                arg(
                    &mut sql,
                    " AND d.vendor = ?",
                    vendor.as_str().to_owned().into(),
                );
            }
            if let Some(serial) = &q.serial {
                arg(
                    &mut sql,
                    " AND d.serial = ?",
                    serial.as_str().to_owned().into(),
                );
            }
            if let Some(group) = &q.group {
                arg(
                    &mut sql,
                    " AND EXISTS (SELECT 1 FROM json_each(e.after, '$.groups') WHERE value = ?)",
                    group.as_str().to_owned().into(),
                );
            }
            if let Some((key, value)) = &q.label {
                // Label keys cannot contain `"`, so quoting the key makes any of them a valid JSON path.
                arg(
                    &mut sql,
                    " AND json_extract(e.after, ?",
                    format!("$.labels.\"{key}\"").into(),
                );
                arg(&mut sql, ") = ?", value.as_str().to_owned().into());
            }
            if let Some(after) = q.after {
                arg(&mut sql, " AND d.id > ?", after.as_bytes().to_vec().into());
            }
            let limit = q.effective_limit();
            arg(
                &mut sql,
                " ORDER BY d.id LIMIT ?",
                i64::from(limit + 1).into(),
            );
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let docs = stmt
                .query_map(rusqlite::params_from_iter(args), |r| {
                    r.get::<_, Option<String>>(0)
                })
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<Option<String>>>>()
                .map_err(backend)?;
            let mut devices = docs
                .iter()
                .map(|d| device_from_doc(d.as_deref().unwrap_or_default()))
                .collect::<Result<Vec<_>>>()?;
            let next = if devices.len() > limit as usize {
                devices.truncate(limit as usize);
                devices.last().map(|d| d.id)
            } else {
                None
            };
            Ok(DevicePage { devices, next })
        })
        .await
    }

    async fn edit_device(
        &self,
        id: DeviceId,
        edit: DeviceEdit,
        expected_revision: Option<u64>,
        change: Change,
    ) -> Result<Device> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            let (num, current) = get_device(&tx, id)?.ok_or_else(|| not_found(id))?;
            match plan_edit(&current, &edit, expected_revision, &change)? {
                Edited::Unchanged => Ok(current),
                Edited::Changed(next, event) => {
                    update_device(&tx, &next, next_seq(&tx)?)?;
                    append(&tx, vec![(event, Some(num))], change.at)?;
                    tx.commit().map_err(backend)?;
                    Ok(*next)
                }
            }
        })
        .await
    }

    async fn count_devices_by_state(&self) -> Result<BTreeMap<DeviceState, u64>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT state, COUNT(*) FROM devices GROUP BY state")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            rows.into_iter()
                .map(|(s, n)| {
                    let state = s.parse().map_err(|e| StoreError::corrupt("devices", e))?;
                    Ok((state, n as u64))
                })
                .collect()
        })
        .await
    }

    async fn device_events(
        &self,
        id: DeviceId,
        after: Option<EventSeq>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {EVENT_COLUMNS} WHERE e.device_num = (SELECT num FROM devices WHERE id = ?1) AND e.seq > ?2
                 ORDER BY e.seq LIMIT ?3"
            );
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![&id.as_bytes()[..], after.map_or(0, |s| s.0 as i64), i64::from(limit)],
                    event_from_row,
                )
                .map_err(backend)?;
            rows.map(|r| r.map_err(backend)?).collect()
        })
        .await
    }

    async fn events(&self, after: Option<EventSeq>, limit: u32) -> Result<Vec<Event>> {
        self.read(move |c| {
            let sql = format!("SELECT {EVENT_COLUMNS} WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2");
            let mut stmt = c.prepare_cached(&sql).map_err(backend)?;
            let rows = stmt
                .query_map(
                    params![after.map_or(0, |s| s.0 as i64), i64::from(limit)],
                    event_from_row,
                )
                .map_err(backend)?;
            rows.map(|r| r.map_err(backend)?).collect()
        })
        .await
    }

    fn subscribe(&self) -> Wakeup {
        self.appended.subscribe()
    }

    async fn consumer_cursor(&self, consumer: &ConsumerId) -> Result<Option<EventSeq>> {
        let consumer = consumer.clone();
        self.read(move |c| cursors::load(c, &consumer)).await
    }

    async fn save_consumer_cursor(&self, consumer: &ConsumerId, through: EventSeq) -> Result<()> {
        let consumer = consumer.clone();
        self.write_quietly(move |c| cursors::save(c, &consumer, through))
            .await
    }

    async fn append_observations(
        &self,
        batch: Vec<Observation>,
        at: Timestamp,
    ) -> Result<Option<ObservationSeq>> {
        if batch.is_empty() {
            return Ok(None);
        }
        // `write` wakes this process's feeds; another process's are woken by their poll.
        self.write(move |c| observe::append(c, &batch, at)).await
    }

    async fn observations(
        &self,
        after: Option<ObservationSeq>,
        limit: u32,
    ) -> Result<Vec<QueuedObservation>> {
        self.read(move |c| observe::page(c, after, limit)).await
    }

    async fn prune_observations(&self, before: Timestamp, keep_last: u64) -> Result<u64> {
        self.write_quietly(move |c| observe::prune(c, before, keep_last))
            .await
    }

    async fn observation_snapshot(
        &self,
        consumer: &ConsumerId,
    ) -> Result<Option<ObservationSnapshot>> {
        let consumer = consumer.clone();
        self.read(move |c| observe::snapshot(c, &consumer)).await
    }

    async fn save_observation_snapshot(
        &self,
        consumer: &ConsumerId,
        snapshot: ObservationSnapshot,
    ) -> Result<()> {
        vouch_store::check_snapshot(&snapshot)?;
        let consumer = consumer.clone();
        self.write_quietly(move |c| observe::save(c, &consumer, &snapshot))
            .await
    }

    async fn audit_head(&self) -> Result<Option<(EventSeq, Digest)>> {
        self.write_quietly(|conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(backend)?;
            let h = head(&tx)?;
            Ok((h.0.0 > 0).then_some(h))
        })
        .await
    }

    async fn create_token(&self, token: TokenRecord, change: Change) -> Result<()> {
        let event = plan_token_created(&token, &change);
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let n = tx
                .prepare_cached("INSERT INTO tokens (id, operator, role, secret_hash, created_at, expires_at, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id) DO NOTHING").map_err(backend)?.execute(params![
                        &token.id.to_bytes()[..],
                        token.operator.as_str(),
                        token.role.as_str(),
                        &token.secret_hash[..],
                        token.created_at.unix_micros(),
                        token.expires_at.map(Timestamp::unix_micros),
                        token.revoked_at.map(Timestamp::unix_micros),
                    ],
                )
                .map_err(backend)?;
            if n == 0 {
                return Err(StoreError::AlreadyExists { what: "token", id: token.id.to_string() });
            }
            append(&tx, vec![(event, None)], change.at)?;
            tx.commit().map_err(backend)
        })
        .await
    }

    async fn get_token(&self, id: TokenId) -> Result<Option<TokenRecord>> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, operator, role, secret_hash, created_at, expires_at, revoked_at FROM tokens WHERE id = ?1",
            )
            .map_err(backend)?
            .query_row([&id.to_bytes()[..]], token_from_row)
            .optional()
            .map_err(backend)?
            .transpose()
        })
        .await
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT id, operator, role, secret_hash, created_at, expires_at, revoked_at FROM tokens
                     ORDER BY created_at, id",
                )
                .map_err(backend)?;
            let rows = stmt.query_map([], token_from_row).map_err(backend)?;
            rows.map(|r| r.map_err(backend)?).collect()
        })
        .await
    }

    async fn revoke_token(&self, id: TokenId, change: Change) -> Result<TokenRecord> {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(backend)?;
            let token = tx
                .query_row(
                    "SELECT id, operator, role, secret_hash, created_at, expires_at, revoked_at FROM tokens
                     WHERE id = ?1",
                    [&id.to_bytes()[..]],
                    token_from_row,
                )
                .optional()
                .map_err(backend)?
                .transpose()?
                .ok_or_else(|| StoreError::NotFound { what: "token", id: id.to_string() })?;
            let Some((revoked, event)) = plan_token_revoked(&token, &change) else {
                return Ok(token);
            };
            tx.prepare_cached("UPDATE tokens SET revoked_at = ?2 WHERE id = ?1").map_err(backend)?.execute(params![&id.to_bytes()[..], change.at.unix_micros()],
            )
            .map_err(backend)?;
            append(&tx, vec![(event, None)], change.at)?;
            tx.commit().map_err(backend)?;
            Ok(revoked)
        })
        .await
    }

    async fn append_event(&self, draft: EventDraft, at: Timestamp) -> Result<Event> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend)?;
            // Events refer to devices by `num`: an event about a device must name one that exists.
            let num = match draft.device_id {
                Some(id) => Some(get_device(&tx, id)?.ok_or_else(|| not_found(id))?.0),
                None => None,
            };
            let event = append(&tx, vec![(draft, num)], at)?
                .ok_or_else(|| StoreError::Backend("appending produced no event".into()))?;
            tx.commit().map_err(backend)?;
            Ok(event)
        })
        .await
    }

    async fn create_enrollment_token(
        &self,
        token: EnrollmentTokenRecord,
        change: Change,
    ) -> Result<()> {
        self.write(move |c| certs::create_enrollment_token(c, token, change))
            .await
    }

    async fn get_enrollment_token(&self, id: TokenId) -> Result<Option<EnrollmentTokenRecord>> {
        self.read(move |c| certs::get_enrollment_token(c, id)).await
    }

    async fn record_issuance(&self, issuance: Issuance, change: Change) -> Result<Device> {
        // Group commit: the issuance writer takes every job queued while it committed the last batch and
        // commits them together, so that concurrent enrollments share one fsync instead of paying one each.
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.issuances
            .send((issuance, change, reply))
            .map_err(|_| StoreError::Backend("the issuance writer stopped".into()))?;
        outcome
            .await
            .map_err(|_| StoreError::Backend("the group commit was abandoned".into()))?
    }

    async fn get_certificate(&self, serial: Serial) -> Result<Option<CertificateRecord>> {
        self.read(move |c| certs::get_certificate(c, serial)).await
    }

    async fn get_certificate_by_fingerprint(
        &self,
        fp: CertFingerprint,
    ) -> Result<Option<CertificateRecord>> {
        self.read(move |c| certs::get_certificate_by_fingerprint(c, fp))
            .await
    }

    async fn device_certificates(&self, id: DeviceId) -> Result<Vec<CertificateRecord>> {
        self.read(move |c| certs::device_certificates(c, id)).await
    }

    async fn expiring_certificates(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<CertificateRecord>> {
        self.read(move |c| certs::expiring_certificates(c, before, limit))
            .await
    }

    async fn revoked_certificates(&self) -> Result<Vec<(Serial, Timestamp, RevocationReason)>> {
        self.read(certs::revoked_certificates).await
    }

    async fn revoke_certificate(
        &self,
        serial: Serial,
        reason: RevocationReason,
        change: Change,
    ) -> Result<CertificateRecord> {
        self.write(move |c| certs::revoke_certificate(c, serial, reason, change))
            .await
    }

    async fn release_certificate(
        &self,
        serial: Serial,
        change: Change,
    ) -> Result<CertificateRecord> {
        self.write(move |c| certs::release_certificate(c, serial, change))
            .await
    }

    async fn revocation_generation(&self) -> Result<u64> {
        self.read(certs::revocation_generation).await
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        self.read(policies::policies).await
    }

    async fn policy_history(&self, id: &PolicyId) -> Result<Vec<PolicyRecord>> {
        let id = id.clone();
        self.read(move |c| policies::policy_history(c, &id)).await
    }

    async fn write_policies(
        &self,
        writes: Vec<PolicyWrite>,
        change: Change,
    ) -> Result<Vec<PolicyRecord>> {
        self.write(move |c| policies::write_policies(c, writes, change))
            .await
    }

    async fn policy_generation(&self) -> Result<u64> {
        self.read(policies::policy_generation).await
    }

    async fn put_document(
        &self,
        kind: DocumentKind,
        key: DocumentKey,
        body: Vec<u8>,
        change: Change,
    ) -> Result<Option<DocumentRecord>> {
        self.write(move |c| documents::put(c, kind, key, body, change))
            .await
    }

    async fn documents(&self, kind: Option<DocumentKind>) -> Result<Vec<DocumentRecord>> {
        self.read(move |c| documents::list(c, kind)).await
    }

    async fn get_mfa(&self, token: TokenId) -> Result<Option<MfaRecord>> {
        self.read(move |c| mfa::get_mfa(c, token)).await
    }

    async fn put_mfa(&self, rec: MfaRecord, change: Change) -> Result<()> {
        self.write(move |c| mfa::put_mfa(c, rec, change)).await
    }

    async fn use_mfa_step(&self, token: TokenId, step: u64) -> Result<bool> {
        self.write(move |c| mfa::use_mfa_step(c, token, step)).await
    }

    async fn take_mfa_attempt(&self, token: TokenId, now: Timestamp) -> Result<MfaAttempt> {
        self.write(move |c| mfa::take_mfa_attempt(c, token, now))
            .await
    }

    async fn record_mfa_failure(
        &self,
        token: TokenId,
        change: Change,
        source: Option<String>,
    ) -> Result<()> {
        self.write(move |c| mfa::record_mfa_failure(c, token, change, source))
            .await
    }

    async fn reset_mfa(
        &self,
        token: TokenId,
        enroll_until: Timestamp,
        change: Change,
    ) -> Result<()> {
        self.write(move |c| mfa::reset_mfa(c, token, enroll_until, change))
            .await
    }
}
