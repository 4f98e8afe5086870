//! Signed checkpoints of the chain head: the anchor that a hash chain alone cannot give.
//!
//! A hash chain kept in one database proves nothing to someone who can rewrite that database: they can drop
//! the newest events and rewrite the recorded head, or edit an event and recompute every later hash. A
//! [`Checkpoint`] states, at a moment, which event was the head (its position and hash) and what the chain said
//! the operators' tokens and the stored policies were (a digest of each, computed by `vouch-store`). Signed with
//! an Ed25519 key that is not in the database and copied to places the database's owner cannot reach, it
//! fixes everything up to that head: an event at or before it can no longer be removed or edited unseen.
//!
//! The encoding is one canonical JSON line, so that a checkpoint file is an append-only log of them and an
//! auditor can check one with their own tools: the signed message is the line without its `sig` member
//! (`jq -cj 'del(.sig)'` reproduces it byte for byte), the public key is an ordinary SubjectPublicKeyInfo
//! (`openssl pkeyutl -verify -rawin` checks it). Pure: signing goes through a [`CheckpointSigner`], the key's
//! storage is the caller's.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use vouch_types::Timestamp;

use crate::{Digest, EventSeq};

/// The `type` member of every checkpoint: names the format (and its version) inside the signed bytes, so a
/// signature over anything else never passes for a checkpoint's.
pub const CHECKPOINT_TYPE: &str = "vouch-audit-checkpoint/1";

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the 32 key bytes follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// An Ed25519 public key that checkpoints are verified with.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The key's id: the first 8 bytes of SHA-256 over its 32 bytes, named in every checkpoint it signs.
    pub fn id(&self) -> KeyId {
        let d: [u8; 32] = Sha256::digest(self.0).into();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        KeyId(id)
    }

    /// The key as a DER SubjectPublicKeyInfo (what `openssl pkey -pubin` reads, once in PEM).
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.0);
        der
    }

    /// A key from a DER SubjectPublicKeyInfo; `None` unless it is an Ed25519 one.
    pub fn from_spki_der(der: &[u8]) -> Option<Self> {
        let key = der.strip_prefix(&SPKI_PREFIX[..])?;
        <[u8; 32]>::try_from(key).ok().map(Self)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

/// A checkpoint key's id (16 lowercase hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for KeyId {
    type Err = CheckpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 8];
        hex::decode_to_slice(lower_hex(s, 16, "key")?, &mut out)
            .map_err(|_| malformed("key: expected 16 lowercase hex digits"))?;
        Ok(Self(out))
    }
}

/// What a checkpoint states: the head of the chain at `at`, and the token and policy state the chain implied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The position of the head event.
    pub seq: EventSeq,
    /// Its hash (which covers every event before it).
    pub hash: Digest,
    /// When the checkpoint was taken.
    pub at: Timestamp,
    /// Digest of the operators' tokens as the chain's token events say they are (`vouch-store` defines it).
    pub tokens: Digest,
    /// Digest of the stored policies as the chain's policy events say they are (`vouch-store` defines it).
    pub policies: Digest,
}

/// Something that signs checkpoints with an Ed25519 key (a key file, an HSM): the key never enters this crate.
pub trait CheckpointSigner {
    /// The public half of the signing key.
    fn public_key(&self) -> PublicKey;
    /// The Ed25519 signature of `message`.
    fn sign(&self, message: &[u8]) -> [u8; 64];
}

/// A checkpoint with the key id and signature that make it evidence.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What is stated.
    pub checkpoint: Checkpoint,
    /// Which key signed it.
    pub key: KeyId,
    /// Ed25519 over [`signed_bytes`](Self::signed_bytes).
    pub signature: [u8; 64],
}

impl fmt::Debug for SignedCheckpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedCheckpoint")
            .field("checkpoint", &self.checkpoint)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Checkpoint {
    /// Signs the checkpoint.
    pub fn sign(self, signer: &dyn CheckpointSigner) -> SignedCheckpoint {
        let key = signer.public_key().id();
        let signature = signer.sign(body(&self, key).as_bytes());
        SignedCheckpoint {
            checkpoint: self,
            key,
            signature,
        }
    }
}

/// The canonical, signed encoding: members in a fixed order, no spaces, values that need no escaping (hex,
/// decimal, RFC 3339). JSON string encoding still goes through serde so that no value can break out.
fn body(c: &Checkpoint, key: KeyId) -> String {
    let s = |v: &dyn fmt::Display| {
        serde_json::to_string(&v.to_string()).unwrap_or_else(|_| String::from("\"\""))
    };
    format!(
        "{{\"type\":{},\"seq\":{},\"hash\":{},\"at\":{},\"tokens\":{},\"policies\":{},\"key\":{}}}",
        s(&CHECKPOINT_TYPE),
        c.seq.0,
        s(&c.hash),
        s(&c.at),
        s(&c.tokens),
        s(&c.policies),
        s(&key),
    )
}

/// A checkpoint line as written, before its values are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    seq: u64,
    hash: String,
    at: String,
    tokens: String,
    policies: String,
    key: String,
    sig: String,
}

impl SignedCheckpoint {
    /// The bytes the signature covers: the canonical line without its `sig` member.
    pub fn signed_bytes(&self) -> Vec<u8> {
        body(&self.checkpoint, self.key).into_bytes()
    }

    /// The checkpoint as one line of JSON (no newline).
    pub fn to_line(&self) -> String {
        let mut line = body(&self.checkpoint, self.key);
        line.pop();
        line.push_str(",\"sig\":\"");
        line.push_str(&hex::encode(self.signature));
        line.push_str("\"}");
        line
    }

    /// Reads a line that [`to_line`](Self::to_line) wrote (surrounding whitespace ignored). Only the form is
    /// checked here; [`verify`](Self::verify) says whether it is genuine.
    pub fn parse(line: &str) -> Result<Self, CheckpointError> {
        let l: Line = serde_json::from_str(line.trim())
            .map_err(|e| malformed(&format!("not a checkpoint: {e}")))?;
        if l.kind != CHECKPOINT_TYPE {
            return Err(malformed(&format!(
                "type is `{}`, not `{CHECKPOINT_TYPE}`",
                l.kind
            )));
        }
        let digest = |what: &str, v: &str| -> Result<Digest, CheckpointError> {
            let mut d = [0u8; 32];
            hex::decode_to_slice(lower_hex(v, 64, what)?, &mut d)
                .map_err(|_| malformed(&format!("{what}: expected 64 lowercase hex digits")))?;
            Ok(Digest(d))
        };
        let mut signature = [0u8; 64];
        hex::decode_to_slice(lower_hex(&l.sig, 128, "sig")?, &mut signature)
            .map_err(|_| malformed("sig: expected 128 lowercase hex digits"))?;
        Ok(Self {
            checkpoint: Checkpoint {
                seq: EventSeq(l.seq),
                hash: digest("hash", &l.hash)?,
                at: l.at.parse().map_err(|e| malformed(&format!("at: {e}")))?,
                tokens: digest("tokens", &l.tokens)?,
                policies: digest("policies", &l.policies)?,
            },
            key: l.key.parse()?,
            signature,
        })
    }

    /// Checks that `key` signed exactly this checkpoint.
    pub fn verify(&self, key: &PublicKey) -> Result<(), CheckpointError> {
        if self.key != key.id() {
            return Err(CheckpointError::OtherKey {
                found: self.key,
                expected: key.id(),
            });
        }
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.0)
            .verify(&self.signed_bytes(), &self.signature)
            .map_err(|_| CheckpointError::BadSignature)
    }
}

/// Why a checkpoint line is not evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The line is not a checkpoint in this format.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// It names another key than the one it is checked with: it cannot be verified with this key.
    #[error("signed by key {found}, not by the given key {expected}: cannot be verified")]
    OtherKey {
        /// The key id the line names.
        found: KeyId,
        /// The id of the key it was checked with.
        expected: KeyId,
    },
    /// The signature does not match the content: the checkpoint was forged or edited.
    #[error("bad signature: the checkpoint was forged or edited")]
    BadSignature,
}

fn malformed(why: &str) -> CheckpointError {
    CheckpointError::Malformed(why.to_owned())
}

/// `s` if it is exactly `len` lowercase hex digits: the canonical form is the only one accepted.
fn lower_hex<'a>(s: &'a str, len: usize, what: &str) -> Result<&'a str, CheckpointError> {
    if s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(s)
    } else {
        Err(malformed(&format!(
            "{what}: expected {len} lowercase hex digits"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::KeyPair as _;

    struct Key(ring::signature::Ed25519KeyPair);

    impl Key {
        fn new(seed: u8) -> Self {
            Self(ring::signature::Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap())
        }
    }

    impl CheckpointSigner for Key {
        fn public_key(&self) -> PublicKey {
            PublicKey(self.0.public_key().as_ref().try_into().unwrap())
        }
        fn sign(&self, message: &[u8]) -> [u8; 64] {
            self.0.sign(message).as_ref().try_into().unwrap()
        }
    }

    fn sample() -> Checkpoint {
        Checkpoint {
            seq: EventSeq(42),
            hash: Digest([0xab; 32]),
            at: "2025-03-04T05:06:07.123456Z".parse().unwrap(),
            tokens: Digest([1; 32]),
            policies: Digest([2; 32]),
        }
    }

    #[test]
    fn a_signed_checkpoint_round_trips_and_verifies() {
        let key = Key::new(7);
        let signed = sample().sign(&key);
        let line = signed.to_line();
        assert!(!line.contains('\n') && !line.contains(' '), "{line}");
        let back = SignedCheckpoint::parse(&line).unwrap();
        assert_eq!(back, signed);
        back.verify(&key.public_key()).unwrap();
        // The signed bytes are the line without `sig`, members in order: what `jq -cj 'del(.sig)'` prints.
        let body = String::from_utf8(back.signed_bytes()).unwrap();
        assert!(line.starts_with(&body[..body.len() - 1]), "{line}\n{body}");
        assert!(body.starts_with("{\"type\":\"vouch-audit-checkpoint/1\",\"seq\":42,"));
        assert!(body.ends_with(&format!("\"key\":\"{}\"}}", key.public_key().id())));
    }

    #[test]
    fn an_edited_checkpoint_fails_its_signature() {
        let key = Key::new(7);
        let line = sample().sign(&key).to_line();
        for edited in [
            line.replace("\"seq\":42", "\"seq\":41"),
            line.replace(&"ab".repeat(32), &"ac".repeat(32)),
            line.replace("05:06:07.123456", "05:06:08.123456"),
            line.replace(&"01".repeat(32), &"03".repeat(32)),
        ] {
            assert_ne!(edited, line);
            let c = SignedCheckpoint::parse(&edited).unwrap();
            assert_eq!(
                c.verify(&key.public_key()),
                Err(CheckpointError::BadSignature)
            );
        }
    }

    #[test]
    fn another_key_is_named_not_trusted() {
        let (key, other) = (Key::new(7), Key::new(8));
        let signed = sample().sign(&other);
        assert_eq!(
            signed.verify(&key.public_key()),
            Err(CheckpointError::OtherKey {
                found: other.public_key().id(),
                expected: key.public_key().id()
            })
        );
        // Renaming the key in the line does not help: the signature is the other key's.
        let renamed = signed.to_line().replace(
            &other.public_key().id().to_string(),
            &key.public_key().id().to_string(),
        );
        assert_eq!(
            SignedCheckpoint::parse(&renamed)
                .unwrap()
                .verify(&key.public_key()),
            Err(CheckpointError::BadSignature)
        );
    }

    #[test]
    fn malformed_lines_are_refused_by_name() {
        let line = sample().sign(&Key::new(7)).to_line();
        for (bad, why) in [
            ("", "not a checkpoint"),
            ("{\"seq\":1}", "not a checkpoint"),
            (&*line.replace("}", ",\"extra\":1}"), "unknown field"),
            (
                &*line.replace("vouch-audit-checkpoint/1", "vouch-audit-checkpoint/9"),
                "type is",
            ),
            (&*line.replace(&"ab".repeat(32), &"AB".repeat(32)), "hash"),
            (
                &*line.replace("\"seq\":42", "\"seq\":-1"),
                "not a checkpoint",
            ),
        ] {
            let e = SignedCheckpoint::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_public_key_is_a_standard_spki() {
        let k = Key::new(9).public_key();
        let der = k.to_spki_der();
        assert_eq!(der.len(), 44);
        assert_eq!(PublicKey::from_spki_der(&der), Some(k));
        assert_eq!(PublicKey::from_spki_der(&der[1..]), None);
        assert_eq!(k.id().to_string().len(), 16);
        assert_eq!(k.id().to_string().parse::<KeyId>().unwrap(), k.id());
    }
}
