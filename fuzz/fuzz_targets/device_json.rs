//! The JSON forms of the device record and of a patch: anything is a value or an error; a record that parses
//! serialises to JSON that parses back to the same record, and a patch applied twice changes nothing more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_types::{Device, DevicePatch, Timestamp};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = serde_json::from_slice::<Device>(data) {
        let again: Device = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(again, d);
        if let Ok(p) = serde_json::from_slice::<DevicePatch>(data) {
            if let Ok(Some(once)) = d.patched(&p, Timestamp::EPOCH) {
                assert_eq!(once.patched(&p, Timestamp::EPOCH).ok(), Some(None));
            }
        }
    }
    let _ = serde_json::from_slice::<DevicePatch>(data);
});
