//! HTTP/1.x heads: the client's User-Agent and Basic credentials, the server's `Server` header. Parsing is
//! `httparse`'s.

use base64::Engine as _;

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

/// The most headers read from one head.
const MAX_HEADERS: usize = 48;

/// Whether `payload` starts like an HTTP request or response line.
pub fn looks_like(payload: &[u8]) -> bool {
    const STARTS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"HTTP/1.",
    ];
    STARTS.iter().any(|s| payload.starts_with(s))
}

/// Reads the head at the start of one direction of an HTTP stream; `true` once it has been read (or is not
/// HTTP).
pub fn dissect(stream: &[u8], dir: Dir, out: &mut dyn Sink) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    if stream.starts_with(b"HTTP/") {
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(stream) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return false,
            Err(_) => return true,
        }
        out.fact(Dir::ToClient.server(), Fact::Serves(Proto::Http));
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("server") {
                if let Some(v) = value(h.value) {
                    out.fact(dir.server(), Fact::HttpServer(v));
                }
            }
        }
        return true;
    }
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(stream) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return false,
        Err(_) => return true,
    }
    out.fact(dir.server(), Fact::Serves(Proto::Http));
    out.fact(dir.client(), Fact::Uses(Proto::Http));
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("user-agent") {
            if let Some(v) = value(h.value) {
                out.fact(dir.client(), Fact::UserAgent(v));
            }
        } else if h.name.eq_ignore_ascii_case("authorization") {
            basic(h.value, dir, out);
        }
    }
    true
}

/// Reports Basic credentials by user name; the password is decoded only to be dropped.
fn basic(v: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Some(b64) = v
        .strip_prefix(b"Basic ")
        .or_else(|| v.strip_prefix(b"basic "))
    else {
        return;
    };
    let mut buf = [0u8; 192];
    let user = base64::engine::general_purpose::STANDARD
        .decode_slice(b64.trim_ascii(), &mut buf)
        .ok()
        .and_then(|n| {
            let pair = buf.get(..n)?;
            let colon = pair.iter().position(|&b| b == b':')?;
            std::str::from_utf8(&pair[..colon]).ok()
        });
    out.fact(
        dir.client(),
        Fact::CleartextCredential {
            proto: Proto::Http,
            user,
        },
    );
}

/// Whether a datagram is SSDP: a search or an announcement request line, or a search answer (an HTTP/1.1 200
/// with `ST` and `USN` headers), which a device sends from its own port to the searcher's, neither being 1900.
pub fn looks_like_ssdp(payload: &[u8]) -> bool {
    if payload.starts_with(b"M-SEARCH * HTTP/1.") || payload.starts_with(b"NOTIFY * HTTP/1.") {
        return true;
    }
    // Plain HTTP never travels in a datagram, but a 200 alone is too little to claim one; a search answer
    // always names what it answers for and who answers.
    payload.starts_with(b"HTTP/1.1 200")
        && has_header(payload, b"\r\nST:")
        && has_header(payload, b"\r\nUSN:")
}

/// Whether `needle` (CRLF and a header name with its colon) occurs in the payload, ignoring ASCII case.
fn has_header(payload: &[u8], needle: &[u8]) -> bool {
    payload
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Which way an SSDP datagram goes: a search asks (to the server); an answer or an announcement comes from the
/// device (to the client).
pub fn ssdp_direction(payload: &[u8]) -> Option<Dir> {
    if payload.starts_with(b"M-SEARCH ") {
        Some(Dir::ToServer)
    } else if payload.starts_with(b"NOTIFY ") || payload.starts_with(b"HTTP/1.") {
        Some(Dir::ToClient)
    } else {
        None
    }
}

/// Reads an SSDP datagram: a NOTIFY or a search answer comes from a device, which serves SSDP and names its
/// server string, service type (`NT`/`ST`), unique service name (`USN`, whose `uuid:` is the device's) and
/// description URL (`LOCATION`); an M-SEARCH names what the sender looks for, which says nothing about it but
/// that it asks. Its own start line says which side is the device, whatever the ports.
pub fn dissect_ssdp(payload: &[u8], out: &mut dyn Sink) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let own = if payload.starts_with(b"HTTP/") {
        let mut resp = httparse::Response::new(&mut headers);
        if resp.parse(payload).is_err() {
            return;
        }
        true
    } else {
        let mut req = httparse::Request::new(&mut headers);
        if req.parse(payload).is_err() {
            return;
        }
        req.method == Some("NOTIFY")
    };
    // The device is the sender of an answer or announcement; the searcher is the sender of a search.
    let (device, searcher) = if own {
        (Subject::Src, Subject::Dst)
    } else {
        (Subject::Dst, Subject::Src)
    };
    if own {
        out.fact(device, Fact::Serves(Proto::Ssdp));
        // A NOTIFY goes to the group; only a search answer has a searcher at the other end.
        if payload.starts_with(b"HTTP/") {
            out.fact(searcher, Fact::Uses(Proto::Ssdp));
        }
    } else {
        out.fact(searcher, Fact::Uses(Proto::Ssdp));
    }
    for h in headers.iter().take_while(|h| !h.name.is_empty()) {
        let Some(v) = value(h.value) else { continue };
        let name = h.name;
        if name.eq_ignore_ascii_case("user-agent") {
            out.fact(Subject::Src, Fact::UserAgent(v));
        }
        if !own {
            continue;
        }
        if name.eq_ignore_ascii_case("server") {
            out.fact(device, Fact::HttpServer(v));
        } else if name.eq_ignore_ascii_case("nt") || name.eq_ignore_ascii_case("st") {
            out.fact(device, Fact::Service(Source::Ssdp, v));
        } else if name.eq_ignore_ascii_case("location") {
            out.fact(device, Fact::Url(Source::Ssdp, v));
        } else if name.eq_ignore_ascii_case("usn") {
            // "uuid:<UDN>" alone or followed by "::<type>": the UDN names the device for good.
            let udn = v.split("::").next().unwrap_or(v);
            if let Some(uuid) = udn.strip_prefix("uuid:").filter(|u| !u.is_empty()) {
                out.fact(device, Fact::DeviceId(Source::Ssdp, uuid));
            }
        }
    }
}

fn value(v: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(v).ok()?.trim();
    (!s.is_empty()).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    #[test]
    fn agent_and_server_as_tshark_shows() {
        // tshark: http.user_agent "Wget/1.14 (darwin12.2.0)", http.server "Apache/2.4.3 (Fedora)".
        let mut c = Collect::default();
        for s in segments("z_http_get.pcap") {
            let dir = if s.dport == 80 {
                Dir::ToServer
            } else {
                Dir::ToClient
            };
            dissect(&s.payload, dir, &mut c);
        }
        assert!(c.has(r#"UserAgent("Wget/1.14 (darwin12.2.0)")"#), "{c:?}");
        assert!(c.has(r#"HttpServer("Apache/2.4.3 (Fedora)")"#), "{c:?}");
    }

    #[test]
    fn ssdp_notify_names_the_server_and_service() {
        let notify = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: urn:schemas-upnp-org:device:MediaRenderer:1\r\nNTS: ssdp:alive\r\nSERVER: Linux/4.9 UPnP/1.0 Cam/2.1\r\nUSN: uuid:1\r\n\r\n";
        let mut c = Collect::default();
        dissect_ssdp(notify, &mut c);
        assert!(
            c.has(r#"HttpServer("Linux/4.9 UPnP/1.0 Cam/2.1")"#),
            "{c:?}"
        );
        assert!(
            c.has(r#"Service(Ssdp, "urn:schemas-upnp-org:device:MediaRenderer:1")"#),
            "{c:?}"
        );
        assert!(
            c.0.contains(&(Subject::Src, "Serves(Ssdp)".to_owned())),
            "{c:?}"
        );
        // A search says what the sender looks for, not what it is.
        let search = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: ssdp:all\r\nUSER-AGENT: Tablet/1.0\r\n\r\n";
        let mut c = Collect::default();
        dissect_ssdp(search, &mut c);
        assert!(
            !c.has("Service(") && c.has(r#"UserAgent("Tablet/1.0")"#),
            "{c:?}"
        );
        for cut in 0..notify.len() {
            dissect_ssdp(&notify[..cut], &mut c);
        }
    }

    /// A search answer as UPnP Device Architecture 1.1 §1.3.3 lays it out.
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nDATE: Wed, 02 Dec 2026 19:00:00 GMT\r\nEXT:\r\nLOCATION: http://192.168.1.20:49152/description.xml\r\nSERVER: Linux/3.10 UPnP/1.0 IpCam/4.2\r\nST: upnp:rootdevice\r\nUSN: uuid:2fac1234-31f8-11b4-a222-08002b34c003::upnp:rootdevice\r\nBOOTID.UPNP.ORG: 7\r\n\r\n";

    #[test]
    fn ssdp_search_answer_names_the_device_whatever_the_ports() {
        assert!(looks_like_ssdp(ANSWER));
        assert_eq!(ssdp_direction(ANSWER), Some(Dir::ToClient));
        let mut c = Collect::default();
        dissect_ssdp(ANSWER, &mut c);
        let about = |who: Subject, f: &str| c.0.iter().any(|(w, g)| *w == who && g == f);
        assert!(about(Subject::Src, "Serves(Ssdp)"), "{c:?}");
        assert!(about(Subject::Dst, "Uses(Ssdp)"), "{c:?}");
        assert!(about(
            Subject::Src,
            r#"Url(Ssdp, "http://192.168.1.20:49152/description.xml")"#
        ));
        assert!(about(
            Subject::Src,
            r#"DeviceId(Ssdp, "2fac1234-31f8-11b4-a222-08002b34c003")"#
        ));
        assert!(about(
            Subject::Src,
            r#"HttpServer("Linux/3.10 UPnP/1.0 IpCam/4.2")"#
        ));
        assert!(about(Subject::Src, r#"Service(Ssdp, "upnp:rootdevice")"#));
        for cut in 0..ANSWER.len() {
            looks_like_ssdp(&ANSWER[..cut]);
            ssdp_direction(&ANSWER[..cut]);
            dissect_ssdp(&ANSWER[..cut], &mut c);
        }
    }

    #[test]
    fn ssdp_is_claimed_off_its_port_only_by_its_own_lines() {
        let search = b"M-SEARCH * HTTP/1.1\r\nHOST: 192.168.1.20:49153\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n";
        assert!(looks_like_ssdp(search));
        assert_eq!(ssdp_direction(search), Some(Dir::ToServer));
        let mut c = Collect::default();
        dissect_ssdp(search, &mut c);
        assert!(
            c.0.iter()
                .any(|(w, f)| *w == Subject::Src && f == "Uses(Ssdp)")
        );
        assert!(!c.has("Serves("), "{c:?}");
        // Any other HTTP-looking datagram, or a 200 without the search answer's headers, is not SSDP.
        for other in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\nST: x\r\nUSN: y\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"M-SEARCH",
            b"",
        ] {
            assert!(!looks_like_ssdp(other), "{other:?}");
        }
    }

    #[test]
    fn basic_credentials_keep_only_the_user() {
        let req = b"GET / HTTP/1.1\r\nHost: plc\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\n\r\n";
        let mut c = Collect::default();
        assert!(dissect(req, Dir::ToServer, &mut c));
        assert!(
            c.has(r#"CleartextCredential { proto: Http, user: Some("admin") }"#),
            "{c:?}"
        );
        assert!(!c.has("secret"));
        for cut in 0..req.len() {
            dissect(&req[..cut], Dir::ToServer, &mut c);
        }
    }
}
