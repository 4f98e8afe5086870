//! Hostile input to the recursive parsers behind the API, in-process over a real SQLite store: policy texts
//! nesting or chaining up to 100,000 deep through validate (the auditor's token is enough) and PUT, each
//! answered 413/422 naming the limit while the server keeps answering; oversized and overfull policy
//! texts; JSON bodies nested 100,000 deep on every kind of JSON route (serde_json's recursion limit).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::Harness;
use serde_json::{Value, json};
use vouch_policy::limits::{MAX_POLICIES_PER_TEXT, MAX_TEXT_BYTES};
use vouch_types::Role;

fn when(cond: &str) -> String {
    format!(
        "@id(\"deep\")\npermit(principal is Vouch::Device, action == Vouch::Action::\"publish\", \
         resource) when {{ {cond} }};"
    )
}

/// The shapes Cedar recurses over, `n` deep.
fn hostile(shape: &str, n: usize) -> String {
    match shape {
        "parens" => when(&format!("{}true{}", "(".repeat(n), ")".repeat(n))),
        "lists" => when(&format!("{}1{}.isEmpty()", "[".repeat(n), "]".repeat(n))),
        "records" => when(&format!("{}1{} == {{}}", "{a:".repeat(n), "}".repeat(n))),
        "if" => when(&format!(
            "{}true{}",
            "if true then ".repeat(n),
            " else false".repeat(n)
        )),
        "not" => when(&format!("{}true{}", "!(".repeat(n), ")".repeat(n))),
        "bangs" => when(&format!("{}true", "!".repeat(n))),
        "dashes" => when(&format!("{}1 == 0", "- ".repeat(n))),
        "and" => when(&vec!["context.hour >= 0"; n].join(" && ")),
        "or" => when(&vec!["a||a"; n / 2].join("||")),
        "add" => when(&format!("{} == 0", vec!["1"; n].join("+"))),
        "member" => when(&format!("context{} == 1", ".a".repeat(n))),
        "whens" => format!(
            "@id(\"deep\") permit(principal is Vouch::Device, action, resource) {};",
            "when{1}".repeat(n)
        ),
        _ => panic!("unknown shape {shape}"),
    }
}

const SHAPES: &[&str] = &[
    "parens", "lists", "records", "if", "not", "bangs", "dashes", "and", "or", "add", "member",
    "whens",
];

impl Harness {
    async fn validate(&self, token: &str, text: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/policies/validate",
            Some(token),
            Some(json!({ "text": text })),
        )
        .await
    }

    async fn still_answers(&self) {
        let (status, v) = self.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
}

/// The status and problem kind a refusal must have: 413 when the text is too large to look at, 422 naming
/// the nesting or depth limit otherwise.
fn assert_refused(shape: &str, n: usize, len: usize, status: StatusCode, v: &Value) {
    let detail = v["detail"].as_str().unwrap_or_default();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        // Only what is over a size limit may be refused for its size.
        assert!(len > 64 * 1024, "{shape} {n}: {v}");
        assert!(
            detail.contains("at most 256 KiB") || detail.contains("the limit is"),
            "{shape} {n}: {v}"
        );
        return;
    }
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{shape} {n}: {v}");
    assert_eq!(
        v["type"], "urn:vouch:problem:policy-too-complex",
        "{shape} {n}: {v}"
    );
    assert!(
        detail.contains("the limit is 32") || detail.contains("the limit is 256"),
        "{shape} {n}: {v}"
    );
    assert_eq!(v["status"], 422);
}

#[tokio::test]
async fn validate_refuses_every_deep_shape_naming_the_limit_and_keeps_answering() {
    let h = Harness::new().await;
    let auditor = h.token(Role::Auditor, None).await;
    for &shape in SHAPES {
        for n in [300, 1_000, 10_000, 100_000] {
            let text = hostile(shape, n);
            let (status, v) = h.validate(&auditor, &text).await;
            assert_refused(shape, n, text.len(), status, &v);
            h.still_answers().await;
        }
    }
    // The reported finding, word for word: 150 parentheses.
    let (status, v) = h.validate(&auditor, &hostile("parens", 150)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        v["detail"],
        "policy nests 151 levels deep (brackets and if-then-else count one level each); the limit is 32"
    );
    // Below the limits the same shapes are Cedar's to judge.
    let (status, v) = h.validate(&auditor, &hostile("parens", 20)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = h.validate(&auditor, &hostile("and", 200)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn put_refuses_deep_policies_and_stores_nothing() {
    let h = Harness::new().await;
    for &shape in SHAPES {
        for n in [300, 100_000] {
            let text = hostile(shape, n);
            let (status, v) = h
                .call(
                    Method::PUT,
                    "/api/v1/policies/deep",
                    Some(&h.admin),
                    Some(json!({ "text": text })),
                )
                .await;
            assert_refused(shape, n, text.len(), status, &v);
            if status == StatusCode::UNPROCESSABLE_ENTITY {
                assert!(
                    v["detail"].as_str().unwrap().starts_with("policy `deep`: "),
                    "{v}"
                );
            }
        }
    }
    let (status, _) = h
        .call(Method::GET, "/api/v1/policies/deep", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
    h.still_answers().await;
}

#[tokio::test]
async fn policy_bodies_and_texts_are_bounded() {
    let h = Harness::new().await;
    let auditor = h.token(Role::Auditor, None).await;
    // A body past 256 KiB: 413 naming the limit, before anything is parsed.
    let big = format!("// {}", "x".repeat(MAX_TEXT_BYTES));
    let (status, v) = h.validate(&auditor, &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["detail"], "a policy request body must be at most 256 KiB");
    let (status, v) = h
        .call(
            Method::PUT,
            "/api/v1/policies/big",
            Some(&h.admin),
            Some(json!({ "text": big })),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    // One policy past 64 KiB (in a body that fits): 413 naming the policy's limit.
    let long = when(&format!("true // {}", "x".repeat(70 * 1024)));
    let (status, v) = h
        .call(
            Method::PUT,
            "/api/v1/policies/deep",
            Some(&h.admin),
            Some(json!({ "text": long })),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["type"], "urn:vouch:problem:policy-too-large");
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("the limit is 65536 bytes"),
        "{v}"
    );
    // More policies than one text may hold: 422 naming the count.
    let many: String = (0..=MAX_POLICIES_PER_TEXT)
        .map(|i| format!("@id(\"p{i}\") permit(principal is Vouch::Device, action, resource);\n"))
        .collect();
    let (status, v) = h.validate(&auditor, &many).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(
        v["detail"],
        format!(
            "the policy text holds {} policies; the limit is {MAX_POLICIES_PER_TEXT}",
            MAX_POLICIES_PER_TEXT + 1
        )
    );
    h.still_answers().await;
}

/// `[[[…]]]` nested `n` deep.
fn deep_json(n: usize) -> String {
    format!("{}{}", "[".repeat(n), "]".repeat(n))
}

#[tokio::test]
async fn json_bodies_nested_100000_deep_are_refused_on_every_kind_of_route() {
    let h = Harness::new().await;
    let gateway = h.token(Role::Gateway, None).await;
    let (status, d) = h
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&h.admin),
            Some(json!({"class": "sensor"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    for n in [129, 1_000, 100_000] {
        let deep = deep_json(n);
        // A `serde_json::Value` body (authorize), with the depth in its free-form context, in a batch, and
        // as the whole body.
        let bodies = [
            format!(
                r#"{{"principal":{{"type":"Device","id":"{id}"}},"action":"publish","resource":{{"type":"Topic","id":"t"}},"context":{{"location":{deep}}}}}"#
            ),
            format!(r#"{{"requests":[{deep}]}}"#),
            deep.clone(),
        ];
        for body in bodies {
            let (status, _, v) = h
                .call_full(
                    Method::POST,
                    "/api/v1/authorize",
                    Some(&gateway),
                    Some(body),
                    &[],
                )
                .await;
            assert!(status.is_client_error(), "{n}: {status} {v}");
        }
        // A typed body (a map of values: PATCH), a struct (create), a policy body (validate).
        for (method, uri) in [
            (Method::PATCH, format!("/api/v1/devices/{id}")),
            (Method::POST, "/api/v1/devices".to_owned()),
            (Method::POST, "/api/v1/policies/validate".to_owned()),
        ] {
            let body = format!(r#"{{"labels":{deep}}}"#);
            let (status, _, v) = h
                .call_full(method.clone(), &uri, Some(&h.admin), Some(body), &[])
                .await;
            assert!(status.is_client_error(), "{uri} {n}: {status} {v}");
            // A typed field refuses the first `[` it does not expect; a `Value` goes down to the limit.
            if method == Method::PATCH {
                assert!(
                    v["detail"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("recursion limit"),
                    "{uri} {n}: {v}"
                );
            }
        }
        h.still_answers().await;
    }
    // Just within serde_json's limit (128), the value is parsed, refused by its shape, and dropped.
    let deep = deep_json(126);
    let body = format!(
        r#"{{"principal":{{"type":"Device","id":"{id}"}},"action":"publish","resource":{{"type":"Topic","id":"t"}},"context":{{"location":{deep}}}}}"#
    );
    let (status, _, v) = h
        .call_full(
            Method::POST,
            "/api/v1/authorize",
            Some(&gateway),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
}

/// Writes `text` as policy `id` straight into the store, past the engine (as editing the database would).
async fn smuggle(h: &Harness, id: &str, text: String) {
    h.store
        .write_policies(
            vec![vouch_store::PolicyWrite {
                id: id.parse().unwrap(),
                op: vouch_store::PolicyOp::Put {
                    text,
                    mode: vouch_types::PolicyMode::Enforce,
                },
                expected_version: None,
            }],
            vouch_store::Change {
                actor: vouch_types::Actor::System("test".into()),
                reason: None,
                at: vouch_types::Timestamp::from_unix_micros(common::NOW),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_deep_policy_smuggled_into_the_store_never_reaches_cedar() {
    let h = Harness::new().await;
    let version = h.decisions.reload().await.unwrap();
    smuggle(&h, "deep", hostile("parens", 30_000)).await;
    // The running decision point refuses to load it, names the limit, and keeps the set in force.
    let e = h.decisions.reload().await.unwrap_err().to_string();
    assert!(
        e.contains("policy `deep`: policy nests 30001 levels deep"),
        "{e}"
    );
    assert_eq!(h.decisions.engine().version(), version);
    h.still_answers().await;
    let (status, v) = h
        .call(Method::GET, "/api/v1/devices", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "operators are still decided: {v}");
    // A decision point starting on that store refuses to start, naming it: no crash.
    let e = vouch_api::decide::DecisionPoint::start(h.store.clone(), h.clock.clone(), None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("the limit is 32"), "{e}");
    // Every other shape the same way.
    for &shape in SHAPES {
        smuggle(&h, "deep", hostile(shape, 100_000)).await;
        let e = h.decisions.reload().await.unwrap_err().to_string();
        assert!(e.contains("the limit is"), "{shape}: {e}");
        assert_eq!(h.decisions.engine().version(), version);
    }
}

#[tokio::test]
async fn the_deepest_accepted_policy_is_stored_and_decided_on_the_test_threads_stack() {
    // The test thread has 2 MiB of stack, as a tokio worker: /authorize decides there.
    let h = Harness::new().await;
    let deepest = |n: usize| when(&format!("{} >= 0", vec!["context.hour"; n].join(" + ")));
    let mut n = 1;
    while vouch_policy::limits::scan(&deepest(n + 1)).is_ok() {
        n += 1;
    }
    let (status, v) = h
        .call(
            Method::PUT,
            "/api/v1/policies/deep",
            Some(&h.admin),
            Some(json!({ "text": deepest(n), "mode": "shadow" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, d) = h
        .call(
            Method::POST,
            "/api/v1/devices",
            Some(&h.admin),
            Some(json!({"class": "sensor"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    let id = d["id"].as_str().unwrap();
    let (status, d) = h
        .call(
            Method::POST,
            &format!("/api/v1/devices/{id}/transition"),
            Some(&h.admin),
            Some(json!({"to": "active"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let gateway = h.token(Role::Gateway, None).await;
    let (status, v) = h
        .call(
            Method::POST,
            "/api/v1/authorize",
            Some(&gateway),
            Some(json!({
                "principal": {"type": "Device", "id": id},
                "action": "publish",
                "resource": {"type": "Topic", "id": format!("devices/{id}/t")},
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["decision"], "allow", "{v}");
    assert!(v.get("errors").is_none(), "evaluated without error: {v}");
    assert_eq!(
        v["shadow"]["policies"],
        json!(["deep", "own-topics"]),
        "{v}"
    );
}
