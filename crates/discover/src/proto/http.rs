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

/// Reads an SSDP datagram (UDP 1900): a NOTIFY or a search answer names the sender's server string and
/// service type; an M-SEARCH names what the sender looks for, which says nothing about it but that it asks.
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
    out.fact(Subject::Src, Fact::Uses(Proto::Ssdp));
    for h in headers.iter().take_while(|h| !h.name.is_empty()) {
        let Some(v) = value(h.value) else { continue };
        if own && h.name.eq_ignore_ascii_case("server") {
            out.fact(Subject::Src, Fact::HttpServer(v));
        } else if own && (h.name.eq_ignore_ascii_case("nt") || h.name.eq_ignore_ascii_case("st")) {
            out.fact(Subject::Src, Fact::Service(Source::Ssdp, v));
        } else if h.name.eq_ignore_ascii_case("user-agent") {
            out.fact(Subject::Src, Fact::UserAgent(v));
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
