//! The gateway's MQTT framing, parsing and rewriting: any byte stream is packets or a typed error, never a
//! panic; a framed packet is exactly as long as its header says; a SUBSCRIBE narrowed to some of its filters
//! parses again with exactly those, and a SUBACK is widened to every filter or refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_mqtt::{
    Framer, Packet, PacketKind, Protocol, packet_id, parse, subscribe_subset, widen_suback,
};

fuzz_target!(|data: &[u8]| {
    let framer = Framer::new(4096);
    // The first byte chooses which filters a narrowing keeps.
    let (mask, data) = data.split_first().map_or((0, data), |(m, r)| (*m, r));
    for protocol in [Protocol::V311, Protocol::V5] {
        let mut rest = data;
        while let Ok(Some(raw)) = framer.next(rest) {
            assert!(raw.bytes.len() <= 4096 && raw.bytes.ends_with(raw.body));
            match parse(&raw, protocol) {
                Ok(Packet::Subscribe(s)) => {
                    let keep: Vec<bool> = (0..s.filters.len())
                        .map(|i| mask >> (i % 8) & 1 == 1)
                        .collect();
                    let narrowed = subscribe_subset(&raw, protocol, &keep)
                        .expect("a parsed SUBSCRIBE narrows");
                    if keep.iter().any(|k| *k) {
                        let again = Framer::new(8192)
                            .next(&narrowed)
                            .expect("frames")
                            .expect("whole");
                        match parse(&again, protocol) {
                            Ok(Packet::Subscribe(n)) => {
                                let kept: Vec<_> = s
                                    .filters
                                    .iter()
                                    .zip(&keep)
                                    .filter(|(_, k)| **k)
                                    .map(|(f, _)| *f)
                                    .collect();
                                assert_eq!(n.filters, kept);
                                assert_eq!(n.packet_id, s.packet_id);
                            }
                            other => panic!("a narrowed SUBSCRIBE does not parse: {other:?}"),
                        }
                    }
                }
                Ok(Packet::Other(PacketKind::Suback)) => {
                    let refused: Vec<bool> = (0..8).map(|i| mask >> i & 1 == 1).collect();
                    let _ = widen_suback(&raw, protocol, &refused);
                    let _ = packet_id(&raw);
                }
                _ => {}
            }
            rest = &rest[raw.bytes.len()..];
        }
    }
});
