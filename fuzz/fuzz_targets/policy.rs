//! The policy engine's edges: any text is a valid policy set or a list of problems (never a panic, never a
//! stack overflow), exactly as `POST /api/v1/policies/validate` checks it (pre-scan, split, checked with the
//! stored set); whatever the pre-scan accepts, Cedar's tree is no deeper than the scan's bound; any topic
//! or grant text is parsed or refused; what parses is decided without a panic.
#![no_main]

use std::str::FromStr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vouch_policy::{
    DEFAULTS, DeviceAction, DeviceContext, DeviceRequest, Engine, GrantFilter, GrantIndex,
    PolicySource, Resource, TopicFilter, TopicName, split_policies,
};
use vouch_types::{PolicyMode, Timestamp};

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::new().expect("the built-in schema and policies compile"))
}

/// What a new store holds: the set a validate request is checked with.
fn stored() -> &'static [PolicySource] {
    static S: OnceLock<Vec<PolicySource>> = OnceLock::new();
    S.get_or_init(|| split_policies(DEFAULTS, PolicyMode::Enforce).expect("the defaults split"))
}

/// The nesting depth of a JSON value, counted without recursion.
fn json_depth(v: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 1)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            serde_json::Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            serde_json::Value::Object(o) => stack.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    deepest
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Policy text exactly as validate (and `vouch policy validate`, `add`, `test`) take it.
    let _ = engine().check_text(stored(), s, PolicyMode::Shadow);
    // One policy's text, as PUT /api/v1/policies/{id} and the store at start hand it over.
    let _ = engine().check(&[PolicySource {
        id: "fuzz".parse().expect("a valid id"),
        text: s.to_owned(),
        mode: PolicyMode::Enforce,
    }]);
    // The pre-scan bounds what Cedar builds: Cedar's JSON form of a policy takes two levels per node of
    // its tree (an operator, then its operands), so it is never deeper than twice the scan's bound (plus the
    // policy's own frame). Parsed here on the fuzzer's main thread (8 MiB): the scan's limits keep it small.
    if let Ok(shape) = vouch_policy::limits::scan(s)
        && let Ok(set) = cedar_policy::PolicySet::from_str(s)
    {
        for p in set.policies() {
            if let Ok(json) = p.to_json() {
                let depth = json_depth(&json);
                assert!(
                    depth <= 2 * shape.depth + 16,
                    "the scan's bound {} is below Cedar's tree ({depth} JSON levels)",
                    shape.depth
                );
            }
        }
    }
    // Topics and grants: the trie agrees with direct matching.
    let (a, b) = s.split_once('\n').unwrap_or((s, "a/b"));
    if let (Ok(g), Ok(t)) = (GrantFilter::new(a), TopicName::new(b)) {
        let mut idx = GrantIndex::default();
        idx.insert(&g, 0);
        let mut hits = Vec::new();
        idx.matching(&t, "dev", &mut hits);
        let direct = g.expand("dev").map(|f| f.matches(&t)).unwrap_or(false);
        assert_eq!(!hits.is_empty(), direct, "{a:?} {b:?}");
    }
    // A request from JSON (the decision log's and the API's shape) decides without a panic.
    if let Ok(req) = serde_json::from_str::<DeviceRequest>(s) {
        let _ = engine().decide_device(&req);
    }
    if let Ok(f) = TopicFilter::new(a) {
        let _ = engine().decide_device(&DeviceRequest {
            device: serde_json::from_value(serde_json::json!({
                "id": "0190f5a2-7c1e-7000-8000-000000000001", "class": "sensor", "state": "active"
            }))
            .expect("a valid device"),
            action: DeviceAction::Subscribe,
            resource: Resource::Subscription(f),
            context: DeviceContext::at(Timestamp::EPOCH),
        });
    }
});
