//! Certificates and enrollment tokens in PostgreSQL: each write one transaction (chain head locked first) with
//! the device change and the events that the shared rules in `vouch-store` plan.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use vouch_store::{
    CertRow, CertificateRecord, Change, EnrollmentTokenRecord, EnrollmentTokenRow, Issuance,
    Result, StatusPlan, StoreError, plan_enrollment_token_created, plan_issuance, plan_release,
    plan_revocation, status_columns,
};
use vouch_types::{
    CertFingerprint, Device, DeviceId, RevocationReason, Serial, Timestamp, TokenId,
};

use crate::rows::{backend, col};
use crate::{PostgresStore, append, get_device, lock_head, not_found, update_device};

const CERT_COLUMNS: &str =
    "serial, device_id, fingerprint, not_before, not_after, revoked_at, reason, der";

fn cert_from_row(r: &Row) -> Result<CertificateRecord> {
    let t = "certificates";
    CertRow {
        serial: col(r, 0, t)?,
        device_id: DeviceId::from_uuid(col(r, 1, t)?),
        fingerprint: col(r, 2, t)?,
        not_before: col(r, 3, t)?,
        not_after: col(r, 4, t)?,
        revoked_at: col(r, 5, t)?,
        reason: col::<Option<i16>>(r, 6, t)?.map(i64::from),
        der: col(r, 7, t)?,
    }
    .decode()
}

async fn certs(
    c: &impl GenericClient,
    filter: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<CertificateRecord>> {
    let sql = format!("SELECT {CERT_COLUMNS} FROM certificates {filter}");
    let stmt = c.prepare_cached(&sql).await.map_err(backend)?;
    c.query(&stmt, args)
        .await
        .map_err(backend)?
        .iter()
        .map(cert_from_row)
        .collect()
}

fn token_from_row(r: &Row) -> Result<EnrollmentTokenRecord> {
    let t = "enrollment_tokens";
    EnrollmentTokenRow {
        id: col(r, 0, t)?,
        device_id: DeviceId::from_uuid(col(r, 1, t)?),
        secret_hash: col(r, 2, t)?,
        created_at: col(r, 3, t)?,
        expires_at: col(r, 4, t)?,
        used_at: col(r, 5, t)?,
    }
    .decode()
}

async fn enrollment_token(
    c: &impl GenericClient,
    id: TokenId,
    lock: bool,
) -> Result<Option<EnrollmentTokenRecord>> {
    let sql = format!(
        "SELECT id, device_id, secret_hash, created_at, expires_at, used_at FROM enrollment_tokens WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    c.query_opt(&sql, &[&id.to_bytes().to_vec()])
        .await
        .map_err(backend)?
        .as_ref()
        .map(token_from_row)
        .transpose()
}

async fn write_status(
    tx: &Transaction<'_>,
    head: (vouch_events::EventSeq, vouch_events::Digest),
    plan: StatusPlan,
    at: Timestamp,
) -> Result<CertificateRecord> {
    let (revoked_at, reason) = status_columns(plan.cert.status);
    tx.execute(
        "UPDATE certificates SET revoked_at = $2, reason = $3 WHERE serial = $1",
        &[
            &plan.cert.serial.as_bytes().to_vec(),
            &revoked_at,
            &reason.map(|r| r as i16),
        ],
    )
    .await
    .map_err(backend)?;
    if let Some(d) = &plan.device {
        update_device(tx, d, &serde_json::to_string(d)?).await?;
    }
    tx.execute(
        "UPDATE pki_state SET revocation_generation = revocation_generation + 1 WHERE id = 1",
        &[],
    )
    .await
    .map_err(backend)?;
    append(tx, head, plan.events, at).await?;
    Ok(plan.cert)
}

/// The certificate and its device, both locked for update.
async fn cert_for_update(
    tx: &Transaction<'_>,
    serial: Serial,
) -> Result<(CertificateRecord, Device)> {
    let cert = certs(
        tx,
        "WHERE serial = $1 FOR UPDATE",
        &[&serial.as_bytes().to_vec()],
    )
    .await?
    .pop()
    .ok_or_else(|| StoreError::NotFound {
        what: "certificate",
        id: serial.to_string(),
    })?;
    let device = get_device(tx, cert.device_id, true)
        .await?
        .ok_or_else(|| not_found(cert.device_id))?;
    Ok((cert, device))
}

impl PostgresStore {
    pub(crate) async fn revocation_generation_impl(&self) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT revocation_generation FROM pki_state WHERE id = 1",
                &[],
            )
            .await
            .map_err(backend)?;
        Ok(col::<i64>(&row, 0, "pki_state")? as u64)
    }

    pub(crate) async fn create_enrollment_token_impl(
        &self,
        t: EnrollmentTokenRecord,
        change: Change,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        get_device(&tx, t.device_id, false)
            .await?
            .ok_or_else(|| not_found(t.device_id))?;
        let n = tx
            .execute(
                "INSERT INTO enrollment_tokens (id, device_id, secret_hash, created_at, expires_at, used_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                &[
                    &t.id.to_bytes().to_vec(),
                    t.device_id.as_uuid(),
                    &t.secret_hash.to_vec(),
                    &t.created_at.unix_micros(),
                    &t.expires_at.unix_micros(),
                    &t.used_at.map(Timestamp::unix_micros),
                ],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: "enrollment token",
                id: t.id.to_string(),
            });
        }
        append(
            &tx,
            head,
            vec![plan_enrollment_token_created(&t, &change)],
            change.at,
        )
        .await?;
        tx.commit().await.map_err(backend)
    }

    pub(crate) async fn get_enrollment_token_impl(
        &self,
        id: TokenId,
    ) -> Result<Option<EnrollmentTokenRecord>> {
        let client = self.client().await?;
        enrollment_token(&client, id, false).await
    }

    pub(crate) async fn record_issuance_impl(
        &self,
        issuance: Issuance,
        change: Change,
    ) -> Result<Device> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let cert = issuance.cert;
        let device = get_device(&tx, cert.device_id, true)
            .await?
            .ok_or_else(|| not_found(cert.device_id))?;
        let token = match issuance.token {
            None => None,
            Some(id) => Some(enrollment_token(&tx, id, true).await?),
        };
        let plan = plan_issuance(&device, token.as_ref().map(Option::as_ref), &cert, &change)?;
        if let Some(t) = &plan.token {
            tx.execute(
                "UPDATE enrollment_tokens SET used_at = $2 WHERE id = $1",
                &[
                    &t.id.to_bytes().to_vec(),
                    &t.used_at.map(Timestamp::unix_micros),
                ],
            )
            .await
            .map_err(backend)?;
        }
        let (revoked_at, reason) = status_columns(cert.status);
        let n = tx
            .execute(
                "INSERT INTO certificates (serial, device_id, fingerprint, not_before, not_after, revoked_at, reason, der)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                &[
                    &cert.serial.as_bytes().to_vec(),
                    cert.device_id.as_uuid(),
                    &cert.fingerprint.as_bytes().to_vec(),
                    &cert.not_before.unix_micros(),
                    &cert.not_after.unix_micros(),
                    &revoked_at,
                    &reason.map(|r| r as i16),
                    &cert.der,
                ],
            )
            .await
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::AlreadyExists {
                what: "certificate",
                id: cert.serial.to_string(),
            });
        }
        update_device(&tx, &plan.device, &serde_json::to_string(&plan.device)?).await?;
        append(&tx, head, plan.events, change.at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(plan.device)
    }

    pub(crate) async fn get_certificate_impl(
        &self,
        serial: Serial,
    ) -> Result<Option<CertificateRecord>> {
        let client = self.client().await?;
        Ok(
            certs(&client, "WHERE serial = $1", &[&serial.as_bytes().to_vec()])
                .await?
                .pop(),
        )
    }

    pub(crate) async fn get_certificate_by_fingerprint_impl(
        &self,
        fp: CertFingerprint,
    ) -> Result<Option<CertificateRecord>> {
        let client = self.client().await?;
        Ok(certs(
            &client,
            "WHERE fingerprint = $1",
            &[&fp.as_bytes().to_vec()],
        )
        .await?
        .pop())
    }

    pub(crate) async fn device_certificates_impl(
        &self,
        id: DeviceId,
    ) -> Result<Vec<CertificateRecord>> {
        let client = self.client().await?;
        certs(
            &client,
            "WHERE device_id = $1 ORDER BY not_before DESC, serial",
            &[id.as_uuid()],
        )
        .await
    }

    pub(crate) async fn expiring_certificates_impl(
        &self,
        before: Timestamp,
        limit: u32,
    ) -> Result<Vec<CertificateRecord>> {
        let client = self.client().await?;
        certs(
            &client,
            "WHERE revoked_at IS NULL AND not_after < $1 ORDER BY not_after, serial LIMIT $2",
            &[&before.unix_micros(), &i64::from(limit)],
        )
        .await
    }

    pub(crate) async fn revoked_certificates_impl(
        &self,
    ) -> Result<Vec<(Serial, Timestamp, RevocationReason)>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT serial, revoked_at, reason FROM certificates WHERE revoked_at IS NOT NULL ORDER BY serial", &[])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| {
                let t = "certificates";
                let bad = |why: String| StoreError::corrupt(t, why);
                let serial = Serial::from_slice(&col::<Vec<u8>>(r, 0, t)?)
                    .map_err(|e| bad(e.to_string()))?;
                let code: i16 = col(r, 2, t)?;
                let reason = u8::try_from(code)
                    .ok()
                    .and_then(RevocationReason::from_code)
                    .ok_or_else(|| {
                        bad(format!("certificate {serial}: unknown reason code {code}"))
                    })?;
                Ok((serial, Timestamp::from_unix_micros(col(r, 1, t)?), reason))
            })
            .collect()
    }

    pub(crate) async fn revoke_certificate_impl(
        &self,
        serial: Serial,
        reason: RevocationReason,
        change: Change,
    ) -> Result<CertificateRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let (cert, device) = cert_for_update(&tx, serial).await?;
        let Some(plan) = plan_revocation(&cert, &device, reason, &change)? else {
            return Ok(cert);
        };
        let out = write_status(&tx, head, plan, change.at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(out)
    }

    pub(crate) async fn release_certificate_impl(
        &self,
        serial: Serial,
        change: Change,
    ) -> Result<CertificateRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let head = lock_head(&tx).await?;
        let (cert, device) = cert_for_update(&tx, serial).await?;
        let plan = plan_release(&cert, &device, &change)?;
        let out = write_status(&tx, head, plan, change.at).await?;
        tx.commit().await.map_err(backend)?;
        Ok(out)
    }
}
