//! `vouch demo`: the whole loop on a simulated fleet, in one command. It makes a throw-away deployment (a
//! CA, a configuration with the simulator's zones and firmware policies and the default playbooks), starts a
//! Mosquitto of its own and `vouch serve` with its gateway, then plays the fleet (`vouch sim`): devices enroll
//! over EST, connect through the gateway, publish, and attack; detections, trust drops, quarantines,
//! revocations and releases are printed as they happen, then a summary. Everything stays on loopback.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use vouch_store::Store;

use crate::sim::SimArgs;
use vouch_bench::harness::{Killed, free_port, wait_listening};

/// Options of `vouch demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// The fleet and its run.
    #[command(flatten)]
    pub sim: SimArgs,
    /// Seconds a quarantined device must behave before it is released.
    #[arg(long, default_value_t = 20)]
    pub release_after: u64,
    /// Seconds after which a behaviour penalty costs half its points (default: two windows, so that the
    /// demo's quick run shows the gradual recovery in a few windows; a deployment's default is 600).
    #[arg(long, value_name = "SECS")]
    pub half_life: Option<u64>,
    /// Keep the deployment here (default: a temporary directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

/// Finds Mosquitto, or says how to get it.
fn mosquitto() -> Result<PathBuf> {
    let candidates = [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ];
    if let Some(p) = candidates.iter().map(Path::new).find(|p| p.exists()) {
        return Ok(p.to_path_buf());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("mosquitto");
            if p.exists() {
                return Ok(p);
            }
        }
    }
    bail!(
        "vouch demo runs a Mosquitto broker behind its gateway, and none is installed.\n\
         Install it (Debian/Ubuntu: `sudo apt-get install mosquitto`; macOS: `brew install mosquitto`) and run \
         `vouch demo` again."
    )
}

/// The deployment's vouch.toml: loopback ports, the gateway in front of the demo's broker, the simulator's
/// zones and firmware policies, quick windows and releases.
fn config_text(
    data: &Path,
    pass: &Path,
    ports: &Ports,
    window_secs: u32,
    release_after: u64,
    half_life: u64,
) -> Result<String> {
    let mut t = String::new();
    writeln!(t, "data_dir = {:?}", data.display().to_string())?;
    writeln!(t, "[server]\nlisten = \"127.0.0.1:{}\"", ports.api)?;
    writeln!(t, "[store]\nsqlite_durability = \"normal\"")?;
    writeln!(t, "[log]\nlevel = \"warn\"")?;
    writeln!(
        t,
        "[pki]\npassphrase_file = {:?}",
        pass.display().to_string()
    )?;
    writeln!(t, "[est]\nlisten = \"127.0.0.1:{}\"", ports.est)?;
    writeln!(
        t,
        "[gateway]\nenabled = true\nlisten = \"127.0.0.1:{}\"\nupstream = \"127.0.0.1:{}\"\nwindow_secs = {window_secs}",
        ports.gateway, ports.broker
    )?;
    writeln!(t, "[trust]\nhalf_life_secs = {half_life}")?;
    writeln!(t, "[trust.zones]")?;
    for z in vouch_sim::ZONES {
        if let Some((net, len)) = vouch_sim::zone_network(z) {
            writeln!(t, "{z} = [\"{net}/{len}\"]")?;
        }
    }
    for p in vouch_sim::firmware_policies() {
        writeln!(t, "[trust.firmware.{:?}]", p.model)?;
        writeln!(t, "minimum = {:?}", p.minimum)?;
        writeln!(t, "vulnerable = {:?}", p.vulnerable)?;
    }
    writeln!(t, "[trust.response]\nrelease_after_secs = {release_after}")?;
    Ok(t)
}

struct Ports {
    api: u16,
    est: u16,
    gateway: u16,
    broker: u16,
}

/// Runs the demo.
pub async fn run(mut a: DemoArgs) -> Result<()> {
    let window_secs = *a
        .sim
        .window_secs
        .get_or_insert(crate::sim::DEFAULT_WINDOW_SECS);
    if a.sim.windows_out.is_some() {
        bail!("--windows-out is for `vouch sim`, which writes the windows without a deployment");
    }
    let broker_bin = mosquitto()?;
    let temp;
    let root = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let data = root.join("data");
    let pass = root.join("ca-passphrase");
    // A fresh random passphrase for a throw-away CA: the demo's key never outlives the directory.
    let secret: [u8; 24] = rand::random();
    std::fs::write(&pass, data_encoding::BASE64URL_NOPAD.encode(&secret))?;
    let exe = std::env::current_exe()?;
    let init = Command::new(&exe)
        .args(["ca", "init", "--passphrase-file"])
        .arg(&pass)
        .env("VOUCH_DATA_DIR", &data)
        .env("VOUCH_SQLITE_DURABILITY", "normal")
        .output()
        .context("running `vouch ca init`")?;
    if !init.status.success() {
        bail!(
            "`vouch ca init` failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let ports = Ports {
        api: free_port()?,
        est: free_port()?,
        gateway: free_port()?,
        broker: free_port()?,
    };
    std::fs::write(
        root.join("mosquitto.conf"),
        format!(
            "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n",
            ports.broker
        ),
    )?;
    let broker = Killed(
        Command::new(&broker_bin)
            .arg("-c")
            .arg(root.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", broker_bin.display()))?,
    );
    let config = root.join("vouch.toml");
    std::fs::write(
        &config,
        config_text(
            &data,
            &pass,
            &ports,
            window_secs,
            a.release_after,
            a.half_life.unwrap_or(2 * u64::from(window_secs)),
        )?,
    )?;
    let log = std::fs::File::create(root.join("serve.log"))?;
    let server = Killed(
        Command::new(&exe)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting `vouch serve`")?,
    );
    let at = |p: u16| std::net::SocketAddr::from(([127, 0, 0, 1], p));
    let mut server = server;
    for (what, port) in [
        ("mosquitto", ports.broker),
        ("the API", ports.api),
        ("EST", ports.est),
        ("the gateway", ports.gateway),
    ] {
        if let Ok(Some(status)) = server.0.try_wait() {
            let log = std::fs::read_to_string(root.join("serve.log")).unwrap_or_default();
            bail!("`vouch serve` stopped ({status}):\n{}", log.trim());
        }
        wait_listening(at(port)).await.with_context(|| {
            format!(
                "{what} did not start; see {}",
                root.join("serve.log").display()
            )
        })?;
    }
    // The live lines and the table go to stdout; with --quiet (and --json) only the summary does.
    let say = |line: String| {
        if a.sim.quiet {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "Vouch demo: API http://127.0.0.1:{}, EST https://127.0.0.1:{}, gateway mqtts://127.0.0.1:{} in front of \
         Mosquitto on 127.0.0.1:{}; data in {}",
        ports.api,
        ports.est,
        ports.gateway,
        ports.broker,
        root.display()
    ));
    let store: Arc<dyn Store> = Arc::new(vouch_store_sqlite::SqliteStore::open(
        data.join("vouch.db"),
        vouch_store_sqlite::Durability::Normal,
    )?);
    // The servers' certificates chain to these; the keys stay with `vouch serve`.
    let cert = |name: &str| -> Result<Vec<u8>> {
        let path = data.join("ca").join(name);
        let pem = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the demo's CA certificate {}", path.display()))?;
        Ok(vouch_pki::cert_der_from_pem(&pem)?)
    };
    let (root_der, issuing_der) = (cert("root.pem")?, cert("issuing.pem")?);
    let target = crate::sim::Target {
        store,
        est: at(ports.est),
        gateway: at(ports.gateway),
        root: root_der,
        issuing: issuing_der,
        token_ttl_hours: 1,
    };
    let outcome = tokio::select! {
        s = crate::sim::play(&a.sim, &target) => Some(s),
        _ = tokio::signal::ctrl_c() => None,
    };
    drop(server);
    drop(broker);
    tokio::time::sleep(Duration::from_millis(100)).await;
    match outcome {
        Some(s) => crate::sim::print_summary(&s?, a.sim.json),
        None => {
            println!("stopped");
            Ok(())
        }
    }
}
