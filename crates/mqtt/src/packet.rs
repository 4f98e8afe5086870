//! The fields the gateway decides on, read from a framed packet (MQTT 3.1.1 §3 and 5.0 §3).

use crate::frame::{PacketKind, RawPacket};

/// The protocol a client speaks, from its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// MQTT 3.1 (`MQIsdp`, level 3): treated as 3.1.1.
    V31,
    /// MQTT 3.1.1 (level 4).
    V311,
    /// MQTT 5.0 (level 5).
    V5,
}

impl Protocol {
    /// Whether packets carry properties and reason codes.
    pub fn is_v5(self) -> bool {
        self == Self::V5
    }
}

/// Why a packet is malformed (a protocol error: the connection closes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The packet ends before a field it must have.
    #[error("the packet ends early (reading {0})")]
    Truncated(&'static str),
    /// A string is not well-formed UTF-8 or contains U+0000.
    #[error("{0} is not a well-formed MQTT string")]
    BadString(&'static str),
    /// The protocol name or level is not MQTT 3.1, 3.1.1 or 5.0.
    #[error("unsupported protocol `{name}` level {level}")]
    UnsupportedProtocol {
        /// The name sent.
        name: String,
        /// The level sent.
        level: u8,
    },
    /// A reserved bit is set, or flags contradict each other.
    #[error("invalid flags in {0}")]
    BadFlags(&'static str),
    /// A SUBSCRIBE or UNSUBSCRIBE without any topic filter.
    #[error("{0} without a topic filter")]
    NoFilters(&'static str),
    /// Bytes left after the last field.
    #[error("trailing bytes after {0}")]
    Trailing(&'static str),
    /// A packet that needs a non-zero packet identifier has zero.
    #[error("packet identifier 0 in {0}")]
    ZeroPacketId(&'static str),
}

/// CONNECT's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The protocol level.
    pub protocol: Protocol,
    /// The client identifier (may be empty).
    pub client_id: &'a str,
    /// Clean session (3.1.1) / clean start (5.0).
    pub clean_start: bool,
    /// Keep-alive, seconds.
    pub keep_alive: u16,
    /// The will message's topic, if there is a will.
    pub will_topic: Option<&'a str>,
    /// The will's QoS.
    pub will_qos: u8,
    /// Whether the will is retained.
    pub will_retain: bool,
    /// The user name, if sent.
    pub username: Option<&'a str>,
    /// Whether a password was sent (its value is never read).
    pub has_password: bool,
}

/// PUBLISH's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish<'a> {
    /// The topic name (empty in 5.0 when a topic alias stands for it).
    pub topic: &'a str,
    /// 0, 1 or 2.
    pub qos: u8,
    /// The retain flag.
    pub retain: bool,
    /// The duplicate-delivery flag.
    pub dup: bool,
    /// The packet identifier (QoS 1 and 2).
    pub packet_id: Option<u16>,
    /// A 5.0 topic alias, if the packet carries one.
    pub topic_alias: Option<u16>,
    /// The application message.
    pub payload: &'a [u8],
}

/// SUBSCRIBE's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe<'a> {
    /// The packet identifier.
    pub packet_id: u16,
    /// Each topic filter with its requested QoS (0–2).
    pub filters: Vec<(&'a str, u8)>,
}

/// A packet as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Connect.
    Connect(Connect<'a>),
    /// Publish.
    Publish(Publish<'a>),
    /// Subscribe.
    Subscribe(Subscribe<'a>),
    /// Unsubscribe: the packet identifier and the filters.
    Unsubscribe(u16, Vec<&'a str>),
    /// Any other packet: forwarded by type.
    Other(PacketKind),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self, what: &'static str) -> Result<u8, ParseError> {
        let (&b, rest) = self.buf.split_first().ok_or(ParseError::Truncated(what))?;
        self.buf = rest;
        Ok(b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ParseError> {
        let b = self.bytes(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ParseError> {
        if self.buf.len() < n {
            return Err(ParseError::Truncated(what));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// Binary data: a two-byte length, then the bytes.
    fn binary(&mut self, what: &'static str) -> Result<&'a [u8], ParseError> {
        let n = self.u16(what)?;
        self.bytes(usize::from(n), what)
    }

    /// A UTF-8 string (§1.5.4): well-formed, no U+0000.
    fn string(&mut self, what: &'static str) -> Result<&'a str, ParseError> {
        let b = self.binary(what)?;
        let s = std::str::from_utf8(b).map_err(|_| ParseError::BadString(what))?;
        if s.contains('\0') {
            return Err(ParseError::BadString(what));
        }
        Ok(s)
    }

    fn varint(&mut self, what: &'static str) -> Result<usize, ParseError> {
        let mut v = 0usize;
        for i in 0..4 {
            let b = self.u8(what)?;
            v |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(ParseError::BadFlags(what))
    }

    /// 5.0 properties: their bytes, to skip or search.
    fn properties(&mut self, what: &'static str) -> Result<&'a [u8], ParseError> {
        let n = self.varint(what)?;
        self.bytes(n, what)
    }

    fn done(&self, what: &'static str) -> Result<(), ParseError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ParseError::Trailing(what))
        }
    }
}

/// Reads the fields of `raw`. `protocol` is the connection's (from its CONNECT); a CONNECT names its own.
pub fn parse<'a>(raw: &RawPacket<'a>, protocol: Protocol) -> Result<Packet<'a>, ParseError> {
    let mut r = Reader { buf: raw.body };
    match raw.kind {
        PacketKind::Connect => connect(&mut r).map(Packet::Connect),
        PacketKind::Publish => publish(&mut r, raw.flags, protocol).map(Packet::Publish),
        PacketKind::Subscribe => {
            let packet_id = packet_id(&mut r, "SUBSCRIBE")?;
            if protocol.is_v5() {
                r.properties("SUBSCRIBE properties")?;
            }
            let mut filters = Vec::new();
            while !r.buf.is_empty() {
                let f = r.string("a topic filter")?;
                let options = r.u8("subscription options")?;
                let reserved = if protocol.is_v5() {
                    0b1100_0000
                } else {
                    0b1111_1100
                };
                if options & reserved != 0 || options & 0b11 == 3 || (options >> 4) & 0b11 == 3 {
                    return Err(ParseError::BadFlags("subscription options"));
                }
                filters.push((f, options & 0b11));
            }
            if filters.is_empty() {
                return Err(ParseError::NoFilters("SUBSCRIBE"));
            }
            Ok(Packet::Subscribe(Subscribe { packet_id, filters }))
        }
        PacketKind::Unsubscribe => {
            let packet_id = packet_id(&mut r, "UNSUBSCRIBE")?;
            if protocol.is_v5() {
                r.properties("UNSUBSCRIBE properties")?;
            }
            let mut filters = Vec::new();
            while !r.buf.is_empty() {
                filters.push(r.string("a topic filter")?);
            }
            if filters.is_empty() {
                return Err(ParseError::NoFilters("UNSUBSCRIBE"));
            }
            Ok(Packet::Unsubscribe(packet_id, filters))
        }
        other => Ok(Packet::Other(other)),
    }
}

fn packet_id(r: &mut Reader<'_>, what: &'static str) -> Result<u16, ParseError> {
    let id = r.u16(what)?;
    if id == 0 {
        return Err(ParseError::ZeroPacketId(what));
    }
    Ok(id)
}

fn connect<'a>(r: &mut Reader<'a>) -> Result<Connect<'a>, ParseError> {
    let name = r.string("the protocol name")?;
    let level = r.u8("the protocol level")?;
    let protocol = match (name, level) {
        ("MQIsdp", 3) => Protocol::V31,
        ("MQTT", 4) => Protocol::V311,
        ("MQTT", 5) => Protocol::V5,
        _ => {
            return Err(ParseError::UnsupportedProtocol {
                name: name.to_owned(),
                level,
            });
        }
    };
    let flags = r.u8("the connect flags")?;
    let will = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let has_password = flags & 0b0100_0000 != 0;
    let has_username = flags & 0b1000_0000 != 0;
    if flags & 1 != 0
        || will_qos == 3
        || (!will && (will_qos != 0 || will_retain))
        || (protocol != Protocol::V5 && has_password && !has_username)
    {
        return Err(ParseError::BadFlags("CONNECT"));
    }
    let keep_alive = r.u16("the keep-alive")?;
    if protocol.is_v5() {
        r.properties("CONNECT properties")?;
    }
    let client_id = r.string("the client identifier")?;
    let will_topic = if will {
        if protocol.is_v5() {
            r.properties("will properties")?;
        }
        let topic = r.string("the will topic")?;
        r.binary("the will payload")?;
        Some(topic)
    } else {
        None
    };
    let username = if has_username {
        Some(r.string("the user name")?)
    } else {
        None
    };
    if has_password {
        r.binary("the password")?;
    }
    r.done("CONNECT")?;
    Ok(Connect {
        protocol,
        client_id,
        clean_start: flags & 0b10 != 0,
        keep_alive,
        will_topic,
        will_qos,
        will_retain,
        username,
        has_password,
    })
}

fn publish<'a>(
    r: &mut Reader<'a>,
    flags: u8,
    protocol: Protocol,
) -> Result<Publish<'a>, ParseError> {
    let qos = (flags >> 1) & 0b11;
    if qos == 0 && flags & 0b1000 != 0 {
        return Err(ParseError::BadFlags("PUBLISH (DUP set on QoS 0)"));
    }
    let topic = r.string("the topic name")?;
    let packet_id = if qos > 0 {
        Some(packet_id(r, "PUBLISH")?)
    } else {
        None
    };
    let mut topic_alias = None;
    if protocol.is_v5() {
        let mut props = Reader {
            buf: r.properties("PUBLISH properties")?,
        };
        while !props.buf.is_empty() {
            let id = props.varint("a property identifier")?;
            match id {
                // Payload format indicator.
                0x01 => {
                    props.u8("a property")?;
                }
                // Message expiry interval.
                0x02 => {
                    props.bytes(4, "a property")?;
                }
                // Content type, response topic.
                0x03 | 0x08 => {
                    props.string("a property")?;
                }
                // Correlation data.
                0x09 => {
                    props.binary("a property")?;
                }
                // Subscription identifier (server to client only, but skip it).
                0x0b => {
                    props.varint("a property")?;
                }
                0x23 => topic_alias = Some(props.u16("a topic alias")?),
                // User property: a string pair.
                0x26 => {
                    props.string("a property")?;
                    props.string("a property")?;
                }
                _ => return Err(ParseError::BadFlags("PUBLISH properties")),
            }
        }
    } else if topic.is_empty() {
        return Err(ParseError::BadString("the topic name"));
    }
    Ok(Publish {
        topic,
        qos,
        retain: flags & 1 != 0,
        dup: flags & 0b1000 != 0,
        packet_id,
        topic_alias,
        payload: r.buf,
    })
}
