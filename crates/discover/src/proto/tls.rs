//! TLS ClientHello: the server name asked for (SNI) and the client's JA3 and JA4 fingerprints. Record and
//! handshake parsing is `tls-parser`'s; the fingerprints are computed here (no maintained crate computes them
//! from parsed hellos).

use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::fmt::Write as _;
use tls_parser::nom;
use tls_parser::{
    TlsExtension, TlsMessage, TlsMessageHandshake, parse_tls_extensions, parse_tls_plaintext,
};

use crate::facts::{Dir, Fact, Proto, Sink};

/// Whether `payload` starts like a TLS handshake record (content type 22, version 3.x).
pub fn looks_like(payload: &[u8]) -> bool {
    matches!(payload, [0x16, 0x03, 0..=4, _, _, ..])
}

/// GREASE values (RFC 8701) are random and left out of fingerprints.
fn grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// Reads the start of one direction of a TLS stream; `true` once there is nothing more to learn from it.
pub fn dissect(stream: &[u8], dir: Dir, out: &mut dyn Sink) -> bool {
    if dir == Dir::ToClient {
        return server(stream, out);
    }
    let record = match parse_tls_plaintext(stream) {
        Ok((_, r)) => r,
        Err(nom::Err::Incomplete(_)) => return false,
        Err(_) => return true,
    };
    out.fact(dir.server(), Fact::Serves(Proto::Tls));
    out.fact(dir.client(), Fact::Uses(Proto::Tls));
    for msg in &record.msg {
        if let TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) = msg {
            let exts = ch
                .ext
                .and_then(|e| parse_tls_extensions(e).ok())
                .map(|(_, v)| v)
                .unwrap_or_default();
            let fp = Fingerprint::of(ch.version.0, ch.ciphers.iter().map(|c| c.0), &exts);
            if let Some(sni) = fp.sni {
                out.fact(dir.client(), Fact::Sni(sni));
            }
            out.fact(dir.client(), Fact::Ja3(&fp.ja3()));
            out.fact(dir.client(), Fact::Ja4(&fp.ja4()));
        }
    }
    true
}

/// Reads the server's first records (ServerHello, Certificate, …) for its certificate; `true` when done.
fn server(stream: &[u8], out: &mut dyn Sink) -> bool {
    let mut rest = stream;
    // A handful of records at most come before the certificate (ServerHello, perhaps split).
    for _ in 0..8 {
        let (next, record) = match parse_tls_plaintext(rest) {
            Ok(r) => r,
            Err(nom::Err::Incomplete(_)) => return false,
            Err(_) => return true,
        };
        for msg in &record.msg {
            match msg {
                TlsMessage::Handshake(TlsMessageHandshake::ServerHello(_)) => {
                    out.fact(Dir::ToClient.server(), Fact::Serves(Proto::Tls));
                }
                TlsMessage::Handshake(TlsMessageHandshake::Certificate(c)) => {
                    if let Some(leaf) = c.cert_chain.first() {
                        out.fact(Dir::ToClient.server(), Fact::ServerCertificate(leaf.data));
                    }
                    return true;
                }
                // TLS 1.3 encrypts the certificate; anything else ends what can be read in the clear.
                TlsMessage::ChangeCipherSpec
                | TlsMessage::Alert(_)
                | TlsMessage::ApplicationData(_) => {
                    return true;
                }
                _ => {}
            }
        }
        if next.is_empty() {
            return false;
        }
        rest = next;
    }
    true
}

/// What the fingerprints are computed from, GREASE removed.
struct Fingerprint<'a> {
    version: u16,
    ciphers: Vec<u16>,
    extensions: Vec<u16>,
    groups: Vec<u16>,
    point_formats: Vec<u8>,
    sig_algs: Vec<u16>,
    supported_versions: Vec<u16>,
    alpn: Option<&'a [u8]>,
    sni: Option<&'a str>,
}

impl<'a> Fingerprint<'a> {
    fn of(version: u16, ciphers: impl Iterator<Item = u16>, exts: &[TlsExtension<'a>]) -> Self {
        let mut f = Fingerprint {
            version,
            ciphers: ciphers.filter(|c| !grease(*c)).collect(),
            extensions: Vec::new(),
            groups: Vec::new(),
            point_formats: Vec::new(),
            sig_algs: Vec::new(),
            supported_versions: Vec::new(),
            alpn: None,
            sni: None,
        };
        for e in exts {
            let id = u16::from(tls_parser::TlsExtensionType::from(e));
            if grease(id) {
                continue;
            }
            f.extensions.push(id);
            match e {
                TlsExtension::SNI(names) => {
                    f.sni = names
                        .iter()
                        .find(|(t, _)| t.0 == 0)
                        .and_then(|(_, n)| std::str::from_utf8(n).ok());
                }
                TlsExtension::EllipticCurves(g) => {
                    f.groups = g.iter().map(|g| g.0).filter(|g| !grease(*g)).collect()
                }
                TlsExtension::EcPointFormats(p) => f.point_formats = p.to_vec(),
                TlsExtension::SignatureAlgorithms(s) => f.sig_algs = s.clone(),
                TlsExtension::SupportedVersions(v) => {
                    f.supported_versions = v.iter().map(|v| v.0).filter(|v| !grease(*v)).collect()
                }
                TlsExtension::ALPN(protocols) => f.alpn = protocols.first().copied(),
                _ => {}
            }
        }
        f
    }

    /// JA3: MD5 of "version,ciphers,extensions,groups,point formats" in decimal.
    fn ja3(&self) -> String {
        fn list<T: std::fmt::Display>(s: &mut String, v: &[T]) {
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    s.push('-');
                }
                let _ = write!(s, "{x}");
            }
        }
        let mut s = format!("{},", self.version);
        list(&mut s, &self.ciphers);
        s.push(',');
        list(&mut s, &self.extensions);
        s.push(',');
        list(&mut s, &self.groups);
        s.push(',');
        list(&mut s, &self.point_formats);
        hex::encode(Md5::digest(s.as_bytes()))
    }

    /// JA4 (FoxIO): "t13d1516h2_<ciphers hash>_<extensions and signature algorithms hash>".
    fn ja4(&self) -> String {
        let v = self
            .supported_versions
            .iter()
            .copied()
            .max()
            .unwrap_or(self.version);
        let version = match v {
            0x0304 => "13",
            0x0303 => "12",
            0x0302 => "11",
            0x0301 => "10",
            0x0300 => "s3",
            _ => "00",
        };
        let alpn = match self.alpn {
            Some([first, .., last])
                if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() =>
            {
                format!("{}{}", *first as char, *last as char)
            }
            Some([only]) if only.is_ascii_alphanumeric() => format!("{0}{0}", *only as char),
            Some([first, .., last]) => format!(
                "{}{}",
                hex::encode([*first]).remove(0),
                hex::encode([*last]).pop().unwrap_or('0')
            ),
            _ => "00".to_owned(),
        };
        let a = format!(
            "t{version}{}{:02}{:02}{alpn}",
            if self.sni.is_some() { 'd' } else { 'i' },
            self.ciphers.len().min(99),
            self.extensions.len().min(99),
        );
        let hex4 = |v: &[u16]| {
            v.iter()
                .map(|x| format!("{x:04x}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut ciphers = self.ciphers.clone();
        ciphers.sort_unstable();
        let b = truncated_sha256(&hex4(&ciphers));
        let mut exts: Vec<u16> = self
            .extensions
            .iter()
            .copied()
            .filter(|e| *e != 0 && *e != 16)
            .collect();
        exts.sort_unstable();
        let mut c_in = hex4(&exts);
        if !self.sig_algs.is_empty() {
            c_in.push('_');
            c_in.push_str(&hex4(&self.sig_algs));
        }
        let c = truncated_sha256(&c_in);
        format!("{a}_{b}_{c}")
    }
}

/// The first 12 hex digits of a SHA-256, or twelve zeros for an empty list (as JA4 specifies).
fn truncated_sha256(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".to_owned();
    }
    let mut h = hex::encode(Sha256::digest(s.as_bytes()));
    h.truncate(12);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    #[test]
    fn chrome_hello_fingerprints_as_tshark_shows() {
        // tshark: tls.handshake.ja3 a607f3a5c94c2ee592af1456f36c8367, SNI google.de.
        let segs = segments("z_tls_chrome.pcap");
        let mut stream = Vec::new();
        for s in segs.iter().filter(|s| s.dport == 443) {
            stream.extend_from_slice(&s.payload);
            let mut c = Collect::default();
            if dissect(&stream, Dir::ToServer, &mut c) {
                assert!(c.has(r#"Ja3("a607f3a5c94c2ee592af1456f36c8367")"#), "{c:?}");
                assert!(c.has(r#"Sni("google.de")"#), "{c:?}");
                // JA4 from the same hello, recomputed from the lists tshark shows (tshark 4.0 has no JA4 field):
                // TLS 1.2, SNI, 20 ciphers, 11 extensions, ALPN "spdy/3".
                assert!(
                    c.has(r#"Ja4("t12d2011s3_8dd61975155f_06a4338d0495")"#),
                    "{c:?}"
                );
                return;
            }
        }
        panic!("no ClientHello");
    }

    #[test]
    fn server_certificate_as_tshark_shows() {
        // tshark: the server 74.125.239.152 sends a Certificate; its leaf is for *.google.de (x509ce.dNSName).
        let mut stream = Vec::new();
        for s in segments("z_tls_chrome.pcap")
            .iter()
            .filter(|s| s.sport == 443)
        {
            stream.extend_from_slice(&s.payload);
            let mut c = Collect::default();
            if dissect(&stream, Dir::ToClient, &mut c) {
                assert!(c.has("ServerCertificate"), "{c:?}");
                return;
            }
        }
        panic!("no Certificate");
    }

    #[test]
    fn grease_is_recognised() {
        assert!(grease(0x0a0a) && grease(0xfafa) && !grease(0x0a0b) && !grease(0x1301));
    }

    #[test]
    fn truncations_are_harmless() {
        let mut stream = Vec::new();
        for s in segments("z_tls_chrome.pcap")
            .iter()
            .filter(|s| s.dport == 443)
            .take(3)
        {
            stream.extend_from_slice(&s.payload);
        }
        let mut c = Collect::default();
        for cut in 0..stream.len() {
            dissect(&stream[..cut], Dir::ToServer, &mut c);
        }
    }
}
