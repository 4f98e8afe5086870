//! TLS for the EST listener: the server configuration and the peer (`ConnectInfo<TlsPeer>`: the client's
//! certificate chain travels with the connection to the handlers). EST is served by
//! [`crate::serve::HttpServer`] only (it bounds connections, handshakes and time per source), in `vouch
//! serve`, the tests and the benchmark alike.

use std::net::SocketAddr;
use std::sync::Arc;

/// Who is at the other end of a TLS connection.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The client's address.
    pub remote: SocketAddr,
    /// The certificate chain the client authenticated with (leaf first), empty if it sent none.
    pub chain: Arc<Vec<Vec<u8>>>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificates or key were refused.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3) presenting `chain` (leaf first) with
/// `key_pkcs8`, and asking clients for a certificate that chains to one of `client_roots`. A client without a
/// certificate is let in: each route decides whether it needs one.
pub fn server_config(
    chain: Vec<Vec<u8>>,
    key_pkcs8: Vec<u8>,
    client_roots: &[Vec<u8>],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    vouch_tls::server_config(
        chain,
        key_pkcs8,
        client_roots,
        vouch_tls::ClientAuth::Optional,
    )
    .map_err(|e| TlsError::Config(e.to_string()))
}
