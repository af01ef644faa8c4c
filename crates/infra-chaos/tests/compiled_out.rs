//! Built without the `points` feature, every point macro is gone: configured failpoints and running
//! experiments change nothing. `cargo xtask ci` runs this file with `--no-default-features`; with the
//! feature on (the usual build) it is empty.
#![cfg(not(feature = "points"))]

use infra_chaos::{ChaosEngine, ChaosError, Experiment, Fault, Target};

fn guarded() -> Result<u32, ChaosError> {
    infra_chaos::point!("compiled.out")?;
    infra_chaos::fail_point!("compiled.out.fail", |_| Ok(0));
    Ok(1)
}

#[test]
fn points_compiled_out_ignore_every_configuration() {
    let engine = ChaosEngine::builder().build().unwrap();
    engine.configure("compiled.out.fail", "return").unwrap();
    let id = engine.create_experiment(Experiment::new(Target::Any, Fault::Error)).unwrap();
    engine.start_experiment(id).unwrap();
    assert_eq!(engine.scope(guarded).unwrap(), 1);
    // The engine itself still works for explicit checks.
    assert!(engine.check("compiled.out").is_err());
}
