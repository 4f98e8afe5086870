//! Property tests for the parsers at Vouch's edge: any input gives a value or a clear error, never a panic,
//! and every value prints in a form that parses back to itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use vouch_types::{
    Actor, CertFingerprint, DeviceClass, DeviceId, DevicePatch, DeviceState, Groups,
    HardwareSerial, Labels, MacAddr, Timestamp, TokenId, Vendor, Zone,
};

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
        let _ = s.parse::<MacAddr>();
        let _ = s.parse::<CertFingerprint>();
        let _ = s.parse::<DeviceId>();
        let _ = s.parse::<TokenId>();
        let _ = s.parse::<HardwareSerial>();
        let _ = s.parse::<Vendor>();
        let _ = s.parse::<Zone>();
        let _ = s.parse::<Labels>();
        let _ = s.parse::<Groups>();
        let _ = s.parse::<DeviceClass>();
        let _ = s.parse::<DeviceState>();
        let _ = s.parse::<Actor>();
        let _ = s.parse::<Timestamp>();
    }

    #[test]
    fn arbitrary_json_patch_never_panics(s in "\\PC{0,200}") {
        let _ = serde_json::from_str::<DevicePatch>(&s);
    }

    #[test]
    fn mac_round_trips(o in any::<[u8; 6]>()) {
        let m = MacAddr::from_octets(o);
        prop_assert_eq!(m.to_string().parse::<MacAddr>().unwrap(), m);
    }

    #[test]
    fn fingerprint_round_trips(b in any::<[u8; 32]>()) {
        let f = CertFingerprint::from_bytes(b);
        prop_assert_eq!(f.to_string().parse::<CertFingerprint>().unwrap(), f);
    }

    #[test]
    fn timestamps_round_trip(us in -62_135_596_800_000_000i64..253_402_300_799_000_000i64) {
        let t = Timestamp::from_unix_micros(us);
        prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
    }

    #[test]
    fn zones_that_parse_print_the_same(s in "[a-z0-9./_-]{1,40}") {
        if let Ok(z) = s.parse::<Zone>() {
            prop_assert_eq!(z.as_str(), s.as_str());
            prop_assert!(!s.contains("//") && !s.starts_with('/') && !s.ends_with('/'));
        }
    }

    #[test]
    fn lifecycle_never_leaves_retired(path in proptest::collection::vec(0usize..6, 0..20)) {
        let mut s = DeviceState::Discovered;
        for i in path {
            let to = DeviceState::ALL[i];
            if s.check_transition(to).is_ok() {
                prop_assert!(s != DeviceState::Retired);
                s = to;
            }
        }
    }
}
