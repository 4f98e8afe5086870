//! The policy engine through the API, in-process (tower `oneshot`) over a real SQLite store: least privilege for
//! devices over `/api/v1/authorize` and the EMQX endpoint, bad input refused whole, policy writes validated,
//! shadow mode, the second factor for enforce mode, and operators' roles decided by the engine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{HeaderMap, Method, StatusCode, header};
use common::Harness;
use serde_json::{Value, json};
use vouch_api::totp::{Algorithm, code, step_at};
use vouch_types::{Clock, Role};

impl Harness {
    async fn role_token(&self, role: Role) -> String {
        self.token(role, None).await
    }

    /// `POST /api/v1/authorize` with `body` as the gateway `token`.
    async fn authorize(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/api/v1/authorize", Some(token), Some(body))
            .await
    }

    /// `POST /api/v1/emqx/authorize` with a raw body.
    async fn emqx(&self, token: &str, body: &str) -> (StatusCode, Value) {
        let (status, _, v) = self
            .call_full(
                Method::POST,
                "/api/v1/emqx/authorize",
                Some(token),
                Some(body.to_owned()),
                &[],
            )
            .await;
        (status, v)
    }

    /// Registers a device and moves it through onboarding to active; its id.
    async fn active_device(&self) -> String {
        let (status, d) = self
            .call(
                Method::POST,
                "/api/v1/devices",
                Some(&self.admin),
                Some(json!({"class": "sensor", "reason": "policy tests"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{d}");
        assert_eq!(d["state"], "onboarding");
        let id = d["id"].as_str().unwrap().to_owned();
        self.transition(&id, "active").await;
        id
    }

    async fn transition(&self, id: &str, to: &str) {
        let (status, d) = self
            .call(
                Method::POST,
                &format!("/api/v1/devices/{id}/transition"),
                Some(&self.admin),
                Some(json!({"to": to})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{d}");
        assert_eq!(d["state"], to);
    }

    /// The whole audit log as the API shows it, after every queued decision trace is written.
    async fn audit(&self) -> Vec<Value> {
        self.decisions.flush().await;
        let (status, log) = self
            .call(
                Method::GET,
                "/api/v1/audit/events?limit=1000",
                Some(&self.admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{log}");
        log["items"].as_array().unwrap().clone()
    }

    async fn count(&self, action_prefix: &str) -> usize {
        self.audit()
            .await
            .iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with(action_prefix))
            .count()
    }

    async fn put_policy(&self, id: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/api/v1/policies/{id}"),
            Some(&self.admin),
            Some(body),
        )
        .await
    }

    fn now_step(&self) -> u64 {
        step_at(self.clock.now().unix_micros() / 1_000_000)
    }
}

/// One authorization request in the wire format.
fn req(device: &str, action: &str, rtype: &str, rid: &str) -> Value {
    json!({
        "principal": {"type": "Device", "id": device},
        "action": action,
        "resource": {"type": rtype, "id": rid},
    })
}

fn publish(device: &str, topic: &str) -> Value {
    req(device, "publish", "Topic", topic)
}

fn assert_problem(status: StatusCode, headers: &HeaderMap, v: &Value, what: &str) {
    assert_eq!(
        headers[header::CONTENT_TYPE],
        "application/problem+json",
        "{what}"
    );
    assert_eq!(v["status"], status.as_u16(), "{what}: {v}");
    assert!(
        v["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:vouch:problem:"),
        "{what}: {v}"
    );
    assert!(!v["detail"].as_str().unwrap().is_empty(), "{what}: {v}");
}

fn totp(secret: &[u8], step: u64) -> String {
    format!("{:06}", code(Algorithm::Sha1, secret, step, 6))
}

/// A well-formed code that is none of the codes accepted around `step`.
fn wrong_totp(secret: &[u8], step: u64) -> String {
    let valid: Vec<String> = (step - 2..=step + 2).map(|s| totp(secret, s)).collect();
    (0u32..)
        .map(|n| format!("{n:06}"))
        .find(|c| !valid.contains(c))
        .unwrap()
}

/// Enrolls and confirms a second factor for `token` at the current step; the shared secret.
async fn enroll_totp(h: &Harness, token: &str) -> Vec<u8> {
    let (status, v) = h
        .call(Method::POST, "/api/v1/mfa/totp", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let text = v["secret"].as_str().unwrap();
    let secret = data_encoding::BASE32_NOPAD
        .decode(text.as_bytes())
        .expect("the secret is unpadded base32");
    assert_eq!(secret.len(), vouch_api::totp::SECRET_BYTES);
    let uri = v["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Vouch:"), "{uri}");
    assert!(uri.contains(&format!("secret={text}&")), "{uri}");

    let (status, v) = h
        .call(
            Method::POST,
            "/api/v1/mfa/totp/confirm",
            Some(token),
            Some(json!({"code": wrong_totp(&secret, h.now_step())})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a wrong code confirms nothing: {v}"
    );
    let (status, v) = h
        .call(
            Method::POST,
            "/api/v1/mfa/totp/confirm",
            Some(token),
            Some(json!({"code": totp(&secret, h.now_step())})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["confirmed"], true);
    secret
}

#[tokio::test]
async fn devices_get_least_privilege_over_http() {
    let h = Harness::new().await;
    let gw = h.role_token(Role::Gateway).await;
    let a = h.active_device().await;
    let b = h.active_device().await;

    let (status, v) = h
        .authorize(&gw, publish(&a, &format!("devices/{a}/telemetry")))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["decision"], "allow", "{v}");
    assert_eq!(v["allowed"], true, "{v}");
    assert_eq!(v["policies"], json!(["own-topics"]), "{v}");
    assert!(v["version"].as_u64().unwrap() > 0, "{v}");

    for (what, body) in [
        (
            "another device's tree",
            publish(&a, &format!("devices/{b}/telemetry")),
        ),
        ("outside devices/", publish(&a, "plant/x")),
        (
            "every device's telemetry",
            req(&a, "subscribe", "TopicFilter", "devices/+/telemetry"),
        ),
        ("everything", req(&a, "subscribe", "Topic", "#")),
        (
            "a service nobody granted",
            req(&a, "read", "Asset", "plc-7"),
        ),
    ] {
        let (status, v) = h.authorize(&gw, body).await;
        assert_eq!(status, StatusCode::OK, "{what}: {v}");
        assert_eq!(v["decision"], "deny", "{what}: {v}");
        assert_eq!(v["policies"], json!([]), "{what}: nothing permits it: {v}");
        assert_eq!(v["reason"], "denied: no policy permits this", "{what}");
    }
    let (_, v) = h
        .authorize(
            &gw,
            req(&a, "subscribe", "TopicFilter", &format!("devices/{a}/#")),
        )
        .await;
    assert_eq!(v["decision"], "allow", "its own tree: {v}");
    let (_, v) = h
        .authorize(&gw, req(&a, "connect", "Service", "mqtt"))
        .await;
    assert_eq!(
        (&v["decision"], &v["policies"]),
        (&json!("allow"), &json!(["device-connect"])),
        "{v}"
    );

    // A batch answers in order.
    let batch = json!({"requests": [
        publish(&a, &format!("devices/{a}/telemetry")),
        publish(&a, "plant/x"),
        req(&b, "connect", "Service", "mqtt"),
        publish(&b, &format!("devices/{a}/telemetry")),
        publish(&b, &format!("devices/{b}/state")),
    ]});
    let (status, v) = h.authorize(&gw, batch).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let decisions: Vec<&str> = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allow", "deny", "allow", "deny", "allow"]);

    // Every deny is in the audit log with the decision behind it.
    let log = h.audit().await;
    let denied: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "access.denied")
        .collect();
    assert!(!denied.is_empty());
    for e in &denied {
        assert_eq!(e["actor"], "system:policy", "{e}");
        assert_eq!(e["after"]["decision"]["allowed"], false, "{e}");
        assert_eq!(e["after"]["principal"]["type"], "Device", "{e}");
        assert!(e["after"]["decision"]["version"].is_u64(), "{e}");
    }
    let named = denied
        .iter()
        .find(|e| {
            e["device_id"] == a.as_str()
                && e["after"]["principal"]["id"] == a.as_str()
                && e["after"]["resource"]["id"] == format!("devices/{b}/telemetry").as_str()
        })
        .unwrap_or_else(|| panic!("no denial names device {a}: {denied:#?}"));
    assert_eq!(named["after"]["action"], "publish", "{named}");
    assert_eq!(named["after"]["decision"]["policies"], json!([]), "{named}");
    assert!(
        denied.iter().any(|e| e["device_id"] == b.as_str()
            && e["after"]["resource"]["id"] == format!("devices/{a}/telemetry").as_str()),
        "the batch's denial is logged too: {denied:#?}"
    );
    assert!(
        !log.iter().any(|e| e["action"] == "access.would_deny"),
        "no shadow policy yet"
    );

    // Quarantine: only the update topics.
    h.transition(&a, "restricted").await;
    let (_, v) = h
        .authorize(&gw, publish(&a, &format!("devices/{a}/telemetry")))
        .await;
    assert_eq!(v["decision"], "deny", "{v}");
    assert_eq!(v["policies"], json!(["quarantine-update-only"]), "{v}");
    assert_eq!(v["reason"], "denied by quarantine-update-only", "{v}");
    let (_, v) = h
        .authorize(&gw, publish(&a, &format!("devices/{a}/update/firmware")))
        .await;
    assert_eq!(v["decision"], "allow", "{v}");
    assert_eq!(v["policies"], json!(["own-topics"]), "{v}");
    let (_, v) = h
        .authorize(
            &gw,
            req(
                &a,
                "subscribe",
                "TopicFilter",
                &format!("devices/{a}/update/#"),
            ),
        )
        .await;
    assert_eq!(v["decision"], "allow", "{v}");
    let (_, v) = h
        .authorize(
            &gw,
            req(&a, "subscribe", "TopicFilter", &format!("devices/{a}/#")),
        )
        .await;
    assert_eq!(
        (&v["decision"], &v["policies"]),
        (&json!("deny"), &json!(["quarantine-update-only"])),
        "its whole tree is wider than the update topics: {v}"
    );

    // A device Vouch does not know: a deny with an error, not a 4xx.
    let stranger = vouch_types::DeviceId::new().to_string();
    let (status, v) = h
        .authorize(
            &gw,
            publish(&stranger, &format!("devices/{stranger}/telemetry")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["decision"], "deny", "{v}");
    assert!(
        v["errors"][0].as_str().unwrap().contains("not registered"),
        "{v}"
    );

    // Suspended: nothing, whatever the stored policies say.
    h.transition(&b, "suspended").await;
    for body in [
        publish(&b, &format!("devices/{b}/telemetry")),
        req(&b, "connect", "Service", "mqtt"),
    ] {
        let (_, v) = h.authorize(&gw, body).await;
        assert_eq!(v["decision"], "deny", "{v}");
        assert_eq!(v["policies"], json!(["vouch.devices.lifecycle"]), "{v}");
    }
    let log = h.audit().await;
    assert!(
        log.iter().any(|e| e["action"] == "access.denied"
            && e["device_id"] == b.as_str()
            && e["after"]["decision"]["policies"] == json!(["vouch.devices.lifecycle"])),
        "the lifecycle denial is logged"
    );
    assert!(
        log.iter().any(|e| e["action"] == "access.denied"
            && e["device_id"] == a.as_str()
            && e["after"]["decision"]["policies"] == json!(["quarantine-update-only"])),
        "the quarantine denial is logged"
    );
    let (_, v) = h
        .call(Method::GET, "/api/v1/audit/verify", Some(&h.admin), None)
        .await;
    assert_eq!(v["intact"], true, "{v}");
}

#[tokio::test]
async fn bad_authorize_input_is_a_clear_4xx_and_changes_nothing() {
    let h = Harness::new().await;
    let gw = h.role_token(Role::Gateway).await;
    let a = h.active_device().await;
    let own = format!("devices/{a}/telemetry");
    let before = h.audit().await.len();

    let mut unknown_field = publish(&a, &own);
    unknown_field["extra"] = json!(1);
    let mut context_trust = publish(&a, &own);
    context_trust["context"] = json!({"trust": 100});
    let mut long_location = publish(&a, &own);
    long_location["context"] = json!({"location": "x".repeat(129)});
    let too_many = json!({"requests": vec![publish(&a, "plant/x"); 1_001]});
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        (
            "unknown principal type",
            json!({"principal": {"type": "User", "id": a}, "action": "publish",
                   "resource": {"type": "Topic", "id": own}})
            .to_string(),
            StatusCode::BAD_REQUEST,
            "unknown principal type `User`",
        ),
        (
            "unknown resource type",
            req(&a, "publish", "Bucket", &own).to_string(),
            StatusCode::BAD_REQUEST,
            "unknown resource type `Bucket`",
        ),
        (
            "unknown action",
            req(&a, "delete", "Topic", &own).to_string(),
            StatusCode::BAD_REQUEST,
            "delete",
        ),
        (
            "an action that does not apply to the resource",
            req(&a, "connect", "Topic", &own).to_string(),
            StatusCode::BAD_REQUEST,
            "does not apply",
        ),
        (
            "malformed JSON",
            format!("{{\"principal\": {{\"type\": \"Device\", \"id\": \"{a}\""),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "a principal id that is not a device id",
            publish("sensor-1", "plant/x").to_string(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "a wildcard in a published topic",
            publish(&a, &format!("devices/{a}/#")).to_string(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "a single-level wildcard in a published topic",
            publish(&a, "devices/+/telemetry").to_string(),
            StatusCode::BAD_REQUEST,
            "",
        ),
        (
            "an unknown top-level field",
            unknown_field.to_string(),
            StatusCode::BAD_REQUEST,
            "extra",
        ),
        (
            "a context field the caller may not set",
            context_trust.to_string(),
            StatusCode::BAD_REQUEST,
            "trust",
        ),
        (
            "an overlong location",
            long_location.to_string(),
            StatusCode::BAD_REQUEST,
            "location",
        ),
        (
            "a batch with one malformed item",
            json!({"requests": [
                publish(&a, "plant/x"),
                req(&a, "delete", "Topic", &own),
                publish(&a, "plant/y"),
            ]})
            .to_string(),
            StatusCode::BAD_REQUEST,
            "requests[1]",
        ),
        (
            "a batch over 1,000 requests",
            too_many.to_string(),
            StatusCode::BAD_REQUEST,
            "1 to 1000",
        ),
        (
            "an empty batch",
            json!({"requests": []}).to_string(),
            StatusCode::BAD_REQUEST,
            "1 to 1000",
        ),
        (
            "a batch that is not an array",
            json!({"requests": publish(&a, "plant/x")}).to_string(),
            StatusCode::BAD_REQUEST,
            "array",
        ),
        (
            "a batch with another field",
            json!({"requests": [publish(&a, "plant/x")], "dry_run": true}).to_string(),
            StatusCode::BAD_REQUEST,
            "nothing else",
        ),
        (
            "a body that is not an object",
            json!([publish(&a, "plant/x")]).to_string(),
            StatusCode::BAD_REQUEST,
            "",
        ),
    ];
    for (what, body, want, detail) in cases {
        let (status, headers, v) = h
            .call_full(
                Method::POST,
                "/api/v1/authorize",
                Some(&gw),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(status, want, "{what}: {v}");
        assert_problem(status, &headers, &v, what);
        assert!(
            v["detail"].as_str().unwrap().contains(detail),
            "{what}: the detail should mention `{detail}`: {v}"
        );
        assert_eq!(h.audit().await.len(), before, "{what} changed the log");
    }

    // Without `Content-Type: application/json`.
    let (status, headers, v) = h
        .call_full(Method::POST, "/api/v1/authorize", Some(&gw), None, &[])
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert_problem(status, &headers, &v, "no content type");
    assert_eq!(h.audit().await.len(), before);

    // A batch of exactly 1,000 is fine, and its denials are logged once per distinct request.
    let (status, v) = h
        .authorize(
            &gw,
            json!({"requests": vec![publish(&a, "plant/x"); 1_000]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["decisions"].as_array().unwrap().len(), 1_000);
    assert_eq!(h.audit().await.len(), before + 1);
}

#[tokio::test]
async fn invalid_policies_are_refused_with_cedars_diagnostics() {
    let h = Harness::new().await;
    let (status, listed) = h
        .call(Method::GET, "/api/v1/policies", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let ids: Vec<&str> = listed["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "the defaults: {listed}");
    for id in ["device-connect", "own-topics", "quarantine-update-only"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let policy_events = h.count("policy.").await;
    assert_eq!(policy_events, 3, "the seeded defaults");

    let cases = [
        (
            "an unknown entity type",
            "permit(principal is Vouch::Device, action == Vouch::Action::\"publish\", \
             resource in Vouch::Bucket::\"x\");",
            "Vouch::Bucket",
        ),
        (
            "an unknown attribute",
            "permit(principal is Vouch::Device, action == Vouch::Action::\"publish\", resource) \
             when { principal.colour == \"red\" };",
            "colour",
        ),
        (
            "a syntax error",
            "permit(principal is Vouch::Device, action == Vouch::Action::\"publish\", resource) when {",
            "does not parse",
        ),
        (
            "a permit for everyone",
            "permit(principal, action, resource);",
            "must name device principals",
        ),
        (
            "a permit for operators",
            "permit(principal is Vouch::Operator, action, resource);",
            "operators' permissions come from their role",
        ),
        (
            "an unknown action",
            "permit(principal is Vouch::Device, action == Vouch::Action::\"teleport\", resource);",
            "teleport",
        ),
        (
            "a grant that is no MQTT filter",
            "permit(principal is Vouch::Device, action == Vouch::Action::\"publish\", \
             resource in Vouch::TopicFilter::\"plant/#/x\");",
            "not a topic grant",
        ),
        (
            "two policies in one",
            "forbid(principal is Vouch::Device, action, resource); \
             forbid(principal is Vouch::Device, action, resource);",
            "exactly one policy",
        ),
    ];
    for (what, text, diagnostic) in cases {
        let (status, headers, v) = h
            .call_full(
                Method::PUT,
                "/api/v1/policies/broken",
                Some(&h.admin),
                Some(json!({"text": text, "reason": "testing"}).to_string()),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        assert_problem(status, &headers, &v, what);
        assert_eq!(v["type"], "urn:vouch:problem:invalid-policy", "{what}");
        let detail = v["detail"].as_str().unwrap();
        assert!(
            detail.contains(diagnostic),
            "{what}: `{diagnostic}` not in {detail}"
        );
        assert!(detail.contains("policy `broken`"), "{what}: {detail}");

        // The same through validate: refused, nothing stored.
        let (status, v) = h
            .call(
                Method::POST,
                "/api/v1/policies/validate",
                Some(&h.admin),
                Some(json!({"text": format!("@id(\"broken\")\n{text}")})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");

        let (_, now) = h
            .call(Method::GET, "/api/v1/policies", Some(&h.admin), None)
            .await;
        assert_eq!(
            now["policies"], listed["policies"],
            "{what} changed the set"
        );
        assert_eq!(now["in_force"]["version"], listed["in_force"]["version"]);
        let (status, _) = h
            .call(Method::GET, "/api/v1/policies/broken", Some(&h.admin), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}");
        assert_eq!(h.count("policy.").await, policy_events, "{what}");
    }

    // Reserved and malformed ids, and unknown fields, are refused too.
    let valid = "forbid(principal is Vouch::Device, action == Vouch::Action::\"publish\", \
                 resource in Vouch::TopicFilter::\"plant/#\");";
    for (what, uri, body) in [
        (
            "a reserved id",
            "/api/v1/policies/vouch.mine",
            json!({"text": valid}),
        ),
        (
            "an unknown field",
            "/api/v1/policies/no-plant",
            json!({"text": valid, "enabled": true}),
        ),
        (
            "an unknown mode",
            "/api/v1/policies/no-plant",
            json!({"text": valid, "mode": "audit"}),
        ),
    ] {
        let (status, headers, v) = h
            .call_full(
                Method::PUT,
                uri,
                Some(&h.admin),
                Some(body.to_string()),
                &[],
            )
            .await;
        assert!(status.is_client_error(), "{what}: {status} {v}");
        assert_problem(status, &headers, &v, what);
        assert_eq!(h.count("policy.").await, policy_events, "{what}");
    }

    // Validate checks a file of policies against the stored set and stores nothing.
    let (status, v) = h
        .call(
            Method::POST,
            "/api/v1/policies/validate",
            Some(&h.admin),
            Some(json!({"text": format!("@id(\"no-plant\")\n{valid}\n\n@id(\"no-night\")\nforbid(principal is Vouch::Device, action, resource) when {{ context.hour < 6 }};")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"valid": true, "policies": ["no-plant", "no-night"]})
    );
    let (status, v) = h
        .call(
            Method::POST,
            "/api/v1/policies/validate",
            Some(&h.admin),
            Some(json!({"text": valid})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("@id"), "{v}");
    let (status, _) = h
        .call(
            Method::GET,
            "/api/v1/policies/no-plant",
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "validate stores nothing");
    assert_eq!(h.count("policy.").await, policy_events);

    // A valid write: shadow unless asked, version 1, then 2; the history shows both.
    let (status, v) = h
        .put_policy(
            "no-plant",
            json!({"text": valid, "reason": "keep devices off plant/"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["id"], &v["version"], &v["mode"], &v["removed"]),
        (
            &json!("no-plant"),
            &json!(1),
            &json!("shadow"),
            &json!(false)
        ),
        "{v}"
    );
    assert!(
        v["author"].as_str().unwrap().starts_with("operator:"),
        "{v}"
    );
    let wider = valid.replace("plant/#", "plant/+/#");
    let (status, v) = h
        .put_policy("no-plant", json!({"text": wider, "expected_version": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2, "{v}");
    let (status, v) = h
        .put_policy("no-plant", json!({"text": valid, "expected_version": 1}))
        .await;
    assert_eq!(
        status,
        StatusCode::PRECONDITION_FAILED,
        "a stale version: {v}"
    );
    let (status, v) = h.put_policy("no-plant", json!({"text": wider})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["version"], 2,
        "an unchanged write stores nothing new: {v}"
    );

    let (status, v) = h
        .call(
            Method::GET,
            "/api/v1/policies/no-plant",
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["version"], 2);
    assert_eq!(v["text"].as_str().unwrap(), wider);
    let history: Vec<(u64, &str)> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["version"].as_u64().unwrap(), p["text"].as_str().unwrap()))
        .collect();
    assert_eq!(history, [(1, valid), (2, wider.as_str())]);
    let (_, listed) = h
        .call(Method::GET, "/api/v1/policies", Some(&h.admin), None)
        .await;
    assert_eq!(listed["policies"].as_array().unwrap().len(), 4);
    assert_eq!(listed["in_force"]["policies"], 4, "{listed}");
    assert_eq!(h.count("policy.").await, policy_events + 2);
}

/// A forbid on a device's own telemetry.
const NO_TELEMETRY: &str = "@id(\"no-telemetry\")\nforbid(\n  principal is Vouch::Device,\n  \
                            action == Vouch::Action::\"publish\",\n  \
                            resource in Vouch::TopicFilter::\"devices/${device.id}/telemetry\"\n);";

#[tokio::test]
async fn shadow_policies_report_but_never_deny() {
    let h = Harness::new().await;
    let gw = h.role_token(Role::Gateway).await;
    let a = h.active_device().await;
    let telemetry = publish(&a, &format!("devices/{a}/telemetry"));

    let (status, v) = h
        .put_policy("no-telemetry", json!({"text": NO_TELEMETRY}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["mode"], "shadow");

    let (status, v) = h.authorize(&gw, telemetry.clone()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["decision"], "allow", "shadow never denies: {v}");
    assert_eq!(v["policies"], json!(["own-topics"]), "{v}");
    assert_eq!(v["shadow"]["allowed"], false, "{v}");
    assert_eq!(v["shadow"]["policies"], json!(["no-telemetry"]), "{v}");
    // Where the shadow policy does not apply, the answer carries no shadow outcome.
    let (_, v) = h
        .authorize(&gw, publish(&a, &format!("devices/{a}/state")))
        .await;
    assert_eq!(v["decision"], "allow", "{v}");
    assert!(v.get("shadow").is_none(), "{v}");

    let log = h.audit().await;
    let would: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "access.would_deny")
        .collect();
    assert_eq!(would.len(), 1, "{would:#?}");
    let e = would[0];
    assert_eq!(e["device_id"], a.as_str(), "{e}");
    assert_eq!(e["after"]["decision"]["allowed"], true, "{e}");
    assert_eq!(
        e["after"]["decision"]["shadow"]["policies"],
        json!(["no-telemetry"]),
        "{e}"
    );
    assert!(
        !log.iter().any(|e| e["action"] == "access.denied"),
        "nothing was denied"
    );
}

#[tokio::test]
async fn enforcing_a_policy_needs_a_second_factor() {
    let h = Harness::new().await;
    let gw = h.role_token(Role::Gateway).await;
    let a = h.active_device().await;
    let telemetry = publish(&a, &format!("devices/{a}/telemetry"));
    let (status, v) = h
        .put_policy("no-telemetry", json!({"text": NO_TELEMETRY}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let mode = "/api/v1/policies/no-telemetry/mode";
    let enforce = Some(json!({"mode": "enforce", "reason": "observed for a week"}).to_string());

    // Without a one-time code: 403, and the answer says what to send.
    let (status, headers, v) = h
        .call_full(Method::POST, mode, Some(&h.admin), enforce.clone(), &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_problem(status, &headers, &v, "enforce without a code");
    assert!(v["detail"].as_str().unwrap().contains("X-Vouch-OTP"), "{v}");
    let (status, v) = h
        .put_policy(
            "no-telemetry",
            json!({"text": NO_TELEMETRY, "mode": "enforce"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a put in enforce mode too: {v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("X-Vouch-OTP"), "{v}");
    // A code without an enrolled factor.
    let (status, _, v) = h
        .call_full(
            Method::POST,
            mode,
            Some(&h.admin),
            enforce.clone(),
            &[("X-Vouch-OTP", "123456")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (_, v) = h.authorize(&gw, telemetry.clone()).await;
    assert_eq!(v["decision"], "allow", "still shadow: {v}");

    // Enroll and confirm (with the current step's code).
    let secret = enroll_totp(&h, &h.admin).await;
    // Re-enrolling a confirmed factor needs a code.
    let (status, v) = h
        .call(Method::POST, "/api/v1/mfa/totp", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");

    // A wrong code is refused.
    let wrong = wrong_totp(&secret, h.now_step());
    let (status, headers, v) = h
        .call_full(
            Method::POST,
            mode,
            Some(&h.admin),
            enforce.clone(),
            &[("X-Vouch-OTP", &wrong)],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_problem(status, &headers, &v, "a wrong code");
    // The next step's code (within the ±1 step window) steps up.
    let next = totp(&secret, h.now_step() + 1);
    let (status, _, v) = h
        .call_full(
            Method::POST,
            mode,
            Some(&h.admin),
            enforce.clone(),
            &[("X-Vouch-OTP", &next)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let written = v.as_array().unwrap();
    assert_eq!(written.len(), 1, "{v}");
    assert_eq!(
        (&written[0]["mode"], &written[0]["version"]),
        (&json!("enforce"), &json!(2))
    );

    let (_, v) = h.authorize(&gw, telemetry.clone()).await;
    assert_eq!(v["decision"], "deny", "{v}");
    assert_eq!(v["policies"], json!(["no-telemetry"]), "{v}");

    // Editing an enforced policy keeps it enforced and is privileged too: no code, no edit; nothing changes.
    let edited =
        json!({"text": NO_TELEMETRY.replace("/telemetry\"", "/telemetry/#\"")}).to_string();
    let (status, _, v) = h
        .call_full(
            Method::PUT,
            "/api/v1/policies/no-telemetry",
            Some(&h.admin),
            Some(edited.clone()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, _, v) = h
        .call_full(
            Method::PUT,
            "/api/v1/policies/no-telemetry",
            Some(&h.admin),
            Some(edited),
            &[("X-Vouch-OTP", &next)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["mode"], &v["version"]),
        (&json!("enforce"), &json!(3)),
        "{v}"
    );
    let (_, v) = h.authorize(&gw, telemetry.clone()).await;
    assert_eq!(v["decision"], "deny", "still enforced after the edit: {v}");

    // A code two steps out is outside the window, even unused.
    h.clock.advance_micros(30_000_000);
    let far = totp(&secret, h.now_step() + 2);
    let (status, _, v) = h
        .call_full(
            Method::POST,
            mode,
            Some(&h.admin),
            Some(json!({"mode": "shadow"}).to_string()),
            &[("X-Vouch-OTP", &far)],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    // Back to shadow loosens what is enforced: privileged too (the session's code still works).
    let (status, _, v) = h
        .call_full(
            Method::POST,
            mode,
            Some(&h.admin),
            Some(json!({"mode": "shadow"}).to_string()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, _, v) = h
        .call_full(
            Method::POST,
            mode,
            Some(&h.admin),
            Some(json!({"mode": "shadow"}).to_string()),
            &[("X-Vouch-OTP", &next)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (_, v) = h.authorize(&gw, telemetry).await;
    assert_eq!(v["decision"], "allow", "{v}");

    // Revoking a certificate is privileged too: refused before any CA is involved.
    let (status, headers, v) = h
        .call_full(
            Method::POST,
            "/api/v1/certificates/1234/revoke",
            Some(&h.admin),
            Some(json!({}).to_string()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_problem(status, &headers, &v, "revoke without a code");
    assert!(v["detail"].as_str().unwrap().contains("X-Vouch-OTP"), "{v}");

    let log = h.audit().await;
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in ["mfa.enrolled", "mfa.confirmed", "policy.mode_changed"] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    let operator_denials: Vec<&Value> = log
        .iter()
        .filter(|e| e["action"] == "access.denied" && e["after"]["principal"]["type"] == "Operator")
        .collect();
    assert!(
        operator_denials
            .iter()
            .any(|e| e["after"]["action"] == "policies.enforce"
                && e["after"]["mfa"] == false
                && e["after"]["decision"]["policies"] == json!(["vouch.mfa.privileged"])),
        "{operator_denials:#?}"
    );
    assert!(
        operator_denials
            .iter()
            .any(|e| e["after"]["action"] == "certificates.revoke"),
        "{operator_denials:#?}"
    );
}

/// A one-time code works once: the code that confirmed the factor, and a code already presented, are refused
/// (the brief's rule; see the report on step-up sessions).
#[tokio::test]
async fn a_code_opens_a_short_step_up_session_and_is_never_accepted_again_after_it() {
    let h = Harness::new().await;
    let (status, v) = h
        .put_policy("no-telemetry", json!({"text": NO_TELEMETRY}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let mode = "/api/v1/policies/no-telemetry/mode";
    let body = |mode_name: &str| Some(json!({"mode": mode_name}).to_string());
    let call = |code: String, to: &'static str| {
        let h = &h;
        let body = body(to);
        async move {
            h.call_full(
                Method::POST,
                mode,
                Some(&h.admin),
                body,
                &[("X-Vouch-OTP", &code)],
            )
            .await
        }
    };
    let secret = enroll_totp(&h, &h.admin).await;

    // The code that confirmed the factor opened a session: it keeps working for this token for 5 minutes.
    let confirmed_with = totp(&secret, h.now_step());
    let (status, _, v) = call(confirmed_with.clone(), "enforce").await;
    assert_eq!(status, StatusCode::OK, "inside the step-up session: {v}");
    let (status, _, v) = call(confirmed_with.clone(), "shadow").await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Another token holding the same code gets nothing from it.
    let other = h.role_token(Role::Admin).await;
    let (status, _, v) = h
        .call_full(
            Method::POST,
            mode,
            Some(&other),
            body("enforce"),
            &[("X-Vouch-OTP", &confirmed_with)],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");

    // After the session, the same code is refused for good, and so is any step not newer than the last used.
    h.clock
        .advance_micros(vouch_api::auth::STEP_UP_MICROS + 1_000_000);
    let (status, _, v) = call(confirmed_with.clone(), "enforce").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a replayed code: {v}");
    let fresh = totp(&secret, h.now_step());
    let (status, _, v) = call(fresh.clone(), "enforce").await;
    assert_eq!(status, StatusCode::OK, "a fresh code: {v}");
    let (status, _, v) = call(totp(&secret, h.now_step() - 1), "shadow").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an older step's code: {v}"
    );

    // Re-enrolling ends the session: the old code no longer works, even inside the five minutes.
    let (status, _, v) = h
        .call_full(
            Method::POST,
            "/api/v1/mfa/totp",
            Some(&h.admin),
            None,
            &[("X-Vouch-OTP", &fresh)],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, _, v) = call(fresh, "shadow").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
}

#[tokio::test]
async fn emqx_asks_vouch_in_its_own_shape() {
    let h = Harness::new().await;
    let gw = h.role_token(Role::Gateway).await;
    let a = h.active_device().await;
    let b = h.active_device().await;
    let ask = |client: &str, cn: &str, action: &str, topic: &str| {
        json!({"clientid": client, "username": "", "peerhost": "10.0.0.7",
               "cert_common_name": cn, "action": action, "topic": topic})
        .to_string()
    };
    let cases = [
        (
            "its own topic",
            ask(&a, &a, "publish", &format!("devices/{a}/t")),
            "allow",
        ),
        (
            "another device's topic",
            ask(&a, &a, "publish", &format!("devices/{b}/t")),
            "deny",
        ),
        (
            "outside devices/",
            ask(&a, &a, "publish", "plant/x"),
            "deny",
        ),
        (
            "a certificate for another device",
            ask(&a, &b, "publish", &format!("devices/{a}/t")),
            "deny",
        ),
        (
            "a client that is not a Vouch device",
            ask("sensor-1", "sensor-1", "publish", "devices/sensor-1/t"),
            "ignore",
        ),
        (
            "a client id alone that is not a Vouch device",
            json!({"clientid": "sensor-1", "action": "publish", "topic": "x"}).to_string(),
            "ignore",
        ),
        ("malformed JSON", "{\"clientid\": ".to_owned(), "deny"),
        ("not an object", "[1, 2]".to_owned(), "deny"),
        (
            "neither client id nor certificate",
            json!({"action": "publish", "topic": "x"}).to_string(),
            "deny",
        ),
        (
            "no topic",
            json!({"clientid": a, "action": "publish"}).to_string(),
            "deny",
        ),
        (
            "an unknown action",
            ask(&a, &a, "retain", &format!("devices/{a}/t")),
            "deny",
        ),
        (
            "a wildcard in a published topic",
            ask(&a, &a, "publish", &format!("devices/{a}/#")),
            "deny",
        ),
        (
            "a subscription within its tree",
            ask(&a, &a, "subscribe", &format!("devices/{a}/cmd/+")),
            "allow",
        ),
        (
            "a subscription to its whole tree",
            ask(&a, &a, "subscribe", &format!("devices/{a}/#")),
            "allow",
        ),
        (
            "a subscription to every device",
            ask(&a, &a, "subscribe", "devices/+/cmd/#"),
            "deny",
        ),
        (
            "a subscription to everything",
            ask(&a, &a, "subscribe", "#"),
            "deny",
        ),
        (
            "an unexpanded certificate placeholder",
            ask(
                &a,
                "${cert_common_name}",
                "publish",
                &format!("devices/{a}/t"),
            ),
            "allow",
        ),
        (
            "an unregistered device",
            {
                let c = vouch_types::DeviceId::new().to_string();
                ask(&c, &c, "publish", &format!("devices/{c}/t"))
            },
            "deny",
        ),
    ];
    for (what, body, want) in cases {
        let (status, v) = h.emqx(&gw, &body).await;
        assert_eq!(status, StatusCode::OK, "{what}: {v}");
        assert_eq!(v["result"], want, "{what}: {v}");
        assert!(v["reason"].is_string(), "{what}: {v}");
    }

    // A quarantined device reaches only its update topics through EMQX too.
    h.transition(&a, "restricted").await;
    let (_, v) = h
        .emqx(&gw, &ask(&a, &a, "publish", &format!("devices/{a}/t")))
        .await;
    assert_eq!(v["result"], "deny", "{v}");
    let (_, v) = h
        .emqx(
            &gw,
            &ask(&a, &a, "publish", &format!("devices/{a}/update/ack")),
        )
        .await;
    assert_eq!(v["result"], "allow", "{v}");

    // Only callers allowed to ask for decisions.
    let (status, _) = h
        .call(
            Method::POST,
            "/api/v1/emqx/authorize",
            None,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auditor = h.role_token(Role::Auditor).await;
    let (status, _) = h
        .emqx(&auditor, &ask(&a, &a, "publish", &format!("devices/{a}/t")))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn operators_are_decided_by_the_engine() {
    let h = Harness::new().await;
    let auditor = h.role_token(Role::Auditor).await;
    let operator = h.role_token(Role::Operator).await;
    let gw = h.role_token(Role::Gateway).await;
    let text = "forbid(principal is Vouch::Device, action, resource) when { context.hour < 6 };";

    // An auditor reads policies but cannot write them.
    let (status, _) = h
        .call(Method::GET, "/api/v1/policies", Some(&auditor), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, v) = h
        .call_full(
            Method::PUT,
            "/api/v1/policies/no-night",
            Some(&auditor),
            Some(json!({"text": text}).to_string()),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert_problem(status, &headers, &v, "auditor put");
    assert!(v["detail"].as_str().unwrap().contains("auditor"), "{v}");

    let (status, v) = h.put_policy("no-night", json!({"text": text})).await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // An operator cannot write policies or set enforce mode, even with a second factor.
    let secret = enroll_totp(&h, &operator).await;
    let code = totp(&secret, h.now_step() + 1);
    let (status, _, v) = h
        .call_full(
            Method::POST,
            "/api/v1/policies/no-night/mode",
            Some(&operator),
            Some(json!({"mode": "enforce"}).to_string()),
            &[("X-Vouch-OTP", &code)],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("operator"), "{v}");
    let (status, _) = h
        .call(
            Method::PUT,
            "/api/v1/policies/no-night",
            Some(&operator),
            Some(json!({"text": text})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, v) = h
        .call(
            Method::GET,
            "/api/v1/policies/no-night",
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(
        (&v["mode"], &v["version"]),
        (&json!("shadow"), &json!(1)),
        "unchanged: {v}"
    );
    // With the factor, an operator may do its privileged actions (it passes authorization; no CA here).
    let code = totp(&secret, h.now_step() - 1);
    let (status, _, v) = h
        .call_full(
            Method::POST,
            "/api/v1/certificates/1234/revoke",
            Some(&operator),
            Some(json!({}).to_string()),
            &[("X-Vouch-OTP", &code)],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a code older than the last used one is refused: {v}"
    );
    h.clock.advance_micros(60_000_000);
    let code = totp(&secret, h.now_step());
    let (status, _, v) = h
        .call_full(
            Method::POST,
            "/api/v1/certificates/1234/revoke",
            Some(&operator),
            Some(json!({}).to_string()),
            &[("X-Vouch-OTP", &code)],
        )
        .await;
    assert!(
        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
        "{status} {v}"
    );

    // A gateway asks for decisions and does nothing else.
    for (method, uri) in [
        (Method::GET, "/api/v1/devices"),
        (Method::GET, "/api/v1/policies"),
        (Method::GET, "/api/v1/audit/events"),
        (Method::GET, "/metrics"),
    ] {
        let (status, v) = h.call(method, uri, Some(&gw), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}: {v}");
        assert!(v["detail"].as_str().unwrap().contains("gateway"), "{v}");
    }
    let (status, v) = h
        .call(Method::POST, "/api/v1/devices", Some(&gw), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = h
        .authorize(&gw, publish(&vouch_types::DeviceId::new().to_string(), "x"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");

    // Each refusal is logged with the operator and the action.
    let log = h.audit().await;
    let refused: Vec<(&str, &str)> = log
        .iter()
        .filter(|e| e["action"] == "access.denied" && e["after"]["principal"]["type"] == "Operator")
        .map(|e| {
            (
                e["after"]["principal"]["role"].as_str().unwrap(),
                e["after"]["action"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("auditor", "policies.write"),
        ("operator", "policies.write"),
        ("gateway", "devices.read"),
        ("gateway", "devices.write"),
        ("gateway", "audit.read"),
    ] {
        assert!(refused.contains(&want), "{want:?} in {refused:?}");
    }
    assert_eq!(h.count("device.").await, 0, "the gateway created nothing");
}

/// Telemetry only from trusted devices: reads `context.trust`, which Vouch fills from the record.
const TELEMETRY_NEEDS_TRUST: &str = "@id(\"telemetry-needs-trust\")\nforbid(\n  principal is Vouch::Device,\n  \
                                     action == Vouch::Action::\"publish\",\n  \
                                     resource in Vouch::TopicFilter::\"devices/${device.id}/telemetry\"\n)\n\
                                     unless { context has trust && context.trust >= 70 };";

#[tokio::test]
async fn the_authorize_route_reads_the_trust_score_as_the_gateway_does() {
    use vouch_store::{Change, DeviceEdit};
    let h = Harness::new().await;
    let gw = h.role_token(Role::Gateway).await;
    let (status, v) = h
        .put_policy(
            "telemetry-needs-trust",
            json!({"text": TELEMETRY_NEEDS_TRUST}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Scores as the trust service writes them onto the record.
    let score = |id: &str, s: u8| {
        let id: vouch_types::DeviceId = id.parse().unwrap();
        let patch = vouch_types::DevicePatch {
            labels: Some(format!("trust/score={s}").parse().unwrap()),
            ..Default::default()
        };
        let change = Change {
            actor: vouch_types::Actor::System("trust".into()),
            reason: None,
            at: h.clock.now(),
        };
        let store = h.store.clone();
        async move {
            store
                .edit_device(id, DeviceEdit::Patch(Box::new(patch)), None, change)
                .await
                .unwrap();
        }
    };
    let trusted = h.active_device().await;
    score(&trusted, 90).await;
    let doubtful = h.active_device().await;
    score(&doubtful, 20).await;
    let unscored = h.active_device().await;

    for (id, allowed) in [(&trusted, true), (&doubtful, false), (&unscored, false)] {
        let (status, v) = h
            .authorize(&gw, publish(id, &format!("devices/{id}/telemetry")))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        // The policy is in shadow mode: its outcome is the shadow one (absent where it does not apply).
        let shadow_allows = v.get("shadow").is_none_or(|s| s["allowed"] == true);
        assert_eq!(shadow_allows, allowed, "{id}: {v}");
    }
}
