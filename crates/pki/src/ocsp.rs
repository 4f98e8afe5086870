//! OCSP (RFC 6960): reading requests and signing responses.
//!
//! Hand-written over yasna (the DER library rcgen itself uses) because the structures are small and fixed,
//! and no crate on `ring` does both the parsing and the signing; only what a responder needs is read. The
//! responder is the issuing CA itself (no delegated responder certificate), which every client accepts.

use sha1::Digest as _;
use yasna::models::{GeneralizedTime, ObjectIdentifier};
use yasna::{ASN1Error, BERReader, DERWriter, Tag};

use vouch_types::{RevocationReason, Serial, Timestamp};

use crate::PkiError;

const ID_PKIX_OCSP_BASIC: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 1];
const ID_PKIX_OCSP_NONCE: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 48, 1, 2];
const ID_SHA1: &[u64] = &[1, 3, 14, 3, 2, 26];
const ID_SHA256: &[u64] = &[2, 16, 840, 1, 101, 3, 4, 2, 1];

/// The longest OCSP request accepted (a request for a few certificates is a few hundred bytes).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// The most certificates one request may ask about.
pub const MAX_CERTS_PER_REQUEST: usize = 32;

/// One certificate a request asks about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertQuery {
    /// The CertID exactly as the client sent it: echoed in the response, as clients compare it byte for byte.
    pub cert_id_der: Vec<u8>,
    /// Which hash the client used for the issuer fields.
    pub hash: IssuerHash,
    /// SHA-x of the issuer's name.
    pub issuer_name_hash: Vec<u8>,
    /// SHA-x of the issuer's public key.
    pub issuer_key_hash: Vec<u8>,
    /// The certificate's serial number (`None` when it cannot be a Vouch serial: then the answer is unknown).
    pub serial: Option<Serial>,
}

/// The hash algorithm of a CertID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerHash {
    /// SHA-1 (what OpenSSL sends by default).
    Sha1,
    /// SHA-256.
    Sha256,
    /// Anything else: answered as unknown.
    Other,
}

/// A parsed OCSP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspRequest {
    /// The certificates asked about.
    pub certs: Vec<CertQuery>,
    /// The nonce extension exactly as sent, to echo.
    pub nonce_extension_der: Option<Vec<u8>>,
}

/// What the responder says about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked at the time, for the reason.
    Revoked(Timestamp, RevocationReason),
    /// Not known to this responder.
    Unknown,
}

fn malformed(e: ASN1Error) -> PkiError {
    PkiError::Malformed {
        what: "OCSP request",
        why: format!("{e:?}"),
    }
}

fn read_cert_id(r: BERReader<'_, '_>) -> Result<CertQuery, ASN1Error> {
    let der = r.read_der()?;
    yasna::parse_der(&der, |r| {
        r.read_sequence(|r| {
            let alg = r.next().read_sequence(|r| {
                let oid = r.next().read_oid()?;
                r.read_optional(|r| r.read_null())?;
                Ok(oid)
            })?;
            let hash = if alg.components().as_slice() == ID_SHA1 {
                IssuerHash::Sha1
            } else if alg.components().as_slice() == ID_SHA256 {
                IssuerHash::Sha256
            } else {
                IssuerHash::Other
            };
            let issuer_name_hash = r.next().read_bytes()?;
            let issuer_key_hash = r.next().read_bytes()?;
            let serial_bytes = r.next().read_bigint_bytes()?;
            // A positive serial whose minimal encoding starts with a high bit gets a 0x00 prefix in DER.
            let serial = match serial_bytes {
                (bytes, true) => {
                    let mut b = bytes.as_slice();
                    while b.len() > 1 && b[0] == 0 && b[1] & 0x80 == 0 {
                        b = &b[1..];
                    }
                    Serial::from_slice(b).ok()
                }
                (_, false) => None,
            };
            Ok(CertQuery {
                cert_id_der: der.clone(),
                hash,
                issuer_name_hash,
                issuer_key_hash,
                serial,
            })
        })
    })
}

/// Reads a DER OCSPRequest.
pub fn parse_request(der: &[u8]) -> Result<OcspRequest, PkiError> {
    if der.len() > MAX_REQUEST_BYTES {
        return Err(PkiError::Malformed {
            what: "OCSP request",
            why: "too large".into(),
        });
    }
    let req = yasna::parse_der(der, |r| {
        r.read_sequence(|r| {
            let tbs = r.next().read_sequence(|r| {
                r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_i64()))?;
                r.read_optional(|r| r.read_tagged(Tag::context(1), |r| r.read_der()))?;
                let mut certs = Vec::new();
                r.next().read_sequence_of(|r| {
                    if certs.len() >= MAX_CERTS_PER_REQUEST {
                        return Err(ASN1Error::new(yasna::ASN1ErrorKind::Invalid));
                    }
                    certs.push(r.read_sequence(|r| {
                        let q = read_cert_id(r.next())?;
                        r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
                        Ok(q)
                    })?);
                    Ok(())
                })?;
                let mut nonce = None;
                r.read_optional(|r| {
                    r.read_tagged(Tag::context(2), |r| {
                        r.read_sequence_of(|r| {
                            let ext = r.read_der()?;
                            let is_nonce = yasna::parse_der(&ext, |r| {
                                r.read_sequence(|r| {
                                    let oid = r.next().read_oid()?;
                                    r.read_optional(|r| r.read_bool())?;
                                    r.next().read_bytes()?;
                                    Ok(oid.components().as_slice() == ID_PKIX_OCSP_NONCE)
                                })
                            })?;
                            if is_nonce {
                                nonce = Some(ext);
                            }
                            Ok(())
                        })
                    })
                })?;
                Ok(OcspRequest {
                    certs,
                    nonce_extension_der: nonce,
                })
            })?;
            r.read_optional(|r| r.read_tagged(Tag::context(0), |r| r.read_der()))?;
            Ok(tbs)
        })
    })
    .map_err(malformed)?;
    if req.certs.is_empty() {
        return Err(PkiError::Malformed {
            what: "OCSP request",
            why: "asks about no certificate".into(),
        });
    }
    Ok(req)
}

/// A whole second, as GeneralizedTime (OCSP clients reject fractions surprisingly often).
fn gtime(t: Timestamp) -> Result<GeneralizedTime, PkiError> {
    let secs = t.unix_micros().div_euclid(1_000_000);
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PkiError::Invalid {
        what: "time",
        why: e.to_string(),
    })?;
    Ok(GeneralizedTime::from_datetime(dt))
}

/// The responder side: what identifies the issuing CA in requests, and how to sign answers.
pub(crate) struct ResponderKeys {
    pub(crate) name_sha1: Vec<u8>,
    pub(crate) key_sha1: Vec<u8>,
    pub(crate) name_sha256: Vec<u8>,
    pub(crate) key_sha256: Vec<u8>,
}

impl ResponderKeys {
    /// From the issuing CA's subject name DER and public key bits.
    pub(crate) fn new(subject_der: &[u8], public_key_bits: &[u8]) -> Self {
        Self {
            name_sha1: sha1::Sha1::digest(subject_der).to_vec(),
            key_sha1: sha1::Sha1::digest(public_key_bits).to_vec(),
            name_sha256: sha2::Sha256::digest(subject_der).to_vec(),
            key_sha256: sha2::Sha256::digest(public_key_bits).to_vec(),
        }
    }

    /// Whether `q` names this CA as the issuer.
    pub(crate) fn issued(&self, q: &CertQuery) -> bool {
        match q.hash {
            IssuerHash::Sha1 => {
                q.issuer_name_hash == self.name_sha1 && q.issuer_key_hash == self.key_sha1
            }
            IssuerHash::Sha256 => {
                q.issuer_name_hash == self.name_sha256 && q.issuer_key_hash == self.key_sha256
            }
            IssuerHash::Other => false,
        }
    }
}

fn write_generalized_time(w: DERWriter<'_>, t: &GeneralizedTime) {
    w.write_generalized_time(t);
}

/// The DER of a successful, signed OCSPResponse.
pub(crate) fn encode_response(
    keys: &ResponderKeys,
    answers: &[(&CertQuery, OcspStatus)],
    nonce: Option<&[u8]>,
    produced_at: Timestamp,
    next_update: Timestamp,
    (signature_oid, null_params): (&'static [u64], bool),
    key: &impl rcgen::SigningKey,
) -> Result<Vec<u8>, PkiError> {
    let produced = gtime(produced_at)?;
    let next = gtime(next_update)?;
    let mut revoked_times = Vec::new();
    for (_, s) in answers {
        if let OcspStatus::Revoked(at, _) = s {
            revoked_times.push(gtime(*at)?);
        }
    }
    let tbs = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            // responderID byKey: SHA-1 of the responder's public key bits.
            w.next()
                .write_tagged(Tag::context(2), |w| w.write_bytes(&keys.key_sha1));
            write_generalized_time(w.next(), &produced);
            w.next().write_sequence(|w| {
                let mut revoked = revoked_times.iter();
                for (q, status) in answers {
                    w.next().write_sequence(|w| {
                        w.next().write_der(&q.cert_id_der);
                        match status {
                            OcspStatus::Good => w
                                .next()
                                .write_tagged_implicit(Tag::context(0), |w| w.write_null()),
                            OcspStatus::Unknown => w
                                .next()
                                .write_tagged_implicit(Tag::context(2), |w| w.write_null()),
                            OcspStatus::Revoked(_, reason) => {
                                let at = revoked.next();
                                w.next().write_tagged_implicit(Tag::context(1), |w| {
                                    w.write_sequence(|w| {
                                        if let Some(at) = at {
                                            write_generalized_time(w.next(), at);
                                        }
                                        w.next().write_tagged(Tag::context(0), |w| {
                                            w.write_enum(i64::from(reason.code()))
                                        });
                                    })
                                });
                            }
                        }
                        write_generalized_time(w.next(), &produced);
                        w.next()
                            .write_tagged(Tag::context(0), |w| write_generalized_time(w, &next));
                    });
                }
            });
            if let Some(nonce) = nonce {
                w.next().write_tagged(Tag::context(1), |w| {
                    w.write_sequence(|w| w.next().write_der(nonce))
                });
            }
        });
    });
    let signature = key.sign(&tbs)?;
    let basic = yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_der(&tbs);
            w.next().write_sequence(|w| {
                w.next()
                    .write_oid(&ObjectIdentifier::from_slice(signature_oid));
                if null_params {
                    w.next().write_null();
                }
            });
            w.next().write_bitvec_bytes(&signature, signature.len() * 8);
        });
    });
    Ok(yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_enum(0);
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| {
                    w.next()
                        .write_oid(&ObjectIdentifier::from_slice(ID_PKIX_OCSP_BASIC));
                    w.next().write_bytes(&basic);
                })
            });
        })
    }))
}

/// The DER of an unsuccessful OCSPResponse (1 malformedRequest, 2 internalError, 6 unauthorized): no body.
pub fn error_response(status: u8) -> Vec<u8> {
    yasna::construct_der(|w| w.write_sequence(|w| w.next().write_enum(i64::from(status))))
}
