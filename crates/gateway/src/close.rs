//! Why a connection was refused or a session ended: one name per cause, for logs, metrics and what the
//! client is told (a CONNACK or, to an MQTT 5.0 client, a DISCONNECT reason code).

use vouch_mqtt::ReasonCode;

/// Why a connection was refused or a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client sent no certificate.
    NoCertificate,
    /// The client's certificate does not chain to a trusted issuer.
    UnknownIssuer,
    /// The client's certificate has expired (or is not yet valid).
    CertificateExpired,
    /// The client's certificate was refused for another reason.
    BadCertificate,
    /// The TLS handshake failed.
    HandshakeFailed,
    /// The TLS handshake did not finish in time.
    HandshakeTimeout,
    /// The certificate chains to a trusted issuer but Vouch has no record of it.
    CertificateNotOnRecord,
    /// The certificate is revoked.
    CertificateRevoked,
    /// No complete CONNECT arrived in time.
    ConnectTimeout,
    /// A packet broke the protocol's order (no CONNECT first, a second CONNECT, a server's packet).
    ProtocolError,
    /// A packet was malformed.
    MalformedPacket,
    /// A packet was larger than allowed.
    PacketTooLarge,
    /// CONNECT's client id is not the certificate's device.
    ClientIdMismatch,
    /// Not MQTT 3.1, 3.1.1 or 5.0.
    UnsupportedProtocol,
    /// The certificate's device is not in the registry.
    UnknownDevice,
    /// The policy refused the CONNECT (or, for 3.1.1 set to disconnect, a PUBLISH).
    NotAuthorized,
    /// A live session lost its right to continue (lifecycle or policy change).
    AccessWithdrawn,
    /// The broker could not be reached.
    UpstreamUnavailable,
    /// The broker refused the CONNECT or closed the session.
    UpstreamClosed,
    /// The client ended the session (DISCONNECT, or closing the connection).
    ClientClosed,
    /// The client did not read what the gateway sent it (its answers, or deliveries for `write_timeout`).
    SlowClient,
    /// The broker did not read what the gateway forwarded for `write_timeout`.
    SlowUpstream,
    /// The store could not be read.
    StoreUnavailable,
    /// The gateway already holds its maximum of sessions.
    TooManySessions,
    /// Its source already holds its maximum of connections not yet authenticated.
    TooManyPending,
}

impl CloseReason {
    /// Its name in logs and counters.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoCertificate => "no_certificate",
            Self::UnknownIssuer => "unknown_issuer",
            Self::CertificateExpired => "certificate_expired",
            Self::BadCertificate => "bad_certificate",
            Self::HandshakeFailed => "handshake_failed",
            Self::HandshakeTimeout => "handshake_timeout",
            Self::CertificateNotOnRecord => "certificate_not_on_record",
            Self::CertificateRevoked => "certificate_revoked",
            Self::ConnectTimeout => "connect_timeout",
            Self::ProtocolError => "protocol_error",
            Self::MalformedPacket => "malformed_packet",
            Self::PacketTooLarge => "packet_too_large",
            Self::ClientIdMismatch => "client_id_mismatch",
            Self::UnsupportedProtocol => "unsupported_protocol",
            Self::UnknownDevice => "unknown_device",
            Self::NotAuthorized => "not_authorized",
            Self::AccessWithdrawn => "access_withdrawn",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamClosed => "upstream_closed",
            Self::ClientClosed => "client_closed",
            Self::SlowClient => "slow_client",
            Self::SlowUpstream => "slow_upstream",
            Self::StoreUnavailable => "store_unavailable",
            Self::TooManySessions => "too_many_sessions",
            Self::TooManyPending => "too_many_pending",
        }
    }

    /// Whether the gateway ended a live session on its own (the broker is told with a DISCONNECT, so the
    /// client's will is not published, and a 5.0 client is told why).
    pub(crate) fn is_cut(self) -> bool {
        matches!(
            self,
            Self::CertificateRevoked
                | Self::CertificateExpired
                | Self::AccessWithdrawn
                | Self::NotAuthorized
                | Self::ProtocolError
                | Self::MalformedPacket
                | Self::PacketTooLarge
                | Self::SlowClient
                | Self::SlowUpstream
        )
    }

    /// What a 5.0 client is told when its session is cut.
    pub(crate) fn code(self) -> ReasonCode {
        match self {
            Self::NotAuthorized => ReasonCode::NotAuthorized,
            Self::MalformedPacket | Self::ProtocolError => ReasonCode::MalformedPacket,
            Self::PacketTooLarge => ReasonCode::PacketTooLarge,
            _ => ReasonCode::AdministrativeAction,
        }
    }

    /// What CONNACK says when the connection is refused at CONNECT.
    pub(crate) fn connack_code(self) -> ReasonCode {
        match self {
            Self::ClientIdMismatch => ReasonCode::ClientIdentifierNotValid,
            Self::UnsupportedProtocol => ReasonCode::UnsupportedProtocolVersion,
            Self::UpstreamUnavailable | Self::StoreUnavailable => ReasonCode::ServerUnavailable,
            _ => ReasonCode::NotAuthorized,
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
