//! Bulk registration records (`vouch device import`: CSV, JSON Lines, a JSON array): each record parsed into
//! a [`NewDevice`] with its own error, its id explicit or derived from its serial (else its MAC) so that
//! re-running an import skips what was committed, and its labels held to the reserved-label rule like any
//! operator's device. The CLI reads the file, batches the records and renders; the store writes each batch
//! in one transaction (`Store::import_devices`).

use std::net::IpAddr;

use serde::Deserialize;
use vouch_types::{
    CertFingerprint, DeviceClass, DeviceId, DeviceState, FirmwareVersion, Groups, HardwareSerial,
    Identifiers, Labels, MacAddr, Model, NewDevice, ValidationError, Vendor, Zone,
};

/// Why one import record is invalid.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Neither an id nor a serial nor a MAC: its id could not be derived.
    #[error("needs an id, serial or mac (so that re-running the import is idempotent)")]
    NoNaturalKey,
    /// A column's text does not parse.
    #[error("{column}: {why}")]
    Column {
        /// The column (or JSON field).
        column: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// Labels or groups broke a domain rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// It sets a label in a namespace Vouch writes.
    #[error(
        "label {0} is written by Vouch (labels under trust/ and response/ are the trust service's and the \
         playbooks'); an import may not set it"
    )]
    ReservedLabel(vouch_types::LabelKey),
}

trait Checked: Sized {
    fn checked(self) -> Result<NewDevice, RecordError>;
}

impl Checked for NewDevice {
    /// Refuses a record that sets a reserved label (as `devices::create` refuses it).
    fn checked(self) -> Result<NewDevice, RecordError> {
        match self.labels.reserved_change(None) {
            Some(key) => Err(RecordError::ReservedLabel(key.clone())),
            None => Ok(self),
        }
    }
}

/// The CSV columns, all optional; list fields are `;`-separated (`labels`: `k=v;k2=v2`).
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "serial",
    "mac",
    "ips",
    "cert_fingerprint",
    "class",
    "state",
    "vendor",
    "model",
    "firmware",
    "zone",
    "labels",
    "groups",
];

/// One CSV row as read: every column text, parsed by [`CsvRecord::into_new`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvRecord {
    id: Option<String>,
    serial: Option<String>,
    mac: Option<String>,
    ips: Option<String>,
    cert_fingerprint: Option<String>,
    class: Option<String>,
    state: Option<String>,
    vendor: Option<String>,
    model: Option<String>,
    firmware: Option<String>,
    zone: Option<String>,
    labels: Option<String>,
    groups: Option<String>,
}

/// One JSON record as read (JSON Lines or an array element), typed by serde.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonRecord {
    id: Option<DeviceId>,
    serial: Option<HardwareSerial>,
    mac: Option<MacAddr>,
    #[serde(default)]
    ips: Vec<IpAddr>,
    cert_fingerprint: Option<CertFingerprint>,
    #[serde(default)]
    class: DeviceClass,
    state: Option<DeviceState>,
    vendor: Option<Vendor>,
    model: Option<Model>,
    firmware: Option<FirmwareVersion>,
    zone: Option<Zone>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    groups: Groups,
}

/// The id a record gets: explicit, else derived from its serial, else from its MAC.
pub fn record_id(
    id: Option<DeviceId>,
    serial: Option<&HardwareSerial>,
    mac: Option<MacAddr>,
) -> Result<DeviceId, RecordError> {
    match (id, serial, mac) {
        (Some(id), _, _) => Ok(id),
        (None, Some(s), _) => Ok(DeviceId::derived(&format!("serial:{s}"))),
        (None, None, Some(m)) => Ok(DeviceId::derived(&format!("mac:{m}"))),
        (None, None, None) => Err(RecordError::NoNaturalKey),
    }
}

/// An optional column: empty is absent, anything else must parse.
fn opt<T: std::str::FromStr>(
    column: &'static str,
    v: Option<String>,
) -> Result<Option<T>, RecordError>
where
    T::Err: std::fmt::Display,
{
    v.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|e: T::Err| RecordError::Column {
                column,
                why: e.to_string(),
            })
        })
        .transpose()
}

impl CsvRecord {
    /// The device this row registers, or why the row is invalid.
    pub fn into_new(self) -> Result<NewDevice, RecordError> {
        let serial: Option<HardwareSerial> = opt("serial", self.serial)?;
        let mac: Option<MacAddr> = opt("mac", self.mac)?;
        let ips = self
            .ips
            .unwrap_or_default()
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.trim().parse().map_err(|_| RecordError::Column {
                    column: "ips",
                    why: format!("`{s}` is not an IP address"),
                })
            })
            .collect::<Result<Vec<IpAddr>, _>>()?;
        (NewDevice {
            id: record_id(opt("id", self.id)?, serial.as_ref(), mac)?,
            state: opt("state", self.state)?.unwrap_or(DeviceState::Onboarding),
            class: opt("class", self.class)?.unwrap_or_default(),
            identifiers: Identifiers {
                mac,
                ips,
                serial,
                cert_fingerprint: opt("cert_fingerprint", self.cert_fingerprint)?,
            },
            vendor: opt("vendor", self.vendor)?,
            model: opt("model", self.model)?,
            firmware: opt("firmware", self.firmware)?,
            zone: opt("zone", self.zone)?,
            labels: self.labels.as_deref().unwrap_or("").parse()?,
            groups: self.groups.as_deref().unwrap_or("").parse()?,
        })
        .checked()
    }
}

impl JsonRecord {
    /// The device this record registers, or why the record is invalid.
    pub fn into_new(self) -> Result<NewDevice, RecordError> {
        (NewDevice {
            id: record_id(self.id, self.serial.as_ref(), self.mac)?,
            state: self.state.unwrap_or(DeviceState::Onboarding),
            class: self.class,
            identifiers: Identifiers {
                mac: self.mac,
                ips: self.ips,
                serial: self.serial,
                cert_fingerprint: self.cert_fingerprint,
            },
            vendor: self.vendor,
            model: self.model,
            firmware: self.firmware,
            zone: self.zone,
            labels: self.labels,
            groups: self.groups,
        })
        .checked()
    }
}
