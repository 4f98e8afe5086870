//! Posture ingest: a device's (or its operator's tooling's) report of what it runs and how it is configured,
//! checked once here, then logged (`posture.reported`), a changed firmware version written to the record
//! through the store's normal edit path, and the report queued for the trust service. The API's two posture
//! routes (operator token, device certificate) parse the body into a [`PostureClaim`], call [`record`] and
//! render what comes back.

use vouch_events::{Action, EventDraft};
use vouch_store::{Change, DeviceEdit, Store, StoreError};
use vouch_types::{
    Actor, DeviceId, DevicePatch, DeviceState, FirmwareVersion, Observation, PostureReport, Reason,
    Timestamp, ValidationError,
};

/// The most open ports one report may list.
pub const MAX_OPEN_PORTS: usize = 1024;

/// A report as its sender wrote it, before any check: every field optional, values as sent (ports signed
/// and wide so that 0, negatives and 70000 reach the check and its clear message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostureClaim {
    /// The device the report names, if it names one (it must be the one it was sent for).
    pub device: Option<DeviceId>,
    /// The firmware version it runs.
    pub firmware: Option<String>,
    /// SHA-256 of its configuration, in hex.
    pub config_hash: Option<String>,
    /// The ports it listens on.
    pub open_ports: Option<Vec<i64>>,
    /// Whether its attestation (secure boot measurement, TPM quote) was verified.
    pub attestation_verified: Option<bool>,
}

/// Why a report was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum PostureRefused {
    /// The report names another device than the one it was sent for.
    #[error("the report names device {named} but was sent for device {device}")]
    WrongDevice {
        /// The device in the report.
        named: DeviceId,
        /// The device it was sent for.
        device: DeviceId,
    },
    /// The report says nothing.
    #[error(
        "a posture report needs at least one of firmware, config_hash, open_ports, attestation"
    )]
    Empty,
    /// The firmware version is not a valid one.
    #[error("firmware: {0}")]
    Firmware(ValidationError),
    /// The configuration hash is not 64 characters long.
    #[error("config_hash must be exactly 64 hex digits (a SHA-256), not {0} characters")]
    ConfigHashLength(usize),
    /// The configuration hash holds something other than hex digits.
    #[error(
        "config_hash must be exactly 64 hex digits (a SHA-256): it contains non-hex characters"
    )]
    ConfigHashNotHex,
    /// More ports than [`MAX_OPEN_PORTS`].
    #[error("open_ports lists {0} ports; at most {MAX_OPEN_PORTS} are accepted")]
    TooManyPorts(usize),
    /// A value that is not a port number.
    #[error("open_ports: {0} is not a port number (1 to 65535)")]
    NotAPort(i64),
    /// A port listed twice.
    #[error("open_ports lists port {0} more than once")]
    DuplicatePort(u16),
    /// The device holds no Vouch identity, so it has no posture to report.
    #[error(
        "device {device} is {}: only enrolled devices (active, restricted, suspended) report posture",
        state.as_str()
    )]
    NotEnrolled {
        /// The device.
        device: DeviceId,
        /// Its state.
        state: DeviceState,
    },
}

/// Why [`record`] did not record a report.
#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    /// The report was refused.
    #[error(transparent)]
    Refused(#[from] PostureRefused),
    /// The store refused or failed (an unknown device is [`StoreError::NotFound`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A recorded report.
#[derive(Debug)]
pub struct Recorded {
    /// The report as stored.
    pub report: PostureReport,
    /// Why the report could not be queued for the trust service, if it could not: the report is logged
    /// and the record updated already, so this costs the trust service one report, not the request (a
    /// retry would log the report twice). The caller says so in its log.
    pub not_queued: Option<StoreError>,
}

impl PostureClaim {
    /// The report this claim makes for `device`, received `at`; the first problem otherwise.
    pub fn check(self, device: DeviceId, at: Timestamp) -> Result<PostureReport, PostureRefused> {
        if let Some(named) = self.device
            && named != device
        {
            return Err(PostureRefused::WrongDevice { named, device });
        }
        if self.firmware.is_none()
            && self.config_hash.is_none()
            && self.open_ports.is_none()
            && self.attestation_verified.is_none()
        {
            return Err(PostureRefused::Empty);
        }
        let firmware = self
            .firmware
            .map(FirmwareVersion::try_from)
            .transpose()
            .map_err(PostureRefused::Firmware)?;
        let config_hash = self.config_hash.map(config_hash).transpose()?;
        let open_ports = self.open_ports.map(open_ports).transpose()?;
        Ok(PostureReport {
            device,
            at,
            firmware,
            config_hash,
            open_ports: open_ports.unwrap_or_default(),
            attestation_ok: self.attestation_verified,
        })
    }
}

/// A SHA-256 in hex, normalised to lower case (so equal configurations compare equal).
fn config_hash(text: String) -> Result<String, PostureRefused> {
    let chars = text.chars().count();
    if chars != 64 {
        return Err(PostureRefused::ConfigHashLength(chars));
    }
    if !text.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(PostureRefused::ConfigHashNotHex);
    }
    Ok(text.to_ascii_lowercase())
}

/// Port numbers, each 1–65535, at most [`MAX_OPEN_PORTS`], no duplicates; ascending.
fn open_ports(ports: Vec<i64>) -> Result<Vec<u16>, PostureRefused> {
    if ports.len() > MAX_OPEN_PORTS {
        return Err(PostureRefused::TooManyPorts(ports.len()));
    }
    let mut out = Vec::with_capacity(ports.len());
    for p in ports {
        match u16::try_from(p) {
            Ok(port) if port != 0 => out.push(port),
            _ => return Err(PostureRefused::NotAPort(p)),
        }
    }
    out.sort_unstable();
    if let Some(w) = out.windows(2).find(|w| w[0] == w[1]) {
        return Err(PostureRefused::DuplicatePort(w[0]));
    }
    Ok(out)
}

/// Checks and records `claim` for `device` by `actor` at `now`. Nothing is written unless every check
/// passed; then the report is logged, a changed firmware version is put on the record, and the report is
/// queued (see [`Recorded::not_queued`]).
pub async fn record(
    store: &dyn Store,
    device: DeviceId,
    actor: Actor,
    claim: PostureClaim,
    now: Timestamp,
) -> Result<Recorded, PostureError> {
    let report = claim.check(device, now)?;
    let current = store.get_device(device).await?;
    if !current.state.is_managed() {
        return Err(PostureRefused::NotEnrolled {
            device,
            state: current.state,
        }
        .into());
    }
    let after = serde_json::to_string(&report).map_err(|e| StoreError::Backend(e.to_string()))?;
    store
        .append_event(
            EventDraft {
                device_id: Some(device),
                actor: actor.clone(),
                action: Action::PostureReported,
                before: None,
                after: Some(after),
                reason: None,
            },
            now,
        )
        .await?;
    // The report is the device's own word on what it runs: the registry (and the policies that read it)
    // follow it, through the same edit path an operator's PATCH takes, so the change is logged as usual.
    if let Some(fw) = &report.firmware
        && current.firmware.as_ref() != Some(fw)
    {
        let patch = DevicePatch {
            firmware: Some(Some(fw.clone())),
            ..DevicePatch::default()
        };
        let reason = Reason::try_from("posture report".to_owned()).map_err(StoreError::Invalid)?;
        store
            .edit_device(
                device,
                DeviceEdit::Patch(Box::new(patch)),
                None,
                Change {
                    actor,
                    reason: Some(reason),
                    at: now,
                },
            )
            .await?;
    }
    let not_queued = store
        .append_observations(vec![Observation::Posture(report.clone())], now)
        .await
        .err();
    Ok(Recorded { report, not_queued })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ports_are_sorted_and_checked() {
        assert_eq!(open_ports(vec![1883, 22, 443]).unwrap(), [22, 443, 1883]);
        for bad in [vec![0], vec![70000], vec![-1], vec![22, 80, 22]] {
            assert!(open_ports(bad).is_err());
        }
        assert!(open_ports((1..=1025).collect()).is_err());
        assert_eq!(open_ports((1..=1024).collect()).unwrap().len(), 1024);
    }

    #[test]
    fn hashes_are_normalised() {
        let h = "AB".repeat(32);
        assert_eq!(config_hash(h).unwrap(), "ab".repeat(32));
        assert!(config_hash("a".repeat(65)).is_err());
        assert!(config_hash("g".repeat(64)).is_err());
        assert!(config_hash("é".repeat(32)).is_err());
    }

    #[test]
    fn a_claim_names_its_device_and_says_something() {
        let d = DeviceId::derived("p");
        let at = Timestamp::from_unix_micros(1);
        let empty = PostureClaim::default().check(d, at).unwrap_err();
        assert!(matches!(empty, PostureRefused::Empty));
        let other = PostureClaim {
            device: Some(DeviceId::derived("q")),
            attestation_verified: Some(true),
            ..PostureClaim::default()
        };
        assert!(matches!(
            other.check(d, at).unwrap_err(),
            PostureRefused::WrongDevice { .. }
        ));
        let ok = PostureClaim {
            open_ports: Some(vec![443, 22]),
            attestation_verified: Some(false),
            ..PostureClaim::default()
        }
        .check(d, at)
        .unwrap();
        assert_eq!(
            (ok.open_ports, ok.attestation_ok),
            (vec![22, 443], Some(false))
        );
    }
}
