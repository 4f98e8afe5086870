//! Packet boundaries: the fixed header (type, flags, Remaining Length) of MQTT §2.1, checked before a byte of
//! the body is buffered.

/// The largest Remaining Length MQTT can encode (four 7-bit groups).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// A control packet's type (MQTT §2.1.2; AUTH is 5.0 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketKind {
    /// Client asks to connect.
    Connect,
    /// Server answers CONNECT.
    Connack,
    /// A message.
    Publish,
    /// QoS 1 acknowledgement.
    Puback,
    /// QoS 2, part 1.
    Pubrec,
    /// QoS 2, part 2.
    Pubrel,
    /// QoS 2, part 3.
    Pubcomp,
    /// Client subscribes.
    Subscribe,
    /// Server answers SUBSCRIBE.
    Suback,
    /// Client unsubscribes.
    Unsubscribe,
    /// Server answers UNSUBSCRIBE.
    Unsuback,
    /// Keep-alive ping.
    Pingreq,
    /// Keep-alive answer.
    Pingresp,
    /// Orderly close.
    Disconnect,
    /// Enhanced authentication (5.0).
    Auth,
}

impl PacketKind {
    fn from_nibble(n: u8) -> Option<Self> {
        use PacketKind::*;
        Some(match n {
            1 => Connect,
            2 => Connack,
            3 => Publish,
            4 => Puback,
            5 => Pubrec,
            6 => Pubrel,
            7 => Pubcomp,
            8 => Subscribe,
            9 => Suback,
            10 => Unsubscribe,
            11 => Unsuback,
            12 => Pingreq,
            13 => Pingresp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// The flags MQTT requires for this type (§2.1.3), or `None` for PUBLISH (whose flags carry meaning).
    fn required_flags(self) -> Option<u8> {
        match self {
            Self::Publish => None,
            Self::Pubrel | Self::Subscribe | Self::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }
}

/// One whole packet, borrowed from the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPacket<'a> {
    /// Its type.
    pub kind: PacketKind,
    /// The fixed header's low nibble.
    pub flags: u8,
    /// The variable header and payload.
    pub body: &'a [u8],
    /// The whole packet as received (what is forwarded).
    pub bytes: &'a [u8],
}

/// Why the stream is not MQTT (the connection must close).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Packet type 0 is reserved.
    #[error("packet type 0 is reserved")]
    ReservedType,
    /// The fixed header's flags are not those MQTT requires for the type.
    #[error("invalid fixed-header flags {flags:#06b} for {kind:?}")]
    BadFlags {
        /// The packet's type.
        kind: PacketKind,
        /// The flags received.
        flags: u8,
    },
    /// PUBLISH with QoS 3.
    #[error("PUBLISH with QoS 3")]
    BadQos,
    /// The Remaining Length runs over four bytes.
    #[error("the Remaining Length is longer than four bytes")]
    LengthEncoding,
    /// The packet is larger than this connection accepts.
    #[error("a packet of {len} bytes is larger than the {max} accepted")]
    TooLarge {
        /// The packet's size (fixed header included).
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Finds packet boundaries in a byte stream, refusing a packet over `max_packet` bytes as soon as its header
/// says so (before its body is read).
#[derive(Debug, Clone, Copy)]
pub struct Framer {
    max_packet: usize,
}

impl Framer {
    /// A framer accepting packets up to `max_packet` bytes (fixed header included).
    pub fn new(max_packet: usize) -> Self {
        Self { max_packet }
    }

    /// The first whole packet at the start of `buf`; `Ok(None)` if more bytes are needed.
    pub fn next<'a>(&self, buf: &'a [u8]) -> Result<Option<RawPacket<'a>>, FrameError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let kind = PacketKind::from_nibble(first >> 4).ok_or(FrameError::ReservedType)?;
        let flags = first & 0x0f;
        match kind.required_flags() {
            Some(required) if flags != required => {
                return Err(FrameError::BadFlags { kind, flags });
            }
            None if (flags >> 1) & 0b11 == 0b11 => return Err(FrameError::BadQos),
            _ => {}
        }
        let mut len: usize = 0;
        let mut header = 1;
        loop {
            if header == 5 {
                return Err(FrameError::LengthEncoding);
            }
            let Some(&b) = buf.get(header) else {
                return Ok(None);
            };
            len |= usize::from(b & 0x7f) << (7 * (header - 1));
            header += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        let total = header + len;
        if total > self.max_packet {
            return Err(FrameError::TooLarge {
                len: total,
                max: self.max_packet,
            });
        }
        let Some(bytes) = buf.get(..total) else {
            return Ok(None);
        };
        Ok(Some(RawPacket {
            kind,
            flags,
            body: &bytes[header..],
            bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_length_per_the_specification() {
        // §1.5.5's table: 0, 127, 128, 16,383, 16,384, 2,097,151, 2,097,152, 268,435,455.
        let f = Framer::new(usize::MAX);
        for (enc, len) in [
            (vec![0x00], 0usize),
            (vec![0x7f], 127),
            (vec![0x80, 0x01], 128),
            (vec![0xff, 0x7f], 16_383),
            (vec![0x80, 0x80, 0x01], 16_384),
            (vec![0xff, 0xff, 0x7f], 2_097_151),
            (vec![0x80, 0x80, 0x80, 0x01], 2_097_152),
            (vec![0xff, 0xff, 0xff, 0x7f], MAX_REMAINING_LENGTH),
        ] {
            let mut buf = vec![0x30];
            buf.extend(&enc);
            // Not all there yet: asks for more.
            if len > 0 {
                assert_eq!(f.next(&buf), Ok(None), "{len}");
            }
            if len <= 16_384 {
                buf.resize(1 + enc.len() + len, 0);
                let p = f.next(&buf).unwrap().unwrap();
                assert_eq!((p.body.len(), p.bytes.len()), (len, buf.len()));
            }
        }
        assert_eq!(
            f.next(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(FrameError::LengthEncoding)
        );
    }

    #[test]
    fn limits_and_flags_are_checked_before_the_body() {
        let f = Framer::new(100);
        // A 1 MB PUBLISH is refused from its header alone.
        assert!(matches!(
            f.next(&[0x30, 0x80, 0x80, 0x40]),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(f.next(&[0x00, 0x00]), Err(FrameError::ReservedType));
        assert_eq!(f.next(&[0x36, 0x00]), Err(FrameError::BadQos));
        assert!(matches!(
            f.next(&[0x80, 0x00]),
            Err(FrameError::BadFlags { .. })
        ));
        assert!(matches!(
            f.next(&[0x11, 0x00]),
            Err(FrameError::BadFlags { .. })
        ));
        assert!(f.next(&[0x82, 0x00]).unwrap().is_some());
        assert_eq!(f.next(&[]), Ok(None));
        // Two packets back to back: the first is returned alone.
        let p = f.next(&[0xc0, 0x00, 0xe0, 0x00]).unwrap().unwrap();
        assert_eq!((p.kind, p.bytes.len()), (PacketKind::Pingreq, 2));
    }
}
