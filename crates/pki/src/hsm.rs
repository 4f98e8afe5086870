//! CA keys held in an HSM through PKCS#11 (tested against SoftHSM2): the private key never leaves the token;
//! Vouch asks it to sign. ECDSA P-256 only.

use std::path::Path;
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use sha2::{Digest, Sha256};

use crate::PkiError;

/// The DER of the named curve P-256 (prime256v1), as PKCS#11 wants CKA_EC_PARAMS.
const P256_PARAMS: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

fn hsm(what: &str, e: impl std::fmt::Display) -> PkiError {
    PkiError::Signing(format!("HSM: {what}: {e}"))
}

/// Where a key lives: the PKCS#11 module, the token's label, and the key's label. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmLocation {
    /// The PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so`).
    pub module: std::path::PathBuf,
    /// The token's label.
    pub token: String,
    /// The key pair's label on the token.
    pub key: String,
}

/// A P-256 signing key on an HSM token.
pub struct HsmKey {
    _ctx: Pkcs11,
    session: Mutex<Session>,
    private: ObjectHandle,
    /// The uncompressed public point (0x04 ‖ x ‖ y).
    point: Vec<u8>,
}

impl std::fmt::Debug for HsmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmKey").finish_non_exhaustive()
    }
}

fn session(module: &Path, token: &str, pin: &str) -> Result<(Pkcs11, Session), PkiError> {
    let ctx = Pkcs11::new(module).map_err(|e| hsm("loading the module", e))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        // The module is process-wide: a second key (root and issuing) finds it initialised already.
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => return Err(hsm("initialising", e)),
    }
    let slot = ctx
        .get_slots_with_token()
        .map_err(|e| hsm("listing slots", e))?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label().trim() == token)
                .unwrap_or(false)
        })
        .ok_or_else(|| hsm("finding the token", format!("no token labelled `{token}`")))?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| hsm("opening a session", e))?;
    match session.login(UserType::User, Some(&AuthPin::new(pin.to_owned().into()))) {
        // Login is per application: a second session (root and issuing keys) is logged in already.
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => return Err(hsm("logging in (wrong PIN?)", e)),
    }
    Ok((ctx, session))
}

/// The point inside CKA_EC_POINT, which tokens return DER-wrapped (an OCTET STRING) or bare.
fn unwrap_point(raw: Vec<u8>) -> Vec<u8> {
    if raw.len() == 67 && raw[0] == 0x04 && raw[1] == 0x41 {
        raw[2..].to_vec()
    } else {
        raw
    }
}

impl HsmKey {
    /// Generates a new P-256 key pair on the token, labelled `loc.key`.
    pub fn generate(loc: &HsmLocation, pin: &str) -> Result<Self, PkiError> {
        let (ctx, session) = session(&loc.module, &loc.token, pin)?;
        let label = loc.key.as_bytes().to_vec();
        let public_template = vec![
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::EcParams(P256_PARAMS.to_vec()),
            Attribute::Label(label.clone()),
        ];
        let private_template = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
        ];
        let (public, private) = session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &public_template,
                &private_template,
            )
            .map_err(|e| hsm("generating a key pair", e))?;
        let point = Self::point_of(&session, public)?;
        Ok(Self {
            _ctx: ctx,
            session: Mutex::new(session),
            private,
            point,
        })
    }

    /// Opens the key pair labelled `loc.key` on the token.
    pub fn open(loc: &HsmLocation, pin: &str) -> Result<Self, PkiError> {
        let (ctx, session) = session(&loc.module, &loc.token, pin)?;
        let label = Attribute::Label(loc.key.as_bytes().to_vec());
        let find = |class| {
            session
                .find_objects(&[
                    Attribute::Class(class),
                    Attribute::KeyType(KeyType::EC),
                    label.clone(),
                ])
                .map_err(|e| hsm("finding the key", e))?
                .first()
                .copied()
                .ok_or_else(|| {
                    hsm(
                        "finding the key",
                        format!("no EC key labelled `{}`", loc.key),
                    )
                })
        };
        let private = find(ObjectClass::PRIVATE_KEY)?;
        let public = find(ObjectClass::PUBLIC_KEY)?;
        let point = Self::point_of(&session, public)?;
        Ok(Self {
            _ctx: ctx,
            session: Mutex::new(session),
            private,
            point,
        })
    }

    fn point_of(session: &Session, public: ObjectHandle) -> Result<Vec<u8>, PkiError> {
        let attrs = session
            .get_attributes(public, &[AttributeType::EcPoint])
            .map_err(|e| hsm("reading the public key", e))?;
        match attrs.into_iter().next() {
            Some(Attribute::EcPoint(p)) => Ok(unwrap_point(p)),
            _ => Err(hsm("reading the public key", "no EC point")),
        }
    }
}

/// `r ‖ s` (as PKCS#11 returns an ECDSA signature) as the DER `ECDSA-Sig-Value` X.509 expects.
fn der_signature(raw: &[u8]) -> Vec<u8> {
    let (r, s) = raw.split_at(raw.len() / 2);
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next().write_bigint_bytes(trim(r), true);
            w.next().write_bigint_bytes(trim(s), true);
        })
    })
}

/// The magnitude without leading zero bytes (at least one byte).
fn trim(mut b: &[u8]) -> &[u8] {
    while b.len() > 1 && b[0] == 0 {
        b = &b[1..];
    }
    b
}

impl rcgen::PublicKeyData for HsmKey {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for HsmKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let digest = Sha256::digest(msg);
        let session = self
            .session
            .lock()
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        let raw = session
            .sign(&Mechanism::Ecdsa, self.private, &digest)
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(der_signature(&raw))
    }
}
