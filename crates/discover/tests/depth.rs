//! Every dissector fed the worst shapes for a recursive or looping decoder, 100,000 deep, on a 2 MiB stack
//! (the size of the tokio worker or blocking thread that reads uploads): BER nested with definite and
//! indefinite lengths (SNMP through `snmp-parser`, GOOSE), DNS names that are chains of compression pointers,
//! and an SNMP response whose value is the deep structure. Each returns; none overflows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vouch_discover::fuzzing::{DISSECTORS, capture, dissector};

/// A BER length.
fn len(n: usize) -> Vec<u8> {
    if n < 0x80 {
        return vec![n as u8];
    }
    let bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    let mut out = vec![0x80 | bytes.len() as u8];
    out.extend(bytes);
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(len(content.len()));
    out.extend_from_slice(content);
    out
}

/// `inner` wrapped `n` times in `tag`, definite lengths.
fn nest(tag: u8, n: usize, inner: &[u8]) -> Vec<u8> {
    let mut content = vec![0usize; n];
    let mut total = inner.len();
    for c in content.iter_mut().rev() {
        *c = total;
        total += 1 + len(total).len();
    }
    let mut out = Vec::with_capacity(total);
    for c in content {
        out.push(tag);
        out.extend(len(c));
    }
    out.extend_from_slice(inner);
    out
}

/// `inner` wrapped `n` times in `tag`, indefinite lengths.
fn nest_indefinite(tag: u8, n: usize, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend([tag, 0x80]);
    }
    out.extend_from_slice(inner);
    for _ in 0..n {
        out.extend([0, 0]);
    }
    out
}

/// An SNMPv2c GetResponse whose one value is `value`.
fn snmp_response(value: &[u8]) -> Vec<u8> {
    let oid = tlv(0x06, &[0x2b, 6, 1, 2, 1, 1, 1, 0]);
    let varbind = tlv(0x30, &[oid, value.to_vec()].concat());
    let pdu = tlv(
        0xA2,
        &[
            tlv(0x02, &[1]),
            tlv(0x02, &[0]),
            tlv(0x02, &[0]),
            tlv(0x30, &varbind),
        ]
        .concat(),
    );
    tlv(0x30, &[tlv(0x02, &[1]), tlv(0x04, b"public"), pdu].concat())
}

/// A DNS response whose answer's name is a chain of `n` compression pointers, each to the one before.
fn dns_pointer_chain(n: usize) -> Vec<u8> {
    let mut m = vec![0, 1, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    m.extend([1, b'a', 0]);
    let mut prev = 12u16;
    for _ in 0..n {
        let here = m.len() as u16;
        if here > 0x3fff {
            break;
        }
        m.extend((0xc000 | prev).to_be_bytes());
        prev = here;
    }
    // The answer: its name is the last pointer.
    m.extend((0xc000 | prev).to_be_bytes());
    m.extend([0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
    m
}

fn hostile(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let null = [0x05, 0x00];
    let deep = nest(0x30, n, &null);
    let deep_indefinite = nest_indefinite(0x30, n, &null);
    vec![
        ("sequence", deep.clone()),
        ("sequence, indefinite", deep_indefinite.clone()),
        ("context [1], indefinite", nest_indefinite(0xA1, n, &null)),
        ("GOOSE-like", nest(0x61, n, &null)),
        ("SNMP value", snmp_response(&deep)),
        ("SNMP value, indefinite", snmp_response(&deep_indefinite)),
        ("SNMP opaque", snmp_response(&tlv(0x44, &deep))),
        ("DNS pointer chain", dns_pointer_chain(n)),
        ("brackets", b"{[(".repeat(n)),
    ]
}

#[test]
fn every_dissector_survives_100000_deep_input_on_a_2_mib_stack() {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            for n in [1_000, 100_000] {
                for (_, data) in hostile(n) {
                    for name in DISSECTORS {
                        dissector(name, &data);
                    }
                    capture(&data);
                }
            }
        })
        .unwrap()
        .join()
        .expect("every dissector returns");
}
