//! `cargo xtask ci`: the whole gate, the one command README gives for testing and the only thing
//! `.ci/run` calls.
//!
//! Every step runs even when an earlier one failed, so one run shows everything that is wrong; the exit
//! status is non-zero if any step failed. The servers are brought up before the tests and always taken
//! down at the end. Tests and benchmarks share one debug build.

use std::process::Command;
use std::time::Instant;

use anyhow::{Result, bail};
use infra_testkit::REQUIRE_SERVICES_VAR;

use crate::services;

/// Tests whose names start with this talk to real servers; they form the interop tier.
const INTEROP_PREFIX: &str = "interop_";

struct StepResult {
    name: &'static str,
    seconds: f64,
    outcome: Result<(), String>,
}

fn cargo_step(args: &[&str], env: &[(String, String)]) -> Result<(), String> {
    let mut command = crate::cargo();
    command
        .args(args)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    run_command(command)
}

fn run_command(mut command: Command) -> Result<(), String> {
    println!("\n==> {}", describe(&command));
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("exited with {status}")),
        Err(err) => Err(format!("could not start: {err}")),
    }
}

fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

pub(crate) fn run() -> Result<()> {
    let mut results = Vec::new();
    let mut timed = |name: &'static str, step: &mut dyn FnMut() -> Result<(), String>| {
        let started = Instant::now();
        let outcome = step();
        if let Err(err) = &outcome {
            println!("\n==> step {name} FAILED: {err}");
        }
        results.push(StepResult {
            name,
            seconds: started.elapsed().as_secs_f64(),
            outcome,
        });
    };

    timed("fmt", &mut || cargo_step(&["fmt", "--all", "--check"], &[]));
    timed("clippy", &mut || {
        cargo_step(
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--all-features",
                "--",
                "-D",
                "warnings",
            ],
            &[],
        )
    });

    // Every later step sees the servers and must not skip tests that need them.
    let mut env: Vec<(String, String)> = vec![(REQUIRE_SERVICES_VAR.to_owned(), "1".to_owned())];
    timed("services up", &mut || match services::up() {
        Ok(running) => {
            env.extend(running.env.clone());
            Ok(())
        }
        Err(err) => Err(format!("{err:#}")),
    });

    timed("test", &mut || {
        cargo_step(
            &[
                "test",
                "--workspace",
                "--all-features",
                "--",
                "--skip",
                INTEROP_PREFIX,
            ],
            &env,
        )
    });
    timed("doc", &mut || {
        let mut env = env.clone();
        env.push(("RUSTDOCFLAGS".to_owned(), "-D warnings".to_owned()));
        cargo_step(&["doc", "--workspace", "--all-features", "--no-deps"], &env)
    });
    // `cargo test` runs criterion benchmarks once each in test mode, on the same debug build.
    timed("benches (test mode)", &mut || {
        cargo_step(
            &["test", "--workspace", "--all-features", "--benches"],
            &env,
        )
    });
    timed("interop", &mut || {
        cargo_step(
            &[
                "test",
                "--workspace",
                "--all-features",
                "--",
                INTEROP_PREFIX,
            ],
            &env,
        )
    });
    timed("services down", &mut || {
        services::down().map_err(|err| format!("{err:#}"))
    });

    print_summary(&results);
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.outcome.is_err())
        .map(|r| r.name)
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        bail!("the gate failed: {}", failed.join(", "))
    }
}

fn print_summary(results: &[StepResult]) {
    let total: f64 = results.iter().map(|r| r.seconds).sum();
    println!("\n{:<22} {:>8}  result", "step", "seconds");
    for result in results {
        let word = match &result.outcome {
            Ok(()) => "ok".to_owned(),
            Err(err) => format!("FAILED ({err})"),
        };
        println!("{:<22} {:>8.1}  {word}", result.name, result.seconds);
    }
    println!("{:<22} {:>8.1}", "total", total);
}
