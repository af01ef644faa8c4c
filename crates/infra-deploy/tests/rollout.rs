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

fn released_names(rollout: &Rollout) -> Arc<std::sync::Mutex<Vec<String>>> {
    let released: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&released);
    rollout.on_release(move |name| sink.lock().unwrap().push(name.to_owned()));
    released
}

#[test]
fn blue_green_analyses_before_and_after_the_cut_over_then_releases_the_old_side() {
    use infra_deploy::BlueGreenPlan;
    let (deployer, time) = setup();
    let rate = Arc::new(AtomicU64::new(0));
    let plan = BlueGreenPlan::new("canary", "stable")
        .pre_promotion(error_rate(&rate))
        .auto_promote_after(M * 2)
        .post_promotion(error_rate(&rate))
        .release_after(M * 5);
    let rollout = Rollout::start_blue_green(&deployer, plan).unwrap();
    let released = released_names(&rollout);
    assert_eq!(canary_percent(&deployer), 0.0, "no traffic while the pre-promotion analysis runs");
    at(&rollout, &time, M * 3);
    assert!(matches!(rollout.phase(), Phase::Paused { step: 1, .. }), "analysis passed, promotion in 2 min");
    assert_eq!(canary_percent(&deployer), 0.0);
    at(&rollout, &time, M * 2);
    assert_eq!(canary_percent(&deployer), 100.0, "the cut-over moves everything at once");
    assert!(matches!(rollout.phase(), Phase::Progressing { step: 3 }), "post-promotion analysis");
    at(&rollout, &time, M * 3);
    let Phase::Paused { reason, .. } = rollout.phase() else { panic!("{:?}", rollout.phase()) };
    assert!(reason.contains("keeping stable"), "{reason}");
    assert!(released.lock().unwrap().is_empty(), "the old side is kept during the delay");
    at(&rollout, &time, M * 5);
    assert_eq!(rollout.phase(), Phase::Promoted);
    assert_eq!(*released.lock().unwrap(), ["stable"]);
}

#[test]
fn blue_green_rolls_back_when_the_post_promotion_analysis_fails() {
    use infra_deploy::BlueGreenPlan;
    let (deployer, time) = setup();
    let rate = Arc::new(AtomicU64::new(0));
    let plan = BlueGreenPlan::new("canary", "stable").post_promotion(error_rate(&rate)).release_after(M * 10);
    let rollout = Rollout::start_blue_green(&deployer, plan).unwrap();
    let released = released_names(&rollout);
    assert!(matches!(rollout.phase(), Phase::Paused { .. }), "promotion by hand by default");
    at(&rollout, &time, M * 30);
    assert_eq!(canary_percent(&deployer), 0.0, "nothing moves without the promotion");
    rollout.promote();
    assert_eq!(canary_percent(&deployer), 100.0);
    rate.store(90, Ordering::Relaxed); // 9% errors after the cut-over
    at(&rollout, &time, M);
    assert!(matches!(rollout.phase(), Phase::Aborted { .. }), "{:?}", rollout.phase());
    assert_eq!(canary_percent(&deployer), 0.0, "the old side, still kept, has everything back");
    assert!(released.lock().unwrap().is_empty(), "nothing released on a rollback");
}

#[test]
fn blue_green_aborts_before_any_traffic_when_the_pre_promotion_analysis_fails() {
    use infra_deploy::BlueGreenPlan;
    let (deployer, time) = setup();
    let rate = Arc::new(AtomicU64::new(200));
    let plan = BlueGreenPlan::new("canary", "stable").pre_promotion(error_rate(&rate)).auto_promote_after(M);
    let rollout = Rollout::start_blue_green(&deployer, plan).unwrap();
    at(&rollout, &time, M);
    assert!(matches!(rollout.phase(), Phase::Aborted { .. }));
    assert!(deployer.status().events.iter().all(|e| !e.what.contains("shifted 100% of traffic to canary")));
}

#[test]
fn aborting_during_the_release_delay_does_not_hang_and_gives_the_old_side_everything() {
    use infra_deploy::BlueGreenPlan;
    let (deployer, time) = setup();
    let plan = BlueGreenPlan::new("canary", "stable").auto_promote_after(M).release_after(M * 10);
    let rollout = Rollout::start_blue_green(&deployer, plan).unwrap();
    let released = released_names(&rollout);
    at(&rollout, &time, M);
    assert_eq!(canary_percent(&deployer), 100.0);
    at(&rollout, &time, M * 3);
    assert!(matches!(rollout.phase(), Phase::Paused { .. }), "in the release delay");
    rollout.abort("latency regression reported by the desk");
    assert!(matches!(rollout.phase(), Phase::Aborted { .. }));
    assert_eq!(canary_percent(&deployer), 0.0);
    assert!(released.lock().unwrap().is_empty());
    let next = CanaryPlan::new("canary", "stable", vec![Step::SetWeight(5.0)]);
    assert!(Rollout::start(&deployer, next).is_ok(), "the slot is free");
}

fn persisted_plan() -> CanaryPlan {
    CanaryPlan::new(
        "canary",
        "stable",
        vec![Step::SetWeight(10.0), Step::Pause(Some(M * 5)), Step::SetWeight(50.0), Step::Pause(None)],
    )
}

#[test]
fn a_restarted_controller_resumes_a_persisted_rollout_where_it_was() {
    use infra_deploy::RolloutStore;
    let dir = infra_testkit::temp_dir();
    let path = dir.path().join("orders.rollout.json");
    {
        let (deployer, time) = setup();
        let rollout = Rollout::start_persisted(&deployer, persisted_plan(), RolloutStore::new(&path)).unwrap();
        at(&rollout, &time, M * 3);
        assert!(matches!(rollout.phase(), Phase::Paused { step: 1, .. }));
        // The controller dies here: its deployer, clock and rollout are gone.
    }
    let (deployer, time) = setup();
    assert_eq!(canary_percent(&deployer), 0.0, "a fresh deployer starts all on stable");
    let rollout = Rollout::resume(&deployer, persisted_plan(), RolloutStore::new(&path)).unwrap().expect("in flight");
    assert_eq!(canary_percent(&deployer), 10.0, "the canary's weight is applied again");
    assert!(matches!(rollout.phase(), Phase::Paused { step: 1, .. }));
    at(&rollout, &time, M * 2);
    assert_eq!(canary_percent(&deployer), 50.0, "three of the five minutes were spent before the restart");
    assert!(rollout.events().iter().any(|e| e.what.starts_with("resumed at")));
    assert!(matches!(Rollout::start(&deployer, persisted_plan()), Err(DeployError::RolloutRunning)));
    rollout.promote();
    assert_eq!(rollout.phase(), Phase::Promoted);
    assert!(Rollout::resume(&deployer, persisted_plan(), RolloutStore::new(&path)).unwrap().is_none(), "finished");
}

#[test]
fn a_controller_resuming_with_another_plan_aborts_safely() {
    use infra_deploy::RolloutStore;
    let dir = infra_testkit::temp_dir();
    let path = dir.path().join("orders.rollout.json");
    {
        let (deployer, time) = setup();
        let rollout = Rollout::start_persisted(&deployer, persisted_plan(), RolloutStore::new(&path)).unwrap();
        at(&rollout, &time, M);
    }
    let (deployer, _time) = setup();
    deployer.shift_traffic("canary", 10.0).unwrap(); // what the load balancer still holds
    let changed = CanaryPlan::new("canary", "stable", vec![Step::SetWeight(20.0), Step::Pause(None)]);
    let rollout = Rollout::resume(&deployer, changed, RolloutStore::new(&path)).unwrap().expect("in flight");
    assert!(matches!(rollout.phase(), Phase::Aborted { .. }), "{:?}", rollout.phase());
    assert_eq!(canary_percent(&deployer), 0.0, "stable has everything");
    assert!(
        Rollout::resume(&deployer, persisted_plan(), RolloutStore::new(dir.path().join("none.json")))
            .unwrap()
            .is_none()
    );
    std::fs::write(&path, "{not json").unwrap();
    assert!(matches!(
        Rollout::resume(&deployer, persisted_plan(), RolloutStore::new(&path)),
        Err(DeployError::Persist(_))
    ));
}
