//! The trading-desk demo, run as a user runs it: `--duration 5s` exits 0 with its report.
#![cfg(all(feature = "ops", feature = "pool", feature = "cache"))]

use std::path::PathBuf;
use std::process::Command;

/// The example binary beside this test's: `cargo test` builds examples along with the tests (but
/// `cargo test --test demo` alone does not, and a nested cargo would wait forever on the build lock the
/// outer one holds).
fn demo_binary() -> Option<PathBuf> {
    let deps = std::env::current_exe().expect("the test binary's path");
    let profile_dir = deps.parent().and_then(|d| d.parent()).expect("target/<profile>/deps");
    let binary = profile_dir.join("examples").join(format!("trading_desk{}", std::env::consts::EXE_SUFFIX));
    if binary.exists() {
        return Some(binary);
    }
    assert!(
        !infra_testkit::services_required(),
        "{} is missing: run the whole test suite (`cargo test -p infra-suite`), which builds the examples",
        binary.display()
    );
    eprintln!("skipped: {} is not built; `cargo test -p infra-suite` builds it", binary.display());
    None
}

#[test]
fn the_demo_runs_for_its_duration_and_prints_its_report() {
    let Some(demo) = demo_binary() else { return };
    let output = Command::new(demo).args(["--duration", "5s", "--rate", "5000"]).output().expect("the demo starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}\n{stdout}\n{stderr}", output.status);
    for expected in [
        "dashboard: http://127.0.0.1:",
        "... chaos: venue latency",
        "=== trading desk report ===",
        "orders ",
        "suite cost ",
        "shutdown       clean",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing from the demo's output:\n{stdout}\n{stderr}");
    }
    assert!(stderr.contains("#token="), "the generated token is shown once: {stderr}");
}

#[test]
fn the_demo_refuses_bad_arguments_with_a_message() {
    for (args, message) in
        [(["--duration", "5 parsecs"], "--duration"), (["--rate", "fast"], "--rate"), (["--ops", "nowhere"], "--ops")]
    {
        let Some(demo) = demo_binary() else { return };
        let output = Command::new(demo).args(args).output().expect("the demo starts");
        assert!(!output.status.success(), "{args:?} accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
