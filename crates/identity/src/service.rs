//! The identity service: enrollment, issuance, revocation, CRL and OCSP.
//!
//! Why one long file: enrollment, issuance, revocation and the CRL/OCSP caches share the service's state (the
//! CA, the revocation generation, the caches); the rules themselves are in `vouch-pki` and `vouch-store`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use vouch_events::{Action, EnrollmentRefused, EventDraft, PAYLOAD_VERSION};
use vouch_pki::ocsp::{OcspStatus, error_response, parse_request};
use vouch_pki::{CheckedCsr, DeviceProfile, IssuedCert, IssuingCa, device_uri};
use vouch_store::{
    CertStatus, CertificateRecord, Change, EnrollmentTokenRecord, Issuance, Store, StoreError,
};
use vouch_types::{Actor, Clock, Device, DeviceId, Reason, RevocationReason, Serial, Timestamp};

use crate::IdentityError;
use crate::tokens::{EnrollmentSecret, parse_enrollment_secret, secret_matches};

const HOUR_US: i64 = 3_600_000_000;

/// How the identity service issues and publishes.
#[derive(Debug, Clone)]
pub struct PkiSettings {
    /// The device certificate profile.
    pub profile: DeviceProfile,
    /// How long an enrollment token stays valid.
    pub enrollment_token_ttl_hours: u32,
    /// How long a CRL is valid (it is regenerated sooner whenever revocations change).
    pub crl_validity_hours: u32,
    /// How long an OCSP answer is valid.
    pub ocsp_validity_minutes: u32,
}

struct CachedCrl {
    generation: u64,
    fresh_until: Timestamp,
    der: Arc<Vec<u8>>,
}

struct CachedOcsp {
    generation: u64,
    fresh_until: Timestamp,
    this_update: Timestamp,
    next_update: Timestamp,
    der: Arc<Vec<u8>>,
}

/// An OCSP answer with the times an HTTP cache needs (RFC 5019 §6.2).
#[derive(Debug, Clone)]
pub struct OcspAnswer {
    /// The DER `OCSPResponse`.
    pub der: Arc<Vec<u8>>,
    /// The response's thisUpdate and nextUpdate; `None` for an error response (`malformedRequest`,
    /// `internalError`) or one bound to the request's nonce, which a cache must not keep.
    pub validity: Option<(Timestamp, Timestamp)>,
}

impl OcspAnswer {
    fn error(status: u8) -> Self {
        Self {
            der: Arc::new(error_response(status)),
            validity: None,
        }
    }
}

/// How often the revocation generation is re-read from the store.
const GENERATION_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The most pre-signed OCSP answers kept (one per certificate asked about).
const OCSP_CACHE_MAX: usize = 100_000;

/// Issues and revokes device identities; see the crate documentation.
pub struct IdentityService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    ca: IssuingCa,
    /// The root certificate (DER), sent with the issuing CA in `/cacerts`.
    root_der: Vec<u8>,
    /// Manufacturer CAs (DER) whose device certificates (IDevIDs) may be exchanged for a Vouch certificate.
    manufacturers: Vec<Vec<u8>>,
    settings: PkiSettings,
    /// The store's revocation generation as last read, and when: polled at most every
    /// [`GENERATION_POLL`], so that a revocation made by any process reaches CRL and OCSP answers quickly
    /// without a store query per OCSP request. `None` forces a read.
    generation: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
    crl_number: AtomicU64,
    crl: tokio::sync::Mutex<Option<CachedCrl>>,
    ocsp: std::sync::Mutex<HashMap<Vec<u8>, CachedOcsp>>,
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl IdentityService {
    /// A service issuing with `ca` into `store`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        ca: IssuingCa,
        root_der: Vec<u8>,
        settings: PkiSettings,
    ) -> Self {
        // CRL numbers must grow across restarts too: start from the clock.
        let start = u64::try_from(clock.now().unix_micros() / 1_000_000).unwrap_or(1);
        Self {
            store,
            clock,
            ca,
            root_der,
            manufacturers: Vec::new(),
            settings,
            generation: std::sync::Mutex::new(None),
            crl_number: AtomicU64::new(start),
            crl: tokio::sync::Mutex::new(None),
            ocsp: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The issuing CA's certificate (DER), for `/cacerts` and chain building.
    pub fn ca_cert_der(&self) -> &[u8] {
        self.ca.cert_der()
    }

    /// The same service accepting IDevIDs signed by `manufacturers` (DER CA certificates) for bootstrap.
    pub fn with_manufacturer_cas(mut self, manufacturers: Vec<Vec<u8>>) -> Self {
        self.manufacturers = manufacturers;
        self
    }

    /// The manufacturer CAs trusted for IDevID bootstrap.
    pub fn manufacturer_cas(&self) -> &[Vec<u8>] {
        &self.manufacturers
    }

    /// EST bootstrap with a manufacturer certificate (IDevID, IEEE 802.1AR) presented over mutual TLS: the
    /// device record whose hardware serial the IDevID names, awaiting onboarding, gets a Vouch certificate
    /// (LDevID) for the key in `csr_der`.
    pub async fn enroll_with_idevid(
        &self,
        idevid: &[u8],
        csr_der: &[u8],
    ) -> Result<IssuedCert, IdentityError> {
        let actor = Actor::System("est".into());
        let outcome = async {
            let serial = vouch_pki::idevid_serial(idevid, &self.manufacturers, self.clock.now())
                .map_err(|e| (None, IdentityError::Unauthorized(e.to_string())))?;
            let hw: vouch_types::HardwareSerial = serial.parse().map_err(|e| {
                (
                    None,
                    IdentityError::Unauthorized(format!("the IDevID serial: {e}")),
                )
            })?;
            let query = vouch_store::DeviceQuery {
                serial: Some(hw),
                limit: 2,
                ..Default::default()
            };
            let found = self
                .store
                .list_devices(&query)
                .await
                .map_err(|e| (None, e.into()))?
                .devices;
            let [device] = found.as_slice() else {
                let why = if found.is_empty() {
                    "no device record has"
                } else {
                    "several device records have"
                };
                return Err((
                    None,
                    IdentityError::Unauthorized(format!("{why} the IDevID's serial {serial}")),
                ));
            };
            let device_id = Some(device.id);
            if device.state != vouch_types::DeviceState::Onboarding {
                let why = format!("the device is {}, not awaiting onboarding", device.state);
                return Err((device_id, IdentityError::Unauthorized(why)));
            }
            self.issue_checked(device, csr_der, None, &actor, None)
                .await
                .map_err(|e| (device_id, e))
        }
        .await;
        if let Err((device, e)) = &outcome {
            self.refused(*device, &actor, e).await;
        }
        outcome.map_err(|(_, e)| e)
    }

    /// The root certificate (DER).
    pub fn root_cert_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The chain and key this server's HTTPS endpoint (EST) on `listen` presents, fresh from the CA.
    pub fn server_identity(
        &self,
        dns_names: &[String],
        listen: std::net::SocketAddr,
    ) -> Result<vouch_tls::ServerIdentity, IdentityError> {
        Ok(vouch_tls::fresh_server_identity(
            &self.ca,
            dns_names,
            listen,
            self.clock.now(),
        )?)
    }

    /// EST re-enrollment: the device proves itself with its current certificate (`presented`, the leaf the TLS
    /// client authenticated with) and gets a new one for the key in `csr_der`. The presented certificate must
    /// be one Vouch issued, unrevoked and unexpired.
    pub async fn reenroll(
        &self,
        presented: &[u8],
        csr_der: &[u8],
    ) -> Result<IssuedCert, IdentityError> {
        use sha2::Digest as _;
        let actor = Actor::System("est".into());
        let outcome = async {
            let fp =
                vouch_types::CertFingerprint::from_bytes(sha2::Sha256::digest(presented).into());
            let unauthorized = |why: &str| (None, IdentityError::Unauthorized(why.to_owned()));
            let current = self
                .store
                .get_certificate_by_fingerprint(fp)
                .await
                .map_err(|e| (None, e.into()))?
                .ok_or_else(|| unauthorized("the client certificate was not issued by Vouch"))?;
            let device_id = Some(current.device_id);
            let now = self.clock.now();
            if !current.is_valid_at(now) {
                let why = match current.status {
                    CertStatus::Revoked { .. } => "the client certificate is revoked",
                    CertStatus::Good => "the client certificate is expired or not yet valid",
                };
                return Err((device_id, IdentityError::Unauthorized(why.into())));
            }
            let device = self
                .store
                .get_device(current.device_id)
                .await
                .map_err(|e| (device_id, e.into()))?;
            let issued = self
                .issue_checked(&device, csr_der, None, &actor, None)
                .await
                .map_err(|e| (device_id, e))?;
            self.supersede_orphans(device.id, current.serial, issued.serial, &actor)
                .await;
            Ok(issued)
        }
        .await;
        if let Err((device, e)) = &outcome {
            self.refused(*device, &actor, e).await;
        }
        outcome.map_err(|(_, e)| e)
    }

    /// After a re-enrollment from `presented` issued `issued`: revokes as superseded every other good
    /// certificate of the device. A device re-enrolling with `presented` shows it does not hold (or no
    /// longer uses) any certificate but that one, so the others are orphans — typically the answer of an
    /// earlier re-enrollment that the client never received, which would otherwise stay valid, unheld, until
    /// it expires. `presented` itself stays valid until the device re-enrolls with `issued`, in case this
    /// answer is lost too. A failure is logged, not returned: the new certificate is committed and must reach
    /// the client.
    async fn supersede_orphans(
        &self,
        device: DeviceId,
        presented: Serial,
        issued: Serial,
        actor: &Actor,
    ) {
        let certs = match self.store.device_certificates(device).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, %device, "could not list certificates to supersede");
                return;
            }
        };
        let now = self.clock.now();
        let orphans = certs.into_iter().filter(|c| {
            c.serial != presented
                && c.serial != issued
                && c.status == CertStatus::Good
                && c.is_valid_at(now)
        });
        for orphan in orphans {
            let why = Reason::try_from(format!(
                "superseded: device re-enrolled with certificate {presented}"
            ))
            .ok();
            let change = Change {
                actor: actor.clone(),
                reason: why,
                at: now,
            };
            match self
                .store
                .revoke_certificate(orphan.serial, RevocationReason::Superseded, change)
                .await
            {
                Ok(_) => {
                    tracing::info!(serial = %orphan.serial, %device, "orphan certificate superseded")
                }
                Err(e) => {
                    tracing::error!(error = %e, serial = %orphan.serial, "could not supersede a certificate")
                }
            }
        }
        self.invalidate();
    }

    /// Logs an enrollment refused before it reached the service (say, a body over the size limit).
    pub async fn log_refusal(&self, why: &str) {
        self.refused(
            None,
            &Actor::System("est".into()),
            &IdentityError::Unauthorized(why.to_owned()),
        )
        .await;
    }

    /// The settings in force.
    pub fn settings(&self) -> &PkiSettings {
        &self.settings
    }

    /// Issues a one-time enrollment token for `device`.
    pub async fn create_enrollment_token(
        &self,
        device: DeviceId,
        actor: Actor,
        reason: Option<Reason>,
    ) -> Result<(EnrollmentTokenRecord, EnrollmentSecret), IdentityError> {
        let ttl = self.settings.enrollment_token_ttl_hours;
        Ok(crate::issue_enrollment_token(
            &*self.store,
            self.clock.now(),
            device,
            ttl,
            actor,
            reason,
        )
        .await?)
    }

    /// Logs a refused enrollment (best effort: the refusal itself must not fail on a logging error).
    async fn refused(&self, device: Option<DeviceId>, actor: &Actor, why: &IdentityError) {
        let draft = EventDraft {
            device_id: device,
            actor: actor.clone(),
            action: Action::EnrollmentRefused,
            before: None,
            after: vouch_events::payload::to_after(&EnrollmentRefused {
                v: PAYLOAD_VERSION,
                why: why.to_string(),
            })
            .ok(),
            reason: None,
        };
        if let Err(e) = self.store.append_event(draft, self.clock.now()).await {
            tracing::error!(error = %e, "could not log a refused enrollment");
        }
    }

    /// Checks that what the request names is the device: a CN, if any, is its id or serial; URIs, if any,
    /// are its SPIFFE ID.
    fn check_names(&self, csr: &CheckedCsr, device: &Device) -> Result<(), IdentityError> {
        let uri = device_uri(&self.settings.profile.trust_domain, device.id);
        let wrong = |requested: &str| IdentityError::WrongDevice {
            requested: requested.to_owned(),
            device: device.id.to_string(),
        };
        if let Some(cn) = csr.common_name() {
            let is_id = cn.parse::<DeviceId>().ok() == Some(device.id);
            let is_serial = device
                .identifiers
                .serial
                .as_ref()
                .is_some_and(|s| s.as_str() == cn);
            if !is_id && !is_serial {
                return Err(wrong(cn));
            }
        }
        if let Some(other) = csr.uris().iter().find(|u| **u != uri) {
            return Err(wrong(other));
        }
        Ok(())
    }

    /// Checks `csr_der` (well-formed, strong key, valid signature, naming only `device`), signs it, and records
    /// it (consuming `token` if given); a refusal by the store (token used, device not enrollable) becomes
    /// `Unauthorized`. The certificate is returned only once the store committed it.
    async fn issue_checked(
        &self,
        device: &Device,
        csr_der: &[u8],
        token: Option<vouch_types::TokenId>,
        actor: &Actor,
        reason: Option<Reason>,
    ) -> Result<IssuedCert, IdentityError> {
        let csr = CheckedCsr::from_der(csr_der)?;
        self.check_names(&csr, device)?;
        let at = self.clock.now();
        let cert = self
            .ca
            .issue_device(&csr, device.id, &self.settings.profile, at)?;
        let record = CertificateRecord {
            serial: cert.serial,
            device_id: device.id,
            fingerprint: cert.fingerprint,
            not_before: cert.not_before,
            not_after: cert.not_after,
            status: CertStatus::Good,
            der: cert.der.clone(),
        };
        let change = Change {
            actor: actor.clone(),
            reason,
            at,
        };
        match self
            .store
            .record_issuance(
                Issuance {
                    cert: record,
                    token,
                },
                change,
            )
            .await
        {
            Ok(_) => Ok(cert),
            Err(StoreError::Refused(r)) => Err(IdentityError::Unauthorized(r.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// EST bootstrap: enrolls with a one-time token (its full text) and a DER PKCS#10 request. Every refusal
    /// is logged and issues nothing.
    pub async fn enroll_with_token(
        &self,
        token_text: &str,
        csr_der: &[u8],
    ) -> Result<IssuedCert, IdentityError> {
        let actor = Actor::System("est".into());
        let outcome = self
            .try_enroll_with_token(token_text, csr_der, &actor)
            .await;
        if let Err((device, e)) = &outcome {
            self.refused(*device, &actor, e).await;
        }
        outcome.map_err(|(_, e)| e)
    }

    async fn try_enroll_with_token(
        &self,
        token_text: &str,
        csr_der: &[u8],
        actor: &Actor,
    ) -> Result<IssuedCert, (Option<DeviceId>, IdentityError)> {
        let unauthorized = |why: &str| (None, IdentityError::Unauthorized(why.to_owned()));
        let (id, secret) = parse_enrollment_secret(token_text)
            .ok_or_else(|| unauthorized("malformed enrollment token"))?;
        let record = self
            .store
            .get_enrollment_token(id)
            .await
            .map_err(|e| (None, e.into()))?
            .ok_or_else(|| unauthorized("unknown enrollment token"))?;
        let device_id = Some(record.device_id);
        if !secret_matches(&record, secret) {
            return Err((
                device_id,
                IdentityError::Unauthorized("wrong enrollment token secret".into()),
            ));
        }
        let device = self
            .store
            .get_device(record.device_id)
            .await
            .map_err(|e| (device_id, e.into()))?;
        self.issue_checked(&device, csr_der, Some(id), actor, None)
            .await
            .map_err(|e| (device_id, e))
    }

    /// An operator issues a certificate for `device` from a DER request (no token: the operator vouches).
    pub async fn issue_for_device(
        &self,
        device: DeviceId,
        csr_der: &[u8],
        actor: Actor,
        reason: Option<Reason>,
    ) -> Result<IssuedCert, IdentityError> {
        let outcome = async {
            let d = self.store.get_device(device).await?;
            self.issue_checked(&d, csr_der, None, &actor, reason).await
        }
        .await;
        if let Err(e) = &outcome {
            self.refused(Some(device), &actor, e).await;
        }
        outcome
    }

    /// Revokes a certificate; the device is suspended if it was its current one. CRL and OCSP follow at once.
    pub async fn revoke(
        &self,
        serial: Serial,
        reason: RevocationReason,
        actor: Actor,
        why: Option<Reason>,
    ) -> Result<CertificateRecord, IdentityError> {
        let change = Change {
            actor,
            reason: why,
            at: self.clock.now(),
        };
        let out = self
            .store
            .revoke_certificate(serial, reason, change)
            .await?;
        self.invalidate();
        Ok(out)
    }

    /// Releases a certificate from hold; the device is reactivated if it was suspended by it.
    pub async fn release(
        &self,
        serial: Serial,
        actor: Actor,
        why: Option<Reason>,
    ) -> Result<CertificateRecord, IdentityError> {
        let change = Change {
            actor,
            reason: why,
            at: self.clock.now(),
        };
        let out = self.store.release_certificate(serial, change).await?;
        self.invalidate();
        Ok(out)
    }

    /// Forgets the generation read last, so that the next CRL or OCSP answer re-reads it.
    fn invalidate(&self) {
        if let Ok(mut g) = self.generation.lock() {
            *g = None;
        }
    }

    /// The store's revocation generation, re-read at most every [`GENERATION_POLL`].
    async fn generation(&self) -> Result<u64, IdentityError> {
        if let Ok(g) = self.generation.lock()
            && let Some((at, value)) = *g
            && at.elapsed() < GENERATION_POLL
        {
            return Ok(value);
        }
        let value = self.store.revocation_generation().await?;
        if let Ok(mut g) = self.generation.lock() {
            *g = Some((std::time::Instant::now(), value));
        }
        Ok(value)
    }

    /// The current CRL (DER): regenerated when revocations changed or it is past half its validity.
    pub async fn crl(&self) -> Result<Arc<Vec<u8>>, IdentityError> {
        let generation = self.generation().await?;
        let now = self.clock.now();
        let mut cached = self.crl.lock().await;
        if let Some(c) = cached.as_ref()
            && c.generation == generation
            && now < c.fresh_until
        {
            return Ok(c.der.clone());
        }
        let revoked = self.store.revoked_certificates().await?;
        let validity = i64::from(self.settings.crl_validity_hours.max(1)) * HOUR_US;
        let number = self.crl_number.fetch_add(1, Ordering::SeqCst);
        let der = Arc::new(
            self.ca
                .crl(&revoked, now, now.plus_micros(validity), number)?,
        );
        *cached = Some(CachedCrl {
            generation,
            fresh_until: now.plus_micros(validity / 2),
            der: der.clone(),
        });
        Ok(der)
    }

    /// Answers a DER OCSP request with a DER OCSP response (a malformed request gets `malformedRequest`).
    /// Answers without a nonce are signed once and served from a cache until half their validity has passed
    /// or revocations changed; a nonce forces a fresh signature.
    pub async fn ocsp_answer(&self, request_der: &[u8]) -> OcspAnswer {
        let Ok(request) = parse_request(request_der) else {
            return OcspAnswer::error(1);
        };
        let Ok(generation) = self.generation().await else {
            return OcspAnswer::error(2);
        };
        let now = self.clock.now();
        let cache_key = (request.nonce_extension_der.is_none() && request.certs.len() == 1)
            .then(|| request.certs[0].cert_id_der.clone());
        if let Some(key) = &cache_key
            && let Ok(cache) = self.ocsp.lock()
            && let Some(c) = cache.get(key)
            && c.generation == generation
            && now < c.fresh_until
        {
            return OcspAnswer {
                der: c.der.clone(),
                validity: Some((c.this_update, c.next_update)),
            };
        }
        let mut statuses = HashMap::new();
        for q in &request.certs {
            let Some(serial) = q.serial else { continue };
            let status = match self.store.get_certificate(serial).await {
                Ok(Some(c)) => match c.status {
                    CertStatus::Good => OcspStatus::Good,
                    CertStatus::Revoked { reason, at } => OcspStatus::Revoked(at, reason),
                },
                Ok(None) => OcspStatus::Unknown,
                Err(e) => {
                    tracing::error!(error = %e, "OCSP lookup failed");
                    return OcspAnswer::error(2);
                }
            };
            statuses.insert(serial, status);
        }
        let validity = i64::from(self.settings.ocsp_validity_minutes.max(1)) * 60_000_000;
        let next_update = now.plus_micros(validity);
        let lookup = |s: Serial| statuses.get(&s).copied().unwrap_or(OcspStatus::Unknown);
        match self.ca.ocsp_response(&request, &lookup, now, next_update) {
            Ok(der) => {
                let der = Arc::new(der);
                if let Some(key) = cache_key
                    && let Ok(mut cache) = self.ocsp.lock()
                {
                    if cache.len() >= OCSP_CACHE_MAX {
                        cache.clear();
                    }
                    let entry = CachedOcsp {
                        generation,
                        fresh_until: now.plus_micros(validity / 2),
                        this_update: now,
                        next_update,
                        der: der.clone(),
                    };
                    cache.insert(key, entry);
                }
                let nonce = request.nonce_extension_der.is_some();
                OcspAnswer {
                    der,
                    validity: (!nonce).then_some((now, next_update)),
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "signing an OCSP response failed");
                OcspAnswer::error(2)
            }
        }
    }

    /// The DER OCSP response to `request_der` (see [`IdentityService::ocsp_answer`]).
    pub async fn ocsp(&self, request_der: &[u8]) -> Vec<u8> {
        self.ocsp_answer(request_der).await.der.as_ref().clone()
    }

    /// Unrevoked certificates expiring within `days`, soonest first.
    pub async fn expiring_within(
        &self,
        days: u32,
        limit: u32,
    ) -> Result<Vec<CertificateRecord>, IdentityError> {
        let before = self.clock.now().plus_micros(i64::from(days) * 24 * HOUR_US);
        Ok(self.store.expiring_certificates(before, limit).await?)
    }

    /// When a certificate valid from `not_before` to `not_after` should be renewed.
    pub fn renew_after(not_before: Timestamp, not_after: Timestamp) -> Timestamp {
        DeviceProfile::renew_after(not_before, not_after)
    }
}
