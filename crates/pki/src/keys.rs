//! Key pairs: generation and encryption at rest.

use pkcs8::der::Decode;
use pkcs8::{EncryptedPrivateKeyInfo, LineEnding, PrivateKeyInfo};
use rcgen::KeyPair;

use crate::PkiError;

/// Which kind of key a CA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256: the default, understood by every TLS stack and device SDK.
    #[default]
    EcdsaP256,
    /// Ed25519: small and fast, for fleets whose devices support it.
    Ed25519,
    /// RSA-3072 with SHA-256, for relying parties that accept nothing else.
    Rsa3072,
}

impl KeyAlgorithm {
    /// Every algorithm.
    pub const ALL: [KeyAlgorithm; 3] = [Self::EcdsaP256, Self::Ed25519, Self::Rsa3072];

    /// The algorithm's name on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "p256",
            Self::Ed25519 => "ed25519",
            Self::Rsa3072 => "rsa3072",
        }
    }

    /// A fresh key pair.
    pub fn generate(self) -> Result<KeyPair, PkiError> {
        let alg = match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
            // ring cannot generate RSA keys: the RustCrypto `rsa` crate does, ring signs with them.
            Self::Rsa3072 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 3072)
                    .map_err(|e| PkiError::Signing(format!("generating an RSA key: {e}")))?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| PkiError::Signing(format!("encoding an RSA key: {e}")))?;
                let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
                return Ok(KeyPair::from_pkcs8_der_and_sign_algo(
                    &pkcs8,
                    &rcgen::PKCS_RSA_SHA256,
                )?);
            }
        };
        Ok(KeyPair::generate_for(alg)?)
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = vouch_types::ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        vouch_types::parse_named("key algorithm", s, &Self::ALL, Self::as_str)
    }
}

/// A passphrase protecting keys at rest. Never printed: `Debug` redacts it.
pub struct Passphrase(String);

impl Passphrase {
    /// The shortest passphrase accepted.
    pub const MIN_LEN: usize = 12;

    /// A passphrase, if it is long enough to resist guessing.
    pub fn new(s: String) -> Result<Self, PkiError> {
        let s = s.trim_end_matches(['\r', '\n']).to_owned();
        if s.chars().count() < Self::MIN_LEN {
            return Err(PkiError::Invalid {
                what: "passphrase",
                why: format!("must be at least {} characters", Self::MIN_LEN),
            });
        }
        Ok(Self(s))
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(redacted)")
    }
}

/// The key as an `ENCRYPTED PRIVATE KEY` PEM (PKCS#8, PBES2 with scrypt N=2^14, r=8, p=1 and AES-256-CBC).
///
/// Those scrypt parameters are OpenSSL's own defaults: larger ones exceed the 32 MiB OpenSSL allows when it
/// decrypts, and an operator must be able to open the key with standard tools.
pub fn encrypt_key_pem(key: &KeyPair, pass: &Passphrase) -> Result<String, PkiError> {
    use rand_core::RngCore;
    let der = key.serialize_der();
    let info = PrivateKeyInfo::from_der(&der)
        .map_err(|e| PkiError::Signing(format!("encoding the key: {e}")))?;
    let (mut salt, mut iv) = ([0u8; 16], [0u8; 16]);
    rand_core::OsRng.fill_bytes(&mut salt);
    rand_core::OsRng.fill_bytes(&mut iv);
    let scrypt = pkcs8::pkcs5::scrypt::Params::new(14, 8, 1, 32)
        .map_err(|e| PkiError::Signing(format!("scrypt parameters: {e}")))?;
    let params = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(scrypt, &salt, &iv)
        .map_err(|e| PkiError::Signing(format!("PBES2 parameters: {e}")))?;
    let doc = info
        .encrypt_with_params(params, pass.0.as_bytes())
        .map_err(|e| PkiError::Signing(format!("encrypting the key: {e}")))?;
    let pem = doc
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|e| PkiError::Signing(format!("encoding the key: {e}")))?;
    Ok(pem.to_string())
}

/// Decrypts an `ENCRYPTED PRIVATE KEY` PEM.
pub fn decrypt_key_pem(pem: &str, pass: &Passphrase) -> Result<KeyPair, PkiError> {
    let (label, der) =
        pkcs8::der::pem::decode_vec(pem.as_bytes()).map_err(|e| PkiError::Malformed {
            what: "private key",
            why: e.to_string(),
        })?;
    if label != "ENCRYPTED PRIVATE KEY" {
        return Err(PkiError::Malformed {
            what: "private key",
            why: format!(
                "expected an ENCRYPTED PRIVATE KEY, found {label}: keys are never stored in plain text"
            ),
        });
    }
    let enc = EncryptedPrivateKeyInfo::from_der(&der).map_err(|e| PkiError::Malformed {
        what: "private key",
        why: e.to_string(),
    })?;
    let plain = enc
        .decrypt(pass.0.as_bytes())
        .map_err(|_| PkiError::WrongPassphrase)?;
    KeyPair::try_from(plain.as_bytes()).map_err(|e| PkiError::Malformed {
        what: "private key",
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(s: &str) -> Passphrase {
        Passphrase::new(s.to_owned()).unwrap()
    }

    #[test]
    fn keys_round_trip_encrypted_and_never_in_plain_text() {
        for alg in KeyAlgorithm::ALL {
            let key = alg.generate().unwrap();
            let pem = encrypt_key_pem(&key, &pass("correct horse battery")).unwrap();
            assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
            let back = decrypt_key_pem(&pem, &pass("correct horse battery")).unwrap();
            assert_eq!(back.public_key_pem(), key.public_key_pem());
            assert!(matches!(
                decrypt_key_pem(&pem, &pass("wrong horse battery")),
                Err(PkiError::WrongPassphrase)
            ));
        }
        let plain = KeyAlgorithm::EcdsaP256.generate().unwrap().serialize_pem();
        let err = decrypt_key_pem(&plain, &pass("correct horse battery")).unwrap_err();
        assert!(
            err.to_string().contains("never stored in plain text"),
            "{err}"
        );
    }

    #[test]
    fn short_passphrases_are_refused_and_never_shown() {
        assert!(Passphrase::new("short".into()).is_err());
        assert_eq!(
            format!("{:?}", pass("a long enough secret")),
            "Passphrase(redacted)"
        );
    }
}
