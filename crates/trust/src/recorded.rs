//! A recorded window: one line of the JSON Lines files `vouch trust replay` reads (and `vouch sim
//! --windows-out` writes). It is a [`TrafficWindow`] as the gateway ships it, with the device's class beside
//! its fields when the recorder knows it (a file from elsewhere may leave it out: the device is then judged
//! as of an unknown class).

use serde::{Deserialize, Serialize};
use vouch_types::{DeviceClass, TrafficWindow};

/// One recorded window with the class of its device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedWindow {
    /// The window, its fields at the top level of the line.
    #[serde(flatten)]
    pub window: TrafficWindow,
    /// The device's class, when known (selects the class model).
    #[serde(default)]
    pub class: DeviceClass,
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_types::{DeviceId, Timestamp};

    #[test]
    fn a_line_is_a_traffic_window_with_an_optional_class() {
        let w = TrafficWindow {
            device: DeviceId::derived("d"),
            start: Timestamp::from_unix_micros(0),
            end: Timestamp::from_unix_micros(10_000_000),
            connects: 1,
            disconnects: 0,
            sessions: 1,
            auth_failures: 0,
            msgs_in: 3,
            msgs_out: 0,
            bytes_in: 300,
            bytes_out: 0,
            distinct_topics: 1,
            new_topics: 1,
            remotes: vec!["127.0.0.1".parse().unwrap()],
        };
        let r = RecordedWindow {
            window: w.clone(),
            class: DeviceClass::Camera,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(line.contains("\"class\":\"camera\""), "{line}");
        let back: RecordedWindow = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        // A bare window, as the gateway ships it, is a line too.
        let bare = serde_json::to_string(&w).unwrap();
        let back: RecordedWindow = serde_json::from_str(&bare).unwrap();
        assert_eq!((back.window, back.class), (w, DeviceClass::Unknown));
    }
}
