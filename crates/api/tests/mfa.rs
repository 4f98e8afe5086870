//! Second factors under attack, through the API in-process over a real SQLite store: a brute-force loop that
//! cannot succeed, every wrong code on record, codes read only where they matter, per-source throttling, and
//! enrollment that needs a fresh confirmation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use common::Harness;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vouch_api::totp::{Algorithm, code, step_at};
use vouch_store::MFA_MAX_FAILURES;
use vouch_types::{Actor, Clock, Role};

fn totp(secret: &[u8], step: u64) -> String {
    format!("{:06}", code(Algorithm::Sha1, secret, step, 6))
}

impl Harness {
    fn step(&self) -> u64 {
        step_at(self.clock.now().unix_micros() / 1_000_000)
    }

    /// A request from `from` (as a socket would give it) with an optional one-time code.
    async fn from(
        &self,
        from: &str,
        method: Method,
        uri: &str,
        token: &str,
        otp: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(code) = otp {
            req = req.header("X-Vouch-OTP", code);
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let mut req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .unwrap();
        let addr: SocketAddr = format!("{from}:40000").parse().unwrap();
        req.extensions_mut().insert(ConnectInfo(addr));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let retry = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, retry, v)
    }

    /// Enrolls and confirms a factor for `token`; the secret.
    async fn enrolled(&self, token: &str) -> Vec<u8> {
        let (status, _, v) = self
            .from(
                "127.0.0.1",
                Method::POST,
                "/api/v1/mfa/totp",
                token,
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let secret = data_encoding::BASE32_NOPAD
            .decode(v["secret"].as_str().unwrap().as_bytes())
            .unwrap();
        let (status, _, v) = self
            .from(
                "127.0.0.1",
                Method::POST,
                "/api/v1/mfa/totp/confirm",
                token,
                None,
                Some(json!({"code": totp(&secret, self.step())})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        secret
    }

    async fn events(&self, action: &str) -> Vec<Value> {
        let (status, log) = self
            .call(
                Method::GET,
                "/api/v1/audit/events?limit=1000",
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == action)
            .cloned()
            .collect()
    }
}

fn token_id(token: &str) -> &str {
    token.split('_').nth(1).unwrap()
}

/// 10^5 guesses at a privileged route: the first ten are checked and refused, then the factor is locked —
/// even the right code is refused — until an administrator resets it. Each checked guess is an `mfa.failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brute_force_loop_cannot_succeed_and_leaves_mfa_failed_events() {
    let h = Harness::new().await;
    let victim = h.token(Role::Admin, None).await;
    let secret = h.enrolled(&victim).await;
    // The administrator who will reset it enrolls now (the first start's permit lasts a day; the loop
    // takes 10^5 simulated seconds).
    let admin_secret = h.enrolled(&h.admin).await;
    let target = format!("/api/v1/tokens/{}/mfa/reset", token_id(&victim));
    let (mut refused_401, mut refused_429, mut refused_403, mut right_codes_sent) = (0, 0, 0, 0);
    for n in 0u32..100_000 {
        // A second passes per guess, so every backoff runs out during the loop.
        h.clock.advance_micros(1_000_000);
        let valid: Vec<String> = (h.step() - 1..=h.step() + 1)
            .map(|s| totp(&secret, s))
            .collect();
        // The guesser is unlucky until the lock (a guess that happened to be right would succeed, with a
        // chance of 3 in 10^6 each); after it, every 1,000th guess is the right code, and is refused too.
        let guess = if n > MFA_MAX_FAILURES && n % 1_000 == 0 {
            right_codes_sent += 1;
            valid[1].clone()
        } else {
            let g = format!("{n:06}");
            if valid.contains(&g) {
                format!("{:06}", n + 500_000)
            } else {
                g
            }
        };
        // From two addresses: the per-token limit holds whichever address a guess comes from.
        let from = if n % 100 == 0 {
            "127.0.0.3"
        } else {
            "127.0.0.2"
        };
        let (status, retry, v) = h
            .from(from, Method::POST, &target, &victim, Some(&guess), None)
            .await;
        match status {
            StatusCode::UNAUTHORIZED => refused_401 += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(retry.is_some_and(|s| s.parse::<u64>().unwrap() >= 1), "{v}");
                refused_429 += 1;
            }
            StatusCode::FORBIDDEN => {
                assert_eq!(v["type"], "urn:vouch:problem:mfa-locked", "{v}");
                refused_403 += 1;
            }
            s => panic!("guess {n} ({guess}) got {s}: {v}"),
        }
    }
    println!(
        "100000 guesses: {refused_401} checked and wrong (401), {refused_429} throttled (429), \
         {refused_403} locked (403), {right_codes_sent} of them the right code"
    );
    assert_eq!(
        refused_401, MFA_MAX_FAILURES as usize,
        "only the first ten are checked"
    );
    assert!(right_codes_sent >= 99);
    let failed = h.events("mfa.failed").await;
    assert_eq!(failed.len(), MFA_MAX_FAILURES as usize);
    assert!(
        failed.iter().any(|e| {
            let text = e.to_string();
            text.contains("\"locked\":true") || text.contains("\\\"locked\\\":true")
        }),
        "the lock is on record: {failed:?}"
    );
    let (status, body) = h.call(Method::GET, "/metrics", Some(&h.admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    assert!(
        text.contains("vouch_mfa_codes_total{outcome=\"wrong\"} 10"),
        "{text}"
    );

    // Even a fresh right code stays refused while locked; an administrator's step-up reset unlocks it.
    let (status, _, _) = h
        .from(
            "127.0.0.9",
            Method::POST,
            &target,
            &victim,
            Some(&totp(&secret, h.step())),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, v) = h
        .from(
            "127.0.0.9",
            Method::POST,
            &target,
            &h.admin,
            Some(&totp(&admin_secret, h.step())),
            Some(json!({"reason": "locked out by a guessing attack; the holder still has the phone"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    h.clock.advance_micros(30_000_000);
    let (status, _, v) = h
        .from(
            "127.0.0.9",
            Method::POST,
            &format!("/api/v1/tokens/{}/mfa/reset", token_id(&h.admin)),
            &victim,
            Some(&totp(&secret, h.step())),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the holder's own factor works again: {v}"
    );
    // The first start's permit, the test token's, the administrator's reset, and the last one.
    assert_eq!(h.events("mfa.reset").await.len(), 4);
}

/// Only the routes where a second factor matters read the header: elsewhere a code is ignored, so a
/// read-only token has no oracle and cannot lock its owner out.
#[tokio::test]
async fn codes_are_read_only_where_they_matter() {
    let h = Harness::new().await;
    let auditor = h.token(Role::Auditor, None).await;
    let _ = h.enrolled(&auditor).await;
    for n in 0..50 {
        let (status, _, v) = h
            .from(
                "127.0.0.4",
                Method::GET,
                "/api/v1/devices",
                &auditor,
                Some(&format!("{n:06}")),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    assert!(h.events("mfa.failed").await.is_empty());
    let rec = h
        .store
        .get_mfa(token_id(&auditor).parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.failures, 0);
}

/// One address may present at most 20 wrong codes per ten minutes, whatever tokens it holds; another
/// address is still served.
#[tokio::test]
async fn a_source_that_keeps_guessing_waits() {
    let h = Harness::new().await;
    let mut tokens = Vec::new();
    for _ in 0..7 {
        let t = h.token(Role::Operator, None).await;
        h.enrolled(&t).await;
        tokens.push(t);
    }
    let revoke = "/api/v1/certificates/00/revoke";
    let mut statuses = Vec::new();
    for i in 0..vouch_api::mfa::SOURCE_FAILURES + 1 {
        let t = &tokens[i as usize % tokens.len()];
        let (status, retry, _) = h
            .from("127.0.0.5", Method::POST, revoke, t, Some("000000"), None)
            .await;
        statuses.push((status, retry));
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|(s, _)| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    let (last, retry) = &statuses[20];
    assert_eq!(*last, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry.as_ref().unwrap().parse::<u64>().unwrap() > 500);
    let (status, _, _) = h
        .from(
            "127.0.0.6",
            Method::POST,
            revoke,
            &tokens[6],
            Some("000000"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "another address is still checked"
    );
    assert_eq!(h.events("mfa.failed").await.len(), 21);
}

/// A token that merely holds no factor cannot enroll one: an administrator's step-up reset (or the host's
/// command line) allows it; replacing a confirmed factor needs a current code from it.
#[tokio::test]
async fn enrolling_needs_a_fresh_confirmation() {
    let h = Harness::new().await;
    let (record, secret) = vouch_api::auth::issue(
        &*h.store,
        &*h.clock,
        Actor::System("test".into()),
        "mallory".to_owned().try_into().unwrap(),
        Role::Operator,
        None,
        None,
    )
    .await
    .unwrap();
    let stolen = secret.expose().to_owned();
    let (status, _, v) = h
        .from(
            "127.0.0.7",
            Method::POST,
            "/api/v1/mfa/totp",
            &stolen,
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("administrator"),
        "{v}"
    );
    // The reset is privileged: an admin token alone may not.
    let reset = format!("/api/v1/tokens/{}/mfa/reset", record.id);
    let (status, _, v) = h
        .from("127.0.0.7", Method::POST, &reset, &h.admin, None, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("X-Vouch-OTP"), "{v}");
    let admin_secret = h.enrolled(&h.admin).await;
    let (status, _, v) = h
        .from(
            "127.0.0.7",
            Method::POST,
            &reset,
            &h.admin,
            Some(&totp(&admin_secret, h.step())),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let first = h.enrolled(&stolen).await;
    // Replacing it: without a code, refused; with a current one, allowed.
    h.clock.advance_micros(30_000_000);
    let (status, _, v) = h
        .from(
            "127.0.0.7",
            Method::POST,
            "/api/v1/mfa/totp",
            &stolen,
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, _, v) = h
        .from(
            "127.0.0.7",
            Method::POST,
            "/api/v1/mfa/totp",
            &stolen,
            Some(&totp(&first, h.step())),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(
        h.events("mfa.reset").await.len(),
        2,
        "the first start's permit, and this reset"
    );
}
