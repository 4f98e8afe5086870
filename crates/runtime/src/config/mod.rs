//! Configuration: a TOML file, then `VOUCH_*` environment overrides, validated into a typed [`Config`].
//!
//! Two stages, as in ripgrep and vector: [`RawConfig`] mirrors the file and rejects unknown keys by name;
//! [`Config`] is what the rest of the program uses, every value checked.
//!
//! This module holds the checked values and loading; `raw` the file's mirror, the environment overrides and
//! the checks between them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Context, Result, bail};

mod raw;

pub use raw::RawConfig;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "vouch.toml";

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server (the URL may hold a password: never print it, use [`StoreLocation::redacted`]).
    Postgres(String),
}

impl StoreLocation {
    /// The location with any password replaced by `***`, for logs and `config check`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(p) => format!("sqlite:{}", p.display()),
            Self::Postgres(url) => redact_url(url),
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self> {
        if let Some(rest) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                bail!("store.url `sqlite:` needs a file path, e.g. sqlite:./vouch-data/vouch.db");
            }
            return Ok(Self::Sqlite(PathBuf::from(rest)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(Self::Postgres(s.to_owned()));
        }
        bail!(
            "store.url must start with sqlite: or postgres:// (got `{}`)",
            redact_url(s)
        )
    }
}

pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let auth_end = rest.find('@');
    let host_start = rest.find('/').unwrap_or(rest.len());
    match auth_end {
        Some(at) if at < host_start => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!("{}{masked}{}", &url[..scheme_end], &rest[at..])
        }
        _ => url.to_owned(),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people at a terminal.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where Vouch keeps its files.
    pub data_dir: PathBuf,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
    /// Where the store lives.
    pub store: StoreLocation,
    /// At most this many store connections (PostgreSQL).
    pub max_connections: usize,
    /// When SQLite commits are durable.
    pub sqlite_durability: vouch_store_sqlite::Durability,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (`info`, `vouch=debug,tower_http=info`, …).
    pub log_level: String,
    /// The file the configuration came from, if any.
    pub source: Option<PathBuf>,
    /// How certificates are issued and where revocation is published.
    pub pki: PkiConfig,
    /// Where the EST server (HTTPS) listens, when a CA exists.
    pub est_listen: SocketAddr,
    /// The DNS names in the EST server's certificate.
    pub est_server_names: Vec<String>,
    /// Manufacturer CA certificates (PEM files) whose IDevIDs may bootstrap over EST.
    pub est_manufacturer_cas: Vec<PathBuf>,
    /// Connection limits of the API listener (`[server]`).
    pub server_connections: ListenerSettings,
    /// Connection limits of the EST listener (`[est]`; its timeouts are `[server]`'s).
    pub est_connections: ListenerSettings,
    /// The MQTT gateway.
    pub gateway: GatewaySettings,
    /// The trust service: firmware policies, zones, the behaviour penalties' half-life, playbooks (`[trust]`).
    pub trust: vouch_respond::TrustSettings,
    /// Signed checkpoints of the event log (`[audit]`).
    pub audit: AuditSettings,
    /// What compliance is checked against (`[compliance]`).
    pub compliance: ComplianceSettings,
}

/// What compliance is checked against (`[compliance]`): the operator's files over the shipped catalogue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ComplianceSettings {
    /// A catalogue file whose controls add to or replace the shipped ones (`catalogue/controls.toml`'s shape).
    pub catalogue: Option<PathBuf>,
    /// The operator's baselines: golden configurations, minimum firmware, port allow-lists, support ends.
    pub baselines: Option<PathBuf>,
}

/// Signed checkpoints of the event log (`[audit]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSettings {
    /// How often `vouch serve` signs the chain head (when it moved).
    pub interval_secs: u64,
    /// A second file each checkpoint is appended to: somewhere the database's owner cannot write.
    pub sink: Option<PathBuf>,
    /// The signing key (default `<data_dir>/audit-checkpoint.key`); its public key is beside it (`.pub`).
    pub key_file: Option<PathBuf>,
}

/// Connection limits of one HTTP listener as configured; counts left out are derived from the descriptor
/// limit at start (`crate::limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSettings {
    /// Connections held at once.
    pub max_connections: Option<usize>,
    /// Connections held at once from one address (IPv6: one /64).
    pub max_connections_per_source: Option<usize>,
    /// TLS handshakes in progress at once (EST).
    pub max_handshakes: Option<usize>,
    /// Time allowed for a TLS handshake (EST).
    pub handshake_timeout_secs: u64,
    /// Time allowed for a request head, and the most an idle keep-alive connection is kept.
    pub header_timeout_secs: u64,
    /// The longest pause allowed inside a request body.
    pub body_timeout_secs: u64,
    /// How long a write may stay blocked (the client does not read) before the connection is dropped.
    pub write_timeout_secs: u64,
}

/// The MQTT gateway's settings (`[gateway]`).
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Whether `vouch serve` runs the gateway too (`vouch gateway` always does).
    pub enabled: bool,
    /// Where devices connect (MQTT over TLS).
    pub listen: SocketAddr,
    /// The broker behind it.
    pub upstream: SocketAddr,
    /// TLS to the broker: the CA file that signed its certificate and the name it must carry.
    pub upstream_tls: Option<(Option<PathBuf>, String)>,
    /// The DNS names in the gateway's server certificate.
    pub server_names: Vec<String>,
    /// Issuers (PEM files) of imported device certificates, trusted besides Vouch's own CAs.
    pub client_cas: Vec<PathBuf>,
    /// The largest MQTT packet accepted.
    pub max_packet_bytes: usize,
    /// Time allowed for the handshake and for CONNECT, each.
    pub connect_timeout_secs: u64,
    /// What a refused PUBLISH from a 3.1.1 client gets.
    pub v311_denied_publish: vouch_gateway::DeniedPublish,
    /// The most sessions held at once (`None`: what the descriptor limit allows, `crate::limits`).
    pub max_sessions: Option<usize>,
    /// The most unauthenticated connections from one address (`None`: derived from `max_sessions`).
    pub max_pending_per_source: Option<usize>,
    /// How long a write to the device or the broker may stay blocked before the session is closed.
    pub write_timeout_secs: u64,
    /// The length of a traffic observation window, in seconds.
    pub window_secs: u64,
}

/// The PKI settings.
#[derive(Debug, Clone)]
pub struct PkiConfig {
    /// The SPIFFE trust domain of device identities.
    pub trust_domain: String,
    /// The base URL devices and relying parties reach this server at (CRL and OCSP URLs in certificates).
    pub public_url: String,
    /// Device certificate lifetime.
    pub device_lifetime_days: u32,
    /// Enrollment token lifetime.
    pub enrollment_token_ttl_hours: u32,
    /// Where the CA passphrase is read from instead of VOUCH_CA_PASSPHRASE.
    pub passphrase_file: Option<PathBuf>,
}

/// The environment variables that override the file, and the key each one sets.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("VOUCH_DATA_DIR", "data_dir"),
    ("VOUCH_LISTEN", "server.listen"),
    ("VOUCH_MAX_BODY_BYTES", "server.max_body_bytes"),
    ("VOUCH_MAX_CONNECTIONS", "server.max_connections"),
    ("VOUCH_STORE_URL", "store.url"),
    ("VOUCH_STORE_MAX_CONNECTIONS", "store.max_connections"),
    ("VOUCH_SQLITE_DURABILITY", "store.sqlite_durability"),
    ("VOUCH_LOG_FORMAT", "log.format"),
    ("VOUCH_LOG_LEVEL", "log.level"),
    ("VOUCH_PKI_TRUST_DOMAIN", "pki.trust_domain"),
    ("VOUCH_PKI_PUBLIC_URL", "pki.public_url"),
    ("VOUCH_EST_LISTEN", "est.listen"),
    ("VOUCH_EST_MANUFACTURER_CAS", "est.manufacturer_cas"),
    ("VOUCH_EST_MAX_CONNECTIONS", "est.max_connections"),
    ("VOUCH_GATEWAY_ENABLED", "gateway.enabled"),
    ("VOUCH_GATEWAY_LISTEN", "gateway.listen"),
    ("VOUCH_GATEWAY_UPSTREAM", "gateway.upstream"),
    ("VOUCH_AUDIT_INTERVAL_SECS", "audit.interval_secs"),
    ("VOUCH_AUDIT_SINK", "audit.sink"),
    ("VOUCH_AUDIT_KEY_FILE", "audit.key_file"),
    ("VOUCH_GATEWAY_MAX_SESSIONS", "gateway.max_sessions"),
];

/// `VOUCH_*` variables that are not configuration keys but are known to Vouch's tools.
pub(crate) const ENV_OTHER: &[&str] = &[
    "VOUCH_CONFIG",
    "VOUCH_CA_PASSPHRASE",
    "VOUCH_HSM_PIN",
    "VOUCH_PG_BINDIR",
    "VOUCH_TEST_POSTGRES_URL",
];

/// `VOUCH_*` variables in the environment that Vouch does not know (likely typos).
pub fn unknown_env_vars() -> Vec<String> {
    std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("VOUCH_"))
        .filter(|k| !ENV_KEYS.iter().any(|(e, _)| e == k) && !ENV_OTHER.contains(&k.as_str()))
        .collect()
}

/// Loads the configuration: `explicit` file (or `VOUCH_CONFIG`, or `./vouch.toml` if present), then the
/// environment.
pub fn load(explicit: Option<&Path>) -> Result<Config> {
    let env_file = std::env::var_os("VOUCH_CONFIG").map(PathBuf::from);
    let path = explicit.map(Path::to_path_buf).or(env_file);
    let (mut raw, source) = match path {
        Some(p) => {
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            (RawConfig::parse(&text, &p)?, Some(p))
        }
        None if Path::new(DEFAULT_FILE).exists() => {
            let p = PathBuf::from(DEFAULT_FILE);
            let text =
                std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
            (RawConfig::parse(&text, &p)?, Some(p))
        }
        None => (RawConfig::default(), None),
    };
    raw.apply_env(&|k| std::env::var(k).ok())?;
    raw.validate(source)
}

impl PkiConfig {
    /// The device certificate profile these settings describe.
    pub fn profile(&self) -> vouch_pki::DeviceProfile {
        vouch_pki::DeviceProfile {
            trust_domain: self.trust_domain.clone(),
            lifetime_days: self.device_lifetime_days,
            crl_url: format!("{}/pki/crl", self.public_url),
            ocsp_url: format!("{}/pki/ocsp", self.public_url),
        }
    }

    /// The identity service's settings.
    pub fn settings(&self) -> vouch_identity::PkiSettings {
        vouch_identity::PkiSettings {
            profile: self.profile(),
            enrollment_token_ttl_hours: self.enrollment_token_ttl_hours,
            crl_validity_hours: 24,
            ocsp_validity_minutes: 60,
        }
    }
}

#[cfg(test)]
mod tests;
