//! The policy engine's edges: any text is a valid policy set or a list of problems (never a panic), and any
//! topic or grant text is parsed or refused; what parses is decided without a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vouch_policy::{
    DeviceAction, DeviceContext, DeviceRequest, Engine, GrantFilter, GrantIndex, PolicySource,
    Resource, TopicFilter, TopicName,
};
use vouch_types::{PolicyMode, Timestamp};

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| Engine::new().expect("the built-in schema and policies compile"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Policy text, as `vouch policy add` and PUT /api/v1/policies take it.
    if let Ok(sources) = vouch_policy::split_policies(s, PolicyMode::Shadow) {
        let _ = engine().check(&sources);
    }
    let _ = engine().check(&[PolicySource {
        id: "fuzz".parse().expect("a valid id"),
        text: s.to_owned(),
        mode: PolicyMode::Enforce,
    }]);
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
