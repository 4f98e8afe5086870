//! Reading capture files (pcap and pcapng, any byte order) frame by frame, without loading them whole.

use std::io::Read;

use pcap_parser::{Linktype, PcapBlockOwned, PcapError, create_reader, pcapng::Block};

/// The buffer a capture is read through; grown up to [`MAX_BUFFER`] for a frame that does not fit.
const BUFFER: usize = 1 << 20;
/// The largest buffer a single frame may need (pcapng blocks are length-prefixed with 32 bits).
const MAX_BUFFER: usize = 64 << 20;

/// The link layers discovery decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Ethernet II / IEEE 802.3 (DLT 1).
    Ethernet,
    /// Linux "cooked" capture (DLT 113), e.g. `tcpdump -i any`.
    LinuxSll,
    /// Raw IPv4 or IPv6 without a link header (DLT 12, 101, 228, 229).
    RawIp,
    /// BSD loopback with a 4-byte address family header (DLT 0, 108).
    Loopback,
}

impl Link {
    /// The link layer for a capture's link type, if discovery decodes it.
    pub fn from_linktype(l: Linktype) -> Option<Self> {
        Self::from_dlt(l.0)
    }

    /// The link layer for a libpcap data-link type (DLT) number, if discovery decodes it.
    pub fn from_dlt(dlt: i32) -> Option<Self> {
        match dlt {
            1 => Some(Self::Ethernet),
            113 => Some(Self::LinuxSll),
            12 | 14 | 101 | 228 | 229 => Some(Self::RawIp),
            0 | 108 => Some(Self::Loopback),
            _ => None,
        }
    }
}

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time, microseconds since the Unix epoch.
    pub ts_micros: i64,
    /// The link layer, or `None` for a link type discovery does not decode (the frame is still counted).
    pub link: Option<Link>,
    /// The frame's length on the wire (may exceed `data` when the capture was cut at a snap length).
    pub wire_len: u32,
    /// The bytes captured.
    pub data: &'a [u8],
}

/// Why a capture could not be read to its end. Frames before `offset` were delivered.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be read.
    #[error("cannot read the capture: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start with a pcap or pcapng header.
    #[error("not a pcap or pcapng capture (no file header at offset 0)")]
    NotACapture,
    /// The file ends in the middle of a frame.
    #[error(
        "capture truncated at byte offset {offset}: the file ends inside a frame ({frames} frames read before it)"
    )]
    Truncated {
        /// Where the incomplete frame starts.
        offset: u64,
        /// Frames read before it.
        frames: u64,
    },
    /// A frame or block header is not valid.
    #[error("capture corrupt at byte offset {offset}: {detail} ({frames} frames read before it)")]
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
        /// What is wrong with it.
        detail: String,
        /// Frames read before it.
        frames: u64,
    },
}

impl CaptureError {
    /// The byte offset the error was found at, when it is about a place in the file.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Truncated { offset, .. } | Self::Corrupt { offset, .. } => Some(*offset),
            Self::NotACapture => Some(0),
            Self::Io(_) => None,
        }
    }
}

/// What reading a capture saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Frames delivered.
    pub frames: u64,
    /// Bytes of the file consumed.
    pub file_bytes: u64,
}

/// pcapng timestamps depend on the interface that captured them.
#[derive(Clone, Copy)]
struct Interface {
    link: Option<Link>,
    resolution: u64,
    offset: i64,
}

/// Reads every frame of a pcap or pcapng stream, calling `each` for it.
///
/// On a truncated or corrupt file the frames before the bad one have been delivered, and the error names the
/// byte offset of the bad one.
pub fn read_capture<R: Read + Send>(
    input: R,
    mut each: impl FnMut(Frame<'_>),
) -> Result<ReadStats, CaptureError> {
    let mut reader = match create_reader(BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::Eof) => return Ok(ReadStats::default()),
        Err(PcapError::ReadError) => {
            return Err(CaptureError::Io(std::io::Error::other("read failed")));
        }
        Err(_) => return Err(CaptureError::NotACapture),
    };
    let mut stats = ReadStats::default();
    let mut legacy: Option<(Option<Link>, u64)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut buffer = BUFFER;
    loop {
        let offset = reader.consumed() as u64;
        match reader.next() {
            Ok((len, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        let scale = if h.is_nanosecond_precision() { 1000 } else { 1 };
                        legacy = Some((Link::from_linktype(h.network), scale));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (link, scale) = legacy.unwrap_or((None, 1));
                        let ts =
                            i64::from(b.ts_sec) * 1_000_000 + i64::from(b.ts_usec) / scale as i64;
                        let data = b.data.get(..b.caplen as usize).unwrap_or(b.data);
                        stats.frames += 1;
                        each(Frame {
                            ts_micros: ts,
                            link,
                            wire_len: b.origlen,
                            data,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            link: Link::from_linktype(idb.linktype),
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: idb.ts_offset(),
                        })
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some(ifc) = interfaces.get(epb.if_id as usize).copied() else {
                            return Err(CaptureError::Corrupt {
                                offset,
                                detail: format!(
                                    "packet names interface {} but only {} were described",
                                    epb.if_id,
                                    interfaces.len()
                                ),
                                frames: stats.frames,
                            });
                        };
                        let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let micros = if ifc.resolution >= 1_000_000 {
                            raw / (ifc.resolution / 1_000_000)
                        } else {
                            raw.saturating_mul(1_000_000 / ifc.resolution)
                        };
                        let ts =
                            (micros as i64).saturating_add(ifc.offset.saturating_mul(1_000_000));
                        let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                        stats.frames += 1;
                        each(Frame {
                            ts_micros: ts,
                            link: ifc.link,
                            wire_len: epb.origlen,
                            data,
                        });
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let link = interfaces.first().and_then(|i| i.link);
                        stats.frames += 1;
                        each(Frame {
                            ts_micros: 0,
                            link,
                            wire_len: spb.origlen,
                            data: spb.data,
                        });
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(len);
                stats.file_bytes = reader.consumed() as u64;
            }
            Err(PcapError::Eof) => return Ok(stats),
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    return Err(CaptureError::Truncated {
                        offset,
                        frames: stats.frames,
                    });
                }
                reader
                    .refill()
                    .map_err(|_| CaptureError::Io(std::io::Error::other("read failed")))?;
            }
            Err(PcapError::UnexpectedEof) => {
                return Err(CaptureError::Truncated {
                    offset,
                    frames: stats.frames,
                });
            }
            Err(PcapError::BufferTooSmall) => {
                buffer *= 2;
                if buffer > MAX_BUFFER || !reader.grow(buffer) {
                    return Err(CaptureError::Corrupt {
                        offset,
                        detail: format!("a record larger than {} MiB", MAX_BUFFER >> 20),
                        frames: stats.frames,
                    });
                }
                reader
                    .refill()
                    .map_err(|_| CaptureError::Io(std::io::Error::other("read failed")))?;
            }
            Err(PcapError::ReadError) => {
                return Err(CaptureError::Io(std::io::Error::other("read failed")));
            }
            Err(e) => {
                let detail = match e {
                    PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
                        format!("invalid record ({})", kind.description())
                    }
                    other => format!("{other:?}"),
                };
                return Err(CaptureError::Corrupt {
                    offset,
                    detail,
                    frames: stats.frames,
                });
            }
        }
    }
}
