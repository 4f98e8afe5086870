//! What a dissector may say about the hosts in a packet.
//!
//! Dissectors do no bookkeeping: they read one payload and report [`Fact`]s about the packet's sender or
//! receiver through a [`Sink`]. Facts borrow from the packet, so a dissector need not allocate; the inventory
//! copies only what it has not seen before.

use serde::{Deserialize, Serialize};

/// Which host of the packet a fact is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The host that sent the packet.
    Src,
    /// The host the packet was sent to.
    Dst,
    /// The host with this hardware address, wherever it is (a DHCP client named in the message, which may
    /// have come through a relay and has no address of its own yet).
    Hw(vouch_types::MacAddr),
}

/// Which way a packet travels within its flow, when that is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the side that opened the conversation (TCP SYN, first UDP datagram) to the other.
    ToServer,
    /// From the side that was contacted back to the one that opened it.
    ToClient,
}

impl Dir {
    /// The subject that is the server in a packet travelling this way.
    pub const fn server(self) -> Subject {
        match self {
            Self::ToServer => Subject::Dst,
            Self::ToClient => Subject::Src,
        }
    }

    /// The subject that is the client in a packet travelling this way.
    pub const fn client(self) -> Subject {
        match self {
            Self::ToServer => Subject::Src,
            Self::ToClient => Subject::Dst,
        }
    }
}

/// A protocol discovery recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// Address resolution (who owns which IPv4 address on the segment).
    Arp,
    /// DHCP (IPv4 address assignment).
    Dhcp,
    /// DNS.
    Dns,
    /// Multicast DNS (service announcements on the local link).
    Mdns,
    /// NetBIOS name service.
    Nbns,
    /// SSDP (UPnP discovery).
    Ssdp,
    /// HTTP in clear text.
    Http,
    /// TLS (any version).
    Tls,
    /// SSH.
    Ssh,
    /// Telnet.
    Telnet,
    /// FTP.
    Ftp,
    /// SNMP (v1, v2c, v3).
    Snmp,
    /// NTP.
    Ntp,
    /// SMB / CIFS.
    Smb,
    /// MQTT over plain TCP.
    Mqtt,
    /// CoAP.
    Coap,
    /// AMQP.
    Amqp,
    /// Link Layer Discovery Protocol.
    Lldp,
    /// Cisco Discovery Protocol.
    Cdp,
    /// Modbus/TCP.
    Modbus,
    /// DNP3 over TCP or UDP.
    Dnp3,
    /// Siemens S7comm (classic, protocol id 0x32).
    S7comm,
    /// Siemens S7comm-plus (S7-1200/1500, protocol id 0x72).
    S7commPlus,
    /// ISO-on-TCP (TPKT/COTP) carrying something else, e.g. IEC 61850 MMS.
    Cotp,
    /// IEC 61850 MMS.
    Mms,
    /// IEC 61850 GOOSE.
    Goose,
    /// EtherNet/IP (CIP encapsulation).
    Enip,
    /// BACnet/IP.
    Bacnet,
    /// OPC UA binary.
    OpcUa,
    /// IEC 60870-5-104.
    Iec104,
    /// Profinet real-time (cyclic data).
    ProfinetRt,
    /// Profinet DCP (discovery and configuration).
    ProfinetDcp,
    /// WS-Discovery (SOAP over UDP: ONVIF cameras, WSD printers, Windows hosts).
    WsDiscovery,
    /// HART-IP (HART over TCP/UDP: WirelessHART gateways, multiplexers).
    HartIp,
    /// KNXnet/IP (building automation).
    Knx,
    /// Omron FINS (UDP and TCP).
    Fins,
    /// PTP, IEEE 1588 precision time (UDP 319/320 and Ethernet).
    Ptp,
    /// Ubiquiti discovery (UniFi, airMAX, EdgeMAX).
    Ubiquiti,
    /// TP-Link smart home (Kasa) local protocol.
    TplinkSmarthome,
    /// Tuya local protocol (broadcasts on UDP 6666/6667, control on TCP 6668).
    Tuya,
    /// DLMS/COSEM over IP (IEC 62056-47 wrapper): smart meters.
    Dlms,
    /// Profinet IO context management (DCE/RPC on UDP 34964).
    ProfinetIo,
    /// IEEE C37.118 synchrophasors (PMU to PDC).
    Synphasor,
    /// Beckhoff ADS/AMS (TwinCAT) and its router discovery.
    Ads,
    /// GE Ethernet Global Data.
    Egd,
    /// DDS interoperability protocol (RTPS): ROS 2, robots, vehicles.
    Rtps,
    /// EtherNet/IP implicit I/O (cyclic CIP data on UDP 2222).
    EnipIo,
}

impl Proto {
    /// The protocol's name as shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Arp => "arp",
            Self::Dhcp => "dhcp",
            Self::Dns => "dns",
            Self::Mdns => "mdns",
            Self::Nbns => "nbns",
            Self::Ssdp => "ssdp",
            Self::Http => "http",
            Self::Tls => "tls",
            Self::Ssh => "ssh",
            Self::Telnet => "telnet",
            Self::Ftp => "ftp",
            Self::Snmp => "snmp",
            Self::Ntp => "ntp",
            Self::Smb => "smb",
            Self::Mqtt => "mqtt",
            Self::Coap => "coap",
            Self::Amqp => "amqp",
            Self::Lldp => "lldp",
            Self::Cdp => "cdp",
            Self::Modbus => "modbus",
            Self::Dnp3 => "dnp3",
            Self::S7comm => "s7comm",
            Self::S7commPlus => "s7comm-plus",
            Self::Cotp => "cotp",
            Self::Mms => "mms",
            Self::Goose => "goose",
            Self::Enip => "enip",
            Self::Bacnet => "bacnet",
            Self::OpcUa => "opc-ua",
            Self::Iec104 => "iec104",
            Self::ProfinetRt => "profinet-rt",
            Self::ProfinetDcp => "profinet-dcp",
            Self::WsDiscovery => "ws-discovery",
            Self::HartIp => "hart-ip",
            Self::Knx => "knx",
            Self::Fins => "fins",
            Self::Ptp => "ptp",
            Self::Ubiquiti => "ubiquiti",
            Self::TplinkSmarthome => "tplink-smarthome",
            Self::Tuya => "tuya",
            Self::Dlms => "dlms",
            Self::ProfinetIo => "profinet-io",
            Self::Synphasor => "synphasor",
            Self::Ads => "ads",
            Self::Egd => "egd",
            Self::Rtps => "rtps",
            Self::EnipIo => "enip-io",
        }
    }

    /// Whether this is an industrial (OT) protocol.
    pub const fn is_ot(self) -> bool {
        matches!(
            self,
            Self::Modbus
                | Self::Dnp3
                | Self::S7comm
                | Self::S7commPlus
                | Self::Cotp
                | Self::Mms
                | Self::Goose
                | Self::Enip
                | Self::Bacnet
                | Self::OpcUa
                | Self::Iec104
                | Self::ProfinetRt
                | Self::ProfinetDcp
                | Self::HartIp
                | Self::Knx
                | Self::Fins
                | Self::Dlms
                | Self::ProfinetIo
                | Self::Synphasor
                | Self::Ads
                | Self::Egd
                | Self::Rtps
                | Self::EnipIo
        )
    }
}

/// Where a name or an identity field came from, kept as evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// DHCP options (12 host name, 60 vendor class, 81 FQDN).
    Dhcp,
    /// Multicast DNS records.
    Mdns,
    /// NetBIOS name service.
    Nbns,
    /// SSDP headers.
    Ssdp,
    /// HTTP headers.
    Http,
    /// SNMP system group.
    Snmp,
    /// LLDP TLVs.
    Lldp,
    /// CDP TLVs.
    Cdp,
    /// EtherNet/IP ListIdentity.
    Enip,
    /// S7comm system status list (module identification).
    S7,
    /// BACnet I-Am / device object.
    Bacnet,
    /// Profinet DCP.
    ProfinetDcp,
    /// OPC UA.
    OpcUa,
    /// IEC 61850 (MMS identify, GOOSE).
    Iec61850,
    /// MQTT CONNECT.
    Mqtt,
    /// Modbus/TCP.
    Modbus,
    /// DNP3.
    Dnp3,
    /// IEC 60870-5-104.
    Iec104,
    /// TLS handshake.
    Tls,
    /// SSH banner.
    Ssh,
    /// FTP or Telnet banners.
    Banner,
    /// WS-Discovery Hello and ProbeMatches (types, ONVIF scopes, XAddrs).
    WsDiscovery,
    /// HART-IP command 0, 13 and 20 answers.
    HartIp,
    /// KNXnet/IP device information blocks.
    Knx,
    /// Omron FINS controller data read.
    Fins,
    /// PTP announce and source port identity.
    Ptp,
    /// Ubiquiti discovery TLVs.
    Ubiquiti,
    /// TP-Link smart home get_sysinfo answers.
    TpLink,
    /// Tuya discovery broadcasts.
    Tuya,
    /// DLMS/COSEM association (system titles).
    Dlms,
    /// Profinet IO context management (Connect, I&M records).
    ProfinetIo,
    /// IEEE C37.118 configuration and header frames.
    Synphasor,
    /// Beckhoff ADS (device info, router discovery).
    Ads,
    /// GE Ethernet Global Data (producer ids).
    Egd,
    /// DDS/RTPS participant announcements (SPDP).
    Rtps,
}

/// The kind of state-changing industrial command a client sent: the domain's own, so that a command
/// discovery saw reaches the trust engine's sightings as what it is.
pub use vouch_types::OtCommand as CommandKind;

/// One thing a dissector learned from a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact<'a> {
    /// The subject speaks this protocol as a server (it was contacted on it, or answered).
    Serves(Proto),
    /// The subject speaks this protocol as a client (it sent requests).
    Uses(Proto),
    /// The subject was leased (DHCP) or claims (ARP) this IPv4 address.
    Lease(std::net::Ipv4Addr),
    /// A host name the subject announced for itself.
    Hostname(Source, &'a str),
    /// The manufacturer's name as the device states it.
    Vendor(Source, &'a str),
    /// A numeric vendor identifier from an industrial registry (ODVA, BACnet, Profinet).
    VendorId(Source, u32),
    /// The product or model name.
    Model(Source, &'a str),
    /// The firmware or software version.
    Firmware(Source, &'a str),
    /// The hardware serial number.
    Serial(Source, &'a str),
    /// A free-text self description (SNMP sysDescr, LLDP system description, CDP software version).
    Description(Source, &'a str),
    /// A platform or device-type string (CDP platform, ENIP device type, LLDP capabilities).
    Platform(Source, &'a str),
    /// DHCP option 55, the parameter request list (an OS fingerprint).
    DhcpParams(&'a [u8]),
    /// DHCP option 60, the vendor class identifier.
    VendorClass(&'a str),
    /// A service the subject announces (mDNS service type, SSDP `ST`/`NT`).
    Service(Source, &'a str),
    /// An HTTP User-Agent (or SSDP/UPnP `SERVER`-like client string) the subject sent.
    UserAgent(&'a str),
    /// An HTTP `Server` header the subject sent.
    HttpServer(&'a str),
    /// A TLS server name the subject asked for.
    Sni(&'a str),
    /// The JA3 hash of a TLS ClientHello the subject sent (32 lowercase hex digits).
    Ja3(&'a str),
    /// The JA4 fingerprint of a TLS ClientHello the subject sent.
    Ja4(&'a str),
    /// The DER of the certificate the subject presented as a TLS server (TLS 1.2 and earlier send it in the
    /// clear); kept as its SHA-256 fingerprint, which the registry matches devices by.
    ServerCertificate(&'a [u8]),
    /// An SSH software banner.
    SshBanner(&'a str),
    /// A Modbus unit identifier the subject answers for.
    ModbusUnit(u8),
    /// A Modbus function code the subject was sent (or used, for a client).
    ModbusFunction(u8),
    /// A DNP3 link-layer address the subject uses.
    Dnp3Address(u16),
    /// A DNP3 application function code seen in the subject's traffic.
    Dnp3Function(u8),
    /// An IEC 60870-5-104 common address of ASDU the subject answers for.
    Iec104Address(u16),
    /// An IEC 60870-5-104 type identification seen in the subject's traffic.
    Iec104Type(u8),
    /// An OPC UA endpoint URL.
    OpcUaEndpoint(&'a str),
    /// An OPC UA security policy URI.
    OpcUaSecurityPolicy(&'a str),
    /// A BACnet device object instance.
    BacnetInstance(u32),
    /// A Profinet station name (DCP NameOfStation).
    StationName(&'a str),
    /// An MQTT client identifier the subject connected with.
    MqttClientId(&'a str),
    /// An IEC 61850 logical device / GOOSE control block reference.
    Iec61850Ref(&'a str),
    /// The subject sent a credential in clear text (the secret itself is never kept).
    CleartextCredential {
        /// The protocol it travelled in.
        proto: Proto,
        /// The user name, if the protocol carries one.
        user: Option<&'a str>,
    },
    /// The subject sent a state-changing industrial command to the other host of the packet.
    Command {
        /// The protocol it travelled in.
        proto: Proto,
        /// What the command does.
        kind: CommandKind,
        /// The function in the protocol's own terms, e.g. "write multiple registers (16)".
        detail: &'static str,
    },
    /// A URL where the subject offers its description or services (SSDP `LOCATION`, WS-Discovery `XAddrs`).
    Url(Source, &'a str),
    /// An identifier the device gives itself that outlives its addresses (a UPnP or WS-Discovery UUID, a PTP
    /// clock identity, a KNX individual address).
    DeviceId(Source, &'a str),
    /// Where the device says it is installed (SNMP sysLocation).
    Location(Source, &'a str),
    /// Who the device says looks after it (SNMP sysContact).
    Contact(Source, &'a str),
    /// The vendor's object identifier of the device's kind, dotted (SNMP sysObjectID).
    ObjectId(Source, &'a str),
    /// An SNMPv3 authoritative engine id the subject answers as, in hex.
    EngineId(&'a str),
}

/// Where dissectors put what they learn.
pub trait Sink {
    /// Records `fact` about `who`.
    fn fact(&mut self, who: Subject, fact: Fact<'_>);
}

/// A sink that keeps facts as owned text, for tests and the fuzz targets.
#[derive(Debug, Default)]
pub struct Collect(pub Vec<(Subject, String)>);

impl Sink for Collect {
    fn fact(&mut self, who: Subject, fact: Fact<'_>) {
        self.0.push((who, format!("{fact:?}")));
    }
}

impl Collect {
    /// Whether any fact's debug text contains `needle`.
    pub fn has(&self, needle: &str) -> bool {
        self.0.iter().any(|(_, f)| f.contains(needle))
    }
}
