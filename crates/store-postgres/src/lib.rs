//! Vouch's store on PostgreSQL.
//!
//! The same contract as the embedded store (the conformance suite proves it), built for many writers: every
//! write transaction first locks the chain head row, which orders appends to the event log and rules out
//! deadlocks; bulk imports send whole batches as arrays (`UNNEST`) in one round trip.
//!
//! [`testing::TempCluster`] starts a throw-away PostgreSQL cluster (`initdb` + `postgres` on an ephemeral
//! loopback port) for tests and benchmarks.
//!
//! Why one long file: it is the one `impl Store` (every trait method, each a transaction behind the chain-head
//! lock) with the pool it runs on; the SQL of each area beside the devices and events (certificates, the feed,
//! second factors, observations, policies) is in its own module.

mod certs;
mod documents;
mod feed;
mod mfa;
mod observe;
mod policies;
mod rows;
pub mod testing;

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use tokio_postgres::NoTls;
use uuid::Uuid;
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

use vouch_store::{ObservationSeq, ObservationSnapshot, QueuedObservation, Wakeup};
use vouch_types::{ConsumerId, DocumentKey, DocumentKind, DocumentRecord, Observation};

use rows::{backend, col, device_from_doc, event_from_row, token_from_row};

/// The schema, one migration per entry; a migration is never edited once released, only appended.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_certificates.sql")),
    (3, include_str!("migrations/0003_policies.sql")),
    (4, include_str!("migrations/0004_mfa_attempts.sql")),
    (5, include_str!("migrations/0005_consumer_cursors.sql")),
    (6, include_str!("migrations/0006_observations.sql")),
    (7, include_str!("migrations/0007_documents.sql")),
];

/// A constant advisory-lock key so that two Vouch processes starting together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x766f_7563_685f_6d67;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// Where the change feed's `LISTEN` connection connects (it is not taken from the pool: it stays open).
    config: tokio_postgres::Config,
    listener: std::sync::Arc<feed::Listener>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) with at most `max_connections`, and brings the
    /// schema up to date.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Self> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| StoreError::Backend(format!("building the connection pool: {e}")))?;
        let store = Self {
            pool,
            config,
            listener: Default::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Backend(format!("connecting to PostgreSQL: {e}")))
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(backend)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS vouch_schema (version int PRIMARY KEY, applied_at bigint)",
        )
        .await
        .map_err(backend)?;
        let current: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM vouch_schema", &[])
            .await
            .map_err(backend)
            .and_then(|r| col(&r, 0, "vouch_schema"))?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if current > known {
            return Err(StoreError::SchemaTooNew {
                found: current as u32,
                known: known as u32,
            });
        }
        for &(version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
            let failed = |e: tokio_postgres::Error| StoreError::Migration {
                version: version as u32,
                why: backend(e).to_string(),
            };
            tx.batch_execute(sql).await.map_err(failed)?;
            tx.execute(
                "INSERT INTO vouch_schema (version, applied_at) VALUES ($1, (extract(epoch from now()) * 1e6)::bigint)",
                &[&version],
            )
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(backend)
    }
}

/// Locks the chain head for this transaction and returns it. Every write calls this first.
pub(crate) async fn lock_head(tx: &Transaction<'_>) -> Result<(EventSeq, Digest)> {
    let row = tx
        .query_one(
            "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await
        .map_err(backend)?;
    decode_head(
        col(&row, 0, "audit_head")?,
        &col::<Vec<u8>>(&row, 1, "audit_head")?,
    )
}

/// Appends `drafts` after `head` (locked by [`lock_head`] in this transaction) and records the new head.
pub(crate) async fn append(
    tx: &Transaction<'_>,
    head: (EventSeq, Digest),
    drafts: Vec<EventDraft>,
    at: Timestamp,
) -> Result<()> {
    if drafts.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = head;
    let n = drafts.len();
    let (mut seqs, mut ats, mut devs) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut actors, mut actions) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut befores, mut afters, mut reasons) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut prevs, mut hashes) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for d in drafts {
        seq = EventSeq(seq.0 + 1);
        let e = d.seal(seq, at, prev);
        seqs.push(e.seq.0 as i64);
        ats.push(e.at.unix_micros());
        devs.push(e.draft.device_id.map(|d| *d.as_uuid()));
        actors.push(e.draft.actor.to_string());
        actions.push(e.draft.action.as_str());
        befores.push(e.draft.before);
        afters.push(e.draft.after);
        reasons.push(e.draft.reason.map(String::from));
        prevs.push(e.prev_hash.0.to_vec());
        hashes.push(e.hash.0.to_vec());
        prev = e.hash;
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO events (seq, at, device_id, actor, action, before, after, reason, prev_hash, hash)
             SELECT * FROM UNNEST($1::int8[], $2::int8[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::text[], $9::bytea[], $10::bytea[])",
        )
        .await
        .map_err(backend)?;
    tx.execute(
        &stmt,
        &[
            &seqs, &ats, &devs, &actors, &actions, &befores, &afters, &reasons, &prevs, &hashes,
        ],
    )
    .await
    .map_err(backend)?;
    tx.execute(
        "UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1",
        &[&(seq.0 as i64), &prev.0.to_vec()],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

/// The columns of a device row, as arrays for `UNNEST`.
#[derive(Default)]
struct DeviceColumns<'a> {
    id: Vec<Uuid>,
    state: Vec<&'static str>,
    class: Vec<&'static str>,
    zone: Vec<Option<&'a str>>,
    vendor: Vec<Option<&'a str>>,
    mac: Vec<Option<String>>,
    serial: Vec<Option<&'a str>>,
    cert_fp: Vec<Option<String>>,
    revision: Vec<i64>,
    doc: Vec<&'a str>,
}

impl<'a> DeviceColumns<'a> {
    fn push(&mut self, d: &'a Device, doc: &'a str) {
        self.id.push(*d.id.as_uuid());
        self.state.push(d.state.as_str());
        self.class.push(d.class.as_str());
        self.zone.push(d.zone.as_ref().map(|z| z.as_str()));
        self.vendor.push(d.vendor.as_ref().map(|v| v.as_str()));
        self.mac.push(d.identifiers.mac.map(|m| m.to_string()));
        self.serial
            .push(d.identifiers.serial.as_ref().map(|s| s.as_str()));
        self.cert_fp
            .push(d.identifiers.cert_fingerprint.map(|f| f.to_string()));
        self.revision.push(d.revision as i64);
        self.doc.push(doc);
    }

    /// Inserts the rows whose ids are new; returns those ids.
    async fn insert(&self, tx: &Transaction<'_>) -> Result<Vec<Uuid>> {
        let stmt = tx
            .prepare_cached(
                "INSERT INTO devices (id, state, class, zone, vendor, mac, serial, cert_fp, revision, doc)
                 SELECT id, state, class, zone, vendor, mac, serial, cert_fp, revision, doc::jsonb
                 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::int8[], $10::text[])
                      AS t (id, state, class, zone, vendor, mac, serial, cert_fp, revision, doc)
                 ON CONFLICT (id) DO NOTHING RETURNING id",
            )
            .await
            .map_err(backend)?;
        let rows = tx
            .query(
                &stmt,
                &[
                    &self.id,
                    &self.state,
                    &self.class,
                    &self.zone,
                    &self.vendor,
                    &self.mac,
                    &self.serial,
                    &self.cert_fp,
                    &self.revision,
                    &self.doc,
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(|r| col(r, 0, "devices")).collect()
    }
}

pub(crate) async fn get_device(
    c: &impl GenericClient,
    id: DeviceId,
    lock: bool,
) -> Result<Option<Device>> {
    let sql = if lock {
        "SELECT doc::text FROM devices WHERE id = $1 FOR UPDATE"
    } else {
        "SELECT doc::text FROM devices WHERE id = $1"
    };
    let stmt = c.prepare_cached(sql).await.map_err(backend)?;
    let row = c.query_opt(&stmt, &[id.as_uuid()]).await.map_err(backend)?;
    row.map(|r| device_from_doc(col(&r, 0, "devices")?))
        .transpose()
}

/// Writes `device` (whose JSON is `doc`) over its row.
pub(crate) async fn update_device(tx: &Transaction<'_>, device: &Device, doc: &str) -> Result<()> {
    let stmt = tx
        .prepare_cached(
            "UPDATE devices SET state = $2, class = $3, zone = $4, vendor = $5, mac = $6, serial = $7,
             cert_fp = $8, revision = $9, doc = $10::text::jsonb WHERE id = $1",
        )
        .await
        .map_err(backend)?;
    tx.execute(
        &stmt,
        &[
            device.id.as_uuid(),
            &device.state.as_str(),
            &device.class.as_str(),
            &device.zone.as_ref().map(|z| z.as_str()),
            &device.vendor.as_ref().map(|v| v.as_str()),
            &device.identifiers.mac.map(|m| m.to_string()),
            &device.identifiers.serial.as_ref().map(|s| s.as_str()),
            &device.identifiers.cert_fingerprint.map(|f| f.to_string()),
            &(device.revision as i64),
            &doc,
        ],
    )
    .await
    .map_err(backend)?;
    Ok(())
}

pub(crate) fn not_found(id: DeviceId) -> StoreError {
    StoreError::NotFound {
        what: "device",
        id: id.to_string(),
    }
}

const EVENT_COLUMNS: &str =
    "seq, at, device_id, actor, action, before, after, reason, prev_hash, hash";
const TOKEN_COLUMNS: &str = "id, operator, role, secret_hash, created_at, expires_at, revoked_at";

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<()> {
        self.client()
            .await?
            .execute("SELECT 1", &[])
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn create_device(&self, new: NewDevice, change: Change) -> Result<Device> {
        let (device, event) = plan_create(new, &change, false)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let mut cols = DeviceColumns::default();
        cols.push(&device, event.after.as_deref().unwrap_or_default());
        if cols.insert(&tx).await?.is_empty() {
            return Err(StoreError::AlreadyExists {
                what: "device",
                id: device.id.to_string(),
            });
        }
        append(&tx, head, vec![event], change.at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(device)
    }

    async fn import_devices(&self, batch: Vec<NewDevice>, change: Change) -> Result<ImportOutcome> {
        let planned = batch
            .into_iter()
            .map(|n| plan_create(n, &change, true))
            .collect::<Result<Vec<_>>>()?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let mut cols = DeviceColumns::default();
        for (d, e) in &planned {
            cols.push(d, e.after.as_deref().unwrap_or_default());
        }
        let mut inserted: HashMap<Uuid, ()> = cols
            .insert(&tx)
            .await?
            .into_iter()
            .map(|u| (u, ()))
            .collect();
        drop(cols);
        let mut outcome = ImportOutcome::default();
        let mut events = Vec::with_capacity(inserted.len());
        for (d, e) in planned {
            // A duplicate inside the batch was inserted once: the first occurrence takes the event.
            if inserted.remove(d.id.as_uuid()).is_some() {
                outcome.created += 1;
                events.push(e);
            } else {
                outcome.existing += 1;
            }
        }
        append(&tx, head, events, change.at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(outcome)
    }

    async fn get_device(&self, id: DeviceId) -> Result<Device> {
        let client = self.client().await?;
        get_device(&client, id, false)
            .await?
            .ok_or_else(|| not_found(id))
    }

    async fn list_devices(&self, q: &DeviceQuery) -> Result<DevicePage> {
        use tokio_postgres::types::ToSql;
        let mut sql = String::from("SELECT doc::text FROM devices WHERE true");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |sql: &mut String, clause: &str, v: Box<dyn ToSql + Sync + Send>| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", args.len())));
        };
        if let Some(states) = q.states() {
            let names: Vec<String> = states.iter().map(|s| s.as_str().to_owned()).collect();
            arg(&mut sql, " AND state = ANY(?)", Box::new(names));
        }
        if let Some(class) = q.class {
            arg(&mut sql, " AND class = ?", Box::new(class.as_str()));
        }
        if let Some(zone) = &q.zone {
            arg(
                &mut sql,
                " AND zone = ?",
                Box::new(zone.as_str().to_owned()),
            );
        }
        if let Some(vendor) = &q.vendor {
            arg(
                &mut sql,
                " AND vendor = ?",
                Box::new(vendor.as_str().to_owned()),
            );
        }
        if let Some(serial) = &q.serial {
            arg(
                &mut sql,
                " AND serial = ?",
                Box::new(serial.as_str().to_owned()),
            );
        }
        if let Some(group) = &q.group {
            arg(
                &mut sql,
                " AND doc->'groups' @> jsonb_build_array(?::text)",
                Box::new(group.as_str().to_owned()),
            );
        }
        if let Some((key, value)) = &q.label {
            arg(
                &mut sql,
                " AND doc->'labels'->>?::text",
                Box::new(key.as_str().to_owned()),
            );
            arg(&mut sql, " = ?", Box::new(value.as_str().to_owned()));
        }
        if let Some(after) = q.after {
            arg(&mut sql, " AND id > ?", Box::new(*after.as_uuid()));
        }
        let limit = q.effective_limit();
        arg(
            &mut sql,
            " ORDER BY id LIMIT ?",
            Box::new(i64::from(limit + 1)),
        );
        let client = self.client().await?;
        let params: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&sql, &params).await.map_err(backend)?;
        let mut devices = rows
            .iter()
            .map(|r| device_from_doc(col(r, 0, "devices")?))
            .collect::<Result<Vec<_>>>()?;
        let next = if devices.len() > limit as usize {
            devices.truncate(limit as usize);
            devices.last().map(|d| d.id)
        } else {
            None
        };
        Ok(DevicePage { devices, next })
    }

    async fn edit_device(
        &self,
        id: DeviceId,
        edit: DeviceEdit,
        expected_revision: Option<u64>,
        change: Change,
    ) -> Result<Device> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let current = get_device(&tx, id, true)
            .await?
            .ok_or_else(|| not_found(id))?;
        match plan_edit(&current, &edit, expected_revision, &change)? {
            Edited::Unchanged => Ok(current),
            Edited::Changed(next, event) => {
                update_device(&tx, &next, event.after.as_deref().unwrap_or_default()).await?;
                append(&tx, head, vec![event], change.at).await?;
                tx.commit().await.map_err(backend)?;
                Ok(*next)
            }
        }
    }

    async fn count_devices_by_state(&self) -> Result<BTreeMap<DeviceState, u64>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT state, COUNT(*) FROM devices GROUP BY state", &[])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let state = col::<&str>(r, 0, "devices")?
                    .parse()
                    .map_err(|e| StoreError::corrupt("devices", e))?;
                Ok((state, col::<i64>(r, 1, "devices")? as u64))
            })
            .collect()
    }

    async fn device_events(
        &self,
        id: DeviceId,
        after: Option<EventSeq>,
        limit: u32,
    ) -> Result<Vec<Event>> {
        let client = self.client().await?;
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let stmt = client.prepare_cached(&sql).await.map_err(backend)?;
        let rows = client
            .query(
                &stmt,
                &[
                    id.as_uuid(),
                    &after.map_or(0, |s| s.0 as i64),
                    &i64::from(limit),
                ],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn events(&self, after: Option<EventSeq>, limit: u32) -> Result<Vec<Event>> {
        let client = self.client().await?;
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let stmt = client.prepare_cached(&sql).await.map_err(backend)?;
        let rows = client
            .query(
                &stmt,
                &[&after.map_or(0, |s| s.0 as i64), &i64::from(limit)],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(event_from_row).collect()
    }

    fn subscribe(&self) -> Wakeup {
        self.listener.start(&self.config)
    }

    async fn consumer_cursor(&self, consumer: &ConsumerId) -> Result<Option<EventSeq>> {
        self.load_cursor(consumer).await
    }

    async fn save_consumer_cursor(&self, consumer: &ConsumerId, through: EventSeq) -> Result<()> {
        self.save_cursor(consumer, through).await
    }

    async fn append_observations(
        &self,
        batch: Vec<Observation>,
        at: Timestamp,
    ) -> Result<Option<ObservationSeq>> {
        self.append_observations_impl(batch, at).await
    }

    async fn observations(
        &self,
        after: Option<ObservationSeq>,
        limit: u32,
    ) -> Result<Vec<QueuedObservation>> {
        self.observations_impl(after, limit).await
    }

    async fn prune_observations(&self, before: Timestamp, keep_last: u64) -> Result<u64> {
        self.prune_observations_impl(before, keep_last).await
    }

    async fn observation_snapshot(
        &self,
        consumer: &ConsumerId,
    ) -> Result<Option<ObservationSnapshot>> {
        self.observation_snapshot_impl(consumer).await
    }

    async fn save_observation_snapshot(
        &self,
        consumer: &ConsumerId,
        snapshot: ObservationSnapshot,
    ) -> Result<()> {
        self.save_observation_snapshot_impl(consumer, snapshot)
            .await
    }

    async fn audit_head(&self) -> Result<Option<(EventSeq, Digest)>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT seq, hash FROM audit_head WHERE id = 1", &[])
            .await
            .map_err(backend)?;
        let Some(row) = row else {
            return Err(StoreError::corrupt("audit_head", "the head row is missing"));
        };
        let head = decode_head(
            col(&row, 0, "audit_head")?,
            &col::<Vec<u8>>(&row, 1, "audit_head")?,
        )?;
        Ok((head.0.0 > 0).then_some(head))
    }

    async fn create_token(&self, token: TokenRecord, change: Change) -> Result<()> {
        let event = plan_token_created(&token, &change);
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let n = tx
            .execute(
                "INSERT INTO tokens (id, operator, role, secret_hash, created_at, expires_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING",
                &[
                    &token.id.to_bytes().to_vec(),
                    &token.operator.as_str(),
                    &token.role.as_str(),
                    &token.secret_hash.to_vec(),
                    &token.created_at.unix_micros(),
                    &token.expires_at.map(Timestamp::unix_micros),
                    &token.revoked_at.map(Timestamp::unix_micros),
                ],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: "token",
                id: token.id.to_string(),
            });
        }
        append(&tx, head, vec![event], change.at).await?;
        tx.commit().await.map_err(backend)
    }

    async fn get_token(&self, id: TokenId) -> Result<Option<TokenRecord>> {
        let client = self.client().await?;
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1");
        let row = client
            .query_opt(&sql, &[&id.to_bytes().to_vec()])
            .await
            .map_err(backend)?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let client = self.client().await?;
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id");
        let rows = client.query(&sql, &[]).await.map_err(backend)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: TokenId, change: Change) -> Result<TokenRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1 FOR UPDATE");
        let token = tx
            .query_opt(&sql, &[&id.to_bytes().to_vec()])
            .await
            .map_err(backend)?
            .as_ref()
            .map(token_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound {
                what: "token",
                id: id.to_string(),
            })?;
        let Some((revoked, event)) = plan_token_revoked(&token, &change) else {
            return Ok(token);
        };
        tx.execute(
            "UPDATE tokens SET revoked_at = $2 WHERE id = $1",
            &[&id.to_bytes().to_vec(), &change.at.unix_micros()],
        )
        .await
        .map_err(backend)?;
        append(&tx, head, vec![event], change.at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(revoked)
    }

    async fn append_event(&self, draft: EventDraft, at: Timestamp) -> Result<Event> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        if let Some(id) = draft.device_id {
            get_device(&tx, id, false)
                .await?
                .ok_or_else(|| not_found(id))?;
        }
        // Sealing is deterministic: this is exactly the event `append` stores.
        let event = draft.clone().seal(EventSeq(head.0.0 + 1), at, head.1);
        append(&tx, head, vec![draft], at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(event)
    }

    async fn create_enrollment_token(
        &self,
        token: EnrollmentTokenRecord,
        change: Change,
    ) -> Result<()> {
        self.create_enrollment_token_impl(token, change).await
    }

    async fn get_enrollment_token(&self, id: TokenId) -> Result<Option<EnrollmentTokenRecord>> {
        self.get_enrollment_token_impl(id).await
    }

    async fn record_issuance(&self, issuance: Issuance, change: Change) -> Result<Device> {
        self.record_issuance_impl(issuance, change).await
    }

    async fn get_certificate(&self, serial: Serial) -> Result<Option<CertificateRecord>> {
        self.get_certificate_impl(serial).await
    }

    async fn get_certificate_by_fingerprint(
        &self,
        fp: CertFingerprint,
    ) -> Result<Option<CertificateRecord>> {
        self.get_certificate_by_fingerprint_impl(fp).await
    }

    async fn device_certificates(&self, id: DeviceId) -> Result<Vec<CertificateRecord>> {
        self.device_certificates_impl(id).await
    }

    async fn expiring_certificates(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<CertificateRecord>> {
        self.expiring_certificates_impl(before, limit).await
    }

    async fn revoked_certificates(&self) -> Result<Vec<(Serial, Timestamp, RevocationReason)>> {
        self.revoked_certificates_impl().await
    }

    async fn revoke_certificate(
        &self,
        serial: Serial,
        reason: RevocationReason,
        change: Change,
    ) -> Result<CertificateRecord> {
        self.revoke_certificate_impl(serial, reason, change).await
    }

    async fn release_certificate(
        &self,
        serial: Serial,
        change: Change,
    ) -> Result<CertificateRecord> {
        self.release_certificate_impl(serial, change).await
    }

    async fn revocation_generation(&self) -> Result<u64> {
        self.revocation_generation_impl().await
    }

    async fn policies(&self) -> Result<Vec<PolicyRecord>> {
        self.policies_impl().await
    }

    async fn policy_history(&self, id: &PolicyId) -> Result<Vec<PolicyRecord>> {
        self.policy_history_impl(id).await
    }

    async fn write_policies(
        &self,
        writes: Vec<PolicyWrite>,
        change: Change,
    ) -> Result<Vec<PolicyRecord>> {
        self.write_policies_impl(writes, change).await
    }

    async fn policy_generation(&self) -> Result<u64> {
        self.policy_generation_impl().await
    }

    async fn put_document(
        &self,
        kind: DocumentKind,
        key: DocumentKey,
        body: Vec<u8>,
        change: Change,
    ) -> Result<Option<DocumentRecord>> {
        self.put_document_impl(kind, key, body, change).await
    }

    async fn documents(&self, kind: Option<DocumentKind>) -> Result<Vec<DocumentRecord>> {
        self.documents_impl(kind).await
    }

    async fn get_mfa(&self, token: TokenId) -> Result<Option<MfaRecord>> {
        self.get_mfa_impl(token).await
    }

    async fn put_mfa(&self, mfa: MfaRecord, change: Change) -> Result<()> {
        self.put_mfa_impl(mfa, change).await
    }

    async fn use_mfa_step(&self, token: TokenId, step: u64) -> Result<bool> {
        self.use_mfa_step_impl(token, step).await
    }

    async fn take_mfa_attempt(&self, token: TokenId, now: Timestamp) -> Result<MfaAttempt> {
        self.take_mfa_attempt_impl(token, now).await
    }

    async fn record_mfa_failure(
        &self,
        token: TokenId,
        change: Change,
        source: Option<String>,
    ) -> Result<()> {
        self.record_mfa_failure_impl(token, change, source).await
    }

    async fn reset_mfa(
        &self,
        token: TokenId,
        enroll_until: Timestamp,
        change: Change,
    ) -> Result<()> {
        self.reset_mfa_impl(token, enroll_until, change).await
    }
}
