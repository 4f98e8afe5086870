//! Second factor for privileged actions: TOTP (RFC 6238) — HMAC-SHA1, 6 digits, 30-second steps, the codes
//! every authenticator app shows — and the sealing of its shared secrets at rest.
//!
//! Written here rather than taken from a crate: the algorithm is a dozen lines over `ring`'s HMAC (already in
//! the build for TLS), and the parts that matter — replay refusal and a clock-skew window of one step — live
//! in the store and in [`verify`].

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// Seconds per time step (RFC 6238's default, and every authenticator app's).
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes of a new shared secret (160 bits, RFC 4226's recommendation for SHA-1).
pub const SECRET_BYTES: usize = 20;

/// The HMAC behind the codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1: what authenticator apps use.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// The code for time step `step` (RFC 4226 §5.3 dynamic truncation, `digits` long).
pub fn code(alg: Algorithm, secret: &[u8], step: u64, digits: u32) -> u32 {
    let alg = match alg {
        Algorithm::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        Algorithm::Sha256 => hmac::HMAC_SHA256,
        Algorithm::Sha512 => hmac::HMAC_SHA512,
    };
    let tag = hmac::sign(&hmac::Key::new(alg, secret), &step.to_be_bytes());
    let mac = tag.as_ref();
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    bin % 10u32.pow(digits)
}

/// The time step at Unix time `unix_seconds`.
pub fn step_at(unix_seconds: i64) -> u64 {
    u64::try_from(unix_seconds).unwrap_or(0) / STEP_SECONDS
}

/// The step whose code `presented` is, within one step of `now_step` (clock skew), compared in constant time;
/// `None` if it matches none. The caller must then record the step as used, so a code works once.
pub fn verify(secret: &[u8], presented: &str, now_step: u64) -> Option<u64> {
    let presented = presented.trim();
    if presented.len() != DIGITS as usize || !presented.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut found = None;
    for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
        let want = format!(
            "{:0width$}",
            code(Algorithm::Sha1, secret, step, DIGITS),
            width = DIGITS as usize
        );
        if bool::from(want.as_bytes().ct_eq(presented.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// A new random shared secret.
pub fn new_secret() -> Result<[u8; SECRET_BYTES], ring::error::Unspecified> {
    let mut s = [0u8; SECRET_BYTES];
    SystemRandom::new().fill(&mut s)?;
    Ok(s)
}

/// The secret as authenticator apps take it: unpadded base32.
pub fn secret_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI an app scans from a QR code (Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let esc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        esc(issuer),
        esc(account),
        secret_base32(secret),
        esc(issuer)
    )
}

/// The server's key for sealing second-factor secrets at rest (AES-256-GCM): the database alone does not
/// give them away. Kept in a file beside the database, never in it.
pub struct SealKey {
    key: LessSafeKey,
}

/// Why a sealed secret could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("a sealed secret could not be opened (wrong key or altered)")]
pub struct SealError;

impl SealKey {
    /// The key from 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SealError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// A new random key, and its bytes to keep.
    pub fn generate() -> Result<(Self, [u8; 32]), SealError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SealError)?;
        Ok((Self::from_bytes(&bytes)?, bytes))
    }

    /// The key kept in `path` (32 bytes, created with mode 0600 when missing). Several servers on one store
    /// must share this file.
    pub fn load_or_create(path: &std::path::Path) -> std::io::Result<Self> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        match std::fs::read(path) {
            Ok(bytes) => {
                let bytes: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| bad("the second-factor key file must hold exactly 32 bytes"))?;
                Self::from_bytes(&bytes).map_err(|_| bad("unusable second-factor key"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, bytes) = Self::generate().map_err(|_| bad("no randomness"))?;
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path)?;
                std::io::Write::write_all(&mut f, &bytes)?;
                f.sync_all()?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// Seals `secret` for `context` (the token id: a sealed secret moved to another token does not open).
    pub fn seal(&self, context: &[u8], secret: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError)?;
        let mut buf = secret.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buf,
            )
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Opens what [`seal`](Self::seal) made for the same `context`.
    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError)?;
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buf)
            .map_err(|_| SealError)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B: the seeds are ASCII "1234567890" repeated to the hash's length.
    #[test]
    fn rfc6238_test_vectors() {
        let sha1 = b"12345678901234567890".as_slice();
        let sha256 = b"12345678901234567890123456789012".as_slice();
        let sha512 = b"1234567890123456789012345678901234567890123456789012345678901234".as_slice();
        let vectors: [(i64, u32, u32, u32); 6] = [
            (59, 94_287_082, 46_119_246, 90_693_936),
            (1_111_111_109, 7_081_804, 68_084_774, 25_091_201),
            (1_111_111_111, 14_050_471, 67_062_674, 99_943_326),
            (1_234_567_890, 89_005_924, 91_819_424, 93_441_116),
            (2_000_000_000, 69_279_037, 90_698_825, 38_618_901),
            (20_000_000_000, 65_353_130, 77_737_706, 47_863_826),
        ];
        for (t, want1, want256, want512) in vectors {
            let step = step_at(t);
            assert_eq!(code(Algorithm::Sha1, sha1, step, 8), want1, "SHA1 at {t}");
            assert_eq!(
                code(Algorithm::Sha256, sha256, step, 8),
                want256,
                "SHA256 at {t}"
            );
            assert_eq!(
                code(Algorithm::Sha512, sha512, step, 8),
                want512,
                "SHA512 at {t}"
            );
        }
        // RFC 4226 Appendix D (HOTP, 6 digits) for counters 0 and 9.
        assert_eq!(code(Algorithm::Sha1, sha1, 0, 6), 755_224);
        assert_eq!(code(Algorithm::Sha1, sha1, 9, 6), 520_489);
    }

    #[test]
    fn verify_accepts_one_step_of_skew_only() {
        let secret = b"12345678901234567890";
        let now = step_at(1_111_111_111);
        let at = |s: u64| format!("{:06}", code(Algorithm::Sha1, secret, s, 6));
        assert_eq!(verify(secret, &at(now), now), Some(now));
        assert_eq!(verify(secret, &at(now - 1), now), Some(now - 1));
        assert_eq!(verify(secret, &at(now + 1), now), Some(now + 1));
        assert_eq!(verify(secret, &at(now - 2), now), None);
        for bad in ["", "12345", "1234567", "abcdef", " 12345"] {
            assert_eq!(verify(secret, bad, now), None, "{bad}");
        }
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_context() {
        let (key, _) = SealKey::generate().unwrap();
        let (other, _) = SealKey::generate().unwrap();
        let sealed = key.seal(b"token-a", b"secret").unwrap();
        assert_eq!(key.open(b"token-a", &sealed).unwrap(), b"secret");
        assert!(key.open(b"token-b", &sealed).is_err());
        assert!(other.open(b"token-a", &sealed).is_err());
        let mut altered = sealed.clone();
        altered[NONCE_LEN] ^= 1;
        assert!(key.open(b"token-a", &altered).is_err());
        assert!(key.open(b"token-a", b"short").is_err());
        let uri = otpauth_uri("Vouch", "ada lovelace", b"12345678901234567890");
        assert!(uri.starts_with(
            "otpauth://totp/Vouch:ada%20lovelace?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"
        ));
    }
}
