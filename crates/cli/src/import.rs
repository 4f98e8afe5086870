//! `vouch device import`: bulk registration from CSV, JSON Lines or a JSON array. The records themselves
//! (columns, ids, the reserved-label rule) are `vouch_control::import`'s; this reads the file and renders.
//!
//! Records are validated as they are read and written in batches, one transaction each. Every record's id is
//! its explicit `id` or is derived from its serial (else its MAC), so re-running an import after a crash or a
//! `kill -9` skips what was committed and finishes the rest: no duplicates, nothing lost.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vouch_control::import::{CSV_COLUMNS, CsvRecord, JsonRecord};
use vouch_store::{Change, ImportOutcome, Store};
use vouch_types::{Clock, NewDevice, SystemClock};

use crate::output::{self, Output};

/// The file formats `import` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// One JSON array of objects.
    Json,
}

/// Arguments of `device import`.
#[derive(Args)]
pub struct ImportArgs {
    /// The file to import.
    pub file: PathBuf,
    /// Its format (default: from the extension: .csv, .jsonl/.ndjson, .json).
    #[arg(long)]
    pub format: Option<Format>,
    /// Records per transaction (larger imports faster; the writer is held that long per batch).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Validate every record, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Reads records one at a time and tells how far into the file it is.
enum Reader {
    Csv(csv::Reader<File>, csv::StringRecord, csv::StringRecord),
    Lines(std::io::Lines<BufReader<File>>, u64),
    Array(std::vec::IntoIter<JsonRecord>, u64),
}

impl Reader {
    fn open(path: &PathBuf, format: Format) -> Result<(Self, u64)> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(match format {
            Format::Csv => {
                let mut r = csv::ReaderBuilder::new()
                    .trim(csv::Trim::All)
                    .from_reader(file);
                let headers = r.headers().context("reading the CSV header row")?.clone();
                for h in &headers {
                    if !CSV_COLUMNS.contains(&h) {
                        bail!(
                            "unknown CSV column `{h}`; known columns: {}",
                            CSV_COLUMNS.join(", ")
                        );
                    }
                }
                (Self::Csv(r, headers, csv::StringRecord::new()), size)
            }
            Format::Jsonl => (Self::Lines(BufReader::new(file).lines(), 0), size),
            Format::Json => {
                let all: Vec<JsonRecord> = serde_json::from_reader(BufReader::new(file))
                    .with_context(|| {
                        format!("{} is not a JSON array of device records", path.display())
                    })?;
                let n = all.len() as u64;
                (Self::Array(all.into_iter(), 0), n)
            }
        })
    }

    /// The next record, `None` at the end; errors carry no position (the caller adds it).
    fn next(&mut self) -> Option<Result<NewDevice>> {
        match self {
            Self::Csv(r, headers, rec) => match r.read_record(rec) {
                Ok(false) => None,
                Ok(true) => Some(
                    rec.deserialize::<CsvRecord>(Some(headers))
                        .map_err(anyhow::Error::from)
                        .and_then(|r| Ok(r.into_new()?)),
                ),
                Err(e) => Some(Err(e.into())),
            },
            Self::Lines(lines, pos) => loop {
                match lines.next()? {
                    Err(e) => return Some(Err(e.into())),
                    Ok(line) => {
                        *pos += line.len() as u64 + 1;
                        if line.trim().is_empty() {
                            continue;
                        }
                        return Some(
                            serde_json::from_str::<JsonRecord>(&line)
                                .map_err(anyhow::Error::from)
                                .and_then(|r| Ok(r.into_new()?)),
                        );
                    }
                }
            },
            Self::Array(it, pos) => {
                *pos += 1;
                it.next().map(|r| Ok(r.into_new()?))
            }
        }
    }

    fn position(&self) -> u64 {
        match self {
            Self::Csv(r, _, _) => r.position().byte(),
            Self::Lines(_, pos) | Self::Array(_, pos) => *pos,
        }
    }
}

fn format_of(args: &ImportArgs) -> Result<Format> {
    if let Some(f) = args.format {
        return Ok(f);
    }
    match args
        .file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
        Some("json") => Ok(Format::Json),
        _ => bail!(
            "cannot tell the format of {} from its extension: pass --format csv|jsonl|json",
            args.file.display()
        ),
    }
}

/// What the reading thread hands to the writer: a batch and how far into the file it ends.
struct Batch {
    devices: Vec<NewDevice>,
    records: u64,
    position: u64,
}

/// Reads and validates records on its own thread, so that parsing the next batch overlaps writing this one.
fn read_batches(
    mut reader: Reader,
    batch_size: usize,
    path: PathBuf,
    tx: tokio::sync::mpsc::Sender<Result<Batch>>,
) {
    let mut records: u64 = 0;
    let mut devices = Vec::with_capacity(batch_size);
    loop {
        let next = reader.next();
        let at_end = next.is_none();
        if let Some(rec) = next {
            records += 1;
            match rec {
                Ok(d) => devices.push(d),
                Err(e) => {
                    let _ = tx.blocking_send(Err(
                        e.context(format!("record {records} of {} is invalid", path.display()))
                    ));
                    return;
                }
            }
        }
        if devices.len() >= batch_size || (at_end && !devices.is_empty()) {
            let batch = Batch {
                devices: std::mem::replace(&mut devices, Vec::with_capacity(batch_size)),
                records,
                position: reader.position(),
            };
            if tx.blocking_send(Ok(batch)).is_err() {
                return;
            }
        }
        if at_end {
            return;
        }
    }
}

/// What an import did.
pub struct Summary {
    /// Records read.
    pub records: u64,
    /// Devices created and devices already present.
    pub outcome: ImportOutcome,
    /// How long it took.
    pub elapsed: std::time::Duration,
}

/// Runs an import and prints its summary.
pub async fn run(args: ImportArgs, store: std::sync::Arc<dyn Store>, out: Output) -> Result<()> {
    let s = import_file(&args, store).await?;
    let secs = s.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        s.records as f64 / secs
    } else {
        0.0
    };
    match out {
        Output::Json => output::json(&serde_json::json!({
            "records": s.records, "created": s.outcome.created, "existing": s.outcome.existing,
            "dry_run": args.dry_run, "seconds": secs,
        }))?,
        Output::Table if args.dry_run => {
            println!("{} records valid (dry run: nothing written)", s.records)
        }
        Output::Table => println!(
            "imported {} records from {}: {} created, {} already present, in {secs:.1} s ({rate:.0}/s)",
            s.records,
            args.file.display(),
            s.outcome.created,
            s.outcome.existing
        ),
    }
    Ok(())
}

/// Imports `args.file` into `store`, with a progress bar on a terminal.
pub async fn import_file(args: &ImportArgs, store: std::sync::Arc<dyn Store>) -> Result<Summary> {
    let format = format_of(args)?;
    let (reader, total) = Reader::open(&args.file, format)?;
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {percent}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut totals = ImportOutcome::default();
    let mut records: u64 = 0;
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let (batch_size, path) = (args.batch_size as usize, args.file.clone());
    let reading = tokio::task::spawn_blocking(move || read_batches(reader, batch_size, path, tx));
    // Two batches in flight: while one is written, the next is validated and encoded.
    let mut inflight: std::collections::VecDeque<(
        u64,
        tokio::task::JoinHandle<vouch_store::Result<ImportOutcome>>,
    )> = std::collections::VecDeque::new();
    let mut failure: Option<anyhow::Error> = None;
    loop {
        let next = if failure.is_none() {
            rx.recv().await
        } else {
            None
        };
        let drain = next.is_none();
        if let Some(batch) = next {
            match batch {
                Err(e) => failure = Some(e),
                Ok(batch) => {
                    records = batch.records;
                    if args.dry_run {
                        totals.created += batch.devices.len() as u64;
                    } else {
                        let change = Change {
                            actor: crate::cli_actor(),
                            reason: None,
                            at: SystemClock.now(),
                        };
                        let store = store.clone();
                        let devices = batch.devices;
                        inflight.push_back((
                            records,
                            tokio::spawn(
                                async move { store.import_devices(devices, change).await },
                            ),
                        ));
                    }
                    bar.set_position(batch.position);
                }
            }
        }
        while inflight.len() > usize::from(!drain) {
            let Some((ending, task)) = inflight.pop_front() else {
                break;
            };
            let done = task
                .await
                .context("an import task failed")?
                .with_context(|| format!("importing the batch ending at record {ending}"))?;
            totals.created += done.created;
            totals.existing += done.existing;
            bar.set_message(format!(
                "{} created, {} already present",
                totals.created, totals.existing
            ));
        }
        if drain {
            break;
        }
    }
    if let Some(e) = failure {
        bar.abandon();
        bail!(
            "{e:#}\n{} records before it were imported; fix the file and run the same import again (what was \
             imported is skipped)",
            totals.created + totals.existing
        );
    }
    reading.await.context("the reading thread failed")?;
    bar.finish_and_clear();
    Ok(Summary {
        records,
        outcome: totals,
        elapsed: started.elapsed(),
    })
}
