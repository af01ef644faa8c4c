//! Canary rollouts on an injected clock: every transition, and the regressions Argo Rollouts and Flagger
//! users hit (abort during a pause, a maximum weight that is not a multiple of the step, a new revision
//! mid-analysis, a rollback onto an unhealthy target).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use infra_deploy::{Analysis, CanaryPlan, DeployError, Deployer, HealthPolicy, HealthTarget, Phase, Rollout, Step};

const M: Duration = Duration::from_secs(60);

fn setup() -> (Deployer, Arc<quanta::Mock>) {
    let (clock, time) = quanta::Clock::mock();
    let deployer = Deployer::builder("orders").clock(clock).build().unwrap();
    deployer.register("stable", "v1", HealthTarget::None).unwrap();
    deployer.register("canary", "v2", HealthTarget::None).unwrap();
    (deployer, time)
}

fn canary_percent(deployer: &Deployer) -> f64 {
    deployer.status().deployments[1].percent
}

/// An error-rate metric the test sets (in thousandths); `u64::MAX` means no data.
fn error_rate(rate: &Arc<AtomicU64>) -> Analysis {
    let rate = Arc::clone(rate);
    Analysis::new(
        "error-rate",
        move || match rate.load(Ordering::Relaxed) {
            u64::MAX => None,
            thousandths => Some(thousandths as f64 / 1000.0),
        },
        |value| value <= 0.01,
        |value| value > 0.05,
    )
    .runs(3, M)
}

fn at(rollout: &Rollout, time: &quanta::Mock, by: Duration) {
    time.increment(by);
    rollout.tick();
}

#[test]
fn a_canary_moves_through_its_steps_and_is_promoted() {
    let (deployer, time) = setup();
    let rate = Arc::new(AtomicU64::new(0));
    let plan = CanaryPlan::new(
        "canary",
        "stable",
        vec![Step::SetWeight(10.0), Step::Pause(Some(M * 5)), Step::SetWeight(50.0), Step::Analyze(error_rate(&rate))],
    );
    let rollout = Rollout::start(&deployer, plan).unwrap();
    assert_eq!(canary_percent(&deployer), 10.0, "the first step applies at once");
    assert!(matches!(rollout.phase(), Phase::Paused { step: 1, .. }));
    at(&rollout, &time, M * 4);
    assert_eq!(canary_percent(&deployer), 10.0);
    at(&rollout, &time, M);
    assert_eq!(canary_percent(&deployer), 50.0, "the pause ended at 5 min");
    assert!(matches!(rollout.phase(), Phase::Progressing { step: 3 }), "{:?}", rollout.phase());
    at(&rollout, &time, M * 2);
    assert!(matches!(rollout.phase(), Phase::Progressing { step: 3 }), "two of three measurements, at 6 and 7 min");
    at(&rollout, &time, M);
    assert_eq!(rollout.phase(), Phase::Promoted, "the third at 8 min");
    assert_eq!(canary_percent(&deployer), 100.0);
    let events: Vec<String> = rollout.events().into_iter().map(|e| e.what).collect();
    assert!(events.contains(&"error-rate: passed".to_owned()), "{events:?}");
    // The slot is free: the next rollout may start.
    let again = CanaryPlan::new("stable", "canary", vec![Step::SetWeight(100.0)]);
    assert_eq!(Rollout::start(&deployer, again).unwrap().phase(), Phase::Promoted);
}

#[test]
fn failing_analysis_aborts_and_inconclusive_analysis_pauses() {
    let (deployer, time) = setup();
    let rate = Arc::new(AtomicU64::new(80)); // 8% errors: a failure
    let plan = CanaryPlan::new(
        "canary",
        "stable",
        vec![Step::SetWeight(20.0), Step::Analyze(error_rate(&rate).failure_limit(1))],
    );
    let rollout = Rollout::start(&deployer, plan).unwrap();
    at(&rollout, &time, M);
    assert!(matches!(rollout.phase(), Phase::Progressing { step: 1 }), "one failure is within the limit");
    at(&rollout, &time, M);
    match rollout.phase() {
        Phase::Aborted { reason } => assert!(reason.contains("failed 2 times"), "{reason}"),
        other => panic!("expected an abort, got {other:?}"),
    }
    assert_eq!(canary_percent(&deployer), 0.0, "the stable deployment has all traffic back");

    rate.store(u64::MAX, Ordering::Relaxed); // no data
    let plan = CanaryPlan::new("canary", "stable", vec![Step::SetWeight(20.0), Step::Analyze(error_rate(&rate))]);
    let rollout = Rollout::start(&deployer, plan).unwrap();
    at(&rollout, &time, M);
    assert!(matches!(rollout.phase(), Phase::Paused { step: 1, ref reason } if reason.contains("inconclusive")));
    at(&rollout, &time, M * 10);
    assert!(matches!(rollout.phase(), Phase::Paused { .. }), "held until a person decides");
    rollout.promote();
    assert_eq!(rollout.phase(), Phase::Promoted);
}

#[test]
fn aborting_during_an_open_ended_pause_does_not_hang_and_frees_the_slot() {
    let (deployer, time) = setup();
    let plan =
        CanaryPlan::new("canary", "stable", vec![Step::SetWeight(30.0), Step::Pause(None), Step::SetWeight(60.0)]);
    let rollout = Rollout::start(&deployer, plan.clone()).unwrap();
    assert_eq!(Rollout::start(&deployer, plan.clone()).unwrap_err(), DeployError::RolloutRunning);
    at(&rollout, &time, M * 60);
    assert!(matches!(rollout.phase(), Phase::Paused { step: 1, .. }), "waits for promotion");
    rollout.abort("operator changed their mind");
    assert_eq!(rollout.phase(), Phase::Aborted { reason: "operator changed their mind".into() });
    assert_eq!(canary_percent(&deployer), 0.0);
    rollout.promote(); // after an abort: nothing happens
    assert!(matches!(rollout.phase(), Phase::Aborted { .. }));
    let next = Rollout::start(&deployer, plan).unwrap();
    next.promote();
    assert_eq!(next.phase(), Phase::Promoted, "past the pause, 60%, then the end of the plan");
    assert_eq!(canary_percent(&deployer), 100.0);
}

#[test]
fn a_maximum_that_is_not_a_multiple_of_the_step_still_promotes() {
    let (deployer, time) = setup();
    let rate = Arc::new(AtomicU64::new(0));
    let analysis = error_rate(&rate).runs(1, M);
    let plan = CanaryPlan::stepped("canary", "stable", 20.0, 50.0, analysis).unwrap();
    let rollout = Rollout::start(&deployer, plan).unwrap();
    let mut seen = vec![canary_percent(&deployer)];
    for _ in 0..5 {
        at(&rollout, &time, M);
        seen.push(canary_percent(&deployer));
    }
    seen.dedup();
    assert_eq!(seen, [20.0, 40.0, 50.0, 100.0]);
    assert_eq!(rollout.phase(), Phase::Promoted);
    assert!(CanaryPlan::stepped("canary", "stable", 0.0, 50.0, error_rate(&rate)).is_err());
}

#[test]
fn a_new_revision_mid_analysis_starts_over() {
    let (deployer, time) = setup();
    let rate = Arc::new(AtomicU64::new(0));
    let plan = CanaryPlan::new("canary", "stable", vec![Step::SetWeight(25.0), Step::Analyze(error_rate(&rate))]);
    let rollout = Rollout::start(&deployer, plan).unwrap();
    at(&rollout, &time, M * 2); // two of three measurements taken
    rollout.new_revision("v3");
    assert_eq!(canary_percent(&deployer), 25.0, "the plan started over at its first step");
    at(&rollout, &time, M * 2);
    assert!(matches!(rollout.phase(), Phase::Progressing { step: 1 }), "the analysis restarted: two of three again");
    at(&rollout, &time, M);
    assert_eq!(rollout.phase(), Phase::Promoted);
    assert!(rollout.events().iter().any(|e| e.what == "new revision v3: starting over"));
}

#[test]
fn an_abort_never_raises_an_unhealthy_stable() {
    let (clock, _) = quanta::Clock::mock();
    let deployer = Deployer::builder("orders")
        .clock(clock)
        .health_policy(HealthPolicy { unhealthy_after: 1, ..HealthPolicy::default() })
        .build()
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    // The stable side's check probes a closed port: it will fail.
    deployer.register("stable", "v1", HealthTarget::Tcp(closed)).unwrap();
    deployer.register("canary", "v2", HealthTarget::None).unwrap();
    let rollout =
        Rollout::start(&deployer, CanaryPlan::new("canary", "stable", vec![Step::SetWeight(40.0), Step::Pause(None)]))
            .unwrap();
    assert_eq!(canary_percent(&deployer), 40.0);
    deployer.check_health();
    assert_eq!(canary_percent(&deployer), 100.0, "the failing stable side lost its traffic");
    rollout.abort("manual");
    assert_eq!(deployer.status().deployments[0].percent, 0.0, "the abort does not hand traffic to an unhealthy stable");
    let events: Vec<String> = rollout.events().into_iter().map(|e| e.what).collect();
    assert!(events.iter().any(|e| e.contains("could not restore stable")), "{events:?}");
    let bad = CanaryPlan::new("canary", "canary", vec![Step::SetWeight(1.0)]);
    assert!(matches!(Rollout::start(&deployer, bad), Err(DeployError::Config(_))));
    let missing = CanaryPlan::new("nope", "stable", vec![Step::SetWeight(1.0)]);
    assert_eq!(Rollout::start(&deployer, missing).unwrap_err(), DeployError::Unknown("nope".into()));
    assert!(matches!(
        Rollout::start(&deployer, CanaryPlan::new("canary", "stable", vec![])),
        Err(DeployError::Config(_))
    ));
}
