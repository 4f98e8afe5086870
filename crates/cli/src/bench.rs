//! `vouch bench`'s view of the binary: the benchmarks (in `tools/bench`) measure the import, CA loading and
//! connection limits the commands use, through this one adapter.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use vouch_bench::{Host, Imported};
use vouch_store::Store;

/// The binary's paths, as the benchmarks call them.
pub struct BinHost;

#[async_trait::async_trait]
impl Host for BinHost {
    async fn import_csv(&self, file: &Path, batch: u32, store: Arc<dyn Store>) -> Result<Imported> {
        let args = crate::import::ImportArgs {
            file: file.to_path_buf(),
            format: Some(crate::import::Format::Csv),
            batch_size: batch,
            dry_run: false,
        };
        let s = crate::import::import_file(&args, store).await?;
        Ok(Imported {
            created: s.outcome.created,
            elapsed: s.elapsed,
        })
    }

    fn load_issuing(
        &self,
        data_dir: &Path,
        passphrase_file: &Path,
    ) -> Result<(vouch_pki::IssuingCa, Vec<u8>)> {
        vouch_runtime::ca::load_issuing(data_dir, Some(passphrase_file))?
            .with_context(|| format!("no CA in {}", data_dir.display()))
    }

    fn gateway_sessions(&self, descriptors: u64) -> usize {
        // The gateway's default store pool: what `vouch gateway` derives its cap from.
        vouch_runtime::limits::gateway_alone(Some(descriptors), 16)
    }
}
