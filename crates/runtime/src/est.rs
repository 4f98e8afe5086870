//! The identity service over the data directory's CA, and EST (RFC 7030) served over TLS by it.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vouch_api::AppState;
use vouch_identity::IdentityService;
use vouch_store::Store;
use vouch_types::Clock;

use crate::config::Config;
use crate::error::{Context, Result};

/// The identity service over `issuing`, trusting the configured manufacturer CAs for IDevID bootstrap.
pub(crate) fn identity_service(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    issuing: vouch_pki::IssuingCa,
    root_der: Vec<u8>,
) -> Result<IdentityService> {
    let manufacturers = crate::ca::read_certs(&config.est_manufacturer_cas, "the manufacturer CA")?;
    Ok(
        IdentityService::new(store, clock, issuing, root_der, config.pki.settings())
            .with_manufacturer_cas(manufacturers),
    )
}

/// Starts the EST server over TLS: a server certificate fresh from the CA (its key only in memory), client
/// certificates optional and checked against Vouch's own CAs.
pub(crate) async fn start(
    config: &Config,
    svc: &Arc<IdentityService>,
    state: AppState,
    limits: &crate::limits::Plan,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
    let id = svc
        .server_identity(&config.est_server_names, config.est_listen)
        .context("issuing the EST server certificate")?;
    let mut roots = vec![svc.root_cert_der().to_vec(), svc.ca_cert_der().to_vec()];
    roots.extend(svc.manufacturer_cas().iter().cloned());
    let tls = vouch_api::tls::server_config(id.chain, id.key_pkcs8, &roots)
        .context("configuring TLS for EST")?;
    let server = vouch_api::serve::HttpServer::bind("est", config.est_listen)
        .await
        .with_context(|| format!("listening on {} (est.listen)", config.est_listen))?
        .tls(tls)
        .limits(limits.est.clone())
        .metrics(state.metrics.clone())
        // libest's estclient reads each answer until the server closes and matches header names exactly.
        .http1_options(vouch_api::serve::Http1Options::EST);
    let addr = server.local_addr();
    tracing::info!(est_addr = %addr, "EST listening (RFC 7030, https)");
    // Handlers see the client's certificate chain as `ConnectInfo<TlsPeer>`.
    let app = vouch_api::est::router(state);
    Ok((
        addr,
        tokio::spawn(async move {
            server.serve(app, crate::stopped(stop)).await;
            Ok(())
        }),
    ))
}
