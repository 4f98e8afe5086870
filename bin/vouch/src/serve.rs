//! `vouch serve`: the API server.

use std::sync::Arc;

use anyhow::{Context, Result};
use vouch_api::{AppState, Limits};

use vouch_types::SystemClock;

use crate::config::Config;

/// Where the first start leaves the first admin token (0600), relative to the data directory.
pub const INITIAL_TOKEN_FILE: &str = "initial-admin-token";

/// Opens the store, creates the first admin token on first start, and serves until SIGINT or SIGTERM.
pub async fn run(config: Config) -> Result<()> {
    let store = crate::open_store(&config).await?;
    let clock = Arc::new(SystemClock);
    let checkpointer = crate::audit::Checkpointer::start(&config, store.clone(), clock.clone())?;
    let decisions = vouch_api::decide::DecisionPoint::start(
        store.clone(),
        clock.clone(),
        Some(config.data_dir.join("decisions.jsonl")),
    )
    .await
    .context("starting the policy engine")?;
    let seal = vouch_control::totp::SealKey::load_or_create(&config.data_dir.join("mfa.key"))
        .context("reading the second-factor key (mfa.key in the data directory)")?;
    let mut state = AppState::new(store.clone(), clock.clone(), decisions, Arc::new(seal));
    // The API's certificate import trusts what `vouch cert import` trusts: one set, read in one place.
    state = state.with_import_issuers(crate::certs::import_issuers(&config)?);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let limits = crate::limits::plan(
        &config,
        crate::limits::Role::Serve,
        vouch_api::serve::open_files_limit(),
    );
    limits.log(crate::limits::Role::Serve);
    let mut est_task = None;
    let mut gateway_task = None;
    // The trust service judges what any gateway on this store queued (this one's, standalone ones') and
    // the posture reports, resuming at its cursor with the models it saved.
    let trust =
        vouch_respond::TrustService::new(store.clone(), clock.clone(), config.trust.clone())
            .consume(vouch_respond::SaveEvery::default(), stop_rx.clone());
    tracing::info!(
        playbooks = config.trust.response.playbooks.len(),
        mode = ?config.trust.response.mode,
        "trust service following the observation queue"
    );
    match crate::ca::load_issuing(&config.data_dir, config.pki.passphrase_file.as_deref())? {
        Some((ca, root_der)) => {
            let mut manufacturers = Vec::new();
            for path in &config.est_manufacturer_cas {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the manufacturer CA {}", path.display()))?;
                manufacturers.push(
                    vouch_pki::cert_der_from_pem(&pem).with_context(|| {
                        format!("reading the manufacturer CA {}", path.display())
                    })?,
                );
            }
            let svc = Arc::new(
                vouch_identity::IdentityService::new(
                    store.clone(),
                    clock.clone(),
                    ca,
                    root_der,
                    config.pki.settings(),
                )
                .with_manufacturer_cas(manufacturers),
            );
            state = state.with_identity(svc.clone());
            tracing::info!(trust_domain = %config.pki.trust_domain, "certificate authority loaded");
            est_task =
                Some(start_est(&config, &svc, state.clone(), &limits, stop_rx.clone()).await?);
            if config.gateway.enabled {
                let (task, _gateway) = crate::gateway::start(
                    &config,
                    store.clone(),
                    clock.clone(),
                    state.decisions.clone(),
                    &limits,
                    stop_rx.clone(),
                )
                .await?;
                // Its windows reach the trust service through the store's queue, like a standalone one's.
                gateway_task = Some(task);
            }
        }
        None => {
            tracing::info!(
                "no certificate authority yet: certificate routes and EST answer 503 until `vouch ca init`"
            );
            if config.gateway.enabled {
                tracing::warn!(
                    "the gateway is enabled but needs a certificate authority: not started"
                );
            }
        }
    }
    // The first admin token only once everything else started: a failed start issues nothing.
    let token_file = config.data_dir.join(INITIAL_TOKEN_FILE);
    if let Some(token) = vouch_control::tokens::bootstrap_admin(&*store, &*clock)
        .await
        .context("creating the first admin token")?
    {
        // Into a file only its owner reads, never to stdout or the log: both end up in collectors and
        // terminals' scrollback. The path is no secret. A file left from an earlier, emptied store is stale.
        match std::fs::remove_file(&token_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context("removing a stale first admin token file");
            }
            _ => {}
        }
        crate::files::write_private(&token_file, &format!("{}\n", token.expose()))
            .context("writing the first admin token")?;
        println!(
            "\nVouch created the first admin API token and wrote it to {} (readable by this user only).\n\
             Move it to a password manager and delete the file. Use it as:\n\n    \
             curl -H \"Authorization: Bearer $(cat {})\" http://{}/api/v1/devices\n\n\
             It may enroll its second factor (POST /api/v1/mfa/totp) for 24 hours; later, on this host, \
             `vouch token mfa-reset ID` allows it again.\n\
             Lost it? On this host, `vouch token create --operator NAME --role admin` issues another.\n",
            token_file.display(),
            token_file.display(),
            config.listen
        );
    } else if token_file.exists() {
        tracing::warn!(
            file = %token_file.display(),
            "the first admin token is still in its file: move it to a password manager and delete the file"
        );
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
    let server = vouch_api::serve::HttpServer::from_listener("api", listener)
        .context("reading the bound address")?
        .limits(limits.api.clone())
        .metrics(state.metrics.clone());
    let addr = server.local_addr();
    tracing::info!(%addr, store = %config.store.redacted(), "vouch API listening");
    let app = vouch_api::router(
        state,
        Limits {
            max_body_bytes: config.max_body_bytes,
        },
    );
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop_tx.send(true);
    });
    server.serve(app, stopped(stop_rx)).await;
    if let Some(task) = est_task {
        task.await.context("the EST server task failed")??;
    }
    if let Some(task) = gateway_task {
        task.await.context("the gateway task failed")?;
    }
    match trust.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "the trust service stopped on an error"),
        Err(e) => tracing::error!(error = %e, "the trust service task failed"),
    }
    checkpointer.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves once shutdown was asked for.
async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts the EST server over TLS: a server certificate fresh from the CA (its key only in memory), client
/// certificates optional and checked against Vouch's own CAs.
async fn start_est(
    config: &Config,
    svc: &Arc<vouch_identity::IdentityService>,
    state: AppState,
    limits: &crate::limits::Plan,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<Result<()>>> {
    use vouch_api::tls::server_config;
    let id = svc
        .server_identity(&config.est_server_names, config.est_listen)
        .context("issuing the EST server certificate")?;
    let mut roots = vec![svc.root_cert_der().to_vec(), svc.ca_cert_der().to_vec()];
    roots.extend(svc.manufacturer_cas().iter().cloned());
    let tls = server_config(id.chain, id.key_pkcs8, &roots).context("configuring TLS for EST")?;
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
    Ok(tokio::spawn(async move {
        server.serve(app, stopped(stop)).await;
        Ok(())
    }))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown() {
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
