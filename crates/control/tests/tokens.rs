//! Operators' tokens and second factors over a real SQLite store: what the API's middleware and MFA routes
//! and the CLI's `vouch token` call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use vouch_control::mfa::{self, CodeRefused, EnrollRefused};
use vouch_control::tokens::{self, TokenRefused};
use vouch_control::totp::{self, Algorithm, SealKey};
use vouch_store::Store;
use vouch_types::{Actor, Clock, ManualClock, Role, Timestamp};

fn code_at(secret: &[u8], now: Timestamp) -> String {
    let step = totp::step_at(now.unix_micros() / 1_000_000);
    format!(
        "{:06}",
        totp::code(Algorithm::Sha1, secret, step, totp::DIGITS)
    )
}

/// One try of `code` for `token`'s factor, as `test`.
async fn try_code(
    store: &dyn Store,
    seal: &SealKey,
    token: vouch_types::TokenId,
    code: &str,
    now: Timestamp,
    require_confirmed: bool,
) -> Result<(vouch_store::MfaRecord, u64), CodeRefused> {
    let actor = Actor::System("test".into());
    mfa::check_code(
        store,
        seal,
        token,
        actor,
        code,
        None,
        now,
        require_confirmed,
    )
    .await
}

#[tokio::test]
async fn the_first_admin_is_bootstrapped_once_and_tokens_authenticate_until_revoked() {
    let (_dir, store) = common::store();
    let clock = ManualClock::new(Timestamp::from_unix_micros(common::NOW_MICROS));
    let admin = tokens::bootstrap_admin(&store, &clock)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokens::bootstrap_admin(&store, &clock)
            .await
            .unwrap()
            .is_none()
    );
    let record = tokens::authenticate(&store, clock.now(), admin.expose())
        .await
        .unwrap();
    assert_eq!((record.id, record.role), (admin.id(), Role::Admin));

    // Another secret under the same id, a malformed text: the same refusal.
    // (The last character changed to another one: a fixed replacement equals it one time in 32.)
    let text = admin.expose();
    let last = if text.ends_with('0') { "1" } else { "0" };
    let forged = format!("{}{last}", &text[..text.len() - 1]);
    for text in [forged.as_str(), "vouch_nope", ""] {
        assert!(matches!(
            tokens::authenticate(&store, clock.now(), text).await,
            Err(TokenRefused::Invalid)
        ));
    }

    // An expiring token works until its expiry; a revoked one no more.
    let expires = clock.now().plus_micros(60_000_000);
    let (_, reader) = tokens::issue(
        &store,
        &clock,
        Actor::System("test".into()),
        "ada".parse().unwrap(),
        Role::Auditor,
        Some(expires),
        None,
    )
    .await
    .unwrap();
    tokens::authenticate(&store, clock.now(), reader.expose())
        .await
        .unwrap();
    assert!(matches!(
        tokens::authenticate(&store, expires.plus_micros(1), reader.expose()).await,
        Err(TokenRefused::Invalid)
    ));
    store
        .revoke_token(admin.id(), common::change("test"))
        .await
        .unwrap();
    assert!(matches!(
        tokens::authenticate(&store, clock.now(), admin.expose()).await,
        Err(TokenRefused::Invalid)
    ));
}

#[tokio::test]
async fn a_second_factor_is_enrolled_under_a_permit_confirmed_once_and_codes_are_not_replayed() {
    let (_dir, store) = common::store();
    let clock = ManualClock::new(Timestamp::from_unix_micros(common::NOW_MICROS));
    let seal = SealKey::generate().unwrap().0;
    let actor = Actor::System("test".into());
    let (plain, _) = tokens::issue(
        &store,
        &clock,
        actor.clone(),
        "ada".parse().unwrap(),
        Role::Admin,
        None,
        None,
    )
    .await
    .unwrap();
    // Holding no factor is not a permit to enroll one.
    assert!(matches!(
        mfa::enroll(&store, &seal, plain.id, false, common::change("ada")).await,
        Err(EnrollRefused::NeedsPermit)
    ));
    assert!(matches!(
        try_code(&store, &seal, plain.id, "123456", clock.now(), true).await,
        Err(CodeRefused::NoFactor)
    ));

    mfa::allow_enrollment(&store, &clock, plain.id, actor.clone(), None)
        .await
        .unwrap();
    let secret = mfa::enroll(&store, &seal, plain.id, false, common::change("ada"))
        .await
        .unwrap();
    let code = code_at(&secret, clock.now());
    // Not confirmed yet: a use that needs a confirmed factor refuses it.
    assert!(matches!(
        try_code(&store, &seal, plain.id, &code, clock.now(), true).await,
        Err(CodeRefused::NotConfirmed)
    ));
    let (rec, step) = try_code(&store, &seal, plain.id, &code, clock.now(), false)
        .await
        .unwrap();
    mfa::confirm(&store, rec, step, common::change("ada"))
        .await
        .unwrap();
    // The same code again is a replay.
    assert!(matches!(
        try_code(&store, &seal, plain.id, &code, clock.now(), true).await,
        Err(CodeRefused::Reused)
    ));
    // Replacing a confirmed factor needs a current code (the permit was used up by confirming).
    assert!(matches!(
        mfa::enroll(&store, &seal, plain.id, false, common::change("ada")).await,
        Err(EnrollRefused::NeedsCurrentCode)
    ));
    clock.advance_micros(i64::try_from(totp::STEP_SECONDS).unwrap() * 1_000_000);
    let next = code_at(&secret, clock.now());
    try_code(&store, &seal, plain.id, &next, clock.now(), true)
        .await
        .unwrap();
    assert!(matches!(
        try_code(&store, &seal, plain.id, "000000", clock.now(), true).await,
        Err(CodeRefused::Wrong)
    ));
    let wrong = store.get_mfa(plain.id).await.unwrap().unwrap();
    assert_eq!(wrong.failures, 1, "a wrong code is counted in the store");
}
