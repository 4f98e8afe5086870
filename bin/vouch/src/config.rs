//! Configuration: a TOML file, then `VOUCH_*` environment overrides, validated into a typed [`Config`].
//!
//! Two stages, as in ripgrep and vector: [`RawConfig`] mirrors the file and rejects unknown keys by name;
//! [`Config`] is what the rest of the program uses, every value checked.
//!
//! Why one long file (for now): the raw file mirror and the checked `Config` are two stages of one parse,
//! with a sixth of it tests; it moves with the runtime's configuration when `Runtime` lands (issue 17).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_FILE: &str = "vouch.toml";

/// The configuration file as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    pki: RawPki,
    #[serde(default)]
    est: RawEst,
    #[serde(default)]
    gateway: RawGateway,
    #[serde(default)]
    trust: vouch_respond::TrustSettings,
    #[serde(default)]
    audit: RawAudit,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    interval_secs: Option<u64>,
    sink: Option<PathBuf>,
    key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    enabled: Option<bool>,
    listen: Option<String>,
    upstream: Option<String>,
    upstream_tls: Option<bool>,
    upstream_ca: Option<PathBuf>,
    upstream_server_name: Option<String>,
    server_names: Option<Vec<String>>,
    client_cas: Option<Vec<PathBuf>>,
    max_packet_bytes: Option<usize>,
    connect_timeout_secs: Option<u64>,
    v311_denied_publish: Option<String>,
    max_sessions: Option<usize>,
    max_pending_per_source: Option<usize>,
    write_timeout_secs: Option<u64>,
    window_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawEst {
    listen: Option<String>,
    server_names: Option<Vec<String>>,
    manufacturer_cas: Option<Vec<PathBuf>>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
    max_handshakes: Option<usize>,
    handshake_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPki {
    trust_domain: Option<String>,
    public_url: Option<String>,
    device_lifetime_days: Option<u32>,
    enrollment_token_ttl_hours: Option<u32>,
    passphrase_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    max_body_bytes: Option<usize>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
    header_timeout_secs: Option<u64>,
    body_timeout_secs: Option<u64>,
    write_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    max_connections: Option<usize>,
    sqlite_durability: Option<String>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

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

    fn parse(s: &str) -> Result<Self> {
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

fn redact_url(url: &str) -> String {
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
const ENV_OTHER: &[&str] = &[
    "VOUCH_CONFIG",
    "VOUCH_CA_PASSPHRASE",
    "VOUCH_HSM_PIN",
    "VOUCH_PG_BINDIR",
    "VOUCH_TEST_POSTGRES_URL",
];

impl RawConfig {
    /// Parses a configuration file's text; unknown keys are errors that name the key.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        toml::from_str(text)
            .with_context(|| format!("invalid configuration in {}", origin.display()))
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        let num = |key: &str, v: String| -> Result<usize> {
            v.parse()
                .with_context(|| format!("{key}={v} is not a whole number"))
        };
        if let Some(v) = env("VOUCH_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
        if let Some(v) = env("VOUCH_LISTEN") {
            self.server.listen = Some(v);
        }
        if let Some(v) = env("VOUCH_MAX_BODY_BYTES") {
            self.server.max_body_bytes = Some(num("VOUCH_MAX_BODY_BYTES", v)?);
        }
        if let Some(v) = env("VOUCH_MAX_CONNECTIONS") {
            self.server.max_connections = Some(num("VOUCH_MAX_CONNECTIONS", v)?);
        }
        if let Some(v) = env("VOUCH_EST_MAX_CONNECTIONS") {
            self.est.max_connections = Some(num("VOUCH_EST_MAX_CONNECTIONS", v)?);
        }
        if let Some(v) = env("VOUCH_GATEWAY_MAX_SESSIONS") {
            self.gateway.max_sessions = Some(num("VOUCH_GATEWAY_MAX_SESSIONS", v)?);
        }
        if let Some(v) = env("VOUCH_STORE_URL") {
            self.store.url = Some(v);
        }
        if let Some(v) = env("VOUCH_STORE_MAX_CONNECTIONS") {
            self.store.max_connections = Some(num("VOUCH_STORE_MAX_CONNECTIONS", v)?);
        }
        if let Some(v) = env("VOUCH_SQLITE_DURABILITY") {
            self.store.sqlite_durability = Some(v);
        }
        if let Some(v) = env("VOUCH_LOG_FORMAT") {
            self.log.format = Some(v);
        }
        if let Some(v) = env("VOUCH_LOG_LEVEL") {
            self.log.level = Some(v);
        }
        if let Some(v) = env("VOUCH_PKI_TRUST_DOMAIN") {
            self.pki.trust_domain = Some(v);
        }
        if let Some(v) = env("VOUCH_PKI_PUBLIC_URL") {
            self.pki.public_url = Some(v);
        }
        if let Some(v) = env("VOUCH_EST_LISTEN") {
            self.est.listen = Some(v);
        }
        if let Some(v) = env("VOUCH_GATEWAY_ENABLED") {
            self.gateway.enabled = Some(match v.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => bail!("VOUCH_GATEWAY_ENABLED={other} is not true or false"),
            });
        }
        if let Some(v) = env("VOUCH_GATEWAY_LISTEN") {
            self.gateway.listen = Some(v);
        }
        if let Some(v) = env("VOUCH_GATEWAY_UPSTREAM") {
            self.gateway.upstream = Some(v);
        }
        if let Some(v) = env("VOUCH_AUDIT_INTERVAL_SECS") {
            self.audit.interval_secs = Some(num("VOUCH_AUDIT_INTERVAL_SECS", v)? as u64);
        }
        if let Some(v) = env("VOUCH_AUDIT_SINK") {
            self.audit.sink = Some(v.into());
        }
        if let Some(v) = env("VOUCH_AUDIT_KEY_FILE") {
            self.audit.key_file = Some(v.into());
        }
        if let Some(v) = env("VOUCH_EST_MANUFACTURER_CAS") {
            self.est.manufacturer_cas = Some(
                v.split(',')
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect(),
            );
        }
        Ok(())
    }

    /// Checks every value and fills in defaults.
    pub fn validate(self, source: Option<PathBuf>) -> Result<Config> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./vouch-data"));
        let listen_text = self
            .server
            .listen
            .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
        let listen: SocketAddr = listen_text.parse().with_context(|| {
            format!("server.listen `{listen_text}` is not an address like 127.0.0.1:8080")
        })?;
        let max_body_bytes = self.server.max_body_bytes.unwrap_or(1024 * 1024);
        if !(1024..=64 * 1024 * 1024).contains(&max_body_bytes) {
            bail!("server.max_body_bytes must be between 1 KiB and 64 MiB (got {max_body_bytes})");
        }
        let store = match self.store.url {
            Some(u) => StoreLocation::parse(&u)?,
            None => StoreLocation::Sqlite(data_dir.join("vouch.db")),
        };
        let max_connections = self.store.max_connections.unwrap_or(16);
        if !(1..=1000).contains(&max_connections) {
            bail!("store.max_connections must be between 1 and 1000 (got {max_connections})");
        }
        let sqlite_durability = match self.store.sqlite_durability.as_deref().unwrap_or("full") {
            "full" => vouch_store_sqlite::Durability::Full,
            "normal" => vouch_store_sqlite::Durability::Normal,
            other => bail!("store.sqlite_durability must be `full` or `normal` (got `{other}`)"),
        };
        let log_format = match self.log.format.as_deref().unwrap_or("human") {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => bail!("log.format must be `human` or `json` (got `{other}`)"),
        };
        let log_level = self.log.level.unwrap_or_else(|| "info".to_owned());
        tracing_subscriber::EnvFilter::try_new(&log_level).with_context(|| {
            format!("log.level `{log_level}` is not a valid filter (try info or vouch=debug)")
        })?;
        let pki = PkiConfig {
            trust_domain: self
                .pki
                .trust_domain
                .unwrap_or_else(|| "vouch.local".to_owned()),
            public_url: self
                .pki
                .public_url
                .unwrap_or_else(|| format!("http://{listen}"))
                .trim_end_matches('/')
                .to_owned(),
            device_lifetime_days: self.pki.device_lifetime_days.unwrap_or(7),
            enrollment_token_ttl_hours: self.pki.enrollment_token_ttl_hours.unwrap_or(24),
            passphrase_file: self.pki.passphrase_file,
        };
        pki.profile()
            .validate()
            .map_err(|e| anyhow::anyhow!("[pki]: {e}"))?;
        if !(1..=720).contains(&pki.enrollment_token_ttl_hours) {
            bail!("pki.enrollment_token_ttl_hours must be between 1 and 720");
        }
        let est_text = self
            .est
            .listen
            .unwrap_or_else(|| "127.0.0.1:8443".to_owned());
        let est_listen: SocketAddr = est_text.parse().with_context(|| {
            format!("est.listen `{est_text}` is not an address like 127.0.0.1:8443")
        })?;
        let est_server_names = self
            .est
            .server_names
            .unwrap_or_else(|| vec!["localhost".to_owned()]);
        let header_timeout_secs = secs(
            "server.header_timeout_secs",
            self.server.header_timeout_secs,
        )?;
        let body_timeout_secs = secs("server.body_timeout_secs", self.server.body_timeout_secs)?;
        let write_timeout_secs = secs("server.write_timeout_secs", self.server.write_timeout_secs)?;
        let server_connections = ListenerSettings {
            max_connections: count("server.max_connections", self.server.max_connections)?,
            max_connections_per_source: count(
                "server.max_connections_per_source",
                self.server.max_connections_per_source,
            )?,
            max_handshakes: None,
            handshake_timeout_secs: 10,
            header_timeout_secs,
            body_timeout_secs,
            write_timeout_secs,
        };
        let est_connections = ListenerSettings {
            max_connections: count("est.max_connections", self.est.max_connections)?,
            max_connections_per_source: count(
                "est.max_connections_per_source",
                self.est.max_connections_per_source,
            )?,
            max_handshakes: count("est.max_handshakes", self.est.max_handshakes)?,
            handshake_timeout_secs: secs(
                "est.handshake_timeout_secs",
                self.est.handshake_timeout_secs,
            )?,
            header_timeout_secs,
            body_timeout_secs,
            write_timeout_secs,
        };
        let gateway = self.gateway.validate()?;
        let audit = self.audit.validate()?;
        let trust = self
            .trust
            .check()
            .map_err(|e| anyhow::anyhow!("[trust]: {e}"))?;
        Ok(Config {
            gateway,
            trust,
            audit,
            pki,
            est_listen,
            est_server_names,
            est_manufacturer_cas: self.est.manufacturer_cas.unwrap_or_default(),
            server_connections,
            est_connections,
            data_dir,
            listen,
            max_body_bytes,
            store,
            max_connections,
            sqlite_durability,
            log_format,
            log_level,
            source,
        })
    }
}

impl RawAudit {
    fn validate(self) -> Result<AuditSettings> {
        let interval_secs = self.interval_secs.unwrap_or(60);
        if !(1..=86_400).contains(&interval_secs) {
            bail!("audit.interval_secs must be between 1 and 86400 (got {interval_secs})");
        }
        let nonempty = |key: &str, p: Option<PathBuf>| -> Result<Option<PathBuf>> {
            match p {
                Some(p) if p.as_os_str().is_empty() => bail!("audit.{key} must not be empty"),
                p => Ok(p),
            }
        };
        Ok(AuditSettings {
            interval_secs,
            sink: nonempty("sink", self.sink)?,
            key_file: nonempty("key_file", self.key_file)?,
        })
    }
}

impl RawGateway {
    fn validate(self) -> Result<GatewaySettings> {
        let addr = |key: &str, v: Option<String>, default: &str| -> Result<SocketAddr> {
            let text = v.unwrap_or_else(|| default.to_owned());
            text.parse()
                .with_context(|| format!("gateway.{key} `{text}` is not an address like {default}"))
        };
        let max_packet_bytes = self.max_packet_bytes.unwrap_or(256 * 1024);
        if !(1024..=vouch_mqtt::MAX_REMAINING_LENGTH).contains(&max_packet_bytes) {
            bail!(
                "gateway.max_packet_bytes must be between 1 KiB and 256 MiB (got {max_packet_bytes})"
            );
        }
        let connect_timeout_secs = self.connect_timeout_secs.unwrap_or(10);
        if !(1..=600).contains(&connect_timeout_secs) {
            bail!("gateway.connect_timeout_secs must be between 1 and 600");
        }
        let max_sessions = count("gateway.max_sessions", self.max_sessions)?;
        let max_pending_per_source = count(
            "gateway.max_pending_per_source",
            self.max_pending_per_source,
        )?;
        let write_timeout_secs = secs("gateway.write_timeout_secs", self.write_timeout_secs)?;
        let window_secs = self.window_secs.unwrap_or(10);
        if !(1..=3600).contains(&window_secs) {
            bail!("gateway.window_secs must be between 1 and 3600 (got {window_secs})");
        }
        let v311_denied_publish = match self.v311_denied_publish.as_deref().unwrap_or("drop") {
            "drop" => vouch_gateway::DeniedPublish::Drop,
            "disconnect" => vouch_gateway::DeniedPublish::Disconnect,
            other => {
                bail!("gateway.v311_denied_publish must be `drop` or `disconnect` (got `{other}`)")
            }
        };
        let upstream = addr("upstream", self.upstream, "127.0.0.1:1883")?;
        let upstream_tls = match self.upstream_tls.unwrap_or(false) {
            false => None,
            true => Some((
                self.upstream_ca,
                self.upstream_server_name
                    .unwrap_or_else(|| upstream.ip().to_string()),
            )),
        };
        if upstream_tls.is_none() && !upstream.ip().is_loopback() {
            bail!(
                "gateway.upstream {upstream} is not on loopback: set gateway.upstream_tls = true (and upstream_ca) so \
                 device traffic does not cross the network in clear"
            );
        }
        Ok(GatewaySettings {
            enabled: self.enabled.unwrap_or(false),
            listen: addr("listen", self.listen, "127.0.0.1:8883")?,
            upstream,
            upstream_tls,
            server_names: self
                .server_names
                .unwrap_or_else(|| vec!["localhost".to_owned()]),
            client_cas: self.client_cas.unwrap_or_default(),
            max_packet_bytes,
            connect_timeout_secs,
            v311_denied_publish,
            max_sessions,
            max_pending_per_source,
            write_timeout_secs,
            window_secs,
        })
    }
}

/// A connection count: when set, between 1 and a million.
fn count(key: &str, v: Option<usize>) -> Result<Option<usize>> {
    match v {
        Some(n) if !(1..=1_000_000).contains(&n) => {
            bail!("{key} must be between 1 and 1000000 (got {n})")
        }
        v => Ok(v),
    }
}

/// A timeout in seconds: between 1 and 3600, 10 when not set.
fn secs(key: &str, v: Option<u64>) -> Result<u64> {
    let v = v.unwrap_or(10);
    if !(1..=3600).contains(&v) {
        bail!("{key} must be between 1 and 3600 seconds (got {v})");
    }
    Ok(v)
}

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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        RawConfig::parse(text, Path::new("test.toml"))?.validate(None)
    }

    #[test]
    fn defaults_need_no_file() {
        let c = RawConfig::default().validate(None).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(
            c.store,
            StoreLocation::Sqlite(PathBuf::from("./vouch-data/vouch.db"))
        );
        assert_eq!(c.log_format, LogFormat::Human);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = format!(
            "{:#}",
            parse("data_dir = \"/x\"\nlisten = \"0.0.0.0:1\"\n").unwrap_err()
        );
        assert!(e.contains("unknown field `listen`"), "{e}");
        let e = format!(
            "{:#}",
            parse("[server]\nlisten = \"127.0.0.1:1\"\nmax_body = 5\n").unwrap_err()
        );
        assert!(e.contains("unknown field `max_body`"), "{e}");
        let e = format!("{:#}", parse("[stor]\nurl = \"x\"\n").unwrap_err());
        assert!(e.contains("unknown field `stor`"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        assert!(
            format!(
                "{:#}",
                parse("[server]\nlisten = \"localhost\"").unwrap_err()
            )
            .contains("not an address")
        );
        assert!(
            format!("{:#}", parse("[store]\nurl = \"mysql://x\"").unwrap_err())
                .contains("sqlite: or postgres://")
        );
        assert!(format!("{:#}", parse("[log]\nformat = \"xml\"").unwrap_err()).contains("human"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut raw =
            RawConfig::parse("[server]\nlisten = \"127.0.0.1:1\"", Path::new("t")).unwrap();
        raw.apply_env(&|k| match k {
            "VOUCH_LISTEN" => Some("127.0.0.1:9".into()),
            "VOUCH_STORE_URL" => Some("postgres://vouch:hunter2@db:5432/vouch".into()),
            _ => None,
        })
        .unwrap();
        let c = raw.validate(None).unwrap();
        assert_eq!(c.listen.port(), 9);
        assert_eq!(c.store.redacted(), "postgres://vouch:***@db:5432/vouch");
        let mut raw = RawConfig::default();
        let e = raw
            .apply_env(&|k| (k == "VOUCH_MAX_BODY_BYTES").then(|| "lots".into()))
            .unwrap_err();
        assert!(e.to_string().contains("VOUCH_MAX_BODY_BYTES=lots"));
    }

    #[test]
    fn audit_settings_have_defaults_bounds_and_overrides() {
        let c = RawConfig::default().validate(None).unwrap();
        assert_eq!(
            c.audit,
            AuditSettings {
                interval_secs: 60,
                sink: None,
                key_file: None
            }
        );
        let e = format!("{:#}", parse("[audit]\ninterval_secs = 0").unwrap_err());
        assert!(e.contains("audit.interval_secs"), "{e}");
        let e = format!("{:#}", parse("[audit]\nsinks = \"/x\"").unwrap_err());
        assert!(e.contains("unknown field `sinks`"), "{e}");
        let mut raw = RawConfig::parse("[audit]\nsink = \"/mnt/a.jsonl\"", Path::new("t")).unwrap();
        raw.apply_env(&|k| (k == "VOUCH_AUDIT_INTERVAL_SECS").then(|| "5".into()))
            .unwrap();
        let c = raw.validate(None).unwrap();
        assert_eq!(c.audit.interval_secs, 5);
        assert_eq!(c.audit.sink, Some(PathBuf::from("/mnt/a.jsonl")));
    }

    #[test]
    fn connection_limits_are_optional_checked_and_overridable() {
        let c = RawConfig::default().validate(None).unwrap();
        assert_eq!(c.server_connections.max_connections, None);
        assert_eq!(c.server_connections.header_timeout_secs, 10);
        assert_eq!(c.est_connections.handshake_timeout_secs, 10);
        assert_eq!(c.gateway.max_sessions, None);
        let c = parse(
            "[server]\nmax_connections = 64\nmax_connections_per_source = 8\nheader_timeout_secs = 2\n\
             [est]\nmax_handshakes = 16\n[gateway]\nmax_sessions = 500\nwrite_timeout_secs = 3\n",
        )
        .unwrap();
        assert_eq!(c.server_connections.max_connections, Some(64));
        assert_eq!(c.server_connections.max_connections_per_source, Some(8));
        assert_eq!(c.est_connections.header_timeout_secs, 2);
        assert_eq!(c.est_connections.max_handshakes, Some(16));
        assert_eq!(c.gateway.max_sessions, Some(500));
        assert_eq!(c.gateway.write_timeout_secs, 3);
        let e = format!(
            "{:#}",
            parse("[server]\nmax_connections = 0\n").unwrap_err()
        );
        assert!(e.contains("server.max_connections must be between"), "{e}");
        let e = format!(
            "{:#}",
            parse("[est]\nhandshake_timeout_secs = 0\n").unwrap_err()
        );
        assert!(e.contains("est.handshake_timeout_secs"), "{e}");
        let e = format!("{:#}", parse("[gateway]\nmax_conns = 1\n").unwrap_err());
        assert!(e.contains("unknown field `max_conns`"), "{e}");
        let mut raw = RawConfig::default();
        raw.apply_env(&|k| match k {
            "VOUCH_MAX_CONNECTIONS" => Some("32".into()),
            "VOUCH_EST_MAX_CONNECTIONS" => Some("48".into()),
            "VOUCH_GATEWAY_MAX_SESSIONS" => Some("7".into()),
            _ => None,
        })
        .unwrap();
        let c = raw.validate(None).unwrap();
        assert_eq!(c.server_connections.max_connections, Some(32));
        assert_eq!(c.est_connections.max_connections, Some(48));
        assert_eq!(c.gateway.max_sessions, Some(7));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
