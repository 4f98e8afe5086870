//! The certificate authority in the data directory (`<data_dir>/ca`, made by `vouch ca init`): loading the
//! issuing CA, its passphrase or HSM PIN, and the issuers an imported certificate may chain to.

use std::path::Path;

use vouch_pki::Passphrase;

use crate::config::Config;
use crate::error::{Context, Result};

/// Where an HSM-held issuing key is found: module, token and key label (no secret).
pub const HSM_FILE: &str = "issuing.key.hsm";

/// The HSM user PIN, from VOUCH_HSM_PIN.
pub fn hsm_pin() -> Result<String> {
    std::env::var("VOUCH_HSM_PIN")
        .context("the CA keys are in an HSM: set VOUCH_HSM_PIN to the token's user PIN")
}

/// The CA passphrase: from `file`, else `VOUCH_CA_PASSPHRASE`.
pub fn passphrase(file: Option<&Path>) -> Result<Passphrase> {
    let text = match file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the passphrase file {}", f.display()))?,
        None => std::env::var("VOUCH_CA_PASSPHRASE").context(
            "the CA passphrase is needed: set VOUCH_CA_PASSPHRASE or pass --passphrase-file FILE",
        )?,
    };
    Passphrase::new(text).context("the CA passphrase")
}

/// Loads the issuing CA from `<data_dir>/ca` if one exists (the passphrase is then required).
pub fn load_issuing(
    data_dir: &Path,
    passphrase_file: Option<&Path>,
) -> Result<Option<(vouch_pki::IssuingCa, Vec<u8>)>> {
    let dir = data_dir.join("ca");
    let (cert, key) = (dir.join("issuing.pem"), dir.join("issuing.key.pem"));
    if !cert.exists() {
        return Ok(None);
    }
    if dir.join(HSM_FILE).exists() {
        let text =
            std::fs::read_to_string(dir.join(HSM_FILE)).context("reading the HSM key location")?;
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::to_owned)
                .with_context(|| format!("{HSM_FILE} has no `{k}=` line"))
        };
        let loc = vouch_pki::hsm::HsmLocation {
            module: field("module")?.into(),
            token: field("token")?,
            key: field("key")?,
        };
        let key = vouch_pki::hsm::HsmKey::open(&loc, &hsm_pin()?)
            .context("opening the CA key in the HSM")?;
        let cert_pem = std::fs::read_to_string(&cert)
            .with_context(|| format!("reading {}", cert.display()))?;
        let root_pem = std::fs::read_to_string(dir.join("root.pem"))
            .context("reading the root certificate")?;
        let ca = vouch_pki::IssuingCa::load_with_key(&cert_pem, std::sync::Arc::new(key))
            .with_context(|| format!("loading the CA in {} with its HSM key", dir.display()))?;
        let root_der =
            vouch_pki::cert_der_from_pem(&root_pem).context("reading the root certificate")?;
        return Ok(Some((ca, root_der)));
    }
    let pass = passphrase(passphrase_file).context("a CA exists in the data directory")?;
    let cert_pem =
        std::fs::read_to_string(&cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem =
        std::fs::read_to_string(&key).with_context(|| format!("reading {}", key.display()))?;
    let root_pem =
        std::fs::read_to_string(dir.join("root.pem")).context("reading the root certificate")?;
    let root_der =
        vouch_pki::cert_der_from_pem(&root_pem).context("reading the root certificate")?;
    let ca = vouch_pki::IssuingCa::load(&cert_pem, &key_pem, &pass)
        .with_context(|| format!("loading the CA in {}", dir.display()))?;
    Ok(Some((ca, root_der)))
}

/// The CAs an imported certificate may chain to: Vouch's own (root and issuing, if `vouch ca init` ran) and
/// the issuers configured for imported certificates (`[gateway] client_cas`), as the gateway trusts them.
pub fn import_issuers(config: &Config) -> Result<Vec<Vec<u8>>> {
    let ca = config.data_dir.join("ca");
    let own: Vec<_> = [ca.join("root.pem"), ca.join("issuing.pem")]
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    let mut issuers = read_certs(&own, "the CA")?;
    issuers.extend(read_certs(&config.gateway.client_cas, "the CA")?);
    Ok(issuers)
}

/// The DER of each PEM certificate file in `paths`; an error names the file as `what` (a client CA, …).
pub fn read_certs(paths: &[std::path::PathBuf], what: &str) -> Result<Vec<Vec<u8>>> {
    paths
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("reading {what} {}", path.display()))?;
            vouch_pki::cert_der_from_pem(&pem)
                .with_context(|| format!("reading {what} {}", path.display()))
        })
        .collect()
}
