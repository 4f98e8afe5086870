//! `vouch bench detect`: how well the trust engine finds attacks in a simulated fleet whose ground truth is
//! known, beside two standard unsupervised detectors, scikit-learn's IsolationForest and river's
//! HalfSpaceTrees.
//!
//! The fleet (`vouch-sim`) plays a day of a thousand devices in 300 s windows by default, with several attacks
//! of every scenario; each window goes through the gateway's observation model (`vouch_sim::observe`, no
//! network) and then through `TrustEngine::observe`, in window order, with the device's state (class, a valid
//! certificate, its firmware judged against its model's policy, its zone when it is out of it). The same
//! windows' features, with the two context facts, are written to a CSV file that `bench-detect-peers.py`
//! (built into this binary) scores with the peers in a virtual environment filled from PyPI.
//!
//! Figures per scenario and overall, for each detector: ROC-AUC (the scenario's windows against every normal
//! window; rank-based Mann–Whitney with ties, cross-checked against sklearn's `roc_auc_score`), precision and
//! recall at the detector's operating point, the median delay from an attack's start to its first flagged
//! window, and false alarms per normal window and per device-day.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde::Serialize;
use vouch_sim::{Fleet, FleetConfig, Scenario, Seen, SimDevice, WindowPlan};
use vouch_trust::{
    DeviceState, Feature, Features, FirmwareState, IdentityState, TrustEngine, Verdict,
};
use vouch_types::TrafficWindow;

/// The peers' script, shipped inside the binary so the bench runs from anywhere.
const PEERS_SCRIPT: &str = include_str!("../../../scripts/bench-detect-peers.py");
/// The peers' packages, pinned so that runs compare.
const PEER_PACKAGES: [&str; 2] = ["scikit-learn==1.9.1", "river==0.26.1"];
const DAY_SECS: u64 = 86_400;

/// Options of `vouch bench detect`.
#[derive(Args)]
pub struct DetectArgs {
    /// Simulated devices.
    #[arg(long, default_value_t = 1_000)]
    devices: u32,
    /// Seconds per observation window.
    #[arg(long, default_value_t = 300)]
    window_secs: u32,
    /// Windows in the run [default: one day's worth].
    #[arg(long)]
    windows: Option<u32>,
    /// Attack-free windows at the start [default: three hours' worth].
    #[arg(long)]
    warmup: Option<u32>,
    /// Attacks per scenario, each on a device of its own.
    #[arg(long, default_value_t = 5)]
    attacks_per_scenario: u32,
    /// Windows each attack lasts.
    #[arg(long, default_value_t = 6)]
    attack_windows: u32,
    /// Seed of the simulated fleet.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Scenarios to play, comma-separated [default: all].
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<Scenario>,
    /// A small run for a first look: 200 devices, 96 windows (8 h at 300 s), 2 attacks per scenario (instead of
    /// --devices, --windows and --attacks-per-scenario).
    #[arg(long)]
    quick: bool,
    /// Only vouch: no Python, no peers.
    #[arg(long)]
    no_peers: bool,
    /// The virtual environment the peers run in; made and filled from PyPI when missing
    /// [default: ~/.cache/vouch-bench-venv].
    #[arg(long, value_name = "DIR")]
    venv: Option<PathBuf>,
    /// Keep the rows and the peers' scores in this directory (otherwise a temporary one).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// One device window, as the peers read it.
struct Row {
    device: u32,
    window: u32,
    class: &'static str,
    label: Option<Scenario>,
    features: Features,
    out_of_zone: bool,
    firmware_bad: bool,
}

/// What the trust engine is told about a device besides its traffic, from the plan of its window.
fn device_state(d: &SimDevice, plan: &WindowPlan) -> DeviceState {
    let firmware = vouch_sim::firmware_policy(d.model)
        .map_or(FirmwareState::Unknown, |p| p.status(&plan.firmware));
    DeviceState {
        class: d.class,
        identity: IdentityState::Valid {
            days_left: 300,
            renewal_overdue: false,
        },
        firmware,
        out_of_zone: (plan.zone != d.zone).then(|| plan.zone.clone()),
        failed_controls: Vec::new(),
        attestation_ok: None,
        restricted: false,
    }
}

/// One detector's scores and operating decisions, one per row.
struct Scored {
    name: &'static str,
    scores: Vec<f64>,
    flagged: Vec<bool>,
}

/// Figures of one detector on one scenario (or all of them).
#[derive(Serialize)]
struct Figures {
    scenario: String,
    auc: Option<f64>,
    precision: Option<f64>,
    recall: Option<f64>,
    median_delay_windows: Option<f64>,
    attacks: usize,
    detected: usize,
    attack_windows: usize,
    flagged_attack_windows: usize,
}

/// False alarms of one detector.
#[derive(Serialize)]
struct FalseAlarms {
    normal_windows: usize,
    flagged_normal_windows: usize,
    per_normal_window: f64,
    device_days: usize,
    device_days_with_false_alarm: usize,
    share_of_device_days: f64,
}

#[derive(Serialize)]
struct DetectorReport {
    detector: &'static str,
    scenarios: Vec<Figures>,
    overall: Figures,
    false_alarms: FalseAlarms,
}

/// Why vouch raised its false alarms, to tell what would reduce them.
#[derive(Serialize, Default)]
struct AlarmCauses {
    cold_start: usize,
    class_model_only: usize,
    by_feature: Vec<(String, usize)>,
}

#[derive(Serialize)]
struct Report {
    devices: u32,
    window_secs: u32,
    windows: u32,
    warmup: u32,
    days: f64,
    seed: u64,
    attacks: usize,
    attacks_per_scenario: u32,
    attack_windows: u32,
    observations: usize,
    vouch_observations_per_second: f64,
    vouch_operating_point: &'static str,
    peers_operating_point: &'static str,
    detectors: Vec<DetectorReport>,
    vouch_false_alarm_causes: AlarmCauses,
    #[serde(skip_serializing_if = "Option::is_none")]
    peers: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    auc_check_max_difference: Option<f64>,
}

const VOUCH_OPERATING_POINT: &str = "a window is flagged when its trust score drops below 100: a behaviour \
     anomaly (Verdict::anomalous) or a state penalty (vulnerable firmware, out of zone, identity in two places)";
const PEERS_OPERATING_POINT: &str = "each peer flags the windows scoring above the threshold that allows it \
     as many false alarms on normal windows as vouch raised (the same false-positive budget), but at least 0.1% \
     of normal windows, so that a peer is never held to zero";

/// Runs the benchmark and prints its figures.
pub fn run(a: DetectArgs) -> Result<()> {
    let (devices, windows, attacks_per_scenario) = if a.quick {
        (200, Some(96), 2)
    } else {
        (a.devices, a.windows, a.attacks_per_scenario)
    };
    ensure!(
        devices > 0 && a.window_secs > 0,
        "--devices and --window-secs must be positive"
    );
    let day = u32::try_from(DAY_SECS.div_ceil(u64::from(a.window_secs))).unwrap_or(1);
    let windows = windows.unwrap_or(day);
    ensure!(windows > 0, "--windows must be positive");
    let warmup = a
        .warmup
        .unwrap_or_else(|| (3 * 3_600u32).div_ceil(a.window_secs).min(windows / 4));
    let scenarios = if a.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        a.scenarios.clone()
    };
    let fleet = Fleet::new(FleetConfig {
        devices,
        seed: a.seed,
        window_secs: a.window_secs,
        windows,
        warmup,
        attacks_per_scenario,
        attack_windows: a.attack_windows,
        scenarios: scenarios.clone(),
    });
    eprintln!(
        "simulating {devices} devices × {windows} windows of {} s with {} attacks…",
        a.window_secs,
        fleet.attacks.len()
    );
    let (rows, inputs) = simulate(&fleet);

    // The engine alone is timed: the simulation above is not part of what a deployment runs.
    let mut engine = TrustEngine::default();
    let started = Instant::now();
    let verdicts: Vec<Verdict> = inputs
        .iter()
        .map(|(w, state)| engine.observe(w, state))
        .collect();
    let took = started.elapsed().as_secs_f64();
    drop(inputs);
    let rate = rows.len() as f64 / took.max(1e-9);
    let vouch = Scored {
        name: "vouch",
        scores: verdicts.iter().map(Verdict::risk).collect(),
        flagged: verdicts.iter().map(Verdict::flagged).collect(),
    };
    let causes = alarm_causes(&rows, &verdicts);
    drop(verdicts);

    let mut detectors = vec![vouch];
    let mut peers_summary = None;
    if !a.no_peers {
        let (iforest, hst, summary) = run_peers(&a, &rows, &detectors[0])?;
        detectors.push(iforest);
        detectors.push(hst);
        peers_summary = Some(summary);
    }
    let reports: Vec<DetectorReport> = detectors
        .iter()
        .map(|d| evaluate(&fleet, &scenarios, &rows, d))
        .collect();
    let auc_check = peers_summary.as_ref().map(|s| auc_difference(s, &reports));
    let report = Report {
        devices,
        window_secs: a.window_secs,
        windows,
        warmup,
        days: f64::from(windows) * f64::from(a.window_secs) / DAY_SECS as f64,
        seed: a.seed,
        attacks: fleet.attacks.len(),
        attacks_per_scenario,
        attack_windows: a.attack_windows,
        observations: rows.len(),
        vouch_observations_per_second: rate,
        vouch_operating_point: VOUCH_OPERATING_POINT,
        peers_operating_point: PEERS_OPERATING_POINT,
        detectors: reports,
        vouch_false_alarm_causes: causes,
        peers: peers_summary,
        auc_check_max_difference: auc_check,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print(&report, took);
    }
    Ok(())
}

/// Plays the fleet window by window: the peers' rows, and the engine's inputs in the order a gateway emits
/// them (every device's window 0, then window 1, …).
fn simulate(fleet: &Fleet) -> (Vec<Row>, Vec<(TrafficWindow, DeviceState)>) {
    let n = fleet.devices.len();
    let total = n * fleet.config.windows as usize;
    let mut seen = vec![Seen::new(); n];
    let mut rows = Vec::with_capacity(total);
    let mut inputs = Vec::with_capacity(total);
    for w in 0..fleet.config.windows {
        for (d, memory) in fleet.devices.iter().zip(seen.iter_mut()) {
            let (plan, obs) = fleet.observe(d.index, w, memory);
            let state = device_state(d, &plan);
            rows.push(Row {
                device: d.index,
                window: w,
                class: d.class.as_str(),
                label: plan.attack,
                features: Features::of(&obs),
                out_of_zone: state.out_of_zone.is_some(),
                firmware_bad: state.firmware != FirmwareState::Current,
            });
            inputs.push((obs, state));
        }
    }
    (rows, inputs)
}

/// What raised vouch's false alarms: a device still judged by its class, the class model alone, or a feature
/// off the baseline (by feature).
fn alarm_causes(rows: &[Row], verdicts: &[Verdict]) -> AlarmCauses {
    let mut c = AlarmCauses::default();
    let mut by = [0usize; Feature::ALL.len()];
    for (row, v) in rows.iter().zip(verdicts) {
        if row.label.is_some() || !v.flagged() {
            continue;
        }
        if v.cold_start {
            c.cold_start += 1;
        }
        let Some(why) = v
            .assessment
            .reasons
            .iter()
            .find(|r| r.component == "behaviour" && !r.remembered())
            .map(|r| r.why.as_str())
        else {
            continue;
        };
        // The reason names its worst feature first ("40.0 new topics, 39.0σ above …").
        match Feature::ALL.iter().position(|f| {
            why.split(',')
                .next()
                .is_some_and(|h| h.ends_with(f.describe()))
        }) {
            Some(i) => by[i] += 1,
            None => c.class_model_only += 1,
        }
    }
    c.by_feature = Feature::ALL
        .iter()
        .zip(by)
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| (f.describe().to_owned(), n))
        .collect();
    c.by_feature.sort_by_key(|b| std::cmp::Reverse(b.1));
    c
}

/// ROC-AUC of `positives` against the sorted `negatives`: the Mann–Whitney U statistic over both sizes, ties
/// counting one half.
fn auc(positives: &[f64], negatives_sorted: &[f64]) -> Option<f64> {
    if positives.is_empty() || negatives_sorted.is_empty() {
        return None;
    }
    let wins: f64 = positives
        .iter()
        .map(|p| {
            let below = negatives_sorted.partition_point(|n| n < p);
            let up_to = negatives_sorted.partition_point(|n| n <= p);
            below as f64 + 0.5 * (up_to - below) as f64
        })
        .sum();
    Some(wins / (positives.len() as f64 * negatives_sorted.len() as f64))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

fn evaluate(fleet: &Fleet, scenarios: &[Scenario], rows: &[Row], d: &Scored) -> DetectorReport {
    let mut negatives: Vec<f64> = rows
        .iter()
        .zip(&d.scores)
        .filter(|(r, _)| r.label.is_none())
        .map(|(_, s)| *s)
        .collect();
    negatives.sort_by(f64::total_cmp);
    let false_alarms = rows
        .iter()
        .zip(&d.flagged)
        .filter(|(r, f)| r.label.is_none() && **f)
        .count();
    let n = fleet.devices.len();
    let figures = |which: Option<Scenario>| -> Figures {
        let is = |l: Option<Scenario>| l.is_some() && (which.is_none() || l == which);
        let mut positives = Vec::new();
        let mut hits = 0;
        for ((r, s), f) in rows.iter().zip(&d.scores).zip(&d.flagged) {
            if is(r.label) {
                positives.push(*s);
                hits += usize::from(*f);
            }
        }
        let mut delays = Vec::new();
        let attacks: Vec<_> = fleet
            .attacks
            .iter()
            .filter(|a| which.is_none_or(|w| a.scenario == w))
            .collect();
        for a in &attacks {
            let first = (a.start..a.start + a.windows).find(|w| {
                d.flagged
                    .get(*w as usize * n + a.device as usize)
                    .copied()
                    .unwrap_or(false)
            });
            if let Some(w) = first {
                delays.push(f64::from(w - a.start));
            }
        }
        Figures {
            scenario: which.map_or("all".to_owned(), |s| s.as_str().to_owned()),
            auc: auc(&positives, &negatives),
            precision: (hits + false_alarms > 0)
                .then(|| hits as f64 / (hits + false_alarms) as f64),
            recall: (!positives.is_empty()).then(|| hits as f64 / positives.len() as f64),
            detected: delays.len(),
            median_delay_windows: median(delays),
            attacks: attacks.len(),
            attack_windows: positives.len(),
            flagged_attack_windows: hits,
        }
    };
    let per: Vec<Figures> = scenarios.iter().map(|s| figures(Some(*s))).collect();
    let overall = figures(None);
    // Device-days: a device's normal windows grouped by the simulated day they fall in.
    let secs = u64::from(fleet.config.window_secs);
    let days = (u64::from(fleet.config.windows) * secs)
        .div_ceil(DAY_SECS)
        .max(1) as usize;
    let mut normal_day = vec![false; n * days];
    let mut alarm_day = vec![false; n * days];
    for (r, f) in rows.iter().zip(&d.flagged) {
        if r.label.is_some() {
            continue;
        }
        let day = ((u64::from(r.window) * secs) / DAY_SECS) as usize;
        let i = r.device as usize * days + day.min(days - 1);
        normal_day[i] = true;
        alarm_day[i] |= *f;
    }
    let device_days = normal_day.iter().filter(|x| **x).count();
    let with_alarm = alarm_day.iter().filter(|x| **x).count();
    DetectorReport {
        detector: d.name,
        scenarios: per,
        overall,
        false_alarms: FalseAlarms {
            normal_windows: negatives.len(),
            flagged_normal_windows: false_alarms,
            per_normal_window: false_alarms as f64 / negatives.len().max(1) as f64,
            device_days,
            device_days_with_false_alarm: with_alarm,
            share_of_device_days: with_alarm as f64 / device_days.max(1) as f64,
        },
    }
}

/// Flags the rows a peer scores above the threshold that leaves it at most `budget` false alarms on normal
/// windows (ties at the threshold are not flagged, so the budget is never exceeded).
fn at_budget(rows: &[Row], scores: &[f64], budget: usize) -> Vec<bool> {
    let mut normal: Vec<f64> = rows
        .iter()
        .zip(scores)
        .filter(|(r, _)| r.label.is_none())
        .map(|(_, s)| *s)
        .collect();
    normal.sort_by(|a, b| b.total_cmp(a));
    match normal.get(budget) {
        Some(t) => scores.iter().map(|s| s > t).collect(),
        None => vec![true; scores.len()],
    }
}

fn run_peers(
    a: &DetectArgs,
    rows: &[Row],
    vouch: &Scored,
) -> Result<(Scored, Scored, serde_json::Value)> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let venv = match (&a.venv, home) {
        (Some(v), _) => v.clone(),
        (None, Some(h)) => h.join(".cache/vouch-bench-venv"),
        (None, None) => bail!("HOME is not set: pass --venv DIR (or --no-peers)"),
    };
    let python = peer_python(&venv)?;
    let temp;
    let dir = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir().context("creating a temporary directory")?;
            temp.path().to_path_buf()
        }
    };
    let script = dir.join("bench-detect-peers.py");
    std::fs::write(&script, PEERS_SCRIPT).context("writing the peers' script")?;
    let rows_csv = dir.join("rows.csv");
    let scores_csv = dir.join("scores.csv");
    write_rows(&rows_csv, rows, &vouch.scores)?;
    eprintln!(
        "scoring {} rows with IsolationForest and HalfSpaceTrees ({})…",
        rows.len(),
        python.display()
    );
    let out = Command::new(&python)
        .arg(&script)
        .arg(&rows_csv)
        .arg(&scores_csv)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(
        out.status.success(),
        "the peers' script failed ({})",
        out.status
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading the peers' summary")?;
    let text = std::fs::read_to_string(&scores_csv).context("reading the peers' scores")?;
    let (mut iforest, mut hst) = (
        Vec::with_capacity(rows.len()),
        Vec::with_capacity(rows.len()),
    );
    for line in text.lines().skip(1) {
        let (x, y) = line
            .split_once(',')
            .with_context(|| format!("a scores line without two columns: {line}"))?;
        iforest.push(x.parse::<f64>().context("an IsolationForest score")?);
        hst.push(y.parse::<f64>().context("a HalfSpaceTrees score")?);
    }
    ensure!(
        iforest.len() == rows.len(),
        "the peers scored {} rows of {}",
        iforest.len(),
        rows.len()
    );
    let normal = rows.iter().filter(|r| r.label.is_none()).count();
    let budget = rows
        .iter()
        .zip(&vouch.flagged)
        .filter(|(r, f)| r.label.is_none() && **f)
        .count()
        .max(normal / 1000);
    let peer = |name, scores: Vec<f64>| Scored {
        name,
        flagged: at_budget(rows, &scores, budget),
        scores,
    };
    Ok((
        peer("isolation-forest", iforest),
        peer("half-space-trees", hst),
        summary,
    ))
}

fn write_rows(path: &Path, rows: &[Row], vouch: &[f64]) -> Result<()> {
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let names: Vec<String> = Feature::ALL
        .iter()
        .map(|f| {
            serde_json::to_value(f)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{f:?}"))
        })
        .collect();
    writeln!(
        w,
        "window,device,class,label,{},out_of_zone,firmware_bad,vouch_risk",
        names.join(",")
    )?;
    for (r, risk) in rows.iter().zip(vouch) {
        write!(
            w,
            "{},{},{},{}",
            r.window,
            r.device,
            r.class,
            r.label.map_or("normal", Scenario::as_str)
        )?;
        for x in r.features.0 {
            write!(w, ",{x}")?;
        }
        writeln!(
            w,
            ",{},{},{risk}",
            u8::from(r.out_of_zone),
            u8::from(r.firmware_bad)
        )?;
    }
    w.flush()?;
    Ok(())
}

/// Whether `python` has the peers' libraries.
fn has_peers(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import sklearn, river"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The virtual environment's interpreter, with the peers' libraries: made with `python3 -m venv` (installing
/// Debian's python3-venv when the module is missing, as scripts/test installs its packages) and filled with
/// pip from PyPI when they are missing.
fn peer_python(venv: &Path) -> Result<PathBuf> {
    let python = venv.join("bin/python");
    if python.exists() && has_peers(&python) {
        return Ok(python);
    }
    if !python.exists() {
        eprintln!("making a Python virtual environment in {}…", venv.display());
        if !make_venv(venv)? {
            eprintln!("python3's venv module is missing: installing python3-venv…");
            install_venv_package()?;
            let _ = std::fs::remove_dir_all(venv);
            ensure!(
                make_venv(venv)?,
                "python3 -m venv {} failed even with python3-venv installed",
                venv.display()
            );
        }
    }
    eprintln!(
        "installing {} into {} from PyPI…",
        PEER_PACKAGES.join(" "),
        venv.display()
    );
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(PEER_PACKAGES)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {} -m pip", python.display()))?;
    ensure!(
        status.success() && has_peers(&python),
        "pip could not install {} (is PyPI reachable?); pass --no-peers to measure vouch alone",
        PEER_PACKAGES.join(" ")
    );
    Ok(python)
}

/// `python3 -m venv DIR`; false when it failed (typically: no venv/ensurepip module).
fn make_venv(venv: &Path) -> Result<bool> {
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(venv)
        .stdout(Stdio::null())
        .status();
    match status {
        Ok(s) => Ok(s.success()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("python3 is needed for the peers: install it, or pass --no-peers")
        }
        Err(e) => Err(e).context("running python3 -m venv"),
    }
}

fn install_venv_package() -> Result<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let apt = |args: &[&str]| -> Result<bool> {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null());
        Ok(c.status().is_ok_and(|s| s.success()))
    };
    ensure!(
        apt(&["update", "-qq"])?
            && apt(&[
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "python3-venv"
            ])?,
        "could not install python3-venv with apt-get: install it (or pass --no-peers)"
    );
    Ok(())
}

/// The largest difference between sklearn's AUCs and ours, over every detector and scenario both computed.
fn auc_difference(summary: &serde_json::Value, reports: &[DetectorReport]) -> f64 {
    let mut worst = 0.0f64;
    for r in reports {
        let key = match r.detector {
            "isolation-forest" => "iforest",
            "half-space-trees" => "hst",
            other => other,
        };
        for f in r.scenarios.iter().chain(std::iter::once(&r.overall)) {
            let theirs = summary["auc"][key][&f.scenario].as_f64();
            if let (Some(t), Some(o)) = (theirs, f.auc) {
                worst = worst.max((t - o).abs());
            }
        }
    }
    worst
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_owned(), |x| format!("{x:.digits$}"))
}

fn print(r: &Report, took: f64) {
    println!(
        "{} devices × {} windows of {} s ({:.2} simulated days), seed {}: {} attacks ({} per scenario, {} windows \
         each) after {} attack-free windows",
        r.devices,
        r.windows,
        r.window_secs,
        r.days,
        r.seed,
        r.attacks,
        r.attacks_per_scenario,
        r.attack_windows,
        r.warmup
    );
    println!(
        "vouch: {} observations in {:.2} s on one thread: {:.0} observations/s",
        r.observations, took, r.vouch_observations_per_second
    );
    println!("operating point, vouch: {VOUCH_OPERATING_POINT}.");
    if r.detectors.len() > 1 {
        println!("operating point, peers: {PEERS_OPERATING_POINT}.");
        println!(
            "peers: one model per device class on log1p features plus out-of-zone and firmware flags; \
             IsolationForest(n_estimators=100, random_state=42) fitted on all windows; river MinMaxScaler | \
             HalfSpaceTrees(seed=42) streamed in window order (score, then learn)."
        );
    }
    println!();
    println!(
        "{:<20} {:<17} {:>7} {:>9} {:>7} {:>12} {:>9}",
        "scenario", "detector", "ROC-AUC", "precision", "recall", "median delay", "detected"
    );
    let n = r.detectors.first().map_or(0, |d| d.scenarios.len());
    for i in 0..=n {
        for (k, d) in r.detectors.iter().enumerate() {
            let f = d.scenarios.get(i).unwrap_or(&d.overall);
            println!(
                "{:<20} {:<17} {:>7} {:>9} {:>7} {:>12} {:>9}",
                if k == 0 { f.scenario.as_str() } else { "" },
                d.detector,
                opt(f.auc, 3),
                opt(f.precision, 3),
                opt(f.recall, 3),
                opt(f.median_delay_windows, 1),
                format!("{}/{}", f.detected, f.attacks),
            );
        }
    }
    println!();
    println!(
        "{:<17} {:>22} {:>34}",
        "false alarms", "per normal window", "device-days with a false alarm"
    );
    for d in &r.detectors {
        let fa = &d.false_alarms;
        println!(
            "{:<17} {:>22} {:>34}",
            d.detector,
            format!(
                "{:.5} ({}/{})",
                fa.per_normal_window, fa.flagged_normal_windows, fa.normal_windows
            ),
            format!(
                "{:.2}% ({}/{})",
                100.0 * fa.share_of_device_days,
                fa.device_days_with_false_alarm,
                fa.device_days
            ),
        );
    }
    let c = &r.vouch_false_alarm_causes;
    let features: Vec<String> = c
        .by_feature
        .iter()
        .map(|(f, n)| format!("{f} {n}"))
        .collect();
    println!(
        "vouch's false alarms: {} while the device was still judged by its class; {} from the class model \
         alone; by worst feature: {}",
        c.cold_start,
        c.class_model_only,
        if features.is_empty() {
            "none".to_owned()
        } else {
            features.join(", ")
        }
    );
    if let Some(p) = &r.peers {
        println!(
            "peers' speed: IsolationForest fit and score {:.0} rows/s, HalfSpaceTrees {:.0} rows/s (Python {}, \
             scikit-learn {}, river {})",
            p["iforest"]["rows_per_second"].as_f64().unwrap_or(0.0),
            p["hst"]["rows_per_second"].as_f64().unwrap_or(0.0),
            p["versions"]["python"].as_str().unwrap_or("?"),
            p["versions"]["scikit-learn"].as_str().unwrap_or("?"),
            p["versions"]["river"].as_str().unwrap_or("?"),
        );
    }
    if let Some(d) = r.auc_check_max_difference {
        println!("ROC-AUC check: sklearn's roc_auc_score and ours differ by at most {d:.1e}");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn auc_is_mann_whitney_with_ties_counting_half() {
        let neg = [0.0, 1.0, 1.0, 2.0];
        assert_eq!(auc(&[3.0], &neg), Some(1.0));
        assert_eq!(auc(&[-1.0], &neg), Some(0.0));
        // 1.0 beats one negative and ties two: (1 + 0.5 × 2) / 4.
        assert_eq!(auc(&[1.0], &neg), Some(0.5));
        assert_eq!(auc(&[1.0, 3.0], &neg), Some(0.75));
        assert_eq!(auc(&[], &neg), None);
    }

    #[test]
    fn peers_get_the_same_false_alarm_budget() {
        let row = |label| Row {
            device: 0,
            window: 0,
            class: "sensor",
            label,
            features: Features([0.0; 9]),
            out_of_zone: false,
            firmware_bad: false,
        };
        let rows = vec![row(None), row(None), row(None), row(Some(Scenario::Scan))];
        let scores = [0.1, 0.5, 0.5, 0.9];
        assert_eq!(at_budget(&rows, &scores, 0), [false, false, false, true]);
        // Two allowed, but the tie at 0.5 cannot be split: neither is flagged.
        assert_eq!(at_budget(&rows, &scores, 1), [false, false, false, true]);
        assert_eq!(at_budget(&rows, &scores, 2), [false, true, true, true]);
        assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
    }
}
