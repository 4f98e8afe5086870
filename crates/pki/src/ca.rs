//! The CA hierarchy: an offline-style root and the issuing intermediate that signs device certificates.
//!
//! Why one long file: the root and the issuing CA, their keys (file, encrypted, PKCS#11) and what they sign
//! (device and server certificates, CRLs) are one hierarchy with one private key abstraction.

use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use time::OffsetDateTime;

use vouch_types::{CertFingerprint, DeviceId, RevocationReason, Timestamp};

use crate::{
    CheckedCsr, DeviceProfile, KeyAlgorithm, Passphrase, PkiError, Serial, device_uri,
    encrypt_key_pem,
};

/// Who the CA is, as its certificates name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSubject {
    /// The organisation (`O=`), e.g. the operator's company.
    pub organization: String,
}

/// A new CA: certificates as PEM, keys as encrypted PKCS#8 PEM. Nothing here is secret without the passphrase.
#[derive(Debug, Clone)]
pub struct CaMaterial {
    /// The root certificate (the trust anchor devices and relying parties install).
    pub root_cert_pem: String,
    /// The root key, encrypted. Keep it offline once the issuing CA exists.
    pub root_key_pem: String,
    /// The issuing CA certificate.
    pub issuing_cert_pem: String,
    /// The issuing CA key, encrypted.
    pub issuing_key_pem: String,
}

const YEAR_SECS: i64 = 365 * 86_400;

fn at(t: Timestamp) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.unix_micros()) * 1_000).map_err(|e| {
        PkiError::Invalid {
            what: "time",
            why: e.to_string(),
        }
    })
}

fn ca_params(
    cn: String,
    org: &str,
    path_len: u8,
    now: Timestamp,
    years: i64,
) -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, org);
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = at(now.plus_micros(-3_600_000_000))?;
    p.not_after = at(now.plus_micros(years * YEAR_SECS * 1_000_000))?;
    p.serial_number = Some(SerialNumber::from_slice(crate::random_serial().as_bytes()));
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// Creates a root (20 years) and an issuing CA (10 years) with `alg` keys, both keys encrypted with `pass`.
pub fn init_ca(
    alg: KeyAlgorithm,
    subject: &CaSubject,
    now: Timestamp,
    pass: &Passphrase,
) -> Result<CaMaterial, PkiError> {
    let root_key = alg.generate()?;
    let issuing_key = alg.generate()?;
    let (root_cert_pem, issuing_cert_pem) = ca_certificates(&root_key, &issuing_key, subject, now)?;
    Ok(CaMaterial {
        root_cert_pem,
        root_key_pem: encrypt_key_pem(&root_key, pass)?,
        issuing_cert_pem,
        issuing_key_pem: encrypt_key_pem(&issuing_key, pass)?,
    })
}

/// The root (20 years, self-signed by `root_key`) and issuing CA (10 years, for `issuing_key`) certificates,
/// as PEM: for keys made elsewhere, such as in an HSM.
pub fn ca_certificates(
    root_key: &dyn rcgen::SigningKey,
    issuing_key: &dyn rcgen::SigningKey,
    subject: &CaSubject,
    now: Timestamp,
) -> Result<(String, String), PkiError> {
    if subject.organization.is_empty() || subject.organization.len() > 64 {
        return Err(PkiError::Invalid {
            what: "organization",
            why: "must be 1 to 64 characters".into(),
        });
    }
    let mut root_params = ca_params(
        format!("{} Vouch Root CA", subject.organization),
        &subject.organization,
        1,
        now,
        20,
    )?;
    root_params.use_authority_key_identifier_extension = false;
    let root_cert = root_params.self_signed(&root_key)?;
    let root = Issuer::from_params(&root_params, root_key);
    let issuing_params = ca_params(
        format!("{} Vouch Issuing CA", subject.organization),
        &subject.organization,
        0,
        now,
        10,
    )?;
    let issuing_cert = issuing_params.signed_by(&issuing_key, &root)?;
    Ok((root_cert.pem(), issuing_cert.pem()))
}

/// A certificate Vouch issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCert {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Its serial number.
    pub serial: Serial,
    /// Valid from.
    pub not_before: Timestamp,
    /// Valid until.
    pub not_after: Timestamp,
    /// SHA-256 of the DER: how the device record names the certificate it holds.
    pub fingerprint: CertFingerprint,
}

impl IssuedCert {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }
}

/// `der` as PEM with `label` (`CERTIFICATE`, `PRIVATE KEY`, …), LF line endings.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    // Encoding a byte string as PEM cannot fail; an empty string would only hide a library bug.
    pkcs8::der::pem::encode_string(label, pkcs8::LineEnding::LF, der).unwrap_or_default()
}

/// The CA key, shared between the certificate issuer and the CRL and OCSP signers.
#[derive(Clone)]
struct SharedKey(Arc<dyn rcgen::SigningKey + Send + Sync>);

impl rcgen::PublicKeyData for SharedKey {
    fn der_bytes(&self) -> &[u8] {
        rcgen::PublicKeyData::der_bytes(&*self.0)
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        rcgen::PublicKeyData::algorithm(&*self.0)
    }
}

impl rcgen::SigningKey for SharedKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg)
    }
}

/// The issuing CA, loaded and ready to sign.
pub struct IssuingCa {
    cert_der: Vec<u8>,
    key: SharedKey,
    issuer: Issuer<'static, SharedKey>,
    responder: crate::ocsp::ResponderKeys,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa").finish_non_exhaustive()
    }
}

/// The authority information access extension naming the OCSP responder (RFC 5280 §4.2.2.1); rcgen has no
/// builder for it, so it is encoded here with yasna, which rcgen itself uses.
fn ocsp_aia(url: &str) -> CustomExtension {
    const ID_PE_AUTHORITY_INFO_ACCESS: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 1, 1];
    const ID_AD_OCSP: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1];
    let der = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&yasna::models::ObjectIdentifier::from_slice(ID_AD_OCSP));
                // accessLocation: GeneralName uniformResourceIdentifier [6] IA5String, implicit.
                w.next()
                    .write_tagged_implicit(yasna::Tag::context(6), |w| w.write_ia5_string(url));
            });
        });
    });
    CustomExtension::from_oid_content(ID_PE_AUTHORITY_INFO_ACCESS, der)
}

impl IssuingCa {
    /// Loads the issuing CA from its certificate and encrypted key.
    pub fn load(cert_pem: &str, key_pem: &str, pass: &Passphrase) -> Result<Self, PkiError> {
        Self::load_with_key(cert_pem, Arc::new(crate::decrypt_key_pem(key_pem, pass)?))
    }

    /// Loads the issuing CA from its certificate and a key held elsewhere (an HSM, say).
    pub fn load_with_key(
        cert_pem: &str,
        key: Arc<dyn rcgen::SigningKey + Send + Sync>,
    ) -> Result<Self, PkiError> {
        let (label, cert_der) = pem_decode(cert_pem)?;
        if label != "CERTIFICATE" {
            return Err(PkiError::Malformed {
                what: "CA certificate",
                why: format!("expected CERTIFICATE, found {label}"),
            });
        }
        let key = SharedKey(key);
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.clone()), key.clone())
            .map_err(|e| PkiError::Malformed {
                what: "CA certificate",
                why: e.to_string(),
            })?;
        let responder = {
            use x509_parser::prelude::FromDer;
            let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&cert_der)
                .map_err(|e| PkiError::Malformed {
                    what: "CA certificate",
                    why: e.to_string(),
                })?;
            if rcgen::PublicKeyData::der_bytes(&key)
                != &cert.public_key().subject_public_key.data[..]
            {
                return Err(PkiError::Malformed {
                    what: "CA key",
                    why: "the key does not belong to the certificate".into(),
                });
            }
            crate::ocsp::ResponderKeys::new(
                cert.subject().as_raw(),
                &cert.public_key().subject_public_key.data,
            )
        };
        Ok(Self {
            cert_der,
            key,
            issuer,
            responder,
        })
    }

    /// A TLS server certificate for this Vouch server (serverAuth) naming `dns_names` and `ips`, valid for
    /// `days`, with a fresh P-256 key: returns the certificate DER and the key as PKCS#8 DER. The key lives in
    /// memory only; a restart makes a new one.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ips: &[std::net::IpAddr],
        days: u32,
        now: Timestamp,
    ) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
        let key = KeyAlgorithm::EcdsaP256.generate()?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            dns_names
                .first()
                .cloned()
                .unwrap_or_else(|| "vouch".to_owned()),
        );
        p.distinguished_name = dn;
        let mut sans = Vec::new();
        for n in dns_names {
            sans.push(SanType::DnsName(n.clone().try_into().map_err(
                |e: rcgen::Error| PkiError::Invalid {
                    what: "DNS name",
                    why: e.to_string(),
                },
            )?));
        }
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        p.subject_alt_names = sans;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.serial_number = Some(SerialNumber::from_slice(crate::random_serial().as_bytes()));
        p.not_before = at(now.plus_micros(-300_000_000))?;
        p.not_after = at(now.plus_micros(i64::from(days) * 86_400_000_000))?;
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok((cert.der().to_vec(), key.serialize_der()))
    }

    /// The issuing CA's certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Signs a certificate for `device` over the key of `csr`, with Vouch's profile: the request's own
    /// extensions are ignored.
    pub fn issue_device(
        &self,
        csr: &CheckedCsr,
        device: DeviceId,
        profile: &DeviceProfile,
        now: Timestamp,
    ) -> Result<IssuedCert, PkiError> {
        profile.validate()?;
        let public_key = rcgen::SubjectPublicKeyInfo::from_der(csr.spki_der())
            .map_err(|e| PkiError::UnsupportedKey(e.to_string()))?;
        let serial = crate::random_serial();
        // Five minutes of grace for devices whose clocks run a little behind.
        let not_before = now.plus_micros(-300_000_000);
        let not_after = now.plus_micros(i64::from(profile.lifetime_days) * 86_400_000_000);
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, device.to_string());
        p.distinguished_name = dn;
        let uri = device_uri(&profile.trust_domain, device);
        p.subject_alt_names = vec![SanType::URI(uri.try_into().map_err(
            |e: rcgen::Error| PkiError::Invalid {
                what: "device URI",
                why: e.to_string(),
            },
        )?)];
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![profile.crl_url.clone()],
        }];
        p.custom_extensions = vec![ocsp_aia(&profile.ocsp_url)];
        p.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        p.not_before = at(not_before)?;
        p.not_after = at(not_after)?;
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&public_key, &self.issuer)?;
        let der = cert.der().to_vec();
        let fingerprint = CertFingerprint::from_bytes(Sha256::digest(&der).into());
        Ok(IssuedCert {
            der,
            serial,
            not_before,
            not_after,
            fingerprint,
        })
    }
}

impl IssuingCa {
    /// The signature algorithm identifier of this CA's signatures (for OCSP responses): the OID, and whether
    /// its parameters are an explicit NULL (RSA's are).
    fn signature_oid(&self) -> (&'static [u64], bool) {
        let alg = rcgen::PublicKeyData::algorithm(&self.key);
        if alg == &rcgen::PKCS_ED25519 {
            (&[1, 3, 101, 112], false)
        } else if alg == &rcgen::PKCS_RSA_SHA256 {
            (&[1, 2, 840, 113549, 1, 1, 11], true)
        } else {
            (&[1, 2, 840, 10045, 4, 3, 2], false)
        }
    }

    /// A CRL listing `revoked`, valid from `this_update` to `next_update`, numbered `number` (which must grow
    /// with every CRL this CA publishes).
    pub fn crl(
        &self,
        revoked: &[(Serial, Timestamp, RevocationReason)],
        this_update: Timestamp,
        next_update: Timestamp,
        number: u64,
    ) -> Result<Vec<u8>, PkiError> {
        let revoked_certs = revoked
            .iter()
            .map(|(serial, at, reason)| {
                Ok(rcgen::RevokedCertParams {
                    serial_number: SerialNumber::from_slice(serial.as_bytes()),
                    revocation_time: at_whole_second(*at)?,
                    reason_code: Some(crl_reason(*reason)),
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, PkiError>>()?;
        let params = rcgen::CertificateRevocationListParams {
            this_update: at_whole_second(this_update)?,
            next_update: at_whole_second(next_update)?,
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer)?.der().to_vec())
    }

    /// Answers an OCSP request: `status` tells the state of each certificate this CA issued (others are
    /// unknown). The answer is valid until `next_update`; a nonce in the request is echoed.
    pub fn ocsp_response(
        &self,
        request: &crate::ocsp::OcspRequest,
        status: &dyn Fn(Serial) -> crate::ocsp::OcspStatus,
        now: Timestamp,
        next_update: Timestamp,
    ) -> Result<Vec<u8>, PkiError> {
        let answers: Vec<_> = request
            .certs
            .iter()
            .map(|q| {
                let s = match q.serial {
                    Some(serial) if self.responder.issued(q) => status(serial),
                    _ => crate::ocsp::OcspStatus::Unknown,
                };
                (q, s)
            })
            .collect();
        crate::ocsp::encode_response(
            &self.responder,
            &answers,
            request.nonce_extension_der.as_deref(),
            now,
            next_update,
            self.signature_oid(),
            &self.key,
        )
    }
}

fn at_whole_second(t: Timestamp) -> Result<OffsetDateTime, PkiError> {
    at(Timestamp::from_unix_micros(
        t.unix_micros().div_euclid(1_000_000) * 1_000_000,
    ))
}

fn crl_reason(r: RevocationReason) -> rcgen::RevocationReason {
    match r {
        RevocationReason::Unspecified => rcgen::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => rcgen::RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise => rcgen::RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged => rcgen::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => rcgen::RevocationReason::Superseded,
        RevocationReason::CessationOfOperation => rcgen::RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold => rcgen::RevocationReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => rcgen::RevocationReason::PrivilegeWithdrawn,
    }
}

fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), PkiError> {
    pkcs8::der::pem::decode_vec(pem.as_bytes())
        .map(|(l, d)| (l.to_owned(), d))
        .map_err(|e| PkiError::Malformed {
            what: "PEM",
            why: e.to_string(),
        })
}

/// The DER of a PEM `CERTIFICATE`.
pub fn cert_der_from_pem(pem: &str) -> Result<Vec<u8>, PkiError> {
    let (label, der) = pem_decode(pem)?;
    if label != "CERTIFICATE" {
        return Err(PkiError::Malformed {
            what: "certificate",
            why: format!("expected CERTIFICATE, found {label}"),
        });
    }
    Ok(der)
}

/// What a certificate says about itself, for `vouch ca show` and the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The subject's distinguished name.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The serial number, hex.
    pub serial: String,
    /// Valid from.
    pub not_before: Timestamp,
    /// Valid until.
    pub not_after: Timestamp,
    /// SHA-256 of the DER.
    pub fingerprint: CertFingerprint,
}

/// Reads the summary of a PEM certificate.
pub fn summarize_pem(pem: &str) -> Result<CertSummary, PkiError> {
    use x509_parser::prelude::FromDer;
    let (label, der) = pem_decode(pem)?;
    if label != "CERTIFICATE" {
        return Err(PkiError::Malformed {
            what: "certificate",
            why: format!("expected CERTIFICATE, found {label}"),
        });
    }
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).map_err(|e| {
        PkiError::Malformed {
            what: "certificate",
            why: e.to_string(),
        }
    })?;
    let ts = |t: x509_parser::time::ASN1Time| {
        Timestamp::from_unix_micros(t.timestamp().saturating_mul(1_000_000))
    };
    Ok(CertSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_before: ts(cert.validity().not_before),
        not_after: ts(cert.validity().not_after),
        fingerprint: CertFingerprint::from_bytes(Sha256::digest(&der).into()),
    })
}

/// The first half of bringing your own PKI: an issuing CA key (encrypted) and a request for an enterprise root
/// to sign, as PEM.
pub fn intermediate_request(
    alg: KeyAlgorithm,
    subject: &CaSubject,
    pass: &Passphrase,
) -> Result<(String, String), PkiError> {
    let key = alg.generate()?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, subject.organization.as_str());
    dn.push(
        DnType::CommonName,
        format!("{} Vouch Issuing CA", subject.organization),
    );
    p.distinguished_name = dn;
    let csr = p.serialize_request(&key)?;
    let csr_pem = csr.pem()?;
    Ok((encrypt_key_pem(&key, pass)?, csr_pem))
}

/// The second half: checks that `cert_pem` (signed by the enterprise) is a CA certificate for the key in
/// `key_pem` and that it chains to `root_pem`, and returns the issuing CA ready to use.
pub fn import_intermediate(
    cert_pem: &str,
    key_pem: &str,
    pass: &Passphrase,
    root_pem: &str,
) -> Result<IssuingCa, PkiError> {
    use x509_parser::prelude::FromDer;
    let ca = IssuingCa::load(cert_pem, key_pem, pass)?;
    let root_der = cert_der_from_pem(root_pem)?;
    let bad = |why: String| PkiError::Invalid {
        what: "intermediate certificate",
        why,
    };
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(ca.cert_der())
        .map_err(|e| bad(e.to_string()))?;
    let (_, root) =
        x509_parser::certificate::X509Certificate::from_der(&root_der).map_err(|e| {
            PkiError::Malformed {
                what: "root certificate",
                why: e.to_string(),
            }
        })?;
    if !cert.is_ca() {
        return Err(bad(
            "it is not a CA certificate (basicConstraints CA:TRUE is missing)".into(),
        ));
    }
    if !root.is_ca() {
        return Err(PkiError::Invalid {
            what: "root certificate",
            why: "it is not a CA certificate".into(),
        });
    }
    cert.verify_signature(Some(root.public_key()))
        .map_err(|_| bad("it is not signed by the given root".into()))?;
    Ok(ca)
}

/// A certificate an existing PKI issued, read for import: its serial, validity and fingerprint.
pub fn read_certificate(
    pem: &str,
) -> Result<(Serial, Timestamp, Timestamp, CertFingerprint, Vec<u8>), PkiError> {
    use x509_parser::prelude::FromDer;
    let der = cert_der_from_pem(pem)?;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).map_err(|e| {
        PkiError::Malformed {
            what: "certificate",
            why: e.to_string(),
        }
    })?;
    let serial = Serial::from_slice(cert.raw_serial())
        .or_else(|_| Serial::from_slice(cert.raw_serial().strip_prefix(&[0]).unwrap_or_default()))
        .map_err(|e| PkiError::Invalid {
            what: "serial number",
            why: e.to_string(),
        })?;
    let ts = |t: x509_parser::time::ASN1Time| {
        Timestamp::from_unix_micros(t.timestamp().saturating_mul(1_000_000))
    };
    let fp = CertFingerprint::from_bytes(Sha256::digest(&der).into());
    Ok((
        serial,
        ts(cert.validity().not_before),
        ts(cert.validity().not_after),
        fp,
        der,
    ))
}

fn parse_x509<'a>(
    der: &'a [u8],
    what: &'static str,
) -> Result<x509_parser::certificate::X509Certificate<'a>, PkiError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).map_err(|e| {
        PkiError::Malformed {
            what,
            why: e.to_string(),
        }
    })?;
    Ok(cert)
}

/// Checks that the certificate `leaf_der` is signed by one of `issuers` (DER) and valid at `now`; `what`
/// names it in the refusal.
pub fn verify_issued_by(
    leaf_der: &[u8],
    issuers: &[Vec<u8>],
    now: Timestamp,
    what: &'static str,
) -> Result<(), PkiError> {
    let bad = |why: &str| PkiError::Invalid {
        what,
        why: why.to_owned(),
    };
    let leaf = parse_x509(leaf_der, what)?;
    let signed_by_an_issuer = issuers.iter().any(|m| {
        parse_x509(m, "CA certificate")
            .is_ok_and(|ca| leaf.verify_signature(Some(ca.public_key())).is_ok())
    });
    if !signed_by_an_issuer {
        return Err(bad("it is not signed by a trusted CA"));
    }
    let secs = now.unix_micros().div_euclid(1_000_000);
    let v = leaf.validity();
    if secs < v.not_before.timestamp() || secs > v.not_after.timestamp() {
        return Err(bad("it is expired or not yet valid"));
    }
    Ok(())
}

/// The hardware serial an IDevID (IEEE 802.1AR manufacturer certificate) vouches for: its subject's
/// serialNumber (else its CN), once the certificate is found signed by one of `manufacturers` and valid at
/// `now`.
pub fn idevid_serial(
    leaf_der: &[u8],
    manufacturers: &[Vec<u8>],
    now: Timestamp,
) -> Result<String, PkiError> {
    let what = "manufacturer certificate";
    verify_issued_by(leaf_der, manufacturers, now, what)?;
    let bad = |why: &str| PkiError::Invalid {
        what,
        why: why.to_owned(),
    };
    let leaf = parse_x509(leaf_der, what)?;
    let subject = leaf.subject();
    let serial = subject
        .iter_by_oid(&x509_parser::oid_registry::OID_X509_SERIALNUMBER)
        .next()
        .or_else(|| subject.iter_common_name().next())
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| bad("it names no serialNumber or CN"))?;
    Ok(serial.to_owned())
}
