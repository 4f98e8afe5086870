//! `vouch sim`: the fleet player of `vouch-play` against the configured deployment (its store, EST listener
//! and gateway).

use anyhow::{Context, Result};
use vouch_play::sim::{DEFAULT_WINDOW_SECS, SimArgs, Target, play, print_summary, write_windows};

/// Runs `vouch sim` against the configured deployment (`vouch serve` with its gateway enabled).
pub async fn run(mut args: SimArgs, config: &vouch_runtime::config::Config) -> Result<()> {
    args.window_secs
        .get_or_insert(u32::try_from(config.gateway.window_secs).unwrap_or(DEFAULT_WINDOW_SECS));
    if let Some(path) = &args.windows_out {
        return write_windows(&args.fleet()?, path);
    }
    let store = vouch_runtime::open_store(config).await?;
    let (ca, root) = vouch_runtime::ca::load_issuing(
        &config.data_dir,
        config.pki.passphrase_file.as_deref(),
    )?
    .context("no certificate authority: run `vouch ca init` and start `vouch serve` first")?;
    let target = Target {
        store,
        est: config.est_listen,
        gateway: config.gateway.listen,
        root,
        issuing: ca.cert_der().to_vec(),
        token_ttl_hours: config.pki.enrollment_token_ttl_hours,
    };
    let summary = play(&args, &target).await?;
    print_summary(&summary, args.json)
}
