//! `vouch bench registry`: the device registry's bulk import and reads.
//!
//! `vouch bench registry` writes N generated devices to a CSV file and imports it exactly as `vouch device
//! import` does (parse, validate, one event per device on the hash chain, one transaction per batch), then reads
//! random devices by id one at a time: on SQLite and on PostgreSQL, each with durable settings.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use vouch_store::Store;
use vouch_types::{DeviceClass, DeviceId};

use crate::Host;
use crate::harness::SplitMix;

/// Which stores to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// Both, one after the other.
    Both,
}

/// Arguments of `bench registry`.
#[derive(Args)]
pub struct RegistryArgs {
    /// How many devices to import.
    #[arg(long, default_value_t = 1_000_000)]
    devices: u32,
    /// How many random gets to time.
    #[arg(long, default_value_t = 100_000)]
    gets: u32,
    /// Devices per import transaction (as `vouch device import --batch-size`).
    #[arg(long, default_value_t = 50_000)]
    batch: u32,
    /// Which stores.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    store: Which,
    /// Use this PostgreSQL server (a role that may create databases) instead of a throw-away cluster.
    #[arg(long, value_name = "URL")]
    postgres_url: Option<String>,
}

/// Writes a CSV of `n` realistic devices: every identifier set, labels and groups, ~500 bytes of JSON each.
fn write_csv(path: &std::path::Path, n: u32) -> Result<()> {
    use std::io::Write;
    let mut w =
        std::io::BufWriter::new(std::fs::File::create(path).context("creating the bench CSV")?);
    writeln!(
        w,
        "serial,mac,class,vendor,model,firmware,zone,ips,labels,groups"
    )?;
    let vendors = [
        "Siemens",
        "Rockwell Automation",
        "Schneider Electric",
        "Axis",
    ];
    for i in 0..n {
        writeln!(
            w,
            "BENCH{i:09},02:00:{:02x}:{:02x}:{:02x}:{:02x},{},{},S7-{},4.{}.{},plant-{}/line-{},10.{}.{}.{},site=site-{};tier={},fleet-{};all",
            i >> 24,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            DeviceClass::ALL[(i as usize) % DeviceClass::ALL.len()],
            vendors[(i % 4) as usize],
            1200 + i % 3,
            i % 7,
            i % 3,
            i % 10,
            i % 40,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff,
            i % 50,
            i % 3,
            i % 20,
        )?;
    }
    w.flush()?;
    Ok(())
}

struct Figures {
    store: &'static str,
    devices: u32,
    import: Duration,
    gets: u32,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    get_total: Duration,
}

async fn measure(
    name: &'static str,
    store: Arc<dyn Store>,
    csv: &std::path::Path,
    args: &RegistryArgs,
    host: &dyn Host,
) -> Result<Figures> {
    eprintln!(
        "{name}: importing {} devices in batches of {}…",
        args.devices, args.batch
    );
    let summary = host.import_csv(csv, args.batch, store.clone()).await?;
    anyhow::ensure!(
        summary.created == u64::from(args.devices),
        "the bench store was not empty"
    );
    let import = summary.elapsed;

    eprintln!("{name}: {} random gets…", args.gets);
    let mut rng = SplitMix(42);
    let mut lat = Vec::with_capacity(args.gets as usize);
    // Warm up the connection pool and caches a little, as a running server would be.
    for _ in 0..1000.min(args.gets) {
        let id = DeviceId::derived(&format!(
            "serial:BENCH{:09}",
            rng.next_u64() % u64::from(args.devices)
        ));
        store.get_device(id).await?;
    }
    let total = Instant::now();
    for _ in 0..args.gets {
        let id = DeviceId::derived(&format!(
            "serial:BENCH{:09}",
            rng.next_u64() % u64::from(args.devices)
        ));
        let t = Instant::now();
        store.get_device(id).await?;
        lat.push(t.elapsed());
    }
    let get_total = total.elapsed();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Ok(Figures {
        store: name,
        devices: args.devices,
        import,
        gets: args.gets,
        p50: pct(0.50),
        p99: pct(0.99),
        p999: pct(0.999),
        get_total,
    })
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Runs `bench registry`.
pub async fn run(args: RegistryArgs, host: &dyn Host) -> Result<()> {
    anyhow::ensure!(
        args.devices > 0 && args.batch > 0,
        "--devices and --batch must be positive"
    );
    let mut results = Vec::new();
    let dir = std::env::temp_dir().join(format!("vouch-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the bench directory")?;
    let csv = dir.join("devices.csv");
    eprintln!("writing {} devices to {}…", args.devices, csv.display());
    write_csv(&csv, args.devices)?;
    let outcome = run_stores(&args, &dir, &csv, &mut results, host).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome?;
    print(&results);
    Ok(())
}

async fn run_stores(
    args: &RegistryArgs,
    dir: &std::path::Path,
    csv: &std::path::Path,
    results: &mut Vec<Figures>,
    host: &dyn Host,
) -> Result<()> {
    if matches!(args.store, Which::Sqlite | Which::Both) {
        let store = vouch_store_sqlite::SqliteStore::open(
            dir.join("vouch.db"),
            vouch_store_sqlite::Durability::Full,
        )
        .context("opening the bench SQLite store")?;
        results.push(measure("sqlite", Arc::new(store), csv, args, host).await?);
    }
    if matches!(args.store, Which::Postgres | Which::Both) {
        use vouch_store_postgres::testing::{TempCluster, create_database, with_database};
        let (_cluster, base) = match &args.postgres_url {
            Some(u) => (None, u.clone()),
            None => {
                let c = tokio::task::spawn_blocking(TempCluster::start_durable).await??;
                let url = c.url("postgres");
                (Some(c), url)
            }
        };
        let db = format!("vouch_bench_{}", std::process::id());
        create_database(&base, &db)
            .await
            .context("creating the bench database")?;
        let store =
            vouch_store_postgres::PostgresStore::connect(&with_database(&base, &db), 4).await?;
        results.push(measure("postgres", Arc::new(store), csv, args, host).await?);
    }
    Ok(())
}

fn print(results: &[Figures]) {
    println!(
        "{:<9} {:>10} {:>10} {:>14} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "store",
        "devices",
        "import s",
        "import dev/s",
        "gets",
        "get p50",
        "get p99",
        "get p99.9",
        "gets/s"
    );
    for f in results {
        println!(
            "{:<9} {:>10} {:>10.2} {:>14.0} {:>9} {:>10} {:>10} {:>10} {:>12.0}",
            f.store,
            f.devices,
            f.import.as_secs_f64(),
            f64::from(f.devices) / f.import.as_secs_f64(),
            f.gets,
            us(f.p50),
            us(f.p99),
            us(f.p999),
            f64::from(f.gets) / f.get_total.as_secs_f64(),
        );
    }
    if let [a, b] = results {
        println!(
            "sqlite ÷ postgres, same run: import {:.2}×, get p50 {:.2}×",
            (f64::from(a.devices) / a.import.as_secs_f64())
                / (f64::from(b.devices) / b.import.as_secs_f64()),
            b.p50.as_secs_f64() / a.p50.as_secs_f64().max(1e-9),
        );
    }
}
