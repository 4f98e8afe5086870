//! How a device's trust and quarantine are recorded on its record, read and written here only.
//!
//! The trust service writes the score and band into reserved labels (`trust/score`, `trust/band`); a
//! quarantine puts the device in the [`QUARANTINE_GROUP`] (or an operator moves it to the `restricted`
//! lifecycle state, which every decision point reads as the same group), and a playbook's quarantine also
//! names the playbook in `response/quarantined-by`, so that only that playbook's release lifts it. Every reader
//! (the policy context, the responder, the history) goes through [`Labels::trust_score`] and
//! [`Device::quarantine`], so none of them parses a label string of its own.

use std::str::FromStr;

use crate::{
    Device, DeviceState, GroupName, LabelKey, LabelValue, Labels, QUARANTINED_BY_LABEL,
    TRUST_BAND_LABEL, TRUST_SCORE_LABEL, TrustScore, ValidationError,
};

/// The device group a quarantined device is in; the built-in `quarantine-update-only` policy forbids it
/// everything but its own update topics.
pub const QUARANTINE_GROUP: &str = "quarantine";

impl GroupName {
    /// The [`QUARANTINE_GROUP`].
    pub fn quarantine() -> GroupName {
        GroupName::known(QUARANTINE_GROUP)
    }
}

impl FromStr for TrustScore {
    type Err = ValidationError;
    /// A score as the `trust/score` label holds it: decimal digits, 0 to 100.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 3 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new(
                "trust score",
                format!("`{s}` is not a number from 0 to 100"),
            ));
        }
        s.parse::<u8>()
            .map_err(|_| ValidationError::new("trust score", format!("{s} is above 100")))
            .and_then(TrustScore::new)
    }
}

/// Why a device is quarantined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quarantine {
    /// A playbook put it in the quarantine group; the value names the playbook, whose release lifts it.
    Playbook(LabelValue),
    /// An operator put it in the quarantine group, or moved it to the `restricted` state: theirs to lift.
    Operator,
}

impl Quarantine {
    /// The playbook that imposed it, when one did.
    pub fn playbook(&self) -> Option<&str> {
        match self {
            Self::Playbook(p) => Some(p.as_str()),
            Self::Operator => None,
        }
    }
}

fn key(k: &'static str) -> LabelKey {
    LabelKey::known(k)
}

impl Labels {
    /// The trust score the trust service recorded, if any (a label that does not parse reads as none).
    pub fn trust_score(&self) -> Option<TrustScore> {
        self.get(&key(TRUST_SCORE_LABEL))?.as_str().parse().ok()
    }

    /// These labels with `score` and its band recorded; refused when the device's own labels leave no room.
    pub fn with_trust(&self, score: TrustScore) -> Result<Labels, ValidationError> {
        self.with(
            key(TRUST_SCORE_LABEL),
            Some(score.get().to_string().parse()?),
        )?
        .with(key(TRUST_BAND_LABEL), Some(score.band().as_str().parse()?))
    }

    /// These labels with the playbook `by` recorded as the quarantine's author, or the mark removed.
    pub fn with_quarantined_by(&self, by: Option<&str>) -> Result<Labels, ValidationError> {
        self.with(key(QUARANTINED_BY_LABEL), by.map(str::parse).transpose()?)
    }
}

impl Device {
    /// Whether the device is quarantined, and by whom: in the quarantine group, or in the `restricted` state.
    pub fn quarantine(&self) -> Option<Quarantine> {
        let in_group = self.groups.contains(&GroupName::quarantine());
        if !in_group && self.state != DeviceState::Restricted {
            return None;
        }
        let mark = self
            .labels
            .get(&key(QUARANTINED_BY_LABEL))
            .filter(|_| in_group);
        Some(match mark {
            Some(p) => Quarantine::Playbook(p.clone()),
            None => Quarantine::Operator,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_score_label_reads_strictly() {
        for ok in ["0", "7", "100", "070"] {
            assert!(ok.parse::<TrustScore>().is_ok(), "{ok}");
        }
        for bad in ["", "101", "255", "-1", "+5", " 5", "5.0", "1000", "٣"] {
            assert!(bad.parse::<TrustScore>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn score_and_quarantine_marks_round_trip_through_the_labels() {
        for k in [TRUST_SCORE_LABEL, TRUST_BAND_LABEL, QUARANTINED_BY_LABEL] {
            assert_eq!(k.parse::<LabelKey>().unwrap(), key(k));
            assert!(key(k).is_reserved(), "{k}");
        }
        assert_eq!(
            QUARANTINE_GROUP.parse::<GroupName>().unwrap(),
            GroupName::quarantine()
        );
        let l = Labels::default()
            .with_trust(TrustScore::new(35).unwrap())
            .unwrap();
        assert_eq!(l.trust_score(), TrustScore::new(35).ok());
        assert_eq!(
            l.get(&key(TRUST_BAND_LABEL)).map(LabelValue::as_str),
            Some("low")
        );
        let marked = l.with_quarantined_by(Some("isolate-on-low-trust")).unwrap();
        assert!(marked.get(&key(QUARANTINED_BY_LABEL)).is_some());
        assert_eq!(marked.with_quarantined_by(None).unwrap(), l);
    }

    #[test]
    fn a_quarantine_is_read_from_the_group_the_state_and_the_mark_alike() {
        use crate::{DeviceId, Groups, NewDevice, Timestamp};
        let mut d = NewDevice::bare(DeviceId::derived("serial:q"))
            .into_device(Timestamp::from_unix_micros(0))
            .unwrap();
        assert_eq!(d.quarantine(), None);
        d.state = DeviceState::Restricted;
        assert_eq!(d.quarantine(), Some(Quarantine::Operator));
        // A mark without the group is stale: the quarantine it named was lifted.
        d.labels = d.labels.with_quarantined_by(Some("isolate")).unwrap();
        assert_eq!(d.quarantine(), Some(Quarantine::Operator));
        d.state = DeviceState::Active;
        assert_eq!(d.quarantine(), None);
        d.groups = Groups::new([GroupName::quarantine()].into()).unwrap();
        assert_eq!(d.quarantine().unwrap().playbook(), Some("isolate"));
        d.labels = d.labels.with_quarantined_by(None).unwrap();
        assert_eq!(d.quarantine(), Some(Quarantine::Operator));
    }
}
