//! The device record: what Vouch knows about one device, and the only ways it changes.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{
    CertFingerprint, DeviceClass, DeviceId, DeviceState, FirmwareVersion, Groups, HardwareSerial,
    IllegalTransition, Labels, MacAddr, Model, Timestamp, ValidationError, Vendor, Zone,
};

/// The most IP addresses kept per device (a device seen on many addresses keeps its latest).
pub const MAX_IPS: usize = 16;

/// The identifiers by which a device is recognised on the network and in the PKI.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifiers {
    /// The hardware address of its primary interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The IP addresses it has been seen on or registered with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpAddr>,
    /// The manufacturer's serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<HardwareSerial>,
    /// The fingerprint of the certificate it currently holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_fingerprint: Option<CertFingerprint>,
}

impl Identifiers {
    /// Checks the bounds that serde cannot express.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.ips.len() > MAX_IPS {
            return Err(ValidationError::new(
                "ips",
                format!("at most {MAX_IPS} addresses per device"),
            ));
        }
        Ok(())
    }
}

/// One device as Vouch records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Its identity in Vouch.
    pub id: DeviceId,
    /// Where it is in its lifecycle; "managed" is derived from this.
    pub state: DeviceState,
    /// What kind of device it is.
    pub class: DeviceClass,
    /// How it is recognised.
    pub identifiers: Identifiers,
    /// Its manufacturer.
    pub vendor: Option<Vendor>,
    /// Its model.
    pub model: Option<Model>,
    /// The firmware version it runs.
    pub firmware: Option<FirmwareVersion>,
    /// The zone or location where it belongs.
    pub zone: Option<Zone>,
    /// Free-form labels.
    pub labels: Labels,
    /// The groups it belongs to.
    pub groups: Groups,
    /// When the record was created.
    pub created_at: Timestamp,
    /// When the record last changed.
    pub updated_at: Timestamp,
    /// Incremented on every change; lets a client update only the version it read (optimistic concurrency).
    pub revision: u64,
}

impl Device {
    /// Whether Vouch governs this device (it holds a Vouch identity); follows from the lifecycle state.
    pub fn is_managed(&self) -> bool {
        self.state.is_managed()
    }

    /// The record after moving to `to` at `at`, if the lifecycle allows it.
    pub fn transitioned(
        &self,
        to: DeviceState,
        at: Timestamp,
    ) -> Result<Device, IllegalTransition> {
        self.state.check_transition(to)?;
        Ok(Device {
            state: to,
            updated_at: at,
            revision: self.revision + 1,
            ..self.clone()
        })
    }

    /// The record after applying `patch` at `at`; `None` when the patch changes nothing.
    pub fn patched(
        &self,
        patch: &DevicePatch,
        at: Timestamp,
    ) -> Result<Option<Device>, ValidationError> {
        let mut next = self.clone();
        if let Some(c) = patch.class {
            next.class = c;
        }
        if let Some(m) = &patch.mac {
            next.identifiers.mac = *m;
        }
        if let Some(ips) = &patch.ips {
            next.identifiers.ips = ips.clone();
        }
        if let Some(s) = &patch.serial {
            next.identifiers.serial = s.clone();
        }
        if let Some(f) = &patch.cert_fingerprint {
            next.identifiers.cert_fingerprint = *f;
        }
        if let Some(v) = &patch.vendor {
            next.vendor = v.clone();
        }
        if let Some(m) = &patch.model {
            next.model = m.clone();
        }
        if let Some(f) = &patch.firmware {
            next.firmware = f.clone();
        }
        if let Some(z) = &patch.zone {
            next.zone = z.clone();
        }
        if let Some(l) = &patch.labels {
            next.labels = l.clone();
        }
        if let Some(g) = &patch.groups {
            next.groups = g.clone();
        }
        next.identifiers.validate()?;
        if next == *self {
            return Ok(None);
        }
        next.updated_at = at;
        next.revision = self.revision + 1;
        Ok(Some(next))
    }
}

/// A device to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDevice {
    /// Its id: minted, or derived from a natural key for idempotent imports.
    pub id: DeviceId,
    /// The state it starts in; must be initial (discovered or onboarding).
    pub state: DeviceState,
    /// What kind of device it is.
    pub class: DeviceClass,
    /// How it is recognised.
    pub identifiers: Identifiers,
    /// Its manufacturer.
    pub vendor: Option<Vendor>,
    /// Its model.
    pub model: Option<Model>,
    /// The firmware version it runs.
    pub firmware: Option<FirmwareVersion>,
    /// The zone or location where it belongs.
    pub zone: Option<Zone>,
    /// Free-form labels.
    pub labels: Labels,
    /// The groups it belongs to.
    pub groups: Groups,
}

impl NewDevice {
    /// A device with this id and nothing else known, starting as discovered.
    pub fn bare(id: DeviceId) -> Self {
        Self {
            id,
            state: DeviceState::Discovered,
            class: DeviceClass::Unknown,
            identifiers: Identifiers::default(),
            vendor: None,
            model: None,
            firmware: None,
            zone: None,
            labels: Labels::default(),
            groups: Groups::default(),
        }
    }

    /// The record as first stored at `at`, if the starting state and identifiers are valid.
    pub fn into_device(self, at: Timestamp) -> Result<Device, ValidationError> {
        if !self.state.is_initial() {
            return Err(ValidationError::new(
                "state",
                format!(
                    "a new device starts as discovered or onboarding, not {}",
                    self.state
                ),
            ));
        }
        self.identifiers.validate()?;
        Ok(Device {
            id: self.id,
            state: self.state,
            class: self.class,
            identifiers: self.identifiers,
            vendor: self.vendor,
            model: self.model,
            firmware: self.firmware,
            zone: self.zone,
            labels: self.labels,
            groups: self.groups,
            created_at: at,
            updated_at: at,
            revision: 1,
        })
    }
}

/// A partial update in the spirit of JSON Merge Patch (RFC 7386): an absent field is left alone, `null`
/// clears an optional field, a value replaces it. State is not patchable: it moves only through transitions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    /// New class.
    #[serde(default)]
    pub class: Option<DeviceClass>,
    /// New MAC, or `null` to clear.
    #[serde(default, deserialize_with = "some")]
    pub mac: Option<Option<MacAddr>>,
    /// New IP list (replaces the old one).
    #[serde(default)]
    pub ips: Option<Vec<IpAddr>>,
    /// New serial, or `null` to clear.
    #[serde(default, deserialize_with = "some")]
    pub serial: Option<Option<HardwareSerial>>,
    /// New certificate fingerprint, or `null` to clear.
    #[serde(default, deserialize_with = "some")]
    pub cert_fingerprint: Option<Option<CertFingerprint>>,
    /// New vendor, or `null` to clear.
    #[serde(default, deserialize_with = "some")]
    pub vendor: Option<Option<Vendor>>,
    /// New model, or `null` to clear.
    #[serde(default, deserialize_with = "some")]
    pub model: Option<Option<Model>>,
    /// New firmware version, or `null` to clear.
    #[serde(default, deserialize_with = "some")]
    pub firmware: Option<Option<FirmwareVersion>>,
    /// New zone, or `null` to clear.
    #[serde(default, deserialize_with = "some")]
    pub zone: Option<Option<Zone>>,
    /// New labels (replace the old ones).
    #[serde(default)]
    pub labels: Option<Labels>,
    /// New groups (replace the old ones).
    #[serde(default)]
    pub groups: Option<Groups>,
}

/// Tells a present `null` (clear) from an absent field (leave alone).
fn some<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device() -> Device {
        let mut n = NewDevice::bare(DeviceId::derived("serial:T1"));
        n.vendor = Some("Acme".parse().unwrap());
        n.into_device(Timestamp::from_unix_micros(1)).unwrap()
    }

    #[test]
    fn merge_patch_semantics() {
        let d = device();
        let p: DevicePatch =
            serde_json::from_str(r#"{"vendor": null, "zone": "plant-1"}"#).unwrap();
        let n = d
            .patched(&p, Timestamp::from_unix_micros(2))
            .unwrap()
            .unwrap();
        assert_eq!(n.vendor, None);
        assert_eq!(n.zone.as_ref().map(Zone::as_str), Some("plant-1"));
        assert_eq!(n.revision, 2);
        let empty: DevicePatch = serde_json::from_str("{}").unwrap();
        assert_eq!(
            d.patched(&empty, Timestamp::from_unix_micros(2)).unwrap(),
            None
        );
        assert!(serde_json::from_str::<DevicePatch>(r#"{"state": "active"}"#).is_err());
    }

    #[test]
    fn new_devices_start_in_an_initial_state() {
        let mut n = NewDevice::bare(DeviceId::new());
        n.state = DeviceState::Active;
        assert!(n.into_device(Timestamp::EPOCH).is_err());
    }

    #[test]
    fn transition_bumps_revision() {
        let d = device();
        let n = d
            .transitioned(DeviceState::Onboarding, Timestamp::from_unix_micros(5))
            .unwrap();
        assert_eq!(
            (n.state, n.revision, n.updated_at.unix_micros()),
            (DeviceState::Onboarding, 2, 5)
        );
        assert!(
            d.transitioned(DeviceState::Active, Timestamp::EPOCH)
                .is_err()
        );
    }
}
