//! Every text parser at Vouch's edge: any input is a value or an error, and a value prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_types::*;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(v) = s.parse::<MacAddr>() {
        assert_eq!(v.to_string().parse::<MacAddr>().ok(), Some(v));
    }
    if let Ok(v) = s.parse::<CertFingerprint>() {
        assert_eq!(v.to_string().parse::<CertFingerprint>().ok(), Some(v));
    }
    if let Ok(v) = s.parse::<DeviceId>() {
        assert_eq!(v.to_string().parse::<DeviceId>().ok(), Some(v));
    }
    if let Ok(v) = s.parse::<TokenId>() {
        assert_eq!(v.to_string(), s);
    }
    if let Ok(v) = s.parse::<Zone>() {
        assert_eq!(v.as_str(), s);
    }
    if let Ok(v) = s.parse::<Timestamp>() {
        assert_eq!(v.to_string().parse::<Timestamp>().ok(), Some(v));
    }
    if let Ok(v) = s.parse::<Actor>() {
        assert_eq!(v.to_string(), s);
    }
    let _ = s.parse::<HardwareSerial>();
    let _ = s.parse::<Vendor>();
    let _ = s.parse::<Labels>();
    let _ = s.parse::<Groups>();
    let _ = s.parse::<DeviceClass>();
    let _ = s.parse::<DeviceState>();
    let _ = s.parse::<Role>();
    let _ = s.parse::<vouch_events::Action>();
});
