//! The opcua dissector (and its detection) on any bytes, both directions: no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vouch_discover::fuzzing::dissector("opcua", data));
