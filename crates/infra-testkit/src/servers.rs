//! Starting throwaway Redis and PostgreSQL servers on free loopback ports.
//!
//! The harness (`cargo xtask services up`) uses these for the shared servers, and tests that need an
//! instance of their own (to restart it, say) call them directly with the binaries the harness found.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process::{ServerProcess, free_port};
use crate::wire::{RespValue, postgres_query, redis_command};

/// How long a freshly started server gets to answer its probe.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many ports to try when a server loses the race for the one it was given.
const PORT_ATTEMPTS: usize = 3;

/// Starts `redis-server` on a free loopback port with no persistence, its files in `dir`.
///
/// Returns the process (stopped on drop) and its address, once it answers `PING`.
///
/// # Errors
///
/// Fails when the server cannot be started or does not answer `PING` in time; the message carries the end
/// of the server's log.
pub fn start_redis(redis_server: &Path, dir: &Path) -> io::Result<(ServerProcess, SocketAddr)> {
    retry_ports("redis", |port| {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Ok((restart_redis(redis_server, dir, addr)?, addr))
    })
}

/// Starts `redis-server` on `addr` (a loopback address a previous [`start_redis`] returned, after that
/// server was stopped), to test what clients do when their server comes back. Waits until it answers `PING`.
///
/// # Errors
///
/// As [`start_redis`]; also when the port has been taken meanwhile.
pub fn restart_redis(redis_server: &Path, dir: &Path, addr: SocketAddr) -> io::Result<ServerProcess> {
    let port = addr.port();
    let mut command = Command::new(redis_server);
    command
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no", "--protected-mode", "yes"])
        .arg("--dir")
        .arg(dir);
    let mut process = ServerProcess::spawn("redis", command, &dir.join(format!("redis-{port}.log")))?;
    process
        .wait_ready(READY_TIMEOUT, || match redis_command(addr, &[b"PING"]) {
            Ok(RespValue::Simple(pong)) if pong == "PONG" => Ok(()),
            Ok(other) => Err(format!("unexpected reply to PING: {other:?}")),
            Err(err) => Err(err.to_string()),
        })
        .map_err(io::Error::other)?;
    Ok(process)
}

/// Finds the folder holding PostgreSQL's `postgres` and `initdb`: `PATH` first, then the newest
/// `/usr/lib/postgresql/<version>/bin` (where Debian puts them, off the `PATH`).
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let on_path =
        std::env::var_os("PATH").into_iter().flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>());
    if let Some(dir) = on_path.into_iter().find(|dir| dir.join("postgres").is_file() && dir.join("initdb").is_file()) {
        // Debian links these into /usr/local/bin on some images; resolve to the real folder.
        return std::fs::canonicalize(dir.join("postgres")).ok().and_then(|p| p.parent().map(Path::to_path_buf));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("postgres").is_file())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Creates a throwaway cluster in `dir` and starts PostgreSQL on a free loopback port, tuned for tests
/// (no fsync, trust authentication for the `postgres` user).
///
/// PostgreSQL refuses to run as root, so under root the cluster belongs to, and the server runs as, the
/// `postgres` user (created by Debian's package), or `nobody` if there is none.
///
/// Returns the process (stopped on drop) and its address, once it answers `SELECT 1`.
///
/// # Errors
///
/// Fails when `initdb` or the server fails, or the server does not answer in time; the message carries the
/// end of the relevant log.
pub fn start_postgres(bin_dir: &Path, dir: &Path) -> io::Result<(ServerProcess, SocketAddr)> {
    let account = if running_as_root() { Some(unprivileged_account()?) } else { None };
    if let Some((uid, gid)) = account {
        chown_tree(dir, uid, gid)?;
    }
    let mut initdb = Command::new(bin_dir.join("initdb"));
    initdb
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync"])
        .env("HOME", dir);
    as_account(&mut initdb, account);
    let output = initdb.output().map_err(|err| io::Error::new(err.kind(), format!("cannot run initdb: {err}")))?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "initdb failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    retry_ports("postgres", |port| {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        Ok((restart_postgres(bin_dir, dir, addr)?, addr))
    })
}

/// Starts PostgreSQL again on `addr` from the cluster a previous [`start_postgres`] created in `dir`,
/// after that server was stopped, to test what clients do when their server comes back. Waits until it
/// answers `SELECT 1`.
///
/// # Errors
///
/// As [`start_postgres`]; also when the port has been taken meanwhile.
pub fn restart_postgres(bin_dir: &Path, dir: &Path, addr: SocketAddr) -> io::Result<ServerProcess> {
    let account = if running_as_root() { Some(unprivileged_account()?) } else { None };
    let mut command = Command::new(bin_dir.join("postgres"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &addr.port().to_string(), "-c", "listen_addresses=127.0.0.1"])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        .args(["-c", "max_connections=300"]);
    as_account(&mut command, account);
    let mut process = ServerProcess::spawn("postgres", command, &dir.join("postgres.log"))?;
    process
        .wait_ready(READY_TIMEOUT, || match postgres_query(addr, "postgres", "postgres", "SELECT 1") {
            Ok(rows) if rows == [[Some("1".to_owned())]] => Ok(()),
            Ok(rows) => Err(format!("unexpected answer to SELECT 1: {rows:?}")),
            Err(err) => Err(err.to_string()),
        })
        .map_err(io::Error::other)?;
    Ok(process)
}

/// Runs `command` as the unprivileged account PostgreSQL needs under root.
fn as_account(command: &mut Command, account: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = account {
        command.uid(uid).gid(gid);
    }
}

/// The socket address of a harness URL such as `redis://127.0.0.1:6379` or
/// `postgres://postgres@127.0.0.1:5432/postgres` (the harness always hands out numeric addresses).
pub fn url_addr(url: &str) -> Option<SocketAddr> {
    let authority = url.split("://").nth(1)?;
    authority.rsplit('@').next()?.split('/').next()?.parse().ok()
}

/// Runs `start` with fresh free ports until one works, so that losing a port race does not fail a test.
fn retry_ports<T>(name: &str, mut start: impl FnMut(u16) -> io::Result<T>) -> io::Result<T> {
    let mut last = None;
    for _ in 0..PORT_ATTEMPTS {
        match start(free_port()?) {
            Ok(started) => return Ok(started),
            Err(err) => last = Some(err),
        }
    }
    let err = last.unwrap_or_else(|| io::Error::other("no attempt made"));
    Err(io::Error::new(err.kind(), format!("{name} did not start after {PORT_ATTEMPTS} ports: {err}")))
}

/// Whether this process runs as root (uid 0).
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|l| l.strip_prefix("Uid:").map(|rest| rest.split_whitespace().next() == Some("0")))
        })
        .unwrap_or(false)
}

/// The uid and gid of `postgres`, or of `nobody`, from `/etc/passwd`.
fn unprivileged_account() -> io::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let lookup = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
    };
    lookup("postgres").or_else(|| lookup("nobody")).ok_or_else(|| {
        io::Error::other("running as root and neither a `postgres` nor a `nobody` account exists to run PostgreSQL as")
    })
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let status = Command::new("chown").arg("-R").arg(format!("{uid}:{gid}")).arg(dir).status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("chown of {} failed: {status}", dir.display())))
    }
}

/// Starts a throwaway Prometheus from the `prometheus` binary, its data under `dir`, scraping `targets`
/// (`host:port`, possibly none) every second, and waits until it answers `/-/ready`.
///
/// # Errors
///
/// Fails when the server cannot be started or is not ready in time; the message carries the end of its log.
pub fn start_prometheus(
    prometheus: &Path,
    dir: &Path,
    targets: &[SocketAddr],
) -> io::Result<(ServerProcess, SocketAddr)> {
    let config = dir.join("prometheus.yml");
    let scrape = if targets.is_empty() {
        "scrape_configs: []\n".to_owned()
    } else {
        let list: Vec<String> = targets.iter().map(|target| format!("'{target}'")).collect();
        format!("scrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: [{}]\n", list.join(", "))
    };
    std::fs::write(&config, format!("global:\n  scrape_interval: 1s\n{scrape}"))?;
    let port = free_port()?;
    let mut command = Command::new(prometheus);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let mut server = ServerProcess::spawn("prometheus", command, &dir.join("prometheus.log"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    server
        .wait_ready(Duration::from_secs(60), || match crate::http_request(addr, "GET", "/-/ready", None) {
            Ok(response) if response.status == 200 => Ok(()),
            Ok(response) => Err(format!("status {}", response.status)),
            Err(err) => Err(err.to_string()),
        })
        .map_err(io::Error::other)?;
    Ok((server, addr))
}

/// Starts a throwaway Alertmanager (clustering off) with `config` (its YAML) on a free loopback port, its
/// data under `dir`, and waits until it answers `/-/ready`.
///
/// # Errors
///
/// Fails when the server cannot be started or is not ready in time; the message carries the end of its log.
pub fn start_alertmanager(alertmanager: &Path, dir: &Path, config: &str) -> io::Result<(ServerProcess, SocketAddr)> {
    let config_path = dir.join("alertmanager.yml");
    std::fs::write(&config_path, config)?;
    retry_ports("alertmanager", |port| {
        let mut command = Command::new(alertmanager);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", dir.join(format!("data-{port}")).display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        let mut server = ServerProcess::spawn("alertmanager", command, &dir.join(format!("alertmanager-{port}.log")))?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        server
            .wait_ready(READY_TIMEOUT, || match crate::http_request(addr, "GET", "/-/ready", None) {
                Ok(response) if response.status == 200 => Ok(()),
                Ok(response) => Err(format!("status {}", response.status)),
                Err(err) => Err(err.to_string()),
            })
            .map_err(io::Error::other)?;
        Ok((server, addr))
    })
}

/// Runs `command` with `input` on its standard input and returns what it printed and how it exited.
///
/// # Errors
///
/// Fails when the command cannot be started or its pipes fail.
pub fn run_with_input(command: &mut Command, input: &[u8]) -> io::Result<std::process::Output> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input)?;
    }
    child.wait_with_output()
}
