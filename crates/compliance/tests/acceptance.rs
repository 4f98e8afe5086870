//! The issue's acceptance shapes at the pure level: each fault fails exactly the controls the catalogue
//! maps its rule to; SBOM + OSV + KEV make a finding that VEX suppresses; a CSAF range makes a finding that
//! an upgrade clears; an import names exactly the devices it concerns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use vouch_compliance::vuln::{Suppression, VexSource};
use vouch_compliance::*;

mod common;
use common::*;

type Ids = BTreeSet<(Framework, String)>;

fn failed(cat: &Catalogue, r: &DeviceResult) -> Ids {
    r.failed(cat)
        .into_iter()
        .map(|c| (c.framework, c.id.clone()))
        .collect()
}

/// The controls the catalogue maps any of `rules` to.
fn mapped(cat: &Catalogue, rules: &[RuleId]) -> Ids {
    cat.controls()
        .iter()
        .filter(|c| c.rules.iter().any(|r| rules.contains(r)))
        .map(|c| (c.framework, c.id.clone()))
        .collect()
}

#[test]
fn devices_that_meet_every_rule_fail_nothing() {
    let cat = Catalogue::shipped().unwrap();
    let devices = [device(1, CAMERA), device(2, PLC5000), device(3, PLC3000)];
    for r in evaluate_all(&cat, &db(), &devices) {
        assert_eq!(failed(&cat, &r), Ids::new());
        assert!(r.findings(&cat).is_empty());
        assert!(!r.controls.contains(&ControlState::NotApplicable));
    }
}

#[test]
fn each_fault_fails_exactly_the_controls_its_rule_maps_to() {
    type Fault = fn(&mut DeviceEvidence, &DeviceEvidence);
    let cases: Vec<(&str, Fault, Vec<RuleId>)> = vec![
        (
            "shared certificate",
            |d, other| d.certificates = other.certificates.clone(),
            vec![RuleId::UniqueIdentity],
        ),
        (
            "shared key",
            |d, other| d.certificates[0].key = other.certificates[0].key,
            vec![RuleId::UniqueIdentity],
        ),
        (
            "expiring certificate",
            |d, _| d.certificates[0].not_after = now().plus_micros(10 * DAY),
            vec![RuleId::ValidCertificate, RuleId::CertificateExpiring],
        ),
        (
            "default credential",
            |d, _| {
                d.credentials = vec![ClearTextCredential {
                    protocol: "telnet".into(),
                    user: Some("Admin".into()),
                }]
            },
            vec![RuleId::NoDefaultCredentials],
        ),
        (
            "open ports beyond the allow-list",
            |d, _| d.open_ports.extend([Port::tcp(23), Port::udp(69)]),
            vec![RuleId::AttackSurface],
        ),
        (
            "config drift",
            |d, _| d.config_hash = Some(digest(0xdd)),
            vec![RuleId::ConfigDrift],
        ),
        (
            "revoked, still connected",
            |d, _| d.certificates[0].revoked = true,
            vec![
                RuleId::ValidCertificate,
                RuleId::RevokedCertificateConnected,
            ],
        ),
        (
            "weak key",
            |d, _| {
                d.certificates[0].algorithm = KeyAlgorithm::Rsa;
                d.certificates[0].key_bits = 1024;
            },
            vec![RuleId::CryptoStrength],
        ),
        (
            "firmware below the minimum, no SBOM for it",
            |d, _| d.firmware = Some("0.9".parse().unwrap()),
            vec![RuleId::FirmwareCurrent, RuleId::SbomPresent],
        ),
        (
            "attestation failed",
            |d, _| d.attestation = Attestation::Failed,
            vec![RuleId::FirmwareIntegrity],
        ),
        (
            "image not on the allow-list",
            |d, _| {
                d.attestation = Attestation::None;
                d.image_digest = Some(digest(0x2b));
            },
            vec![RuleId::FirmwareIntegrity],
        ),
        (
            "out of support",
            |d, _| d.model = Some("VC-100".parse().unwrap()),
            // Another model: no support period, no SBOM; the rules without a reference value for it
            // (golden config, minimum firmware, image allow-list) do not apply, attestation still passes.
            vec![RuleId::SupportPeriod, RuleId::SbomPresent],
        ),
        (
            "logging disabled",
            |d, _| d.logging_enabled = false,
            vec![RuleId::Logging],
        ),
        (
            "behaviour not scored",
            |d, _| d.last_scored = None,
            vec![RuleId::BehaviourMonitored],
        ),
        (
            "unsigned updates",
            |d, _| d.update = Some(UpdateFacts::default()),
            vec![RuleId::SecureUpdate],
        ),
        (
            "no secure erase",
            |d, _| d.secure_erase = None,
            vec![RuleId::DataErasure],
        ),
        (
            "conflicting client id",
            |d, other| d.client_id = other.client_id.clone(),
            vec![RuleId::ConflictingClientIds],
        ),
        (
            "overly permissive policy",
            |d, _| d.permissive_grants = vec!["publish #".into()],
            vec![RuleId::OverlyPermissivePolicy],
        ),
    ];
    let cat = Catalogue::shipped().unwrap();
    let db = db();
    let mut covered = BTreeSet::new();
    for (what, fault, rules) in cases {
        let other = device(2, CAMERA);
        let mut d = device(1, CAMERA);
        fault(&mut d, &other);
        let results = evaluate_all(&cat, &db, &[d, other]);
        let want = mapped(&cat, &rules);
        assert!(!want.is_empty(), "{what}");
        assert_eq!(failed(&cat, &results[0]), want, "{what}");
        let findings = results[0].findings(&cat);
        let found: BTreeSet<RuleId> = findings.iter().map(|f| f.rule).collect();
        assert_eq!(found, rules.iter().copied().collect(), "{what}");
        for f in &findings {
            assert!(!f.evidence.is_empty() && !f.controls.is_empty(), "{what}");
        }
        covered.extend(rules);
    }
    // Every rule but the vulnerability ones (tested below) is exercised here.
    let rest: BTreeSet<RuleId> = RuleId::ALL
        .iter()
        .copied()
        .filter(|r| !covered.contains(r))
        .collect();
    assert_eq!(
        rest,
        [RuleId::NoKnownVulnerability, RuleId::NoKnownExploited].into()
    );
}

#[test]
fn sbom_osv_and_kev_make_a_cra_art14_finding_that_vex_suppresses() {
    let cat = Catalogue::shipped().unwrap();
    let mut db = db();
    db.import_osv(&data("osv-embedded.json")).unwrap();
    db.import_kev(&data("kev.json")).unwrap();
    let mut cam = device(1, CAMERA);
    let cve = VulnId::parse("CVE-2014-6271").unwrap();
    let seen = now().plus_micros(-2 * HOUR);
    cam.first_seen.insert(cve.clone(), seen);

    let matches = db.matches(&cam);
    let ids: BTreeSet<&str> = matches.iter().map(|m| m.advisory.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "VOUCH-TEST-2014-6271",
            "VOUCH-TEST-2021-36369",
            "VOUCH-TEST-2022-28391"
        ]
        .into()
    );
    // The SBOM's own analysis says dropbear is not affected.
    let dropbear = matches
        .iter()
        .find(|m| m.advisory.id.as_str() == "VOUCH-TEST-2021-36369")
        .unwrap();
    assert!(matches!(
        dropbear.suppressed,
        Some(Suppression::Vex(s)) if s.source == VexSource::CycloneDx
    ));

    let r = &evaluate_all(&cat, &db, std::slice::from_ref(&cam))[0];
    assert_eq!(
        failed(&cat, r),
        mapped(
            &cat,
            &[RuleId::NoKnownVulnerability, RuleId::NoKnownExploited]
        )
    );
    let findings = r.findings(&cat);
    let top = &findings[0];
    assert_eq!(
        (top.rule, top.severity),
        (RuleId::NoKnownExploited, Severity::Critical)
    );
    assert!(
        top.controls
            .iter()
            .any(|c| c.framework == Framework::Cra && c.id == "art-14")
    );
    let art14 = top.art14.unwrap();
    assert_eq!(art14.cve, cve);
    assert_eq!(art14.first_seen, seen);
    assert_eq!(art14.early_warning_due, seen.plus_micros(24 * HOUR));
    assert_eq!(art14.notification_due, seen.plus_micros(72 * HOUR));
    assert_eq!(top.evidence.len(), 1);
    let vulns = findings
        .iter()
        .find(|f| f.rule == RuleId::NoKnownVulnerability)
        .unwrap();
    assert_eq!(vulns.evidence.len(), 2, "bash and busybox, not dropbear");
    assert_eq!(vulns.severity, Severity::Critical, "a KEV entry among them");

    // VEX: OpenVEX for bash, a CycloneDX VEX document for busybox.
    let d1 = db.import_openvex(&data("openvex-bash.json")).unwrap();
    assert_eq!(d1.packages.len(), 1, "the CPE-named product is not read");
    db.import_cyclonedx_vex(&data("vex.cdx.json")).unwrap();
    let r = &evaluate_all(&cat, &db, std::slice::from_ref(&cam))[0];
    assert_eq!(failed(&cat, r), Ids::new());
    assert!(db.matches(&cam).iter().all(|m| m.suppressed.is_some()));
    // The statement names bash 4.3 only: a device whose SBOM has bash 4.2.45 is still affected.
    let plc = device(2, PLC5000);
    let r = &evaluate_all(&cat, &db, std::slice::from_ref(&plc))[0];
    assert_eq!(
        failed(&cat, r),
        mapped(
            &cat,
            &[RuleId::NoKnownVulnerability, RuleId::NoKnownExploited]
        )
    );
}

#[test]
fn a_csaf_range_makes_a_finding_that_an_upgrade_clears() {
    let cat = Catalogue::shipped().unwrap();
    let mut db = db();
    db.import_csaf(&data("icsa-26-051-01.csaf.json")).unwrap();
    let vuln_rules = mapped(&cat, &[RuleId::NoKnownVulnerability]);
    let exploited = mapped(
        &cat,
        &[RuleId::NoKnownVulnerability, RuleId::NoKnownExploited],
    );

    let mut plc = device(1, PLC5000);
    let r = &evaluate_all(&cat, &db, std::slice::from_ref(&plc))[0];
    assert_eq!(failed(&cat, r), vuln_rules);
    let f = &r.findings(&cat)[0];
    assert_eq!(f.severity, Severity::Critical, "CVSS 9.8");
    assert!(f.evidence[0].text.contains("CVE-2026-90001"));

    // Now known exploited: the KEV import raises it to the Art. 14 trigger.
    db.import_kev(&data("kev.json")).unwrap();
    let r = &evaluate_all(&cat, &db, std::slice::from_ref(&plc))[0];
    assert_eq!(failed(&cat, r), exploited);
    let art14 = r.findings(&cat)[0].art14.unwrap();
    assert!(art14.ransomware);
    assert_eq!(art14.first_seen, now(), "first seen now, absent a record");

    plc.firmware = Some("V3.3".parse().unwrap());
    let r = &evaluate_all(&cat, &db, std::slice::from_ref(&plc))[0];
    assert_eq!(failed(&cat, r), Ids::new(), "the upgrade clears it");

    // The PLC 3000: 2.x before 2.4 affected, 1.9 and prior known not affected (CSAF's VEX).
    let mut other = device(2, PLC3000);
    assert_eq!(
        failed(
            &cat,
            &evaluate_all(&cat, &db, std::slice::from_ref(&other))[0]
        ),
        exploited
    );
    other.firmware = Some("2.4".parse().unwrap());
    assert!(db.matches(&other).is_empty());
    other.firmware = Some("1.8".parse().unwrap());
    let m = db.matches(&other);
    assert!(matches!(m[..], [ref x] if x.suppressed == Some(Suppression::CsafNotAffected)));
    assert_eq!(
        failed(
            &cat,
            &evaluate_all(&cat, &db, std::slice::from_ref(&other))[0]
        ),
        Ids::new()
    );
}

#[test]
fn csaf_vex_names_components_by_purl() {
    let cat = Catalogue::shipped().unwrap();
    let mut db = db();
    db.import_osv(&data("osv-embedded.json")).unwrap();
    let delta = db.import_csaf(&data("vc200-vex.csaf.json")).unwrap();
    let keys: Vec<&str> = delta.packages.iter().map(|p| p.as_str()).collect();
    assert_eq!(keys, ["generic/busybox", "generic/openssl"]);
    let cam = device(1, CAMERA);
    let m = db.matches(&cam);
    let busybox = m
        .iter()
        .find(|m| m.advisory.id.as_str() == "VOUCH-TEST-2022-28391")
        .unwrap();
    assert!(matches!(
        busybox.suppressed,
        Some(Suppression::Vex(s)) if s.source == VexSource::Csaf
    ));
    let openssl = m
        .iter()
        .find(|m| m.advisory.id.as_str() == "CVE-2026-99998")
        .unwrap();
    assert!(openssl.suppressed.is_none() && openssl.kev.is_none());
    let r = &evaluate_all(&cat, &db, std::slice::from_ref(&cam))[0];
    let f = r
        .findings(&cat)
        .into_iter()
        .find(|f| f.rule == RuleId::NoKnownVulnerability)
        .unwrap();
    let texts: Vec<&str> = f.evidence.iter().map(|e| &*e.text).collect();
    assert_eq!(texts.len(), 2, "bash and openssl: {texts:?}");
    assert!(texts.iter().any(|t| t.starts_with("CVE-2026-99998")));
    // The PLCs' busybox 1.36.1 is past the OSV range, and the statement names 1.33.1 only.
    assert!(
        db.matches(&device(2, PLC5000))
            .iter()
            .all(|m| m.advisory.id.as_str() == "VOUCH-TEST-2014-6271")
    );
}

#[test]
fn an_import_names_exactly_the_devices_it_concerns() {
    let devices = vec![
        device(0, CAMERA),
        device(1, CAMERA),
        device(2, PLC5000),
        device(3, PLC3000),
        {
            let mut d = device(4, CAMERA);
            d.firmware = Some("4.0".parse().unwrap());
            d
        },
    ];
    let ix = FleetIndex::build(&devices);
    let mut db = db();
    let csaf = db.import_csaf(&data("icsa-26-051-01.csaf.json")).unwrap();
    assert_eq!(ix.affected(&db, &csaf), vec![2, 3]);
    let osv = db.import_osv(&data("osv-embedded.json")).unwrap();
    // Busybox and bash are in the camera 4.2.1 SBOM and the PLCs' SPDX; camera 4.0 has no SBOM.
    assert_eq!(ix.affected(&db, &osv), vec![0, 1, 2, 3]);
    let vex = db.import_openvex(&data("openvex-bash.json")).unwrap();
    assert_eq!(ix.affected(&db, &vex), vec![0, 1, 2, 3]);
    let kev = db.import_kev(&data("kev.json")).unwrap();
    assert_eq!(ix.affected(&db, &kev), vec![0, 1, 2, 3]);
    let sbom = db
        .import_cyclonedx_sbom(
            &data("camera-fw-4.2.1.cdx.json"),
            &[FirmwareKey::release("VC-200", "4.0")],
        )
        .unwrap();
    assert_eq!(ix.affected(&db, &sbom), vec![4]);
    // And re-evaluating only those gives what a full pass gives.
    let cat = Catalogue::shipped().unwrap();
    let full = evaluate_all(&cat, &db, &devices);
    assert_eq!(failed(&cat, &full[4]), failed(&cat, &full[0]));
}

#[test]
fn every_device_whose_result_an_import_changes_is_among_those_it_names() {
    let cat = Catalogue::shipped().unwrap();
    let mut devices = vec![
        device(0, CAMERA),
        device(1, PLC5000),
        device(2, PLC3000),
        device(3, CAMERA),
    ];
    devices[3].firmware = Some("4.0".parse().unwrap());
    let ix = FleetIndex::build(&devices);
    let mut db = VulnDb::new();
    type Step = fn(&mut VulnDb) -> ImportDelta;
    let steps: [(&str, Step); 8] = [
        ("camera SBOM", |db| {
            db.import_cyclonedx_sbom(
                &data("camera-fw-4.2.1.cdx.json"),
                &[FirmwareKey::release("VC-200", "4.2.1")],
            )
            .unwrap()
        }),
        ("KEV before its advisories", |db| {
            db.import_kev(&data("kev.json")).unwrap()
        }),
        ("OSV", |db| {
            db.import_osv(&data("osv-embedded.json")).unwrap()
        }),
        ("PLC SBOM", |db| {
            db.import_spdx_sbom(
                &data("gateway-fw-2.0.0.spdx.json"),
                &[FirmwareKey::release("ProLogix PLC 5000", "V3.1")],
            )
            .unwrap()
        }),
        ("CSAF", |db| {
            db.import_csaf(&data("icsa-26-051-01.csaf.json")).unwrap()
        }),
        ("CSAF VEX", |db| {
            db.import_csaf(&data("vc200-vex.csaf.json")).unwrap()
        }),
        ("OpenVEX", |db| {
            db.import_openvex(&data("openvex-bash.json")).unwrap()
        }),
        ("KEV again", |db| db.import_kev(&data("kev.json")).unwrap()),
    ];
    let mut before = evaluate_all(&cat, &db, &devices);
    let mut changed_any = 0;
    for (what, step) in steps {
        let delta = step(&mut db);
        let named = ix.affected(&db, &delta);
        let after = evaluate_all(&cat, &db, &devices);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            if b != a {
                changed_any += 1;
                assert!(
                    named.contains(&i),
                    "{what}: device {i} changed, not named in {named:?}"
                );
            }
        }
        before = after;
    }
    assert!(changed_any >= 6, "the steps change results ({changed_any})");
}

#[test]
fn an_image_digest_finds_its_sbom_before_the_release() {
    let mut db = VulnDb::new();
    let img: ImageDigest = digest(0x1a);
    db.import_cyclonedx_sbom(
        &data("camera-fw-4.2.1.cdx.json"),
        &[FirmwareKey::Image(img)],
    )
    .unwrap();
    db.import_osv(&data("osv-embedded.json")).unwrap();
    let mut cam = device(1, CAMERA);
    cam.firmware = Some("9.9".parse().unwrap());
    assert!(db.sbom_for(&cam).is_none());
    cam.image_digest = Some(img);
    assert!(db.sbom_for(&cam).is_some());
    assert_eq!(db.matches(&cam).len(), 3);
}

#[test]
fn hostile_documents_are_refused_with_a_reason() {
    let mut db = VulnDb::new();
    let big = vec![b' '; vuln::MAX_DOCUMENT_BYTES + 1];
    assert!(matches!(db.import_osv(&big), Err(VulnError::TooLarge(..))));
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(matches!(
        db.import_osv(deep.as_bytes()),
        Err(VulnError::Json(..))
    ));
    let nested = format!(
        r#"{{"bomFormat":"CycloneDX","components":[{}{}]}}"#,
        r#"{"name":"x","components":["#.repeat(40),
        "]}".repeat(40)
    );
    assert!(db.import_cyclonedx_sbom(nested.as_bytes(), &[]).is_err());
    type Import = fn(&mut VulnDb, &[u8]) -> Result<ImportDelta, VulnError>;
    let cases: [(&str, Import); 8] = [
        (r#"{"bomFormat":"SPDX"}"#, |db, b| {
            db.import_cyclonedx_sbom(b, &[])
        }),
        (r#"{"spdxVersion":"SPDX-3.0"}"#, |db, b| {
            db.import_spdx_sbom(b, &[])
        }),
        (r#"{"id":"has space"}"#, VulnDb::import_osv),
        (
            r#"{"vulnerabilities":[{"cveID":"CVE-1-1","dateAdded":"yesterday"}]}"#,
            VulnDb::import_kev,
        ),
        (
            r#"{"@context":"https://openvex.dev/ns/v0.2.0","statements":[{"vulnerability":"CVE-2020-1","status":"fine"}]}"#,
            VulnDb::import_openvex,
        ),
        (
            r#"{"@context":"https://example.com","statements":[]}"#,
            VulnDb::import_openvex,
        ),
        (
            r#"{"document":{"csaf_version":"2.0","tracking":{"id":"T-1"}},
                "product_tree":{"branches":[{"category":"vendor","name":"V","branches":[
                  {"category":"product_name","name":"P","branches":[
                    {"category":"product_version_range","name":"the newer ones",
                     "product":{"product_id":"P1","name":"P"}}]}]}]}}"#,
            VulnDb::import_csaf,
        ),
        (
            r#"{"document":{"csaf_version":"2.0","tracking":{"id":"T-1"}},
                "vulnerabilities":[{"cve":"CVE-2020-1","product_status":{"known_affected":["GHOST"]}}]}"#,
            VulnDb::import_csaf,
        ),
    ];
    for (doc, import) in cases {
        let e = import(&mut db, doc.as_bytes()).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
    let msg = VulnDb::new()
        .import_csaf(cases[6].0.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("P1") && msg.contains("the newer ones"),
        "{msg}"
    );
}
