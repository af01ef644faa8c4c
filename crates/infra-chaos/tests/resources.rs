//! Resource exhaustion: held while the experiment runs, given back in full when it stops. One test, so no
//! other test in this binary moves the process's counts meanwhile.

use std::time::Duration;

use infra_chaos::{ChaosEngine, Experiment, ExperimentState, Fault, Resource, Target};

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|line| line.starts_with(name)).expect("field present");
    line.split_whitespace().nth(1).and_then(|value| value.parse().ok()).expect("a number")
}

fn resident_mib() -> u64 {
    status_field("VmRSS:") / 1024
}

fn threads() -> u64 {
    status_field("Threads:")
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count()
}

#[test]
fn every_resource_is_held_while_running_and_released_on_stop() -> Result<(), Box<dyn std::error::Error>> {
    let engine = ChaosEngine::builder().build()?;
    let run = |resource: Resource| -> Result<_, Box<dyn std::error::Error>> {
        let id = engine.create_experiment(Experiment::new(Target::Any, Fault::Exhaust(resource)))?;
        engine.start_experiment(id)?;
        Ok(id)
    };

    // Memory: 64 MiB resident while running, gone after.
    let baseline = resident_mib();
    let memory = run(Resource::Memory { mebibytes: 64 })?;
    assert!(resident_mib() >= baseline + 60, "held: {} MiB over {baseline}", resident_mib());
    assert!(engine.stop_experiment(memory)?);
    assert!(resident_mib() < baseline + 16, "released: {} MiB against {baseline}", resident_mib());

    // CPU: spinning threads while running, joined by the time stop returns.
    let baseline = threads();
    let cpu = run(Resource::Cpu { threads: 2, duty_percent: 20 })?;
    assert_eq!(threads(), baseline + 2);
    engine.stop_experiment(cpu)?;
    assert_eq!(threads(), baseline);

    // File descriptors.
    let baseline = open_descriptors();
    let fds = run(Resource::FileDescriptors { count: 100 })?;
    assert_eq!(open_descriptors(), baseline + 100);
    engine.stop_experiment(fds)?;
    assert_eq!(open_descriptors(), baseline);

    // Disk: a file of the size asked for, removed after.
    let dir = infra_testkit::temp_dir();
    let disk = run(Resource::Disk { dir: dir.path().to_owned(), mebibytes: 8 })?;
    let files: Vec<_> = std::fs::read_dir(dir.path())?.collect::<Result<_, _>>()?;
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].metadata()?.len(), 8 << 20);
    engine.stop_experiment(disk)?;
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0);

    // The kill switch and a duration release resources too.
    let (clock, time) = quanta::Clock::mock();
    let timed = ChaosEngine::builder().clock(clock).supervise_interval(Duration::from_secs(3600)).build()?;
    let baseline = threads();
    let id = timed.create_experiment(
        Experiment::new(Target::Any, Fault::Exhaust(Resource::Cpu { threads: 1, duty_percent: 10 }))
            .duration(Duration::from_secs(30)),
    )?;
    timed.start_experiment(id)?;
    assert_eq!(threads(), baseline + 1);
    time.increment(Duration::from_secs(30));
    timed.tick();
    assert_eq!(timed.results(id).unwrap().state, ExperimentState::Completed);
    assert_eq!(threads(), baseline);
    let killed = run(Resource::FileDescriptors { count: 10 })?;
    let fds = open_descriptors();
    engine.kill_switch();
    assert_eq!(open_descriptors(), fds - 10);
    assert_eq!(engine.results(killed).unwrap().state, ExperimentState::Aborted);
    Ok(())
}
