//! `vouch serve`: the API server.

use std::sync::Arc;

use anyhow::{Context, Result};
use vouch_api::{AppState, Limits, auth};
use vouch_types::SystemClock;

use crate::config::Config;

/// Opens the store, creates the first admin token on first start, and serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let store = crate::open_store(&config).await?;
    let clock = Arc::new(SystemClock);
    if let Some(token) = auth::bootstrap_admin(&*store, &*clock)
        .await
        .context("creating the first admin token")?
    {
        // Printed, never logged: log lines end up in collectors, this line only on the operator's terminal.
        println!(
            "\nVouch created the first admin API token. It is shown only this once; keep it somewhere safe:\n\n    \
             {}\n\nUse it as:  curl -H \"Authorization: Bearer $TOKEN\" http://{}/api/v1/devices\n\
             Lost it? On this host, `vouch token create --operator NAME --role admin` issues another.\n",
            token.expose(),
            config.listen
        );
    }
    let mut state = AppState::new(store.clone(), clock.clone());
    match crate::ca::load_issuing(&config.data_dir, config.pki.passphrase_file.as_deref())? {
        Some(ca) => {
            let svc = vouch_identity::IdentityService::new(store, clock, ca, config.pki.settings());
            state = state.with_identity(Arc::new(svc));
            tracing::info!(trust_domain = %config.pki.trust_domain, "certificate authority loaded");
        }
        None => tracing::info!(
            "no certificate authority yet: certificate routes answer 503 until `vouch ca init`"
        ),
    }
    if !config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.listen,
            "listening beyond loopback over plain HTTP: put a TLS-terminating proxy in front until Vouch serves TLS"
        );
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, store = %config.store.redacted(), "vouch API listening");
    let app = vouch_api::router(
        state,
        Limits {
            max_body_bytes: config.max_body_bytes,
        },
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("serving the API")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
