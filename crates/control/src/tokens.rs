//! Operators' API tokens: how they are minted, stored and checked, for the API's middleware and the CLI's
//! `vouch token` alike.
//!
//! A token reads `vouch_<id>_<secret>`: the id (8 random bytes, hex) names the stored record and may be shown
//! and logged; the secret (32 random bytes, hex) is shown once when issued and stored only as its SHA-256. A
//! fast hash is enough because the secret has 256 bits of entropy: there is nothing to brute-force. The
//! comparison is constant-time. The prefix lets secret scanners recognise a leaked token.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use vouch_store::{Change, Store, StoreError, TokenRecord};
use vouch_types::{Actor, Clock, OperatorName, Reason, Role, Timestamp, TokenId};

const PREFIX: &str = "vouch_";

/// A token's full text, as handed to its holder once. Never logged: `Debug` shows only the id.
pub struct SecretToken {
    id: TokenId,
    text: String,
}

impl SecretToken {
    /// The token's public id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// The whole token, to show to its holder once.
    pub fn expose(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretToken({}, secret redacted)", self.id)
    }
}

/// SHA-256 of a secret (a token's, or a one-time code remembered by a step-up session).
pub(crate) fn hash_secret(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Mints a token for `operator` with `role`, valid until `expires_at` if given; returns the record to store
/// and the secret to hand over.
pub fn mint(
    operator: OperatorName,
    role: Role,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> (TokenRecord, SecretToken) {
    let mut rng = rand::rng();
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let id = TokenId::from_bytes(id);
    let secret_hex = hex::encode(secret);
    let record = TokenRecord {
        id,
        operator,
        role,
        secret_hash: hash_secret(secret_hex.as_bytes()),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    (
        record,
        SecretToken {
            id,
            text: format!("{PREFIX}{id}_{secret_hex}"),
        },
    )
}

/// Issues a token and stores it, logging the issue as `actor`.
pub async fn issue(
    store: &dyn Store,
    clock: &dyn Clock,
    actor: Actor,
    operator: OperatorName,
    role: Role,
    expires_at: Option<Timestamp>,
    reason: Option<Reason>,
) -> Result<(TokenRecord, SecretToken), StoreError> {
    let now = clock.now();
    let (record, secret) = mint(operator, role, now, expires_at);
    store
        .create_token(
            record.clone(),
            Change {
                actor,
                reason,
                at: now,
            },
        )
        .await?;
    Ok((record, secret))
}

/// On a store with no tokens at all, issues the first admin token, allowed to enroll its second factor for a
/// day ([`crate::mfa::allow_enrollment`]: nobody else could confirm it); `None` if any token exists.
pub async fn bootstrap_admin(
    store: &dyn Store,
    clock: &dyn Clock,
) -> Result<Option<SecretToken>, StoreError> {
    if !store.list_tokens().await?.is_empty() {
        return Ok(None);
    }
    let name = OperatorName::try_from("initial admin".to_owned())?;
    let reason = Reason::try_from("first start: bootstrap admin token".to_owned())?;
    let (record, secret) = issue(
        store,
        clock,
        Actor::System("bootstrap".into()),
        name,
        Role::Admin,
        None,
        Some(reason),
    )
    .await?;
    crate::mfa::allow_enrollment(
        store,
        clock,
        record.id,
        Actor::System("bootstrap".into()),
        Reason::try_from("first start: the first admin may enroll a second factor".to_owned()).ok(),
    )
    .await?;
    Ok(Some(secret))
}

/// Splits `vouch_<id>_<secret>`; `None` if the text is not shaped like a token.
fn parse(text: &str) -> Option<(TokenId, &str)> {
    let rest = text.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 {
        return None;
    }
    Some((id.parse().ok()?, secret))
}

/// Why a presented token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenRefused {
    /// Malformed, unknown, wrong secret, expired or revoked: one answer for all, so that a caller learns
    /// nothing from it.
    #[error("the token is invalid, expired or revoked")]
    Invalid,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a presented token at `now`; its stored record if it is well formed, known, matches and is usable.
pub async fn authenticate(
    store: &dyn Store,
    now: Timestamp,
    text: &str,
) -> Result<TokenRecord, TokenRefused> {
    let (id, secret) = parse(text).ok_or(TokenRefused::Invalid)?;
    let record = store.get_token(id).await?.ok_or(TokenRefused::Invalid)?;
    let matches: bool = hash_secret(secret.as_bytes())
        .ct_eq(&record.secret_hash)
        .into();
    if !matches || !record.is_usable(now) {
        return Err(TokenRefused::Invalid);
    }
    Ok(record)
}

/// How long a verified one-time code keeps working for its token (a step-up session, as `sudo` keeps one):
/// an operator revoking a batch of certificates types one code, not one per 30-second step.
pub const STEP_UP_MICROS: i64 = 5 * 60 * 1_000_000;

/// Per token: the code that last stepped it up (hashed) and until when it counts (per server: another node
/// asks for a fresh code).
#[derive(Default)]
pub struct StepUps(std::sync::Mutex<std::collections::HashMap<TokenId, ([u8; 32], Timestamp)>>);

impl StepUps {
    /// Remembers that `code` stepped `token` up at `now`.
    pub fn grant(&self, token: TokenId, code: &str, now: Timestamp) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|_, (_, until)| *until > now);
            m.insert(
                token,
                (
                    hash_secret(code.trim().as_bytes()),
                    now.plus_micros(STEP_UP_MICROS),
                ),
            );
        }
    }

    /// Ends `token`'s session (its second factor was re-enrolled).
    pub fn end(&self, token: TokenId) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&token);
        }
    }

    /// Whether `code` opened `token`'s session and the session still runs at `now`.
    pub fn holds(&self, token: TokenId, code: &str, now: Timestamp) -> bool {
        let Ok(m) = self.0.lock() else { return false };
        m.get(&token).is_some_and(|(h, until)| {
            now < *until && bool::from(h.ct_eq(&hash_secret(code.trim().as_bytes())))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn minted_tokens_parse_and_hash() {
        let (record, secret) = mint("ada".parse().unwrap(), Role::Admin, Timestamp::EPOCH, None);
        let (id, s) = parse(secret.expose()).unwrap();
        assert_eq!(id, record.id);
        assert_eq!(hash_secret(s.as_bytes()), record.secret_hash);
        assert!(!format!("{secret:?}").contains(s));
        assert!(!format!("{record:?}").contains(&hex::encode(record.secret_hash)));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for t in [
            "",
            "vouch_",
            "vouch_abc_def",
            "token",
            &format!("vouch_0011223344556677_{}", "a".repeat(63)),
        ] {
            assert!(parse(t).is_none(), "{t}");
        }
    }
}
