//! `cargo xtask services up | down | status`: the real servers and binaries the tests use.
//!
//! `up` finds each binary, installs what is missing (as root on a Debian-like system, with `apt-get`),
//! starts the shared servers (Redis, PostgreSQL) on free loopback ports with throwaway data folders, waits
//! until each answers a real probe, and writes `target/xtask/services.env`: `export` lines for tests, plus
//! the pids and folders that `down` needs to leave nothing behind. Servers that a test configures itself
//! (Prometheus, Alertmanager, HAProxy, rsyslog) are handed over as binary paths.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use infra_testkit::{
    RespValue, ServerProcess, Service, UNLEASH_ADMIN_TOKEN, UNLEASH_CLIENT_TOKEN, free_port, http_request, pid_alive,
    postgres_query, redis_command, running_as_root, terminate_pid, url_addr,
};

/// A binary the tests need, where to look for it, and which Debian package brings it.
struct Binary {
    service: Service,
    names: &'static [&'static str],
    package: &'static str,
}

const BINARIES: &[Binary] = &[
    Binary { service: Service::RedisServer, names: &["redis-server"], package: "redis-server" },
    Binary { service: Service::Prometheus, names: &["prometheus"], package: "prometheus" },
    Binary { service: Service::Promtool, names: &["promtool"], package: "prometheus" },
    // Debian names the binary after the package; upstream tarballs call it `alertmanager`.
    Binary {
        service: Service::Alertmanager,
        names: &["prometheus-alertmanager", "alertmanager"],
        package: "prometheus-alertmanager",
    },
    Binary { service: Service::Amtool, names: &["amtool"], package: "prometheus-alertmanager" },
    Binary { service: Service::Haproxy, names: &["haproxy"], package: "haproxy" },
    Binary { service: Service::Rsyslogd, names: &["rsyslogd"], package: "rsyslog" },
    Binary { service: Service::Chromium, names: &["chromium", "chromium-browser"], package: "chromium" },
];

/// Debian installs daemons under sbin, which a non-root `PATH` often lacks.
const EXTRA_BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"];

const STATE_FILE: &str = "services.env";
/// The Python packages the interop tier drives, pinned, each installed without its dependencies (they are
/// listed here too): `prometheus_client` parses infra-apm's OpenMetrics; `toxiproxy-python` drives
/// infra-chaos's fault proxy, with what it imports.
const PYTHON_PEERS: &[&str] = &[
    "prometheus_client==0.21.1",
    "toxiproxy-python==0.1.1",
    "future==1.0.0",
    "requests==2.32.3",
    "urllib3==2.2.3",
    "idna==3.10",
    "certifi==2024.8.30",
    "charset-normalizer==3.4.0",
];
/// The Node.js Toxiproxy client the interop tier drives infra-chaos's fault proxy with.
const NODE_TOXIPROXY_CLIENT: &str = "toxiproxy-node-client@4.1.0";
/// What drives Chromium in the dashboard's browser test.
const NODE_PLAYWRIGHT: &str = "playwright-core@1.65.1";
/// What fuzzes the ops API from its OpenAPI document; installed with its dependencies (many, and
/// resolved by pip) into a folder of its own under target/.
const PYTHON_SCHEMATHESIS: &str = "schemathesis==4.32.5";
/// The Unleash server the interop tests run against: the last line that supports the Node.js 18 and 20
/// that Debian and this machine ship.
const UNLEASH_PACKAGE: &str = "unleash-server@6.4.1";
const UNLEASH_SCRIPT: &str = include_str!("../assets/start-unleash.js");
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The running shared servers and the environment tests get: what `up` returns and `down` undoes.
#[derive(Debug, Default)]
pub(crate) struct RunningServices {
    /// Variable name to value, as exported to tests.
    pub(crate) env: BTreeMap<String, String>,
    pids: Vec<(String, u32)>,
    dirs: Vec<PathBuf>,
}

fn state_path() -> PathBuf {
    crate::target_dir().join("xtask").join(STATE_FILE)
}

fn find_binary(names: &[&str]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    let dirs = path_dirs.into_iter().chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from));
    let dirs: Vec<PathBuf> = dirs.collect();
    names.iter().find_map(|name| dirs.iter().map(|dir| dir.join(name)).find(|candidate| candidate.is_file()))
}

/// Finds every binary; returns them and the Debian packages that would bring the missing ones.
fn locate() -> (BTreeMap<Service, PathBuf>, Vec<&'static str>) {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for binary in BINARIES {
        match find_binary(binary.names) {
            Some(path) => {
                found.insert(binary.service, path);
            }
            None if !missing.contains(&binary.package) => missing.push(binary.package),
            None => {}
        }
    }
    match infra_testkit::postgres_bin_dir() {
        Some(dir) => {
            found.insert(Service::PostgresBin, dir);
        }
        None => missing.push("postgresql"),
    }
    // Unleash runs on Node.js; its package comes from npm into target/, never globally.
    if find_binary(&["node"]).is_none() || find_binary(&["npm"]).is_none() {
        missing.extend(["nodejs", "npm"]);
    }
    (found, missing)
}

/// Installs `packages` with apt-get when we are root on a Debian-like system; otherwise says exactly
/// what to run.
fn install(packages: &[&str]) -> Result<()> {
    let command_line = format!("apt-get install -y --no-install-recommends {}", packages.join(" "));
    if !Path::new("/usr/bin/apt-get").exists() {
        bail!(
            "missing test servers ({}) and no apt-get here: install their equivalents with your package manager",
            packages.join(", ")
        );
    }
    if !running_as_root() {
        bail!("missing test servers; install them with:\n    sudo apt-get update && sudo {command_line}");
    }
    println!("services: installing {} (apt-get)", packages.join(" "));
    // Debian starts daemons from their postinst scripts; a policy-rc.d that answers 101 ("action not
    // allowed") keeps the packages from starting system-wide servers on their default ports.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let placed_policy = !policy.exists();
    if placed_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").context("writing /usr/sbin/policy-rc.d")?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755))?;
    }
    let result = (|| {
        run_apt(&["update", "-q"])?;
        let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
        args.extend_from_slice(packages);
        run_apt(&args)
    })();
    if placed_policy {
        let _ = std::fs::remove_file(policy);
    }
    result.with_context(|| format!("installing the test servers failed; the command was:\n    {command_line}"))
}

fn run_apt(args: &[&str]) -> Result<()> {
    let output = Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").output()?;
    if !output.status.success() {
        bail!(
            "apt-get {} failed ({}):\n{}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Finds or installs every binary, starts the shared servers and returns what tests need to find them.
pub(crate) fn up() -> Result<RunningServices> {
    if state_path().exists() {
        // A previous `up` whose `down` never ran: stop its servers rather than leaking them.
        down()?;
    }
    let (mut found, missing) = locate();
    if !missing.is_empty() {
        install(&missing)?;
        let (again, still_missing) = locate();
        if !still_missing.is_empty() {
            bail!("after installing, these packages' binaries are still missing: {}", still_missing.join(", "));
        }
        found = again;
    }

    let mut running = RunningServices::default();
    for (service, path) in &found {
        running.env.insert(service.env_var().to_owned(), path.display().to_string());
    }
    let started = start_shared(&found, &mut running);
    if let Err(err) = started {
        stop(&running);
        return Err(err);
    }
    write_state(&running)?;
    Ok(running)
}

fn start_shared(found: &BTreeMap<Service, PathBuf>, running: &mut RunningServices) -> Result<()> {
    let base = tempfile::Builder::new().prefix("infra-services-").tempdir()?.keep();
    running.dirs.push(base.clone());

    let redis_dir = base.join("redis");
    std::fs::create_dir_all(&redis_dir)?;
    let (redis, redis_addr) = infra_testkit::start_redis(&found[&Service::RedisServer], &redis_dir)?;
    running.pids.push(("redis".into(), redis.detach()));
    running.env.insert(Service::Redis.env_var().into(), format!("redis://{redis_addr}"));

    let postgres_dir = base.join("postgres");
    std::fs::create_dir_all(&postgres_dir)?;
    let (postgres, postgres_addr) = infra_testkit::start_postgres(&found[&Service::PostgresBin], &postgres_dir)?;
    running.pids.push(("postgres".into(), postgres.detach()));
    running.env.insert(Service::Postgres.env_var().into(), format!("postgres://postgres@{postgres_addr}/postgres"));

    let unleash_addr = start_unleash(postgres_addr, &base, running)?;
    running.env.insert(Service::Unleash.env_var().into(), format!("http://{unleash_addr}"));

    let python_peers = install_python_peers()?;
    running.env.insert(Service::PythonPrometheusClient.env_var().into(), python_peers.display().to_string());
    running.env.insert(Service::PythonToxiproxyClient.env_var().into(), python_peers.display().to_string());
    let node_modules = install_node_package(NODE_TOXIPROXY_CLIENT)?;
    running.env.insert(Service::NodeToxiproxyClient.env_var().into(), node_modules.display().to_string());
    let node_modules = install_node_package(NODE_PLAYWRIGHT)?;
    running.env.insert(Service::NodePlaywright.env_var().into(), node_modules.display().to_string());
    let schemathesis = install_schemathesis()?;
    running.env.insert(Service::PythonSchemathesis.env_var().into(), schemathesis.display().to_string());
    Ok(())
}

/// Installs the Python peer clients tests drive (see [`PYTHON_PEERS`]) from PyPI into a folder under
/// target/ (once per set of pins), never globally.
fn install_python_peers() -> Result<PathBuf> {
    let python = find_binary(&["python3"]).context("python3 is missing")?;
    let folder = crate::target_dir().join("xtask").join("python");
    let marker = folder.join(".infra-peers");
    let wanted = PYTHON_PEERS.join("\n");
    if std::fs::read_to_string(&marker).unwrap_or_default() != wanted {
        println!("services: installing {} from PyPI into {}", PYTHON_PEERS.join(", "), folder.display());
        let output = Command::new(python)
            // A Debian-managed Python refuses pip installs unless told; this one goes under target/.
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--upgrade",
                "--target",
            ])
            .arg(&folder)
            .args(PYTHON_PEERS)
            .output()
            .context("running pip")?;
        if !output.status.success() {
            bail!("pip install of the Python peers failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::fs::write(&marker, wanted)?;
    }
    Ok(folder)
}

/// Installs Schemathesis with its dependencies from PyPI into target/xtask/schemathesis (once per pin).
fn install_schemathesis() -> Result<PathBuf> {
    let python = find_binary(&["python3"]).context("python3 is missing")?;
    let folder = crate::target_dir().join("xtask").join("schemathesis");
    let marker = folder.join(".infra-pin");
    if std::fs::read_to_string(&marker).unwrap_or_default() != PYTHON_SCHEMATHESIS {
        println!(
            "services: installing {PYTHON_SCHEMATHESIS} (and its dependencies) from PyPI into {}",
            folder.display()
        );
        let output = Command::new(python)
            .env("PIP_BREAK_SYSTEM_PACKAGES", "1")
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "--target"])
            .arg(&folder)
            .arg(PYTHON_SCHEMATHESIS)
            .output()
            .context("running pip")?;
        if !output.status.success() {
            bail!("pip install of {PYTHON_SCHEMATHESIS} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::fs::write(&marker, PYTHON_SCHEMATHESIS)?;
    }
    Ok(folder)
}

/// Installs an npm package under target/xtask/node (once per version), never globally; returns the
/// `node_modules` folder.
fn install_node_package(package: &str) -> Result<PathBuf> {
    let npm = find_binary(&["npm"]).context("npm is missing")?;
    let prefix = crate::target_dir().join("xtask").join("node");
    std::fs::create_dir_all(&prefix)?;
    let (name, version) = package.rsplit_once('@').context("a package pinned as name@version")?;
    let installed = prefix.join("node_modules").join(name).join("package.json");
    let current = std::fs::read_to_string(&installed).unwrap_or_default();
    if !current.contains(&format!("\"version\": \"{version}\"")) {
        println!("services: installing {package} from npm into {}", prefix.display());
        let output = Command::new(&npm)
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix"])
            .arg(&prefix)
            .arg(package)
            .output()
            .context("running npm")?;
        if !output.status.success() {
            bail!("npm install {package} failed: {}", String::from_utf8_lossy(&output.stderr));
        }
    }
    Ok(prefix.join("node_modules"))
}

/// Installs Unleash from npm under target/ (once), and starts it on the shared PostgreSQL.
fn start_unleash(postgres: SocketAddr, base: &Path, running: &mut RunningServices) -> Result<SocketAddr> {
    let node = find_binary(&["node"]).context("node is missing")?;
    let prefix = install_node_package(UNLEASH_PACKAGE)?.parent().context("node_modules has a parent")?.to_owned();
    match postgres_query(postgres, "postgres", "postgres", "CREATE DATABASE unleash") {
        Ok(_) => {}
        Err(err) if err.to_string().contains("already exists") => {}
        Err(err) => return Err(err).context("creating Unleash's database"),
    }
    let script = prefix.join("start-unleash.js");
    std::fs::write(&script, UNLEASH_SCRIPT)?;
    let port = free_port()?;
    let mut command = Command::new(node);
    command
        .arg(&script)
        .current_dir(&prefix)
        .env("UNLEASH_PORT", port.to_string())
        .env("UNLEASH_PG_PORT", postgres.port().to_string())
        .env("UNLEASH_ADMIN_TOKEN", UNLEASH_ADMIN_TOKEN)
        .env("UNLEASH_CLIENT_TOKEN", UNLEASH_CLIENT_TOKEN)
        // Unleash phones home unless told not to; there is no network here to phone.
        .env("CHECK_VERSION", "false")
        .env("SEND_TELEMETRY", "false")
        .env("SCARF_ANALYTICS", "false");
    let mut unleash = ServerProcess::spawn("unleash", command, &base.join("unleash.log"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    unleash
        .wait_ready(Duration::from_secs(180), || match http_request(addr, "GET", "/health", None) {
            Ok(response) if response.status == 200 => Ok(()),
            Ok(response) => Err(format!("status {}", response.status)),
            Err(err) => Err(err.to_string()),
        })
        .map_err(anyhow::Error::msg)?;
    running.pids.push(("unleash".into(), unleash.detach()));
    Ok(addr)
}

fn write_state(running: &RunningServices) -> Result<()> {
    let mut text = String::from("# Written by `cargo xtask services up`; `source` it to run tests by hand.\n");
    for (key, value) in &running.env {
        writeln!(text, "export {key}='{value}'")?;
    }
    for (name, pid) in &running.pids {
        writeln!(text, "# pid {name} {pid}")?;
    }
    for dir in &running.dirs {
        writeln!(text, "# dir {}", dir.display())?;
    }
    let path = state_path();
    std::fs::create_dir_all(path.parent().expect("the state file lives in a folder"))?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

fn read_state() -> Result<Option<RunningServices>> {
    let path = state_path();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    let mut state = RunningServices::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("export ") {
            if let Some((key, value)) = rest.split_once('=') {
                state.env.insert(key.to_owned(), value.trim_matches('\'').to_owned());
            }
        } else if let Some(rest) = line.strip_prefix("# pid ") {
            if let Some((name, pid)) = rest.split_once(' ') {
                state.pids.push((name.to_owned(), pid.parse().with_context(|| format!("bad pid line {line:?}"))?));
            }
        } else if let Some(dir) = line.strip_prefix("# dir ") {
            state.dirs.push(PathBuf::from(dir));
        }
    }
    Ok(Some(state))
}

fn stop(running: &RunningServices) {
    for (name, pid) in running.pids.iter().rev() {
        if terminate_pid(*pid, STOP_GRACE) {
            println!("services: stopped {name} (pid {pid})");
        }
    }
    for dir in &running.dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Stops everything a previous `up` started and removes its folders and state file.
pub(crate) fn down() -> Result<()> {
    if let Some(state) = read_state()? {
        stop(&state);
        std::fs::remove_file(state_path())?;
    }
    Ok(())
}

/// One line per service: whether it answers (servers) or exists (binaries).
fn probe_all(state: &RunningServices) -> Vec<(Service, Result<String, String>)> {
    Service::ALL
        .iter()
        .map(|&service| {
            let value = state.env.get(service.env_var());
            let outcome = match (service, value) {
                (_, None) => Err("not provided".to_owned()),
                (Service::Redis, Some(url)) => match url_addr(url).map(|addr| redis_command(addr, &[b"PING"])) {
                    Some(Ok(RespValue::Simple(pong))) if pong == "PONG" => Ok(format!("{url} answers PING")),
                    Some(other) => Err(format!("{url}: {other:?}")),
                    None => Err(format!("bad URL {url}")),
                },
                (Service::Unleash, Some(url)) => {
                    match url_addr(url).map(|addr| http_request(addr, "GET", "/health", None)) {
                        Some(Ok(response)) if response.status == 200 => Ok(format!("{url} answers /health")),
                        Some(other) => Err(format!("{url}: {other:?}")),
                        None => Err(format!("bad URL {url}")),
                    }
                }
                (Service::Postgres, Some(url)) => {
                    match url_addr(url).map(|addr| postgres_query(addr, "postgres", "postgres", "SELECT 1")) {
                        Some(Ok(_)) => Ok(format!("{url} answers SELECT 1")),
                        Some(Err(err)) => Err(format!("{url}: {err}")),
                        None => Err(format!("bad URL {url}")),
                    }
                }
                (_, Some(path)) if Path::new(path).exists() => Ok(path.clone()),
                (_, Some(path)) => Err(format!("{path} is gone")),
            };
            (service, outcome)
        })
        .collect()
}

pub(crate) fn up_command() -> Result<()> {
    let running = up()?;
    print_status(&running);
    println!(
        "\nservices are up; `source {}` to run tests by hand, `cargo xtask services down` to stop",
        state_path().display()
    );
    Ok(())
}

pub(crate) fn down_command() -> Result<()> {
    down()?;
    println!("services: down, nothing left running");
    Ok(())
}

pub(crate) fn status_command() -> Result<()> {
    let Some(state) = read_state()? else {
        println!("services: not up (run `cargo xtask services up`)");
        return Ok(());
    };
    if !print_status(&state) {
        bail!("some services are not reachable");
    }
    Ok(())
}

/// Prints a table of every service; returns whether all are reachable.
fn print_status(state: &RunningServices) -> bool {
    let mut all_ok = true;
    println!("{:<26} {:<6} detail", "variable", "state");
    for (service, outcome) in probe_all(state) {
        let (word, detail) = match outcome {
            Ok(detail) => ("ok", detail),
            Err(detail) => {
                all_ok = false;
                ("FAIL", detail)
            }
        };
        println!("{:<26} {:<6} {detail}", service.env_var(), word);
    }
    for (name, pid) in &state.pids {
        println!("{:<26} {:<6} pid {pid}", name, if pid_alive(*pid) { "alive" } else { "GONE" });
    }
    all_ok
}
