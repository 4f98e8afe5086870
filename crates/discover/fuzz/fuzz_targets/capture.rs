//! Any bytes as a capture file: read, decoded, dissected and reported without a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vouch_discover::fuzzing::capture(data));
