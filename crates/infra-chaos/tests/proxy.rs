//! The fault proxy: Toxiproxy's HTTP API (routes, status codes, shapes) and the accuracy of each toxic
//! against loopback servers.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{echo_server, sending_server};
use infra_chaos::{Direction, ProxyServer, Toxic, ToxicKind};
use infra_testkit::HttpResponse;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn api(server: &ProxyServer, method: &'static str, path: &str, body: Option<Value>) -> HttpResponse {
    let (addr, path) = (server.api_addr(), path.to_owned());
    tokio::task::spawn_blocking(move || {
        let body = body.map(|body| body.to_string());
        infra_testkit::http_request(addr, method, &path, body.as_deref().map(|b| ("application/json", b.as_bytes())))
    })
    .await
    .unwrap()
    .expect("the API answers")
}

fn parse(response: &HttpResponse) -> Value {
    serde_json::from_str(&response.body).unwrap_or(Value::Null)
}

async fn proxy_to(server: &ProxyServer, name: &str, upstream: SocketAddr) -> SocketAddr {
    let info = server.create(name, "127.0.0.1:0", &upstream.to_string(), true).unwrap();
    info.listen.parse().unwrap()
}

async fn round_trip(addr: SocketAddr) -> Duration {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reply = [0u8; 4];
    // Warm the connection, then time one exchange.
    stream.write_all(b"ping").await.unwrap();
    stream.read_exact(&mut reply).await.unwrap();
    let started = Instant::now();
    stream.write_all(b"ping").await.unwrap();
    stream.read_exact(&mut reply).await.unwrap();
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_toxiproxy_does() {
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = echo_server().await;

    let version = api(&server, "GET", "/version", None).await;
    assert_eq!(version.status, 200);
    assert!(parse(&version)["version"].as_str().unwrap().contains("toxiproxy"));

    let created = api(
        &server,
        "POST",
        "/proxies",
        Some(json!({"name": "echo", "listen": "127.0.0.1:0", "upstream": upstream.to_string()})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let proxy = parse(&created);
    assert_eq!(proxy["enabled"], json!(true));
    assert_ne!(proxy["listen"], json!("127.0.0.1:0"), "the bound address is reported");
    assert_eq!(proxy["toxics"], json!([]));
    let again = api(&server, "POST", "/proxies", Some(json!({"name": "echo", "upstream": upstream.to_string()}))).await;
    assert_eq!(again.status, 409);
    assert_eq!(api(&server, "POST", "/proxies", Some(json!({"name": "x"}))).await.status, 400, "no upstream");
    assert_eq!(api(&server, "POST", "/proxies", Some(json!("{not json"))).await.status, 400);
    let taken = api(
        &server,
        "POST",
        "/proxies",
        Some(json!({"name": "clash", "listen": proxy["listen"], "upstream": "127.0.0.1:1"})),
    )
    .await;
    assert_eq!(taken.status, 400, "a port in use is a bad request with a reason: {}", taken.body);
    assert!(parse(&taken)["error"].as_str().unwrap().contains("cannot listen"));

    assert_eq!(api(&server, "GET", "/proxies/nope", None).await.status, 404);
    let all = parse(&api(&server, "GET", "/proxies", None).await);
    assert_eq!(all["echo"]["upstream"], json!(upstream.to_string()));

    let toxic =
        api(&server, "POST", "/proxies/echo/toxics", Some(json!({"type": "latency", "attributes": {"latency": 10}})))
            .await;
    assert_eq!(toxic.status, 200, "{}", toxic.body);
    assert_eq!(parse(&toxic)["name"], json!("latency_downstream"));
    assert_eq!(api(&server, "POST", "/proxies/echo/toxics", Some(json!({"type": "latency"}))).await.status, 409);
    assert_eq!(api(&server, "POST", "/proxies/echo/toxics", Some(json!({"type": "teleport"}))).await.status, 400);
    assert_eq!(api(&server, "POST", "/proxies/nope/toxics", Some(json!({"type": "latency"}))).await.status, 404);
    let updated =
        api(&server, "POST", "/proxies/echo/toxics/latency_downstream", Some(json!({"attributes": {"latency": 20}})))
            .await;
    assert_eq!(parse(&updated)["attributes"]["latency"], json!(20));
    assert_eq!(parse(&api(&server, "GET", "/proxies/echo/toxics", None).await).as_array().unwrap().len(), 1);
    assert_eq!(api(&server, "GET", "/proxies/echo/toxics/latency_downstream", None).await.status, 200);
    assert_eq!(api(&server, "DELETE", "/proxies/echo/toxics/latency_downstream", None).await.status, 204);
    assert_eq!(api(&server, "DELETE", "/proxies/echo/toxics/latency_downstream", None).await.status, 404);

    let disabled = api(&server, "POST", "/proxies/echo", Some(json!({"enabled": false}))).await;
    assert_eq!(parse(&disabled)["enabled"], json!(false));
    api(&server, "POST", "/proxies/echo/toxics", Some(json!({"type": "timeout", "attributes": {"timeout": 0}}))).await;
    assert_eq!(api(&server, "POST", "/reset", None).await.status, 204);
    let reset = parse(&api(&server, "GET", "/proxies/echo", None).await);
    assert_eq!((reset["enabled"].clone(), reset["toxics"].clone()), (json!(true), json!([])));

    let populated = api(
        &server,
        "POST",
        "/populate",
        Some(json!([
            {"name": "echo", "listen": reset["listen"], "upstream": upstream.to_string()},
            {"name": "second", "listen": "127.0.0.1:0", "upstream": upstream.to_string()},
        ])),
    )
    .await;
    assert_eq!(populated.status, 201, "{}", populated.body);
    assert_eq!(parse(&populated)["proxies"].as_array().unwrap().len(), 2);
    assert_eq!(api(&server, "POST", "/populate", Some(json!([{"name": "bad"}]))).await.status, 400);
    assert_eq!(api(&server, "DELETE", "/proxies/second", None).await.status, 204);
    assert_eq!(api(&server, "DELETE", "/proxies/second", None).await.status, 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_jitter_land_within_two_milliseconds() {
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = echo_server().await;
    let proxied = proxy_to(&server, "echo", upstream).await;
    let direct = round_trip(upstream).await;
    let clean = round_trip(proxied).await;
    assert!(clean < Duration::from_millis(5), "an idle proxy adds little: {clean:?} (direct {direct:?})");

    server.add_toxic("echo", Toxic::new(ToxicKind::Latency { latency: 50, jitter: 0 }, Direction::Downstream)).unwrap();
    // The median of several exchanges, so that one scheduling hiccup on a busy machine does not decide.
    let mut exchanges = Vec::new();
    for _ in 0..7 {
        exchanges.push(round_trip(proxied).await);
    }
    exchanges.sort();
    let median = exchanges[3];
    assert!(median >= Duration::from_millis(50) && median <= Duration::from_millis(52) + direct, "{exchanges:?}");
    assert!(exchanges[0] >= Duration::from_millis(50), "never early: {exchanges:?}");
    server.update_toxic("echo", "latency_downstream", &json!({"attributes": {"latency": 30, "jitter": 10}})).unwrap();
    for _ in 0..5 {
        let slow = round_trip(proxied).await;
        assert!(slow >= Duration::from_millis(20) && slow <= Duration::from_millis(42) + direct, "{slow:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_holds_the_rate_within_five_percent() {
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = sending_server(2_000_000).await;
    let proxied = proxy_to(&server, "bulk", upstream).await;
    server.add_toxic("bulk", Toxic::new(ToxicKind::Bandwidth { rate: 4000 }, Direction::Downstream)).unwrap();
    let started = Instant::now();
    let mut stream = TcpStream::connect(proxied).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(received.len(), 2_000_000);
    // 2 MB at 4000 KB/s is 0.5 s.
    assert!((elapsed - 0.5).abs() <= 0.025, "took {elapsed:.3} s for 0.5 s of data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_data_closes_after_exactly_n_bytes() {
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = sending_server(100_000).await;
    let proxied = proxy_to(&server, "limited", upstream).await;
    server.add_toxic("limited", Toxic::new(ToxicKind::LimitData { bytes: 12_345 }, Direction::Downstream)).unwrap();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(proxied).await.unwrap();
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received).await;
        assert_eq!(received.len(), 12_345);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_peer_resets_and_timeout_zero_holds_until_removed() {
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = echo_server().await;
    let proxied = proxy_to(&server, "echo", upstream).await;

    server.add_toxic("echo", Toxic::new(ToxicKind::ResetPeer { timeout: 0 }, Direction::Downstream)).unwrap();
    let mut buf = [0u8; 5];
    // Reset at once: the client sees it at connect, write or read, depending on when the RST lands.
    let outcome = async {
        let mut stream = TcpStream::connect(proxied).await?;
        stream.write_all(b"hello").await?;
        stream.read(&mut buf).await
    }
    .await;
    assert_eq!(outcome.expect_err("reset").kind(), std::io::ErrorKind::ConnectionReset);
    server.remove_toxic("echo", "reset_peer_downstream").unwrap();

    // A black hole: data vanishes, the connection stays open, until the toxic goes.
    let mut stream = TcpStream::connect(proxied).await.unwrap();
    stream.write_all(b"warm").await.unwrap();
    stream.read_exact(&mut [0u8; 4]).await.unwrap();
    server.add_toxic("echo", Toxic::new(ToxicKind::Timeout { timeout: 0 }, Direction::Upstream)).unwrap();
    stream.write_all(b"lost").await.unwrap();
    let held = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
    assert!(held.is_err(), "nothing comes back while the toxic stands, and the connection is not closed");
    server.remove_toxic("echo", "timeout_upstream").unwrap();
    stream.write_all(b"back!").await.unwrap();
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"back!");

    // A timeout closes the connection after its time.
    server.add_toxic("echo", Toxic::new(ToxicKind::Timeout { timeout: 100 }, Direction::Downstream)).unwrap();
    let started = Instant::now();
    let mut stream = TcpStream::connect(proxied).await.unwrap();
    let _ = stream.write_all(b"x").await;
    let read = stream.read(&mut buf).await;
    assert!(matches!(read, Ok(0)), "closed: {read:?}");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(100) && elapsed < Duration::from_millis(300), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slicer_slow_close_http_status_and_fail_first() {
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = sending_server(10_000).await;
    let proxied = proxy_to(&server, "slices", upstream).await;
    let slicer = ToxicKind::Slicer { average_size: 100, size_variation: 50, delay: 200 };
    server.add_toxic("slices", Toxic::new(slicer, Direction::Downstream)).unwrap();
    let mut stream = TcpStream::connect(proxied).await.unwrap();
    let (mut reads, mut total) = (0, 0);
    let mut buf = [0u8; 65536];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        assert!(n <= 150 * 4, "slices are small: {n}");
        reads += 1;
        total += n;
    }
    assert_eq!(total, 10_000);
    assert!(reads >= 10_000 / 600, "{reads} reads");

    server.remove_toxic("slices", "slicer_downstream").unwrap();
    server.add_toxic("slices", Toxic::new(ToxicKind::SlowClose { delay: 150 }, Direction::Downstream)).unwrap();
    let started = Instant::now();
    let mut stream = TcpStream::connect(proxied).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150));

    let http = echo_server().await;
    let web = proxy_to(&server, "web", http).await;
    let status = ToxicKind::HttpStatus { status: 503, body: "maintenance".into() };
    server.add_toxic("web", Toxic::new(status, Direction::Downstream)).unwrap();
    let response = tokio::task::spawn_blocking(move || infra_testkit::http_request(web, "GET", "/quote", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((response.status, response.body.as_str()), (503, "maintenance"));
    server.remove_toxic("web", "http_status_downstream").unwrap();

    server.add_toxic("web", Toxic::new(ToxicKind::FailFirst { connections: 2 }, Direction::Downstream)).unwrap();
    for attempt in 0..3 {
        // A refused connection is reset as soon as it is accepted: the client sees it at connect or read.
        let outcome = async {
            let mut stream = TcpStream::connect(web).await?;
            stream.write_all(b"ping").await?;
            let mut reply = [0u8; 4];
            stream.read_exact(&mut reply).await.map(|_| reply)
        }
        .await;
        assert_eq!(outcome.is_ok(), attempt == 2, "attempt {attempt}: {outcome:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_proxy_partitions_and_toxicity_picks_connections() {
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = echo_server().await;
    let proxied = proxy_to(&server, "echo", upstream).await;
    let mut open = TcpStream::connect(proxied).await.unwrap();
    open.write_all(b"ping").await.unwrap();
    open.read_exact(&mut [0u8; 4]).await.unwrap();

    server.update("echo", None, None, Some(false)).await.unwrap();
    assert!(TcpStream::connect(proxied).await.is_err(), "a disabled proxy refuses connections");
    let mut buf = [0u8; 4];
    let cut = open.read(&mut buf).await;
    assert!(matches!(cut, Ok(0) | Err(_)), "and cuts open ones: {cut:?}");
    server.update("echo", None, None, Some(true)).await.unwrap();
    assert!(round_trip(proxied).await < Duration::from_millis(50));

    let mut half = Toxic::new(ToxicKind::Latency { latency: 40, jitter: 0 }, Direction::Downstream);
    half.toxicity = 0.5;
    server.add_toxic("echo", half).unwrap();
    let mut slow = 0;
    for _ in 0..100 {
        if round_trip(proxied).await >= Duration::from_millis(40) {
            slow += 1;
        }
    }
    assert!((30..=70).contains(&slow), "about half the connections: {slow}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_experiments_partition_and_heal_through_the_engine() {
    use infra_chaos::{ChaosEngine, Experiment, ExperimentState, Fault, NetworkFault, Target};
    let server = ProxyServer::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let upstream = echo_server().await;
    let proxied = proxy_to(&server, "orders-db", upstream).await;
    let engine = ChaosEngine::builder().build().unwrap();

    let cut = engine
        .create_experiment(Experiment::new(Target::Any, Fault::Network(NetworkFault::partition(&server, "orders-db"))))
        .unwrap();
    engine.start_experiment(cut).unwrap();
    assert_eq!(server.toxics("orders-db").unwrap().len(), 2);
    let hung = tokio::time::timeout(Duration::from_millis(200), round_trip(proxied)).await;
    assert!(hung.is_err(), "partitioned: nothing comes back");
    assert!(engine.stop_experiment(cut).unwrap());
    assert!(server.toxics("orders-db").unwrap().is_empty(), "stopping heals the link");
    assert!(round_trip(proxied).await < Duration::from_millis(50));

    let slow = Toxic::new(ToxicKind::Latency { latency: 30, jitter: 0 }, Direction::Downstream);
    let degraded = engine
        .create_experiment(Experiment::new(
            Target::Any,
            Fault::Network(NetworkFault::degrade(&server, "orders-db", vec![slow])),
        ))
        .unwrap();
    engine.start_experiment(degraded).unwrap();
    assert!(round_trip(proxied).await >= Duration::from_millis(30));
    engine.kill_switch();
    assert_eq!(engine.results(degraded).unwrap().state, ExperimentState::Aborted);
    assert!(server.toxics("orders-db").unwrap().is_empty(), "the kill switch heals too");

    // A network fault on a proxy that does not exist fails to start and leaves nothing behind.
    engine.rearm();
    let nowhere = engine
        .create_experiment(Experiment::new(Target::Any, Fault::Network(NetworkFault::partition(&server, "nope"))))
        .unwrap();
    assert!(engine.start_experiment(nowhere).is_err());
    assert_eq!(engine.results(nowhere).unwrap().state, ExperimentState::Created);
}
