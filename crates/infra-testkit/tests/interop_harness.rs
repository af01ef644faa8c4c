//! The interop tier's proof of the harness: one real exchange with each server the tests rely on.
//!
//! Each test finds its server or binary through the harness's environment variables, so under plain
//! `cargo test` without `cargo xtask services up` they skip with a printed reason.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use infra_testkit::{
    RespValue, ServerProcess, Service, free_port, http_request, postgres_query, redis_command, run_with_input, service,
    service_path, start_prometheus, temp_dir, url_addr, wait_until,
};

const READY: Duration = Duration::from_secs(30);

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[test]
fn interop_redis_set_get() {
    let Some(url) = service(Service::Redis) else {
        return;
    };
    let addr = url_addr(&url).expect("the harness hands out numeric loopback addresses");
    let key = format!("infra-testkit:{}", std::process::id());
    assert_eq!(
        redis_command(addr, &[b"SET", key.as_bytes(), b"value \xff with bytes"]).unwrap(),
        RespValue::Simple("OK".into())
    );
    assert_eq!(
        redis_command(addr, &[b"GET", key.as_bytes()]).unwrap(),
        RespValue::Bulk(Some(b"value \xff with bytes".to_vec()))
    );
    assert_eq!(redis_command(addr, &[b"DEL", key.as_bytes()]).unwrap(), RespValue::Integer(1));
    assert_eq!(redis_command(addr, &[b"GET", key.as_bytes()]).unwrap(), RespValue::Bulk(None));
}

#[test]
fn interop_postgres_select_1() {
    let Some(url) = service(Service::Postgres) else {
        return;
    };
    let addr = url_addr(&url).expect("the harness hands out numeric loopback addresses");
    let rows = postgres_query(addr, "postgres", "postgres", "SELECT 1, NULL::text, 'ünïcode'").unwrap();
    assert_eq!(rows, vec![vec![Some("1".to_owned()), None, Some("ünïcode".to_owned())]]);
    let err = postgres_query(addr, "postgres", "postgres", "SELECT * FROM no_such_table").unwrap_err();
    assert!(err.to_string().contains("no_such_table"), "{err}");
}

fn promtool_check(promtool: &std::path::Path, exposition: &str) -> std::process::Output {
    run_with_input(Command::new(promtool).args(["check", "metrics"]), exposition.as_bytes()).unwrap()
}

#[test]
fn interop_promtool_checks_metrics() {
    let Some(promtool) = service_path(Service::Promtool) else {
        return;
    };
    let good = "# HELP orders_total Orders accepted.\n# TYPE orders_total counter\norders_total{venue=\"x\\\"y\"} 3\n";
    let output = promtool_check(&promtool, good);
    assert!(output.status.success(), "promtool rejected a valid exposition: {output:?}");
    // The same check must be able to fail, or passing it proves nothing.
    let output = promtool_check(&promtool, "# TYPE orders_total counter\norders_total{venue=\"unterminated} 3\n");
    assert!(!output.status.success(), "promtool accepted a broken exposition");
}

#[test]
fn interop_prometheus_starts_and_is_ready() {
    let Some(prometheus) = service_path(Service::Prometheus) else {
        return;
    };
    let dir = temp_dir();
    let (_server, addr) = start_prometheus(&prometheus, dir.path(), &[]).unwrap();
    let port = addr.port();
    let response = http_request(loopback(port), "GET", "/api/v1/status/buildinfo", None).unwrap();
    assert_eq!(response.status, 200);
    assert!(response.body.contains("\"version\""), "{}", response.body);
}

#[test]
fn interop_alertmanager_answers_status() {
    let Some(alertmanager) = service_path(Service::Alertmanager) else {
        return;
    };
    let dir = temp_dir();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(&config, "route:\n  receiver: default\nreceivers:\n  - name: default\n").unwrap();
    let port = free_port().unwrap();
    let mut command = Command::new(alertmanager);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // An empty cluster address turns gossip off: no second port, no peers to look for.
        .arg("--cluster.listen-address=");
    let mut server = ServerProcess::spawn("alertmanager", command, &dir.path().join("alertmanager.log")).unwrap();
    let status = server
        .wait_ready(READY, || match http_request(loopback(port), "GET", "/api/v2/status", None) {
            Ok(response) if response.status == 200 => Ok(()),
            Ok(response) => Err(format!("status {}", response.status)),
            Err(err) => Err(err.to_string()),
        })
        .and_then(|()| http_request(loopback(port), "GET", "/api/v2/status", None).map_err(|e| e.to_string()))
        .unwrap();
    assert!(status.body.contains("\"versionInfo\""), "{}", status.body);
    assert!(status.body.contains("receiver: default"), "the status echoes the loaded config: {}", status.body);
}

/// A one-thread HTTP backend answering every request with `body`, until the test ends.
///
/// It reads the whole request head before answering and drains the connection before closing it:
/// closing a socket with unread data makes the kernel send a reset, which HAProxy passes on.
fn spawn_backend(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let response =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = stream.write_all(response.as_bytes());
            let _ = stream.shutdown(std::net::Shutdown::Write);
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    addr
}

#[test]
fn interop_haproxy_forwards_to_loopback_backend() {
    let Some(haproxy) = service_path(Service::Haproxy) else {
        return;
    };
    let backend = spawn_backend("hello from the blue backend");
    let dir = temp_dir();
    let port = free_port().unwrap();
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n  log stderr format raw local0\ndefaults\n  mode http\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\
             frontend web\n  bind 127.0.0.1:{port}\n  default_backend app\n\
             backend app\n  server blue {backend}\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(haproxy);
    command.arg("-db").arg("-f").arg(&config);
    let mut server = ServerProcess::spawn("haproxy", command, &dir.path().join("haproxy.log")).unwrap();
    // Ready means a request goes all the way through, not just that the port accepts.
    server
        .wait_ready(READY, || match http_request(loopback(port), "GET", "/", None) {
            Ok(response) if response.status == 200 => Ok(()),
            Ok(response) => Err(format!("status {}", response.status)),
            Err(err) => Err(err.to_string()),
        })
        .unwrap();
    let response = http_request(loopback(port), "GET", "/", None).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "hello from the blue backend");
}

#[test]
fn interop_rsyslog_receives_a_line() {
    let Some(rsyslogd) = service_path(Service::Rsyslogd) else {
        return;
    };
    let dir = temp_dir();
    let port = free_port().unwrap();
    let received = dir.path().join("received.log");
    let config = dir.path().join("rsyslog.conf");
    std::fs::write(
        &config,
        format!(
            "global(workDirectory=\"{dir}\")\n\
             module(load=\"imtcp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\")\n\
             *.* action(type=\"omfile\" file=\"{file}\" template=\"RSYSLOG_SyslogProtocol23Format\")\n",
            dir = dir.path().display(),
            file = received.display()
        ),
    )
    .unwrap();
    let mut command = Command::new(rsyslogd);
    command.arg("-n").arg("-f").arg(&config).arg("-i").arg(dir.path().join("rsyslogd.pid"));
    let mut server = ServerProcess::spawn("rsyslogd", command, &dir.path().join("rsyslogd.log")).unwrap();
    server.wait_ready(READY, || TcpStream::connect(loopback(port)).map(drop)).unwrap();

    // RFC 5424 over TCP with octet-counting framing (RFC 6587).
    let message = "<165>1 2026-11-30T12:00:00.000Z testhost infra-testkit 42 ID47 - harness line \u{2713}";
    let mut stream = TcpStream::connect(loopback(port)).unwrap();
    stream.write_all(format!("{} {message}", message.len()).as_bytes()).unwrap();
    stream.flush().unwrap();

    let line = wait_until(READY, || {
        let text = std::fs::read_to_string(&received).map_err(|e| e.to_string())?;
        text.lines().find(|l| l.contains("harness line")).map(str::to_owned).ok_or_else(|| "not yet".to_owned())
    })
    .unwrap_or_else(|err| panic!("rsyslog wrote nothing: {err}\n{}", server.log_tail()));
    assert!(line.starts_with("<165>1 2026-11-30T12:00:00"), "{line}");
    assert!(line.contains("testhost infra-testkit 42 ID47"), "{line}");
}

/// Tests that restart a server start their own; dropping it must leave no process behind.
#[test]
fn interop_own_instances_start_and_stop_cleanly() {
    let Some(redis_server) = service_path(Service::RedisServer) else {
        return;
    };
    let Some(postgres_bin) = service_path(Service::PostgresBin) else {
        return;
    };
    let dir = temp_dir();

    let (redis, redis_addr) = infra_testkit::start_redis(&redis_server, dir.path()).unwrap();
    let pg_dir = dir.path().join("pg");
    std::fs::create_dir_all(&pg_dir).unwrap();
    let (postgres, postgres_addr) = infra_testkit::start_postgres(&postgres_bin, &pg_dir).unwrap();
    let rows =
        postgres_query(postgres_addr, "postgres", "postgres", "SELECT count(*) > 0 FROM pg_stat_activity").unwrap();
    assert_eq!(rows, vec![vec![Some("t".to_owned())]]);

    let pids = [redis.pid(), postgres.pid()];
    drop(redis);
    drop(postgres);
    for pid in pids {
        assert!(!infra_testkit::pid_alive(pid), "process {pid} outlived its handle");
    }
    assert!(redis_command(redis_addr, &[b"PING"]).is_err(), "redis still answers after drop");
    assert!(postgres_query(postgres_addr, "postgres", "postgres", "SELECT 1").is_err());
}
