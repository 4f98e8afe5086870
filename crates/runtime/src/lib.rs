//! The running server: a typed configuration in, the services it asks for started together, stopped
//! together.
//!
//! `vouch serve` and `vouch gateway` are two [`Services`] plans over one [`Runtime`]: which of the identity
//! service and EST, the decision point, the trust service with its playbooks, the MQTT gateway, the API and
//! the audit checkpointer run in this process. Each service is a library crate's; this crate only builds it
//! from the [`Config`](config::Config), in the order their dependencies need, and owns their tasks, so a
//! binary (or a test, or a future dashboard host) starts a deployment with one call and holds no wiring of
//! its own. It writes nothing to stdout: what an operator must read (the first admin token's file) comes
//! back in [`Runtime`] for the caller to say.

pub mod ca;
pub mod checkpoint;
pub mod compliance;
pub mod config;
mod error;
mod est;
pub mod files;
mod gateway;
pub mod limits;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use vouch_api::{AppState, Limits};
use vouch_store::Store;
use vouch_types::{Clock, SystemClock};

pub use crate::config::Config;
pub use crate::error::{Context, Result, RuntimeError};
use crate::limits::Role;

/// Where the first start leaves the first admin token (0600), relative to the data directory.
pub const INITIAL_TOKEN_FILE: &str = "initial-admin-token";

/// Which services one process runs: the typed plan a command (or a test) hands the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Services {
    /// The HTTP API (with CRL and OCSP), and the first admin token on an empty store.
    pub api: bool,
    /// The EST server over TLS, when a certificate authority exists.
    pub est: bool,
    /// The MQTT gateway (needs the certificate authority).
    pub gateway: bool,
    /// The trust service consuming the observation queue, with the playbooks.
    pub trust: bool,
    /// Signed audit checkpoints on the `[audit]` schedule.
    pub checkpoints: bool,
    /// Each distinct device request written to `<data_dir>/decisions.jsonl` (for `vouch policy test`).
    pub decision_log: bool,
}

impl Services {
    /// `vouch serve`: everything, the gateway when `[gateway] enabled`.
    pub fn serve(config: &Config) -> Self {
        Self {
            api: true,
            est: true,
            gateway: config.gateway.enabled,
            trust: true,
            checkpoints: true,
            decision_log: true,
        }
    }

    /// `vouch gateway`: the gateway alone, deciding with its own decision point; its windows reach the
    /// server's trust service through the store's observation queue.
    pub fn gateway_alone() -> Self {
        Self {
            api: false,
            est: false,
            gateway: true,
            trust: false,
            checkpoints: false,
            decision_log: false,
        }
    }

    /// How the process's descriptors are shared between its listeners.
    pub fn role(&self) -> Role {
        if self.api || self.est {
            Role::Serve
        } else {
            Role::Gateway
        }
    }
}

/// The configured store, opened (the data directory made private first).
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>> {
    files::private_data_dir(&config.data_dir)?;
    Ok(match &config.store {
        config::StoreLocation::Sqlite(path) => Arc::new(
            vouch_store_sqlite::SqliteStore::open(path, config.sqlite_durability)
                .with_context(|| format!("opening the SQLite store at {}", path.display()))?,
        ),
        config::StoreLocation::Postgres(url) => Arc::new(
            vouch_store_postgres::PostgresStore::connect(url, config.max_connections)
                .await
                .with_context(|| format!("connecting to {}", config.store.redacted()))?,
        ),
    })
}

/// A named task the runtime waits for at stop.
type Task = (&'static str, JoinHandle<Result<()>>);

/// The services of one process, running: their addresses, and what stops them.
pub struct Runtime {
    /// Where the API listens, if it runs.
    pub api_addr: Option<SocketAddr>,
    /// Where EST listens, if it runs.
    pub est_addr: Option<SocketAddr>,
    /// Where the gateway accepts devices, if it runs.
    pub gateway_addr: Option<SocketAddr>,
    /// The file this start wrote the first admin token to (an empty store's first start), for the caller to
    /// point the operator at; the token itself is never returned.
    pub first_token_file: Option<PathBuf>,
    stop: watch::Sender<bool>,
    tasks: Vec<Task>,
    checkpointer: Option<checkpoint::Checkpointer>,
}

impl Runtime {
    /// Starts what `services` asks for, in dependency order: the store, the checkpointer, the decision point,
    /// the trust service, the CA's services (EST, the gateway), then the API, whose first admin token is
    /// issued only once everything else started (a failed start issues nothing).
    pub async fn start(config: &Config, services: Services) -> Result<Self> {
        let store = open_store(config).await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self::start_on(config, services, store, clock).await
    }

    /// [`Runtime::start`] on a store and clock the caller opened.
    pub async fn start_on(
        config: &Config,
        services: Services,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self> {
        let role = services.role();
        let (stop, stop_rx) = watch::channel(false);
        let mut rt = Self {
            api_addr: None,
            est_addr: None,
            gateway_addr: None,
            first_token_file: None,
            stop,
            tasks: Vec::new(),
            checkpointer: None,
        };
        if services.checkpoints {
            rt.checkpointer = Some(checkpoint::Checkpointer::start(
                config,
                store.clone(),
                clock.clone(),
            )?);
        }
        let decision_log = services
            .decision_log
            .then(|| config.data_dir.join("decisions.jsonl"));
        let decisions =
            vouch_decide::DecisionPoint::start(store.clone(), clock.clone(), decision_log)
                .await
                .context("starting the policy engine")?;
        let limits = limits::plan(config, role, vouch_api::serve::open_files_limit());
        limits.log(role);
        if services.trust {
            // It judges what any gateway on this store queued (this one's, standalone ones') and the posture
            // reports, resuming at its cursor with the models it saved.
            let trust = vouch_respond::TrustService::new(
                store.clone(),
                clock.clone(),
                config.trust.clone(),
            )
            .consume(vouch_respond::SaveEvery::default(), stop_rx.clone());
            rt.tasks.push((
                "trust service",
                tokio::spawn(async move {
                    match trust.await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, "the trust service stopped on an error");
                        }
                        Err(e) => tracing::error!(error = %e, "the trust service task failed"),
                    }
                    Ok(())
                }),
            ));
            tracing::info!(
                playbooks = config.trust.response.playbooks.len(),
                mode = ?config.trust.response.mode,
                "trust service following the observation queue"
            );
        }
        let mut state = None;
        if services.api {
            let seal =
                vouch_control::totp::SealKey::load_or_create(&config.data_dir.join("mfa.key"))
                    .context("reading the second-factor key (mfa.key in the data directory)")?;
            let s = AppState::new(
                store.clone(),
                clock.clone(),
                decisions.clone(),
                Arc::new(seal),
            );
            // The API's certificate import trusts what `vouch cert import` trusts: one set, read in one place.
            state = Some(s.with_import_issuers(ca::import_issuers(config)?));
        }
        let authority = ca::load_issuing(&config.data_dir, config.pki.passphrase_file.as_deref())?;
        let has_authority = authority.is_some();
        match authority {
            Some((issuing, root_der)) if services.api || services.est => {
                let svc = Arc::new(est::identity_service(
                    config,
                    store.clone(),
                    clock.clone(),
                    issuing,
                    root_der,
                )?);
                tracing::info!(trust_domain = %config.pki.trust_domain, "certificate authority loaded");
                if let Some(s) = state.take() {
                    let s = s.with_identity(svc.clone());
                    if services.est {
                        let (addr, task) =
                            est::start(config, &svc, s.clone(), &limits, stop_rx.clone()).await?;
                        rt.est_addr = Some(addr);
                        rt.tasks.push(("EST server", task));
                    }
                    state = Some(s);
                }
            }
            Some(_) => {}
            None if services.api => tracing::info!(
                "no certificate authority yet: certificate routes and EST answer 503 until `vouch ca init`"
            ),
            None => {}
        }
        if services.gateway && !has_authority && services.api {
            tracing::warn!("the gateway is enabled but needs a certificate authority: not started");
        } else if services.gateway {
            // Its own copy of the issuing CA (the identity service owns the other): it signs the gateway's
            // server certificate once, at start.
            let (addr, task) = gateway::start(
                config,
                store.clone(),
                clock.clone(),
                decisions.clone(),
                &limits,
                stop_rx.clone(),
            )
            .await?;
            rt.gateway_addr = Some(addr);
            rt.tasks.push(("gateway", task));
        }
        if let Some(state) = state {
            rt.first_token_file = first_admin_token(config, &*store, &*clock).await?;
            let (addr, task) = api(config, state, &limits, stop_rx).await?;
            rt.api_addr = Some(addr);
            rt.tasks.push(("API server", task));
        }
        Ok(rt)
    }

    /// Asks every service to stop and waits for them: listeners close, the trust service saves its models,
    /// the checkpointer signs a last checkpoint. A task that failed is reported here.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        let mut first = None;
        for (name, task) in self.tasks {
            let outcome = match task.await {
                Ok(r) => r,
                Err(e) => Err(RuntimeError::Failed {
                    what: format!("the {name} task failed"),
                    source: Box::new(e),
                }),
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e.chain(), "{name}");
                first.get_or_insert(e);
            }
        }
        if let Some(c) = self.checkpointer {
            c.stop().await;
        }
        tracing::info!("stopped");
        first.map_or(Ok(()), Err)
    }

    /// Runs until SIGINT or SIGTERM, then stops.
    pub async fn run_until_signal(self) -> Result<()> {
        shutdown().await;
        self.stop().await
    }
}

/// Issues the first admin token on an empty store, into a file only its owner reads: never stdout or the
/// log, which end up in collectors and terminals' scrollback. Returns the file's path when it wrote one.
async fn first_admin_token(
    config: &Config,
    store: &dyn Store,
    clock: &dyn Clock,
) -> Result<Option<PathBuf>> {
    let token_file = config.data_dir.join(INITIAL_TOKEN_FILE);
    if let Some(token) = vouch_control::tokens::bootstrap_admin(store, clock)
        .await
        .context("creating the first admin token")?
    {
        // A file left from an earlier, emptied store is stale.
        match std::fs::remove_file(&token_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context("removing a stale first admin token file");
            }
            _ => {}
        }
        files::write_private(&token_file, &format!("{}\n", token.expose()))
            .context("writing the first admin token")?;
        return Ok(Some(token_file));
    }
    if token_file.exists() {
        tracing::warn!(
            file = %token_file.display(),
            "the first admin token is still in its file: move it to a password manager and delete the file"
        );
    }
    Ok(None)
}

/// Binds the API listener and serves the router until `stop`.
async fn api(
    config: &Config,
    state: AppState,
    limits: &limits::Plan,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<Result<()>>)> {
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
    Ok((
        addr,
        tokio::spawn(async move {
            server.serve(app, stopped(stop)).await;
            Ok(())
        }),
    ))
}

/// Resolves once shutdown was asked for.
async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
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
