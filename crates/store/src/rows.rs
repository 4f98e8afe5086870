//! Rows as the engines return them, decoded into domain values the same way for every backend. A row that
//! does not decode is reported as corrupt (it was edited outside Vouch), never guessed at.

use vouch_events::{Digest, Event, EventDraft, EventSeq};
use vouch_types::{DeviceId, Timestamp, TokenId};

use crate::{StoreError, TokenRecord};

/// An `events` row before decoding (the backend has already turned its device column into a [`DeviceId`]).
#[derive(Debug)]
pub struct EventRow {
    /// Position.
    pub seq: i64,
    /// Microseconds since the epoch.
    pub at: i64,
    /// The device the event is about.
    pub device_id: Option<DeviceId>,
    /// `Actor` as text.
    pub actor: String,
    /// `Action` as text.
    pub action: String,
    /// Canonical JSON before.
    pub before: Option<String>,
    /// Canonical JSON after.
    pub after: Option<String>,
    /// Reason text.
    pub reason: Option<String>,
    /// 32 bytes.
    pub prev_hash: Vec<u8>,
    /// 32 bytes.
    pub hash: Vec<u8>,
}

impl EventRow {
    /// The event, or which of its columns is corrupt.
    pub fn decode(self) -> Result<Event, StoreError> {
        let seq = self.seq;
        let bad = |why: String| StoreError::corrupt("events", format!("event {seq}: {why}"));
        Ok(Event {
            seq: EventSeq(u64::try_from(seq).map_err(|_| bad("negative seq".into()))?),
            at: Timestamp::from_unix_micros(self.at),
            draft: EventDraft {
                device_id: self.device_id,
                actor: self.actor.parse().map_err(|e| bad(format!("{e}")))?,
                action: self.action.parse().map_err(|e| bad(format!("{e}")))?,
                before: self.before,
                after: self.after,
                reason: self
                    .reason
                    .map(|r| r.try_into().map_err(|e| bad(format!("{e}"))))
                    .transpose()?,
            },
            prev_hash: Digest::from_slice(&self.prev_hash)
                .ok_or_else(|| bad("prev_hash is not 32 bytes".into()))?,
            hash: Digest::from_slice(&self.hash)
                .ok_or_else(|| bad("hash is not 32 bytes".into()))?,
        })
    }
}

/// A `tokens` row before decoding.
#[derive(Debug)]
pub struct TokenRow {
    /// 8 bytes.
    pub id: Vec<u8>,
    /// Operator name.
    pub operator: String,
    /// Role name.
    pub role: String,
    /// 32 bytes.
    pub secret_hash: Vec<u8>,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub expires_at: Option<i64>,
    /// Microseconds since the epoch.
    pub revoked_at: Option<i64>,
}

impl TokenRow {
    /// The token record, or which of its columns is corrupt.
    pub fn decode(self) -> Result<TokenRecord, StoreError> {
        let bad = |why: String| StoreError::corrupt("tokens", why);
        Ok(TokenRecord {
            id: TokenId::from_bytes(
                <[u8; 8]>::try_from(self.id.as_slice())
                    .map_err(|_| bad("id is not 8 bytes".into()))?,
            ),
            operator: self.operator.try_into().map_err(|e| bad(format!("{e}")))?,
            role: self.role.parse().map_err(|e| bad(format!("{e}")))?,
            secret_hash: <[u8; 32]>::try_from(self.secret_hash.as_slice())
                .map_err(|_| bad("secret hash is not 32 bytes".into()))?,
            created_at: Timestamp::from_unix_micros(self.created_at),
            expires_at: self.expires_at.map(Timestamp::from_unix_micros),
            revoked_at: self.revoked_at.map(Timestamp::from_unix_micros),
        })
    }
}

/// The chain head from its row (`seq`, `hash`); position 0 means an empty log.
pub fn decode_head(seq: i64, hash: &[u8]) -> Result<(EventSeq, Digest), StoreError> {
    Ok((
        EventSeq(
            u64::try_from(seq).map_err(|_| StoreError::corrupt("audit_head", "negative seq"))?,
        ),
        Digest::from_slice(hash)
            .ok_or_else(|| StoreError::corrupt("audit_head", "hash is not 32 bytes"))?,
    ))
}

/// A `certificates` row before decoding.
#[derive(Debug)]
pub struct CertRow {
    /// Serial bytes.
    pub serial: Vec<u8>,
    /// The device (decoded by the backend).
    pub device_id: DeviceId,
    /// 32 bytes.
    pub fingerprint: Vec<u8>,
    /// Microseconds since the epoch.
    pub not_before: i64,
    /// Microseconds since the epoch.
    pub not_after: i64,
    /// Microseconds since the epoch, when revoked.
    pub revoked_at: Option<i64>,
    /// RFC 5280 reason code, when revoked.
    pub reason: Option<i64>,
    /// The certificate.
    pub der: Vec<u8>,
}

impl CertRow {
    /// The certificate record, or which column is corrupt.
    pub fn decode(self) -> Result<crate::CertificateRecord, StoreError> {
        let bad = |why: String| StoreError::corrupt("certificates", why);
        let serial =
            vouch_types::Serial::from_slice(&self.serial).map_err(|e| bad(e.to_string()))?;
        let status = match (self.revoked_at, self.reason) {
            (None, None) => crate::CertStatus::Good,
            (Some(at), Some(code)) => crate::CertStatus::Revoked {
                reason: u8::try_from(code)
                    .ok()
                    .and_then(vouch_types::RevocationReason::from_code)
                    .ok_or_else(|| {
                        bad(format!("certificate {serial}: unknown reason code {code}"))
                    })?,
                at: Timestamp::from_unix_micros(at),
            },
            _ => {
                return Err(bad(format!(
                    "certificate {serial}: revoked_at and reason disagree"
                )));
            }
        };
        Ok(crate::CertificateRecord {
            serial,
            device_id: self.device_id,
            fingerprint: vouch_types::CertFingerprint::from_bytes(
                <[u8; 32]>::try_from(self.fingerprint.as_slice()).map_err(|_| {
                    bad(format!("certificate {serial}: fingerprint is not 32 bytes"))
                })?,
            ),
            not_before: Timestamp::from_unix_micros(self.not_before),
            not_after: Timestamp::from_unix_micros(self.not_after),
            status,
            der: self.der,
        })
    }
}

/// An `enrollment_tokens` row before decoding.
#[derive(Debug)]
pub struct EnrollmentTokenRow {
    /// 8 bytes.
    pub id: Vec<u8>,
    /// The device (decoded by the backend).
    pub device_id: DeviceId,
    /// 32 bytes.
    pub secret_hash: Vec<u8>,
    /// Microseconds since the epoch.
    pub created_at: i64,
    /// Microseconds since the epoch.
    pub expires_at: i64,
    /// Microseconds since the epoch.
    pub used_at: Option<i64>,
}

impl EnrollmentTokenRow {
    /// The token record, or which column is corrupt.
    pub fn decode(self) -> Result<crate::EnrollmentTokenRecord, StoreError> {
        let bad = |why: &str| StoreError::corrupt("enrollment_tokens", why);
        Ok(crate::EnrollmentTokenRecord {
            id: TokenId::from_bytes(
                <[u8; 8]>::try_from(self.id.as_slice()).map_err(|_| bad("id is not 8 bytes"))?,
            ),
            device_id: self.device_id,
            secret_hash: <[u8; 32]>::try_from(self.secret_hash.as_slice())
                .map_err(|_| bad("secret hash is not 32 bytes"))?,
            created_at: Timestamp::from_unix_micros(self.created_at),
            expires_at: Timestamp::from_unix_micros(self.expires_at),
            used_at: self.used_at.map(Timestamp::from_unix_micros),
        })
    }
}

/// The columns a certificate is stored in: (revoked_at, reason code).
pub fn status_columns(status: crate::CertStatus) -> (Option<i64>, Option<i64>) {
    match status {
        crate::CertStatus::Good => (None, None),
        crate::CertStatus::Revoked { reason, at } => {
            (Some(at.unix_micros()), Some(i64::from(reason.code())))
        }
    }
}
