//! Certificates and enrollment tokens as stored, and the rules for issuing, revoking and releasing them that
//! every backend applies the same way.

use vouch_events::{
    Action, CertificateLogged, EnrollmentTokenLogged, EventDraft, LoggedCertStatus, PAYLOAD_VERSION,
};
use vouch_types::{
    CertFingerprint, Device, DeviceId, DeviceState, RevocationReason, Serial, Timestamp, TokenId,
};

use crate::{Change, StoreError};

/// Where a certificate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    /// Not revoked (it may still have expired: see `not_after`).
    Good,
    /// Revoked at `at` for `reason`; `CertificateHold` is a temporary revocation that can be released.
    Revoked {
        /// Why.
        reason: RevocationReason,
        /// When.
        at: Timestamp,
    },
}

/// A certificate Vouch issued (or imported), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Its serial number (unique).
    pub serial: Serial,
    /// The device it names.
    pub device_id: DeviceId,
    /// SHA-256 of its DER (unique).
    pub fingerprint: CertFingerprint,
    /// Valid from.
    pub not_before: Timestamp,
    /// Valid until.
    pub not_after: Timestamp,
    /// Revoked or not.
    pub status: CertStatus,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl CertificateRecord {
    /// Whether the certificate may be relied on at `now`: not revoked, not expired, already valid.
    pub fn is_valid_at(&self, now: Timestamp) -> bool {
        self.status == CertStatus::Good && self.not_before <= now && now < self.not_after
    }

    /// The event-log view: everything but the DER.
    fn summary(&self) -> String {
        let (status, reason, revoked_at) = match self.status {
            CertStatus::Good => (LoggedCertStatus::Good, None, None),
            CertStatus::Revoked { reason, at } => {
                (LoggedCertStatus::Revoked, Some(reason), Some(at))
            }
        };
        crate::plan::after(&CertificateLogged {
            v: PAYLOAD_VERSION,
            serial: self.serial,
            device_id: self.device_id,
            fingerprint: self.fingerprint,
            not_before: self.not_before,
            not_after: self.not_after,
            status,
            reason,
            revoked_at,
        })
    }
}

/// A one-time enrollment token as stored: bound to one device, expiring, single use; only the secret's hash.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollmentTokenRecord {
    /// The token's public id.
    pub id: TokenId,
    /// The device it may enroll.
    pub device_id: DeviceId,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// When it was used, if it was.
    pub used_at: Option<Timestamp>,
}

impl std::fmt::Debug for EnrollmentTokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollmentTokenRecord")
            .field("id", &self.id)
            .field("device_id", &self.device_id)
            .field("expires_at", &self.expires_at)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

/// Why an enrollment or a revocation step was refused. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No enrollment token has this id.
    #[error("unknown enrollment token")]
    TokenUnknown,
    /// The token was used already.
    #[error("the enrollment token was used already")]
    TokenUsed,
    /// The token expired.
    #[error("the enrollment token expired")]
    TokenExpired,
    /// The token is bound to another device.
    #[error("the enrollment token is for another device")]
    TokenForAnotherDevice,
    /// The device is in a state that cannot receive a certificate.
    #[error("a {0} device cannot be given a certificate")]
    DeviceNotEnrollable(DeviceState),
    /// Only a certificate on hold can be released.
    #[error("certificate {0} is not on hold")]
    NotOnHold(Serial),
    /// A permanently revoked certificate stays revoked.
    #[error("certificate {0} is revoked permanently")]
    AlreadyRevoked(Serial),
}

/// A certificate to record, and the enrollment token that pays for it (consumed in the same transaction).
#[derive(Debug, Clone)]
pub struct Issuance {
    /// The certificate issued.
    pub cert: CertificateRecord,
    /// The one-time token presented, if the enrollment used one.
    pub token: Option<TokenId>,
}

/// What recording an issuance changes: the token (now used), the device, and the events.
pub struct IssuancePlan {
    /// The token as it will be stored (used), if one was presented.
    pub token: Option<EnrollmentTokenRecord>,
    /// The device as it will be stored.
    pub device: Device,
    /// The events, in order.
    pub events: Vec<EventDraft>,
}

/// Checks an issuance against the device and the presented token, and plans the writes: the token is used,
/// the device records the certificate's fingerprint, and an onboarding device becomes active.
pub fn plan_issuance(
    device: &Device,
    token: Option<Option<&EnrollmentTokenRecord>>,
    cert: &CertificateRecord,
    change: &Change,
) -> Result<IssuancePlan, StoreError> {
    let used = match token {
        None => None,
        Some(None) => return Err(Refusal::TokenUnknown.into()),
        Some(Some(t)) => {
            if t.used_at.is_some() {
                return Err(Refusal::TokenUsed.into());
            }
            if change.at >= t.expires_at {
                return Err(Refusal::TokenExpired.into());
            }
            if t.device_id != device.id {
                return Err(Refusal::TokenForAnotherDevice.into());
            }
            Some(EnrollmentTokenRecord {
                used_at: Some(change.at),
                ..t.clone()
            })
        }
    };
    if !matches!(
        device.state,
        DeviceState::Onboarding | DeviceState::Active | DeviceState::Restricted
    ) {
        return Err(Refusal::DeviceNotEnrollable(device.state).into());
    }
    let mut next = device.clone();
    next.identifiers.cert_fingerprint = Some(cert.fingerprint);
    if next.state == DeviceState::Onboarding {
        next.state = DeviceState::Active;
    }
    next.updated_at = change.at;
    next.revision = device.revision + 1;
    let mut events = vec![EventDraft {
        device_id: Some(device.id),
        actor: change.actor.clone(),
        action: Action::CertificateIssued,
        before: None,
        after: Some(cert.summary()),
        reason: change.reason.clone(),
    }];
    let action = if next.state == device.state {
        Action::DeviceUpdated
    } else {
        Action::DeviceTransitioned
    };
    events.push(EventDraft::device(
        action,
        change.actor.clone(),
        Some(device),
        &next,
        change.reason.clone(),
    )?);
    Ok(IssuancePlan {
        token: used,
        device: next,
        events,
    })
}

/// What a revocation or release changes.
pub struct StatusPlan {
    /// The certificate as it will be stored.
    pub cert: CertificateRecord,
    /// The device as it will be stored, when it changes.
    pub device: Option<Device>,
    /// The events, in order.
    pub events: Vec<EventDraft>,
}

/// Plans revoking `cert` for `reason`; `None` when it changes nothing (revoked already with the same reason).
/// A device whose current certificate is revoked is suspended: it no longer holds a valid identity.
pub fn plan_revocation(
    cert: &CertificateRecord,
    device: &Device,
    reason: RevocationReason,
    change: &Change,
) -> Result<Option<StatusPlan>, StoreError> {
    match cert.status {
        CertStatus::Revoked { reason: r, .. } if r == reason => return Ok(None),
        // A hold may become a permanent revocation; a permanent one never changes again.
        CertStatus::Revoked {
            reason: RevocationReason::CertificateHold,
            ..
        } => {}
        CertStatus::Revoked { .. } => return Err(Refusal::AlreadyRevoked(cert.serial).into()),
        CertStatus::Good => {}
    }
    let next_cert = CertificateRecord {
        status: CertStatus::Revoked {
            reason,
            at: change.at,
        },
        ..cert.clone()
    };
    let suspend = matches!(device.state, DeviceState::Active | DeviceState::Restricted)
        .then_some(DeviceState::Suspended);
    plan_status(
        cert,
        next_cert,
        device,
        Action::CertificateRevoked,
        suspend,
        change,
    )
    .map(Some)
}

/// The status change of `cert` to `next_cert`, logged as `action`; if `cert` is the device's current
/// certificate and `device_to` is given, the device moves there too (and that is logged as well).
fn plan_status(
    cert: &CertificateRecord,
    next_cert: CertificateRecord,
    device: &Device,
    action: Action,
    device_to: Option<DeviceState>,
    change: &Change,
) -> Result<StatusPlan, StoreError> {
    let mut events = vec![EventDraft {
        device_id: Some(device.id),
        actor: change.actor.clone(),
        action,
        before: Some(cert.summary()),
        after: Some(next_cert.summary()),
        reason: change.reason.clone(),
    }];
    let current = device.identifiers.cert_fingerprint == Some(cert.fingerprint);
    let next_device = match device_to {
        Some(to) if current => {
            let next = device.transitioned(to, change.at)?;
            events.push(EventDraft::device(
                Action::DeviceTransitioned,
                change.actor.clone(),
                Some(device),
                &next,
                change.reason.clone(),
            )?);
            Some(next)
        }
        _ => None,
    };
    Ok(StatusPlan {
        cert: next_cert,
        device: next_device,
        events,
    })
}

/// Plans releasing a certificate from hold; a device suspended because of it becomes active again.
pub fn plan_release(
    cert: &CertificateRecord,
    device: &Device,
    change: &Change,
) -> Result<StatusPlan, StoreError> {
    if !matches!(
        cert.status,
        CertStatus::Revoked {
            reason: RevocationReason::CertificateHold,
            ..
        }
    ) {
        return Err(Refusal::NotOnHold(cert.serial).into());
    }
    let next_cert = CertificateRecord {
        status: CertStatus::Good,
        ..cert.clone()
    };
    let reactivate = (device.state == DeviceState::Suspended).then_some(DeviceState::Active);
    plan_status(
        cert,
        next_cert,
        device,
        Action::CertificateReleased,
        reactivate,
        change,
    )
}

/// The event for issuing an enrollment token (never the secret or its hash).
pub fn plan_enrollment_token_created(t: &EnrollmentTokenRecord, change: &Change) -> EventDraft {
    EventDraft {
        device_id: Some(t.device_id),
        actor: change.actor.clone(),
        action: Action::EnrollmentTokenCreated,
        before: None,
        after: Some(crate::plan::after(&EnrollmentTokenLogged {
            v: PAYLOAD_VERSION,
            id: t.id,
            device_id: t.device_id,
            expires_at: t.expires_at,
        })),
        reason: change.reason.clone(),
    }
}
