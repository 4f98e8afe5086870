//! How the process's file descriptors are shared between its listeners: every connection is a descriptor
//! (a gateway session two: device and broker), and a process out of them can accept nothing, so each
//! listener's cap is derived from the limit the process really has (`RLIMIT_NOFILE`), after headroom for
//! the store, files and the runtime.
//!
//! `vouch serve` gives the gateway (when enabled) two thirds of what is left and the API and EST a sixth
//! each; without the gateway, API and EST half each. `vouch gateway` gives the gateway all of it. A value set
//! in the configuration replaces its share (the others are not rebalanced); one above what the descriptors
//! allow on their own is lowered, with a warning.

use std::time::Duration;

use vouch_api::serve::ConnectionLimits;
/// The process's soft descriptor limit (`None`: unlimited), the figure every share is derived from.
pub use vouch_api::serve::open_files_limit;

use crate::config::{Config, ListenerSettings};

/// The limit assumed when the process has none (`RLIMIT_NOFILE` unlimited).
const UNLIMITED: u64 = 1 << 20;
/// The fewest connections any listener is given, however low the limit.
const FLOOR: usize = 8;

/// Which command the descriptors are shared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `vouch serve`: the API, EST and (if enabled) the gateway.
    Serve,
    /// `vouch gateway`: the gateway alone.
    Gateway,
}

/// Every listener's limits, as derived and configured.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The process's soft descriptor limit (`None`: unlimited).
    pub descriptors: Option<u64>,
    /// Descriptors left to connections after the headroom.
    pub available: u64,
    /// The API listener.
    pub api: ConnectionLimits,
    /// The EST listener.
    pub est: ConnectionLimits,
    /// The gateway's sessions and unauthenticated connections per source.
    pub gateway_sessions: usize,
    /// The gateway's unauthenticated connections per source.
    pub gateway_pending_per_source: usize,
    /// Configured values lowered to what the descriptors allow, as warnings.
    pub lowered: Vec<String>,
}

/// Descriptors kept for everything but connections: the store (PostgreSQL sockets; SQLite's files and
/// their WAL), the data files, the log, the runtime, and a sixteenth of the limit for the rest.
fn headroom(limit: u64, store_connections: usize) -> u64 {
    128 + 2 * store_connections as u64 + limit / 16
}

fn at_least_floor(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX).max(FLOOR)
}

/// The limits of one HTTP listener: its share unless configured, the configured value lowered to `most`.
fn listener(
    key: &str,
    share: usize,
    most: usize,
    s: &ListenerSettings,
    lowered: &mut Vec<String>,
) -> ConnectionLimits {
    let n = match s.max_connections {
        Some(n) if n > most => {
            lowered.push(format!(
                "{key}.max_connections = {n} is more than the descriptor limit allows: lowered to {most}"
            ));
            most
        }
        Some(n) => n,
        None => share,
    };
    let mut l = ConnectionLimits::new(n);
    if let Some(p) = s.max_connections_per_source {
        l.max_connections_per_source = p.min(n);
    }
    if let Some(h) = s.max_handshakes {
        l.max_handshakes = h.min(n);
        l.max_handshakes_per_source = ConnectionLimits::per_source(l.max_handshakes);
    }
    l.handshake_timeout = Duration::from_secs(s.handshake_timeout_secs);
    l.header_timeout = Duration::from_secs(s.header_timeout_secs);
    l.body_timeout = Duration::from_secs(s.body_timeout_secs);
    l.write_timeout = Duration::from_secs(s.write_timeout_secs);
    l
}

/// The sessions `vouch gateway` holds by default under `descriptors` with `store_connections` (what the
/// benchmark spreads its sessions by).
pub fn gateway_alone(descriptors: Option<u64>, store_connections: usize) -> usize {
    let limit = descriptors.unwrap_or(UNLIMITED);
    at_least_floor(limit.saturating_sub(headroom(limit, store_connections)) / 2)
}

/// Shares the descriptors of a process whose limit is `descriptors` between what `role` runs.
pub fn plan(config: &Config, role: Role, descriptors: Option<u64>) -> Plan {
    let limit = descriptors.unwrap_or(UNLIMITED);
    let available = limit.saturating_sub(headroom(limit, config.max_connections));
    let gateway_on = role == Role::Gateway || config.gateway.enabled;
    let (http_share, gateway_fds) = match role {
        Role::Gateway => (0, available),
        Role::Serve if gateway_on => (available / 6, available * 2 / 3),
        Role::Serve => (available / 2, 0),
    };
    let mut lowered = Vec::new();
    let most = at_least_floor(available);
    let api = listener(
        "server",
        at_least_floor(http_share),
        most,
        &config.server_connections,
        &mut lowered,
    );
    let est = listener(
        "est",
        at_least_floor(http_share),
        most,
        &config.est_connections,
        &mut lowered,
    );
    // Two sockets per session: the device's and the broker's.
    let most_sessions = at_least_floor(available / 2);
    let gateway_sessions = match config.gateway.max_sessions {
        Some(n) if n > most_sessions => {
            lowered.push(format!(
                "gateway.max_sessions = {n} is more than the descriptor limit allows (two per session): lowered \
                 to {most_sessions}"
            ));
            most_sessions
        }
        Some(n) => n,
        None => at_least_floor(gateway_fds / 2),
    };
    let gateway_pending_per_source = config.gateway.max_pending_per_source.map_or_else(
        || vouch_gateway::GatewayConfig::pending_per_source(gateway_sessions),
        |p| p.min(gateway_sessions),
    );
    Plan {
        descriptors,
        available,
        api,
        est,
        gateway_sessions,
        gateway_pending_per_source,
        lowered,
    }
}

impl Plan {
    /// Logs the limits (and warns about lowered values) at start.
    pub fn log(&self, role: Role) {
        for w in &self.lowered {
            tracing::warn!("{w}");
        }
        let descriptors = self
            .descriptors
            .map_or_else(|| "unlimited".to_owned(), |d| d.to_string());
        match role {
            Role::Serve => tracing::info!(
                %descriptors,
                api_connections = self.api.max_connections,
                est_connections = self.est.max_connections,
                gateway_sessions = self.gateway_sessions,
                "connection limits (from the descriptor limit, RLIMIT_NOFILE, unless configured)"
            ),
            Role::Gateway => tracing::info!(
                %descriptors,
                gateway_sessions = self.gateway_sessions,
                "connection limits (from the descriptor limit, RLIMIT_NOFILE, unless configured)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(text: &str) -> Config {
        crate::config::RawConfig::parse(text, std::path::Path::new("t.toml"))
            .unwrap()
            .validate(None)
            .unwrap()
    }

    #[test]
    fn shares_leave_headroom_and_fit_in_the_limit() {
        let c = config("");
        let p = plan(&c, Role::Serve, Some(20_000));
        // 20,000 less 128 + 32 + 1,250 of headroom, half each to API and EST.
        assert_eq!(p.available, 18_590);
        assert_eq!(p.api.max_connections, 9_295);
        assert_eq!(p.est.max_connections, 9_295);
        let c = config("[gateway]\nenabled = true\n");
        let p = plan(&c, Role::Serve, Some(20_000));
        let used = p.api.max_connections + p.est.max_connections + 2 * p.gateway_sessions;
        assert!(used as u64 <= p.available, "{p:?}");
        assert_eq!(p.gateway_sessions, 6_196);
        let p = plan(&c, Role::Gateway, Some(1024));
        assert_eq!(p.gateway_sessions, (1024 - 128 - 32 - 64) / 2);
        assert_eq!(gateway_alone(Some(1024), 16), p.gateway_sessions);
        assert!(p.lowered.is_empty());
    }

    #[test]
    fn configured_values_replace_shares_and_are_lowered_above_the_limit() {
        let c = config(
            "[server]\nmax_connections = 64\nmax_connections_per_source = 16\n[est]\nmax_connections = 5000\n\
             [gateway]\nmax_sessions = 100000\n",
        );
        let p = plan(&c, Role::Serve, Some(2048));
        assert_eq!(p.api.max_connections, 64);
        assert_eq!(p.api.max_connections_per_source, 16);
        let available = 2048 - (128 + 32 + 128);
        assert_eq!(p.est.max_connections, available as usize);
        assert_eq!(p.gateway_sessions, available as usize / 2);
        assert_eq!(p.lowered.len(), 2, "{:?}", p.lowered);
        assert!(p.lowered[1].contains("gateway.max_sessions = 100000"));
        // Unlimited descriptors: large, finite shares.
        let p = plan(&config(""), Role::Serve, None);
        assert!(p.api.max_connections > 100_000);
    }
}
