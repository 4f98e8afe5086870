//! Every ASN.1 reader Vouch exposes, fed structures nested 100,000 deep (definite and indefinite lengths,
//! SEQUENCE, SET, explicit tags), alone and inside otherwise well-formed requests: each is refused with an
//! error, none overflows the stack (the tests run on a 2 MiB thread, a tokio worker's size).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vouch_pki::{
    CheckedCsr, Passphrase, decrypt_key_pem, idevid_serial, new_request, ocsp, pem_encode,
    read_certificate, summarize_pem,
};
use vouch_types::Timestamp;

/// A DER length.
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

/// `inner` wrapped `n` times in `tag` with definite lengths (built outside in, in linear time).
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

/// `inner` wrapped `n` times in `tag` with indefinite lengths (BER; DER forbids them).
fn nest_indefinite(tag: u8, n: usize, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 * n + inner.len());
    for _ in 0..n {
        out.extend([tag, 0x80]);
    }
    out.extend_from_slice(inner);
    for _ in 0..n {
        out.extend([0, 0]);
    }
    out
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(len(content.len()));
    out.extend_from_slice(content);
    out
}

/// The hostile shapes, `n` deep.
fn shapes(n: usize) -> Vec<(&'static str, Vec<u8>)> {
    let null = [0x05, 0x00];
    vec![
        ("sequence", nest(0x30, n, &null)),
        ("set", nest(0x31, n, &null)),
        ("explicit [0]", nest(0xA0, n, &null)),
        ("sequence, indefinite", nest_indefinite(0x30, n, &null)),
        ("explicit [1], indefinite", nest_indefinite(0xA1, n, &null)),
    ]
}

/// Runs `f` on a 2 MiB stack, as a tokio worker would.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .expect("no panic");
}

/// A well-formed CSR with `deep` as the value of one more attribute (an unknown one) and of an extension
/// request's subjectAltName: parsers that read attributes and extensions meet the depth.
fn csr_carrying(deep: &[u8]) -> Vec<u8> {
    let real = new_request("depth").unwrap();
    // Take the real request apart: SEQUENCE { info, algorithm, signature }.
    let (info, rest) = split_tlv(&real[header_len(&real)..]);
    let info_content = &info[header_len(info)..];
    // info: SEQUENCE { version, subject, spki, [0] attributes }.
    let (version, rest_info) = split_tlv(info_content);
    let (subject, rest_info) = split_tlv(rest_info);
    let (spki, _) = split_tlv(rest_info);
    // id-ExtensionRequest { SET { Extensions { Extension { subjectAltName, OCTET STRING { deep } } } } }.
    let san = tlv(
        0x30,
        &[tlv(0x06, &[0x55, 0x1D, 0x11]), tlv(0x04, deep)].concat(),
    );
    let ext_req = tlv(
        0x30,
        &[
            tlv(
                0x06,
                &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x0E],
            ),
            tlv(0x31, &tlv(0x30, &san)),
        ]
        .concat(),
    );
    // An unknown attribute whose value is the deep structure itself.
    let unknown = tlv(
        0x30,
        &[tlv(0x06, &[0x2A, 0x03, 0x04]), tlv(0x31, deep)].concat(),
    );
    let attributes = tlv(0xA0, &[ext_req, unknown].concat());
    let info = tlv(0x30, &[version, subject, spki, &attributes].concat());
    tlv(0x30, &[&info[..], rest].concat())
}

fn header_len(der: &[u8]) -> usize {
    if der[1] & 0x80 == 0 {
        2
    } else {
        2 + (der[1] & 0x7F) as usize
    }
}

/// The first TLV of `der`, and what follows it.
fn split_tlv(der: &[u8]) -> (&[u8], &[u8]) {
    let h = header_len(der);
    let n = if der[1] & 0x80 == 0 {
        der[1] as usize
    } else {
        der[2..h].iter().fold(0usize, |a, &b| (a << 8) | b as usize)
    };
    der.split_at(h + n)
}

#[test]
fn certificate_requests_nested_100000_deep_are_refused() {
    on_small_stack(|| {
        for n in [1_000, 100_000] {
            for (name, deep) in shapes(n) {
                assert!(CheckedCsr::from_der(&deep).is_err(), "{name} {n}");
                assert!(
                    CheckedCsr::from_der(&csr_carrying(&deep)).is_err(),
                    "{name} {n} in a request"
                );
            }
        }
    });
}

#[test]
fn certificates_nested_100000_deep_are_refused_on_import_and_as_idevids() {
    on_small_stack(|| {
        let now = Timestamp::from_unix_micros(1_790_000_000_000_000);
        for n in [1_000, 100_000] {
            for (name, deep) in shapes(n) {
                // Alone, and as the serial number (which x509-parser reads as BER `Any`, skipping the
                // content of an indefinite length recursively, to a depth of 50).
                let cert = tlv(
                    0x30,
                    &tlv(0x30, &[tlv(0xA0, &tlv(0x02, &[2])), deep.clone()].concat()),
                );
                for der in [&deep, &cert] {
                    let pem = pem_encode("CERTIFICATE", der);
                    assert!(read_certificate(&pem).is_err(), "{name} {n}");
                    assert!(summarize_pem(&pem).is_err(), "{name} {n}");
                    assert!(
                        idevid_serial(der, std::slice::from_ref(der), now).is_err(),
                        "{name} {n}"
                    );
                }
            }
        }
    });
}

#[test]
fn encrypted_keys_nested_100000_deep_are_refused() {
    on_small_stack(|| {
        let pass = Passphrase::new("a long enough passphrase".into()).unwrap();
        for n in [1_000, 100_000] {
            for (name, deep) in shapes(n) {
                for label in ["ENCRYPTED PRIVATE KEY", "PRIVATE KEY"] {
                    let pem = pem_encode(label, &deep);
                    assert!(decrypt_key_pem(&pem, &pass).is_err(), "{name} {n} {label}");
                }
            }
        }
    });
}

#[test]
fn ocsp_requests_nested_deep_are_refused() {
    on_small_stack(|| {
        // Past the request size limit (16 KiB): refused unread. Within it (about 8,000 levels), inside each
        // place the reader takes a structure whole (requestorName, request extensions, the signature).
        for n in [1_000, 5_000, 100_000] {
            for (name, deep) in shapes(n) {
                assert!(ocsp::parse_request(&deep).is_err(), "{name} {n}");
                let cert_id = tlv(
                    0x30,
                    &[
                        tlv(
                            0x30,
                            &[tlv(0x06, &[0x2B, 0x0E, 0x03, 0x02, 0x1A]), vec![5, 0]].concat(),
                        ),
                        tlv(0x04, &[0; 20]),
                        tlv(0x04, &[0; 20]),
                        tlv(0x02, &[1]),
                    ]
                    .concat(),
                );
                let request = tlv(0x30, &cert_id);
                let tbs = tlv(
                    0x30,
                    &[
                        tlv(0xA1, &deep),
                        tlv(0x30, &request),
                        tlv(0xA2, &tlv(0x30, &deep)),
                    ]
                    .concat(),
                );
                let whole = tlv(0x30, &[tbs, tlv(0xA0, &deep)].concat());
                assert!(ocsp::parse_request(&whole).is_err(), "{name} {n} inside");
            }
        }
    });
}
