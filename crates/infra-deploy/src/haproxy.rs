//! HAProxy as a traffic backend, through its runtime API (the admin socket).
//!
//! Each deployment maps to one server of one HAProxy backend. A change sets every mapped server's weight
//! (`set server <backend>/<server> weight <w>`, `state ready` when it gets traffic, `state drain` when it
//! gets none, so open requests finish), raising weights before lowering them so that capacity never dips,
//! then reads the servers back (`show servers state <backend>`) and fails if HAProxy does not hold what was
//! asked. HAProxy forgets runtime weights when it reloads: [`TrafficBackend::reconcile`] reads the servers
//! and applies the weights again when they drifted (the deployer's health-check thread calls it each
//! round).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{BackendError, TrafficBackend, TrafficWeight};

/// HAProxy's largest server weight.
const MAX_WEIGHT: u32 = 256;
/// `srv_admin_state` bits for draining (forced by the runtime API, or inherited).
const ADMIN_DRAIN: u32 = 0x08 | 0x10;
/// `srv_admin_state` bits for maintenance (forced, inherited, from configuration, resolution, health).
const ADMIN_MAINT: u32 = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;

/// Where HAProxy's runtime API listens (`stats socket ... level admin` in its `global` section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminSocket {
    /// A Unix socket path (`stats socket /run/haproxy/admin.sock level admin`).
    Unix(PathBuf),
    /// A TCP address (`stats socket ipv4@127.0.0.1:9999 level admin`).
    Tcp(SocketAddr),
}

impl std::fmt::Display for AdminSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminSocket::Unix(path) => write!(f, "{}", path.display()),
            AdminSocket::Tcp(address) => write!(f, "{address}"),
        }
    }
}

/// One server as `show servers state` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    /// The server's name.
    pub name: String,
    /// Its current (user-set) weight, 0 to 256.
    pub weight: u32,
    /// Its weight in the configuration file (what a reload brings back).
    pub initial_weight: u32,
    /// Whether it is draining (no new traffic, open requests finish).
    pub draining: bool,
    /// Whether it is in maintenance.
    pub maintenance: bool,
    /// Its operational state: 0 stopped, 1 starting, 2 running, 3 stopping.
    pub operational: u32,
}

/// HAProxy as a [`TrafficBackend`]: deployments mapped to servers of one backend.
#[derive(Debug, Clone)]
pub struct HaproxyBackend {
    socket: AdminSocket,
    backend: String,
    /// (deployment, server), in the order given.
    servers: Vec<(String, String)>,
    timeout: Duration,
}

impl HaproxyBackend {
    /// HAProxy's `backend` section `backend`, reached through `socket`; map deployments to its servers
    /// with [`HaproxyBackend::server`].
    pub fn new(socket: AdminSocket, backend: impl Into<String>) -> Self {
        HaproxyBackend { socket, backend: backend.into(), servers: Vec::new(), timeout: Duration::from_secs(2) }
    }

    /// Routes `deployment`'s traffic to HAProxy server `server` of this backend.
    pub fn server(mut self, deployment: impl Into<String>, server: impl Into<String>) -> Self {
        self.servers.push((deployment.into(), server.into()));
        self
    }

    /// How long one command may take, connect included (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn error(&self, reason: impl Into<String>) -> BackendError {
        BackendError::new(self.name(), reason)
    }

    /// Sends one runtime API command and returns HAProxy's answer.
    ///
    /// # Errors
    ///
    /// [`BackendError`] when the socket cannot be reached or the exchange times out.
    pub fn command(&self, line: &str) -> Result<String, BackendError> {
        let exchange = match &self.socket {
            AdminSocket::Unix(path) => std::os::unix::net::UnixStream::connect(path).and_then(|stream| {
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                exchange(stream, line)
            }),
            AdminSocket::Tcp(address) => TcpStream::connect_timeout(address, self.timeout).and_then(|stream| {
                stream.set_read_timeout(Some(self.timeout))?;
                stream.set_write_timeout(Some(self.timeout))?;
                exchange(stream, line)
            }),
        };
        exchange.map_err(|err| self.error(format!("admin socket {} unreachable: {err}", self.socket)))
    }

    /// A command whose success is an empty answer (the `set` commands); any text is HAProxy's refusal.
    fn set(&self, line: &str) -> Result<(), BackendError> {
        let answer = self.command(line)?;
        let answer = answer.trim();
        if answer.is_empty() { Ok(()) } else { Err(self.error(format!("`{line}` refused: {answer}"))) }
    }

    /// The backend's servers, read with `show servers state <backend>`.
    ///
    /// # Errors
    ///
    /// [`BackendError`] when the socket cannot be reached, the backend does not exist, or the answer
    /// cannot be read.
    pub fn servers_state(&self) -> Result<Vec<ServerState>, BackendError> {
        let answer = self.command(&format!("show servers state {}", self.backend))?;
        parse_servers_state(&answer).map_err(|reason| self.error(reason))
    }

    /// The weight HAProxy gets for `percent`: shares of 256, so 5% is 13 of 256 (5.08%).
    fn weight_for(percent: f64) -> u32 {
        ((percent / 100.0) * f64::from(MAX_WEIGHT)).round().clamp(0.0, f64::from(MAX_WEIGHT)) as u32
    }

    /// The mapped servers and the weight each should have (servers of deployments absent from `weights`
    /// are left as they are).
    fn desired(&self, weights: &[TrafficWeight<'_>]) -> Vec<(String, u32)> {
        self.servers
            .iter()
            .filter_map(|(deployment, server)| {
                let weight = weights.iter().find(|w| w.deployment == deployment)?;
                Some((server.clone(), Self::weight_for(weight.percent)))
            })
            .collect()
    }

    fn matches(current: &[ServerState], desired: &[(String, u32)]) -> bool {
        desired.iter().all(|(server, weight)| {
            current.iter().any(|state| {
                state.name == *server
                    && state.weight == *weight
                    && !state.maintenance
                    && state.draining == (*weight == 0)
            })
        })
    }
}

impl TrafficBackend for HaproxyBackend {
    fn name(&self) -> String {
        format!("haproxy backend {}", self.backend)
    }

    fn apply(&self, weights: &[TrafficWeight<'_>]) -> Result<(), BackendError> {
        let desired = self.desired(weights);
        // Read first: an unreachable socket or an unknown server refuses the change before anything moves.
        let current = self.servers_state()?;
        for (server, _) in &desired {
            if !current.iter().any(|state| state.name == *server) {
                return Err(self.error(format!("HAProxy has no server {}/{server}", self.backend)));
            }
        }
        let weight_now =
            |server: &str| current.iter().find(|state| state.name == server).map_or(0, |state| state.weight);
        // Raise before lowering: the new side takes traffic before the old side lets go of it.
        let (rising, falling): (Vec<_>, Vec<_>) =
            desired.iter().partition(|(server, weight)| *weight > 0 && *weight >= weight_now(server));
        for (server, weight) in rising {
            self.set(&format!("set server {}/{server} state ready", self.backend))?;
            self.set(&format!("set server {}/{server} weight {weight}", self.backend))?;
        }
        for (server, weight) in falling {
            self.set(&format!("set server {}/{server} weight {weight}", self.backend))?;
            let state = if *weight == 0 { "drain" } else { "ready" };
            self.set(&format!("set server {}/{server} state {state}", self.backend))?;
        }
        let after = self.servers_state()?;
        if Self::matches(&after, &desired) {
            Ok(())
        } else {
            Err(self.error(format!("HAProxy does not hold the weights set: asked {desired:?}, holds {after:?}")))
        }
    }

    fn reconcile(&self, weights: &[TrafficWeight<'_>]) -> Result<bool, BackendError> {
        let desired = self.desired(weights);
        if Self::matches(&self.servers_state()?, &desired) {
            return Ok(false);
        }
        self.apply(weights).map(|()| true)
    }
}

/// One runtime API exchange: the command line out, everything up to HAProxy's close back.
fn exchange(mut stream: impl Read + Write, line: &str) -> std::io::Result<String> {
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// Parses `show servers state`: a version line, a `# ` header naming the columns, one line per server.
fn parse_servers_state(answer: &str) -> Result<Vec<ServerState>, String> {
    let mut lines = answer.lines().map(str::trim).filter(|line| !line.is_empty());
    match lines.next() {
        Some("1") => {}
        Some(other) => return Err(format!("unexpected answer to show servers state: {other}")),
        None => return Err("empty answer to show servers state".into()),
    }
    let header = lines.next().and_then(|line| line.strip_prefix("# ")).ok_or("no column header in the answer")?;
    let columns: Vec<&str> = header.split_whitespace().collect();
    let column = |name: &str| columns.iter().position(|c| *c == name).ok_or(format!("no column {name}"));
    let (name, op, admin, weight, initial) = (
        column("srv_name")?,
        column("srv_op_state")?,
        column("srv_admin_state")?,
        column("srv_uweight")?,
        column("srv_iweight")?,
    );
    let mut servers = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let number = |at: usize| {
            fields.get(at).and_then(|f| f.parse::<u32>().ok()).ok_or_else(|| format!("bad server line: {line}"))
        };
        let admin_state = number(admin)?;
        servers.push(ServerState {
            name: fields.get(name).ok_or_else(|| format!("bad server line: {line}"))?.to_string(),
            weight: number(weight)?,
            initial_weight: number(initial)?,
            draining: admin_state & ADMIN_DRAIN != 0,
            maintenance: admin_state & ADMIN_MAINT != 0,
            operational: number(op)?,
        });
    }
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight \
                          srv_iweight srv_time_since_last_change srv_check_status\n\
                          3 app 1 blue 127.0.0.1 2 0 243 256 12 1\n\
                          3 app 2 green 127.0.0.1 2 8 0 0 3 1\n";

    #[test]
    fn reads_the_servers_state() {
        let servers = parse_servers_state(ANSWER).unwrap();
        assert_eq!(servers.len(), 2);
        assert_eq!((servers[0].name.as_str(), servers[0].weight, servers[0].initial_weight), ("blue", 243, 256));
        assert!(!servers[0].draining && servers[1].draining && !servers[1].maintenance);
        assert!(parse_servers_state("Can't find backend.\n").is_err());
        assert!(parse_servers_state("").is_err());
    }

    #[test]
    fn percentages_become_shares_of_256() {
        assert_eq!(HaproxyBackend::weight_for(5.0), 13);
        assert_eq!(HaproxyBackend::weight_for(50.0), 128);
        assert_eq!(HaproxyBackend::weight_for(100.0), 256);
        assert_eq!(HaproxyBackend::weight_for(0.0), 0);
    }
}
