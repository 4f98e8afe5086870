//! `vouch config check`: the effective configuration, secrets redacted, with the derived connection limits
//! and every warning.

use std::process::ExitCode;

use vouch_runtime::config::{self, Config};
use vouch_runtime::limits;

/// Prints the effective configuration.
pub fn print(c: &Config) -> ExitCode {
    let source = c.source.as_ref().map_or_else(
        || "defaults (no file)".to_owned(),
        |p| p.display().to_string(),
    );
    println!("configuration OK (from {source}, then VOUCH_* overrides)");
    println!("data_dir                 = {}", c.data_dir.display());
    println!("server.listen            = {}", c.listen);
    println!("server.max_body_bytes    = {}", c.max_body_bytes);
    println!("store.url                = {}", c.store.redacted());
    println!("store.max_connections    = {}", c.max_connections);
    println!(
        "store.sqlite_durability  = {}",
        format!("{:?}", c.sqlite_durability).to_lowercase()
    );
    println!(
        "log.format               = {}",
        format!("{:?}", c.log_format).to_lowercase()
    );
    println!("log.level                = {}", c.log_level);
    println!("pki.trust_domain         = {}", c.pki.trust_domain);
    println!("pki.public_url           = {}", c.pki.public_url);
    println!("pki.device_lifetime_days = {}", c.pki.device_lifetime_days);
    println!("est.listen               = {}", c.est_listen);
    println!("audit.interval_secs      = {}", c.audit.interval_secs);
    if let Some(sink) = &c.audit.sink {
        println!("audit.sink               = {}", sink.display());
    }
    if let Some(f) = &c.compliance.catalogue {
        println!("compliance.catalogue     = {}", f.display());
    }
    if let Some(f) = &c.compliance.baselines {
        println!("compliance.baselines     = {}", f.display());
    }
    let fds = limits::open_files_limit();
    let l = limits::plan(c, limits::Role::Serve, fds);
    let gateway_alone = limits::plan(c, limits::Role::Gateway, fds);
    let auto = |set: bool| if set { "" } else { "  (derived)" };
    let descriptors = l
        .descriptors
        .map_or_else(|| "unlimited".to_owned(), |d| d.to_string());
    println!(
        "descriptor limit         = {descriptors}  (RLIMIT_NOFILE; {} for connections)",
        l.available
    );
    let (s, e) = (&c.server_connections, &c.est_connections);
    println!(
        "server.max_connections   = {}{}",
        l.api.max_connections,
        auto(s.max_connections.is_some())
    );
    println!(
        "server.max_connections_per_source = {}{}",
        l.api.max_connections_per_source,
        auto(s.max_connections_per_source.is_some())
    );
    println!(
        "server.header_timeout_secs = {}  (also the idle keep-alive timeout)",
        s.header_timeout_secs
    );
    println!("server.body_timeout_secs = {}", s.body_timeout_secs);
    println!("server.write_timeout_secs = {}", s.write_timeout_secs);
    println!(
        "est.max_connections      = {}{}",
        l.est.max_connections,
        auto(e.max_connections.is_some())
    );
    println!(
        "est.max_connections_per_source = {}{}",
        l.est.max_connections_per_source,
        auto(e.max_connections_per_source.is_some())
    );
    println!(
        "est.max_handshakes       = {}{}",
        l.est.max_handshakes,
        auto(e.max_handshakes.is_some())
    );
    println!("est.handshake_timeout_secs = {}", e.handshake_timeout_secs);
    // The gateway's share: inside `vouch serve` when enabled there, else as `vouch gateway` alone.
    let (g, with) = if c.gateway.enabled {
        (&l, "vouch serve")
    } else {
        (&gateway_alone, "vouch gateway")
    };
    let auto_g = |set: bool| {
        if set {
            String::new()
        } else {
            format!("  (derived, for `{with}`)")
        }
    };
    println!(
        "gateway.max_sessions     = {}{}",
        g.gateway_sessions,
        auto_g(c.gateway.max_sessions.is_some())
    );
    println!(
        "gateway.max_pending_per_source = {}{}",
        g.gateway_pending_per_source,
        auto_g(c.gateway.max_pending_per_source.is_some())
    );
    println!(
        "gateway.write_timeout_secs = {}",
        c.gateway.write_timeout_secs
    );
    let mut warnings: Vec<&String> = l.lowered.iter().collect();
    for w in &gateway_alone.lowered {
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    for w in warnings {
        println!("warning: {w}");
    }
    for var in config::unknown_env_vars() {
        println!("warning: unknown environment variable {var} is ignored (a typo?)");
    }
    ExitCode::SUCCESS
}
