//! The fleet the acceptance and report tests share: devices that meet every rule under the shared
//! baselines, the shipped SBOMs, and the evaluation time.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vouch_compliance::*;
use vouch_types::{CertFingerprint, DeviceClass, DeviceId, Timestamp};

pub const HOUR: i64 = 3_600_000_000;
pub const DAY: i64 = 24 * HOUR;

pub fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub fn now() -> Timestamp {
    "2026-03-05T12:00:00Z".parse().unwrap()
}

pub fn digest<T: std::str::FromStr>(byte: u8) -> T
where
    T::Err: std::fmt::Debug,
{
    format!("{byte:02x}").repeat(32).parse().unwrap()
}

pub const CAMERA: (&str, &str, &str) = ("Northwind Optics", "VC-200", "4.2.1");
pub const PLC5000: (&str, &str, &str) = ("Acme Controls", "ProLogix PLC 5000", "V3.1");
pub const PLC3000: (&str, &str, &str) = ("Acme Controls", "ProLogix PLC 3000", "2.3");

/// A device that meets every rule under [`baselines`].
pub fn device(n: u8, (vendor, model, fw): (&str, &str, &str)) -> DeviceEvidence {
    let class = if model.starts_with("VC") {
        DeviceClass::Camera
    } else {
        DeviceClass::Plc
    };
    let mut d = DeviceEvidence::new(DeviceId::derived(&format!("dev-{n}")), class);
    d.vendor = Some(vendor.parse().unwrap());
    d.model = Some(model.parse().unwrap());
    d.firmware = Some(fw.parse().unwrap());
    d.certificates = vec![Certificate {
        fingerprint: digest::<CertFingerprint>(n),
        key: Some(digest(n.wrapping_add(100))),
        algorithm: KeyAlgorithm::Ec,
        key_bits: 256,
        not_after: now().plus_micros(365 * DAY),
        revoked: false,
        connected: true,
    }];
    d.config_hash = Some(digest(0xc0));
    d.open_ports = vec![Port::tcp(443)];
    d.attestation = Attestation::Verified;
    d.logging_enabled = true;
    d.last_log = Some(now().plus_micros(-60_000_000));
    d.last_heartbeat = Some(now().plus_micros(-30_000_000));
    d.last_scored = Some(now().plus_micros(-120_000_000));
    d.update = Some(UpdateFacts {
        signed: true,
        authenticated_channel: true,
        rollback_protection: true,
        automatic: true,
    });
    d.secure_erase = Some(true);
    d.client_id = Some(format!("client-{n}"));
    d
}

pub fn baselines() -> Baselines {
    let mut b = Baselines::default();
    for (_, model, _) in [CAMERA, PLC5000, PLC3000] {
        let m: vouch_types::Model = model.parse().unwrap();
        b.golden_config.insert(m.clone(), digest(0xc0));
        b.min_firmware.insert(m.clone(), "1.0".parse().unwrap());
        b.support_end
            .insert(m.clone(), "2031-01-01T00:00:00Z".parse().unwrap());
        b.allowed_images.insert(m, [digest(0x1a)].into());
    }
    for class in [DeviceClass::Camera, DeviceClass::Plc] {
        b.allowed_ports
            .insert(class, [Port::tcp(443), Port::tcp(502)].into());
    }
    b
}

/// The SBOMs: the camera's CycloneDX for 4.2.1, the gateway SPDX for every PLC release the tests use.
pub fn db() -> VulnDb {
    let mut db = VulnDb::new();
    db.import_cyclonedx_sbom(
        &data("camera-fw-4.2.1.cdx.json"),
        &[FirmwareKey::release("VC-200", "4.2.1")],
    )
    .unwrap();
    let plcs: Vec<FirmwareKey> = [
        ("ProLogix PLC 5000", "V3.1"),
        ("ProLogix PLC 5000", "V3.3"),
        ("ProLogix PLC 3000", "2.3"),
        ("ProLogix PLC 3000", "2.4"),
        ("ProLogix PLC 3000", "1.8"),
    ]
    .iter()
    .map(|(m, v)| FirmwareKey::release(m, v))
    .collect();
    db.import_spdx_sbom(&data("gateway-fw-2.0.0.spdx.json"), &plcs)
        .unwrap();
    db
}

pub fn evaluate_all(cat: &Catalogue, db: &VulnDb, devices: &[DeviceEvidence]) -> Vec<DeviceResult> {
    let fleet = FleetFacts::from_devices(devices);
    let b = baselines();
    devices
        .iter()
        .map(|d| evaluate(cat, &b, db, &fleet, d, now()))
        .collect()
}
