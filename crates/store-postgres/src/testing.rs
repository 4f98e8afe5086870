//! A throw-away PostgreSQL cluster on an ephemeral loopback port, for tests and benchmarks.
//!
//! `initdb` and `postgres` run from the server binaries Debian's `postgresql` package installs (or any on
//! `PATH`, or in `VOUCH_PG_BINDIR`). PostgreSQL refuses to run as root, so as root the cluster runs as the
//! `postgres` user. A small watchdog shell stops the server and deletes its directory when the process that
//! started it exits, however it exits: nothing is left running behind a test run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a throw-away cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found in VOUCH_PG_BINDIR, /usr/lib/postgresql/*/bin \
         or PATH: install them (Debian: apt-get install postgresql) or run scripts/test, which does"
    )]
    NoBinaries,
    /// A command failed.
    #[error("{command} failed: {why}")]
    Command {
        /// The command.
        command: String,
        /// Its output or error.
        why: String,
    },
    /// The server did not accept connections in time.
    #[error("the throw-away PostgreSQL server did not start within 60 s; its log:\n{log}")]
    NotReady {
        /// The server's log.
        log: String,
    },
}

/// A running throw-away cluster. It stops when the process that started it exits.
#[derive(Debug)]
pub struct TempCluster {
    port: u16,
    dir: PathBuf,
}

fn bindir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("VOUCH_PG_BINDIR") {
        return Some(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, p): &(u32, PathBuf)| p.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some((_, p)) = versions.pop() {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|p| p.join("initdb").exists() && p.join("postgres").exists())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<(), ClusterError> {
    let out = cmd.output().map_err(|e| ClusterError::Command {
        command: format!("{cmd:?}"),
        why: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ClusterError::Command {
            command: format!("{cmd:?}"),
            why: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        })
    }
}

/// A command run as the cluster's owner: `postgres` when we are root, ourselves otherwise.
fn as_owner(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl TempCluster {
    /// Creates and starts a cluster for tests: trusted superuser `vouch`, 127.0.0.1 only, and no fsync
    /// (a test's data need not survive a power loss).
    pub fn start() -> Result<Self, ClusterError> {
        Self::start_with(false)
    }

    /// Like [`start`](Self::start) but with PostgreSQL's durable defaults (fsync at commit), for benchmarks
    /// whose figures must hold for a real deployment.
    pub fn start_durable() -> Result<Self, ClusterError> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Result<Self, ClusterError> {
        let bin = bindir().ok_or(ClusterError::NoBinaries)?;
        let root = is_root();
        let dir =
            std::env::temp_dir().join(format!("vouch-pg-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&dir).map_err(|e| ClusterError::Command {
            command: "mkdir".into(),
            why: e.to_string(),
        })?;
        if root {
            run(Command::new("chown").args(["postgres:postgres"]).arg(&dir))?;
        }
        let data = dir.join("data");
        run(as_owner(root, &bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "vouch",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ])
            .arg(&data))?;
        let port = free_port()?;
        let log = dir.join("server.log");
        // The watchdog: start the server, then poll for our process; when it is gone, stop the server
        // (fast shutdown) and remove the cluster's directory.
        let speed = if durable {
            ""
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        let script = format!(
            "\"{postgres}\" -D \"{data}\" -p {port} -k \"{dir}\" -c listen_addresses=127.0.0.1 {speed} \
             -c max_connections=200 -c shared_buffers=256MB >\"{log}\" 2>&1 & pg=$!; \
             while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done; \
             kill -INT $pg 2>/dev/null; wait $pg; rm -rf \"{dir}\"",
            postgres = bin.join("postgres").display(),
            data = data.display(),
            dir = dir.display(),
            log = log.display(),
            parent = std::process::id(),
        );
        let mut sh = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", &script]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        };
        sh.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        sh.spawn().map_err(|e| ClusterError::Command {
            command: "sh (watchdog)".into(),
            why: e.to_string(),
        })?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(ClusterError::NotReady {
                    log: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Accepting TCP comes slightly before accepting logins: wait for the "ready" line too.
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready to accept connections")
        {
            if Instant::now() > deadline {
                return Err(ClusterError::NotReady {
                    log: std::fs::read_to_string(&log).unwrap_or_default(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { port, dir })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory (data and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A URL for database `db` as the superuser.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://vouch@127.0.0.1:{}/{db}", self.port)
    }
}

/// Creates database `name` on the server at `admin_url` (which must allow CREATE DATABASE).
pub async fn create_database(admin_url: &str, name: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    // The name comes from our own code, never from outside: quote it all the same.
    let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', ""));
    let result = client.batch_execute(&sql).await;
    drop(client);
    let _ = task.await;
    result
}

/// Replaces the database name in a `postgres://` URL.
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn free_port() -> Result<u16, ClusterError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| ClusterError::Command {
        command: "bind 127.0.0.1:0".into(),
        why: e.to_string(),
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| ClusterError::Command {
            command: "local_addr".into(),
            why: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5/old", "new"),
            "postgres://u@h:5/new"
        );
        assert_eq!(
            with_database("postgres://u@h:5", "new"),
            "postgres://u@h:5/new"
        );
        assert_eq!(
            with_database("postgres://u@h/old?sslmode=disable", "n"),
            "postgres://u@h/n?sslmode=disable"
        );
    }
}
