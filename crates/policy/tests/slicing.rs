//! Slicing must never change a decision: generated policy sets and requests are decided through the index
//! and against the whole set (`Engine::with_slicing_check` records any disagreement as an error).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use vouch_policy::{
    DeviceAction, DeviceContext, DeviceFacts, DeviceRequest, Engine, PolicySource, Resource,
    TopicFilter, TopicName,
};
use vouch_types::{DeviceId, DeviceState, PolicyMode, Timestamp, TrustScore};

const DEVICES: [&str; 3] = ["d0", "d1", "d2"];
const GROUPS: [&str; 3] = ["g0", "g1", "quarantine"];
const TOPICS: [&str; 4] = ["a/b", "a/c", "devices/x/t", "$SYS/x"];
const GRANTS: [&str; 5] = ["a/#", "a/+", "#", "devices/${device.id}/#", "$SYS/#"];

fn id(n: &str) -> DeviceId {
    DeviceId::derived(n)
}

fn principal(effect_permit: bool) -> impl Strategy<Value = String> {
    let mut options = vec![
        Just("principal is Vouch::Device".to_owned()).boxed(),
        (0..3usize)
            .prop_map(|i| format!("principal == Vouch::Device::\"{}\"", id(DEVICES[i])))
            .boxed(),
        (0..3usize)
            .prop_map(|i| format!("principal in Vouch::DeviceGroup::\"{}\"", GROUPS[i]))
            .boxed(),
    ];
    if !effect_permit {
        options.push(Just("principal".to_owned()).boxed());
    }
    proptest::strategy::Union::new(options)
}

fn action() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("action".to_owned()),
        Just("action == Vouch::Action::\"publish\"".to_owned()),
        Just("action == Vouch::Action::\"subscribe\"".to_owned()),
        Just("action in [Vouch::Action::\"publish\", Vouch::Action::\"subscribe\"]".to_owned()),
        Just("action == Vouch::Action::\"connect\"".to_owned()),
    ]
}

fn resource() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("resource".to_owned()),
        (0..5usize).prop_map(|i| format!("resource in Vouch::TopicFilter::\"{}\"", GRANTS[i])),
        (0..4usize).prop_map(|i| format!("resource == Vouch::Topic::\"{}\"", TOPICS[i])),
        Just("resource is Vouch::Topic".to_owned()),
        Just("resource is Vouch::Service".to_owned()),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (0..24i64).prop_map(|h| format!(" when {{ context.hour < {h} }}")),
        (0..100i64).prop_map(|t| format!(" when {{ context has trust && context.trust >= {t} }}")),
        Just(" unless { principal.class == \"camera\" }".to_owned()),
        (0..5usize).prop_map(|i| format!(
            " when {{ resource in Vouch::TopicFilter::\"{}\" }}",
            GRANTS[i]
        )),
    ]
}

fn policy() -> impl Strategy<Value = (bool, String, bool)> {
    any::<bool>().prop_flat_map(|permit| {
        (
            principal(permit),
            action(),
            resource(),
            condition(),
            any::<bool>(),
        )
            .prop_map(move |(p, a, r, c, shadow)| {
                let effect = if permit { "permit" } else { "forbid" };
                (permit, format!("{effect}({p}, {a}, {r}){c};"), shadow)
            })
    })
}

fn request() -> impl Strategy<Value = DeviceRequest> {
    (
        0..3usize,
        prop::collection::vec(0..3usize, 0..3),
        0..3usize,
        0..6usize,
        0..24i64,
        prop::option::of(0..=100u8),
        0..3usize,
    )
        .prop_map(|(d, groups, kind, target, hour, trust, state)| {
            let device = DeviceFacts {
                id: id(DEVICES[d]),
                class: if d == 2 { "camera" } else { "sensor" }.into(),
                state: [
                    DeviceState::Active,
                    DeviceState::Restricted,
                    DeviceState::Suspended,
                ][state],
                vendor: None,
                model: None,
                firmware: None,
                zone: None,
                serial: None,
                labels: vec![],
                groups: groups.into_iter().map(|g| GROUPS[g].to_owned()).collect(),
            };
            let own = format!("devices/{}/t", id(DEVICES[d]));
            let topics = [
                TOPICS[0],
                TOPICS[1],
                TOPICS[2],
                TOPICS[3],
                own.as_str(),
                "a",
            ];
            let (action, resource) = match kind {
                0 => (
                    DeviceAction::Publish,
                    Resource::Topic(TopicName::new(topics[target]).unwrap()),
                ),
                1 => {
                    let filters = ["a/#", "a/+", "#", "$SYS/#", own.as_str(), "+/b"];
                    (
                        DeviceAction::Subscribe,
                        Resource::Subscription(TopicFilter::new(filters[target]).unwrap()),
                    )
                }
                _ => (
                    DeviceAction::Connect,
                    Resource::Service("mqtt".parse().unwrap()),
                ),
            };
            DeviceRequest {
                device,
                action,
                resource,
                context: DeviceContext {
                    trust: trust.map(|t| TrustScore::new(t).unwrap()),
                    ..DeviceContext::at(Timestamp::from_unix_micros(hour * 3_600_000_000))
                },
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn slicing_never_changes_a_decision(
        policies in prop::collection::vec(policy(), 0..25),
        requests in prop::collection::vec(request(), 1..20),
    ) {
        let engine = Engine::new().unwrap().with_slicing_check();
        let sources: Vec<PolicySource> = policies
            .iter()
            .enumerate()
            .map(|(i, (_, text, shadow))| PolicySource {
                id: format!("p{i}").parse().unwrap(),
                text: text.clone(),
                mode: if *shadow { PolicyMode::Shadow } else { PolicyMode::Enforce },
            })
            // Strict validation refuses some generated combinations (`principal.class` on any principal):
            // keep the ones Cedar accepts.
            .filter(|src| engine.check(std::slice::from_ref(src)).is_ok())
            .collect();
        let compiled = engine.compile(&sources, 1).unwrap();
        engine.install(compiled);
        for r in &requests {
            let d = engine.decide_device(r);
            prop_assert!(d.errors.is_empty(), "{:?} for {:?}", d.errors, r);
        }
    }
}
