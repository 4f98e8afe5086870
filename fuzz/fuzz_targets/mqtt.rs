//! The gateway's MQTT framing and parsing: any byte stream is packets or a typed error, never a panic, and a
//! framed packet is exactly as long as its header says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_mqtt::{Framer, Protocol, parse};

fuzz_target!(|data: &[u8]| {
    let framer = Framer::new(4096);
    for protocol in [Protocol::V311, Protocol::V5] {
        let mut rest = data;
        while let Ok(Some(raw)) = framer.next(rest) {
            assert!(raw.bytes.len() <= 4096 && raw.bytes.ends_with(raw.body));
            let _ = parse(&raw, protocol);
            rest = &rest[raw.bytes.len()..];
        }
    }
});
