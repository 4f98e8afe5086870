//! The MQTT enforcement point as the runtime starts it, alone (`vouch gateway`) or beside the API.

use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use rustls_pki_types::{CertificateDer, ServerName};
use tokio::task::JoinHandle;
use vouch_decide::DecisionPoint;
use vouch_gateway::{Gateway, GatewayConfig, Upstream};
use vouch_store::Store;
use vouch_types::Clock;

use crate::config::Config;
use crate::error::{Context, Result, bail};

/// Starts the gateway configured in `config` (its TLS certificate fresh from the Vouch CA, its key only in
/// memory), with the session caps `limits` derived, and returns its address and the task serving it until
/// `stop`.
pub(crate) async fn start(
    config: &Config,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    decisions: Arc<DecisionPoint>,
    limits: &crate::limits::Plan,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
    let g = &config.gateway;
    let Some((ca, root_der)) =
        crate::ca::load_issuing(&config.data_dir, config.pki.passphrase_file.as_deref())?
    else {
        bail!(
            "the gateway needs Vouch's certificate authority and there is none in {}: run `vouch ca init` first",
            config.data_dir.display()
        );
    };
    let id = vouch_tls::fresh_server_identity(&ca, &g.server_names, g.listen, clock.now())
        .context("issuing the gateway's TLS certificate")?;
    let mut roots = vec![root_der, ca.cert_der().to_vec()];
    roots.extend(crate::ca::read_certs(&g.client_cas, "the client CA")?);
    let tls = vouch_gateway::server_config(id.chain, id.key_pkcs8, &roots)
        .context("configuring the gateway's TLS")?;
    let upstream_tls = match &g.upstream_tls {
        None => None,
        Some((ca_file, name)) => Some(upstream_tls(ca_file.as_deref(), name)?),
    };
    let mut gc = GatewayConfig::new(Upstream {
        addr: g.upstream,
        tls: upstream_tls,
    });
    gc.handshake_timeout = Duration::from_secs(g.connect_timeout_secs);
    gc.connect_timeout = Duration::from_secs(g.connect_timeout_secs);
    gc.max_packet = g.max_packet_bytes;
    gc.v311_denied_publish = g.v311_denied_publish;
    gc.max_sessions = limits.gateway_sessions;
    gc.max_pending_per_source = limits.gateway_pending_per_source;
    gc.write_timeout = Duration::from_secs(g.write_timeout_secs);
    gc.window = Duration::from_secs(g.window_secs);
    let gateway = Gateway::start(gc, tls, store, clock, decisions)
        .await
        .context("starting the gateway")?;
    let listener = tokio::net::TcpListener::bind(g.listen)
        .await
        .with_context(|| format!("listening on {} (gateway.listen)", g.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    if tokio::net::TcpStream::connect(g.upstream).await.is_err() {
        tracing::warn!(upstream = %g.upstream, "the broker does not answer yet: devices are refused (server unavailable) until it does");
    }
    tracing::info!(gateway_addr = %addr, upstream = %g.upstream, "MQTT gateway listening (mTLS)");
    Ok((
        addr,
        tokio::spawn(async move {
            gateway.serve(listener, stop).await;
            Ok(())
        }),
    ))
}

/// TLS towards the broker: its certificate must chain to the CA in `ca_file` and carry `name`.
fn upstream_tls(
    ca_file: Option<&std::path::Path>,
    name: &str,
) -> Result<(Arc<rustls::ClientConfig>, ServerName<'static>)> {
    let Some(ca_file) = ca_file else {
        bail!(
            "gateway.upstream_tls needs gateway.upstream_ca: the CA file that signed the broker's certificate"
        );
    };
    let pem = std::fs::read_to_string(ca_file)
        .with_context(|| format!("reading {}", ca_file.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(
            vouch_pki::cert_der_from_pem(&pem)
                .with_context(|| format!("reading {}", ca_file.display()))?,
        ))
        .context("the broker's CA certificate")?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("the TLS versions towards the broker")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(name.to_owned()).with_context(|| {
        format!("gateway.upstream_server_name `{name}` is not a DNS name or address")
    })?;
    Ok((Arc::new(config), name))
}
