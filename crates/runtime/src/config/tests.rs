use super::*;
use crate::error::{Result, RuntimeError};

fn chain(e: RuntimeError) -> String {
    e.chain()
}

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
    let e = chain(parse("data_dir = \"/x\"\nlisten = \"0.0.0.0:1\"\n").unwrap_err());
    assert!(e.contains("unknown field `listen`"), "{e}");
    let e = chain(parse("[server]\nlisten = \"127.0.0.1:1\"\nmax_body = 5\n").unwrap_err());
    assert!(e.contains("unknown field `max_body`"), "{e}");
    let e = chain(parse("[stor]\nurl = \"x\"\n").unwrap_err());
    assert!(e.contains("unknown field `stor`"), "{e}");
}

#[test]
fn bad_values_are_explained() {
    assert!(
        chain(parse("[server]\nlisten = \"localhost\"").unwrap_err()).contains("not an address")
    );
    assert!(
        chain(parse("[store]\nurl = \"mysql://x\"").unwrap_err())
            .contains("sqlite: or postgres://")
    );
    assert!(chain(parse("[log]\nformat = \"xml\"").unwrap_err()).contains("human"));
}

#[test]
fn environment_overrides_the_file() {
    let mut raw = RawConfig::parse("[server]\nlisten = \"127.0.0.1:1\"", Path::new("t")).unwrap();
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
    let e = chain(parse("[audit]\ninterval_secs = 0").unwrap_err());
    assert!(e.contains("audit.interval_secs"), "{e}");
    let e = chain(parse("[audit]\nsinks = \"/x\"").unwrap_err());
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
    let e = chain(parse("[server]\nmax_connections = 0\n").unwrap_err());
    assert!(e.contains("server.max_connections must be between"), "{e}");
    let e = chain(parse("[est]\nhandshake_timeout_secs = 0\n").unwrap_err());
    assert!(e.contains("est.handshake_timeout_secs"), "{e}");
    let e = chain(parse("[gateway]\nmax_conns = 1\n").unwrap_err());
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
