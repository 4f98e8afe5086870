//! Device certificates an existing PKI already issued, imported into the registry: the CLI's
//! `vouch cert import` and the API's `POST /api/v1/devices/{id}/certificates/import` call [`import`], so
//! both refuse the same certificates, and neither writes an issuance by itself.

use vouch_pki::PkiError;
use vouch_store::{CertStatus, CertificateRecord, Change, Issuance, Store};
use vouch_types::{DeviceId, Timestamp};

use crate::ControlError;

/// The largest certificate file accepted for import (a PEM certificate is a few kilobytes).
pub const MAX_IMPORT_BYTES: usize = 64 << 10;

/// Why a certificate was not imported (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ImportRefused {
    /// Not a PEM certificate Vouch can read.
    #[error("not a certificate: {0}")]
    Malformed(PkiError),
    /// Too large to be one certificate.
    #[error("the certificate is larger than {MAX_IMPORT_BYTES} bytes")]
    TooLarge,
    /// Not signed by a CA this server trusts for devices, or not valid now.
    #[error("{0}")]
    Untrusted(PkiError),
    /// A certificate with this serial number is already recorded.
    #[error("a certificate with serial {0} is already recorded")]
    DuplicateSerial(vouch_types::Serial),
    /// This very certificate (its fingerprint) is already recorded.
    #[error("this certificate (fingerprint {0}) is already recorded")]
    DuplicateFingerprint(vouch_types::CertFingerprint),
}

/// Imports the PEM certificate `pem` as `device`'s identity, once it is found signed by one of `issuers`
/// (DER: the CAs configured for imported certificates, and Vouch's own) and valid at `change.at`. Refused
/// with nothing written if it is malformed, untrusted, expired or not yet valid, already recorded (by serial
/// or fingerprint), or if the device is unknown or cannot hold an identity (retired, say). The device
/// becomes active as after an enrollment.
pub async fn import(
    store: &dyn Store,
    pem: &str,
    device: DeviceId,
    issuers: &[Vec<u8>],
    change: Change,
) -> Result<CertificateRecord, ControlError> {
    if pem.len() > MAX_IMPORT_BYTES {
        return Err(ImportRefused::TooLarge.into());
    }
    let (serial, not_before, not_after, fingerprint, der) =
        vouch_pki::read_certificate(pem).map_err(ImportRefused::Malformed)?;
    check_trusted(&der, issuers, change.at)?;
    // The device first: an unknown one is a 404, whatever the certificate.
    store.get_device(device).await?;
    if store.get_certificate(serial).await?.is_some() {
        return Err(ImportRefused::DuplicateSerial(serial).into());
    }
    if store
        .get_certificate_by_fingerprint(fingerprint)
        .await?
        .is_some()
    {
        return Err(ImportRefused::DuplicateFingerprint(fingerprint).into());
    }
    let record = CertificateRecord {
        serial,
        device_id: device,
        fingerprint,
        not_before,
        not_after,
        status: CertStatus::Good,
        der,
    };
    let issuance = Issuance {
        cert: record.clone(),
        token: None,
    };
    store.record_issuance(issuance, change).await?;
    Ok(record)
}

fn check_trusted(der: &[u8], issuers: &[Vec<u8>], now: Timestamp) -> Result<(), ImportRefused> {
    vouch_pki::verify_issued_by(der, issuers, now, "imported certificate")
        .map_err(ImportRefused::Untrusted)
}
