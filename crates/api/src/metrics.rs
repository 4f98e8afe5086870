//! Prometheus metrics in the OpenMetrics text format: request counts and latencies per route, the fleet by
//! lifecycle state, posture reports by outcome, and connections per listener (open, and those refused, shed
//! or timed out).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use vouch_types::DeviceState;

use crate::{ApiError, AppState};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PostureLabels {
    via: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MfaLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClosedLabels {
    listener: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

/// The API's metrics registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    devices: Family<StateLabels, Gauge>,
    posture: Family<PostureLabels, Counter>,
    mfa: Family<MfaLabels, Counter>,
    closed: Family<ClosedLabels, Counter>,
    open: Family<ListenerLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with Vouch's metrics registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vouch");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
        });
        let devices = Family::<StateLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            latency.clone(),
        );
        registry.register("devices", "Devices by lifecycle state", devices.clone());
        let posture = Family::<PostureLabels, Counter>::default();
        // Counted apart from the HTTP requests: the EST listener, where devices report, has no request metrics.
        registry.register(
            "posture_reports",
            "Posture reports by listener (api, est) and outcome (accepted, refused)",
            posture.clone(),
        );
        let mfa = Family::<MfaLabels, Counter>::default();
        registry.register(
            "mfa_codes",
            "One-time codes presented, by outcome (accepted, wrong, locked, throttled)",
            mfa.clone(),
        );
        let closed = Family::<ClosedLabels, Counter>::default();
        registry.register(
            "connections_closed",
            "Connections the server refused, shed or closed on a timeout, by listener (api, est) and reason",
            closed.clone(),
        );
        let open = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Connections held now (TLS handshakes included), by listener",
            open.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            devices,
            posture,
            mfa,
            closed,
            open,
        }
    }

    /// Counts one one-time code presented and what became of it.
    pub(crate) fn mfa_code(&self, outcome: &'static str) {
        self.mfa.get_or_create(&MfaLabels { outcome }).inc();
    }

    /// The series of `listener`'s connections: its open gauge and a counter per closing `reason` (created
    /// now, so that every reason shows, at zero until it happens).
    pub(crate) fn connection_series(
        &self,
        listener: &str,
        reasons: &[&str],
    ) -> (Gauge, Vec<Counter>) {
        let open = self
            .open
            .get_or_create(&ListenerLabels {
                listener: listener.to_owned(),
            })
            .clone();
        let closed = reasons
            .iter()
            .map(|r| {
                self.closed
                    .get_or_create(&ClosedLabels {
                        listener: listener.to_owned(),
                        reason: (*r).to_owned(),
                    })
                    .clone()
            })
            .collect();
        (open, closed)
    }

    /// Counts one posture report that came in on `via`, accepted or refused.
    pub(crate) fn posture_report(&self, via: &str, accepted: bool) {
        self.posture
            .get_or_create(&PostureLabels {
                via: via.to_owned(),
                outcome: if accepted { "accepted" } else { "refused" }.to_owned(),
            })
            .inc();
    }
}

/// Middleware that counts and times every request by its route template (never the raw path: ids would
/// explode the label set).
pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    let m = &state.metrics;
    m.latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(start.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// `GET /metrics`.
pub(crate) async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let counts = state.store.count_devices_by_state().await?;
    for s in DeviceState::ALL {
        let n = counts.get(&s).copied().unwrap_or(0);
        state
            .metrics
            .devices
            .get_or_create(&StateLabels {
                state: s.as_str().to_owned(),
            })
            .set(n as i64);
    }
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &state.metrics.registry)
        .map_err(ApiError::internal)?;
    let mut resp = body.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(resp)
}
