//! Continuous compliance's use cases over the store: importing the documents the evaluator reads (SBOMs,
//! advisories, the KEV catalogue, VEX), gathering each device's evidence from the registry, its certificates
//! and what it and discovery reported, and evaluating it against the catalogue (`vouch-compliance`, pure).
//! `vouch compliance import|status|report` calls these; the API and the continuous evaluator will too.
//!
//! Where the evidence comes from: the record (class, vendor, model, firmware), its certificates (key family,
//! size and digest read from the DER), its latest posture report (configuration hash, open ports,
//! attestation; the report is also its heartbeat), its latest `trust.changed` (the last time the trust
//! engine scored it), and discovery's sightings still in the observation queue (clear-text credentials).
//! What no source says yet is absent, and the rule that needs it says so (logging, secure update, erasure).

use std::collections::BTreeMap;

use vouch_compliance::report::Assessed;
use vouch_compliance::{
    Attestation, Baselines, Catalogue, Certificate, ClearTextCredential, ConfigHash,
    DeviceEvidence, DeviceResult, FirmwareKey, FleetFacts, KeyAlgorithm, KeyDigest, Port, VulnDb,
    VulnError,
};
use vouch_events::Action;
use vouch_store::{Change, Store, StoreError};
use vouch_types::{
    Device, DeviceId, DocumentKey, DocumentKind, NetworkRisk, Observation, PostureReport, Timestamp,
};

use crate::ControlError;

/// Device events read per page while looking for the latest posture report and score.
const EVENT_PAGE: u32 = 1000;
/// Observations read per page while looking for discovery's sightings.
const OBSERVATION_PAGE: u32 = 10_000;

/// Why a document was refused at import (nothing written).
#[derive(Debug, thiserror::Error)]
pub enum DocumentRefused {
    /// It does not read as the kind it was given as.
    #[error("not a readable {kind} document: {source}")]
    Unreadable {
        /// The kind it was imported as.
        kind: DocumentKind,
        /// What the parser said.
        #[source]
        source: VulnError,
    },
    /// An SBOM's name must say which firmware it describes.
    #[error(
        "an SBOM is kept under the firmware it describes: `MODEL@VERSION` or `sha256:<64 hex digits>` (the \
         image), not `{0}`"
    )]
    NotAFirmware(DocumentKey),
}

/// The firmware an SBOM's name describes: `MODEL@VERSION` (the model normalised as the evaluator matches
/// it) or the image's `sha256:…`.
pub fn firmware_of(key: &DocumentKey) -> Result<FirmwareKey, DocumentRefused> {
    let text = key.as_str();
    if text.starts_with("sha256:") {
        return text
            .parse()
            .map(FirmwareKey::Image)
            .map_err(|_| DocumentRefused::NotAFirmware(key.clone()));
    }
    match text.rsplit_once('@') {
        Some((model, version)) if !model.trim().is_empty() && !version.trim().is_empty() => {
            Ok(FirmwareKey::release(model, version))
        }
        _ => Err(DocumentRefused::NotAFirmware(key.clone())),
    }
}

/// Reads one document into `db` with the parser of its kind.
fn read_into(
    db: &mut VulnDb,
    kind: DocumentKind,
    key: &DocumentKey,
    body: &[u8],
) -> Result<(), DocumentRefused> {
    let unreadable = |source| DocumentRefused::Unreadable { kind, source };
    match kind {
        DocumentKind::CycloneDxSbom => {
            let fw = firmware_of(key)?;
            db.import_cyclonedx_sbom(body, &[fw]).map_err(unreadable)?;
        }
        DocumentKind::SpdxSbom => {
            let fw = firmware_of(key)?;
            db.import_spdx_sbom(body, &[fw]).map_err(unreadable)?;
        }
        DocumentKind::Osv => {
            db.import_osv(body).map_err(unreadable)?;
        }
        DocumentKind::Csaf => {
            db.import_csaf(body).map_err(unreadable)?;
        }
        DocumentKind::Kev => {
            db.import_kev(body).map_err(unreadable)?;
        }
        DocumentKind::CycloneDxVex => {
            db.import_cyclonedx_vex(body).map_err(unreadable)?;
        }
        DocumentKind::OpenVex => {
            db.import_openvex(body).map_err(unreadable)?;
        }
    }
    Ok(())
}

/// Checks `body` reads as `kind` (an SBOM's `key` naming its firmware), then keeps it under `key`, replacing
/// what was kept under that name. `false`: the same bytes were kept already (nothing written).
pub async fn import(
    store: &dyn Store,
    kind: DocumentKind,
    key: DocumentKey,
    body: Vec<u8>,
    change: Change,
) -> Result<bool, ControlError> {
    read_into(&mut VulnDb::new(), kind, &key, &body)?;
    Ok(store.put_document(kind, key, body, change).await?.is_some())
}

/// Every kept document read into one database, SBOMs first; a document that no longer reads (a stricter
/// parser than the one that accepted it) is left out and named in the second half, never fails the whole.
pub async fn vulnerability_db(store: &dyn Store) -> Result<(VulnDb, Vec<String>), StoreError> {
    let mut db = VulnDb::new();
    let mut problems = Vec::new();
    for doc in store.documents(None).await? {
        if let Err(e) = read_into(&mut db, doc.kind, &doc.key, &doc.body) {
            problems.push(format!("{} {}: {e}", doc.kind, doc.key));
        }
    }
    Ok((db, problems))
}

/// The credentials discovery saw each device send in clear text, from the sightings still queued.
async fn cleartext_credentials(
    store: &dyn Store,
) -> Result<BTreeMap<DeviceId, Vec<ClearTextCredential>>, StoreError> {
    let mut out: BTreeMap<DeviceId, Vec<ClearTextCredential>> = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store.observations(after, OBSERVATION_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(out);
        };
        after = Some(last.seq);
        for queued in &page {
            // A row this build cannot read is the trust service's to report; it is no evidence here.
            let Ok(Observation::Network(s)) = queued.observation() else {
                continue;
            };
            for r in s.risks.iter() {
                if let NetworkRisk::CleartextCredential { protocol, user } = r {
                    let c = ClearTextCredential {
                        protocol: protocol.to_string(),
                        user: user.as_ref().map(ToString::to_string),
                    };
                    let seen = out.entry(s.device).or_default();
                    if !seen.contains(&c) {
                        seen.push(c);
                    }
                }
            }
        }
    }
}

/// A certificate as the rules read it: its key described from the DER (an unreadable one is `Other`, 0 bits).
fn certificate(c: &vouch_store::CertificateRecord) -> Certificate {
    let key = vouch_pki::certificate_key(&c.der).ok();
    Certificate {
        fingerprint: c.fingerprint,
        key: key.map(|k| KeyDigest::from_bytes(k.spki_sha256)),
        algorithm: key.map_or(KeyAlgorithm::Other, |k| k.kind),
        key_bits: key.map_or(0, |k| k.bits),
        not_after: c.not_after,
        revoked: matches!(c.status, vouch_store::CertStatus::Revoked { .. }),
        // Sessions live in the gateways, not the store: not known here.
        connected: false,
    }
}

/// What one device's own events say: its latest posture report and when the trust engine last scored it.
async fn reported(
    store: &dyn Store,
    id: DeviceId,
) -> Result<(Option<(PostureReport, Timestamp)>, Option<Timestamp>), StoreError> {
    let (mut posture, mut scored) = (None, None);
    let mut after = None;
    loop {
        let page = store.device_events(id, after, EVENT_PAGE).await?;
        let Some(last) = page.last() else {
            return Ok((posture, scored));
        };
        after = Some(last.seq);
        for e in &page {
            match e.draft.action {
                Action::PostureReported => {
                    if let Ok(p) = e.payload::<PostureReport>() {
                        posture = Some((p, e.at));
                    }
                }
                Action::TrustChanged => scored = Some(e.at),
                _ => {}
            }
        }
    }
}

/// Everything the rules read about `device`.
async fn evidence_of(
    store: &dyn Store,
    device: &Device,
    credentials: &mut BTreeMap<DeviceId, Vec<ClearTextCredential>>,
) -> Result<DeviceEvidence, StoreError> {
    let mut e = DeviceEvidence::new(device.id, device.class);
    e.vendor = device.vendor.clone();
    e.model = device.model.clone();
    e.firmware = device.firmware.clone();
    e.certificates = store
        .device_certificates(device.id)
        .await?
        .iter()
        .map(certificate)
        .collect();
    let (posture, scored) = reported(store, device.id).await?;
    if let Some((p, at)) = posture {
        e.config_hash = p
            .config_hash
            .as_deref()
            .and_then(|h| h.parse::<ConfigHash>().ok());
        // Posture reports name port numbers; the gateway's devices report their TCP listeners.
        e.open_ports = p.open_ports.iter().map(|&n| Port::tcp(n)).collect();
        e.attestation = match p.attestation_ok {
            Some(true) => Attestation::Verified,
            Some(false) => Attestation::Failed,
            None => Attestation::None,
        };
        e.last_heartbeat = Some(at);
    }
    e.last_scored = scored;
    e.credentials = credentials.remove(&device.id).unwrap_or_default();
    // The gateway admits a device only under its own id as client id.
    e.client_id = Some(device.id.to_string());
    Ok(e)
}

/// The fleet's evidence, in registry order.
pub async fn evidence(store: &dyn Store) -> Result<Vec<(Device, DeviceEvidence)>, StoreError> {
    let mut credentials = cleartext_credentials(store).await?;
    let mut out = Vec::new();
    for d in crate::discovery::all_devices(store).await? {
        let e = evidence_of(store, &d, &mut credentials).await?;
        out.push((d, e));
    }
    Ok(out)
}

/// A fleet's evaluation: each device with its result, and the documents that could not be read.
pub struct Assessment {
    /// Each device, its evidence and its result, in registry order.
    pub devices: Vec<(Device, DeviceEvidence, DeviceResult)>,
    /// Kept documents left out because they no longer read.
    pub problems: Vec<String>,
}

impl Assessment {
    /// The devices as a report's scope lists them (named by their serial, else their id).
    pub fn assessed(&self) -> Vec<Assessed<'_>> {
        self.devices
            .iter()
            .map(|(d, _, r)| Assessed {
                result: r,
                name: d.identifiers.serial.as_ref().map_or("", |s| s.as_str()),
            })
            .collect()
    }
}

/// Evaluates every device against `catalogue` with the operator's `baselines`, now.
pub async fn assess(
    store: &dyn Store,
    catalogue: &Catalogue,
    baselines: &Baselines,
    now: Timestamp,
) -> Result<Assessment, StoreError> {
    let (db, problems) = vulnerability_db(store).await?;
    let gathered = evidence(store).await?;
    let fleet = FleetFacts::from_devices(gathered.iter().map(|(_, e)| e));
    let devices = gathered
        .into_iter()
        .map(|(d, e)| {
            let r = vouch_compliance::evaluate(catalogue, baselines, &db, &fleet, &e, now);
            (d, e, r)
        })
        .collect();
    Ok(Assessment { devices, problems })
}
