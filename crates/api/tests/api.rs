//! The API in-process (tower `oneshot`) over a real SQLite store: authentication and authorization on every
//! route, bad input answered with clear problems that change nothing, and the device lifecycle end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::Harness;
use serde_json::{Value, json};
use tower::ServiceExt;
use vouch_api::{Access, Limits, routes};
use vouch_types::{Actor, ManualClock, Role, Timestamp};

impl Harness {
    /// Devices and events in the store: what "changes nothing" is checked against.
    async fn footprint(&self) -> (usize, usize) {
        let devices = self
            .store
            .list_devices(&vouch_store::DeviceQuery {
                limit: 1000,
                ..Default::default()
            })
            .await;
        (
            devices.unwrap().devices.len(),
            self.store.events(None, 1000).await.unwrap().len(),
        )
    }
}

trait NowTs {
    fn now_ts(&self) -> Timestamp;
}
impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        vouch_types::Clock::now(self)
    }
}

fn concrete(path: &str) -> String {
    let id = if path.starts_with("/api/v1/tokens") {
        "0011223344556677"
    } else if path.starts_with("/api/v1/certificates") {
        "1234"
    } else if path.starts_with("/pki/ocsp") {
        "MAA="
    } else {
        "0190f5a2-7c1e-7000-8000-000000000001"
    };
    path.replace("{id}", id).replace("{*request}", id)
}

fn assert_problem(v: &Value, status: StatusCode) {
    assert_eq!(v["status"], status.as_u16(), "{v}");
    assert!(
        v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:vouch:problem:"),
        "{v}"
    );
    assert!(!v["detail"].as_str().unwrap().is_empty(), "{v}");
}

#[tokio::test]
async fn every_route_is_authenticated_and_authorized() {
    let h = Harness::new().await;
    let revoked = h.token(Role::Admin, None).await;
    let revoked_id: vouch_types::TokenId = revoked[6..22].parse().unwrap();
    let change = vouch_store::Change {
        actor: Actor::System("test".into()),
        reason: None,
        at: h.clock.now_ts(),
    };
    h.store.revoke_token(revoked_id, change).await.unwrap();
    let expired = h.token(Role::Admin, Some(1_000)).await;
    h.clock.advance_micros(2_000);
    let last = if h.admin.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{last}", &h.admin[..h.admin.len() - 1]);
    let by_role = [
        (Role::Admin, h.admin.clone()),
        (Role::Operator, h.token(Role::Operator, None).await),
        (Role::Auditor, h.token(Role::Auditor, None).await),
        (Role::Gateway, h.token(Role::Gateway, None).await),
    ];

    let mut public = Vec::new();
    let mut checked = 0;
    for r in routes() {
        let uri = concrete(r.path);
        let body = matches!(r.method, Method::POST | Method::PATCH).then(|| json!({}));
        let Access::Requires(permission) = r.access else {
            let (status, _) = h.call(r.method.clone(), &uri, None, body).await;
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{} {} is public",
                r.method,
                r.path
            );
            public.push(r.path);
            continue;
        };
        for (what, token) in [
            ("no token", None),
            ("garbage", Some("not-a-token")),
            ("tampered secret", Some(tampered.as_str())),
            ("revoked", Some(revoked.as_str())),
            ("expired", Some(expired.as_str())),
        ] {
            let (status, v) = h.call(r.method.clone(), &uri, token, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {} with {what}: {v}",
                r.method,
                r.path
            );
            assert_problem(&v, status);
        }
        for (role, token) in &by_role {
            let (status, v) = h
                .call(r.method.clone(), &uri, Some(token), body.clone())
                .await;
            // Without a one-time code: the engine's built-in role policies say what each role may do.
            let allowed = h
                .decisions
                .engine()
                .decide_operator(&vouch_policy::OperatorRequest {
                    token: vouch_types::TokenId::from_bytes([0; 8]),
                    name: "x".into(),
                    role: *role,
                    permission,
                    now: h.clock.now_ts(),
                    mfa: false,
                })
                .allowed;
            if allowed {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{} {} as {role}: {status} {v}",
                    r.method,
                    r.path
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{} {} as {role}: {v}",
                    r.method,
                    r.path
                );
                assert_problem(&v, status);
            }
        }
        checked += 1;
    }
    assert_eq!(
        public,
        [
            "/healthz",
            "/readyz",
            "/pki/crl",
            "/pki/ocsp",
            "/pki/ocsp/{*request}"
        ],
        "only the probes and revocation publishing are public"
    );
    assert!(checked >= 12, "walked {checked} protected routes");
}

#[tokio::test]
async fn device_lifecycle_end_to_end() {
    let h = Harness::new().await;
    let op = h.token(Role::Operator, None).await;
    let (status, d) = h
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&op),
            Some(json!({
                "class": "plc",
                "identifiers": {"mac": "00:1D:9C:C7:B0:70", "serial": "1756-ENBT-0001", "ips": ["10.0.0.7"]},
                "vendor": "Rockwell Automation", "model": "1756-ENBT/A", "firmware": "3.2",
                "zone": "plant-1/line-3", "labels": {"site": "berlin"}, "groups": ["plcs"],
                "reason": "commissioning line 3"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(d["state"], "onboarding");
    assert_eq!(d["managed"], false);
    assert_eq!(d["identifiers"]["mac"], "00:1d:9c:c7:b0:70");
    let id = d["id"].as_str().unwrap().to_owned();

    let (status, headers, d) = h
        .call_full(
            Method::GET,
            &format!("/api/v1/devices/{id}"),
            Some(&op),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::ETAG], "\"1\"");
    assert_eq!(d["vendor"], "Rockwell Automation");

    // Optimistic concurrency: the ETag must match.
    let patch = Some(json!({"firmware": "3.3", "reason": "vendor update"}).to_string());
    let (status, _, v) = h
        .call_full(
            Method::PATCH,
            &format!("/api/v1/devices/{id}"),
            Some(&op),
            patch.clone(),
            &[("if-match", "\"7\"")],
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{v}");
    let (status, headers, d) = h
        .call_full(
            Method::PATCH,
            &format!("/api/v1/devices/{id}"),
            Some(&op),
            patch,
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(
        (d["firmware"].as_str(), &headers[header::ETAG]),
        (
            Some("3.3"),
            &"\"2\"".parse::<axum::http::HeaderValue>().unwrap()
        )
    );

    let (status, d) = h
        .call(
            Method::POST,
            &format!("/api/v1/devices/{id}/transition"),
            Some(&op),
            Some(json!({"to": "active"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(
        (d["state"].as_str(), d["managed"].as_bool()),
        (Some("active"), Some(true))
    );

    let (status, list) = h
        .call(
            Method::GET,
            "/api/v1/devices?managed=true&class=plc&label=site%3Dberlin",
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = h
        .call(
            Method::GET,
            "/api/v1/devices?state=discovered",
            Some(&op),
            None,
        )
        .await;
    assert!(list["items"].as_array().unwrap().is_empty());

    let (status, ev) = h
        .call(
            Method::GET,
            &format!("/api/v1/devices/{id}/events"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = ev["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["device.created", "device.updated", "device.transitioned"]
    );
    assert_eq!(items[0]["reason"], "commissioning line 3");
    assert_eq!(items[1]["before"]["firmware"], "3.2");
    assert_eq!(items[1]["after"]["firmware"], "3.3");
    assert!(items[2]["actor"].as_str().unwrap().starts_with("operator:"));

    let (status, v) = h
        .call(Method::GET, "/api/v1/audit/verify", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["intact"], true, "{v}");

    let (status, _, body) = h
        .call_full(Method::GET, "/metrics", Some(&op), None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    assert!(text.contains("vouch_devices{state=\"active\"} 1"), "{text}");
    assert!(
        text.contains(
            "vouch_http_requests_total{method=\"POST\",route=\"/api/v1/devices\",status=\"201\"} 1"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn pagination_walks_every_device_once() {
    let h = Harness::new().await;
    for i in 0..25 {
        let (s, _) = h
            .call(
                Method::POST,
                "/api/v1/devices",
                Some(&h.admin),
                Some(json!({"identifiers": {"serial": format!("S{i}")}})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut uri = "/api/v1/devices?limit=10".to_owned();
    loop {
        let (_, page) = h.call(Method::GET, &uri, Some(&h.admin), None).await;
        for d in page["items"].as_array().unwrap() {
            assert!(seen.insert(d["id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => uri = format!("/api/v1/devices?limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let h = Harness::with_limits(Limits {
        max_body_bytes: 4096,
    })
    .await;
    let t = h.admin.clone();
    let (_, d) = h
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&t),
            Some(json!({"state": "discovered"})),
        )
        .await;
    let id = d["id"].as_str().unwrap().to_owned();
    let before = h.footprint().await;
    let dev = format!("/api/v1/devices/{id}");
    let transition = format!("{dev}/transition");

    #[allow(clippy::type_complexity)]
    let cases: Vec<(
        &str,
        Method,
        String,
        Option<String>,
        Option<&str>,
        StatusCode,
        &str,
    )> = vec![
        (
            "malformed JSON",
            Method::POST,
            "/api/v1/devices".into(),
            Some("{\"class\": ".into()),
            Some(&t),
            StatusCode::BAD_REQUEST,
            "EOF",
        ),
        (
            "unknown field",
            Method::POST,
            "/api/v1/devices".into(),
            Some(r#"{"colour": "red"}"#.into()),
            Some(&t),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `colour`",
        ),
        (
            "bad MAC",
            Method::POST,
            "/api/v1/devices".into(),
            Some(r#"{"identifiers": {"mac": "00:11"}}"#.into()),
            Some(&t),
            StatusCode::UNPROCESSABLE_ENTITY,
            "MAC address",
        ),
        (
            "non-initial state",
            Method::POST,
            "/api/v1/devices".into(),
            Some(r#"{"state": "active"}"#.into()),
            Some(&t),
            StatusCode::UNPROCESSABLE_ENTITY,
            "starts as discovered or onboarding",
        ),
        (
            "duplicate id",
            Method::POST,
            "/api/v1/devices".into(),
            Some(format!(r#"{{"id": "{id}"}}"#)),
            Some(&t),
            StatusCode::CONFLICT,
            "already exists",
        ),
        (
            "illegal transition",
            Method::POST,
            transition.clone(),
            Some(r#"{"to": "active"}"#.into()),
            Some(&t),
            StatusCode::CONFLICT,
            "cannot go from discovered to active",
        ),
        (
            "unknown state",
            Method::POST,
            transition.clone(),
            Some(r#"{"to": "on-fire"}"#.into()),
            Some(&t),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown variant",
        ),
        (
            "state by patch",
            Method::PATCH,
            dev.clone(),
            Some(r#"{"state": "active"}"#.into()),
            Some(&t),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `state`",
        ),
        (
            "oversized body",
            Method::POST,
            "/api/v1/devices".into(),
            Some(format!(r#"{{"vendor": "{}"}}"#, "x".repeat(5000))),
            Some(&t),
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than",
        ),
        (
            "bad token",
            Method::POST,
            "/api/v1/devices".into(),
            Some("{}".into()),
            Some("vouch_0011223344556677_00"),
            StatusCode::UNAUTHORIZED,
            "invalid",
        ),
        (
            "bad id",
            Method::GET,
            "/api/v1/devices/not-a-uuid".into(),
            None,
            Some(&t),
            StatusCode::BAD_REQUEST,
            "UUID",
        ),
        (
            "unknown device",
            Method::GET,
            "/api/v1/devices/0190f5a2-7c1e-7000-8000-000000000009".into(),
            None,
            Some(&t),
            StatusCode::NOT_FOUND,
            "not found",
        ),
        (
            "unknown query",
            Method::GET,
            "/api/v1/devices?colour=red".into(),
            None,
            Some(&t),
            StatusCode::BAD_REQUEST,
            "unknown field `colour`",
        ),
        (
            "bad limit",
            Method::GET,
            "/api/v1/devices?limit=0".into(),
            None,
            Some(&t),
            StatusCode::BAD_REQUEST,
            "limit",
        ),
        (
            "bad label",
            Method::GET,
            "/api/v1/devices?label=site".into(),
            None,
            Some(&t),
            StatusCode::BAD_REQUEST,
            "key=value",
        ),
        (
            "unknown route",
            Method::GET,
            "/api/v1/nothing".into(),
            None,
            Some(&t),
            StatusCode::NOT_FOUND,
            "no such route",
        ),
        (
            "wrong method",
            Method::PUT,
            "/api/v1/devices".into(),
            None,
            Some(&t),
            StatusCode::METHOD_NOT_ALLOWED,
            "method",
        ),
        (
            "bad If-Match",
            Method::PATCH,
            dev.clone(),
            Some(r#"{"vendor": "x"}"#.into()),
            Some(&t),
            StatusCode::BAD_REQUEST,
            "If-Match",
        ),
        (
            "bad token lifetime",
            Method::POST,
            "/api/v1/tokens".into(),
            Some(r#"{"operator": "x", "role": "admin", "expires_in_days": 0}"#.into()),
            Some(&t),
            StatusCode::BAD_REQUEST,
            "expires_in_days",
        ),
        (
            "unknown role",
            Method::POST,
            "/api/v1/tokens".into(),
            Some(r#"{"operator": "x", "role": "root"}"#.into()),
            Some(&t),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown variant `root`",
        ),
    ];
    for (what, method, uri, body, token, want, needle) in cases {
        let headers: &[(&str, &str)] = if what == "bad If-Match" {
            &[("if-match", "yesterday")]
        } else {
            &[]
        };
        let (status, hdrs, v) = h.call_full(method, &uri, token, body, headers).await;
        assert_eq!(status, want, "{what}: {v}");
        assert_eq!(
            hdrs[header::CONTENT_TYPE],
            "application/problem+json",
            "{what}"
        );
        assert_problem(&v, status);
        assert!(
            v["detail"].as_str().unwrap().contains(needle),
            "{what}: {v}"
        );
        assert_eq!(h.footprint().await, before, "{what} changed the store");
    }

    // Missing content type on a JSON route.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/devices")
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .body(Body::from("{}"))
        .unwrap();
    let resp = h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(h.footprint().await, before);
}

#[tokio::test]
async fn admins_manage_tokens_and_revocation_takes_effect_at_once() {
    let h = Harness::new().await;
    let (status, created) = h
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(&h.admin),
            Some(json!({"operator": "Grace", "role": "auditor", "expires_in_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with(&format!("vouch_{id}_")));

    let (status, _) = h
        .call(Method::GET, "/api/v1/audit/events", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, list) = h
        .call(Method::GET, "/api/v1/tokens", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains(&token[23..]),
        "a listing never shows a secret"
    );

    let (status, v) = h
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(v["revoked_at"].is_string());
    let (status, _) = h
        .call(Method::GET, "/api/v1/devices", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    h.decisions.flush().await;
    let (_, log) = h
        .call(Method::GET, "/api/v1/audit/events", Some(&h.admin), None)
        .await;
    let mut actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .filter(|a| !a.starts_with("policy."))
        // Enrollment permits (the first start's, the test tokens'), tested in mfa.rs.
        .filter(|a| *a != "mfa.reset")
        .collect();
    // The auditor's refused POST is in the log too, with the policy decision behind it (written by a
    // background task, so its place in the log may vary).
    actions.sort_unstable();
    assert_eq!(
        actions,
        [
            "access.denied",
            "token.created",
            "token.created",
            "token.revoked"
        ]
    );
    assert!(
        !log.to_string().contains(&token[23..]),
        "the log never holds a secret"
    );
}

/// A certificate (PEM) for `device` from a CA of its own (an "existing PKI"), and that CA's certificate (DER).
fn enterprise_cert(device: vouch_types::DeviceId) -> (String, Vec<u8>) {
    let pass = vouch_pki::Passphrase::new("a passphrase long enough".into()).unwrap();
    let now = Timestamp::from_unix_micros(common::NOW);
    let subject = vouch_pki::CaSubject {
        organization: "Enterprise".into(),
    };
    let m = vouch_pki::init_ca(vouch_pki::KeyAlgorithm::EcdsaP256, &subject, now, &pass).unwrap();
    let ca = vouch_pki::IssuingCa::load(&m.issuing_cert_pem, &m.issuing_key_pem, &pass).unwrap();
    let csr = vouch_pki::CheckedCsr::from_der(&vouch_pki::new_request("dev").unwrap()).unwrap();
    let profile = vouch_pki::DeviceProfile {
        trust_domain: "import.test".into(),
        lifetime_days: 30,
        crl_url: "http://127.0.0.1/crl".into(),
        ocsp_url: "http://127.0.0.1/ocsp".into(),
    };
    let issued = ca.issue_device(&csr, device, &profile, now).unwrap();
    (
        vouch_pki::pem_encode("CERTIFICATE", &issued.der),
        ca.cert_der().to_vec(),
    )
}

#[tokio::test]
async fn imported_certificates_must_chain_to_a_trusted_ca_and_refusals_change_nothing() {
    let mut h = Harness::new().await;
    let (status, dev) = h
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&h.admin),
            Some(json!({"state": "onboarding"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dev}");
    let id: vouch_types::DeviceId = dev["id"].as_str().unwrap().parse().unwrap();
    let uri = format!("/api/v1/devices/{id}/certificates/import");
    let (pem, issuer) = enterprise_cert(id);
    let body = json!({"certificate_pem": pem});

    // Before the server trusts the enterprise CA: 422, nothing written.
    let before = h.footprint().await;
    let (status, v) = h
        .call(Method::POST, &uri, Some(&h.admin), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_problem(&v, status);
    let (status, v) = h
        .call(
            Method::POST,
            &uri,
            Some(&h.admin),
            Some(json!({"certificate_pem": "not a certificate"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    assert_problem(&v, status);
    assert_eq!(h.footprint().await, before);

    // Trusted: imported, the device active; the same certificate again is a conflict.
    h.app = vouch_api::router(
        h.state.clone().with_import_issuers(vec![issuer]),
        Limits::default(),
    );
    let (status, v) = h
        .call(
            Method::POST,
            &format!(
                "/api/v1/devices/{}/certificates/import",
                vouch_types::DeviceId::new()
            ),
            Some(&h.admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(h.footprint().await, before);
    let (status, v) = h
        .call(Method::POST, &uri, Some(&h.admin), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["device_id"], id.to_string());
    assert_eq!(v["status"], "good");
    let (_, dev) = h
        .call(
            Method::GET,
            &format!("/api/v1/devices/{id}"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(dev["state"], "active", "{dev}");
    let before = h.footprint().await;
    let (status, v) = h.call(Method::POST, &uri, Some(&h.admin), Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    assert_problem(&v, status);
    assert_eq!(h.footprint().await, before);
}
