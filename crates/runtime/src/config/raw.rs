//! The configuration file as written (`deny_unknown_fields`: a misspelt key is an error naming it), the
//! `VOUCH_*` overrides, and the checks that make a [`Config`] of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    AuditSettings, ComplianceSettings, Config, GatewaySettings, ListenerSettings, LogFormat,
    PkiConfig, StoreLocation,
};
use crate::error::{Context, Result, RuntimeError, bail};

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
    #[serde(default)]
    compliance: RawCompliance,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawCompliance {
    catalogue: Option<PathBuf>,
    baselines: Option<PathBuf>,
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

impl RawConfig {
    /// Parses a configuration file's text; unknown keys are errors that name the key.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        toml::from_str(text)
            .with_context(|| format!("invalid configuration in {}", origin.display()))
    }

    pub(crate) fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
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
            .map_err(|e| RuntimeError::Invalid(format!("[pki]: {e}")))?;
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
            .map_err(|e| RuntimeError::Invalid(format!("[trust]: {e}")))?;
        let compliance = ComplianceSettings {
            catalogue: self.compliance.catalogue,
            baselines: self.compliance.baselines,
        };
        Ok(Config {
            compliance,
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
