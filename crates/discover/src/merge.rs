//! Matching discovered devices to the registry, and what to write for each (no I/O: the caller applies the
//! plan to its store).
//!
//! A discovered device is the registry device with the same hardware address; failing that, the same serial
//! number; failing that, the same certificate; failing that, one whose recorded addresses include one of its
//! IP addresses (addresses are kept over time, so a device that moved is still found while its old address
//! is on record). A match updates what discovery observes (addresses, firmware, …) and the first/last-seen
//! labels; a device with no match is created in the `discovered` state, unmanaged until it is onboarded.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use vouch_types::{
    CertFingerprint, Device, DeviceClass, DeviceId, DevicePatch, DeviceState, FirmwareVersion,
    HardwareSerial, Identifiers, LabelKey, LabelValue, Labels, MacAddr, Model, NewDevice,
    Timestamp, Vendor,
};

use vouch_types::MAX_IPS;

use crate::report::{DeviceReport, Report};

/// Labels discovery keeps on the devices it sees.
pub mod labels {
    /// When discovery first saw the device (RFC 3339).
    pub const FIRST_SEEN: &str = "discovery/first-seen";
    /// When discovery last saw it.
    pub const LAST_SEEN: &str = "discovery/last-seen";
    /// The host name it announced.
    pub const HOSTNAME: &str = "discovery/hostname";
    /// Its role as classified ("Modbus server").
    pub const ROLE: &str = "discovery/role";
}

/// How a discovered device was matched to a registry device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MatchedBy {
    /// Hardware address.
    Mac,
    /// Manufacturer's serial number.
    Serial,
    /// Certificate fingerprint.
    Certificate,
    /// An IP address the device had (now or before).
    Ip,
}

/// What to write for one discovered device.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Not in the registry: create it, unmanaged.
    Create(Box<NewDevice>),
    /// In the registry: record what changed (empty `changes` still refreshes last-seen).
    Update {
        /// The registry device.
        id: DeviceId,
        /// How it was matched.
        by: MatchedBy,
        /// The edit.
        patch: Box<DevicePatch>,
        /// What changed, in words ("firmware 2.1 → 2.2").
        changes: Vec<String>,
    },
}

/// The registry's view of one discovered device, as the report shows it after a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryLink {
    /// The registry device.
    pub device_id: DeviceId,
    /// Its lifecycle state.
    pub state: DeviceState,
    /// Whether it holds a Vouch identity.
    pub managed: bool,
    /// How it was matched (absent when discovery created it just now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_by: Option<MatchedBy>,
    /// What changed since the registry last heard of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}

/// Indexes over the registry devices discovery can match.
#[derive(Debug, Default)]
pub struct RegistryIndex<'a> {
    by_mac: BTreeMap<MacAddr, &'a Device>,
    by_serial: BTreeMap<&'a str, &'a Device>,
    by_cert: BTreeMap<CertFingerprint, &'a Device>,
    by_ip: BTreeMap<IpAddr, &'a Device>,
}

impl<'a> RegistryIndex<'a> {
    /// Indexes `devices` (retired devices are left out: a retired id is never reused).
    pub fn new(devices: &'a [Device]) -> Self {
        let mut ix = RegistryIndex::default();
        for d in devices.iter().filter(|d| d.state != DeviceState::Retired) {
            let i = &d.identifiers;
            if let Some(m) = i.mac {
                ix.by_mac.insert(m, d);
            }
            if let Some(s) = &i.serial {
                ix.by_serial.insert(s.as_str(), d);
            }
            if let Some(c) = i.cert_fingerprint {
                ix.by_cert.insert(c, d);
            }
            for ip in &i.ips {
                ix.by_ip.insert(*ip, d);
            }
        }
        ix
    }

    /// The registry device a discovered one is, and how it was recognised.
    pub fn find(&self, d: &DeviceReport) -> Option<(&'a Device, MatchedBy)> {
        if let Some(x) = d.mac.and_then(|m| self.by_mac.get(&m)) {
            return Some((x, MatchedBy::Mac));
        }
        if let Some(x) = d.serial.as_deref().and_then(|s| self.by_serial.get(s)) {
            return Some((x, MatchedBy::Serial));
        }
        if let Some(x) = d.cert_fingerprints().find_map(|c| self.by_cert.get(&c)) {
            return Some((x, MatchedBy::Certificate));
        }
        d.ips
            .iter()
            .find_map(|ip| self.by_ip.get(ip))
            .map(|x| (*x, MatchedBy::Ip))
    }
}

impl DeviceReport {
    /// Fingerprints of certificates the device presented (TLS server certificates).
    pub fn cert_fingerprints(&self) -> impl Iterator<Item = CertFingerprint> + '_ {
        self.identity
            .iter()
            .filter(|e| e.field == crate::inventory::Field::CertFingerprint)
            .filter_map(|e| e.value.parse().ok())
    }
}

/// The plan for merging `report` into a registry holding `devices`, at time `now`: one step per discovered
/// device, keyed by its report key.
pub fn plan(report: &Report, devices: &[Device], now: Timestamp) -> Vec<(String, Step)> {
    let ix = RegistryIndex::new(devices);
    report
        .devices
        .iter()
        .map(|d| {
            let step = match ix.find(d) {
                Some((existing, by)) => update(existing, by, d, now),
                None => Step::Create(Box::new(create(d, now))),
            };
            (d.key.clone(), step)
        })
        .collect()
}

fn parsed<T: std::str::FromStr>(v: Option<&str>) -> Option<T> {
    v.and_then(|s| s.parse().ok())
}

fn label(map: &mut BTreeMap<LabelKey, LabelValue>, key: &str, value: Option<&str>) {
    if let (Ok(k), Some(Ok(v))) = (key.parse::<LabelKey>(), value.map(str::parse::<LabelValue>)) {
        map.insert(k, v);
    }
}

fn seen(d: &DeviceReport, now: Timestamp) -> (String, String) {
    let now = now.to_string();
    (
        d.first_seen.clone().unwrap_or_else(|| now.clone()),
        d.last_seen.clone().unwrap_or(now),
    )
}

fn create(d: &DeviceReport, now: Timestamp) -> NewDevice {
    // The id follows from the discovery key, so merging the same capture twice creates nothing new.
    let mut new = NewDevice::bare(DeviceId::derived(&format!("discovered:{}", d.key)));
    new.class = d.class;
    new.identifiers = Identifiers {
        mac: d.mac,
        ips: d.ips.iter().copied().take(MAX_IPS).collect(),
        serial: parsed::<HardwareSerial>(d.serial.as_deref()),
        cert_fingerprint: d.cert_fingerprints().next(),
    };
    new.vendor = parsed::<Vendor>(d.vendor.as_deref());
    new.model = parsed::<Model>(d.model.as_deref());
    new.firmware = parsed::<FirmwareVersion>(d.firmware.as_deref());
    let (first, last) = seen(d, now);
    let mut map = BTreeMap::new();
    label(&mut map, labels::FIRST_SEEN, Some(&first));
    label(&mut map, labels::LAST_SEEN, Some(&last));
    label(&mut map, labels::HOSTNAME, d.hostname.as_deref());
    label(&mut map, labels::ROLE, Some(&d.role));
    new.labels = Labels::new(map).unwrap_or_default();
    new
}

fn update(existing: &Device, by: MatchedBy, d: &DeviceReport, now: Timestamp) -> Step {
    let mut patch = DevicePatch::default();
    let mut changes = Vec::new();
    let ids = &existing.identifiers;
    // Addresses accumulate (newest last, the oldest dropped beyond the limit): matching by an address the
    // device had before is what "IP over time" means.
    let mut ips = ids.ips.clone();
    for ip in &d.ips {
        if !ips.contains(ip) {
            ips.push(*ip);
            changes.push(format!("new address {ip}"));
        }
    }
    if ips.len() > MAX_IPS {
        ips.drain(..ips.len() - MAX_IPS);
    }
    if ips != ids.ips {
        patch.ips = Some(ips);
    }
    if ids.mac.is_none() && d.mac.is_some() {
        patch.mac = Some(d.mac);
        changes.push(format!(
            "hardware address {}",
            d.mac.map(|m| m.to_string()).unwrap_or_default()
        ));
    } else if let (Some(was), Some(now_mac)) = (ids.mac, d.mac) {
        if was != now_mac && by != MatchedBy::Mac {
            changes.push(format!("hardware address {was} → {now_mac}"));
            patch.mac = Some(Some(now_mac));
        }
    }
    if ids.serial.is_none() {
        if let Some(s) = parsed::<HardwareSerial>(d.serial.as_deref()) {
            changes.push(format!("serial {s}"));
            patch.serial = Some(Some(s));
        }
    }
    if let Some(fw) = parsed::<FirmwareVersion>(d.firmware.as_deref()) {
        if existing.firmware.as_ref() != Some(&fw) {
            changes.push(format!(
                "firmware {} → {fw}",
                existing
                    .firmware
                    .as_ref()
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "-".into())
            ));
            patch.firmware = Some(Some(fw));
        }
    }
    if existing.model.is_none() {
        if let Some(m) = parsed::<Model>(d.model.as_deref()) {
            changes.push(format!("model {m}"));
            patch.model = Some(Some(m));
        }
    }
    if existing.vendor.is_none() {
        if let Some(v) = parsed::<Vendor>(d.vendor.as_deref()) {
            changes.push(format!("vendor {v}"));
            patch.vendor = Some(Some(v));
        }
    }
    if existing.class == DeviceClass::Unknown && d.class != DeviceClass::Unknown {
        changes.push(format!("class {}", d.class.as_str()));
        patch.class = Some(d.class);
    }
    let mut map: BTreeMap<LabelKey, LabelValue> = existing.labels.clone().into();
    let (first, last) = seen(d, now);
    if let Ok(k) = labels::FIRST_SEEN.parse::<LabelKey>() {
        if !map.contains_key(&k) {
            label(&mut map, labels::FIRST_SEEN, Some(&first));
        }
    }
    label(&mut map, labels::LAST_SEEN, Some(&last));
    label(&mut map, labels::HOSTNAME, d.hostname.as_deref());
    label(&mut map, labels::ROLE, Some(&d.role));
    if let Ok(l) = Labels::new(map) {
        if l != existing.labels {
            patch.labels = Some(l);
        }
    }
    Step::Update {
        id: existing.id,
        by,
        patch: Box::new(patch),
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Discovery, Limits};

    fn report(name: &str) -> Report {
        let path = crate::testutil::pcap(name);
        let mut run = Discovery::new(Limits::default());
        run.read(name, std::fs::File::open(path).unwrap()).unwrap();
        run.finish(None)
    }

    fn registry_from(r: &Report, now: Timestamp) -> Vec<Device> {
        plan(r, &[], now)
            .into_iter()
            .map(|(_, step)| match step {
                Step::Create(new) => new.into_device(now).unwrap(),
                Step::Update { .. } => panic!("an empty registry matches nothing"),
            })
            .collect()
    }

    #[test]
    fn a_second_merge_matches_everything_and_creates_nothing() {
        let now = Timestamp::from_unix_micros(1_700_000_000_000_000);
        let r = report("iti_enip_test.pcap");
        let registry = registry_from(&r, now);
        assert_eq!(registry.len(), r.devices.len());
        assert!(registry.iter().all(|d| d.state == DeviceState::Discovered));
        let plc = registry
            .iter()
            .find(|d| {
                d.model
                    .as_ref()
                    .is_some_and(|m| m.to_string() == "1756-ENBT/A")
            })
            .unwrap();
        assert_eq!(plc.class, DeviceClass::Plc);
        assert!(plc.identifiers.serial.is_some() && plc.identifiers.mac.is_some());
        for (_, step) in plan(&r, &registry, now) {
            let Step::Update { by, changes, .. } = step else {
                panic!("created again")
            };
            assert_eq!(by, MatchedBy::Mac);
            assert!(changes.is_empty(), "{changes:?}");
        }
        // Ids follow from what was discovered: the same capture gives the same ids.
        assert_eq!(
            registry_from(&r, now)
                .iter()
                .map(|d| d.id)
                .collect::<Vec<_>>(),
            registry.iter().map(|d| d.id).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_server_is_recognised_by_its_certificate() {
        let now = Timestamp::from_unix_micros(1_700_000_000_000_000);
        let r = report("z_tls_chrome.pcap");
        let server = r
            .devices
            .iter()
            .find(|d| d.cert_fingerprints().next().is_some())
            .unwrap();
        let mut registry = registry_from(&r, now);
        // The registry knows the server only by the certificate it holds.
        for d in &mut registry {
            d.identifiers.mac = None;
            d.identifiers.ips.clear();
        }
        let steps = plan(&r, &registry, now);
        let (_, step) = steps.iter().find(|(k, _)| *k == server.key).unwrap();
        assert!(
            matches!(
                step,
                Step::Update {
                    by: MatchedBy::Certificate,
                    ..
                }
            ),
            "{step:?}"
        );
    }

    #[test]
    fn matched_by_an_old_address_and_firmware_changes_are_reported() {
        let now = Timestamp::from_unix_micros(1_700_000_000_000_000);
        let r = report("iti_enip_test.pcap");
        let mut registry = registry_from(&r, now);
        let plc = registry.iter_mut().find(|d| d.model.is_some()).unwrap();
        let ip = r.devices.iter().find(|d| d.model.is_some()).unwrap().ips[0];
        // The registry knows the PLC only by an address it had, and an older firmware.
        plc.identifiers.mac = None;
        plc.identifiers.serial = None;
        plc.identifiers.ips = vec!["10.9.9.9".parse().unwrap(), ip];
        plc.firmware = Some("4.01".parse().unwrap());
        let id = plc.id;
        let steps = plan(&r, &registry, now);
        let (by, changes, patch) = steps
            .iter()
            .find_map(|(_, s)| match s {
                Step::Update {
                    id: i,
                    by,
                    changes,
                    patch,
                } if *i == id => Some((*by, changes, patch)),
                _ => None,
            })
            .unwrap();
        assert_eq!(by, MatchedBy::Ip);
        assert!(
            changes.iter().any(|c| c == "firmware 4.01 → 4.03"),
            "{changes:?}"
        );
        assert_eq!(patch.ips, None, "both addresses kept: nothing new");
        assert!(patch.mac.is_some() && patch.serial.is_some());
    }
}
