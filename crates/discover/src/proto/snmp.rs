//! SNMP (v1, v2c, v3): who is an agent and who a manager, the agent's system group (sysDescr, sysObjectID,
//! sysContact, sysName, sysLocation), SNMPv3 engine ids, and community strings sent in clear text (in
//! requests and in v1/v2c traps). Decoding is `snmp-parser`'s.

use snmp_parser::parse_snmp_generic_message;
use snmp_parser::snmp::SnmpMessage;
use snmp_parser::{
    ObjectSyntax, Oid, PduType, SecurityParameters, SnmpGenericMessage, SnmpPdu, SnmpV3Message,
    VarBindValue,
};

use crate::facts::{Dir, Fact, Proto, Sink, Source, Subject};

/// sysDescr.0 (1.3.6.1.2.1.1.1.0), as its DER content octets.
const SYS_DESCR: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 1, 0];
/// sysObjectID.0 (1.3.6.1.2.1.1.2.0).
const SYS_OBJECT_ID: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 2, 0];
/// sysContact.0 (1.3.6.1.2.1.1.4.0).
const SYS_CONTACT: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 4, 0];
/// sysName.0 (1.3.6.1.2.1.1.5.0).
const SYS_NAME: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 5, 0];
/// sysLocation.0 (1.3.6.1.2.1.1.6.0).
const SYS_LOCATION: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 6, 0];

/// Reads one SNMP message (UDP 161, or 162 for traps).
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Ok((_, msg)) = parse_snmp_generic_message(payload) else {
        return;
    };
    let m: &SnmpMessage = match &msg {
        SnmpGenericMessage::V1(m) | SnmpGenericMessage::V2(m) => m,
        SnmpGenericMessage::V3(m) => {
            out.fact(dir.server(), Fact::Serves(Proto::Snmp));
            out.fact(dir.client(), Fact::Uses(Proto::Snmp));
            return v3(m, dir, out);
        }
    };
    // Traps (v1 0xA4, v2 0xA7) are sent by the agent to the manager listening on 162, so the agent is the
    // sender whatever the ports say; so are responses.
    let (from_agent, trap) = match &m.pdu {
        SnmpPdu::Generic(p) => (
            p.pdu_type == PduType::Response || p.pdu_type == PduType::TrapV2,
            p.pdu_type == PduType::TrapV2,
        ),
        SnmpPdu::TrapV1(_) => (true, true),
        SnmpPdu::Bulk(_) => (false, false),
    };
    let (agent, manager) = if trap {
        (Subject::Src, Subject::Dst)
    } else {
        (dir.server(), dir.client())
    };
    out.fact(agent, Fact::Serves(Proto::Snmp));
    out.fact(manager, Fact::Uses(Proto::Snmp));
    if !from_agent || trap {
        // A v1/v2c request or trap carries the community, which is a password, in clear text.
        let sender = if trap { agent } else { manager };
        out.fact(
            sender,
            Fact::CleartextCredential {
                proto: Proto::Snmp,
                user: None,
            },
        );
    }
    if !from_agent {
        return;
    }
    for var in m.vars_iter() {
        let oid = var.oid.as_bytes();
        match &var.val {
            VarBindValue::Value(ObjectSyntax::String(bytes)) => {
                let Some(text) = crate::proto::dhcp::text(bytes) else {
                    continue;
                };
                let fact = match oid {
                    SYS_DESCR => Fact::Description(Source::Snmp, text),
                    SYS_NAME => Fact::Hostname(Source::Snmp, text),
                    SYS_LOCATION => Fact::Location(Source::Snmp, text),
                    SYS_CONTACT => Fact::Contact(Source::Snmp, text),
                    _ => continue,
                };
                out.fact(agent, fact);
            }
            VarBindValue::Value(ObjectSyntax::Object(id)) if oid == SYS_OBJECT_ID => {
                let mut buf = [0u8; 256];
                if let Some(dotted) = dotted(id, &mut buf) {
                    out.fact(agent, Fact::ObjectId(Source::Snmp, dotted));
                    // Private enterprise arcs (1.3.6.1.4.1.N) name the vendor's IANA number.
                    if let Some(n) = enterprise_of(id) {
                        out.fact(agent, Fact::VendorId(Source::Snmp, n));
                    }
                }
            }
            _ => {}
        }
    }
}

/// An SNMPv3 message: the authoritative engine id of a response, report or trap names the agent that sent
/// it (a request carries the id of the engine it is meant for, which is the same agent).
fn v3(m: &SnmpV3Message<'_>, dir: Dir, out: &mut dyn Sink) {
    let SecurityParameters::USM(usm) = &m.security_params else {
        return;
    };
    let id = usm.msg_authoritative_engine_id;
    // An empty id is the discovery probe a manager sends before it knows the agent's.
    if id.is_empty() || id.len() > 32 {
        return;
    }
    let mut buf = [0u8; 64];
    for (slot, b) in buf.chunks_exact_mut(2).zip(id) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        slot[0] = HEX[usize::from(b >> 4)];
        slot[1] = HEX[usize::from(b & 15)];
    }
    let Some(Ok(hex)) = buf.get(..2 * id.len()).map(std::str::from_utf8) else {
        return;
    };
    out.fact(dir.server(), Fact::EngineId(hex));
    // RFC 3411 SnmpEngineID: the first four bytes are the agent vendor's enterprise number, with the top bit
    // set in the current format (and clear in the older 12-byte one).
    if let [a, b, c, d, ..] = *id {
        let n = u32::from_be_bytes([a & 0x7f, b, c, d]);
        if a & 0x80 != 0 || id.len() == 12 {
            out.fact(dir.server(), Fact::VendorId(Source::Snmp, n));
        }
    }
}

/// The OID in dotted form, written into `buf`.
fn dotted<'b>(id: &Oid<'_>, buf: &'b mut [u8]) -> Option<&'b str> {
    use std::io::Write as _;
    let total = buf.len();
    let mut w = &mut *buf;
    for (i, arc) in id.iter()?.enumerate() {
        if i > 0 {
            w.write_all(b".").ok()?;
        }
        write!(w, "{arc}").ok()?;
    }
    let used = total - w.len();
    std::str::from_utf8(buf.get(..used)?).ok()
}

/// The enterprise number N of an OID under 1.3.6.1.4.1.N.
fn enterprise_of(id: &Oid<'_>) -> Option<u32> {
    let mut arcs = id.iter()?;
    for want in [1, 3, 6, 1, 4, 1] {
        if arcs.next()? != want {
            return None;
        }
    }
    u32::try_from(arcs.next()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Collect;
    use crate::testutil::segments;

    #[test]
    fn sys_descr_as_tshark_shows() {
        // tshark: 138.68.10.203 answers sysDescr.0 "Linux ubuntu-512mb-sfo2-01 4.4.0-31-generic …".
        let mut c = Collect::default();
        for s in segments("z_snmp.pcap") {
            let dir = if s.dport == 161 {
                Dir::ToServer
            } else {
                Dir::ToClient
            };
            dissect(&s.payload, dir, &mut c);
        }
        assert!(
            c.has("Description(Snmp, \"Linux ubuntu-512mb-sfo2-01 4.4.0-31-generic"),
            "{c:?}"
        );
        assert!(c.has("CleartextCredential { proto: Snmp"), "{c:?}");
    }

    #[test]
    fn truncations_are_harmless() {
        let mut c = Collect::default();
        for s in segments("z_snmp.pcap").iter().take(6) {
            for cut in 0..s.payload.len() {
                dissect(&s.payload[..cut], Dir::ToClient, &mut c);
            }
        }
    }
}
