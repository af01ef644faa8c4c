//! Child server processes that never outlive their test, and the waiting that goes with them.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, as the kernel hands it out.
///
/// Another process may take the port between this call and its use; callers that start a server on it
/// retry with a new port when the server reports the address in use.
///
/// # Errors
///
/// Fails when no loopback socket can be bound at all.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Polls `probe` until it returns `Ok`, or `timeout` passes.
///
/// # Errors
///
/// Returns the last error of the probe, prefixed with how long it was tried.
pub fn wait_until<T, E: std::fmt::Display>(
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> Result<T, String> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(err) if started.elapsed() >= timeout => {
                return Err(format!("still failing after {timeout:?}: {err}"));
            }
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
        }
    }
}

/// A server started for tests: killed and reaped when dropped, unless [`ServerProcess::detach`]ed.
///
/// Its standard output and error go to a log file, whose end [`ServerProcess::log_tail`] returns for
/// error messages.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `command` with its output appended to `log_path`, in a process group of its own so a
    /// terminal's Ctrl-C reaches the harness rather than the servers it has to stop in order.
    ///
    /// # Errors
    ///
    /// Fails when the log file cannot be created or the program cannot be started.
    pub fn spawn(name: &str, mut command: Command, log_path: &Path) -> io::Result<Self> {
        use std::os::unix::process::CommandExt;

        let log = File::options().create(true).append(true).open(log_path)?;
        command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0);
        let child = command.spawn().map_err(|err| {
            io::Error::new(err.kind(), format!("cannot start {name} ({:?}): {err}", command.get_program()))
        })?;
        Ok(Self { name: name.to_owned(), child: Some(child), log_path: log_path.to_owned() })
    }

    /// The operating-system process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The name given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the process writes its output.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether the process has exited, and with what status.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    /// Waits until `probe` succeeds, failing early if the process exits meanwhile.
    ///
    /// # Errors
    ///
    /// Returns a message naming the server, the probe's last error and the end of the server's log.
    pub fn wait_ready<E: std::fmt::Display>(
        &mut self,
        timeout: Duration,
        mut probe: impl FnMut() -> Result<(), E>,
    ) -> Result<(), String> {
        let result = wait_until(timeout, || {
            if let Some(status) = self.exited() {
                return Err(format!("exited with {status}"));
            }
            probe().map_err(|err| err.to_string())
        });
        result.map_err(|err| format!("{} did not become ready: {err}\n--- log ---\n{}", self.name, self.log_tail()))
    }

    /// The last few kilobytes of the server's log.
    pub fn log_tail(&self) -> String {
        read_tail(&self.log_path, 4096).unwrap_or_else(|err| format!("(log unreadable: {err})"))
    }

    /// Leaves the process running past this handle and returns its pid (the harness's shared servers
    /// outlive `cargo xtask services up`; `services down` stops them by pid).
    pub fn detach(mut self) -> u32 {
        let pid = self.pid();
        self.child = None;
        pid
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`; reaps it.
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut child) = self.child.take() {
            // A zombie child counts as gone for `pid_alive`, so reap promptly while waiting.
            if child.try_wait().ok().flatten().is_none() {
                terminate_pid(child.id(), grace);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Stops the process group led by `pid` (every [`ServerProcess`] leads its own, so a server's workers go
/// with it): SIGTERM, up to `grace` for the leader to exit, then SIGKILL. Returns whether it was running.
///
/// Uses the `kill` command rather than libc so that this crate stays free of unsafe code.
pub fn terminate_pid(pid: u32, grace: Duration) -> bool {
    if pid == 0 || !pid_alive(pid) {
        return false;
    }
    let signal_group = |signal: &str| {
        let _ = Command::new("kill").args([signal, "--", &format!("-{pid}")]).stderr(Stdio::null()).status();
    };
    signal_group("-TERM");
    if wait_until(grace, || if pid_alive(pid) { Err("still running") } else { Ok(()) }).is_err() {
        signal_group("-KILL");
    }
    true
}

/// Whether `pid` names a live (not zombie) process.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists() && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .unwrap_or(true)
}

fn read_tail(path: &Path, max: u64) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
