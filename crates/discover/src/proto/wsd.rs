//! WS-Discovery (SOAP over UDP, udp/3702; WS-Discovery 2005/04 as ONVIF and Windows use it, and OASIS 1.1):
//! a client multicasts a Probe for device types; devices answer with ProbeMatches, and announce themselves
//! with Hello and Bye. A device's answer names its types (ONVIF `dn:NetworkVideoTransmitter` is a camera,
//! `wprt:PrintDeviceType` a printer), its scopes (ONVIF name, hardware, location), its transport addresses
//! (`XAddrs`) and its endpoint reference (a `urn:uuid:` that outlives its addresses).
//!
//! The envelope is read by a small scanner for the few elements discovery needs, by local name whatever the
//! namespace prefix: no XML tree is built and nothing is allocated.

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

/// The discovery namespaces (2005/04 and OASIS 1.1); one of them is in every WS-Discovery envelope.
const NAMESPACES: [&[u8]; 2] = [
    b"schemas.xmlsoap.org/ws/2005/04/discovery",
    b"docs.oasis-open.org/ws-dd/ns/discovery/2009/01",
];

/// Whether a datagram is a WS-Discovery envelope: XML naming a discovery namespace.
pub fn looks_like(payload: &[u8]) -> bool {
    let body = payload
        .strip_prefix(b"\xef\xbb\xbf")
        .unwrap_or(payload)
        .trim_ascii_start();
    body.starts_with(b"<")
        && NAMESPACES
            .iter()
            .any(|ns| body.windows(ns.len()).any(|w| w == *ns))
}

/// What a message is, from its `Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Probe or Resolve: a client looking for devices.
    Search,
    /// ProbeMatches or ResolveMatches: a device answering a client.
    Answer,
    /// Hello or Bye: a device announcing itself to the group.
    Announce,
}

fn kind(payload: &[u8]) -> Option<Kind> {
    let action = element(payload, b"Action").next()?;
    let last = action.rsplit('/').next()?;
    match last {
        "Probe" | "Resolve" => Some(Kind::Search),
        "ProbeMatches" | "ResolveMatches" => Some(Kind::Answer),
        "Hello" | "Bye" => Some(Kind::Announce),
        _ => None,
    }
}

/// Which way a message goes: a Probe or Resolve asks (to the server); matches and announcements come from the
/// device.
pub fn direction(payload: &[u8]) -> Option<Dir> {
    match kind(payload)? {
        Kind::Search => Some(Dir::ToServer),
        Kind::Answer | Kind::Announce => Some(Dir::ToClient),
    }
}

/// Reads one WS-Discovery message. Its own `Action` says which side is the device, whatever the ports.
pub fn dissect(payload: &[u8], _dir: Dir, out: &mut dyn Sink) {
    let Some(kind) = kind(payload) else {
        return;
    };
    match kind {
        // The types a Probe names are what the client looks for, not what it is.
        Kind::Search => {
            out.fact(Subject::Src, Fact::Uses(Proto::WsDiscovery));
            return;
        }
        Kind::Answer => {
            out.fact(Subject::Src, Fact::Serves(Proto::WsDiscovery));
            out.fact(Subject::Dst, Fact::Uses(Proto::WsDiscovery));
        }
        Kind::Announce => out.fact(Subject::Src, Fact::Serves(Proto::WsDiscovery)),
    }
    let me = Subject::Src;
    for types in element(payload, b"Types") {
        for t in types.split_ascii_whitespace() {
            out.fact(me, Fact::Service(Source::WsDiscovery, t));
        }
    }
    for scopes in element(payload, b"Scopes") {
        for s in scopes.split_ascii_whitespace() {
            scope(s, out);
        }
    }
    for xaddrs in element(payload, b"XAddrs") {
        for x in xaddrs.split_ascii_whitespace() {
            out.fact(me, Fact::Url(Source::WsDiscovery, x));
        }
    }
    // The endpoint reference's address; a Bye carries it too.
    for a in element(payload, b"Address") {
        let id = a.strip_prefix("urn:uuid:").unwrap_or(a);
        if !id.is_empty() {
            out.fact(me, Fact::DeviceId(Source::WsDiscovery, id));
        }
    }
}

/// Reads one scope URI: ONVIF's `onvif://www.onvif.org/<kind>/<value>` (percent-encoded).
fn scope(s: &str, out: &mut dyn Sink) {
    let Some(rest) = s.strip_prefix("onvif://www.onvif.org/") else {
        return;
    };
    let Some((kind, value)) = rest.split_once('/') else {
        return;
    };
    let mut buf = [0u8; 256];
    let Some(v) = percent_decode(value, &mut buf) else {
        return;
    };
    let src = Source::WsDiscovery;
    let me = Subject::Src;
    match kind {
        "name" => out.fact(me, Fact::Hostname(src, v)),
        "hardware" => out.fact(me, Fact::Model(src, v)),
        // Not in the ONVIF core specification, but many makers add it.
        "manufacturer" | "mfr" => out.fact(me, Fact::Vendor(src, v)),
        // Location is a path ("country/sweden", "city/lund"); each scope is one level of it.
        "location" => out.fact(me, Fact::Description(src, v)),
        "type" => out.fact(me, Fact::Platform(src, v)),
        _ => {}
    }
}

/// Decodes `%XX` escapes into `buf`; `None` for an empty or invalid value, or one longer than `buf`.
fn percent_decode<'b>(s: &str, buf: &'b mut [u8]) -> Option<&'b str> {
    let bytes = s.as_bytes();
    let (mut i, mut n) = (0, 0);
    while let Some(&b) = bytes.get(i) {
        let (byte, step) = if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            (u8::from_str_radix(hex, 16).ok()?, 3)
        } else {
            (b, 1)
        };
        *buf.get_mut(n)? = byte;
        n += 1;
        i += step;
    }
    let v = std::str::from_utf8(buf.get(..n)?).ok()?.trim();
    (!v.is_empty() && !v.chars().any(char::is_control)).then_some(v)
}

/// The text of every element with this local name (any prefix), trimmed; elements with children or no text are
/// skipped.
fn element<'a>(xml: &'a [u8], local: &'a [u8]) -> impl Iterator<Item = &'a str> + 'a {
    let mut rest = xml;
    std::iter::from_fn(move || {
        loop {
            let open = rest.iter().position(|&b| b == b'<')?;
            rest = rest.get(open + 1..)?;
            let name_end = rest
                .iter()
                .position(|&b| b == b'>' || b == b'/' || b.is_ascii_whitespace())?;
            let name = rest.get(..name_end)?;
            let bare = name
                .iter()
                .position(|&b| b == b':')
                .and_then(|c| name.get(c + 1..))
                .unwrap_or(name);
            if bare != local {
                continue;
            }
            let gt = rest.iter().position(|&b| b == b'>')?;
            // A self-closing element has no text.
            if rest.get(gt.checked_sub(1)?) == Some(&b'/') {
                continue;
            }
            rest = rest.get(gt + 1..)?;
            let end = rest.iter().position(|&b| b == b'<')?;
            let text = rest.get(..end)?;
            rest = rest.get(end..)?;
            if let Some(t) = std::str::from_utf8(text).ok().map(str::trim) {
                if !t.is_empty() {
                    return Some(t);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;

    /// A Probe as ONVIF Core §7.3 and WS-Discovery 2005/04 §5.2 lay it out.
    pub(crate) const PROBE: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl"><s:Header><a:Action s:mustUnderstand="1">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action><a:MessageID>uuid:0a6dc791-2be6-4991-9af1-454778a1917a</a:MessageID><a:To s:mustUnderstand="1">urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To></s:Header><s:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></s:Body></s:Envelope>"#;

    /// A camera's answer (WS-Discovery 2005/04 §5.3, ONVIF Core §7.3.2 scopes).
    pub(crate) const MATCHES: &[u8] = br#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl" xmlns:tds="http://www.onvif.org/ver10/device/wsdl"><SOAP-ENV:Header><wsa:MessageID>uuid:5f2d2c66-1dd2-11b2-8000-accc8e123456</wsa:MessageID><wsa:RelatesTo>uuid:0a6dc791-2be6-4991-9af1-454778a1917a</wsa:RelatesTo><wsa:To SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</wsa:To><wsa:Action SOAP-ENV:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action><d:AppSequence SOAP-ENV:mustUnderstand="true" MessageNumber="3" InstanceId="1700000000"/></SOAP-ENV:Header><SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:5f2d2c66-1dd2-11b2-8000-accc8e123456</wsa:Address></wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter tds:Device</d:Types><d:Scopes>onvif://www.onvif.org/type/video_encoder onvif://www.onvif.org/Profile/Streaming onvif://www.onvif.org/name/AXIS%20P1375 onvif://www.onvif.org/hardware/P1375 onvif://www.onvif.org/location/country/sweden</d:Scopes><d:XAddrs>http://192.168.1.30/onvif/device_service http://[fe80::1]/onvif/device_service</d:XAddrs><d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;

    fn about(c: &Collect, who: Subject, f: &str) -> bool {
        c.0.iter().any(|(w, g)| *w == who && g == f)
    }

    #[test]
    fn probe_is_the_client_and_names_nothing_about_it() {
        assert!(looks_like(PROBE));
        assert_eq!(direction(PROBE), Some(Dir::ToServer));
        let mut c = Collect::default();
        dissect(PROBE, Dir::ToServer, &mut c);
        assert_eq!(
            c.0,
            vec![(Subject::Src, "Uses(WsDiscovery)".to_owned())],
            "{c:?}"
        );
    }

    #[test]
    fn probe_matches_name_the_camera() {
        assert!(looks_like(MATCHES));
        assert_eq!(direction(MATCHES), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect(MATCHES, Dir::ToClient, &mut c);
        let s = Subject::Src;
        assert!(about(&c, s, "Serves(WsDiscovery)"), "{c:?}");
        assert!(about(&c, Subject::Dst, "Uses(WsDiscovery)"), "{c:?}");
        for f in [
            r#"Service(WsDiscovery, "dn:NetworkVideoTransmitter")"#,
            r#"Service(WsDiscovery, "tds:Device")"#,
            r#"Hostname(WsDiscovery, "AXIS P1375")"#,
            r#"Model(WsDiscovery, "P1375")"#,
            r#"Description(WsDiscovery, "country/sweden")"#,
            r#"Platform(WsDiscovery, "video_encoder")"#,
            r#"Url(WsDiscovery, "http://192.168.1.30/onvif/device_service")"#,
            r#"Url(WsDiscovery, "http://[fe80::1]/onvif/device_service")"#,
            r#"DeviceId(WsDiscovery, "5f2d2c66-1dd2-11b2-8000-accc8e123456")"#,
        ] {
            assert!(about(&c, s, f), "{f} in {c:?}");
        }
    }

    #[test]
    fn hello_from_a_printer_and_other_xml() {
        let hello = br#"<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:wsd="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:wprt="http://schemas.microsoft.com/windows/2006/08/wdp/print"><soap:Header><wsa:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</wsa:To><wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Hello</wsa:Action></soap:Header><soap:Body><wsd:Hello><wsa:EndpointReference><wsa:Address>urn:uuid:16a65700-007c-1000-bb49-30055c123456</wsa:Address></wsa:EndpointReference><wsd:Types>wprt:PrintDeviceType</wsd:Types><wsd:XAddrs>http://192.168.1.40:80/WebServices/Device</wsd:XAddrs></wsd:Hello></soap:Body></soap:Envelope>"#;
        assert!(looks_like(hello));
        assert_eq!(direction(hello), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect(hello, Dir::ToClient, &mut c);
        assert!(about(&c, Subject::Src, "Serves(WsDiscovery)"));
        assert!(about(
            &c,
            Subject::Src,
            r#"Service(WsDiscovery, "wprt:PrintDeviceType")"#
        ));
        assert!(!c.0.iter().any(|(w, _)| *w == Subject::Dst), "{c:?}");
        // Other SOAP, or XML naming no discovery namespace, is not WS-Discovery.
        assert!(!looks_like(b"<?xml version=\"1.0\"?><a/>"));
        assert!(!looks_like(b"M-SEARCH * HTTP/1.1\r\n"));
        assert!(!looks_like(b"schemas.xmlsoap.org/ws/2005/04/discovery"));
    }

    #[test]
    fn percent_escapes_and_bad_ones() {
        let mut buf = [0u8; 16];
        assert_eq!(percent_decode("AXIS%20P1375", &mut buf), Some("AXIS P1375"));
        assert_eq!(percent_decode("bad%2", &mut buf), None);
        assert_eq!(percent_decode("%0a", &mut buf), None);
        assert_eq!(percent_decode("x".repeat(17).as_str(), &mut buf), None);
    }

    #[test]
    fn truncation_at_every_length_is_harmless() {
        let mut c = Collect::default();
        for msg in [PROBE, MATCHES] {
            for cut in 0..msg.len() {
                let p = &msg[..cut];
                looks_like(p);
                direction(p);
                dissect(p, Dir::ToClient, &mut c);
            }
        }
    }
}
