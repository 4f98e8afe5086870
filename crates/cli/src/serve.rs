//! `vouch serve` and `vouch gateway`: a [`Services`] plan handed to the runtime, and what the operator must
//! read at start.

use anyhow::Result;
use vouch_runtime::{Config, Runtime, Services};

/// Runs `services` until SIGINT or SIGTERM.
pub async fn run(config: Config, services: Services) -> Result<()> {
    let rt = Runtime::start(&config, services).await?;
    if let Some(file) = &rt.first_token_file {
        // The path is no secret; the token stays in the file (0600), never on stdout or in the log.
        println!(
            "\nVouch created the first admin API token and wrote it to {} (readable by this user only).\n\
             Move it to a password manager and delete the file. Use it as:\n\n    \
             curl -H \"Authorization: Bearer $(cat {})\" http://{}/api/v1/devices\n\n\
             It may enroll its second factor (POST /api/v1/mfa/totp) for 24 hours; later, on this host, \
             `vouch token mfa-reset ID` allows it again.\n\
             Lost it? On this host, `vouch token create --operator NAME --role admin` issues another.\n",
            file.display(),
            file.display(),
            config.listen
        );
    }
    Ok(rt.run_until_signal().await?)
}
