//! Throughput of the evaluator: a synthetic fleet (1M devices by default, `bench N` for another size) ×
//! every check of the shipped catalogue on one core, then the incremental pass after one CSAF advisory
//! and after one OSV entry (only the devices the import concerns, found through `FleetIndex`).
//!
//! `cargo run --release -p vouch-compliance --example bench [-- DEVICES]`

use std::time::Instant;

use serde_json::json;
use vouch_compliance::*;
use vouch_types::{CertFingerprint, DeviceClass, DeviceId, Model, Timestamp};

const MODELS: usize = 50;
const VERSIONS: usize = 10;
const PACKAGES: usize = 300;
const COMPONENTS: usize = 30;

/// SplitMix64: a deterministic stream, so every run measures the same fleet.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn model(m: usize) -> String {
    format!("Model-{m:02}")
}

fn version(v: usize) -> String {
    format!("{}.{}.0", 1 + v / 4, v % 4)
}

fn digest32(seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut r = Rng(seed);
    for chunk in out.chunks_mut(8) {
        chunk.copy_from_slice(&r.next().to_le_bytes()[..chunk.len()]);
    }
    out
}

fn vulndb(rng: &mut Rng) -> Result<VulnDb, VulnError> {
    let mut db = VulnDb::new();
    for m in 0..MODELS {
        for v in 0..VERSIONS {
            let components: Vec<_> = (0..COMPONENTS)
                .map(|_| {
                    let p = rng.below(PACKAGES);
                    let ver = format!("{}.{}", rng.below(5), rng.below(10));
                    json!({"type": "library", "name": format!("pkg{p}"), "version": ver,
                           "purl": format!("pkg:generic/pkg{p}@{ver}")})
                })
                .collect();
            let bom =
                json!({"bomFormat": "CycloneDX", "specVersion": "1.6", "components": components});
            db.import_cyclonedx_sbom(
                bom.to_string().as_bytes(),
                &[FirmwareKey::release(&model(m), &version(v))],
            )?;
        }
    }
    let entries: Vec<_> = (0..2000)
        .map(|i| {
            let p = rng.below(PACKAGES);
            json!({"id": format!("OSV-{i}"), "aliases": [format!("CVE-2025-{:05}", i)],
                   "affected": [{"package": {"ecosystem": "Generic", "name": format!("pkg{p}"),
                                             "purl": format!("pkg:generic/pkg{p}")},
                                 "ranges": [{"type": "ECOSYSTEM", "events": [
                                     {"introduced": "0"}, {"fixed": format!("{}.0", 1 + rng.below(4))}]}]}]})
        })
        .collect();
    db.import_osv(json!(entries).to_string().as_bytes())?;
    let kev: Vec<_> = (0..200)
        .map(|i| json!({"cveID": format!("CVE-2025-{:05}", i * 10), "dateAdded": "2025-06-01"}))
        .collect();
    db.import_kev(json!({"vulnerabilities": kev}).to_string().as_bytes())?;
    Ok(db)
}

fn fleet(n: usize, now: Timestamp, rng: &mut Rng) -> Result<Vec<DeviceEvidence>, String> {
    let shared = CertFingerprint::from_bytes(digest32(1));
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let m = rng.below(MODELS);
        let class = if m % 2 == 0 {
            DeviceClass::Camera
        } else {
            DeviceClass::Plc
        };
        let mut d = DeviceEvidence::new(DeviceId::derived(&format!("bench-{i}")), class);
        d.vendor = Some("Bench Vendor".parse().map_err(|e| format!("{e}"))?);
        d.model = Some(model(m).parse().map_err(|e| format!("{e}"))?);
        d.firmware = Some(
            version(rng.below(VERSIONS))
                .parse()
                .map_err(|e| format!("{e}"))?,
        );
        let fp = if rng.below(1000) == 0 {
            shared
        } else {
            CertFingerprint::from_bytes(digest32(i as u64 + 10))
        };
        d.certificates = vec![Certificate {
            fingerprint: fp,
            key: Some(KeyDigest::from_bytes(digest32(!(i as u64)))),
            algorithm: if rng.below(50) == 0 {
                KeyAlgorithm::Rsa
            } else {
                KeyAlgorithm::Ec
            },
            key_bits: 256,
            not_after: now.plus_micros((rng.below(400) as i64) * 86_400_000_000),
            revoked: rng.below(500) == 0,
            connected: true,
        }];
        d.config_hash = Some(ConfigHash::from_bytes(digest32(
            (m + usize::from(rng.below(20) == 0)) as u64,
        )));
        d.open_ports = vec![Port::tcp(443)];
        if rng.below(30) == 0 {
            d.open_ports.push(Port::tcp(23));
        }
        d.attestation = Attestation::Verified;
        if rng.below(40) == 0 {
            d.credentials.push(ClearTextCredential {
                protocol: "telnet".into(),
                user: Some("admin".into()),
            });
        }
        d.logging_enabled = rng.below(25) != 0;
        d.last_log = Some(now.plus_micros(-60_000_000));
        d.last_heartbeat = Some(now.plus_micros(-30_000_000));
        d.last_scored = Some(now.plus_micros(-120_000_000));
        d.update = Some(UpdateFacts {
            signed: true,
            authenticated_channel: true,
            rollback_protection: true,
            automatic: true,
        });
        d.secure_erase = Some(true);
        d.client_id = Some(format!("c{i}"));
        out.push(d);
    }
    Ok(out)
}

fn baselines() -> Result<Baselines, String> {
    let mut b = Baselines::default();
    for m in 0..MODELS {
        let name: Model = model(m).parse().map_err(|e| format!("{e}"))?;
        b.golden_config
            .insert(name.clone(), ConfigHash::from_bytes(digest32(m as u64)));
        b.min_firmware
            .insert(name.clone(), "1.2".parse().map_err(|e| format!("{e}"))?);
        b.support_end.insert(
            name,
            "2030-01-01T00:00:00Z".parse().map_err(|e| format!("{e}"))?,
        );
    }
    for c in [DeviceClass::Camera, DeviceClass::Plc] {
        b.allowed_ports.insert(c, [Port::tcp(443)].into());
    }
    Ok(b)
}

fn run(
    label: &str,
    cat: &Catalogue,
    b: &Baselines,
    db: &VulnDb,
    fleet: &FleetFacts,
    devices: &[&DeviceEvidence],
    now: Timestamp,
) -> usize {
    let start = Instant::now();
    let mut failed = 0usize;
    for d in devices {
        let r = evaluate(cat, b, db, fleet, d, now);
        failed += r
            .checks
            .iter()
            .filter(|o| matches!(o, Outcome::Fail(_)))
            .count();
    }
    let secs = start.elapsed().as_secs_f64();
    let rules = devices.len() * cat.checks().len();
    println!(
        "{label}: {} devices x {} checks = {rules} device-rules in {secs:.3} s: {:.0} device-rules/s ({failed} failed)",
        devices.len(),
        cat.checks().len(),
        rules as f64 / secs.max(1e-9),
    );
    failed
}

fn main() -> Result<(), String> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|e| format!("devices: {e}"))?,
        None => 1_000_000,
    };
    let now: Timestamp = "2026-03-05T12:00:00Z".parse().map_err(|e| format!("{e}"))?;
    let mut rng = Rng(42);
    let t = Instant::now();
    let mut db = vulndb(&mut rng).map_err(|e| e.to_string())?;
    let devices = fleet(n, now, &mut rng)?;
    let b = baselines()?;
    let cat = Catalogue::shipped().map_err(|e| e.to_string())?;
    let facts = FleetFacts::from_devices(&devices);
    let index = FleetIndex::build(&devices);
    println!(
        "setup: {n} devices, {} SBOMs x {COMPONENTS} components, 2000 OSV entries, 200 KEV, {} controls in {:.1} s",
        MODELS * VERSIONS,
        cat.controls().len(),
        t.elapsed().as_secs_f64()
    );
    let sample = devices.len().min(10_000);
    let (found, kev) = devices[..sample].iter().fold((0, 0), |(f, k), d| {
        let m = db.matches(d);
        (
            f + m.len(),
            k + m.iter().filter(|m| m.kev.is_some()).count(),
        )
    });
    println!(
        "per device (first {sample}): {:.1} vulnerabilities matched, {:.1} of them known exploited",
        found as f64 / sample.max(1) as f64,
        kev as f64 / sample.max(1) as f64
    );
    let all: Vec<&DeviceEvidence> = devices.iter().collect();
    run("full pass", &cat, &b, &db, &facts, &all, now);

    let csaf = json!({
        "document": {"csaf_version": "2.0", "title": "bench", "tracking": {"id": "BENCH-CSAF-1"}},
        "product_tree": {"branches": [{"category": "vendor", "name": "Bench Vendor", "branches": [
            {"category": "product_name", "name": model(7), "branches": [
                {"category": "product_version_range", "name": "vers:generic/<2.1",
                 "product": {"product_id": "P1", "name": "p"}}]}]}]},
        "vulnerabilities": [{"cve": "CVE-2026-00001", "product_status": {"known_affected": ["P1"]}}]
    });
    let world = World {
        cat: &cat,
        baselines: &b,
        facts: &facts,
        index: &index,
        devices: &devices,
        now,
    };
    incremental(&world, &mut db, "one CSAF advisory", |db| {
        db.import_csaf(csaf.to_string().as_bytes())
    })?;
    let osv = json!({"id": "OSV-BENCH", "aliases": ["CVE-2026-00002"], "affected": [
        {"package": {"ecosystem": "Generic", "name": "pkg5", "purl": "pkg:generic/pkg5"},
         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}]}]});
    incremental(&world, &mut db, "one OSV entry", |db| {
        db.import_osv(osv.to_string().as_bytes())
    })?;
    Ok(())
}

/// What every pass reads but the vulnerability data.
struct World<'a> {
    cat: &'a Catalogue,
    baselines: &'a Baselines,
    facts: &'a FleetFacts,
    index: &'a FleetIndex,
    devices: &'a [DeviceEvidence],
    now: Timestamp,
}

/// Imports one document, finds the devices it concerns and re-evaluates only those.
fn incremental(
    w: &World<'_>,
    db: &mut VulnDb,
    what: &str,
    import: impl FnOnce(&mut VulnDb) -> Result<ImportDelta, VulnError>,
) -> Result<(), String> {
    let t = Instant::now();
    let delta = import(db).map_err(|e| e.to_string())?;
    let hit = w.index.affected(db, &delta);
    println!(
        "{what}: import + affected lookup: {} devices in {:.3} ms",
        hit.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let some: Vec<&DeviceEvidence> = hit.iter().filter_map(|&i| w.devices.get(i)).collect();
    run(
        &format!("incremental after {what}"),
        w.cat,
        w.baselines,
        db,
        w.facts,
        &some,
        w.now,
    );
    Ok(())
}
