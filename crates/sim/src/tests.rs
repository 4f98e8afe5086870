//! The model's promises: deterministic, truthful ground truth, realistic volumes, and each attack's signature.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use vouch_trust::FirmwareState;
use vouch_types::DeviceClass;

use crate::*;

fn big() -> FleetConfig {
    FleetConfig {
        devices: 1_000,
        window_secs: 300,
        windows: 288,
        warmup: 36,
        attacks_per_scenario: 5,
        ..FleetConfig::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_fleet_and_plans_in_any_order() {
    let a = Fleet::new(FleetConfig::default());
    let b = Fleet::new(FleetConfig::default());
    assert_eq!(a, b);
    let forward: Vec<WindowPlan> = (0..120).map(|w| a.plan(17, w)).collect();
    let backward: Vec<WindowPlan> = (0..120).rev().map(|w| b.plan(17, w)).collect();
    assert!(forward.iter().eq(backward.iter().rev()));
    for a_ in &a.attacks {
        assert_eq!(a.plan(a_.device, a_.start), b.plan(a_.device, a_.start));
    }
    assert_eq!(
        a.devices[3].id,
        vouch_types::DeviceId::derived("sim:7:3"),
        "ids are derived from the seed and index"
    );
    let other = Fleet::new(FleetConfig {
        seed: 8,
        ..FleetConfig::default()
    });
    assert_ne!(a.devices[0].id, other.devices[0].id);
    let differ = (0..300)
        .filter(|d| a.plan(*d, 50).publishes != other.plan(*d, 50).publishes)
        .count();
    assert!(differ > 200, "{differ}");
}

#[test]
fn ground_truth_is_consistent_with_the_plans() {
    for config in [FleetConfig::default(), big()] {
        let f = Fleet::new(config.clone());
        let c = &f.config;
        assert_eq!(
            f.attacks.len() as u32,
            c.attacks_per_scenario * c.scenarios.len() as u32
        );
        let victims: HashSet<u32> = f.attacks.iter().map(|a| a.device).collect();
        assert_eq!(victims.len(), f.attacks.len(), "one attack per device");
        let mut per: HashMap<Scenario, u32> = HashMap::new();
        for a in &f.attacks {
            *per.entry(a.scenario).or_default() += 1;
            assert!(a.start >= c.warmup, "{a:?}");
            assert_eq!(a.windows, c.attack_windows);
            assert!(
                a.start + a.windows + REST_AFTER_ATTACK <= c.windows,
                "room to behave again after {a:?}"
            );
            for w in 0..c.windows {
                let truth = f.attack(a.device, w);
                assert_eq!(truth, a.covers(w).then_some(a.scenario), "{a:?} {w}");
                assert_eq!(f.plan(a.device, w).attack, truth);
            }
        }
        assert!(
            per.values().all(|n| *n == c.attacks_per_scenario),
            "{per:?}"
        );
        // Spread over the run: some attack in each third of the attackable stretch.
        if f.attacks.len() >= 30 {
            let span = c.windows - c.warmup;
            for third in 0..3 {
                let (lo, hi) = (
                    c.warmup + third * span / 3,
                    c.warmup + (third + 1) * span / 3,
                );
                assert!(
                    f.attacks.iter().any(|a| (lo..hi).contains(&a.start)),
                    "an attack in [{lo}, {hi})"
                );
            }
        }
        // Everybody else is normal throughout.
        for d in (0..c.devices).filter(|d| !victims.contains(d)).step_by(7) {
            for w in (0..c.windows).step_by(5) {
                assert_eq!(f.attack(d, w), None);
                let p = f.plan(d, w);
                assert_eq!(p.attack, None);
                assert_eq!(p.zone, f.devices[d as usize].zone);
                assert!(p.publishes.iter().all(|p| p.own));
                assert_eq!((p.bad_connects, p.second_session), (0, false));
            }
        }
    }
}

#[test]
fn a_short_run_still_places_its_attacks_inside_it() {
    let f = Fleet::new(FleetConfig {
        devices: 5,
        windows: 10,
        warmup: 8,
        attack_windows: 6,
        ..FleetConfig::default()
    });
    assert_eq!(f.attacks.len(), 5, "no more attacks than devices");
    for a in &f.attacks {
        assert!(a.start >= 8 && a.start + a.windows <= 10, "{a:?}");
    }
    assert!(
        Fleet::new(FleetConfig {
            windows: 0,
            ..FleetConfig::default()
        })
        .attacks
        .is_empty()
    );
}

#[test]
fn class_mix_zones_and_firmware() {
    let f = Fleet::new(big());
    let mut n: HashMap<DeviceClass, u32> = HashMap::new();
    for d in &f.devices {
        *n.entry(d.class).or_default() += 1;
        assert!(ZONES.contains(&d.zone.as_str()));
        let p = firmware_policy(d.model).unwrap();
        assert_eq!(d.firmware, p.current);
        assert_eq!(p.status(&d.firmware), FirmwareState::Current);
    }
    let share = |c| f64::from(n[&c]) / 1_000.0;
    assert!((share(DeviceClass::Sensor) - 0.5).abs() < 0.05, "{n:?}");
    assert!((share(DeviceClass::Camera) - 0.2).abs() < 0.04, "{n:?}");
    assert!((share(DeviceClass::Plc) - 0.2).abs() < 0.04, "{n:?}");
    assert!((share(DeviceClass::Gateway) - 0.1).abs() < 0.03, "{n:?}");
    for z in ZONES {
        assert!(
            f.devices.iter().filter(|d| d.zone == z).count() > 250,
            "{z}"
        );
    }
}

#[test]
fn firmware_policies_judge_versions_numerically() {
    assert_eq!(firmware_policies().len(), 4);
    for p in firmware_policies() {
        assert_eq!(p.status(p.current), FirmwareState::Current);
        for v in p.vulnerable {
            assert_eq!(p.status(v), FirmwareState::Vulnerable, "{v}");
            assert_eq!(
                vouch_trust::firmware::compare(v, p.current),
                std::cmp::Ordering::Less
            );
        }
    }
    let cam = firmware_policy("SIM-CAM-4K").unwrap();
    assert_eq!(cam.status("4.9.0"), FirmwareState::Unsupported);
    assert_eq!(cam.status("5.10"), FirmwareState::Current);
    assert_eq!(
        vouch_trust::firmware::compare("2.10", "2.9"),
        std::cmp::Ordering::Greater
    );
    assert_eq!(
        vouch_trust::firmware::compare("V3.2", "3.2.0"),
        std::cmp::Ordering::Equal
    );
    assert!(firmware_policy("nope").is_none());
}

#[test]
fn zones_map_to_loopback_networks() {
    assert_eq!(
        zone_network("plant-a"),
        Some((Ipv4Addr::new(127, 0, 10, 0), 24))
    );
    assert_eq!(
        zone_network("plant-c"),
        Some((Ipv4Addr::new(127, 0, 12, 0), 24))
    );
    assert_eq!(zone_network("mars"), None);
    assert_eq!(
        device_addr("plant-b", 3),
        Some(Ipv4Addr::new(127, 0, 11, 5))
    );
    assert_eq!(
        device_addr("plant-b", 253),
        Some(Ipv4Addr::new(127, 0, 11, 5))
    );
    assert_eq!(
        device_addr("plant-a", 249),
        Some(Ipv4Addr::new(127, 0, 10, 251))
    );
    assert_eq!(device_addr("mars", 1), None);
}

#[test]
fn class_volumes_are_realistic_and_a_live_run_stays_light() {
    let f = Fleet::new(FleetConfig::default());
    let secs = f64::from(f.config.window_secs);
    // (messages/s, payload bytes/message) per class, over the normal windows.
    let mut sums: HashMap<DeviceClass, (f64, f64, f64)> = HashMap::new();
    let mut total_msgs = 0u64;
    let mut busiest = 0u64;
    for w in 0..f.config.windows {
        let mut this = 0;
        for d in &f.devices {
            let p = f.plan(d.index, w);
            let n = p.own_messages() + p.publishes.iter().filter(|p| !p.own).count() as u64;
            this += n;
            if p.attack.is_none() {
                let s = sums.entry(d.class).or_default();
                s.0 += p.own_messages() as f64;
                s.1 += p.own_payload_bytes() as f64;
                s.2 += 1.0;
            }
        }
        total_msgs += this;
        busiest = busiest.max(this);
    }
    let rate = |c| sums[&c].0 / sums[&c].2 / secs;
    let size = |c| sums[&c].1 / sums[&c].0.max(1.0);
    // The run starts at midnight, when rates are ~30% below their daily mean.
    let expect = [
        (DeviceClass::Sensor, (0.07, 0.25), (55.0, 125.0)),
        (DeviceClass::Camera, (0.2, 0.75), (4_096.0, 16_384.0)),
        (DeviceClass::Plc, (1.3, 5.0), (100.0, 200.0)),
        (DeviceClass::Gateway, (7.0, 20.0), (200.0, 400.0)),
    ];
    for (c, (rlo, rhi), (slo, shi)) in expect {
        let (r, s) = (rate(c), size(c));
        assert!((rlo..=rhi).contains(&r), "{c}: {r} msgs/s");
        assert!((slo..=shi).contains(&s), "{c}: {s} bytes/msg");
    }
    let mean = total_msgs as f64 / (f64::from(f.config.windows) * secs);
    let peak = busiest as f64 / secs;
    assert!(
        mean < 2_000.0 && peak < 2_000.0,
        "{mean} mean, {peak} peak msgs/s"
    );
    assert!(mean > 300.0, "{mean}");
}

#[test]
fn rates_follow_the_time_of_day() {
    let f = Fleet::new(FleetConfig {
        devices: 200,
        window_secs: 300,
        windows: 288,
        attacks_per_scenario: 0,
        ..FleetConfig::default()
    });
    let msgs = |hour: u32| -> u64 {
        let w0 = hour * 12;
        (w0..w0 + 12)
            .flat_map(|w| (0..200).map(move |d| (d, w)))
            .map(|(d, w)| f.plan(d, w).own_messages())
            .sum()
    };
    let (night, noon) = (msgs(0) as f64, msgs(12) as f64);
    assert!(noon / night > 1.5 && noon / night < 2.2, "{night} {noon}");
}

/// A fleet's plan for a window as it would be without any attack.
fn without_attacks(f: &Fleet) -> Fleet {
    Fleet {
        attacks: Vec::new(),
        ..f.clone()
    }
}

#[test]
fn each_scenario_shows_its_signature() {
    let f = Fleet::new(FleetConfig {
        attacks_per_scenario: 2,
        ..FleetConfig::default()
    });
    let calm = without_attacks(&f);
    for a in &f.attacks {
        let d = &f.devices[a.device as usize];
        let mut seen = Seen::new();
        let mut normal_bytes = Vec::new();
        let mut attack = Vec::new();
        for w in 0..f.config.windows {
            let (plan, obs) = f.observe(a.device, w, &mut seen);
            if a.covers(w) {
                attack.push((w, plan, obs));
            } else if w > 0 {
                normal_bytes.push(obs.bytes_in);
            }
        }
        let usual = normal_bytes.iter().sum::<u64>() as f64 / normal_bytes.len() as f64;
        for (w, plan, obs) in attack {
            let base = calm.plan(a.device, w);
            let why = format!("{a:?} window {w}: {plan:?} {obs:?}");
            assert_eq!(plan.attack, Some(a.scenario));
            // The normal traffic goes on under every attack.
            for p in &base.publishes {
                assert!(plan.publishes.contains(p), "{why}");
            }
            match a.scenario {
                Scenario::Scan => {
                    assert!(plan.reconnects >= 20 && obs.connects >= 20, "{why}");
                    assert_eq!(plan.subscribes_foreign.len(), 3, "{why}");
                    let foreign = plan.publishes.iter().filter(|p| !p.own).count();
                    assert!((10..=30).contains(&foreign), "{why}");
                    assert!(obs.auth_failures >= 13, "{why}");
                }
                Scenario::Exfiltration => {
                    assert!(
                        plan.publishes.iter().any(|p| p.topic == "data/bulk"),
                        "{why}"
                    );
                    assert!(obs.bytes_in as f64 >= 15.0 * usual, "{why} vs {usual}");
                    assert!(obs.bytes_in as f64 <= 200.0 * usual, "{why} vs {usual}");
                }
                Scenario::TopicEnumeration => {
                    assert!(obs.new_topics >= 30, "{why}");
                    assert!(obs.auth_failures >= 5, "{why}");
                }
                Scenario::CredentialStuffing => {
                    assert!((20..=100).contains(&plan.bad_connects), "{why}");
                    assert_eq!(obs.auth_failures, plan.bad_connects, "{why}");
                }
                Scenario::FirmwareDowngrade => {
                    let policy = firmware_policy(d.model).unwrap();
                    assert_eq!(policy.status(&plan.firmware), FirmwareState::Vulnerable);
                    assert_eq!(plan.publishes, base.publishes, "{why}");
                    assert_eq!(plan.reconnects, base.reconnects, "{why}");
                }
                Scenario::Clone => {
                    assert!(plan.second_session && obs.sessions == 2, "{why}");
                    assert_eq!(plan.publishes, base.publishes, "{why}");
                    if w == a.start {
                        assert_eq!(obs.connects, base.reconnects + 1, "{why}");
                    }
                }
                Scenario::Location => {
                    assert_ne!(plan.zone, d.zone, "{why}");
                    assert!(zone_network(&plan.zone).is_some());
                    assert_eq!(plan.publishes, base.publishes, "{why}");
                    let moved = u32::from(w == a.start);
                    assert_eq!(plan.reconnects, base.reconnects + moved, "{why}");
                }
            }
            if a.scenario != Scenario::FirmwareDowngrade {
                assert_eq!(plan.firmware, d.firmware);
            }
        }
        // Back to normal afterwards: the clone's session closes, the device comes home.
        let after = a.start + a.windows;
        let plan = f.plan(a.device, after);
        assert_eq!(plan.attack, None);
        assert_eq!(plan.zone, d.zone);
        assert_eq!(plan.firmware, d.firmware);
        let mut seen = Seen::new();
        let obs: Vec<_> = (0..=after)
            .map(|w| f.observe(a.device, w, &mut seen).1)
            .collect();
        if a.scenario == Scenario::Clone {
            assert_eq!(obs[after as usize].sessions, 1);
            assert_eq!(obs[after as usize].disconnects, plan.reconnects + 1);
        }
    }
}

#[test]
fn observation_counts_as_the_gateway_does() {
    let f = Fleet::new(FleetConfig::default());
    let d = &f.devices[0];
    let mut seen = Seen::new();
    let (p0, w0) = f.observe(0, 0, &mut seen);
    assert_eq!(w0.device, d.id);
    assert_eq!(w0.start, RUN_START);
    assert_eq!(w0.end.unix_micros() - w0.start.unix_micros(), 10_000_000);
    assert_eq!(w0.connects, p0.reconnects + 1, "the first connect");
    assert_eq!(w0.sessions, 1);
    assert_eq!(
        w0.new_topics, w0.distinct_topics,
        "everything is new at first"
    );
    assert_eq!(w0.msgs_in, p0.own_messages());
    let prefix = format!("devices/{}/", d.id).len();
    let bytes: u64 = p0
        .publishes
        .iter()
        .map(|p| u64::from(p.count) * publish_bytes(prefix + p.topic.len(), p.payload))
        .sum();
    assert_eq!(w0.bytes_in, bytes);
    let mut steady = 0;
    for w in 1..60 {
        let (p, o) = f.observe(0, w, &mut seen);
        assert_eq!(o.connects, p.reconnects);
        assert_eq!(o.disconnects, p.reconnects);
        assert!(o.new_topics <= 1, "{o:?}");
        steady += u32::from(o.new_topics == 0);
    }
    assert!(steady > 50);
    assert!(seen.topics() >= 1);
    // Header sizes: a 2-byte remaining length from 128 bytes on.
    assert_eq!(publish_bytes(10, 100), 1 + 1 + 112);
    assert_eq!(publish_bytes(10, 200), 1 + 2 + 212);
    // Outside the fleet: idle, nothing refused.
    let (p, o) = f.observe(10_000, 3, &mut Seen::new());
    assert!(p.publishes.is_empty() && o.msgs_in == 0 && o.auth_failures == 0);
}

#[test]
fn the_recorded_run_is_every_observation_in_time_order_with_its_class() {
    let f = Fleet::new(FleetConfig {
        devices: 12,
        windows: 30,
        warmup: 10,
        attack_windows: 3,
        ..FleetConfig::default()
    });
    let r = f.recorded();
    assert_eq!(r.len(), 12 * 30);
    assert!(r.windows(2).all(|p| p[0].window.end <= p[1].window.end));
    // Device by device, the same windows as observing it alone from its first window on.
    let a = f.attacks.first().unwrap();
    let d = &f.devices[a.device as usize];
    let mut seen = Seen::new();
    let alone: Vec<_> = (0..30)
        .map(|w| f.observe(d.index, w, &mut seen).1)
        .collect();
    let recorded: Vec<_> = r
        .iter()
        .filter(|x| x.window.device == d.id)
        .map(|x| {
            assert_eq!(x.class, d.class);
            x.window.clone()
        })
        .collect();
    assert_eq!(recorded, alone);
}
