//! Least-privilege scenarios, decided end to end by the engine: own topics only, quarantine reaches only the
//! update topics, low trust cannot publish, shadow mode allows but reports, operators by role and MFA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vouch_policy::{
    DEFAULTS, DeviceAction, DeviceContext, DeviceFacts, DeviceRequest, Engine, OperatorRequest,
    PolicySource, Resource, TopicFilter, TopicName, split_policies,
};
use vouch_types::{
    DeviceId, DeviceState, Permission, PolicyMode, Role, Timestamp, TokenId, TrustScore,
};

const NOW: Timestamp = Timestamp::from_unix_micros(1_795_791_600_000_000);

fn device(n: &str, groups: &[&str]) -> DeviceFacts {
    DeviceFacts {
        id: DeviceId::derived(n),
        class: "sensor".into(),
        state: DeviceState::Active,
        vendor: Some("Acme".into()),
        model: None,
        firmware: Some("2.1.0".into()),
        zone: Some("plant-1/line-3".into()),
        serial: None,
        labels: vec![("site".into(), "berlin".into())],
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn publish(d: &DeviceFacts, topic: &str, ctx: DeviceContext) -> DeviceRequest {
    DeviceRequest {
        device: d.clone(),
        action: DeviceAction::Publish,
        resource: Resource::Topic(TopicName::new(topic).unwrap()),
        context: ctx,
    }
}

fn subscribe(d: &DeviceFacts, filter: &str) -> DeviceRequest {
    DeviceRequest {
        device: d.clone(),
        action: DeviceAction::Subscribe,
        resource: Resource::Subscription(TopicFilter::new(filter).unwrap()),
        context: DeviceContext::at(NOW),
    }
}

fn engine(extra: &str, mode: PolicyMode) -> Engine {
    let engine = Engine::new().unwrap().with_slicing_check();
    let mut sources = split_policies(DEFAULTS, PolicyMode::Enforce).unwrap();
    if !extra.is_empty() {
        sources.extend(split_policies(extra, mode).unwrap());
    }
    let compiled = engine.compile(&sources, 1).unwrap();
    engine.install(compiled);
    engine
}

fn allowed(e: &Engine, r: &DeviceRequest) -> bool {
    let d = e.decide_device(r);
    assert!(d.errors.is_empty(), "{:?}", d.errors);
    d.allowed
}

#[test]
fn a_device_reaches_only_its_own_tree() {
    let e = engine("", PolicyMode::Enforce);
    let a = device("A", &[]);
    let b = device("B", &[]);
    let ctx = || DeviceContext::at(NOW);
    assert!(allowed(
        &e,
        &publish(&a, &format!("devices/{}/telemetry", a.id), ctx())
    ));
    assert!(
        allowed(&e, &publish(&a, &format!("devices/{}", a.id), ctx())),
        "# includes the parent"
    );
    assert!(!allowed(
        &e,
        &publish(&a, &format!("devices/{}/telemetry", b.id), ctx())
    ));
    assert!(!allowed(&e, &publish(&a, "plant/line-3/telemetry", ctx())));
    assert!(!allowed(&e, &publish(&a, "$SYS/broker/clients", ctx())));
    // Subscriptions: inside its own tree only; wildcards that reach other devices are refused.
    assert!(allowed(
        &e,
        &subscribe(&a, &format!("devices/{}/cmd/+", a.id))
    ));
    assert!(allowed(&e, &subscribe(&a, &format!("devices/{}/#", a.id))));
    assert!(!allowed(&e, &subscribe(&a, "devices/+/cmd/#")));
    assert!(!allowed(&e, &subscribe(&a, "devices/#")));
    assert!(!allowed(&e, &subscribe(&a, "#")));
    assert!(!allowed(&e, &subscribe(&a, "+/+/cmd")));
    assert!(!allowed(&e, &subscribe(&a, "$SYS/#")));
    let d = e.decide_device(&publish(&a, &format!("devices/{}/x", a.id), ctx()));
    assert_eq!(d.policies, vec!["own-topics"]);
    let d = e.decide_device(&publish(&a, "elsewhere", ctx()));
    assert!(d.policies.is_empty() && d.reason().contains("no policy permits"));
}

#[test]
fn quarantine_reaches_only_the_update_topics() {
    let e = engine("", PolicyMode::Enforce);
    let mut a = device("A", &[]);
    a.state = DeviceState::Restricted;
    let ctx = || DeviceContext::at(NOW);
    assert!(!allowed(
        &e,
        &publish(&a, &format!("devices/{}/telemetry", a.id), ctx())
    ));
    assert!(allowed(
        &e,
        &publish(&a, &format!("devices/{}/update/status", a.id), ctx())
    ));
    assert!(allowed(
        &e,
        &subscribe(&a, &format!("devices/{}/update/#", a.id))
    ));
    assert!(!allowed(&e, &subscribe(&a, &format!("devices/{}/#", a.id))));
    let d = e.decide_device(&publish(&a, &format!("devices/{}/telemetry", a.id), ctx()));
    assert_eq!(d.policies, vec!["quarantine-update-only"]);
    // The same holds for a device placed in the quarantine group by hand.
    let q = device("Q", &["quarantine"]);
    assert!(!allowed(
        &e,
        &publish(&q, &format!("devices/{}/telemetry", q.id), ctx())
    ));
    // Suspended and retired devices may do nothing, whatever a policy permits.
    for state in [
        DeviceState::Suspended,
        DeviceState::Retired,
        DeviceState::Onboarding,
    ] {
        let mut s = device("S", &[]);
        s.state = state;
        let d = e.decide_device(&publish(&s, &format!("devices/{}/update/x", s.id), ctx()));
        assert!(!d.allowed);
        assert_eq!(d.policies, vec!["vouch.devices.lifecycle"]);
    }
}

const PLANT: &str = r#"
@id("plant-telemetry")
permit(
  principal in Vouch::DeviceGroup::"plant-sensors",
  action == Vouch::Action::"publish",
  resource in Vouch::TopicFilter::"plant/+/telemetry"
) when { context has trust && context.trust >= 70 && context has firmware_current && context.firmware_current };
"#;

#[test]
fn low_trust_cannot_publish() {
    let e = engine(PLANT, PolicyMode::Enforce);
    let a = device("A", &["plant-sensors"]);
    let with = |trust: u8, fw: Option<bool>| DeviceContext {
        trust: Some(TrustScore::new(trust).unwrap()),
        firmware_current: fw,
        ..DeviceContext::at(NOW)
    };
    assert!(allowed(
        &e,
        &publish(&a, "plant/line-3/telemetry", with(90, Some(true)))
    ));
    assert!(allowed(
        &e,
        &publish(&a, "plant/line-3/telemetry", with(70, Some(true)))
    ));
    assert!(!allowed(
        &e,
        &publish(&a, "plant/line-3/telemetry", with(69, Some(true)))
    ));
    assert!(!allowed(
        &e,
        &publish(&a, "plant/line-3/telemetry", with(90, Some(false)))
    ));
    assert!(
        !allowed(&e, &publish(&a, "plant/line-3/telemetry", with(90, None))),
        "unknown is not current"
    );
    assert!(
        !allowed(
            &e,
            &publish(&a, "plant/line-3/telemetry", DeviceContext::at(NOW))
        ),
        "unscored"
    );
    assert!(!allowed(
        &e,
        &publish(&a, "plant/line-3/alarms", with(90, Some(true)))
    ));
    assert!(!allowed(
        &e,
        &publish(&a, "plant/line-3/x/telemetry", with(90, Some(true)))
    ));
    // Not in the group: no grant.
    let b = device("B", &[]);
    assert!(!allowed(
        &e,
        &publish(&b, "plant/line-3/telemetry", with(90, Some(true)))
    ));
}

#[test]
fn shadow_mode_allows_but_reports() {
    let deny_night = r#"
@id("no-night-publish")
forbid(principal is Vouch::Device, action == Vouch::Action::"publish", resource)
when { context.hour < 6 || context.hour >= 14 };
"#;
    let e = engine(deny_night, PolicyMode::Shadow);
    let a = device("A", &[]);
    let d = e.decide_device(&publish(
        &a,
        &format!("devices/{}/t", a.id),
        DeviceContext::at(NOW),
    ));
    assert!(d.allowed, "shadow policies never deny");
    assert!(d.would_deny());
    assert_eq!(
        d.shadow.as_ref().unwrap().policies,
        vec!["no-night-publish"]
    );
    // Enforced, the same policy denies.
    let e = engine(deny_night, PolicyMode::Enforce);
    let d = e.decide_device(&publish(
        &a,
        &format!("devices/{}/t", a.id),
        DeviceContext::at(NOW),
    ));
    assert!(!d.allowed && d.policies == vec!["no-night-publish"]);
    // A shadow permit shows what it would open, without opening it.
    let e = engine(PLANT, PolicyMode::Shadow);
    let p = device("P", &["plant-sensors"]);
    let ctx = DeviceContext {
        trust: Some(TrustScore::new(95).unwrap()),
        firmware_current: Some(true),
        ..DeviceContext::at(NOW)
    };
    let d = e.decide_device(&publish(&p, "plant/l/telemetry", ctx));
    assert!(!d.allowed && d.would_allow());
}

#[test]
fn labels_zones_and_classes_are_readable() {
    let rules = r#"
@id("berlin-assets")
permit(principal is Vouch::Device, action == Vouch::Action::"read", resource in Vouch::AssetGroup::"line-3")
when { principal.hasTag("site") && principal.getTag("site") == "berlin"
       && principal has zone && context has location && context.location == principal.zone };
"#;
    let e = engine(rules, PolicyMode::Enforce);
    let a = device("A", &[]);
    let req = |loc: &str| DeviceRequest {
        device: a.clone(),
        action: DeviceAction::Read,
        resource: Resource::Asset("plc-7/holding-registers".parse().unwrap()),
        context: DeviceContext {
            location: Some(loc.into()),
            ..DeviceContext::at(NOW)
        },
    };
    // Assets carry no groups in the request yet, so `in AssetGroup` does not hold: denied either way.
    assert!(!allowed(&e, &req("plant-1/line-3")));
    let rules = rules.replace(r#" in Vouch::AssetGroup::"line-3""#, "");
    let e = engine(&rules, PolicyMode::Enforce);
    assert!(allowed(&e, &req("plant-1/line-3")));
    assert!(!allowed(&e, &req("plant-2")), "seen outside its zone");
}

#[test]
fn invalid_policies_are_refused_with_cedars_diagnostics() {
    let e = Engine::new().unwrap();
    let check = |text: &str| {
        let src = PolicySource {
            id: "p".parse().unwrap(),
            text: text.into(),
            mode: PolicyMode::Shadow,
        };
        e.check(&[src]).unwrap_err().to_string()
    };
    let unknown_type =
        check(r#"permit(principal is Vouch::Device, action, resource in Vouch::Bucket::"x");"#);
    assert!(unknown_type.contains("Bucket"), "{unknown_type}");
    let unknown_attr = check(
        r#"permit(principal is Vouch::Device, action == Vouch::Action::"publish", resource) when { principal.colour == "red" };"#,
    );
    assert!(unknown_attr.contains("colour"), "{unknown_attr}");
    let syntax = check("permit(principal, action, resource");
    assert!(syntax.contains("does not parse"), "{syntax}");
    let two = check(
        "permit(principal is Vouch::Device, action, resource); permit(principal is Vouch::Device, action, resource);",
    );
    assert!(two.contains("exactly one"), "{two}");
    let everyone = check("permit(principal, action, resource);");
    assert!(everyone.contains("device principals"), "{everyone}");
    let operator = check(r#"permit(principal in Vouch::Role::"auditor", action, resource);"#);
    assert!(operator.contains("device principals"), "{operator}");
    let bad_grant = check(
        r#"permit(principal is Vouch::Device, action == Vouch::Action::"publish", resource in Vouch::TopicFilter::"a/#/b");"#,
    );
    assert!(bad_grant.contains("topic grant"), "{bad_grant}");
    let bad_var = check(
        r#"permit(principal is Vouch::Device, action == Vouch::Action::"publish", resource in Vouch::TopicFilter::"d/${device.serial}");"#,
    );
    assert!(bad_var.contains("device.serial"), "{bad_var}");
    let wrong_id = check(r#"@id("other") permit(principal is Vouch::Device, action, resource);"#);
    assert!(wrong_id.contains("annotation"), "{wrong_id}");
    // A forbid on operators is allowed (it can only take away).
    let src = PolicySource {
        id: "no-auditors-at-night".parse().unwrap(),
        text: r#"forbid(principal in Vouch::Role::"auditor", action, resource) when { context.hour < 6 };"#.into(),
        mode: PolicyMode::Enforce,
    };
    e.check(&[src]).unwrap();
    assert!(
        split_policies(
            "permit(principal is Vouch::Device, action, resource);",
            PolicyMode::Shadow
        )
        .is_err()
    );
}

#[test]
fn operators_by_role_and_second_factor() {
    let e = engine("", PolicyMode::Enforce);
    let ask = |role: Role, permission: Permission, mfa: bool| {
        e.decide_operator(&OperatorRequest {
            token: TokenId::from_bytes([1; 8]),
            name: "ada".into(),
            role,
            permission,
            now: NOW,
            mfa,
        })
    };
    // The built-in list is the types' rule, complete.
    assert!(!vouch_policy::PRIVILEGED.contains(&""));
    for p in Permission::ALL {
        let privileged = vouch_policy::PRIVILEGED.contains(&p.action());
        assert_eq!(privileged, p.is_privileged(), "{p:?}");
        assert!(ask(Role::Admin, p, true).allowed, "{p:?}");
        assert_eq!(ask(Role::Admin, p, false).allowed, !privileged, "{p:?}");
    }
    assert!(ask(Role::Operator, Permission::DevicesWrite, false).allowed);
    assert!(!ask(Role::Operator, Permission::TokensManage, true).allowed);
    assert!(!ask(Role::Operator, Permission::CertificatesRevoke, false).allowed);
    assert!(ask(Role::Operator, Permission::CertificatesRevoke, true).allowed);
    assert!(!ask(Role::Operator, Permission::PoliciesEnforce, true).allowed);
    assert!(ask(Role::Auditor, Permission::AuditRead, false).allowed);
    assert!(!ask(Role::Auditor, Permission::DevicesWrite, true).allowed);
    assert!(ask(Role::Gateway, Permission::DecisionsRequest, false).allowed);
    assert!(!ask(Role::Gateway, Permission::DevicesRead, false).allowed);
    let d = ask(Role::Admin, Permission::CertificatesRevoke, false);
    assert_eq!(d.policies, vec!["vouch.mfa.privileged"]);
}

#[test]
fn versions_swap_while_deciding() {
    let e = std::sync::Arc::new(engine("", PolicyMode::Enforce));
    let a = device("A", &[]);
    let req = publish(&a, "plant/x/telemetry", DeviceContext::at(NOW));
    assert!(!e.decide_device(&req).allowed);
    let opened = r#"@id("open-plant") permit(principal is Vouch::Device, action == Vouch::Action::"publish", resource in Vouch::TopicFilter::"plant/#");"#;
    let mut sources = split_policies(DEFAULTS, PolicyMode::Enforce).unwrap();
    sources.extend(split_policies(opened, PolicyMode::Enforce).unwrap());
    let next = e.compile(&sources, 2).unwrap();
    let reader = {
        let e = e.clone();
        let req = req.clone();
        std::thread::spawn(move || {
            // Every answer is one version's answer, never a mixture.
            for _ in 0..2_000 {
                let d = e.decide_device(&req);
                assert_eq!(d.allowed, d.version == 2, "{d:?}");
            }
        })
    };
    e.install(next);
    reader.join().unwrap();
    assert!(e.decide_device(&req).allowed);
}
