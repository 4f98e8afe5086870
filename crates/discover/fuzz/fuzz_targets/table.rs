//! Every row of the protocol table (first byte picks the row) on any bytes, both directions: no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vouch_discover::fuzzing::table(data));
