//! PKCS#7 / CMS "certs-only" (a degenerate SignedData with no content and no signers, RFC 5652 §5 and
//! RFC 7030 §4.1.3): how EST hands out certificates. Encoded with yasna: five fixed fields.

use yasna::Tag;
use yasna::models::ObjectIdentifier;

const ID_SIGNED_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 2];
const ID_DATA: &[u64] = &[1, 2, 840, 113549, 1, 7, 1];

/// The DER of a certs-only SignedData holding `certs` (each a DER certificate).
pub fn certs_only(certs: &[&[u8]]) -> Vec<u8> {
    yasna::construct_der(|w| {
        w.write_sequence(|w| {
            w.next()
                .write_oid(&ObjectIdentifier::from_slice(ID_SIGNED_DATA));
            w.next().write_tagged(Tag::context(0), |w| {
                w.write_sequence(|w| {
                    w.next().write_u8(1);
                    w.next().write_set(|_| {});
                    w.next().write_sequence(|w| {
                        w.next().write_oid(&ObjectIdentifier::from_slice(ID_DATA))
                    });
                    w.next().write_tagged_implicit(Tag::context(0), |w| {
                        w.write_set(|w| {
                            for c in certs {
                                w.next().write_der(c);
                            }
                        })
                    });
                    w.next().write_set(|_| {});
                })
            });
        })
    })
}

/// Base64 with 64-character lines, as EST sends bodies (`Content-Transfer-Encoding: base64`).
pub fn base64_lines(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 1);
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push_str("\r\n");
    }
    out
}
