//! DHCPv4: the client's host name, vendor class and parameter request list (an OS fingerprint), and which
//! address the server leased to which hardware address.
//!
//! Options are walked with `dhcproto`'s zero-copy reader. The fixed header is read here, because the crate
//! slices `chaddr` by the untrusted `hlen` field without checking it.

use dhcproto::v4::{OptionCode, borrowed::Message};
use vouch_types::MacAddr;

use crate::facts::{Fact, Proto, Sink, Source, Subject};

/// The magic cookie that starts the options of a DHCP (not plain BOOTP) message.
const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Reads one DHCP message (UDP 67/68).
pub fn dissect(payload: &[u8], out: &mut dyn Sink) {
    let (Some(&op), Some(&htype), Some(&hlen)) = (payload.first(), payload.get(1), payload.get(2))
    else {
        return;
    };
    if payload.get(236..240) != Some(&COOKIE) || !(op == 1 || op == 2) {
        return;
    }
    let Ok(msg) = Message::new(payload) else {
        return;
    };
    let mac = match payload.get(28..34) {
        Some(&[a, b, c, d, e, f]) if htype == 1 && hlen == 6 => {
            Some(MacAddr::from_octets([a, b, c, d, e, f]))
        }
        _ => None,
    };
    if op == 2 {
        out.fact(Subject::Src, Fact::Serves(Proto::Dhcp));
    } else {
        out.fact(Subject::Src, Fact::Uses(Proto::Dhcp));
    }
    let Some(mac) = mac else { return };
    let client = Subject::Hw(mac);
    let mut kind = 0u8;
    for opt in msg.opts() {
        let data = opt.data();
        match (op, opt.code()) {
            (_, OptionCode::MessageType) => kind = data.first().copied().unwrap_or(0),
            (1, OptionCode::Hostname) => {
                if let Some(name) = text(data) {
                    out.fact(client, Fact::Hostname(Source::Dhcp, name));
                }
            }
            (1, OptionCode::ClassIdentifier) => {
                if let Some(class) = text(data) {
                    out.fact(client, Fact::VendorClass(class));
                }
            }
            (1, OptionCode::ParameterRequestList) if !data.is_empty() => {
                out.fact(client, Fact::DhcpParams(data));
            }
            _ => {}
        }
    }
    // DHCPACK (5) is the lease; an OFFER is only a proposal.
    if op == 2 && kind == 5 {
        let yiaddr = msg.yiaddr();
        if !yiaddr.is_unspecified() {
            out.fact(client, Fact::Lease(yiaddr));
        }
    }
}

/// Printable text of an option, without trailing NULs; `None` if it is not.
pub(crate) fn text(data: &[u8]) -> Option<&str> {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let s = std::str::from_utf8(data.get(..end)?).ok()?.trim();
    (!s.is_empty() && !s.chars().any(char::is_control)).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    fn all(file: &str) -> Collect {
        let mut c = Collect::default();
        for s in segments(file) {
            dissect(&s.payload, &mut c);
        }
        c
    }

    #[test]
    fn parameter_list_and_host_name_as_tshark_shows() {
        // tshark: option 55 items 1,3,6,42; option 12 "test0000".
        let c = all("z_dhcp_prl.pcap");
        assert!(c.has("DhcpParams([1, 3, 6, 42])"), "{c:?}");
        assert!(c.has(r#"Hostname(Dhcp, "test0000")"#), "{c:?}");
    }

    #[test]
    fn lease_goes_to_the_client_hardware_address() {
        // tshark: the client 90:b1:1c:99:49:29 is "btest.is.cool"; the ACK gives it 128.2.6.189.
        let c = all("z_dhcp.pcap");
        let mac: MacAddr = "90:b1:1c:99:49:29".parse().unwrap();
        let facts: Vec<&String> =
            c.0.iter()
                .filter(|(w, _)| *w == Subject::Hw(mac))
                .map(|(_, f)| f)
                .collect();
        assert!(
            facts.iter().any(|f| f.contains("btest.is.cool")),
            "{facts:?}"
        );
        assert!(
            facts.iter().any(|f| f.contains("Lease(128.2.6.189)")),
            "{facts:?}"
        );
    }

    #[test]
    fn hostile_headers_are_ignored() {
        let mut m = vec![0u8; 300];
        m[0] = 1;
        m[1] = 1;
        m[2] = 255; // hlen past the header: dhcproto would slice out of bounds
        m[236..240].copy_from_slice(&COOKIE);
        m[240..243].copy_from_slice(&[12, 200, b'x']); // option longer than the message
        let mut c = Collect::default();
        dissect(&m, &mut c);
        for cut in 0..m.len() {
            dissect(&m[..cut], &mut c);
        }
    }
}
