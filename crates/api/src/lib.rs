//! Vouch's HTTP API.
//!
//! [`router`] builds the axum application from one route table ([`routes`]): each route names the
//! [`Permission`] it needs, and the table is the single place where that is decided, so a test can walk every
//! route. Operators authenticate with bearer tokens ([`auth`]); errors are RFC 9457 problem documents
//! ([`ApiError`]); request bodies are size-limited. [`serve::HttpServer`] serves it (and EST over TLS) with
//! bounded connections: caps in total and per source, shedding, and header, body, write and handshake timeouts.
//!
//! Architecture Invariant: this is the only crate that knows HTTP. Handlers translate between JSON and domain
//! types and call the store; they hold no business rules of their own.

pub mod auth;
mod authorize;
mod canonical;
mod certs;
pub use vouch_decide as decide;
mod devices;
pub mod discovery;
mod error;
pub mod est;
mod extract;
mod health;
mod metrics;
pub mod mfa;
mod policies;
pub mod posture;
pub mod serve;
pub mod tls;
mod tokens;
pub use vouch_control::totp;
mod trust;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, get};
use tokio::sync::broadcast;
use vouch_store::Store;
use vouch_types::{Clock, Observation, Permission};

pub use error::ApiError;
pub use metrics::Metrics;

/// What the API needs to serve requests.
#[derive(Clone)]
pub struct AppState {
    /// Where devices, events and tokens live.
    pub store: Arc<dyn Store>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Issuance and revocation, when a CA is configured.
    pub identity: Option<Arc<vouch_identity::IdentityService>>,
    /// The policy decision point: devices' and operators' requests are decided here.
    pub decisions: Arc<decide::DecisionPoint>,
    /// The key that seals operators' second-factor secrets at rest.
    pub seal: Arc<totp::SealKey>,
    /// Step-up sessions opened by one-time codes (per server: another node asks for a fresh code).
    pub step_ups: Arc<auth::StepUps>,
    /// Wrong one-time codes per source address (per server; the per-token limit is in the store).
    pub mfa_sources: Arc<mfa::SourceThrottle>,
    /// The last discovery report this server produced.
    pub discovery: Arc<discovery::LastReport>,
    /// CAs (DER) trusted for imported device certificates besides this server's own issuing and root CA.
    pub import_issuers: Arc<Vec<Vec<u8>>>,
    /// What the API learns about devices (posture reports), for in-process subscribers such as the trust
    /// service; subscribe with [`AppState::observations`].
    pub observations: broadcast::Sender<Observation>,
}

/// How many observations a slow subscriber may fall behind before it misses some (it is told how many).
pub const OBSERVATION_CAPACITY: usize = 4096;

impl AppState {
    /// State over `store` with fresh metrics, deciding with `decisions`, sealing second factors with `seal`.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        decisions: Arc<decide::DecisionPoint>,
        seal: Arc<totp::SealKey>,
    ) -> Self {
        Self {
            store,
            clock,
            metrics: Arc::new(Metrics::new()),
            identity: None,
            decisions,
            seal,
            step_ups: Arc::default(),
            mfa_sources: Arc::default(),
            discovery: Arc::default(),
            import_issuers: Arc::default(),
            observations: broadcast::channel(OBSERVATION_CAPACITY).0,
        }
    }

    /// A new subscription to the observations published from now on.
    pub fn observations(&self) -> broadcast::Receiver<Observation> {
        self.observations.subscribe()
    }

    /// The same state with the identity service (issuance and revocation) enabled.
    pub fn with_identity(mut self, identity: Arc<vouch_identity::IdentityService>) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The same state trusting `issuers` (DER) for imported device certificates, besides its own CA.
    pub fn with_import_issuers(mut self, issuers: Vec<Vec<u8>>) -> Self {
        self.import_issuers = Arc::new(issuers);
        self
    }
}

/// Limits on what a client may send.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: liveness and readiness probes only (they reveal nothing).
    Public,
    /// An authenticated operator allowed this action by the policy engine (role, and a second factor for
    /// privileged actions).
    Requires(Permission),
}

/// One route of the API, as the route table declares it.
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path template (axum syntax, `{id}` for parameters).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

/// The route table: every route the API serves and who may call it.
pub fn routes() -> Vec<Route> {
    use Access::{Public, Requires};
    use Permission::*;
    vec![
        route(Method::GET, "/healthz", Public, get(health::healthz)),
        route(Method::GET, "/readyz", Public, get(health::readyz)),
        route(
            Method::GET,
            "/metrics",
            Requires(MetricsRead),
            get(metrics::scrape),
        ),
        route(
            Method::GET,
            "/api/v1/devices",
            Requires(DevicesRead),
            get(devices::list),
        ),
        route(
            Method::POST,
            "/api/v1/devices",
            Requires(DevicesWrite),
            axum::routing::post(devices::create),
        ),
        route(
            Method::POST,
            "/api/v1/discovery/captures",
            Requires(DevicesWrite),
            axum::routing::post(discovery::upload)
                .layer(DefaultBodyLimit::max(discovery::MAX_CAPTURE_BYTES)),
        ),
        route(
            Method::GET,
            "/api/v1/discovery",
            Requires(DevicesRead),
            get(discovery::last),
        ),
        route(
            Method::GET,
            "/api/v1/discovery/map",
            Requires(DevicesRead),
            get(discovery::map),
        ),
        route(
            Method::GET,
            "/api/v1/devices/{id}/trust",
            Requires(DevicesRead),
            get(trust::show),
        ),
        route(
            Method::POST,
            "/api/v1/devices/{id}/onboard",
            Requires(CertificatesManage),
            axum::routing::post(discovery::onboard_route),
        ),
        route(
            Method::GET,
            "/api/v1/devices/{id}",
            Requires(DevicesRead),
            get(devices::show),
        ),
        route(
            Method::PATCH,
            "/api/v1/devices/{id}",
            Requires(DevicesWrite),
            axum::routing::patch(devices::update),
        ),
        route(
            Method::POST,
            "/api/v1/devices/{id}/transition",
            Requires(DevicesWrite),
            axum::routing::post(devices::transition),
        ),
        route(
            Method::POST,
            posture::POSTURE_PATH,
            Requires(DevicesWrite),
            axum::routing::post(posture::report_api)
                .layer(DefaultBodyLimit::max(posture::MAX_POSTURE_BODY)),
        ),
        route(
            Method::GET,
            "/api/v1/devices/{id}/events",
            Requires(DevicesRead),
            get(devices::events),
        ),
        route(
            Method::GET,
            "/api/v1/audit/events",
            Requires(AuditRead),
            get(devices::all_events),
        ),
        route(
            Method::GET,
            "/api/v1/audit/verify",
            Requires(AuditRead),
            get(devices::verify),
        ),
        route(
            Method::POST,
            "/api/v1/devices/{id}/enrollment-tokens",
            Requires(CertificatesManage),
            axum::routing::post(certs::create_token),
        ),
        route(
            Method::POST,
            "/api/v1/devices/{id}/certificates",
            Requires(CaOperate),
            axum::routing::post(certs::issue),
        ),
        route(
            Method::POST,
            "/api/v1/devices/{id}/certificates/import",
            Requires(CertificatesManage),
            axum::routing::post(certs::import),
        ),
        route(
            Method::GET,
            "/api/v1/devices/{id}/certificates",
            Requires(DevicesRead),
            get(certs::of_device),
        ),
        route(
            Method::GET,
            "/api/v1/certificates",
            Requires(DevicesRead),
            get(certs::expiring),
        ),
        route(
            Method::GET,
            "/api/v1/certificates/{id}",
            Requires(DevicesRead),
            get(certs::show),
        ),
        route(
            Method::POST,
            "/api/v1/certificates/{id}/revoke",
            Requires(CertificatesRevoke),
            axum::routing::post(certs::revoke),
        ),
        route(
            Method::POST,
            "/api/v1/certificates/{id}/release",
            Requires(CertificatesRevoke),
            axum::routing::post(certs::release),
        ),
        route(Method::GET, "/pki/crl", Public, get(certs::crl)),
        route(
            Method::POST,
            "/pki/ocsp",
            Public,
            axum::routing::post(certs::ocsp_post),
        ),
        route(
            Method::GET,
            "/pki/ocsp/{*request}",
            Public,
            get(certs::ocsp_get),
        ),
        route(
            Method::GET,
            "/api/v1/tokens",
            Requires(TokensManage),
            get(tokens::list),
        ),
        route(
            Method::POST,
            "/api/v1/tokens",
            Requires(TokensManage),
            axum::routing::post(tokens::create),
        ),
        route(
            Method::DELETE,
            "/api/v1/tokens/{id}",
            Requires(TokensManage),
            axum::routing::delete(tokens::revoke),
        ),
        route(
            Method::POST,
            "/api/v1/mfa/totp",
            Requires(MfaEnroll),
            axum::routing::post(mfa::enroll_totp),
        ),
        route(
            Method::POST,
            "/api/v1/mfa/totp/confirm",
            Requires(MfaEnroll),
            axum::routing::post(mfa::confirm_totp),
        ),
        route(
            Method::POST,
            "/api/v1/tokens/{id}/mfa/reset",
            Requires(MfaReset),
            axum::routing::post(mfa::reset),
        ),
        route(
            Method::POST,
            "/api/v1/authorize",
            Requires(DecisionsRequest),
            axum::routing::post(authorize::authorize),
        ),
        route(
            Method::POST,
            "/api/v1/emqx/authorize",
            Requires(DecisionsRequest),
            axum::routing::post(authorize::emqx),
        ),
        route(
            Method::GET,
            "/api/v1/policies",
            Requires(PoliciesRead),
            get(policies::list),
        ),
        route(
            Method::GET,
            "/api/v1/policies/schema",
            Requires(PoliciesRead),
            get(policies::schema),
        ),
        route(
            Method::POST,
            "/api/v1/policies/validate",
            Requires(PoliciesRead),
            axum::routing::post(policies::validate)
                .layer(DefaultBodyLimit::max(policies::MAX_POLICY_BODY)),
        ),
        route(
            Method::GET,
            "/api/v1/policies/{id}",
            Requires(PoliciesRead),
            get(policies::show),
        ),
        route(
            Method::PUT,
            "/api/v1/policies/{id}",
            Requires(PoliciesWrite),
            axum::routing::put(policies::put)
                .layer(DefaultBodyLimit::max(policies::MAX_POLICY_BODY)),
        ),
        route(
            Method::DELETE,
            "/api/v1/policies/{id}",
            Requires(PoliciesWrite),
            axum::routing::delete(policies::remove),
        ),
        route(
            Method::POST,
            "/api/v1/policies/{id}/mode",
            Requires(PoliciesWrite),
            axum::routing::post(policies::set_mode),
        ),
    ]
}

/// The API as an axum application.
pub fn router(state: AppState, limits: Limits) -> Router {
    let mut app = Router::new();
    for r in routes() {
        let handler = match r.access {
            Access::Public => r.handler,
            Access::Requires(p) => r.handler.route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), p),
                auth::require,
            )),
        };
        app = app.route(r.path, handler);
    }
    app.fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
