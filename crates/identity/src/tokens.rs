//! One-time enrollment tokens: `vouch-enroll_<id>_<secret>`, bound to one device, single use, expiring.
//! The secret (256 bits) is stored only as its SHA-256 and compared in constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vouch_store::EnrollmentTokenRecord;
use vouch_types::{DeviceId, Timestamp, TokenId};

const PREFIX: &str = "vouch-enroll_";

/// An enrollment token's full text, shown once. `Debug` shows only the id.
pub struct EnrollmentSecret {
    id: TokenId,
    text: String,
}

impl EnrollmentSecret {
    /// The token's public id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The whole token, to hand to the device or its installer once.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for EnrollmentSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EnrollmentSecret({}, secret redacted)", self.id)
    }
}

/// Issues a one-time enrollment token for `device`, valid for `ttl_hours`, and stores it (logged as `actor`).
/// No CA is needed: the token only authorises a later enrollment.
pub async fn issue_enrollment_token(
    store: &dyn vouch_store::Store,
    now: Timestamp,
    device: DeviceId,
    ttl_hours: u32,
    actor: vouch_types::Actor,
    reason: Option<vouch_types::Reason>,
) -> Result<(EnrollmentTokenRecord, EnrollmentSecret), vouch_store::StoreError> {
    let (record, secret) = mint(
        device,
        now,
        now.plus_micros(i64::from(ttl_hours.max(1)) * 3_600_000_000),
    );
    store
        .create_enrollment_token(
            record.clone(),
            vouch_store::Change {
                actor,
                reason,
                at: now,
            },
        )
        .await?;
    Ok((record, secret))
}

/// Mints a token for `device`, valid until `expires_at`.
pub(crate) fn mint(
    device: DeviceId,
    now: Timestamp,
    expires_at: Timestamp,
) -> (EnrollmentTokenRecord, EnrollmentSecret) {
    let mut rng = rand::rng();
    let (mut id, mut secret) = ([0u8; 8], [0u8; 32]);
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = TokenId::from_bytes(id);
    let secret_hex = hex::encode(secret);
    let record = EnrollmentTokenRecord {
        id,
        device_id: device,
        secret_hash: Sha256::digest(secret_hex.as_bytes()).into(),
        created_at: now,
        expires_at,
        used_at: None,
    };
    (
        record,
        EnrollmentSecret {
            id,
            text: format!("{PREFIX}{id}_{secret_hex}"),
        },
    )
}

/// Splits a presented token into its id and secret; `None` if it is not shaped like one.
pub fn parse_enrollment_secret(text: &str) -> Option<(TokenId, &str)> {
    let (id, secret) = text.strip_prefix(PREFIX)?.split_once('_')?;
    (secret.len() == 64).then_some(())?;
    Some((id.parse().ok()?, secret))
}

/// Whether `secret` is the one whose hash the record holds (constant time).
pub(crate) fn secret_matches(record: &EnrollmentTokenRecord, secret: &str) -> bool {
    let h: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
    h.ct_eq(&record.secret_hash).into()
}
