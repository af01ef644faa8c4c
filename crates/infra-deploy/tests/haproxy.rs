//! HAProxy as the traffic backend, through its runtime API: a real HAProxy (started from the harness's
//! binary) in front of two loopback HTTP servers, blue v1 and green v2.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use infra_deploy::{
    AdminSocket, BlueGreenPlan, CanaryPlan, DeployError, Deployer, HaproxyBackend, HealthTarget, Phase, Rollout, Step,
};
use infra_testkit::{ServerProcess, Service, free_port, http_request};

/// A loopback HTTP server answering every request with `body`, a thread per connection.
fn spawn_backend(body: &'static str) -> SocketAddr {
    spawn_switchable_backend(body, Arc::new(AtomicBool::new(false)))
}

/// As [`spawn_backend`], answering 503 while `failing` is set.
fn spawn_switchable_backend(body: &'static str, failing: Arc<AtomicBool>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let failing = Arc::clone(&failing);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let status = if failing.load(Ordering::Relaxed) { "503 Service Unavailable" } else { "200 OK" };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes());
            });
        }
    });
    address
}

struct Haproxy {
    binary: std::path::PathBuf,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    process: ServerProcess,
    port: u16,
    /// Where HAProxy's built-in Prometheus exporter answers (`/metrics`).
    exporter: SocketAddr,
    socket: std::path::PathBuf,
}

impl Haproxy {
    fn start(binary: std::path::PathBuf, dir: &Path, blue: SocketAddr, green: SocketAddr) -> Haproxy {
        let port = free_port().unwrap();
        let exporter = loopback(free_port().unwrap());
        let socket = dir.join("admin.sock");
        let config = dir.join("haproxy.cfg");
        // The configuration gives blue everything: what HAProxy falls back to when it reloads.
        std::fs::write(
            &config,
            format!(
                "global\n  stats socket {socket} level admin\n  log stderr format raw local0\n\
                 defaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
                 frontend web\n  bind 127.0.0.1:{port}\n  default_backend app\n\
                 frontend exporter\n  bind {exporter}\n  http-request use-service prometheus-exporter if {{ path /metrics }}\n\
                 backend app\n  balance roundrobin\n  server blue {blue} weight 256\n  server green {green} weight 0\n",
                socket = socket.display()
            ),
        )
        .unwrap();
        let log = dir.join("haproxy.log");
        let process = Self::spawn(&binary, &config, &log, port);
        Haproxy { binary, config, log, process, port, exporter, socket }
    }

    fn spawn(binary: &Path, config: &Path, log: &Path, port: u16) -> ServerProcess {
        let mut command = Command::new(binary);
        command.arg("-db").arg("-f").arg(config);
        let mut process = ServerProcess::spawn("haproxy", command, log).unwrap();
        process
            .wait_ready(Duration::from_secs(20), || match http_request(loopback(port), "GET", "/", None) {
                Ok(response) if response.status == 200 => Ok(()),
                Ok(response) => Err(format!("status {}", response.status)),
                Err(err) => Err(err.to_string()),
            })
            .unwrap();
        process
    }

    /// Stops HAProxy and starts it again from its configuration: runtime weights are forgotten, as on a
    /// reload.
    fn restart(&mut self) {
        self.process.stop(Duration::from_secs(5));
        let _ = std::fs::remove_file(&self.socket);
        self.process = Self::spawn(&self.binary, &self.config, &self.log, self.port);
    }

    fn backend(&self) -> HaproxyBackend {
        HaproxyBackend::new(AdminSocket::Unix(self.socket.clone()), "app")
            .server("blue", "blue")
            .server("green", "green")
    }

    /// Sends `count` requests through HAProxy; returns green's share in percent.
    fn green_share(&self, count: usize) -> f64 {
        let mut green = 0;
        for _ in 0..count {
            let response = http_request(loopback(self.port), "GET", "/", None).expect("HAProxy answers");
            assert_eq!(response.status, 200);
            if response.body == "green v2" {
                green += 1;
            }
        }
        100.0 * green as f64 / count as f64
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// HAProxy, and a deployer driving it with blue (all traffic) and green registered; the folder lives as
/// long as the returned guard.
fn setup() -> Option<(Haproxy, Deployer, impl Sized)> {
    let binary = infra_testkit::service_path(Service::Haproxy)?;
    let dir = infra_testkit::temp_dir();
    let (blue, green) = (spawn_backend("blue v1"), spawn_backend("green v2"));
    let haproxy = Haproxy::start(binary, dir.path(), blue, green);
    let deployer = Deployer::builder("web").backend(haproxy.backend()).build().unwrap();
    deployer.register("blue", "v1", HealthTarget::None).unwrap();
    deployer.register("green", "v2", HealthTarget::None).unwrap();
    Some((haproxy, deployer, dir))
}

#[test]
fn interop_a_canary_plan_moves_haproxys_traffic_step_by_step() {
    let Some((haproxy, deployer, _dir)) = setup() else { return };
    assert_eq!(haproxy.green_share(200), 0.0, "blue has everything at first");
    let mut steps = Vec::new();
    for weight in [5.0, 25.0, 50.0] {
        steps.push(Step::SetWeight(weight));
        steps.push(Step::Pause(None));
    }
    let rollout = Rollout::start(&deployer, CanaryPlan::new("green", "blue", steps)).unwrap();
    for weight in [5.0, 25.0, 50.0] {
        assert!(matches!(rollout.phase(), Phase::Paused { .. }), "{:?}", rollout.phase());
        let share = haproxy.green_share(1_000);
        assert!((share - weight).abs() <= 1.0, "at {weight}%: green served {share}% of 1,000 requests");
        eprintln!("canary at {weight}%: green served {share}% of 1,000 requests through HAProxy");
        let servers = haproxy.backend().servers_state().unwrap();
        let green = servers.iter().find(|s| s.name == "green").unwrap();
        assert_eq!(green.weight, (weight * 2.56_f64).round() as u32, "read back from HAProxy");
        rollout.promote();
    }
    assert_eq!(rollout.phase(), Phase::Promoted);
    assert_eq!(haproxy.green_share(1_000), 100.0);
    let blue = haproxy.backend().servers_state().unwrap().into_iter().find(|s| s.name == "blue").unwrap();
    assert!(blue.draining && blue.weight == 0, "the old side drains: {blue:?}");
}

#[test]
fn interop_a_blue_green_cut_over_under_load_fails_no_request() {
    let Some((haproxy, deployer, _dir)) = setup() else { return };
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed, green_seen) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let port = haproxy.port;
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, failed, green_seen) =
                (Arc::clone(&stop), Arc::clone(&served), Arc::clone(&failed), Arc::clone(&green_seen));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match http_request(loopback(port), "GET", "/", None) {
                        Ok(response) if response.status == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                            if response.body == "green v2" {
                                green_seen.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A blue-green plan: promoted after 300 ms, the old side kept 300 ms, driven on its own thread.
    let plan = BlueGreenPlan::new("green", "blue")
        .auto_promote_after(Duration::from_millis(300))
        .release_after(Duration::from_millis(300));
    let rollout = Rollout::start_blue_green(&deployer, plan).unwrap();
    let driver = rollout.drive(Duration::from_millis(20)).unwrap();
    infra_testkit::wait_until(Duration::from_secs(10), || {
        if rollout.phase() == Phase::Promoted { Ok(()) } else { Err(format!("{:?}", rollout.phase())) }
    })
    .unwrap();
    assert!(driver.is_finished());
    std::thread::sleep(Duration::from_millis(300));
    // Back and forth by hand.
    deployer.set_active("blue").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    deployer.rollback().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for thread in load {
        thread.join().unwrap();
    }
    let (served, failed) = (served.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(served > 500, "a real load: {served} requests");
    assert_eq!(failed, 0, "{failed} of {} requests failed during the cut-overs", served + failed);
    eprintln!("{served} requests during a blue-green rollout and two cut-overs by hand, none failed");
    assert!(green_seen.load(Ordering::Relaxed) > 0);
    assert_eq!(haproxy.green_share(100), 100.0);
}

#[test]
fn interop_weights_are_applied_again_after_haproxy_forgets_them() {
    let Some((mut haproxy, deployer, _dir)) = setup() else { return };
    deployer.shift_traffic("green", 25.0).unwrap();
    assert_eq!(deployer.reconcile_backends().unwrap(), 0, "nothing drifted");
    haproxy.restart();
    assert_eq!(haproxy.green_share(100), 0.0, "the configuration's weights are back: blue only");
    assert_eq!(deployer.reconcile_backends().unwrap(), 1, "the drift is seen and corrected");
    let share = haproxy.green_share(1_000);
    assert!((share - 25.0).abs() <= 1.0, "{share}");
    assert!(deployer.status().events.iter().any(|e| e.what.contains("had drifted")));
}

#[test]
fn an_unreachable_admin_socket_refuses_the_change_and_changes_nothing() {
    let dir = infra_testkit::temp_dir();
    let backend = HaproxyBackend::new(AdminSocket::Unix(dir.path().join("nobody-listens.sock")), "app")
        .server("blue", "blue")
        .timeout(Duration::from_millis(200));
    let deployer = Deployer::builder("web").backend(backend).build().unwrap();
    let refused = deployer.register("blue", "v1", HealthTarget::None);
    assert!(
        matches!(&refused, Err(DeployError::Backend(error)) if error.reason.contains("unreachable")),
        "{refused:?}"
    );
    assert!(deployer.status().deployments.is_empty(), "not registered");
    assert!(refused.unwrap_err().to_string().contains("nothing changed"));
}

/// Requests through HAProxy from `threads` threads until the returned flag is set.
fn load(port: u16, threads: usize) -> (Arc<AtomicBool>, Vec<std::thread::JoinHandle<()>>) {
    let stop = Arc::new(AtomicBool::new(false));
    let handles = (0..threads)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let _ = http_request(loopback(port), "GET", "/", None);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    (stop, handles)
}

/// Ticks `rollout` on the real clock until it is promoted or aborted; returns when that happened.
fn drive(rollout: &Rollout, limit: Duration) -> std::time::Instant {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        rollout.tick();
        if matches!(rollout.phase(), Phase::Promoted | Phase::Aborted { .. }) {
            return std::time::Instant::now();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the rollout did not finish within {limit:?}: {:?}\n{:#?}", rollout.phase(), rollout.events());
}

#[cfg(feature = "prometheus")]
#[test]
fn interop_canary_analysis_reads_prometheus_scraping_haproxy_and_aborts_on_5xx() {
    use infra_deploy::{Analysis, PrometheusQuery};

    let Some(haproxy_binary) = infra_testkit::service_path(Service::Haproxy) else { return };
    let Some(prometheus_binary) = infra_testkit::service_path(Service::Prometheus) else { return };
    let dir = infra_testkit::temp_dir();
    let failing = Arc::new(AtomicBool::new(false));
    let (blue, green) = (spawn_backend("blue v1"), spawn_switchable_backend("green v2", Arc::clone(&failing)));
    let haproxy = Haproxy::start(haproxy_binary, dir.path(), blue, green);
    let prometheus_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prometheus_dir).unwrap();
    let (_prometheus, prometheus) =
        infra_testkit::start_prometheus(&prometheus_binary, &prometheus_dir, &[haproxy.exporter]).unwrap();
    let deployer = Deployer::builder("web").backend(haproxy.backend()).build().unwrap();
    deployer.register("blue", "v1", HealthTarget::None).unwrap();
    deployer.register("green", "v2", HealthTarget::None).unwrap();

    // Green's share of 5xx answers over the last five seconds, from HAProxy's own counters.
    let errors = PrometheusQuery::new(
        format!("http://{prometheus}"),
        "sum(rate(haproxy_server_http_responses_total{proxy=\"app\",server=\"green\",code=\"5xx\"}[5s])) \
         / sum(rate(haproxy_server_http_responses_total{proxy=\"app\",server=\"green\"}[5s]))",
    );
    let interval = Duration::from_secs(2);
    let failure_limit = 1;
    let analysis = || {
        Analysis::prometheus("green 5xx ratio", &errors, |ratio| ratio <= 0.01, |ratio| ratio > 0.05)
            .runs(3, interval)
            .failure_limit(failure_limit)
    };
    let plan = || {
        CanaryPlan::new(
            "green",
            "blue",
            vec![Step::SetWeight(20.0), Step::Analyze(analysis()), Step::SetWeight(50.0), Step::Analyze(analysis())],
        )
    };
    let (stop, threads) = load(haproxy.port, 2);
    // Wait until Prometheus has scraped HAProxy at least twice, so rates exist.
    infra_testkit::wait_until(Duration::from_secs(30), || {
        PrometheusQuery::new(format!("http://{prometheus}"), "count(haproxy_server_http_responses_total)")
            .value()
            .map_err(|err| err.to_string())?
            .ok_or_else(|| "no scrape yet".to_owned())
    })
    .unwrap();

    // Healthy green: promoted.
    let healthy = Rollout::start(&deployer, plan()).unwrap();
    drive(&healthy, Duration::from_secs(60));
    assert_eq!(healthy.phase(), Phase::Promoted, "{:#?}", healthy.events());
    assert_eq!(haproxy.green_share(200), 100.0);

    // Back to blue; a second rollout whose green starts failing once it has traffic.
    deployer.set_active("blue").unwrap();
    let failing_rollout = Rollout::start(&deployer, plan()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    failing.store(true, Ordering::Relaxed);
    let broke = std::time::Instant::now();
    let finished = drive(&failing_rollout, Duration::from_secs(60));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(matches!(failing_rollout.phase(), Phase::Aborted { .. }), "{:#?}", failing_rollout.events());
    // Bound: the failures the analysis tolerates plus the one that aborts, one interval each, plus one
    // scrape for the 5xx to reach Prometheus, plus the first measurement's alignment to its interval.
    let bound = interval * (failure_limit + 1) + Duration::from_secs(1) + interval;
    let took = finished - broke;
    eprintln!("aborted {took:?} after green began answering 503 (bound {bound:?})");
    assert!(took <= bound, "aborted {took:?} after green broke; bound {bound:?}");
    let green = haproxy.backend().servers_state().unwrap().into_iter().find(|s| s.name == "green").unwrap();
    assert_eq!((green.weight, green.draining), (0, true), "green's weight is back to 0 in HAProxy");
    assert_eq!(haproxy.green_share(200), 0.0);
    assert_eq!(errors.failures(), 0, "every query answered");
}
