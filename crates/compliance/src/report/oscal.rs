//! OSCAL 1.1 assessment results (JSON) for a scope: one result for the period, the catalogue's controls as
//! the reviewed controls, the devices as inventory items, one observation per device per check (with its
//! evidence) and one finding per device per applicable control (satisfied / not-satisfied, pointing at the
//! observations of that control's checks). A control that applies to no check on a device gets no finding:
//! OSCAL's objective status has no "not applicable".
//!
//! Every uuid is name-based (v5) on the device id, the check or control and the period, so the same inputs
//! give the same document.

use serde::Serialize;
use uuid::Uuid;

use super::{ReportError, Scope, control_token, name_uuid};
use crate::eval::ControlState;
use crate::rules::Outcome;

/// The OSCAL version the document conforms to.
pub const OSCAL_VERSION: &str = "1.1.2";

/// The document's root: `{"assessment-results": …}`.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    /// The assessment results.
    #[serde(rename = "assessment-results")]
    pub assessment_results: AssessmentResults,
}

/// The assessment-results model.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AssessmentResults {
    /// The document's identifier.
    pub uuid: Uuid,
    /// Title, times and versions.
    pub metadata: Metadata,
    /// The assessment plan the results answer.
    pub import_ap: ImportAp,
    /// The results (one: the scope's period).
    pub results: Vec<AssessmentResult>,
    /// What `import-ap` points at: the catalogue the devices were evaluated against.
    pub back_matter: BackMatter,
}

/// Resources the document refers to.
#[derive(Debug, Clone, Serialize)]
pub struct BackMatter {
    /// The catalogue, as the assessment plan.
    pub resources: Vec<Resource>,
}

/// One resource.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    /// Its identifier (name-based on the catalogue's controls).
    pub uuid: Uuid,
    /// Its title.
    pub title: String,
    /// What it is.
    pub description: String,
}

/// The document's metadata.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Metadata {
    /// The document's title.
    pub title: String,
    /// When it was generated.
    pub last_modified: String,
    /// The document's version (Vouch's).
    pub version: String,
    /// The OSCAL version.
    pub oscal_version: &'static str,
}

/// A reference to the assessment plan.
#[derive(Debug, Clone, Serialize)]
pub struct ImportAp {
    /// Where the plan is: `#` and the back-matter resource's uuid (Vouch's plan is its catalogue).
    pub href: String,
}

/// One result: the scope over its period.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AssessmentResult {
    /// Its identifier.
    pub uuid: Uuid,
    /// Its title.
    pub title: String,
    /// What it covers.
    pub description: String,
    /// The period's start.
    pub start: String,
    /// The period's end.
    pub end: String,
    /// The devices, as inventory items (none for an empty scope: OSCAL lists are never empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_definitions: Option<LocalDefinitions>,
    /// The controls evaluated.
    pub reviewed_controls: ReviewedControls,
    /// What was observed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<Observation>,
    /// What was concluded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
}

/// The result's own definitions.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LocalDefinitions {
    /// The devices.
    pub inventory_items: Vec<InventoryItem>,
}

/// A device.
#[derive(Debug, Clone, Serialize)]
pub struct InventoryItem {
    /// Its identifier (name-based on the device id).
    pub uuid: Uuid,
    /// Its name.
    pub description: String,
    /// Its Vouch device id.
    pub props: Vec<Property>,
}

/// A name/value property.
#[derive(Debug, Clone, Serialize)]
pub struct Property {
    /// The name (a token).
    pub name: &'static str,
    /// The value.
    pub value: String,
}

/// The controls evaluated.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReviewedControls {
    /// The selections (one: the catalogue).
    pub control_selections: Vec<ControlSelection>,
}

/// A selection of controls.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ControlSelection {
    /// What it is.
    pub description: String,
    /// The controls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include_controls: Vec<SelectControl>,
}

/// One control, by token.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SelectControl {
    /// The control's token (see [`super::control_token`]).
    pub control_id: String,
}

/// One check on one device.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Observation {
    /// Its identifier.
    pub uuid: Uuid,
    /// The check.
    pub title: String,
    /// Its outcome, in words.
    pub description: String,
    /// How: Vouch tests the device's evidence.
    pub methods: Vec<&'static str>,
    /// The device.
    pub subjects: Vec<Subject>,
    /// The evidence.
    pub relevant_evidence: Vec<RelevantEvidence>,
    /// When the device was evaluated.
    pub collected: String,
}

/// What an observation is about.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Subject {
    /// The inventory item's uuid.
    pub subject_uuid: Uuid,
    /// `inventory-item`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// One item of evidence.
#[derive(Debug, Clone, Serialize)]
pub struct RelevantEvidence {
    /// What was found.
    pub description: String,
}

/// One control on one device.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Finding {
    /// Its identifier (name-based on the device and the control; the OCSF events reuse it).
    pub uuid: Uuid,
    /// The control on the device.
    pub title: String,
    /// The control's title.
    pub description: String,
    /// The control objective and its status.
    pub target: Target,
    /// The observations of the control's checks on the device.
    pub related_observations: Vec<RelatedObservation>,
}

/// A finding's target.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Target {
    /// `objective-id`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The control's token.
    pub target_id: String,
    /// Satisfied or not.
    pub status: Status,
}

/// An objective's status.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// `satisfied` or `not-satisfied`.
    pub state: &'static str,
}

/// A reference to an observation.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RelatedObservation {
    /// The observation's uuid.
    pub observation_uuid: Uuid,
}

/// The name-based uuid of the finding for control token `control` on `device`, shared with the OCSF events.
pub(crate) fn finding_uuid(device: &str, control: &str) -> Uuid {
    name_uuid(&["finding", device, control])
}

fn observation_uuid(period: &str, device: &str, check: usize, rule: &str) -> Uuid {
    name_uuid(&["observation", period, device, &check.to_string(), rule])
}

/// The assessment results for `scope`.
pub fn assessment_results(scope: &Scope<'_>) -> Result<Document, ReportError> {
    scope.validate()?;
    let cat = scope.catalogue;
    let start = scope.period.start.to_string();
    let end = scope.period.end.to_string();
    let period = format!("{start}/{end}");
    let mut ids: Vec<String> = scope
        .devices
        .iter()
        .map(|a| a.result.device.to_string())
        .collect();
    ids.sort_unstable();
    let mut doc_name = vec!["assessment-results", period.as_str(), scope.title];
    doc_name.extend(ids.iter().map(String::as_str));
    let doc_uuid = name_uuid(&doc_name);

    let tokens: Vec<String> = cat.controls().iter().map(control_token).collect();
    let mut plan_name = vec!["catalogue"];
    plan_name.extend(tokens.iter().map(String::as_str));
    let plan = name_uuid(&plan_name);

    let mut items = Vec::with_capacity(scope.devices.len());
    let mut observations = Vec::new();
    let mut findings = Vec::new();
    for a in scope.devices {
        let r = a.result;
        let dev = r.device.to_string();
        let item = name_uuid(&["inventory-item", &dev]);
        items.push(InventoryItem {
            uuid: item,
            description: a.label(),
            props: vec![Property {
                name: "asset-id",
                value: dev.clone(),
            }],
        });
        let collected = r.at.to_string();
        for (k, (check, outcome)) in cat.checks().iter().zip(&r.checks).enumerate() {
            let rule = check.rule.as_str();
            let (description, evidence) = match outcome {
                Outcome::Pass => (format!("{rule}: passed"), vec![format!("{rule} passed")]),
                Outcome::NotApplicable(why) => {
                    (format!("{rule}: not applicable"), vec![(*why).to_owned()])
                }
                Outcome::Fail(ev) => (
                    format!("{rule}: failed"),
                    ev.iter().map(|e| e.text.to_string()).collect(),
                ),
            };
            observations.push(Observation {
                uuid: observation_uuid(&period, &dev, k, rule),
                title: format!("{rule} on {}", a.label()),
                description,
                methods: vec!["TEST"],
                subjects: vec![Subject {
                    subject_uuid: item,
                    kind: "inventory-item",
                }],
                relevant_evidence: evidence
                    .into_iter()
                    .map(|description| RelevantEvidence {
                        // OSCAL refuses an empty description.
                        description: if description.is_empty() {
                            format!("{rule}: no detail")
                        } else {
                            description
                        },
                    })
                    .collect(),
                collected: collected.clone(),
            });
        }
        for (i, (control, state)) in cat.controls().iter().zip(&r.controls).enumerate() {
            let state = match state {
                ControlState::Pass => "satisfied",
                ControlState::Fail => "not-satisfied",
                ControlState::NotApplicable => continue,
            };
            let token = control_token(control);
            findings.push(Finding {
                uuid: finding_uuid(&dev, &token),
                title: format!("{} {} on {}", control.framework, control.id, a.label()),
                description: control.title.clone(),
                target: Target {
                    kind: "objective-id",
                    target_id: token,
                    status: Status { state },
                },
                related_observations: cat
                    .checks_of(i)
                    .iter()
                    .filter_map(|&k| {
                        let rule = cat.checks().get(k)?.rule.as_str();
                        Some(RelatedObservation {
                            observation_uuid: observation_uuid(&period, &dev, k, rule),
                        })
                    })
                    .collect(),
            });
        }
    }
    let title = if scope.title.is_empty() {
        "Vouch compliance assessment".to_owned()
    } else {
        scope.title.to_owned()
    };
    Ok(Document {
        assessment_results: AssessmentResults {
            uuid: doc_uuid,
            metadata: Metadata {
                title: title.clone(),
                last_modified: scope.generated.to_string(),
                version: scope.version.to_owned(),
                oscal_version: OSCAL_VERSION,
            },
            import_ap: ImportAp {
                href: format!("#{plan}"),
            },
            results: vec![AssessmentResult {
                uuid: name_uuid(&["result", &doc_uuid.to_string()]),
                title,
                description: format!(
                    "{} devices evaluated against {} controls from {start} to {end}",
                    scope.devices.len(),
                    cat.controls().len()
                ),
                start,
                end,
                local_definitions: (!items.is_empty()).then_some(LocalDefinitions {
                    inventory_items: items,
                }),
                reviewed_controls: ReviewedControls {
                    control_selections: vec![ControlSelection {
                        description: "Every control of Vouch's catalogue".to_owned(),
                        include_controls: tokens
                            .into_iter()
                            .map(|control_id| SelectControl { control_id })
                            .collect(),
                    }],
                },
                observations,
                findings,
            }],
            back_matter: BackMatter {
                resources: vec![Resource {
                    uuid: plan,
                    title: "Vouch compliance catalogue".to_owned(),
                    description: format!(
                        "The assessment plan: each of the {} controls decided by Vouch's rules over the \
                         devices' evidence",
                        cat.controls().len()
                    ),
                }],
            },
        },
    })
}

/// The assessment results for `scope`, as pretty-printed JSON.
pub fn to_json(scope: &Scope<'_>) -> Result<Vec<u8>, ReportError> {
    let doc = assessment_results(scope)?;
    serde_json::to_vec_pretty(&doc).map_err(|e| ReportError::Serialise(e.to_string()))
}
