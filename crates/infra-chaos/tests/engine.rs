//! The engine: experiment lifecycles on an injected clock, blast radius, safety, scoping, faults.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use infra_chaos::{
    ChaosEngine, ChaosError, EngineError, Experiment, ExperimentKind, ExperimentState, Fault, LatencyProfile, Resource,
    Target,
};

fn mock_engine() -> (ChaosEngine, Arc<quanta::Mock>) {
    let (clock, time) = quanta::Clock::mock();
    // The supervisor thread is kept out of the way; tests call tick() by hand.
    let engine =
        ChaosEngine::builder().clock(clock).seed(1).supervise_interval(Duration::from_secs(3600)).build().unwrap();
    (engine, time)
}

fn order() -> Result<(), ChaosError> {
    infra_chaos::point!("orders.place")
}

#[test]
fn experiments_run_their_course_on_the_injected_clock() -> Result<(), Box<dyn std::error::Error>> {
    let (engine, time) = mock_engine();
    let id = engine.create_experiment(
        Experiment::new(Target::point("orders.place"), Fault::Error).name("outage").duration(Duration::from_secs(10)),
    )?;
    assert_eq!(engine.results(id).unwrap().state, ExperimentState::Created);
    engine.scope(|| assert!(order().is_ok(), "created, not started: nothing happens"));
    engine.start_experiment(id)?;
    assert_eq!(engine.active_experiments().len(), 1);
    engine.scope(|| assert!(order().is_err()));

    time.increment(Duration::from_secs(9));
    engine.tick();
    engine.scope(|| assert!(order().is_err(), "9 s in: still running"));
    time.increment(Duration::from_secs(1));
    engine.scope(|| assert!(order().is_ok(), "10 s in: past its duration even before the supervisor runs"));
    engine.tick();
    let results = engine.results(id).unwrap();
    assert_eq!(results.state, ExperimentState::Completed);
    assert_eq!((results.calls, results.injections, results.errors), (2, 2, 2));
    assert_eq!(results.name.as_deref(), Some("outage"));
    assert!(results.started.is_some() && results.ended.is_some());
    assert!(engine.active_experiments().is_empty());
    assert!(matches!(
        engine.start_experiment(id),
        Err(EngineError::NotStartable { state: ExperimentState::Completed, .. })
    ));
    Ok(())
}

#[test]
fn probability_and_injection_caps_limit_the_blast_radius() -> Result<(), Box<dyn std::error::Error>> {
    let (engine, _) = mock_engine();
    let id = engine.create_experiment(Experiment::new(Target::point("orders.place"), Fault::Error).probability(0.3))?;
    engine.start_experiment(id)?;
    let failures = engine.scope(|| (0..100_000).filter(|_| order().is_err()).count());
    assert!((29_000..=31_000).contains(&failures), "30% of calls: {failures}");
    engine.stop_experiment(id)?;

    let capped =
        engine.create_experiment(Experiment::new(Target::point("orders.place"), Fault::Error).max_injections(5))?;
    engine.start_experiment(capped)?;
    let failures = engine.scope(|| (0..100).filter(|_| order().is_err()).count());
    assert_eq!(failures, 5);
    engine.tick();
    assert_eq!(engine.results(capped).unwrap().state, ExperimentState::Completed, "used up: completed");
    Ok(())
}

#[test]
fn a_violated_steady_state_aborts_the_experiment() -> Result<(), Box<dyn std::error::Error>> {
    let (engine, time) = mock_engine();
    let healthy = Arc::new(AtomicBool::new(true));
    let id = engine.create_experiment(
        Experiment::new(Target::point("orders.place"), Fault::Latency(LatencyProfile::Fixed(Duration::ZERO)))
            .steady_state(Duration::from_secs(5), {
                let healthy = Arc::clone(&healthy);
                move || healthy.load(Ordering::Relaxed)
            }),
    )?;
    engine.start_experiment(id)?;
    time.increment(Duration::from_secs(5));
    engine.tick();
    assert_eq!(engine.results(id).unwrap().state, ExperimentState::Running);
    healthy.store(false, Ordering::Relaxed);
    time.increment(Duration::from_secs(4));
    engine.tick();
    assert_eq!(engine.results(id).unwrap().state, ExperimentState::Running, "not due until 10 s");
    time.increment(Duration::from_secs(1));
    engine.tick();
    let results = engine.results(id).unwrap();
    assert_eq!(results.state, ExperimentState::Aborted);
    assert_eq!(results.abort_reason.as_deref(), Some("steady-state hypothesis violated"));
    Ok(())
}

#[test]
fn the_kill_switch_stops_everything_and_refuses_new_starts() -> Result<(), Box<dyn std::error::Error>> {
    let (engine, _) = mock_engine();
    let a = engine.create_experiment(Experiment::new(Target::Any, Fault::Error))?;
    let b = engine.create_experiment(Experiment::new(Target::prefix("orders."), Fault::Error))?;
    engine.start_experiment(a)?;
    engine.start_experiment(b)?;
    engine.configure("orders.cancel", "return")?;
    engine.kill_switch();
    engine.scope(|| assert!(order().is_ok()));
    assert!(engine.failpoints().is_empty());
    for id in [a, b] {
        let results = engine.results(id).unwrap();
        assert_eq!((results.state, results.abort_reason.as_deref()), (ExperimentState::Aborted, Some("kill switch")));
    }
    let c = engine.create_experiment(Experiment::new(Target::Any, Fault::Error))?;
    assert_eq!(engine.start_experiment(c), Err(EngineError::KillSwitch));
    assert_eq!(engine.configure("x", "return"), Err(EngineError::KillSwitch));
    engine.rearm();
    engine.start_experiment(c)?;
    Ok(())
}

#[test]
fn the_concurrency_cap_holds() -> Result<(), Box<dyn std::error::Error>> {
    let engine = ChaosEngine::builder().max_concurrent(2).build()?;
    let ids: Vec<_> = (0..3)
        .map(|n| engine.create_experiment(Experiment::new(Target::point(format!("p{n}")), Fault::Error)))
        .collect::<Result<_, _>>()?;
    engine.start_experiment(ids[0])?;
    engine.start_experiment(ids[1])?;
    assert_eq!(engine.start_experiment(ids[2]), Err(EngineError::TooManyRunning { running: 2, limit: 2 }));
    engine.stop_experiment(ids[0])?;
    engine.start_experiment(ids[2])?;
    Ok(())
}

#[test]
fn bad_input_gets_typed_errors() {
    let (engine, _) = mock_engine();
    let create = |experiment| engine.create_experiment(experiment).unwrap_err();
    let error = || Experiment::new(Target::point("p"), Fault::Error);
    assert_eq!(create(error().probability(1.5)), EngineError::Probability("1.5".into()));
    assert_eq!(create(error().probability(f64::NAN)), EngineError::Probability("NaN".into()));
    assert_eq!(create(error().duration(Duration::ZERO)), EngineError::Zero("duration"));
    assert_eq!(create(error().max_injections(0)), EngineError::Zero("max_injections"));
    assert_eq!(create(Experiment::new(Target::point(""), Fault::Error)), EngineError::EmptyTarget);
    assert_eq!(create(Experiment::new(Target::point("p"), Fault::Panic("boom".into()))), EngineError::PanicsNotAllowed);
    let backwards = LatencyProfile::Uniform { min: Duration::from_millis(2), max: Duration::from_millis(1) };
    assert!(matches!(create(Experiment::new(Target::point("p"), Fault::Latency(backwards))), EngineError::Latency(_)));
    let no_threads = Resource::Cpu { threads: 0, duty_percent: 50 };
    assert!(matches!(create(Experiment::new(Target::Any, Fault::Exhaust(no_threads))), EngineError::Resource(_)));
    let hot = Resource::Cpu { threads: 1, duty_percent: 101 };
    assert!(matches!(create(Experiment::new(Target::Any, Fault::Exhaust(hot))), EngineError::Resource(_)));
    assert!(matches!(engine.configure("p", "20%%return"), Err(EngineError::Action { .. })));
    assert_eq!(engine.configure("p", "panic"), Err(EngineError::PanicsNotAllowed));
    let unknown = engine.create_experiment(error()).unwrap();
    engine.stop_experiment(unknown).unwrap();
    assert!(matches!(engine.start_experiment(infra_chaos_id(999)), Err(EngineError::UnknownExperiment(_))));
    assert!(matches!(ChaosEngine::builder().max_concurrent(0).build(), Err(EngineError::Zero("max_concurrent"))));

    // A start that fails leaves nothing behind: the experiment stays created, nothing is running.
    let missing = Resource::Disk { dir: "/nonexistent/infra-chaos".into(), mebibytes: 1 };
    let disk = engine.create_experiment(Experiment::new(Target::Any, Fault::Exhaust(missing))).unwrap();
    assert!(matches!(engine.start_experiment(disk), Err(EngineError::Start { .. })));
    assert_eq!(engine.results(disk).unwrap().state, ExperimentState::Created);
    assert!(engine.active_experiments().is_empty());
}

/// An id no engine handed out, for the unknown-id error.
fn infra_chaos_id(n: u64) -> infra_chaos::ExperimentId {
    let engine = ChaosEngine::builder().build().unwrap();
    let mut last = None;
    for _ in 0..n {
        last = Some(engine.create_experiment(Experiment::new(Target::Any, Fault::Error)).unwrap());
    }
    last.unwrap()
}

#[test]
fn scoped_engines_do_not_see_each_other() {
    let first = ChaosEngine::builder().build().unwrap();
    let second = ChaosEngine::builder().build().unwrap();
    let id = first.create_experiment(Experiment::new(Target::point("orders.place"), Fault::Error)).unwrap();
    first.start_experiment(id).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for _ in 0..1000 {
                assert!(first.scope(order).is_err());
            }
        });
        scope.spawn(|| {
            for _ in 0..1000 {
                assert!(second.scope(order).is_ok());
            }
        });
    });
    assert!(order().is_ok(), "unscoped code uses the global engine, which runs nothing");
}

#[test]
fn faults_do_what_they_say() -> Result<(), Box<dyn std::error::Error>> {
    let engine = ChaosEngine::builder().seed(3).allow_panics(true).build()?;
    let start = |target: Target, fault: Fault| -> Result<_, EngineError> {
        let id = engine.create_experiment(Experiment::new(target, fault))?;
        engine.start_experiment(id)?;
        Ok(id)
    };

    // Latency, at a prefix target.
    let slow = start(Target::prefix("quotes."), Fault::Latency(LatencyProfile::Fixed(Duration::from_millis(20))))?;
    let started = Instant::now();
    engine.check("quotes.fx")?;
    assert!(started.elapsed() >= Duration::from_millis(20));
    engine.check("orders.fx")?;
    assert_eq!(engine.results(slow).unwrap().latency_added, Duration::from_millis(20));
    engine.stop_experiment(slow)?;

    // The caller's own error type.
    #[derive(Debug, thiserror::Error, PartialEq)]
    #[error("venue rejected")]
    struct VenueRejected;
    let custom = start(Target::point("venue.send"), Fault::CustomError(Arc::new(|| Box::new(VenueRejected))))?;
    let error = engine.check("venue.send").unwrap_err();
    assert_eq!(error.downcast_ref::<VenueRejected>(), Some(&VenueRejected));
    engine.stop_experiment(custom)?;

    // A dependency that hangs, then fails.
    let down = start(
        Target::point("db.query"),
        Fault::Dependency { name: "postgres".into(), hang: Duration::from_millis(15) },
    )?;
    let started = Instant::now();
    match engine.check("db.query") {
        Err(ChaosError::DependencyUnavailable { dependency, .. }) => assert_eq!(dependency, "postgres"),
        other => panic!("expected the dependency to be down, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(15));
    engine.stop_experiment(down)?;

    // A panic, where allowed.
    let panics = start(Target::point("risk.check"), Fault::Panic("risk engine crashed".into()))?;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| engine.check("risk.check"))).unwrap_err();
    assert_eq!(caught.downcast_ref::<String>().map(String::as_str), Some("risk engine crashed"));
    engine.stop_experiment(panics)?;

    // The seed's inject_chaos(service, kind) applies only experiments of that kind.
    let both = start(Target::point("billing"), Fault::Error)?;
    engine.inject("billing", ExperimentKind::Latency)?;
    assert!(engine.inject("billing", ExperimentKind::Error).is_err());
    assert!(engine.wrap("billing", || 1).is_err());
    engine.stop_experiment(both)?;
    assert_eq!(engine.wrap("billing", || 1)?, 1);
    Ok(())
}

#[test]
fn fail_points_return_early_and_pause_until_reconfigured() {
    let engine = ChaosEngine::builder().build().unwrap();
    fn lookup() -> Result<u32, String> {
        infra_chaos::fail_point!("store.lookup", |arg: Option<String>| Err(arg.unwrap_or_else(|| "none".into())));
        infra_chaos::fail_point!("store.lookup.cond", 1 + 1 == 2, |_| Ok(7));
        Ok(1)
    }
    assert_eq!(engine.scope(lookup), Ok(1));
    engine.configure("store.lookup", "1*return(disk full)").unwrap();
    assert_eq!(engine.scope(lookup), Err("disk full".into()));
    assert_eq!(engine.scope(lookup), Ok(1), "one return, then nothing");
    engine.configure("store.lookup.cond", "return").unwrap();
    assert_eq!(engine.scope(lookup), Ok(7));
    engine.remove("store.lookup.cond");

    engine.configure("store.lookup", "pause").unwrap();
    let released = std::thread::scope(|scope| {
        // Timed from before the spawn: a thread that starts late must not shorten the pause it measures.
        let started = Instant::now();
        let engine = &engine;
        let paused = scope.spawn(move || {
            let result = engine.scope(lookup);
            (result, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(!paused.is_finished(), "paused until reconfigured");
        engine.configure("store.lookup", "off").unwrap();
        paused.join().unwrap()
    });
    assert_eq!(released.0, Ok(1));
    assert!(released.1 >= Duration::from_millis(50));
}

#[test]
fn the_injection_listener_hears_every_injection_and_nothing_else() -> Result<(), Box<dyn std::error::Error>> {
    let heard: Arc<std::sync::Mutex<Vec<(String, ExperimentKind)>>> = Arc::default();
    let engine = {
        let heard = Arc::clone(&heard);
        ChaosEngine::builder()
            .seed(7)
            .on_injection(move |injection| {
                heard.lock().unwrap().push((injection.point.to_owned(), injection.kind));
            })
            .build()?
    };
    let id = engine.create_experiment(
        Experiment::new(Target::prefix("venue."), Fault::Error).probability(0.5).max_injections(20),
    )?;
    engine.start_experiment(id)?;
    let failed = (0..200).filter(|_| engine.check("venue.send").is_err()).count();
    assert!(engine.check("orders.place").is_ok());
    let heard = heard.lock().unwrap();
    assert_eq!((failed, heard.len()), (20, 20), "one call per injection, none for passes or other points");
    assert!(heard.iter().all(|(point, kind)| point == "venue.send" && *kind == ExperimentKind::Error));
    assert_eq!(engine.results(id).unwrap().injections, 20);
    Ok(())
}
