//! IEC 61850 GOOSE (EtherType 0x88B8): a protection relay or bay controller multicasting its status; the
//! control block reference names the publishing IED and its logical device.

use crate::facts::{Fact, Proto, Sink, Subject};

use super::trimmed as text;

/// Reads one GOOSE frame (the Ethernet payload) and reports the publisher's control block reference.
pub fn dissect(payload: &[u8], out: &mut dyn Sink) {
    // APPID, length (counting these 8 header bytes), two reserved words, then the BER goosePdu [APPLICATION 1].
    let [_, _, l0, l1, _, _, _, _, pdu @ ..] = payload else {
        return;
    };
    if u16::from_be_bytes([*l0, *l1]) < 8 {
        return;
    }
    let Some((0x61, len, body)) = header(pdu) else {
        return;
    };
    out.fact(Subject::Src, Fact::Serves(Proto::Goose));
    // A truncated frame still holds the reference, which comes first.
    let mut rest = body.get(..len).unwrap_or(body);
    while let Some((tag, len, tail)) = header(rest) {
        let Some((value, next)) = tail.split_at_checked(len) else {
            return;
        };
        if tag == 0x80 {
            if let Some(gocb_ref) = text(value) {
                out.fact(Subject::Src, Fact::Iec61850Ref(gocb_ref));
            }
            return;
        }
        rest = next;
    }
}

/// A BER tag and definite length (short form, or long form of one or two bytes) and what follows them.
fn header(bytes: &[u8]) -> Option<(u8, usize, &[u8])> {
    match bytes {
        [tag, len @ 0..=0x7f, rest @ ..] => Some((*tag, usize::from(*len), rest)),
        [tag, 0x81, len, rest @ ..] => Some((*tag, usize::from(*len), rest)),
        [tag, 0x82, hi, lo, rest @ ..] => {
            Some((*tag, usize::from(u16::from_be_bytes([*hi, *lo])), rest))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::l2_frames;

    fn run(payload: &[u8]) -> Collect {
        let mut c = Collect::default();
        dissect(payload, &mut c);
        c
    }

    fn goose_frames() -> Vec<Vec<u8>> {
        l2_frames("iti_mms_goose.pcap")
            .into_iter()
            .filter(|(t, _)| *t == 0x88b8)
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn control_block_references() {
        // tshark -Y goose -T fields -e goose.gocbRef: 34 frames, 32 with AA1C1Q01A1LD0/LLN0$GO$gcb_A (from
        // 00:00:23:06:30:fe) and one each with AA1C1Q05A1LD0/LLN0$GO$gcb_A and AA1C1Q07A1LD0/LLN0$GO$gcb_A.
        let frames = goose_frames();
        assert_eq!(frames.len(), 34);
        let mut counts = [0; 3];
        for f in &frames {
            let c = run(f);
            assert!(c.0.iter().all(|(who, _)| *who == Subject::Src));
            assert!(c.has("Serves(Goose)"));
            assert_eq!(c.0.len(), 2, "{:?}", c.0);
            for (i, q) in ["Q01", "Q05", "Q07"].iter().enumerate() {
                if c.has(&format!(r#"Iec61850Ref("AA1C1{q}A1LD0/LLN0$GO$gcb_A")"#)) {
                    counts[i] += 1;
                }
            }
        }
        assert_eq!(counts, [32, 1, 1]);
    }

    #[test]
    fn not_goose() {
        for (t, p) in l2_frames("z_lldp.pcap")
            .iter()
            .chain(&l2_frames("iti_pn_rt.pcap"))
        {
            assert_ne!(*t, 0x88b8);
            assert!(run(p).0.is_empty());
        }
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        for f in goose_frames() {
            for n in 0..=f.len() {
                let c = run(&f[..n]);
                // The reference is reported only whole.
                assert!(!c.has("Iec61850Ref") || c.has("$GO$gcb_A\")"));
            }
        }
        let head = [0x30, 0x01, 0x00, 0x20, 0, 0, 0, 0];
        for pdu in [
            &[0x61, 0x82, 0xff, 0xff, 0x80, 0x05, b'a'][..],
            &[0x61, 0x83, 0x01, 0x00, 0x00, 0x80, 0x01, b'a'],
            &[0x61, 0x00, 0x80, 0x01, b'a'],
            &[0x61, 0x10, 0x81, 0x82, 0xff, 0xff, 0x80, 0x01, b'a'],
            &[0x61, 0x06, 0x80, 0x00, 0x81, 0x02, 0x3a, 0x98],
            &[0x61, 0x04, 0x80, 0x02, 0xff, 0xfe],
            &[0x61, 0x81],
            &[0x61, 0x61, 0x61, 0x61, 0x61, 0x61],
        ] {
            let mut frame = head.to_vec();
            frame.extend_from_slice(pdu);
            let c = run(&frame);
            assert!(!c.has("Iec61850Ref"), "{pdu:02x?}: {:?}", c.0);
        }
        // A length below the header's own size is not GOOSE.
        assert!(
            run(&[
                0x30, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0x61, 0x03, 0x80, 0x01, b'a'
            ])
            .0
            .is_empty()
        );
    }
}
