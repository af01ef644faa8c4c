//! The deployer: weighted, sticky, consistent routing; health checks against loopback servers; traffic
//! shifts refused toward unhealthy targets; rollback; bad input.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use infra_deploy::{Color, DeployError, Deployer, Health, HealthPolicy, HealthTarget};
use proptest::prelude::*;

fn blue_green() -> Deployer {
    let deployer = Deployer::builder("orders").build().unwrap();
    deployer.register_color(Color::Blue, "v1", HealthTarget::None).unwrap();
    deployer.register_color(Color::Green, "v2", HealthTarget::None).unwrap();
    deployer
}

fn share(deployer: &Deployer, name: &str) -> f64 {
    let keys = 100_000;
    let hits = (0..keys).filter(|n| deployer.route(format!("user-{n}").as_bytes()).unwrap().name == name).count();
    hits as f64 * 100.0 / f64::from(keys)
}

#[test]
fn traffic_splits_by_weight_within_a_point() {
    let deployer = blue_green();
    assert_eq!(share(&deployer, "blue"), 100.0, "the first registered takes all traffic");
    for percent in [5.0, 25.0, 50.0, 100.0] {
        deployer.shift_traffic("green", percent).unwrap();
        let observed = share(&deployer, "green");
        assert!((observed - percent).abs() <= 1.0, "{percent}% asked, {observed:.2}% routed");
    }
    deployer.shift_traffic("green", 30.0).unwrap();
    let random = (0..100_000).filter(|_| deployer.route_random().unwrap().name == "green").count();
    assert!((random as f64 / 1000.0 - 30.0).abs() <= 1.0, "{random}");
    let status = deployer.status();
    assert_eq!(status.active.as_deref(), Some("blue"));
    assert_eq!(status.deployments.iter().map(|d| d.percent).collect::<Vec<_>>(), [70.0, 30.0]);
}

proptest! {
    #[test]
    fn widening_a_canary_never_moves_its_users_back(steps in proptest::collection::vec(0.0f64..=100.0, 1..6), keys in proptest::collection::vec(any::<u64>(), 200)) {
        let deployer = blue_green();
        deployer.register("canary", "v3", HealthTarget::None).unwrap();
        let mut sorted = steps.clone();
        sorted.sort_by(f64::total_cmp);
        let mut on_canary = std::collections::HashSet::new();
        for percent in sorted {
            deployer.shift_traffic("canary", percent).unwrap();
            for key in &keys {
                let routed = deployer.route(&key.to_le_bytes()).unwrap();
                if on_canary.contains(key) {
                    prop_assert_eq!(&routed.name, "canary", "a canary user moved back at {}%", percent);
                }
                if routed.name == "canary" {
                    on_canary.insert(*key);
                }
            }
        }
    }
}

/// A loopback HTTP server answering its health path with the status held in `status`.
fn health_server(status: Arc<AtomicU16>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let code = status.load(Ordering::Relaxed);
            let _ = write!(stream, "HTTP/1.0 {code} X\r\nContent-Length: 0\r\n\r\n");
        }
    });
    addr
}

#[test]
fn failing_checks_take_traffic_away_and_block_shifts() {
    let green_status = Arc::new(AtomicU16::new(200));
    let green = health_server(Arc::clone(&green_status));
    let blue = health_server(Arc::new(AtomicU16::new(200)));
    let (clock, _) = quanta::Clock::mock();
    let policy = HealthPolicy { unhealthy_after: 2, healthy_after: 2, ..HealthPolicy::default() };
    let deployer = Deployer::builder("orders").clock(clock).health_policy(policy).build().unwrap();
    deployer.register_color(Color::Blue, "v1", HealthTarget::http(blue, "/healthz")).unwrap();
    deployer.register_color(Color::Green, "v2", HealthTarget::http(green, "/healthz")).unwrap();
    deployer.check_health();
    deployer.shift_traffic("green", 40.0).unwrap();

    green_status.store(503, Ordering::Relaxed);
    deployer.check_health();
    assert_eq!(deployer.status().deployments[1].health, Health::Healthy, "one failure is not enough");
    deployer.check_health();
    let status = deployer.status();
    assert_eq!(status.deployments[1].health, Health::Unhealthy);
    assert_eq!(status.deployments[1].percent, 0.0, "an unhealthy deployment loses its traffic at once");
    assert_eq!(status.deployments[0].percent, 100.0);
    assert!(status.events.iter().any(|e| e.what.contains("moved all traffic off green")));
    let last = status.deployments[1].history.last().unwrap();
    assert!(!last.passed && last.error.as_deref().unwrap().contains("status 503"));
    assert_eq!(deployer.shift_traffic("green", 10.0), Err(DeployError::Unhealthy("green".into())));
    assert_eq!(
        deployer.rollback(),
        Err(DeployError::Unhealthy("green".into())),
        "no rollback onto an unhealthy target"
    );

    green_status.store(200, Ordering::Relaxed);
    deployer.check_health();
    deployer.check_health();
    assert_eq!(deployer.status().deployments[1].health, Health::Healthy, "two passes bring it back");
    deployer.shift_traffic("green", 10.0).unwrap();
}

#[test]
fn tcp_checks_and_a_background_checker() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap();
    let closed = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let deployer = Deployer::builder("orders")
        .health_policy(HealthPolicy { unhealthy_after: 1, ..HealthPolicy::default() })
        .build()
        .unwrap();
    deployer.register("stable", "v1", HealthTarget::Tcp(open)).unwrap();
    deployer.register("canary", "v2", HealthTarget::Tcp(closed)).unwrap();
    let checks = deployer.start_health_checks(std::time::Duration::from_millis(5)).unwrap();
    let waited = infra_testkit::wait_until(std::time::Duration::from_secs(5), || {
        let status = deployer.status();
        if status.deployments[1].health == Health::Unhealthy && status.deployments[0].health == Health::Healthy {
            Ok(())
        } else {
            Err(format!("{:?}", status.deployments.iter().map(|d| d.health).collect::<Vec<_>>()))
        }
    });
    waited.unwrap();
    checks.stop();
    assert_eq!(deployer.shift_traffic("canary", 1.0), Err(DeployError::Unhealthy("canary".into())));
    drop(listener);
}

#[test]
fn bad_requests_change_nothing() {
    let deployer = blue_green();
    for bad in [-1.0, 100.5, f64::NAN] {
        assert!(matches!(deployer.shift_traffic("green", bad), Err(DeployError::Percentage(_))), "{bad}");
    }
    assert_eq!(deployer.shift_traffic("purple", 10.0), Err(DeployError::Unknown("purple".into())));
    assert_eq!(deployer.register("blue", "v9", HealthTarget::None), Err(DeployError::Duplicate("blue".into())));
    assert!(matches!(deployer.register(" ", "v9", HealthTarget::None), Err(DeployError::Config(_))));
    assert_eq!(deployer.rollback(), Err(DeployError::NothingToRollBack));
    assert_eq!(share(&deployer, "blue"), 100.0, "still all blue");
    assert!(
        Deployer::builder("x")
            .health_policy(HealthPolicy { healthy_after: 0, ..HealthPolicy::default() })
            .build()
            .is_err()
    );
    let lonely = Deployer::builder("x").build().unwrap();
    assert!(lonely.route(b"k").is_none(), "nothing registered: nowhere to route");
    lonely.register("only", "v1", HealthTarget::None).unwrap();
    assert_eq!(lonely.shift_traffic("only", 50.0), Err(DeployError::NoFallback("only".into())));
}

#[test]
fn rollback_restores_the_previous_weights() {
    let deployer = blue_green();
    deployer.shift_traffic("green", 20.0).unwrap();
    deployer.set_active("green").unwrap();
    deployer.rollback().unwrap();
    assert_eq!(deployer.status().deployments[1].percent, 20.0);
    deployer.rollback().unwrap();
    assert_eq!(deployer.status().deployments[0].percent, 100.0);
}

#[test]
fn every_reader_sees_a_change_from_its_next_decision() {
    let deployer = blue_green();
    let (ask, asked) = std::sync::mpsc::channel::<()>();
    let (tell, told) = std::sync::mpsc::channel::<String>();
    let reader = {
        let deployer = deployer.clone();
        std::thread::spawn(move || {
            // The same thread routes again and again: its cached table must not go stale.
            while asked.recv().is_ok() {
                let name = deployer.route_with(b"user-7", |d| d.name.clone()).unwrap();
                tell.send(name).unwrap();
            }
        })
    };
    for (target, expected) in [("blue", "blue"), ("green", "green"), ("blue", "blue")] {
        deployer.set_active(target).unwrap();
        ask.send(()).unwrap();
        assert_eq!(told.recv().unwrap(), expected);
    }
    drop(ask);
    reader.join().unwrap();
}
