//! The data directory is the service's own: the process creates everything private (umask 077), the
//! directory 0700 and its files 0600, and tightens what an older version or a careless copy left readable.
//! The database holds device records, sealed second factors and token hashes; the decision log names every
//! device's requests; the CA keys are encrypted, but their ciphertext is still nobody else's business.

use std::path::{Path, PathBuf};

use crate::error::{Context, Result};

/// The process's file-creation mask: no permission for the group or others on anything it creates
/// (SQLite's WAL and shared-memory files included, which SQLite creates with the database's own mode
/// masked by this).
pub fn private_umask() {
    #[cfg(unix)]
    {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
}

/// Creates `dir` (0700) if missing, and removes group and other permissions from it and from everything
/// under it (two levels: `ca/`, `discovery/`); says what it tightened.
pub fn private_data_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        let tightened = tighten(dir, 2)?;
        if !tightened.is_empty() {
            tracing::warn!(
                count = tightened.len(),
                first = %tightened[0].display(),
                "the data directory was readable by others: group and other permissions removed"
            );
        }
    }
    Ok(())
}

#[cfg(unix)]
fn tighten(path: &Path, depth: u32) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let meta = std::fs::symlink_metadata(path)
        .with_context(|| format!("reading the permissions of {}", path.display()))?;
    // A symbolic link is followed by nobody here: its target is not the service's to change.
    if meta.file_type().is_symlink() {
        return Ok(out);
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))
            .with_context(|| format!("making {} private", path.display()))?;
        out.push(path.to_owned());
    }
    if meta.is_dir() && depth > 0 {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", path.display()))?;
            out.extend(tighten(&entry.path(), depth - 1)?);
        }
    }
    Ok(out)
}

/// Writes `text` to a new file at `path` readable by its owner only (0600), refusing to overwrite one.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_data_directory_is_made_and_kept_private() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("vouch-data");
        private_data_dir(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        // What an older version left world-readable is tightened.
        std::fs::create_dir(dir.join("ca")).unwrap();
        std::fs::set_permissions(dir.join("ca"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("ca/root.pem"), "x").unwrap();
        std::fs::set_permissions(
            dir.join("ca/root.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(dir.join("vouch.db"), "x").unwrap();
        std::fs::set_permissions(dir.join("vouch.db"), std::fs::Permissions::from_mode(0o664))
            .unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_data_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("ca")), 0o700);
        assert_eq!(mode(&dir.join("ca/root.pem")), 0o600);
        assert_eq!(mode(&dir.join("vouch.db")), 0o600);
        write_private(&dir.join("secret"), "s").unwrap();
        assert_eq!(mode(&dir.join("secret")), 0o600);
        assert!(
            write_private(&dir.join("secret"), "again").is_err(),
            "never overwritten"
        );
    }
}
