//! The project's own tooling, run as `cargo xtask <task>`.
//!
//! - `ci`: the whole gate (format, lints, tests, docs, benchmarks in test mode, the interop tier against
//!   real servers), with a summary table; non-zero exit when any step fails.
//! - `services up | down | status`: installs, starts, checks and stops the real servers the tests use.
//! - `bench [--quick] [--rounds N] [CRATE]`: runs the criterion benchmarks and writes `docs/benchmarks.md`.

#![allow(clippy::print_stdout)] // A command-line tool: stdout is its interface.

mod bench;
mod chart;
mod ci;
mod services;

use std::path::PathBuf;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  ci                         the whole gate: fmt, clippy, tests, docs, benches in test mode, interop tier
  services up|down|status    install (as root on Debian), start, check or stop the real test servers
  bench [--quick] [--rounds N] [CRATE]
                             run the criterion benchmarks (all, or one file of benches/benches/),
                             N times over with --rounds (medians of the rounds), and write
                             docs/benchmarks.md with ratios against the peers and charts";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci::run(),
        ["services", "up"] => services::up_command(),
        ["services", "down"] => services::down_command(),
        ["services", "status"] => services::status_command(),
        ["bench", rest @ ..] => bench::run(rest),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown task {args:?}\n\n{USAGE}"),
    }
}

/// The workspace root: the parent of this crate's folder.
fn workspace_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(PathBuf::from).unwrap_or(manifest_dir)
}

/// Cargo's target folder, honouring `CARGO_TARGET_DIR`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("target"))
}

/// The cargo that runs us, so a toolchain chosen by rustup or `CARGO` is used throughout.
fn cargo() -> std::process::Command {
    let mut command = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}
