//! OCSF 1.2 Compliance Finding events (class 2003, category Findings) for a SIEM: one per (device, control)
//! whose state changed between two evaluations — a control that starts failing opens a finding (Create), one
//! that stops failing closes it (Close). The finding's uid is the OSCAL finding's uuid, so a SIEM ties the
//! Close to its Create and both to the assessment results.
//!
//! Every attribute the schema requires of class 2003 and of the objects used is set (`activity_id`,
//! `category_uid`, `class_uid`, `type_uid`, `severity_id`, `time`, `metadata.product` with `vendor_name` and
//! `name`, `metadata.version`, `finding_info.uid` and `title`, `compliance.standards`, `device.type_id`);
//! `device` comes with the `host` profile, which `metadata.profiles` names.

use serde::Serialize;

use super::oscal::finding_uuid;
use super::{
    Assessed, ReportError, Scope, control_kev, control_severity, control_token, failing_evidence,
    framework_title,
};
use crate::eval::{ControlState, DeviceResult};
use crate::rules::Severity;

/// The OCSF schema version the events conform to.
pub const OCSF_VERSION: &str = "1.2.0";
/// OCSF's Compliance Finding class.
pub const CLASS_UID: u32 = 2003;
/// OCSF's Findings category.
pub const CATEGORY_UID: u32 = 2;
/// OCSF's device type for an IoT device.
const DEVICE_TYPE_IOT: u8 = 7;

/// A finding's activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    /// The control started failing.
    Create,
    /// The control stopped failing.
    Close,
}

impl Activity {
    const fn id(self) -> u8 {
        match self {
            Self::Create => 1,
            Self::Close => 3,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Self::Create => "Create",
            Self::Close => "Close",
        }
    }
}

/// One OCSF Compliance Finding event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComplianceFinding {
    /// 1 Create, 3 Close.
    pub activity_id: u8,
    /// The activity's caption.
    pub activity_name: &'static str,
    /// 2, Findings.
    pub category_uid: u32,
    /// The category's caption.
    pub category_name: &'static str,
    /// 2003, Compliance Finding.
    pub class_uid: u32,
    /// The class's caption.
    pub class_name: &'static str,
    /// `class_uid * 100 + activity_id`.
    pub type_uid: u32,
    /// The type's caption.
    pub type_name: String,
    /// 1 Informational (a Close), 2 Low … 5 Critical.
    pub severity_id: u8,
    /// The severity's caption.
    pub severity: &'static str,
    /// When the device was evaluated, in milliseconds since the Unix epoch.
    pub time: i64,
    /// What happened, in words.
    pub message: String,
    /// The finding's status: 1 New (a Create), 4 Resolved (a Close).
    pub status_id: u8,
    /// The status's caption.
    pub status: &'static str,
    /// Who produced the event.
    pub metadata: Metadata,
    /// The finding.
    pub finding_info: FindingInfo,
    /// The control and its status.
    pub compliance: Compliance,
    /// The device.
    pub device: Device,
}

/// The event's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// Vouch.
    pub product: Product,
    /// `host`: the profile that brings `device` into a finding.
    pub profiles: Vec<&'static str>,
    /// The OCSF schema version.
    pub version: &'static str,
}

/// The reporting product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    /// `Vouch`.
    pub name: &'static str,
    /// The vendor (the Vouch project).
    pub vendor_name: &'static str,
    /// Vouch's version.
    pub version: String,
}

/// The finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingInfo {
    /// The finding's uid (the OSCAL finding's uuid: the same for its Create and its Close).
    pub uid: String,
    /// The control on the device.
    pub title: String,
    /// The control's title and the evidence.
    pub desc: String,
    /// `Compliance`, and `CRA Art. 14` for a known-exploited vulnerability.
    pub types: Vec<&'static str>,
}

/// The control and its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compliance {
    /// The framework.
    pub standards: Vec<&'static str>,
    /// The control's id within it.
    pub control: String,
    /// 1 Pass, 3 Fail.
    pub status_id: u8,
    /// The status's caption.
    pub status: &'static str,
}

/// The device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    /// 7, IOT.
    pub type_id: u8,
    /// The type's caption.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Vouch's device id.
    pub uid: String,
    /// Its name.
    pub name: String,
}

const fn severity(s: Option<Severity>) -> (u8, &'static str) {
    match s {
        None => (1, "Informational"),
        Some(Severity::Low) => (2, "Low"),
        Some(Severity::Medium) => (3, "Medium"),
        Some(Severity::High) => (4, "High"),
        Some(Severity::Critical) => (5, "Critical"),
    }
}

/// The events for the controls whose state changed on `device` since `previous` (none: every failing control
/// opens a finding). `previous` must be of the same device and catalogue; both are checked.
pub fn changes(
    scope: &Scope<'_>,
    device: &Assessed<'_>,
    previous: Option<&DeviceResult>,
) -> Result<Vec<ComplianceFinding>, ReportError> {
    let cat = scope.catalogue;
    let r = device.result;
    for x in [Some(r), previous].into_iter().flatten() {
        if x.device != r.device
            || x.checks.len() != cat.checks().len()
            || x.controls.len() != cat.controls().len()
        {
            return Err(ReportError::OtherCatalogue { device: x.device });
        }
    }
    if !super::text_ok(device.name) {
        return Err(ReportError::BadText {
            what: "device name",
        });
    }
    let dev = r.device.to_string();
    let mut out = Vec::new();
    for (i, (control, &now)) in cat.controls().iter().zip(&r.controls).enumerate() {
        let before = previous.and_then(|p| p.controls.get(i).copied());
        let was_failing = before == Some(ControlState::Fail);
        let activity = match (was_failing, now == ControlState::Fail) {
            (false, true) => Activity::Create,
            (true, false) => Activity::Close,
            _ => continue,
        };
        let (sev, kev) = match activity {
            Activity::Create => (control_severity(cat, r, i), control_kev(cat, r, i)),
            Activity::Close => (None, None),
        };
        let (severity_id, severity_name) = severity(sev);
        let mut desc = control.title.clone();
        for e in failing_evidence(cat, r, i) {
            desc.push_str("; ");
            desc.push_str(&e.text);
        }
        let mut types = vec!["Compliance"];
        if let Some(x) = kev {
            types.push("CRA Art. 14");
            desc.push_str(&format!(
                "; CRA Art. 14: {} early warning due {}, notification due {}",
                x.cve, x.early_warning_due, x.notification_due
            ));
        }
        let title = format!("{} {} on {}", control.framework, control.id, device.label());
        let (status_id, status) = match activity {
            Activity::Create => (1, "New"),
            Activity::Close => (4, "Resolved"),
        };
        let (c_status_id, c_status) = match activity {
            Activity::Create => (3, "Fail"),
            Activity::Close => (1, "Pass"),
        };
        out.push(ComplianceFinding {
            activity_id: activity.id(),
            activity_name: activity.name(),
            category_uid: CATEGORY_UID,
            category_name: "Findings",
            class_uid: CLASS_UID,
            class_name: "Compliance Finding",
            type_uid: CLASS_UID * 100 + u32::from(activity.id()),
            type_name: format!("Compliance Finding: {}", activity.name()),
            severity_id,
            severity: severity_name,
            time: r.at.unix_micros().div_euclid(1000),
            message: format!("{title}: {}", c_status.to_lowercase()),
            status_id,
            status,
            metadata: Metadata {
                product: Product {
                    name: "Vouch",
                    vendor_name: "Vouch project",
                    version: scope.version.to_owned(),
                },
                profiles: vec!["host"],
                version: OCSF_VERSION,
            },
            finding_info: FindingInfo {
                uid: finding_uuid(&dev, &control_token(control)).to_string(),
                title,
                desc,
                types,
            },
            compliance: Compliance {
                standards: vec![framework_title(control.framework)],
                control: control.id.clone(),
                status_id: c_status_id,
                status: c_status,
            },
            device: Device {
                type_id: DEVICE_TYPE_IOT,
                kind: "IOT",
                uid: dev.clone(),
                name: device.label(),
            },
        });
    }
    Ok(out)
}

/// The events for every device of `scope` as a first evaluation (each failing control opens a finding), as
/// JSON lines.
pub fn to_json_lines(scope: &Scope<'_>) -> Result<Vec<u8>, ReportError> {
    scope.validate()?;
    let mut out = Vec::new();
    for a in scope.devices {
        for e in changes(scope, a, None)? {
            serde_json::to_writer(&mut out, &e)
                .map_err(|e| ReportError::Serialise(e.to_string()))?;
            out.push(b'\n');
        }
    }
    Ok(out)
}
