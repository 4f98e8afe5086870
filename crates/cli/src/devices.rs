//! `vouch device`: the fleet from the command line, against the store directly (on the server's host).

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use vouch_events::EventSeq;
use vouch_store::{Change, DeviceEdit, DeviceQuery, Store};
use vouch_types::{
    CertFingerprint, Clock, Device, DeviceClass, DeviceId, DevicePatch, DeviceState, Identifiers,
    LabelKey, LabelValue, Labels, MacAddr, NewDevice, Reason, SystemClock,
};

use crate::output::{self, Output, cell};

/// Device commands.
#[derive(Subcommand)]
pub enum DeviceCommand {
    /// List devices, filtered.
    List(ListArgs),
    /// Show one device.
    Show {
        /// The device's id.
        id: DeviceId,
    },
    /// Register a device.
    Add(AddArgs),
    /// Change a device's attributes.
    Update {
        /// The device's id.
        id: DeviceId,
        #[command(flatten)]
        attrs: Attrs,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Move a device through its lifecycle (discovered, onboarding, active, restricted, suspended, retired).
    Transition {
        /// The device's id.
        id: DeviceId,
        /// The state to move to.
        to: DeviceState,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Onboard a discovered (unmanaged) device: it moves to onboarding and gets a one-time enrollment token,
    /// printed once, to enroll with over EST.
    Onboard {
        /// The device's id (`vouch discover --merge` lists the ids of what it found).
        id: DeviceId,
        /// Why, for the event log.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Show a device's life from the event log.
    Events {
        /// The device's id.
        id: DeviceId,
    },
    /// Show a device's trust score, the reasons of its last change, and every change the trust service
    /// recorded.
    Trust {
        /// The device's id.
        id: DeviceId,
    },
    /// Import devices from CSV, JSON Lines (.jsonl) or a JSON array (.json). Idempotent: a re-run after an
    /// interruption finishes the job without duplicates.
    Import(crate::import::ImportArgs),
}

/// Filters for `device list`.
#[derive(Args)]
pub struct ListArgs {
    /// Only this state.
    #[arg(long)]
    state: Option<DeviceState>,
    /// Only managed (true) or unmanaged (false) devices.
    #[arg(long)]
    managed: Option<bool>,
    /// Only this class.
    #[arg(long)]
    class: Option<DeviceClass>,
    /// Only this zone.
    #[arg(long)]
    zone: Option<vouch_types::Zone>,
    /// Only this vendor.
    #[arg(long)]
    vendor: Option<vouch_types::Vendor>,
    /// Only the device with this hardware serial.
    #[arg(long)]
    serial: Option<vouch_types::HardwareSerial>,
    /// Only this group.
    #[arg(long)]
    group: Option<vouch_types::GroupName>,
    /// Only devices with this label (key=value).
    #[arg(long)]
    label: Option<String>,
    /// At most this many devices.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Start after this id (the cursor printed after a full page).
    #[arg(long)]
    cursor: Option<DeviceId>,
}

/// Attributes settable by `add` and `update`.
#[derive(Args)]
pub struct Attrs {
    /// Device class (plc, sensor, camera, gateway, …).
    #[arg(long)]
    class: Option<DeviceClass>,
    /// MAC address.
    #[arg(long)]
    mac: Option<MacAddr>,
    /// IP address (repeatable).
    #[arg(long = "ip")]
    ips: Vec<IpAddr>,
    /// Hardware serial number.
    #[arg(long)]
    serial: Option<vouch_types::HardwareSerial>,
    /// SHA-256 fingerprint of the device's certificate.
    #[arg(long)]
    cert_fingerprint: Option<CertFingerprint>,
    /// Vendor.
    #[arg(long)]
    vendor: Option<vouch_types::Vendor>,
    /// Model.
    #[arg(long)]
    model: Option<vouch_types::Model>,
    /// Firmware version.
    #[arg(long)]
    firmware: Option<vouch_types::FirmwareVersion>,
    /// Zone or location path (plant-1/line-3).
    #[arg(long)]
    zone: Option<vouch_types::Zone>,
    /// Label key=value (repeatable).
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Group (repeatable).
    #[arg(long = "group")]
    groups: Vec<vouch_types::GroupName>,
}

/// Arguments of `device add`.
#[derive(Args)]
pub struct AddArgs {
    /// Use this id instead of minting one.
    #[arg(long)]
    id: Option<DeviceId>,
    /// Starting state: onboarding (default) or discovered.
    #[arg(long, default_value = "onboarding")]
    state: DeviceState,
    #[command(flatten)]
    attrs: Attrs,
    /// Why, for the event log.
    #[arg(long)]
    reason: Option<String>,
}

fn parse_label(l: &str) -> Result<(LabelKey, LabelValue)> {
    let (k, v) = l
        .split_once('=')
        .with_context(|| format!("label `{l}` is not key=value"))?;
    Ok((k.parse()?, v.parse()?))
}

fn labels(list: &[String]) -> Result<Labels> {
    Ok(Labels::new(
        list.iter().map(|l| parse_label(l)).collect::<Result<_>>()?,
    )?)
}

fn groups(list: &[vouch_types::GroupName]) -> Result<vouch_types::Groups> {
    Ok(vouch_types::Groups::new(
        list.iter().cloned().collect::<BTreeSet<_>>(),
    )?)
}

fn change(reason: Option<String>) -> Result<Change> {
    Ok(Change {
        actor: crate::cli_actor(),
        reason: reason.map(Reason::try_from).transpose()?,
        at: SystemClock.now(),
    })
}

fn print_device(d: &Device, out: Output) -> Result<()> {
    if out == Output::Json {
        let mut v = serde_json::to_value(d)?;
        if let Value::Object(m) = &mut v {
            m.insert("managed".into(), Value::Bool(d.is_managed()));
        }
        return output::json(&v);
    }
    let ips: Vec<String> = d.identifiers.ips.iter().map(ToString::to_string).collect();
    let labels: Vec<String> = d.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let groups: Vec<&str> = d.groups.iter().map(|g| g.as_str()).collect();
    let rows = [
        ("id", d.id.to_string()),
        ("state", d.state.to_string()),
        ("managed", d.is_managed().to_string()),
        ("class", d.class.to_string()),
        ("vendor", cell(d.vendor.as_ref())),
        ("model", cell(d.model.as_ref())),
        ("firmware", cell(d.firmware.as_ref())),
        ("zone", cell(d.zone.as_ref())),
        ("mac", cell(d.identifiers.mac)),
        (
            "ips",
            if ips.is_empty() {
                "-".into()
            } else {
                ips.join(", ")
            },
        ),
        ("serial", cell(d.identifiers.serial.as_ref())),
        ("cert fingerprint", cell(d.identifiers.cert_fingerprint)),
        (
            "labels",
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(", ")
            },
        ),
        (
            "groups",
            if groups.is_empty() {
                "-".into()
            } else {
                groups.join(", ")
            },
        ),
        ("created", d.created_at.to_string()),
        ("updated", d.updated_at.to_string()),
        ("revision", d.revision.to_string()),
    ];
    for (k, v) in rows {
        println!("{k:<17} {v}");
    }
    Ok(())
}

/// Runs a device command against `store`.
pub async fn run(
    cmd: DeviceCommand,
    store: std::sync::Arc<dyn Store>,
    out: Output,
    enrollment_ttl_hours: u32,
) -> Result<()> {
    match cmd {
        DeviceCommand::List(a) => {
            let q = DeviceQuery {
                state: a.state,
                managed: a.managed,
                class: a.class,
                zone: a.zone,
                vendor: a.vendor,
                serial: a.serial,
                group: a.group,
                label: a.label.as_deref().map(parse_label).transpose()?,
                after: a.cursor,
                limit: a.limit,
            };
            let page = store.list_devices(&q).await?;
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "items": page.devices.iter().map(|d| {
                        let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
                        if let Value::Object(m) = &mut v { m.insert("managed".into(), Value::Bool(d.is_managed())); }
                        v
                    }).collect::<Vec<_>>(),
                    "next_cursor": page.next,
                }))?,
                Output::Table => {
                    let rows: Vec<Vec<String>> = page
                        .devices
                        .iter()
                        .map(|d| {
                            vec![
                                d.id.to_string(),
                                d.state.to_string(),
                                if d.is_managed() { "yes" } else { "no" }.to_owned(),
                                d.class.to_string(),
                                cell(d.vendor.as_ref()),
                                cell(d.model.as_ref()),
                                cell(d.zone.as_ref()),
                                cell(d.identifiers.mac),
                                cell(d.identifiers.serial.as_ref()),
                            ]
                        })
                        .collect();
                    output::table(
                        &[
                            "ID", "STATE", "MANAGED", "CLASS", "VENDOR", "MODEL", "ZONE", "MAC",
                            "SERIAL",
                        ],
                        &rows,
                    );
                    if let Some(next) = page.next {
                        println!("(more: --cursor {next})");
                    }
                }
            }
        }
        DeviceCommand::Show { id } => print_device(&store.get_device(id).await?, out)?,
        DeviceCommand::Add(a) => {
            let new = NewDevice {
                id: a.id.unwrap_or_else(DeviceId::new),
                state: a.state,
                class: a.attrs.class.unwrap_or_default(),
                identifiers: Identifiers {
                    mac: a.attrs.mac,
                    ips: a.attrs.ips.clone(),
                    serial: a.attrs.serial.clone(),
                    cert_fingerprint: a.attrs.cert_fingerprint,
                },
                vendor: a.attrs.vendor.clone(),
                model: a.attrs.model.clone(),
                firmware: a.attrs.firmware.clone(),
                zone: a.attrs.zone.clone(),
                labels: labels(&a.attrs.labels)?,
                groups: groups(&a.attrs.groups)?,
            };
            let d = vouch_control::devices::create(&*store, new, change(a.reason)?).await?;
            print_device(&d, out)?;
        }
        DeviceCommand::Update { id, attrs, reason } => {
            let patch = DevicePatch {
                class: attrs.class,
                mac: attrs.mac.map(Some),
                ips: (!attrs.ips.is_empty()).then(|| attrs.ips.clone()),
                serial: attrs.serial.clone().map(Some),
                cert_fingerprint: attrs.cert_fingerprint.map(Some),
                vendor: attrs.vendor.clone().map(Some),
                model: attrs.model.clone().map(Some),
                firmware: attrs.firmware.clone().map(Some),
                zone: attrs.zone.clone().map(Some),
                labels: if attrs.labels.is_empty() {
                    None
                } else {
                    Some(labels(&attrs.labels)?)
                },
                groups: if attrs.groups.is_empty() {
                    None
                } else {
                    Some(groups(&attrs.groups)?)
                },
            };
            let d =
                vouch_control::devices::update(&*store, id, patch, None, change(reason)?).await?;
            print_device(&d, out)?;
        }
        DeviceCommand::Transition { id, to, reason } => {
            let d = store
                .edit_device(id, DeviceEdit::Transition(to), None, change(reason)?)
                .await?;
            print_device(&d, out)?;
        }
        DeviceCommand::Onboard { id, reason } => {
            let why = change(reason)?;
            let reason = why.reason.clone();
            let d = vouch_control::discovery::onboard(&*store, id, why).await?;
            let (record, secret) = vouch_identity::issue_enrollment_token(
                &*store,
                SystemClock.now(),
                id,
                enrollment_ttl_hours,
                crate::cli_actor(),
                reason,
            )
            .await?;
            match out {
                Output::Json => output::json(&serde_json::json!({
                    "device_id": id, "state": d.state, "token_id": record.id,
                    "expires_at": record.expires_at, "token": secret.expose(),
                }))?,
                Output::Table => println!(
                    "device {id} is {}: enroll it over EST with this one-time token, valid until {} (shown only this once):\n\n    {}\n",
                    d.state.as_str(),
                    record.expires_at,
                    secret.expose()
                ),
            }
        }
        DeviceCommand::Events { id } => {
            store.get_device(id).await?;
            let mut after: Option<EventSeq> = None;
            let mut rows = Vec::new();
            let mut all = Vec::new();
            loop {
                let page = store.device_events(id, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.seq);
                for e in page {
                    rows.push(vec![
                        e.seq.to_string(),
                        e.at.to_string(),
                        e.draft.action.to_string(),
                        e.draft.actor.to_string(),
                        cell(e.draft.reason.as_ref()),
                    ]);
                    all.push(serde_json::json!({
                        "seq": e.seq, "at": e.at, "action": e.draft.action, "actor": e.draft.actor.to_string(),
                        "reason": e.draft.reason, "hash": e.hash,
                        "before": e.draft.before.and_then(|s| serde_json::from_str::<Value>(&s).ok()),
                        "after": e.draft.after.and_then(|s| serde_json::from_str::<Value>(&s).ok()),
                    }));
                }
            }
            match out {
                Output::Json => output::json(&all)?,
                Output::Table => output::table(&["SEQ", "AT", "ACTION", "ACTOR", "REASON"], &rows),
            }
        }
        DeviceCommand::Trust { id } => {
            let t = vouch_respond::history(&*store, id, None).await?;
            match out {
                Output::Json => output::json(&t)?,
                Output::Table => {
                    let score = t
                        .score
                        .map_or("not scored yet".to_owned(), |s| s.get().to_string());
                    println!(
                        "trust {score} ({}){}",
                        t.band.map_or("-", |b| b.as_str()),
                        t.quarantined_by
                            .as_deref()
                            .map_or(String::new(), |b| format!(", quarantined by {b}"))
                    );
                    let reasons = |r: &[vouch_events::TrustReason]| -> String {
                        r.iter()
                            .map(|x| format!("−{}: {}", x.penalty, x.why))
                            .collect::<Vec<_>>()
                            .join("; ")
                    };
                    let rows: Vec<Vec<String>> = t
                        .history
                        .iter()
                        .map(|p| {
                            vec![
                                p.at.to_string(),
                                p.score.get().to_string(),
                                p.band.as_str().to_owned(),
                                reasons(&p.reasons),
                            ]
                        })
                        .collect();
                    output::table(&["AT", "SCORE", "BAND", "REASONS"], &rows);
                }
            }
        }
        DeviceCommand::Import(a) => crate::import::run(a, store, out).await?,
    }
    Ok(())
}
