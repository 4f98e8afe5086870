//! OPC UA binary (UA TCP, tcp/4840 by default): the client's Hello names the endpoint, OpenSecureChannel the
//! security policy, and the discovery and session services the applications at both ends.

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

use super::trimmed as text;

/// The message types of UA TCP and UA Secure Conversation.
const TYPES: [&[u8; 3]; 6] = [b"HEL", b"ACK", b"ERR", b"OPN", b"MSG", b"CLO"];

/// Service type ids (namespace 0) of the messages read here.
const GET_ENDPOINTS_REQUEST: u16 = 428;
const GET_ENDPOINTS_RESPONSE: u16 = 431;
const CREATE_SESSION_REQUEST: u16 = 461;
const CREATE_SESSION_RESPONSE: u16 = 464;

/// Whether a TCP payload starts like a UA TCP message.
pub fn looks_like(payload: &[u8]) -> bool {
    header(payload).is_some()
}

/// Reads one TCP segment of OPC UA and reports the endpoint, security policy and applications it names.
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let mut rest = payload;
    let mut first = true;
    while let Some((kind, chunk, size)) = header(rest) {
        if first {
            out.fact(dir.server(), Fact::Serves(Proto::OpcUa));
            out.fact(dir.client(), Fact::Uses(Proto::OpcUa));
            first = false;
        }
        // A message larger than the segment is read as far as it goes.
        let body = rest
            .get(8..size)
            .or_else(|| rest.get(8..))
            .unwrap_or_default();
        let mut c = Cursor(body);
        match kind {
            // Protocol version, buffer sizes, max message size and chunk count, then the endpoint URL.
            b"HEL" => {
                if let Some(url) = c.take(20).and_then(|_| c.string()).and_then(text) {
                    out.fact(dir.server(), Fact::OpcUaEndpoint(url));
                }
            }
            // The secure channel id, then the asymmetric security header, which opens with the policy URI.
            b"OPN" => {
                if let Some(uri) = c.take(4).and_then(|_| c.string()).and_then(text) {
                    out.fact(dir.server(), Fact::OpcUaSecurityPolicy(uri));
                }
            }
            // A 'C' chunk may continue another's body; an 'F' chunk that does so fails the type id check.
            b"MSG" if chunk == b'F' => {
                message(&mut c, dir, out);
            }
            _ => {}
        }
        let Some(next) = rest.get(size..) else { break };
        rest = next;
    }
}

/// The type, chunk type and size of a UA TCP message header that is plausible for its type.
fn header(bytes: &[u8]) -> Option<(&[u8; 3], u8, usize)> {
    let [t0, t1, t2, chunk, s0, s1, s2, s3, ..] = bytes else {
        return None;
    };
    let kind = TYPES.into_iter().find(|t| **t == [*t0, *t1, *t2])?;
    let size = u32::from_le_bytes([*s0, *s1, *s2, *s3]);
    // The smallest size (header included) each type can have; HEL, ACK and ERR are never split into chunks.
    let (min, chunks) = match kind {
        b"HEL" => (32, false),
        b"ACK" => (28, false),
        b"ERR" => (16, false),
        _ => (24, true),
    };
    let chunk_ok = *chunk == b'F' || (chunks && matches!(*chunk, b'C' | b'A'));
    (chunk_ok && (min..1 << 26).contains(&size)).then_some((
        kind,
        *chunk,
        usize::try_from(size).ok()?,
    ))
}

/// Reads the service in a final MSG chunk (no encryption: with it, nothing past the headers is legible).
fn message(c: &mut Cursor<'_>, dir: Dir, out: &mut dyn Sink) -> Option<()> {
    // Secure channel id, token id, sequence number, request id, then the service's type id as a four-byte
    // numeric NodeId in namespace 0.
    c.take(16)?;
    let [1, 0, lo, hi] = *c.take(4)? else {
        return None;
    };
    match u16::from_le_bytes([lo, hi]) {
        GET_ENDPOINTS_REQUEST => {
            c.request_header()?;
            let url = text(c.string()?)?;
            out.fact(dir.server(), Fact::OpcUaEndpoint(url));
        }
        CREATE_SESSION_REQUEST => {
            c.request_header()?;
            application(c, dir.client(), out)?;
            // Application type, gateway server URI, discovery profile URI, discovery URLs; server URI.
            c.take(4)?;
            c.string()?;
            c.string()?;
            c.string_array()?;
            c.string()?;
            let url = text(c.string()?)?;
            out.fact(dir.server(), Fact::OpcUaEndpoint(url));
        }
        GET_ENDPOINTS_RESPONSE => {
            c.response_header()?;
            endpoints(c, dir, out)?;
        }
        CREATE_SESSION_RESPONSE => {
            c.response_header()?;
            // Session id, authentication token, revised timeout, server nonce and certificate.
            c.node_id()?;
            c.node_id()?;
            c.take(8)?;
            c.string()?;
            c.string()?;
            endpoints(c, dir, out)?;
        }
        _ => {}
    }
    Some(())
}

/// Reads the first of an array of endpoint descriptions: the URL and the server application behind it.
fn endpoints(c: &mut Cursor<'_>, dir: Dir, out: &mut dyn Sink) -> Option<()> {
    if c.i32()? < 1 {
        return None;
    }
    if let Some(url) = text(c.string()?) {
        out.fact(dir.server(), Fact::OpcUaEndpoint(url));
    }
    application(c, dir.server(), out)
}

/// Reads the start of an ApplicationDescription: application URI, product URI and application name.
fn application(c: &mut Cursor<'_>, who: Subject, out: &mut dyn Sink) -> Option<()> {
    let uri = c.string()?;
    let product = c.string()?;
    let name = c.localized_text()?;
    if let Some(uri) = text(uri) {
        out.fact(who, Fact::Service(Source::OpcUa, uri));
    }
    if let Some(product) = text(product) {
        out.fact(who, Fact::Model(Source::OpcUa, product));
    }
    if let Some(name) = text(name) {
        out.fact(who, Fact::Description(Source::OpcUa, name));
    }
    Some(())
}

/// A reader over the little-endian OPC UA binary encoding; every read fails past the end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn i32(&mut self) -> Option<i32> {
        let [a, b, c, d] = *self.take(4)? else {
            return None;
        };
        Some(i32::from_le_bytes([a, b, c, d]))
    }

    /// A String or ByteString; the null one (length -1) reads as empty.
    fn string(&mut self) -> Option<&'a [u8]> {
        match usize::try_from(self.i32()?) {
            Ok(len) => self.take(len),
            Err(_) => Some(&[]),
        }
    }

    fn string_array(&mut self) -> Option<()> {
        // Each element takes at least four bytes, so a huge count runs out of input quickly.
        for _ in 0..self.i32()? {
            self.string()?;
        }
        Some(())
    }

    /// A NodeId or ExpandedNodeId, skipped.
    fn node_id(&mut self) -> Option<()> {
        let mask = self.u8()?;
        match mask & 0x0f {
            0 => self.take(1).map(drop)?,
            1 => self.take(3).map(drop)?,
            2 => self.take(6).map(drop)?,
            3 | 5 => self.take(2).and_then(|_| self.string()).map(drop)?,
            4 => self.take(18).map(drop)?,
            _ => return None,
        }
        if mask & 0x80 != 0 {
            self.string()?;
        }
        if mask & 0x40 != 0 {
            self.take(4)?;
        }
        Some(())
    }

    /// A DiagnosticInfo, skipped; nested inner diagnostics are walked in a loop, not by recursion.
    fn diagnostic_info(&mut self) -> Option<()> {
        loop {
            let mask = self.u8()?;
            // Symbolic id, namespace URI, localized text and locale: indexes into the string table.
            for bit in [0x01, 0x02, 0x04, 0x08] {
                if mask & bit != 0 {
                    self.take(4)?;
                }
            }
            if mask & 0x10 != 0 {
                self.string()?;
            }
            if mask & 0x20 != 0 {
                self.take(4)?;
            }
            if mask & 0x40 == 0 {
                return Some(());
            }
        }
    }

    /// An ExtensionObject, skipped: type id, encoding, and a body unless the encoding says there is none.
    fn extension_object(&mut self) -> Option<()> {
        self.node_id()?;
        match self.u8()? {
            0 => Some(()),
            1 | 2 => self.string().map(drop),
            _ => None,
        }
    }

    /// A LocalizedText: its text, if it has one.
    fn localized_text(&mut self) -> Option<&'a [u8]> {
        let mask = self.u8()?;
        if mask & 0x01 != 0 {
            self.string()?;
        }
        if mask & 0x02 != 0 {
            self.string()
        } else {
            Some(&[])
        }
    }

    fn request_header(&mut self) -> Option<()> {
        // Authentication token, timestamp, handle, return diagnostics, audit entry id, timeout hint.
        self.node_id()?;
        self.take(16)?;
        self.string()?;
        self.take(4)?;
        self.extension_object()
    }

    fn response_header(&mut self) -> Option<()> {
        // Timestamp, request handle, service result, diagnostics, string table.
        self.take(16)?;
        self.diagnostic_info()?;
        self.string_array()?;
        self.extension_object()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::{Seg, segments};

    fn run(payload: &[u8], dir: Dir) -> Collect {
        let mut c = Collect::default();
        dissect(payload, dir, &mut c);
        c
    }

    fn opcua() -> Vec<(Seg, Dir)> {
        segments("iti_opcua.pcap")
            .into_iter()
            .map(|s| {
                let dir = if s.dport == 12001 {
                    Dir::ToServer
                } else {
                    Dir::ToClient
                };
                (s, dir)
            })
            .collect()
    }

    /// Every fact of the capture, with its subject turned into "server" or "client".
    fn all_facts() -> Vec<(&'static str, String)> {
        let mut facts = Vec::new();
        for (s, dir) in opcua() {
            for (who, f) in run(&s.payload, dir).0 {
                facts.push((
                    if who == dir.server() {
                        "server"
                    } else {
                        "client"
                    },
                    f,
                ));
            }
        }
        facts
    }

    fn has(facts: &[(&str, String)], who: &str, fact: &str) -> bool {
        facts.iter().any(|(w, f)| *w == who && f == fact)
    }

    #[test]
    fn hello_and_secure_channel() {
        // tshark -d tcp.port==12001,opcua: two HEL with EndpointUrl opc.tcp://vm-xp-steven:12001/UA/
        // StackTestServer and four OPN with SecurityPolicyUri http://opcfoundation.org/UA/SecurityPolicy#None.
        let facts = all_facts();
        let endpoint = r#"OpcUaEndpoint("opc.tcp://vm-xp-steven:12001/UA/StackTestServer")"#;
        let policy = r#"OpcUaSecurityPolicy("http://opcfoundation.org/UA/SecurityPolicy#None")"#;
        assert!(has(&facts, "server", endpoint));
        assert_eq!(facts.iter().filter(|(_, f)| f == policy).count(), 4);
        assert!(
            facts
                .iter()
                .all(|(w, f)| *w == "server" || !f.starts_with("OpcUa"))
        );
        assert!(has(&facts, "server", "Serves(OpcUa)") && has(&facts, "client", "Uses(OpcUa)"));
        assert!(!has(&facts, "client", "Serves(OpcUa)") && !has(&facts, "server", "Uses(OpcUa)"));
    }

    #[test]
    fn applications() {
        // tshark: GetEndpointsResponse and CreateSessionResponse list as first endpoint
        // opc.tcp://vm-xp-steven:12001/StackTestServer/AnsiC/2048 with ApplicationUri "http://vm-xp-steven/UA
        // StackTest Server (AnsiC/2048)", a null ProductUri and ApplicationName "UA StackTest Server
        // (AnsiC/2048)"; the CreateSessionRequest's ClientDescription has ApplicationUri
        // "uri://AchillesSatellite/Opc.Ua.ServerTestTool/55ea864a-2be8-4bc6-bb73-1123c54d0fc4", ProductUri
        // "urn:opcfoundation.org/UA/ServerTest" and ApplicationName "ApplicationName".
        let facts = all_facts();
        for (who, fact) in [
            (
                "server",
                r#"OpcUaEndpoint("opc.tcp://vm-xp-steven:12001/StackTestServer/AnsiC/2048")"#,
            ),
            (
                "server",
                r#"Service(OpcUa, "http://vm-xp-steven/UA StackTest Server (AnsiC/2048)")"#,
            ),
            (
                "server",
                r#"Description(OpcUa, "UA StackTest Server (AnsiC/2048)")"#,
            ),
            (
                "client",
                r#"Service(OpcUa, "uri://AchillesSatellite/Opc.Ua.ServerTestTool/55ea864a-2be8-4bc6-bb73-1123c54d0fc4")"#,
            ),
            (
                "client",
                r#"Model(OpcUa, "urn:opcfoundation.org/UA/ServerTest")"#,
            ),
            ("client", r#"Description(OpcUa, "ApplicationName")"#),
        ] {
            assert!(has(&facts, who, fact), "{who} {fact}: {facts:#?}");
        }
        assert!(
            !has(&facts, "server", "Model"),
            "the server's ProductUri is null"
        );
        // Both responses name the endpoint in their first segment: GetEndpoints and CreateSession, twice each.
        let ep = r#"OpcUaEndpoint("opc.tcp://vm-xp-steven:12001/StackTestServer/AnsiC/2048")"#;
        assert_eq!(facts.iter().filter(|(_, f)| f == ep).count(), 4);
    }

    #[test]
    fn looks_like_opcua_only() {
        // tshark: the conversations open with HEL; continuation segments of the long responses do not start
        // with a header.
        let segs = opcua();
        assert!(looks_like(&segs[0].0.payload));
        assert_eq!(
            segs.iter().filter(|(s, _)| looks_like(&s.payload)).count(),
            24
        );
        for name in [
            "iti_modbus1.pcap",
            "iti_s7_1200.pcap",
            "iti_iec104.pcap",
            "z_http_get.pcap",
            "z_mqtt.pcap",
        ] {
            for s in segments(name) {
                assert!(
                    !looks_like(&s.payload),
                    "{name}: {:02x?}",
                    &s.payload[..s.payload.len().min(16)]
                );
            }
        }
        assert!(!looks_like(b"HELC\x20\0\0\0"), "HEL is never chunked");
        assert!(!looks_like(b"MSGF\x07\0\0\0"), "smaller than its header");
        assert!(!looks_like(b"GET / HTTP/1.1\r\n"));
    }

    #[test]
    fn survives_truncation_and_hostile_input() {
        for (s, dir) in opcua() {
            for n in 0..=s.payload.len() {
                run(&s.payload[..n], dir);
            }
        }
        let hostile: [&[u8]; 6] = [
            // HEL whose endpoint length points past the end, and one with a negative length.
            b"HELF\x2c\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\xff\xff\x00\x7f",
            b"HELF\x2c\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x00\x00\x00\x80",
            // OPN with a zero-length policy, then a second message whose size is the maximum.
            b"OPNF\x18\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0OPNF\xff\xff\xff\x03",
            // GetEndpointsResponse whose diagnostics nest to the end of the input.
            b"MSGF\x40\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x00\xaf\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40\x40",
            // GetEndpointsResponse with a string table of 2^31-1 entries.
            b"MSGF\x40\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x00\xaf\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x00\xff\xff\xff\x7f\xff\xff\xff\xff",
            // Zero-size chunks are not headers.
            b"MSGF\0\0\0\0MSGF\0\0\0\0",
        ];
        for h in hostile {
            let c = run(h, Dir::ToServer);
            assert!(
                c.0.iter()
                    .all(|(_, f)| !f.starts_with("OpcUaEndpoint") && !f.starts_with("Service"))
            );
        }
        // Several messages in one segment are all read.
        let mut two = b"OPNF\x1d\0\0\0\0\0\0\0\x01\0\0\0a\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        two.extend_from_slice(b"OPNF\x1d\0\0\0\0\0\0\0\x01\0\0\0b\0\0\0\0\0\0\0\0\0\0\0\0");
        let c = run(&two, Dir::ToClient);
        assert!(c.has(r#"OpcUaSecurityPolicy("a")"#) && c.has(r#"OpcUaSecurityPolicy("b")"#));
        assert_eq!(
            c.0.len(),
            4,
            "roles once, then one policy per message: {:?}",
            c.0
        );
    }
}
