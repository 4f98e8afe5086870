//! SNMP (v1, v2c, v3): who is an agent and who a manager, the agent's sysDescr and sysName, and community
//! strings sent in clear text. Decoding is `snmp-parser`'s.

use snmp_parser::parse_snmp_generic_message;
use snmp_parser::snmp::SnmpMessage;
use snmp_parser::{ObjectSyntax, PduType, SnmpGenericMessage, SnmpPdu, VarBindValue};

use crate::facts::{Dir, Fact, Proto, Sink, Source};

/// sysDescr.0 (1.3.6.1.2.1.1.1.0), as its DER content octets.
const SYS_DESCR: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 1, 0];
/// sysName.0 (1.3.6.1.2.1.1.5.0).
const SYS_NAME: &[u8] = &[0x2b, 6, 1, 2, 1, 1, 5, 0];

/// Reads one SNMP message (UDP 161, or 162 for traps).
pub fn dissect(payload: &[u8], dir: Dir, out: &mut dyn Sink) {
    let Ok((_, msg)) = parse_snmp_generic_message(payload) else {
        return;
    };
    out.fact(dir.server(), Fact::Serves(Proto::Snmp));
    out.fact(dir.client(), Fact::Uses(Proto::Snmp));
    let m: &SnmpMessage = match &msg {
        SnmpGenericMessage::V1(m) | SnmpGenericMessage::V2(m) => m,
        SnmpGenericMessage::V3(_) => return,
    };
    let from_agent = match &m.pdu {
        SnmpPdu::Generic(p) => p.pdu_type == PduType::Response,
        SnmpPdu::TrapV1(_) => true,
        SnmpPdu::Bulk(_) => false,
    };
    if !from_agent {
        // A v1/v2c request carries the community, which is a password, in clear text.
        out.fact(
            dir.client(),
            Fact::CleartextCredential {
                proto: Proto::Snmp,
                user: None,
            },
        );
        return;
    }
    for var in m.vars_iter() {
        let VarBindValue::Value(ObjectSyntax::String(bytes)) = &var.val else {
            continue;
        };
        let Some(text) = crate::proto::dhcp::text(bytes) else {
            continue;
        };
        let oid = var.oid.as_bytes();
        if oid == SYS_DESCR {
            out.fact(dir.server(), Fact::Description(Source::Snmp, text));
        } else if oid == SYS_NAME {
            out.fact(dir.server(), Fact::Hostname(Source::Snmp, text));
        }
    }
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
