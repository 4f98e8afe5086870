//! The server side of TLS, written once for every listener (the MQTT gateway, EST): which protocol versions
//! and provider, how client certificates are checked, and the server certificate a listener presents.
//!
//! Each listener gets a certificate fresh from Vouch's issuing CA at start, its key in memory only (a restart
//! makes a new one), naming the configured DNS names and the address it listens on — both loopback addresses
//! when it listens on all of them, so a local client can verify it either way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use vouch_pki::IssuingCa;
use vouch_types::Timestamp;

/// Days a listener's fresh server certificate is valid: longer than any run between restarts is likely to
/// be, short enough that a leaked one expires soon.
pub const SERVER_CERT_DAYS: u32 = 30;

/// Why a TLS server configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A certificate, key or client root was refused by rustls.
    #[error("TLS configuration: {0}")]
    Rustls(String),
}

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// The handshake fails without a certificate chaining to a client root (the gateway: devices only).
    Required,
    /// A client without a certificate is let in and each route decides (EST: `simpleenroll` with a
    /// bootstrap token); one that presents a certificate must still chain to a client root.
    Optional,
}

/// A server's chain (leaf first) and its PKCS#8 key.
pub struct ServerIdentity {
    /// The leaf, then the issuing CA.
    pub chain: Vec<Vec<u8>>,
    /// The leaf's key (PKCS#8 DER), in memory only.
    pub key_pkcs8: Vec<u8>,
}

/// The addresses a server certificate names for a listener on `listen`.
pub fn certificate_ips(listen: SocketAddr) -> Vec<IpAddr> {
    if listen.ip().is_unspecified() {
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
    } else {
        vec![listen.ip()]
    }
}

/// A server certificate fresh from `ca` for a listener on `listen` named `dns_names`.
pub fn fresh_server_identity(
    ca: &IssuingCa,
    dns_names: &[String],
    listen: SocketAddr,
    now: Timestamp,
) -> Result<ServerIdentity, vouch_pki::PkiError> {
    let (leaf, key_pkcs8) =
        ca.issue_server(dns_names, &certificate_ips(listen), SERVER_CERT_DAYS, now)?;
    Ok(ServerIdentity {
        chain: vec![leaf, ca.cert_der().to_vec()],
        key_pkcs8,
    })
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, rustls's safe defaults) presenting `chain`
/// (leaf first) with `key_pkcs8`, checking client certificates against `client_roots` as `auth` says.
pub fn server_config(
    chain: Vec<Vec<u8>>,
    key_pkcs8: Vec<u8>,
    client_roots: &[Vec<u8>],
    auth: ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let err = |e: &dyn std::fmt::Display| TlsConfigError::Rustls(e.to_string());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for r in client_roots {
        roots
            .add(CertificateDer::from(r.clone()))
            .map_err(|e| err(&e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let verifier = match auth {
        ClientAuth::Required => verifier,
        ClientAuth::Optional => verifier.allow_unauthenticated(),
    }
    .build()
    .map_err(|e| err(&e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pkcs8)),
        )
        .map_err(|e| err(&e))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_listener_on_every_address_is_named_by_both_loopbacks() {
        assert_eq!(
            certificate_ips("0.0.0.0:8883".parse().unwrap()),
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(
            certificate_ips("[::]:8443".parse().unwrap()).len(),
            2,
            "IPv6's unspecified address too"
        );
        assert_eq!(
            certificate_ips("10.0.0.5:8443".parse().unwrap()),
            vec!["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn a_key_that_is_not_the_certificates_is_refused() {
        let r = server_config(
            vec![vec![0x30, 0]],
            vec![0x30, 0],
            &[],
            ClientAuth::Optional,
        );
        assert!(matches!(r, Err(TlsConfigError::Rustls(_))));
    }
}
