//! `cargo xtask ci`: the whole gate, the one command README gives for testing and the only thing
//! `.ci/run` calls.
//!
//! Every step runs even when an earlier one failed, so one run shows everything that is wrong; the exit
//! status is non-zero if any step failed. The servers are brought up before the tests and always taken
//! down at the end. Tests and benchmarks share one debug build.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Result, bail};
use infra_testkit::REQUIRE_SERVICES_VAR;

use crate::services;

/// Tests whose names start with this talk to real servers; they form the interop tier.
const INTEROP_PREFIX: &str = "interop_";

/// Tests counted over every `cargo test` step, from libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct TestCounts {
    passed: u64,
    failed: u64,
}

impl TestCounts {
    /// Adds the counts of a libtest summary such as
    /// `test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.00s`.
    fn add_summary(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().skip_while(|w| w.ends_with('.'));
            if let (Some(number), Some(label)) = (words.next(), words.next()) {
                match (number.parse::<u64>(), label) {
                    (Ok(n), "passed") => self.passed += n,
                    (Ok(n), "failed") => self.failed += n,
                    _ => {}
                }
            }
        }
    }
}

struct StepResult {
    name: &'static str,
    seconds: f64,
    outcome: Result<(), String>,
}

/// The gate's running state: what each step gave, the tests counted, the environment for cargo.
#[derive(Default)]
struct Gate {
    results: Vec<StepResult>,
    counts: TestCounts,
    env: Vec<(String, String)>,
}

impl Gate {
    fn step(&mut self, name: &'static str, step: impl FnOnce(&mut Self) -> Result<(), String>) {
        let started = Instant::now();
        let outcome = step(self);
        if let Err(err) = &outcome {
            println!("\n==> step {name} FAILED: {err}");
        }
        self.results.push(StepResult { name, seconds: started.elapsed().as_secs_f64(), outcome });
    }

    /// Runs cargo with `args` and the gate's environment (plus `extra_env`), passing its output through
    /// line by line and counting libtest summaries.
    fn cargo(&mut self, args: &[&str], extra_env: &[(&str, &str)]) -> Result<(), String> {
        let mut command = crate::cargo();
        command.args(args).envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str()))).envs(extra_env.iter().copied());
        println!("\n==> {}", describe(&command));
        command.stdout(Stdio::piped());
        let mut child = command.spawn().map_err(|err| format!("could not start: {err}"))?;
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{line}");
                self.counts.add_summary(&line);
            }
        }
        match child.wait() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("exited with {status}")),
            Err(err) => Err(format!("could not wait: {err}")),
        }
    }
}

fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

pub(crate) fn run() -> Result<()> {
    let mut gate = Gate::default();
    gate.step("fmt", |g| g.cargo(&["fmt", "--all", "--check"], &[]));
    gate.step("clippy", |g| {
        g.cargo(&["clippy", "--workspace", "--all-targets", "--all-features", "--", "-D", "warnings"], &[])
    });
    // Every later step sees the servers and must not skip the tests that need them.
    gate.env.push((REQUIRE_SERVICES_VAR.to_owned(), "1".to_owned()));
    gate.step("services up", |g| {
        let running = services::up().map_err(|err| format!("{err:#}"))?;
        g.env.extend(running.env);
        Ok(())
    });
    gate.step("test", |g| {
        g.cargo(&["test", "--workspace", "--all-features", "--no-fail-fast", "--", "--skip", INTEROP_PREFIX], &[])?;
        // Injection points must vanish without infra-chaos's `points` feature: one small extra build.
        g.cargo(&["test", "-p", "infra-chaos", "--no-default-features", "--test", "compiled_out"], &[])
    });
    gate.step("doc", |g| {
        g.cargo(&["doc", "--workspace", "--all-features", "--no-deps"], &[("RUSTDOCFLAGS", "-D warnings")])
    });
    // `cargo test --benches` runs each criterion benchmark once in test mode, on the same debug build.
    gate.step("benches (test mode)", |g| {
        g.cargo(&["test", "--workspace", "--all-features", "--no-fail-fast", "--bench", "*"], &[])
    });
    gate.step("interop", |g| {
        g.cargo(&["test", "--workspace", "--all-features", "--no-fail-fast", "--", INTEROP_PREFIX], &[])
    });
    gate.step("services down", |_| services::down().map_err(|err| format!("{err:#}")));

    print_summary(&gate.results);
    // The plain closing line that CI systems read: every test of every step.
    println!("\ntests: {} passed, {} failed", gate.counts.passed, gate.counts.failed);
    let failed: Vec<&str> = gate.results.iter().filter(|r| r.outcome.is_err()).map(|r| r.name).collect();
    if failed.is_empty() { Ok(()) } else { bail!("the gate failed: {}", failed.join(", ")) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_libtest_summaries() {
        let mut counts = TestCounts::default();
        counts.add_summary(
            "test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.00s",
        );
        counts.add_summary("test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out");
        counts.add_summary("running 4 tests");
        assert_eq!(counts, TestCounts { passed: 6, failed: 3 });
    }
}
