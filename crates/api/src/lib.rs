//! Vouch's HTTP API.
//!
//! [`router`] builds the axum application from one route table ([`routes`]): each route names the
//! [`Permission`] it needs, and the table is the single place where that is decided, so a test can walk every
//! route. Operators authenticate with bearer tokens ([`auth`]); errors are RFC 9457 problem documents
//! ([`ApiError`]); request bodies are size-limited.
//!
//! Architecture Invariant: this is the only crate that knows HTTP. Handlers translate between JSON and domain
//! types and call the store; they hold no business rules of their own.

pub mod auth;
mod certs;
mod devices;
mod error;
pub mod est;
mod extract;
mod health;
mod metrics;
pub mod tls;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{MethodRouter, get};
use vouch_store::Store;
use vouch_types::{Clock, Permission};

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
}

impl AppState {
    /// State over `store` with the system clock and fresh metrics.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            metrics: Arc::new(Metrics::new()),
            identity: None,
        }
    }

    /// The same state with the identity service (issuance and revocation) enabled.
    pub fn with_identity(mut self, identity: Arc<vouch_identity::IdentityService>) -> Self {
        self.identity = Some(identity);
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
    /// An authenticated operator whose role grants this permission.
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
            Requires(CertificatesManage),
            axum::routing::post(certs::issue),
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
            Requires(CertificatesManage),
            axum::routing::post(certs::revoke),
        ),
        route(
            Method::POST,
            "/api/v1/certificates/{id}/release",
            Requires(CertificatesManage),
            axum::routing::post(certs::release),
        ),
        route(Method::GET, "/pki/crl", Public, get(certs::crl)),
        route(
            Method::POST,
            "/pki/ocsp",
            Public,
            axum::routing::post(certs::ocsp_post),
        ),
        route(Method::GET, "/pki/ocsp/{id}", Public, get(certs::ocsp_get)),
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
