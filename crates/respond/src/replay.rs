//! Offline replay (`vouch trust replay FILE`): recorded windows scored with the same engine, playbooks and
//! settings as the live service ([`crate::TrustService`]), without a store, so traffic recorded anywhere can
//! be evaluated.
//!
//! What a file of windows cannot say is taken as healthy: each device holds a valid certificate, runs
//! current firmware, is in its zone, and reported no attestation; its class is the line's `class` (see
//! [`RecordedWindow`]). The playbooks' effects are played as the live service would carry them out in the
//! registry: a quarantine restricts the device from its next window on (what the restriction distorts is not
//! held against it), a release lifts it, a revocation or re-enrollment leaves it without a valid
//! certificate. So a device registered that way and fed the same windows live ends with the same score.
//!
//! A file holds windows only: a line that is anything else (a discovery sighting among them) is refused
//! naming its number, never judged as a window.
//!
//! Bounded against a hostile file: a line is at most [`MAX_LINE_BYTES`], at most [`MAX_DEVICES`] devices are
//! followed, and windows are judged as they are read (memory grows with devices, not with lines).

use std::collections::HashMap;
use std::io::BufRead;

use serde::Serialize;
use vouch_trust::{
    Assessment, DeviceState, FirmwareState, IdentityState, RecordedWindow, ScoreReason, Step,
};
use vouch_types::{DeviceClass, DeviceId, Timestamp, TrustBand, TrustScore};

use crate::TrustSettings;
use crate::judge::Judge;

/// The longest line read, in bytes (a window is a few hundred).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The most devices one replay follows.
pub const MAX_DEVICES: usize = 100_000;
/// Days left on the certificate a replayed device is assumed to hold: far from renewal, so it costs nothing.
const ASSUMED_DAYS_LEFT: i64 = 365;

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// A line is longer than [`MAX_LINE_BYTES`].
    #[error("line {line}: longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong {
        /// Its number, from 1.
        line: u64,
    },
    /// A line is not a traffic window.
    #[error("line {line}: not a traffic window: {error}")]
    Parse {
        /// Its number, from 1.
        line: u64,
        /// What is wrong with it (in the message, not a source: said once).
        error: serde_json::Error,
    },
    /// The file names more devices than a replay follows.
    #[error("line {line}: more than {MAX_DEVICES} devices")]
    TooManyDevices {
        /// The number of the line (or window, from 1) that named one too many.
        line: u64,
    },
    /// The file could not be read.
    #[error("line {line}: reading failed: {error}")]
    Io {
        /// The number of the line being read, from 1.
        line: u64,
        /// The error (in the message, not a source: said once).
        error: std::io::Error,
    },
}

/// A device's score at the end of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceOutcome {
    /// Whose.
    pub device: DeviceId,
    /// Its class, per its last window.
    pub class: DeviceClass,
    /// Windows judged.
    pub windows: u64,
    /// When its last window ended.
    pub at: Timestamp,
    /// The score after its last window.
    pub score: TrustScore,
    /// Its band.
    pub band: TrustBand,
    /// Why points were taken off, largest first (remembered penalties say when they were incurred).
    pub reasons: Vec<ScoreReason>,
    /// The playbook whose quarantine is in force at the end, if one is.
    pub quarantined_by: Option<String>,
    /// A playbook revoked its certificates.
    pub revoked: bool,
}

/// What the replay knows of a device: what the registry would hold after the playbooks acted.
struct Offline {
    class: DeviceClass,
    windows: u64,
    last: Option<(Timestamp, Assessment)>,
    quarantined_by: Option<String>,
    revoked: bool,
}

/// A replay in progress: windows in, in order; outcomes out.
pub struct Replay {
    judge: Judge,
    devices: HashMap<DeviceId, Offline>,
    /// Devices in the order they first appeared, so the outcome is in file order.
    order: Vec<DeviceId>,
    pushed: u64,
}

impl Replay {
    /// A replay with the live service's models and playbooks as `settings` configure them.
    pub fn new(settings: &TrustSettings) -> Self {
        Self {
            judge: settings.judge(),
            devices: HashMap::new(),
            order: Vec::new(),
            pushed: 0,
        }
    }

    /// Judges one window (the `n`th pushed is numbered `n` in errors).
    pub fn push(&mut self, r: &RecordedWindow) -> Result<(), ReplayError> {
        self.pushed += 1;
        self.push_at(r, self.pushed)
    }

    fn push_at(&mut self, r: &RecordedWindow, line: u64) -> Result<(), ReplayError> {
        let w = &r.window;
        if !self.devices.contains_key(&w.device) {
            if self.devices.len() >= MAX_DEVICES {
                return Err(ReplayError::TooManyDevices { line });
            }
            self.order.push(w.device);
        }
        let d = self.devices.entry(w.device).or_insert(Offline {
            class: r.class,
            windows: 0,
            last: None,
            quarantined_by: None,
            revoked: false,
        });
        d.class = r.class;
        let state = DeviceState {
            class: r.class,
            identity: if d.revoked {
                IdentityState::Revoked
            } else {
                IdentityState::Valid {
                    days_left: ASSUMED_DAYS_LEFT,
                    renewal_overdue: false,
                }
            },
            firmware: FirmwareState::Current,
            out_of_zone: None,
            failed_controls: Vec::new(),
            attestation_ok: None,
            restricted: d.quarantined_by.is_some(),
        };
        let (verdict, directives) = self.judge.judge(w, &state, d.quarantined_by.as_deref());
        // As the live service carries them out (`TrustService::apply`): shadow directives only log.
        for x in directives.iter().filter(|x| !x.shadow) {
            match x.step {
                None => d.quarantined_by = None,
                Some(Step::Quarantine) => d.quarantined_by = Some(x.playbook.clone()),
                Some(Step::Revoke | Step::Reenroll) => d.revoked = true,
                Some(Step::Notify) => {}
            }
        }
        d.windows += 1;
        d.last = Some((w.end, verdict.assessment));
        Ok(())
    }

    /// Each device's score and reasons after its last window, in the order devices first appeared.
    pub fn outcomes(&self) -> Vec<DeviceOutcome> {
        self.order
            .iter()
            .filter_map(|id| {
                let d = self.devices.get(id)?;
                let (at, a) = d.last.as_ref()?;
                Some(DeviceOutcome {
                    device: *id,
                    class: d.class,
                    windows: d.windows,
                    at: *at,
                    score: a.score,
                    band: a.score.band(),
                    reasons: a.reasons.clone(),
                    quarantined_by: d.quarantined_by.clone(),
                    revoked: d.revoked,
                })
            })
            .collect()
    }
}

/// Scores `windows` in order and returns each device's outcome.
pub fn replay(
    windows: impl IntoIterator<Item = RecordedWindow>,
    settings: &TrustSettings,
) -> Result<Vec<DeviceOutcome>, ReplayError> {
    let mut r = Replay::new(settings);
    for w in windows {
        r.push(&w)?;
    }
    Ok(r.outcomes())
}

/// Scores a JSON Lines stream of windows (one [`RecordedWindow`] a line; blank lines are skipped).
pub fn replay_jsonl(
    mut input: impl BufRead,
    settings: &TrustSettings,
) -> Result<Vec<DeviceOutcome>, ReplayError> {
    let mut r = Replay::new(settings);
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        line += 1;
        buf.clear();
        // One byte past the limit tells a line that is too long from one that is exactly at it.
        let limit = MAX_LINE_BYTES as u64 + 2;
        let n = std::io::Read::take(&mut input, limit)
            .read_until(b'\n', &mut buf)
            .map_err(|error| ReplayError::Io { line, error })?;
        if n == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        } else if n as u64 == limit {
            return Err(ReplayError::LineTooLong { line });
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(ReplayError::LineTooLong { line });
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let w: RecordedWindow =
            serde_json::from_slice(&buf).map_err(|error| ReplayError::Parse { line, error })?;
        r.push_at(&w, line)?;
    }
    Ok(r.outcomes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_types::TrafficWindow;

    fn window(device: DeviceId, n: i64, new_topics: u32) -> RecordedWindow {
        let start = Timestamp::from_unix_micros(1_800_000_000_000_000 + n * 10_000_000);
        let jitter = (n * 7919 % 5) as u64;
        RecordedWindow {
            window: TrafficWindow {
                device,
                start,
                end: start.plus_micros(10_000_000),
                connects: u32::from(n == 0),
                disconnects: 0,
                sessions: 1,
                auth_failures: 0,
                msgs_in: 10 + jitter,
                msgs_out: 0,
                bytes_in: (10 + jitter) * 80,
                bytes_out: 0,
                distinct_topics: 1 + new_topics,
                new_topics,
                remotes: Vec::new(),
            },
            class: DeviceClass::Sensor,
        }
    }

    fn lines(ws: &[RecordedWindow]) -> String {
        ws.iter()
            .map(|w| serde_json::to_string(w).unwrap() + "\n")
            .collect()
    }

    #[test]
    fn a_file_of_windows_is_scored_per_device_with_reasons() {
        let (a, b) = (DeviceId::derived("a"), DeviceId::derived("b"));
        let mut ws = Vec::new();
        for n in 0..30 {
            ws.push(window(a, n, 0));
            ws.push(window(b, n, u32::from(n == 29) * 40));
        }
        let text = lines(&ws);
        let out = replay_jsonl(text.as_bytes(), &TrustSettings::default()).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].device, out[0].score.get()), (a, 100));
        assert_eq!(out[0].windows, 30);
        assert!(out[1].score.get() <= 40, "{:?}", out[1]);
        assert!(out[1].reasons[0].why.contains("topics"), "{:?}", out[1]);
        assert_eq!(
            out[1].quarantined_by.as_deref(),
            Some("quarantine-low-trust")
        );
        // The same windows given directly, and with blank lines and CRLF: the same outcome.
        assert_eq!(replay(ws, &TrustSettings::default()).unwrap(), out);
        let crlf = text.replace('\n', "\r\n\n");
        assert_eq!(
            replay_jsonl(crlf.as_bytes(), &TrustSettings::default()).unwrap(),
            out
        );
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let d = DeviceId::derived("a");
        let good = lines(&[window(d, 0, 0)]);
        let text = format!("{good}{{\"device\": 1}}\n");
        let e = replay_jsonl(text.as_bytes(), &TrustSettings::default()).unwrap_err();
        assert!(matches!(e, ReplayError::Parse { line: 2, .. }), "{e}");
        assert!(
            e.to_string().starts_with("line 2: not a traffic window"),
            "{e}"
        );
        let long = format!("{good}{good}{}\n", " ".repeat(MAX_LINE_BYTES + 1));
        let e = replay_jsonl(long.as_bytes(), &TrustSettings::default()).unwrap_err();
        assert!(matches!(e, ReplayError::LineTooLong { line: 3 }), "{e}");
        // A last line without its newline, too long: the same.
        let long = format!("{good}{}", "x".repeat(MAX_LINE_BYTES + 5));
        let e = replay_jsonl(long.as_bytes(), &TrustSettings::default()).unwrap_err();
        assert!(matches!(e, ReplayError::LineTooLong { line: 2 }), "{e}");
        let e = replay_jsonl(&b"\xff\xfe\n"[..], &TrustSettings::default()).unwrap_err();
        assert!(matches!(e, ReplayError::Parse { line: 1, .. }), "{e}");
        // A discovery sighting is not a recorded window: refused by its line, never judged as one.
        let sighting = vouch_types::Observation::Network(vouch_types::NetworkSighting {
            device: d,
            start: Timestamp::from_unix_micros(0),
            end: Timestamp::from_unix_micros(1),
            peers: Default::default(),
            peers_left_out: 0,
            client_of: Default::default(),
            server_of: Default::default(),
            risks: Default::default(),
        });
        let text = format!("{good}{}\n", serde_json::to_string(&sighting).unwrap());
        let e = replay_jsonl(text.as_bytes(), &TrustSettings::default()).unwrap_err();
        assert!(matches!(e, ReplayError::Parse { line: 2, .. }), "{e}");
    }

    #[test]
    fn the_half_life_setting_is_the_replays_too() {
        let d = DeviceId::derived("a");
        let ws: Vec<_> = (0..40)
            .map(|n| window(d, n, u32::from(n == 30) * 40))
            .collect();
        let with = |secs: u64| {
            let s = TrustSettings {
                half_life_secs: secs,
                ..TrustSettings::default()
            };
            replay(ws.clone(), &s).unwrap()[0].score.get()
        };
        // Nine windows after the burst: gone with a 10 s half-life, still felt with the default 600 s.
        assert_eq!(with(10), 100);
        assert!(with(600) < 50, "{}", with(600));
    }
}
