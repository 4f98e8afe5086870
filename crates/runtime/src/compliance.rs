//! What compliance is checked against, read from the files `[compliance]` names: the shipped catalogue with
//! the operator's over it, and the operator's baselines (none: every baseline rule says it has no baseline).

use vouch_compliance::{Baselines, Catalogue};

use crate::config::Config;
use crate::error::{Context, Result};

/// The largest catalogue or baselines file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

fn read(path: &std::path::Path, what: &str) -> Result<String> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {what} {}", path.display()))?
        .len();
    if len > MAX_FILE_BYTES {
        crate::error::bail!(
            "{what} {} is {len} bytes, more than {MAX_FILE_BYTES}",
            path.display()
        );
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// The catalogue and baselines `config` names, checked.
pub fn inputs(config: &Config) -> Result<(Catalogue, Baselines)> {
    let catalogue = match &config.compliance.catalogue {
        None => Catalogue::shipped().context("the shipped compliance catalogue")?,
        Some(p) => Catalogue::shipped_with(&read(p, "the compliance catalogue")?)
            .with_context(|| format!("the compliance catalogue {}", p.display()))?,
    };
    let baselines = match &config.compliance.baselines {
        None => Baselines::default(),
        Some(p) => toml::from_str(&read(p, "the compliance baselines")?)
            .with_context(|| format!("the compliance baselines {}", p.display()))?,
    };
    Ok((catalogue, baselines))
}
