//! Every parser on every prefix of every fixture, and on every fixture with every other byte replaced by a
//! few JSON-significant ones: never a panic, only `Ok` or a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vouch_compliance::vuln::ImportDelta;
use vouch_compliance::{Catalogue, FirmwareKey, VulnDb, VulnError};

type Import = fn(&mut VulnDb, &[u8]) -> Result<ImportDelta, VulnError>;

fn fixtures() -> Vec<(&'static str, Import)> {
    vec![
        ("camera-fw-4.2.1.cdx.json", |db, b| {
            db.import_cyclonedx_sbom(b, &[FirmwareKey::release("m", "1")])
        }),
        ("vex.cdx.json", VulnDb::import_cyclonedx_vex),
        ("gateway-fw-2.0.0.spdx.json", |db, b| {
            db.import_spdx_sbom(b, &[FirmwareKey::release("m", "1")])
        }),
        ("osv-embedded.json", VulnDb::import_osv),
        ("icsa-26-051-01.csaf.json", VulnDb::import_csaf),
        ("vc200-vex.csaf.json", VulnDb::import_csaf),
        ("kev.json", VulnDb::import_kev),
        ("openvex-bash.json", VulnDb::import_openvex),
    ]
}

#[test]
fn prefixes_and_byte_flips_never_panic() {
    for (name, import) in fixtures() {
        let bytes =
            std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        import(&mut VulnDb::new(), &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut refused = 0;
        for end in 0..bytes.len() {
            refused += usize::from(import(&mut VulnDb::new(), &bytes[..end]).is_err());
        }
        assert!(
            refused > bytes.len() / 2,
            "{name}: most prefixes are not JSON"
        );
        let mut flipped = bytes.clone();
        for i in (0..bytes.len()).step_by(2) {
            for b in [b'"', b'{', 0xff] {
                flipped[i] = b;
                let _ = import(&mut VulnDb::new(), &flipped);
            }
            flipped[i] = bytes[i];
        }
    }
}

#[test]
fn catalogue_prefixes_never_panic() {
    let text = vouch_compliance::catalogue::SHIPPED;
    for end in (0..text.len())
        .filter(|&e| text.is_char_boundary(e))
        .step_by(41)
    {
        let _ = Catalogue::shipped_with(&text[..end]);
    }
}
