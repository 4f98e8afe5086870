//! TLS for the EST listener: the server configuration, the peer (`ConnectInfo<TlsPeer>`: the client's
//! certificate chain travels with the connection to the handlers), and a plain `axum::serve` listener for
//! tools and tests. `vouch serve` serves EST with [`crate::serve::HttpServer`], which bounds connections,
//! handshakes and time per source; [`TlsListener`] only bounds handshakes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many handshakes may run at once.
const MAX_HANDSHAKES: usize = 1024;

/// Who is at the other end of a TLS connection.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The client's address.
    pub remote: SocketAddr,
    /// The certificate chain the client authenticated with (leaf first), empty if it sent none.
    pub chain: Arc<Vec<Vec<u8>>>,
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificates or key were refused.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// The socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
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

/// Accepts TLS connections on a TCP socket, for `axum::serve` (benchmarks, tools).
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Binds `addr` and starts accepting with `config`.
    pub async fn bind(
        addr: SocketAddr,
        config: Arc<rustls::ServerConfig>,
    ) -> Result<Self, TlsError> {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| TlsError::Bind { addr, source })?;
        let local = tcp
            .local_addr()
            .map_err(|source| TlsError::Bind { addr, source })?;
        let (tx, rx) = mpsc::channel(MAX_HANDSHAKES);
        let acceptor = TlsAcceptor::from(config);
        let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let (sock, remote) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a TCP connection failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Never wait for a slot (the accept loop would stop): a connection beyond is closed at once.
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::debug!(%remote, "TLS handshake refused: too many in progress");
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(tls)) => {
                            let chain = tls
                                .get_ref()
                                .1
                                .peer_certificates()
                                .map(|c| c.iter().map(|c| c.to_vec()).collect())
                                .unwrap_or_default();
                            let _ = tx
                                .send((
                                    tls,
                                    TlsPeer {
                                        remote,
                                        chain: Arc::new(chain),
                                    },
                                ))
                                .await;
                        }
                        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake refused"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { rx, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accepting task ended: nothing more will ever come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            remote: self.local,
            chain: Arc::new(Vec::new()),
        })
    }
}
