//! `vouch bench policy`: decisions per second and latency of the policy engine on one thread, with a fleet of
//! devices known and a realistic policy set, beside the same policy set written in Rego and evaluated by the
//! `regorus` crate (with `--features rego-peer`).
//!
//! - The *directory*: N generated devices in a `HashMap<DeviceId, DeviceFacts>`, spread over 100 lines
//!   (`line-k` groups, each also in a `plant-p` group), four classes, labels, zones; about 2.5 % restricted
//!   (quarantined) and 0.5 % suspended.
//! - The *policy set*: Vouch's defaults plus generated policies, most of which do not apply to a given request:
//!   per line, telemetry / command / firmware / alarm grants and forbids (one tightening in shadow mode); per
//!   line and zone, a forbid on low-trust cameras; per device, a bridge grant, a firmware pin and a shadow grant.
//! - The *requests*: a mix built before timing (connect; publish to the device's own tree, its line, another
//!   line, a forbidden topic; subscribe with wildcards; trust 0–100 or absent, firmware current or not). Each
//!   timed decision looks the device up in the directory and then decides, as a server does.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use vouch_policy::{
    Decision, DeviceAction, DeviceContext, DeviceFacts, Engine, PolicySource, Resource,
    TopicFilter, TopicName, split_policies,
};
use vouch_types::{DeviceId, DeviceState, PolicyId, PolicyMode, Timestamp, TrustScore};

use crate::harness::SplitMix;

/// Production lines: one `line-k` group each.
const LINES: u32 = 100;
/// Zones devices belong to.
const ZONES: u32 = 10;
/// Device classes, equally likely.
const CLASSES: [&str; 4] = ["sensor", "camera", "plc", "gateway"];

/// Arguments of `bench policy`.
#[derive(Args)]
pub struct PolicyArgs {
    /// Devices known (the directory every decision looks its device up in).
    #[arg(long, default_value_t = 1_000_000)]
    devices: u32,
    /// Policies in the set, Vouch's 3 defaults included.
    #[arg(long, default_value_t = 1_000)]
    policies: u32,
    /// Decisions to time (after one untimed pass over the distinct requests).
    #[arg(long, default_value_t = 200_000)]
    decisions: u32,
    /// Distinct requests, built before timing and cycled.
    #[arg(long, default_value_t = 10_000)]
    requests: u32,
    /// Decisions to time for the Rego peer (it is slower; `--features rego-peer`).
    #[arg(long, default_value_t = 20_000)]
    peer_decisions: u32,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// The known devices; their ids and lines in generation order (to pick requests from).
struct Fleet {
    directory: HashMap<DeviceId, DeviceFacts>,
    ids: Vec<DeviceId>,
    lines: Vec<u8>,
}

fn device_id(i: u32) -> DeviceId {
    DeviceId::derived(&format!("bench:{i}"))
}

fn fleet(n: u32) -> Fleet {
    let mut rng = SplitMix(7);
    let mut directory = HashMap::with_capacity(n as usize);
    let mut ids = Vec::with_capacity(n as usize);
    let mut lines = Vec::with_capacity(n as usize);
    let vendors = ["Siemens", "Rockwell", "Schneider", "Axis"];
    for i in 0..n {
        let id = device_id(i);
        let line = rng.below(LINES);
        let class = CLASSES[rng.below(4) as usize];
        let state = match rng.below(1000) {
            0..5 => DeviceState::Suspended,
            5..30 => DeviceState::Restricted,
            _ => DeviceState::Active,
        };
        let zone = (!rng.chance(10)).then(|| format!("zone-{}", rng.below(ZONES)));
        let facts = DeviceFacts {
            id,
            class: class.to_owned(),
            state,
            vendor: Some(vendors[(i % 4) as usize].to_owned()),
            model: Some(format!("M-{}", i % 17)),
            firmware: Some(format!("4.{}.{}", i % 7, i % 3)),
            zone,
            serial: Some(format!("SN{i:09}")),
            labels: vec![
                ("site".to_owned(), format!("site-{}", i % 50)),
                ("tier".to_owned(), rng.below(3).to_string()),
            ],
            groups: vec![format!("line-{line}"), format!("plant-{}", line / 25)],
        };
        directory.insert(id, facts);
        ids.push(id);
        lines.push(line as u8);
    }
    Fleet {
        directory,
        ids,
        lines,
    }
}

/// One generated policy, rendered both in Cedar (for Vouch) and in Rego (for the peer).
#[derive(Debug, Clone)]
enum Gen {
    /// A line's devices may publish its telemetry when trusted enough.
    LineTelemetry { line: u32 },
    /// A line's PLCs and gateways may subscribe to its commands.
    LineCommands { line: u32 },
    /// No firmware reports from a line's devices whose firmware is not known to be current.
    LineFirmwareForbid { line: u32 },
    /// A line's trusted gateways may publish firmware reports.
    LineFirmwarePermit { line: u32 },
    /// A line's tier-1 devices may publish alarms.
    LineAlarms { line: u32 },
    /// Shadow: a line's low-trust devices would lose its topics.
    LineLowTrustShadow { line: u32 },
    /// Low-trust cameras of a zone may not publish a line's telemetry (any device: `principal is`).
    ZoneCameras { line: u32, zone: u32 },
    /// One device bridges another line's telemetry.
    DeviceBridge { device: String, line: u32 },
    /// One device may subscribe to nothing while its firmware is not current.
    DeviceFirmwarePin { device: String },
    /// Shadow: one device would see every line's telemetry.
    DeviceWideShadow { device: String },
}

/// Which decision a Rego rule feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    Permit,
    Forbid,
    ShadowPermit,
    ShadowForbid,
}

impl Set {
    const ALL: [Set; 4] = [
        Set::Permit,
        Set::Forbid,
        Set::ShadowPermit,
        Set::ShadowForbid,
    ];

    fn name(self) -> &'static str {
        match self {
            Set::Permit => "permit",
            Set::Forbid => "forbid",
            Set::ShadowPermit => "shadow_permit",
            Set::ShadowForbid => "shadow_forbid",
        }
    }
}

const PUB: &str = "action == Vouch::Action::\"publish\"";
const SUB: &str = "action == Vouch::Action::\"subscribe\"";

fn line_group(line: u32) -> String {
    format!("principal in Vouch::DeviceGroup::\"line-{line}\"")
}

fn filter(f: &str) -> String {
    format!("resource in Vouch::TopicFilter::\"{f}\"")
}

/// A filter as a Rego array literal of its levels; `${device.id}` becomes the requesting device's id.
fn rego_levels(f: &str) -> String {
    let levels: Vec<String> = f
        .split('/')
        .map(|l| {
            if l == vouch_policy::DEVICE_ID_VAR {
                "input.device.id".to_owned()
            } else {
                format!("\"{l}\"")
            }
        })
        .collect();
    format!("[{}]", levels.join(", "))
}

impl Gen {
    /// The `n`-th generated policy; a per-device policy names `device`, whose own line is `own`.
    fn nth(n: u32, device: String, own: u32) -> Self {
        let line = (n / 10) % LINES;
        match n % 10 {
            0 => Gen::LineTelemetry { line },
            1 => Gen::LineCommands { line },
            2 => Gen::LineFirmwareForbid { line },
            3 => Gen::LineFirmwarePermit { line },
            4 => Gen::LineAlarms { line },
            5 => Gen::LineLowTrustShadow { line },
            6 => Gen::ZoneCameras {
                line,
                zone: line % ZONES,
            },
            7 => Gen::DeviceBridge {
                device,
                line: (own + 1 + line % (LINES - 1)) % LINES,
            },
            8 => Gen::DeviceFirmwarePin { device },
            _ => Gen::DeviceWideShadow { device },
        }
    }

    fn mode(&self) -> PolicyMode {
        match self {
            Gen::LineLowTrustShadow { .. } | Gen::DeviceWideShadow { .. } => PolicyMode::Shadow,
            _ => PolicyMode::Enforce,
        }
    }

    fn cedar(&self) -> String {
        match self {
            Gen::LineTelemetry { line } => format!(
                "permit({}, {PUB}, {}) when {{ context has trust && context.trust >= 40 }};",
                line_group(*line),
                filter(&format!("plant/line-{line}/+/telemetry"))
            ),
            Gen::LineCommands { line } => format!(
                "permit({}, {SUB}, {}) when {{ principal.class == \"plc\" || principal.class == \"gateway\" }};",
                line_group(*line),
                filter(&format!("plant/line-{line}/+/commands/#"))
            ),
            Gen::LineFirmwareForbid { line } => format!(
                "forbid({}, {PUB}, {}) unless {{ context has firmware_current && context.firmware_current }};",
                line_group(*line),
                filter(&format!("plant/line-{line}/+/firmware"))
            ),
            Gen::LineFirmwarePermit { line } => format!(
                "permit({}, {PUB}, {}) when {{ principal.class == \"gateway\" && context has trust && context.trust >= 70 }};",
                line_group(*line),
                filter(&format!("plant/line-{line}/+/firmware"))
            ),
            Gen::LineAlarms { line } => format!(
                "permit({}, {PUB}, {}) when {{ principal.hasTag(\"tier\") && principal.getTag(\"tier\") == \"1\" }};",
                line_group(*line),
                filter(&format!("plant/line-{line}/+/alarms"))
            ),
            Gen::LineLowTrustShadow { line } => format!(
                "forbid({}, action in [Vouch::Action::\"publish\", Vouch::Action::\"subscribe\"], {}) when {{ context has trust && context.trust < 30 }};",
                line_group(*line),
                filter(&format!("plant/line-{line}/#"))
            ),
            Gen::ZoneCameras { line, zone } => format!(
                "forbid(principal is Vouch::Device, {PUB}, {}) when {{ principal has zone && principal.zone == \"zone-{zone}\" && principal.class == \"camera\" && context has trust && context.trust < 20 }};",
                filter(&format!("plant/line-{line}/+/telemetry"))
            ),
            Gen::DeviceBridge { device, line } => format!(
                "permit(principal == Vouch::Device::\"{device}\", {PUB}, {}) when {{ context has trust && context.trust >= 60 }};",
                filter(&format!("plant/line-{line}/+/telemetry"))
            ),
            Gen::DeviceFirmwarePin { device } => format!(
                "forbid(principal == Vouch::Device::\"{device}\", {SUB}, resource) unless {{ context has firmware_current && context.firmware_current }};"
            ),
            Gen::DeviceWideShadow { device } => format!(
                "permit(principal == Vouch::Device::\"{device}\", {SUB}, {}) when {{ context has trust && context.trust >= 50 }};",
                filter("plant/+/+/telemetry")
            ),
        }
    }

    /// The same policy as one Rego rule: which set it feeds, and the rule's body (its conditions in the
    /// order a Rego author would write them: the cheap, selective tests first).
    fn rego(&self) -> (Set, String) {
        let group = |line: &u32| format!("\"line-{line}\" in groups");
        let inf = |f: String| format!("in_filter({})", rego_levels(&f));
        let pubs = "input.action == \"publish\"";
        let subs = "input.action == \"subscribe\"";
        let me = |d: &String| format!("input.device.id == \"{d}\"");
        let (set, body): (Set, Vec<String>) = match self {
            Gen::LineTelemetry { line } => (
                Set::Permit,
                vec![
                    group(line),
                    pubs.into(),
                    "input.context.trust >= 40".into(),
                    inf(format!("plant/line-{line}/+/telemetry")),
                ],
            ),
            Gen::LineCommands { line } => (
                Set::Permit,
                vec![
                    group(line),
                    subs.into(),
                    "input.device.class in {\"plc\", \"gateway\"}".into(),
                    inf(format!("plant/line-{line}/+/commands/#")),
                ],
            ),
            Gen::LineFirmwareForbid { line } => (
                Set::Forbid,
                vec![
                    group(line),
                    pubs.into(),
                    "not input.context.firmware_current".into(),
                    inf(format!("plant/line-{line}/+/firmware")),
                ],
            ),
            Gen::LineFirmwarePermit { line } => (
                Set::Permit,
                vec![
                    group(line),
                    pubs.into(),
                    "input.device.class == \"gateway\"".into(),
                    "input.context.trust >= 70".into(),
                    inf(format!("plant/line-{line}/+/firmware")),
                ],
            ),
            Gen::LineAlarms { line } => (
                Set::Permit,
                vec![
                    group(line),
                    pubs.into(),
                    "input.device.labels.tier == \"1\"".into(),
                    inf(format!("plant/line-{line}/+/alarms")),
                ],
            ),
            Gen::LineLowTrustShadow { line } => (
                Set::ShadowForbid,
                vec![
                    group(line),
                    "input.action in {\"publish\", \"subscribe\"}".into(),
                    "input.context.trust < 30".into(),
                    inf(format!("plant/line-{line}/#")),
                ],
            ),
            Gen::ZoneCameras { line, zone } => (
                Set::Forbid,
                vec![
                    pubs.into(),
                    format!("input.device.zone == \"zone-{zone}\""),
                    "input.device.class == \"camera\"".into(),
                    "input.context.trust < 20".into(),
                    inf(format!("plant/line-{line}/+/telemetry")),
                ],
            ),
            Gen::DeviceBridge { device, line } => (
                Set::Permit,
                vec![
                    me(device),
                    pubs.into(),
                    "input.context.trust >= 60".into(),
                    inf(format!("plant/line-{line}/+/telemetry")),
                ],
            ),
            Gen::DeviceFirmwarePin { device } => (
                Set::Forbid,
                vec![
                    me(device),
                    subs.into(),
                    "not input.context.firmware_current".into(),
                ],
            ),
            Gen::DeviceWideShadow { device } => (
                Set::ShadowPermit,
                vec![
                    me(device),
                    subs.into(),
                    "input.context.trust >= 50".into(),
                    inf("plant/+/+/telemetry".to_owned()),
                ],
            ),
        };
        (set, body.join("\n\t"))
    }

    /// The device a per-device policy names.
    fn device(&self) -> Option<&str> {
        match self {
            Gen::DeviceBridge { device, .. }
            | Gen::DeviceFirmwarePin { device }
            | Gen::DeviceWideShadow { device } => Some(device),
            _ => None,
        }
    }
}

/// Vouch's defaults and the built-in device rule, in Rego, by policy id.
fn rego_defaults(lifecycle_id: &str) -> Vec<(Set, String, String)> {
    vec![
        (
            Set::Permit,
            "device-connect".to_owned(),
            "input.action == \"connect\"".to_owned(),
        ),
        (
            Set::Permit,
            "own-topics".to_owned(),
            format!(
                "input.action in {{\"publish\", \"subscribe\"}}\n\tin_filter({})",
                rego_levels("devices/${device.id}/#")
            ),
        ),
        (
            Set::Forbid,
            "quarantine-update-only".to_owned(),
            format!(
                "\"quarantine\" in groups\n\tinput.action in {{\"publish\", \"subscribe\"}}\n\tnot in_filter({})",
                rego_levels("devices/${device.id}/update/#")
            ),
        ),
        (
            Set::Forbid,
            lifecycle_id.to_owned(),
            "not input.device.state in {\"active\", \"restricted\"}".to_owned(),
        ),
    ]
}

/// The helpers every Rego rule uses: group membership (with the quarantine group), and MQTT topic matching
/// written in Rego (split into levels, compared level by level), as Vouch's grant index does it in Rust.
const REGO_PRELUDE: &str = r##"package vouch

groups contains g if {
	some g in input.device.groups
}

groups contains "quarantine" if {
	input.device.state == "restricted"
}

levels := split(input.resource.id, "/")

# Cedar's `resource in Vouch::TopicFilter::"f"`: a published topic matched by MQTT's rules, a subscription
# covered by the filter.
in_filter(f) if {
	input.resource.type == "topic"
	pub_match(f, levels)
}

in_filter(f) if {
	input.resource.type == "filter"
	sub_covers(f, levels)
}

# A leading wildcard never matches a `$` topic.
sys_blocked(f, t) if {
	startswith(t[0], "$")
	f[0] in {"+", "#"}
}

pub_match(f, t) if {
	n := count(f)
	f[n - 1] != "#"
	count(t) == n
	not sys_blocked(f, t)
	every i, x in f {
		level_match(x, t[i])
	}
}

pub_match(f, t) if {
	n := count(f) - 1
	f[n] == "#"
	count(t) >= n
	not sys_blocked(f, t)
	every i, x in array.slice(f, 0, n) {
		level_match(x, t[i])
	}
}

level_match(x, _) if x == "+"

level_match(x, y) if x == y

sub_covers(g, s) if {
	n := count(g)
	g[n - 1] != "#"
	count(s) == n
	not sys_blocked(g, s)
	every i, x in g {
		level_covers(x, s[i])
	}
}

sub_covers(g, s) if {
	n := count(g) - 1
	g[n] == "#"
	count(s) >= n
	not sys_blocked(g, s)
	every i, x in array.slice(g, 0, n) {
		level_covers(x, s[i])
	}
}

level_covers(x, y) if x == y

level_covers(x, y) if {
	x == "+"
	y != "#"
}

default allow := false

allow if {
	count(permit) > 0
	count(forbid) == 0
}

default shadow_allow := false

shadow_allow if {
	count(permit) + count(shadow_permit) > 0
	count(forbid) + count(shadow_forbid) == 0
}

reasons := forbid if count(forbid) > 0

reasons := permit if count(forbid) == 0

decision := {"allow": allow, "shadow_allow": shadow_allow, "reasons": reasons}
"##;

/// The whole policy set in Rego: the prelude, then one rule per policy.
fn rego_module(gens: &[(String, Gen)], lifecycle_id: &str) -> String {
    let mut out = REGO_PRELUDE.to_owned();
    let mut used = [false; 4];
    let rules = rego_defaults(lifecycle_id)
        .into_iter()
        .chain(gens.iter().map(|(id, g)| {
            let (set, body) = g.rego();
            (set, id.clone(), body)
        }));
    for (set, id, body) in rules {
        used[set as usize] = true;
        out.push_str(&format!(
            "\n{} contains \"{id}\" if {{\n\t{body}\n}}\n",
            set.name()
        ));
    }
    for set in Set::ALL {
        if !used[set as usize] {
            out.push_str(&format!("\n{} := set()\n", set.name()));
        }
    }
    out
}

/// A request as built before timing: the device is named by id, its facts looked up when it is decided.
#[derive(Clone)]
struct Prepared {
    id: DeviceId,
    action: DeviceAction,
    resource: Resource,
    context: DeviceContext,
}

fn topic(s: &str) -> Result<Resource> {
    Ok(Resource::Topic(
        TopicName::new(s).with_context(|| format!("topic {s}"))?,
    ))
}

fn subscription(s: &str) -> Result<Resource> {
    Ok(Resource::Subscription(
        TopicFilter::new(s).with_context(|| format!("filter {s}"))?,
    ))
}

/// The request mix. `special`: devices that per-device policies name, with the line a bridge grants them.
fn requests(
    fleet: &Fleet,
    special: &[(u32, Option<u32>)],
    n: u32,
    now: Timestamp,
) -> Result<Vec<Prepared>> {
    let mut rng = SplitMix(11);
    let mut out = Vec::with_capacity(n as usize);
    let devices = fleet.ids.len() as u32;
    for _ in 0..n {
        let (i, bridge) = if !special.is_empty() && rng.chance(5) {
            special[rng.below(special.len() as u32) as usize]
        } else {
            (rng.below(devices), None)
        };
        let id = fleet.ids[i as usize];
        let line = u32::from(fleet.lines[i as usize]);
        let cell = rng.below(8);
        let (action, resource) = match rng.below(100) {
            0..10 => (
                DeviceAction::Connect,
                Resource::Service("mqtt".parse().context("service name")?),
            ),
            10..30 => (
                DeviceAction::Publish,
                topic(&format!("devices/{id}/telemetry"))?,
            ),
            30..35 => (
                DeviceAction::Publish,
                topic(&format!("devices/{id}/update/status"))?,
            ),
            35..55 => (
                DeviceAction::Publish,
                topic(&format!("plant/line-{line}/cell-{cell}/telemetry"))?,
            ),
            55..60 => (
                DeviceAction::Publish,
                topic(&format!("plant/line-{line}/cell-{cell}/firmware"))?,
            ),
            60..65 => (
                DeviceAction::Publish,
                topic(&format!("plant/line-{line}/cell-{cell}/alarms"))?,
            ),
            65..70 => {
                let other = bridge.unwrap_or((line + 1 + rng.below(LINES - 1)) % LINES);
                (
                    DeviceAction::Publish,
                    topic(&format!("plant/line-{other}/cell-{cell}/telemetry"))?,
                )
            }
            70..75 => (
                DeviceAction::Publish,
                topic(&format!("plant/line-{line}/cell-{cell}/commands/stop"))?,
            ),
            75..80 => (
                DeviceAction::Subscribe,
                subscription(&format!("devices/{id}/#"))?,
            ),
            80..85 => (
                DeviceAction::Subscribe,
                subscription(&format!("devices/{id}/+/cmd"))?,
            ),
            85..92 => {
                let f = if rng.chance(50) {
                    format!("plant/line-{line}/+/commands/#")
                } else {
                    format!("plant/line-{line}/cell-{cell}/commands/#")
                };
                (DeviceAction::Subscribe, subscription(&f)?)
            }
            92..96 => (
                DeviceAction::Subscribe,
                subscription(&format!("plant/line-{line}/#"))?,
            ),
            _ => (
                DeviceAction::Subscribe,
                subscription("plant/+/+/telemetry")?,
            ),
        };
        let mut context = DeviceContext::at(now);
        if !rng.chance(10) {
            context.trust = Some(TrustScore::new(rng.below(101) as u8).context("trust score")?);
        }
        if !rng.chance(20) {
            context.firmware_current = Some(rng.chance(85));
        }
        out.push(Prepared {
            id,
            action,
            resource,
            context,
        });
    }
    Ok(out)
}

/// Latency and throughput of one timed run.
#[derive(Debug, Clone, Serialize)]
struct Figures {
    decisions: u32,
    decisions_per_second: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    allow_ratio: f64,
}

fn figures(mut lat: Vec<u32>, total: Duration, allowed: u32) -> Figures {
    lat.sort_unstable();
    let n = lat.len();
    let pct = |p: f64| {
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n.max(1)) - 1;
        f64::from(lat.get(i).copied().unwrap_or(0)) / 1e3
    };
    Figures {
        decisions: n as u32,
        decisions_per_second: n as f64 / total.as_secs_f64().max(1e-9),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
        p999_us: pct(0.999),
        max_us: f64::from(lat.last().copied().unwrap_or(0)) / 1e3,
        allow_ratio: f64::from(allowed) / (n.max(1) as f64),
    }
}

/// What a decision came to, to compare engines: allowed, the policies that determined it, and the outcome
/// with the shadow-mode policies enforced too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    allowed: bool,
    policies: Vec<String>,
    shadow_allowed: bool,
}

impl From<&Decision> for Outcome {
    fn from(d: &Decision) -> Self {
        Self {
            allowed: d.allowed,
            policies: d.policies.clone(),
            shadow_allowed: d.shadow.as_ref().map_or(d.allowed, |s| s.allowed),
        }
    }
}

/// The peer's figures, and how far it agrees with Vouch.
#[derive(Debug, Clone, Serialize)]
struct PeerFigures {
    /// `regorus <version>, <evaluator>`.
    engine: String,
    #[serde(flatten)]
    figures: Figures,
    /// Vouch's decisions per second ÷ the peer's.
    throughput_ratio: f64,
    /// Share of the peer's decisions with the same allow/deny as Vouch's.
    agreement_allow: f64,
    /// Share with the same allow/deny, determining policies and shadow outcome.
    agreement_full: f64,
}

/// Everything `bench policy` reports.
#[derive(Debug, Clone, Serialize)]
struct Report {
    devices: u32,
    policies: u32,
    generated_policies: u32,
    shadow_policies: u32,
    topic_grants: usize,
    distinct_requests: u32,
    directory_build_s: f64,
    compile_ms: f64,
    #[serde(flatten)]
    vouch: Figures,
    /// The same requests with each device prepared once per session (the gateway's path).
    per_session: Figures,
    peak_rss_mib: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_compile_ms: Option<f64>,
    peers: Vec<PeerFigures>,
    peer_note: String,
}

/// Runs `bench policy` and prints the figures.
pub fn run(a: PolicyArgs) -> Result<()> {
    anyhow::ensure!(a.devices > 0, "--devices must be positive");
    anyhow::ensure!(a.requests > 0, "--requests must be positive");
    let defaults = split_policies(vouch_policy::DEFAULTS, PolicyMode::Enforce)
        .context("Vouch's default policies")?;
    anyhow::ensure!(
        a.policies as usize >= defaults.len(),
        "--policies must be at least {} (Vouch's defaults)",
        defaults.len()
    );
    let now = Timestamp::from_unix_micros(1_795_791_600 * 1_000_000);

    eprintln!("generating {} devices…", a.devices);
    let t = Instant::now();
    let fleet = fleet(a.devices);
    let directory_build = t.elapsed();

    let generated = a.policies - defaults.len() as u32;
    let mut special = Vec::new();
    let mut pick_rng = SplitMix(13);
    let mut gens = Vec::with_capacity(generated as usize);
    for n in 0..generated {
        let i = pick_rng.below(a.devices);
        let own = u32::from(fleet.lines[i as usize]);
        let g = Gen::nth(n, fleet.ids[i as usize].to_string(), own);
        if g.device().is_some() {
            let bridge = match &g {
                Gen::DeviceBridge { line, .. } => Some(*line),
                _ => None,
            };
            special.push((i, bridge));
        }
        gens.push((format!("gen-{n}"), g));
    }
    let mut sources = defaults;
    for (id, g) in &gens {
        sources.push(PolicySource {
            id: id.parse().with_context(|| format!("policy id {id}"))?,
            text: g.cedar(),
            mode: g.mode(),
        });
    }
    let shadow_policies = sources
        .iter()
        .filter(|s| s.mode == PolicyMode::Shadow)
        .count() as u32;

    eprintln!("compiling {} policies…", sources.len());
    let engine = Engine::new().context("starting the policy engine")?;
    let t = Instant::now();
    let compiled = engine
        .compile(&sources, 1)
        .context("compiling the generated policy set")?;
    let compile = t.elapsed();
    let topic_grants = compiled.grants();
    engine.install(compiled);

    let prepared = requests(&fleet, &special, a.requests, now)?;
    eprintln!(
        "deciding {} requests untimed, then {} timed, on one thread…",
        prepared.len(),
        a.decisions
    );
    let mut outcomes = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let d = decide(&engine, &fleet.directory, p)?;
        outcomes.push(Outcome::from(&d));
    }
    let mut lat = Vec::with_capacity(a.decisions as usize);
    let mut allowed = 0u32;
    let total = Instant::now();
    for j in 0..a.decisions {
        let p = &prepared[j as usize % prepared.len()];
        let t = Instant::now();
        let d = decide(&engine, &fleet.directory, p)?;
        let ns = t.elapsed().as_nanos();
        lat.push(u32::try_from(ns).unwrap_or(u32::MAX));
        allowed += u32::from(d.allowed);
    }
    let vouch = figures(lat, total.elapsed(), allowed);

    // The gateway's path: a device is prepared once when its session opens, then each packet is decided
    // against it (the session is looked up in the timed loop).
    let mut sessions: HashMap<DeviceId, vouch_policy::PreparedDevice> = HashMap::new();
    for p in &prepared {
        if let Some(facts) = fleet.directory.get(&p.id) {
            sessions
                .entry(p.id)
                .or_insert_with(|| engine.prepare(facts));
        }
    }
    let mut lat = Vec::with_capacity(a.decisions as usize);
    let mut allowed = 0u32;
    let total = Instant::now();
    for j in 0..a.decisions {
        let p = &prepared[j as usize % prepared.len()];
        let t = Instant::now();
        let session = sessions.get(&p.id).context("an open session")?;
        let d = engine.decide_prepared(session, p.action, &p.resource, &p.context);
        let ns = t.elapsed().as_nanos();
        lat.push(u32::try_from(ns).unwrap_or(u32::MAX));
        allowed += u32::from(d.allowed);
    }
    let per_session = figures(lat, total.elapsed(), allowed);

    let lifecycle_id = PolicyId::builtin("devices.lifecycle").context("built-in policy id")?;
    let peer = peer::run(
        &rego_module(&gens, lifecycle_id.as_str()),
        &fleet.directory,
        &prepared,
        &outcomes,
        a.peer_decisions,
        vouch.decisions_per_second,
    )?;

    let report = Report {
        devices: a.devices,
        policies: sources.len() as u32,
        generated_policies: generated,
        shadow_policies,
        topic_grants,
        distinct_requests: prepared.len() as u32,
        directory_build_s: directory_build.as_secs_f64(),
        compile_ms: compile.as_secs_f64() * 1e3,
        vouch,
        per_session,
        peak_rss_mib: crate::harness::peak_rss_mib(),
        peer_compile_ms: peer.compile.map(|d| d.as_secs_f64() * 1e3),
        peers: peer.figures,
        peer_note: peer.note,
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("rendering the report")?
        );
    } else {
        print(&report);
    }
    Ok(())
}

/// One decision as a server makes it: look the device up in the directory, then decide.
fn decide(
    engine: &Engine,
    directory: &HashMap<DeviceId, DeviceFacts>,
    p: &Prepared,
) -> Result<Decision> {
    let facts = directory
        .get(&p.id)
        .context("a request names a known device")?;
    // Borrowed, as a gateway does with the facts it keeps for a session.
    Ok(engine.decide(facts, p.action, &p.resource, &p.context))
}

fn print(r: &Report) {
    println!(
        "policy decisions on one thread: {} devices known, {} policies ({} generated, {} in shadow mode, {} topic grants), {} distinct requests cycled (timed after one untimed pass)",
        r.devices,
        r.policies,
        r.generated_policies,
        r.shadow_policies,
        r.topic_grants,
        r.distinct_requests
    );
    println!(
        "{:<26} {:>9} {:>12} {:>10} {:>10} {:>10} {:>10} {:>8}",
        "engine", "decisions", "decisions/s", "p50", "p99", "p99.9", "max", "allowed"
    );
    let row = |name: &str, f: &Figures| {
        println!(
            "{:<26} {:>9} {:>12.0} {:>7.1} µs {:>7.1} µs {:>7.1} µs {:>7.0} µs {:>7.1}%",
            name,
            f.decisions,
            f.decisions_per_second,
            f.p50_us,
            f.p99_us,
            f.p999_us,
            f.max_us,
            100.0 * f.allow_ratio
        );
    };
    row("vouch (cedar, sliced)", &r.vouch);
    row("vouch, per session", &r.per_session);
    for p in &r.peers {
        row(&p.engine, &p.figures);
    }
    println!(
        "compile: vouch {:.1} ms{}; directory of {} devices built in {:.2} s; peak RSS {:.0} MiB",
        r.compile_ms,
        r.peer_compile_ms
            .map(|ms| format!(", regorus {ms:.1} ms (parse + compile)"))
            .unwrap_or_default(),
        r.devices,
        r.directory_build_s,
        r.peak_rss_mib
    );
    for p in &r.peers {
        println!(
            "vouch ÷ {}: {:.1}× the decisions per second; agreement on allow/deny {:.2}%, on allow/deny + policies + shadow outcome {:.2}%",
            p.engine,
            p.throughput_ratio,
            100.0 * p.agreement_allow,
            100.0 * p.agreement_full
        );
    }
    println!("peer: {}", r.peer_note);
}

/// What the peer run produced.
struct PeerRun {
    compile: Option<Duration>,
    figures: Vec<PeerFigures>,
    note: String,
}

#[cfg(not(feature = "rego-peer"))]
mod peer {
    use super::*;

    /// Without the `rego-peer` feature there is no peer to run.
    pub(super) fn run(
        _module: &str,
        _directory: &HashMap<DeviceId, DeviceFacts>,
        _prepared: &[Prepared],
        _outcomes: &[Outcome],
        _decisions: u32,
        _vouch_rate: f64,
    ) -> Result<PeerRun> {
        Ok(PeerRun {
            compile: None,
            figures: Vec::new(),
            note: "not run: the Rego peer (regorus) needs a build with `--features rego-peer` \
                   (scripts/bench-policy)"
                .to_owned(),
        })
    }
}

#[cfg(feature = "rego-peer")]
mod peer {
    use std::collections::BTreeMap;

    use anyhow::anyhow;
    use regorus::Value;
    use regorus::languages::rego::compiler::Compiler;
    use regorus::rvm::RegoVM;

    use super::*;

    const ENTRY: &str = "data.vouch.decision";

    /// The request as Rego input: the device's facts (looked up by the caller, as for Cedar), the action, the
    /// resource with its kind, and the context.
    fn input(f: &DeviceFacts, p: &Prepared) -> Value {
        let s = |v: &str| Value::from(v);
        let mut device = BTreeMap::new();
        device.insert(s("id"), Value::from(f.id.to_string()));
        device.insert(s("class"), s(&f.class));
        device.insert(s("state"), s(f.state.as_str()));
        for (k, v) in [
            ("vendor", &f.vendor),
            ("model", &f.model),
            ("firmware", &f.firmware),
            ("zone", &f.zone),
            ("serial", &f.serial),
        ] {
            if let Some(v) = v {
                device.insert(s(k), s(v));
            }
        }
        let labels: BTreeMap<Value, Value> = f.labels.iter().map(|(k, v)| (s(k), s(v))).collect();
        device.insert(s("labels"), Value::from(labels));
        let groups: Vec<Value> = f.groups.iter().map(|g| s(g)).collect();
        device.insert(s("groups"), Value::from(groups));
        let kind = match &p.resource {
            Resource::Topic(_) => "topic",
            Resource::Subscription(_) => "filter",
            Resource::Service(_) => "service",
            Resource::Asset(_) => "asset",
        };
        let mut resource = BTreeMap::new();
        resource.insert(s("type"), s(kind));
        resource.insert(s("id"), s(p.resource.id()));
        let mut context = BTreeMap::new();
        context.insert(
            s("now"),
            Value::from(p.context.now.unix_micros() / 1_000_000),
        );
        if let Some(t) = p.context.trust {
            context.insert(s("trust"), Value::from(u32::from(t.get())));
        }
        if let Some(b) = p.context.firmware_current {
            context.insert(s("firmware_current"), Value::from(b));
        }
        let mut root = BTreeMap::new();
        root.insert(s("device"), Value::from(device));
        root.insert(s("action"), s(p.action.as_str()));
        root.insert(s("resource"), Value::from(resource));
        root.insert(s("context"), Value::from(context));
        Value::from(root)
    }

    fn outcome(v: &Value) -> Result<Outcome> {
        let allowed = *v["allow"]
            .as_bool()
            .map_err(|e| anyhow!("regorus gave no `allow`: {e} in {v}"))?;
        let shadow_allowed = *v["shadow_allow"]
            .as_bool()
            .map_err(|e| anyhow!("regorus gave no `shadow_allow`: {e} in {v}"))?;
        let mut policies = Vec::new();
        for p in v["reasons"]
            .as_set()
            .map_err(|e| anyhow!("regorus gave no `reasons`: {e} in {v}"))?
            .iter()
        {
            policies.push(
                p.as_string()
                    .map_err(|e| anyhow!("a reason is not a string: {e}"))?
                    .to_string(),
            );
        }
        policies.sort_unstable();
        Ok(Outcome {
            allowed,
            policies,
            shadow_allowed,
        })
    }

    /// Times `decisions` decisions with `eval`, then compares every outcome with Vouch's.
    fn measure(
        engine: String,
        directory: &HashMap<DeviceId, DeviceFacts>,
        prepared: &[Prepared],
        outcomes: &[Outcome],
        decisions: u32,
        vouch_rate: f64,
        eval: &mut dyn FnMut(Value) -> Result<Value>,
    ) -> Result<PeerFigures> {
        // Warm up (caches, register windows), untimed.
        for p in prepared.iter().take(1_000) {
            let f = directory
                .get(&p.id)
                .context("a request names a known device")?;
            eval(input(f, p))?;
        }
        let mut lat = Vec::with_capacity(decisions as usize);
        let mut results = Vec::with_capacity(decisions as usize);
        let total = Instant::now();
        for j in 0..decisions {
            let p = &prepared[j as usize % prepared.len()];
            let t = Instant::now();
            let f = directory
                .get(&p.id)
                .context("a request names a known device")?;
            let v = eval(input(f, p))?;
            let ns = t.elapsed().as_nanos();
            lat.push(u32::try_from(ns).unwrap_or(u32::MAX));
            results.push(v);
        }
        let elapsed = total.elapsed();
        let (mut allowed, mut same_allow, mut same_all) = (0u32, 0u32, 0u32);
        let mut first_difference = None;
        for (j, v) in results.iter().enumerate() {
            let o = outcome(v)?;
            let want = &outcomes[j % outcomes.len()];
            allowed += u32::from(o.allowed);
            same_allow += u32::from(o.allowed == want.allowed);
            same_all += u32::from(&o == want);
            if &o != want && first_difference.is_none() {
                first_difference = Some((j, o, want.clone()));
            }
        }
        if let Some((j, got, want)) = first_difference {
            let p = &prepared[j % prepared.len()];
            eprintln!(
                "{engine} differs from Vouch, e.g. on {} {} {:?} with {:?}: regorus {got:?}, vouch {want:?}",
                p.id, p.action, p.resource, p.context
            );
        }
        let figures = figures(lat, elapsed, allowed);
        let n = f64::from(decisions.max(1));
        Ok(PeerFigures {
            engine,
            throughput_ratio: vouch_rate / figures.decisions_per_second.max(1e-9),
            figures,
            agreement_allow: f64::from(same_allow) / n,
            agreement_full: f64::from(same_all) / n,
        })
    }

    /// Compiles `module` with regorus and measures its interpreter and its VM (RVM) on the same requests.
    pub(super) fn run(
        module: &str,
        directory: &HashMap<DeviceId, DeviceFacts>,
        prepared: &[Prepared],
        outcomes: &[Outcome],
        decisions: u32,
        vouch_rate: f64,
    ) -> Result<PeerRun> {
        if decisions == 0 {
            return Ok(PeerRun {
                compile: None,
                figures: Vec::new(),
                note: "not run (--peer-decisions 0)".to_owned(),
            });
        }
        let t = Instant::now();
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("vouch.rego".to_owned(), module.to_owned())
            .context("regorus: parsing the Rego policy set")?;
        let entry: regorus::Rc<str> = ENTRY.into();
        let compiled = engine
            .compile_with_entrypoint(&entry)
            .context("regorus: compiling the Rego policy set")?;
        let program = Compiler::compile_from_policy(&compiled, &[ENTRY])
            .map_err(|e| anyhow!("regorus: compiling the Rego policy set for its VM: {e}"))?;
        let compile = t.elapsed();
        let version = "0.14";

        eprintln!("regorus VM: {decisions} timed decisions…");
        let mut vm = RegoVM::new();
        vm.load_program(program);
        let rvm = measure(
            format!("regorus {version} (RVM)"),
            directory,
            prepared,
            outcomes,
            decisions,
            vouch_rate,
            &mut |input| {
                vm.set_input(input);
                vm.execute()
                    .map_err(|e| anyhow!("regorus VM: evaluating: {e}"))
            },
        )?;

        eprintln!("regorus interpreter: {decisions} timed decisions…");
        let interpreted = measure(
            format!("regorus {version} (interpreter)"),
            directory,
            prepared,
            outcomes,
            decisions,
            vouch_rate,
            &mut |input| {
                engine.set_input(input);
                engine
                    .eval_rule(ENTRY.to_owned())
                    .context("regorus: evaluating")
            },
        )?;
        Ok(PeerRun {
            compile: Some(compile),
            figures: vec![rvm, interpreted],
            note: "the same policies, and Vouch's built-in device rule, as one Rego rule each (their \
                 conditions in the same order, cheap and selective tests first), into permit/forbid/shadow sets that a `decision` rule combines \
                 as Cedar does (any forbid denies, else any permit allows; reasons; shadow outcome); the \
                 device's facts looked up in the same directory inside the timed loop and passed in `input` \
                 (no data documents); MQTT `+`/`#` matching written in Rego (split the topic, compare \
                 level by level; `${device.id}` levels become `input.device.id`); regorus has no rule \
                 index, so every rule is evaluated for every decision — Vouch evaluates only the policies \
                 its index slices out"
                .to_owned(),
        })
    }
}
