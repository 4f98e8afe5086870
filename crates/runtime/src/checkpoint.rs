//! The signed checkpoints that anchor the event log outside the database (`vouch audit verify` checks the
//! log against them).
//!
//! The checkpoint key is an Ed25519 key in its own file (`<data_dir>/audit-checkpoint.key`, 0600, created on
//! first use), its public key beside it (`audit-checkpoint.pub`, a PEM SubjectPublicKeyInfo an auditor can be
//! given alone). `vouch serve` signs the verified chain head every `[audit] interval_secs` when it moved, and
//! once at shutdown, appending each checkpoint to `<data_dir>/audit-checkpoints.jsonl`, to the operator's sink
//! (`[audit] sink`, a file on another mount or host) and to the log (collectors are an anchor too).

use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use vouch_events::{CheckpointSigner, PublicKey, SignedCheckpoint};
use vouch_store::{AuditWalk, CheckpointOutcome, Store};
use vouch_types::Clock;

use crate::config::Config;
use crate::error::{Context, Result, RuntimeError, bail};

/// The checkpoint key's file name in the data directory (unless `[audit] key_file` says otherwise).
pub const KEY_FILE: &str = "audit-checkpoint.key";
/// The file the server and `vouch audit checkpoint` append checkpoints to, in the data directory.
pub const CHECKPOINTS_FILE: &str = "audit-checkpoints.jsonl";
/// How much of a checkpoint file's end is read to find its newest checkpoint (a line is about 400 bytes).
const TAIL_BYTES: u64 = 64 * 1024;

/// Where the key, its public half and the checkpoint files are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The signing key.
    pub key: PathBuf,
    /// Its public key (PEM), for auditors.
    pub public: PathBuf,
    /// The checkpoint file in the data directory.
    pub local: PathBuf,
    /// The operator's second copy, if configured.
    pub sink: Option<PathBuf>,
}

impl Paths {
    /// Where `config` puts them.
    pub fn new(config: &Config) -> Self {
        let key = config
            .audit
            .key_file
            .clone()
            .unwrap_or_else(|| config.data_dir.join(KEY_FILE));
        Self {
            public: key.with_extension("pub"),
            key,
            local: config.data_dir.join(CHECKPOINTS_FILE),
            sink: config.audit.sink.clone(),
        }
    }
}

/// The Ed25519 key that signs checkpoints, read from (or created in) its file.
pub struct CheckpointKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl CheckpointSigner for CheckpointKey {
    fn public_key(&self) -> PublicKey {
        self.public
    }

    fn sign(&self, message: &[u8]) -> [u8; 64] {
        let sig = self.pair.sign(message);
        let mut out = [0u8; 64];
        out.copy_from_slice(sig.as_ref());
        out
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside a PEM block labelled `label`, or the bytes themselves if they are not PEM.
fn unpem(bytes: &[u8], label: &str) -> Result<Vec<u8>> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Ok(bytes.to_vec());
    };
    let begin = format!("-----BEGIN {label}-----");
    let Some(start) = text.find(&begin) else {
        if text.contains("-----BEGIN") {
            bail!("expected a PEM block `{begin}`");
        }
        return Ok(bytes.to_vec());
    };
    let body = &text[start + begin.len()..];
    let end = body
        .find("-----END")
        .context("the PEM block has no END line")?;
    let b64: String = body[..end].split_whitespace().collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .context("the PEM block is not base64")
}

impl CheckpointKey {
    /// Reads the key at `path`, or creates it (0600, never overwritten) with its public key at `public`. The
    /// public file is rewritten if it is missing or does not match the key.
    pub fn load_or_create(path: &Path, public: &Path) -> Result<Self> {
        let pair = match std::fs::read(path) {
            Ok(bytes) => {
                let der = unpem(&bytes, "PRIVATE KEY")
                    .with_context(|| format!("reading the checkpoint key {}", path.display()))?;
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).map_err(|e| {
                    RuntimeError::Invalid(format!(
                        "the checkpoint key {} is not an Ed25519 PKCS#8 key: {e}",
                        path.display()
                    ))
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                    .map_err(|_| {
                        RuntimeError::Invalid("no randomness for the checkpoint key".into())
                    })?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                }
                let mut f = private_file(path, true)
                    .with_context(|| format!("creating the checkpoint key {}", path.display()))?;
                f.write_all(pem("PRIVATE KEY", doc.as_ref()).as_bytes())
                    .and_then(|()| f.sync_all())
                    .with_context(|| format!("writing the checkpoint key {}", path.display()))?;
                tracing::info!(key = %path.display(), "created the audit checkpoint key");
                Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|e| {
                    RuntimeError::Invalid(format!("the new checkpoint key does not load: {e}"))
                })?
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("reading the checkpoint key {}", path.display()));
            }
        };
        let mut raw = [0u8; 32];
        raw.copy_from_slice(pair.public_key().as_ref());
        let key = Self {
            pair,
            public: PublicKey(raw),
        };
        let wanted = pem("PUBLIC KEY", &key.public.to_spki_der());
        match std::fs::read_to_string(public) {
            Ok(text) if text == wanted => {}
            found => {
                if found.is_ok() {
                    tracing::warn!(
                        public = %public.display(),
                        "the checkpoint public key file does not match the key: rewriting it"
                    );
                }
                std::fs::write(public, wanted)
                    .with_context(|| format!("writing {}", public.display()))?;
            }
        }
        Ok(key)
    }
}

/// Reads a checkpoint public key (PEM SubjectPublicKeyInfo, or its DER).
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "reading the checkpoint public key {} (give one with --key)",
            path.display()
        )
    })?;
    let der = unpem(&bytes, "PUBLIC KEY")
        .with_context(|| format!("reading the checkpoint public key {}", path.display()))?;
    PublicKey::from_spki_der(&der)
        .with_context(|| format!("{} is not an Ed25519 public key", path.display()))
}

/// Opens `path` for appending (or, with `new`, creates it and fails if it exists); created 0600.
fn private_file(path: &Path, new: bool) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    if new {
        opts.write(true).create_new(true);
    } else {
        opts.append(true).create(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
}

/// Appends `line` to `path` in one write (appends of a line are atomic: the server and the CLI may share it).
fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = private_file(path, false).with_context(|| format!("opening {}", path.display()))?;
    f.write_all(format!("{line}\n").as_bytes())
        .with_context(|| format!("appending to {}", path.display()))?;
    f.sync_data()
        .with_context(|| format!("syncing {}", path.display()))
}

/// The newest checkpoint in `path` that `key` signed, if any (only the file's end is read).
fn newest_own(path: &Path, key: &PublicKey) -> Result<Option<SignedCheckpoint>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let len = f
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    f.seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .with_context(|| format!("reading {}", path.display()))?;
    let mut tail = String::new();
    f.take(TAIL_BYTES)
        .read_to_string(&mut tail)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(tail
        .lines()
        .rev()
        .filter_map(|l| SignedCheckpoint::parse(l).ok())
        .find(|c| c.verify(key).is_ok()))
}

/// Signs and keeps checkpoints: the walk of the log so far, the key, and where checkpoints go.
pub struct Writer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    key: CheckpointKey,
    /// Where its checkpoints go.
    pub paths: Paths,
    walk: AuditWalk,
    /// The newest checkpoint this key signed (from the local file at start, then ours).
    previous: Option<SignedCheckpoint>,
    /// Set once the log fails verification: nothing is signed any more.
    refused: Option<String>,
}

impl Writer {
    /// A writer resuming after the newest checkpoint `key` signed in the local file.
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        key: CheckpointKey,
        paths: Paths,
    ) -> Result<Self> {
        let previous = newest_own(&paths.local, &key.public)?;
        let mut walk = AuditWalk::new();
        if let Some(p) = &previous {
            walk.watch(p.checkpoint.seq);
        }
        Ok(Self {
            store,
            clock,
            key,
            paths,
            walk,
            previous,
            refused: None,
        })
    }

    /// Reads the log to its end; refuses from now on if it no longer verifies or no longer holds the previous
    /// checkpoint's head (a checkpoint must never vouch for a rewritten log).
    async fn catch_up(&mut self) -> Result<()> {
        if self.refused.is_some() {
            return Ok(());
        }
        self.walk
            .advance(&*self.store, None)
            .await
            .context("reading the event log")?;
        if let Some(b) = self.walk.broken() {
            self.refused = Some(format!("the hash chain is broken: {b}"));
        } else if let Some(p) = &self.previous {
            let outcome = self.walk.check(&p.checkpoint);
            if outcome != CheckpointOutcome::Matches {
                let check = vouch_store::CheckpointCheck {
                    checkpoint: p.checkpoint,
                    outcome,
                };
                self.refused = Some(check.to_string());
            }
        }
        Ok(())
    }

    /// A checkpoint of the head now, if the log verifies; `force` signs even when the head did not move.
    pub async fn sign(&mut self, force: bool) -> Result<Option<SignedCheckpoint>> {
        self.catch_up().await?;
        if let Some(why) = &self.refused {
            bail!("the audit log failed verification, no checkpoint signed: {why}");
        }
        let Some(c) = self.walk.checkpoint(self.clock.now()) else {
            return Ok(None);
        };
        if !force && self.previous.is_some_and(|p| p.checkpoint.seq == c.seq) {
            return Ok(None);
        }
        let signed = c.sign(&self.key);
        // The previous checkpoint is now this one: later walks must still hold it.
        self.walk.watch(c.seq);
        self.previous = Some(signed);
        Ok(Some(signed))
    }

    /// Writes a checkpoint everywhere it goes: the local file (an error), the sink and the log.
    pub fn write(&self, signed: &SignedCheckpoint) -> Result<()> {
        let line = signed.to_line();
        tracing::info!(
            target: "vouch::audit",
            seq = signed.checkpoint.seq.0,
            checkpoint = %line,
            "audit checkpoint signed"
        );
        let local = append_line(&self.paths.local, &line);
        if let Some(sink) = &self.paths.sink
            && let Err(e) = append_line(sink, &line)
        {
            tracing::error!(sink = %sink.display(), error = %format!("{e:#}"), "could not write the audit checkpoint to the sink");
        }
        local
    }
}

/// The checkpoint writer `vouch serve` runs: every `[audit] interval_secs`, when the head moved, and once when
/// stopped.
pub struct Checkpointer {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Checkpointer {
    /// Loads (or creates) the key and starts the schedule; the first walk of the log happens in the background.
    pub fn start(config: &Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Result<Self> {
        let paths = Paths::new(config);
        let key = CheckpointKey::load_or_create(&paths.key, &paths.public)?;
        let mut writer = Writer::new(store, clock, key, paths)?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let period = Duration::from_secs(config.audit.interval_secs);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let last = tokio::select! {
                    _ = tick.tick() => false,
                    _ = stopped.changed() => true,
                };
                match writer.sign(false).await {
                    Ok(Some(signed)) => {
                        if let Err(e) = writer.write(&signed) {
                            tracing::error!(error = %format!("{e:#}"), "could not write the audit checkpoint");
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "audit checkpoint"),
                }
                if last {
                    return;
                }
            }
        });
        tracing::info!(
            interval_secs = config.audit.interval_secs,
            sink = config.audit.sink.as_ref().map(|p| p.display().to_string()),
            "signing audit checkpoints"
        );
        Ok(Self { stop, task })
    }

    /// Signs a last checkpoint (if the head moved) and stops.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the audit checkpoint task failed");
        }
    }
}
