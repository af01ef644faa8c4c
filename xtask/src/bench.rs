//! `cargo xtask bench [--quick] [--rounds N] [CRATE]`: runs the criterion benchmarks of `benches/` and
//! writes `docs/benchmarks.md`, one section per comparison group with medians, ratios and a chart.
//!
//! With `--rounds N` the benchmarks run N times over, each round measuring every implementation once,
//! and the report gives each function's median over the rounds and each ratio as the median of the
//! rounds' ratios (with their range). On a shared machine a burst of noise lands on one implementation's
//! few seconds at a time: a single round can be off by half, the median of three rarely is.
//!
//! Naming convention (see `benches/src/lib.rs`): in a group, the function whose id starts with `infra` is
//! ours and the others are peers; the ratio is a peer's median over ours, so above 1 means we are faster.
//! Groups without one of ours (the floors) list medians only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::chart;

/// Criterion settings for `--quick`: long enough for a stable median on quiet code, short enough for CI.
const QUICK_ARGS: &[&str] = &["--warm-up-time", "0.5", "--measurement-time", "1", "--sample-size", "10"];

/// One measured function, from criterion's `benchmark.json` and `estimates.json`.
#[derive(Debug, Clone)]
struct Measurement {
    function: String,
    median_ns: f64,
    measured: SystemTime,
}

/// A row of the report: a function's figures over every round.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    function: String,
    /// The median over the rounds of criterion's median.
    median_ns: f64,
    /// When the last round measured it.
    measured: SystemTime,
    /// For a peer: the median over the rounds of its median divided by ours (same parameter, same round).
    ratio: Option<f64>,
    /// The lowest and highest of those ratios, with more than one round.
    ratio_range: Option<(f64, f64)>,
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    const USAGE: &str = "usage: cargo xtask bench [--quick] [--rounds N] [CRATE]";
    let mut quick = false;
    let mut rounds = 1usize;
    let mut only = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--quick" => quick = true,
            "--rounds" => {
                let value = args.next().with_context(|| format!("--rounds needs a number; {USAGE}"))?;
                rounds = match value.parse() {
                    Ok(n) if n >= 1 => n,
                    _ => bail!("--rounds takes a whole number of at least 1, got {value:?}; {USAGE}"),
                };
            }
            flag if flag.starts_with('-') => bail!("unknown flag {flag}; {USAGE}"),
            name if only.is_none() => only = Some(name.trim_start_matches("infra-").to_owned()),
            extra => bail!("one CRATE at most, got a second: {extra}"),
        }
    }
    if let Some(name) = &only {
        let file = crate::workspace_root().join("benches/benches").join(format!("{name}.rs"));
        if !file.exists() {
            bail!("no benchmark file {}; the names are those of benches/benches/*.rs", file.display());
        }
    }

    let started = SystemTime::now();
    let mut measured_rounds = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        if rounds > 1 {
            println!("xtask bench: round {round} of {rounds}");
        }
        let mut command = crate::cargo();
        command.args(["bench", "--package", "infra-benches"]);
        if let Some(name) = &only {
            command.args(["--bench", name]);
        }
        command.arg("--");
        if quick {
            command.args(QUICK_ARGS);
        }
        let status = command.status().context("running cargo bench")?;
        remove_bench_scratch();
        if !status.success() {
            bail!("cargo bench failed: {status}");
        }
        measured_rounds.push(collect(&crate::target_dir().join("criterion"))?);
    }

    let quality = crate::target_dir().join("cache-quality.md");
    if only.as_deref().is_none_or(|name| name == "cache") {
        // Hit ratios and memory per entry are measurements, not timings: an example prints them.
        let output = crate::cargo()
            .args(["run", "--release", "--quiet", "--package", "infra-benches", "--example", "cache_quality"])
            .output()
            .context("running the cache_quality example")?;
        if !output.status.success() {
            bail!("the cache_quality example failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::fs::write(&quality, &output.stdout).with_context(|| format!("writing {}", quality.display()))?;
    }
    let extra = read_extra_section(&quality, started)?;

    let groups = combine(&measured_rounds);
    let invocation = format!(
        "cargo xtask bench{}{}{}",
        if quick { " --quick" } else { "" },
        if rounds > 1 { format!(" --rounds {rounds}") } else { String::new() },
        only.as_deref().map(|n| format!(" {n}")).unwrap_or_default()
    );
    let docs = crate::workspace_root().join("docs");
    // The report this one replaces: its sections for groups not found under criterion's folder (measured
    // on another machine, or before `target/` was cleaned) are carried over as earlier runs.
    let previous = std::fs::read_to_string(docs.join("benchmarks.md")).unwrap_or_default();
    write_report(&docs, &groups, rounds, started, &invocation, extra.as_deref(), &previous)?;
    println!("wrote {}", docs.join("benchmarks.md").display());
    Ok(())
}

/// Reads every `new/benchmark.json` + `new/estimates.json` pair under criterion's output folder.
fn collect(root: &Path) -> Result<BTreeMap<String, Vec<Measurement>>> {
    let mut groups: BTreeMap<String, Vec<Measurement>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "benchmark.json")
                && path.parent().and_then(Path::file_name).is_some_and(|n| n == "new")
            {
                let (group, measurement) = read_measurement(&path)?;
                groups.entry(group).or_default().push(measurement);
            }
        }
    }
    for measurements in groups.values_mut() {
        measurements.sort_by(|a, b| a.function.cmp(&b.function));
    }
    Ok(groups)
}

fn read_measurement(benchmark_json: &Path) -> Result<(String, Measurement)> {
    let read_json = |path: &Path| -> Result<serde_json::Value> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let benchmark = read_json(benchmark_json)?;
    let estimates_path = benchmark_json.with_file_name("estimates.json");
    let estimates = read_json(&estimates_path)?;
    let group = benchmark["group_id"].as_str().context("benchmark.json without group_id")?.to_owned();
    let mut function = benchmark["function_id"].as_str().unwrap_or("").to_owned();
    if let Some(value) = benchmark["value_str"].as_str() {
        function = if function.is_empty() { value.to_owned() } else { format!("{function}/{value}") };
    }
    let median_ns = estimates["median"]["point_estimate"].as_f64().context("estimates.json without a median")?;
    let measured = std::fs::metadata(&estimates_path)?.modified()?;
    Ok((group, Measurement { function, median_ns, measured }))
}

/// The rows of every group over the rounds (a group or function missing from a round, as when a
/// benchmark was renamed, counts with the rounds that have it).
fn combine(rounds: &[BTreeMap<String, Vec<Measurement>>]) -> BTreeMap<String, Vec<Row>> {
    let mut rows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let names: std::collections::BTreeSet<&String> = rounds.iter().flat_map(BTreeMap::keys).collect();
    for group in names {
        let functions: std::collections::BTreeSet<&String> = rounds
            .iter()
            .filter_map(|round| round.get(group))
            .flat_map(|measurements| measurements.iter().map(|m| &m.function))
            .collect();
        let group_rows = functions
            .into_iter()
            .map(|function| {
                let mut medians = Vec::new();
                let mut ratios = Vec::new();
                let mut measured = SystemTime::UNIX_EPOCH;
                for measurements in rounds.iter().filter_map(|round| round.get(group)) {
                    let Some(m) = measurements.iter().find(|m| &m.function == function) else { continue };
                    medians.push(m.median_ns);
                    measured = measured.max(m.measured);
                    let ours = measurements
                        .iter()
                        .find(|o| is_ours(&o.function) && parameter(&o.function) == parameter(function));
                    if let Some(ours) = ours.filter(|_| !is_ours(function)) {
                        ratios.push(m.median_ns / ours.median_ns);
                    }
                }
                let range = (ratios.len() > 1).then(|| {
                    ratios.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| (lo.min(r), hi.max(r)))
                });
                Row {
                    function: function.clone(),
                    median_ns: median(&mut medians),
                    measured,
                    ratio: (!ratios.is_empty()).then(|| median(&mut ratios)),
                    ratio_range: range,
                }
            })
            .collect();
        rows.insert(group.clone(), group_rows);
    }
    rows
}

/// The median of a non-empty list (the mean of the middle two for an even count).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 1 { values[middle] } else { (values[middle - 1] + values[middle]) / 2.0 }
}

fn is_ours(function: &str) -> bool {
    function.starts_with("infra")
}

/// Groups a function id like `infra/10` or `moka/10` by its parameter (`10`), so ratios compare like
/// with like; ids without a parameter share the empty one.
fn parameter(function: &str) -> &str {
    function.split_once('/').map_or("", |(_, p)| p)
}

pub(crate) fn format_duration(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.2} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else if ns < 1_000_000_000.0 {
        format!("{:.2} ms", ns / 1_000_000.0)
    } else {
        format!("{:.2} s", ns / 1_000_000_000.0)
    }
}

fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!("{cores} cores, {model}")
}

fn utc_date(time: SystemTime) -> String {
    let nanos = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    // infra-log's RFC 3339 writer ("2026-12-01T05:43:38.000000000Z"), cut to the minute.
    let stamp = infra_log::rfc3339(nanos);
    format!("{} {} UTC", &stamp[..10], &stamp[11..16])
}

/// What a section's heading says when its figures come from an earlier run.
const EARLIER: &str = " (earlier run)";
/// The name of the section of hit ratios and memory, which comes last.
const QUALITY: &str = "cache quality";

/// The name of the section under `## ` and its text (heading included), for every section of a report.
fn sections(report: &str) -> Vec<(String, String)> {
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in report.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            sections.push((heading.trim_end_matches(EARLIER).to_owned(), String::new()));
        }
        if let Some((_, text)) = sections.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    sections
}

/// A section carried over from an earlier report, its heading marked as such.
fn as_earlier(name: &str, text: &str) -> String {
    let body = text.split_once('\n').map_or("", |(_, body)| body);
    format!("## {name}{EARLIER}\n{}", body.trim_end())
}

/// The cache-quality section, with a note when it was measured by an earlier run.
fn read_extra_section(path: &Path, started: SystemTime) -> Result<Option<String>> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(None) };
    let fresh = std::fs::metadata(path)?.modified()? >= started;
    let heading = format!("## {QUALITY}{}", if fresh { "" } else { EARLIER });
    Ok(Some(format!("{heading}\n\nFrom `cargo run --release -p infra-benches --example cache_quality`.\n\n{text}")))
}

fn write_report(
    docs: &Path,
    groups: &BTreeMap<String, Vec<Row>>,
    rounds: usize,
    started: SystemTime,
    invocation: &str,
    extra: Option<&str>,
    previous: &str,
) -> Result<()> {
    let charts_dir = docs.join("bench-charts");
    std::fs::create_dir_all(&charts_dir)?;
    let mut md = String::new();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(md, "Written by `{invocation}` on {}.\n", utc_date(SystemTime::now()))?;
    writeln!(md, "- Machine: {}.", machine_description())?;
    writeln!(md, "- Reproduce: `{invocation}` (`--quick` gives short runs, none gives full criterion runs;")?;
    writeln!(
        md,
        "  `--rounds N` runs everything N times over; name a file of `benches/benches/` to run only that one)."
    )?;
    writeln!(md, "- Figures are criterion's median time per operation. A ratio is a peer's median divided by ours")?;
    writeln!(md, "  (`infra*` rows), so above 1.00 we are faster. The machine is small and shared: re-run before")?;
    writeln!(md, "  trusting a surprising figure. Groups marked *earlier run* were not measured by this command.")?;
    if rounds > 1 {
        writeln!(md, "- {rounds} rounds, each measuring every implementation once: a median is the median of the")?;
        writeln!(md, "  rounds' medians, a ratio the median of the rounds' ratios (their range beside it).")?;
    }
    writeln!(md)?;

    let carried: BTreeMap<String, String> = sections(previous)
        .into_iter()
        .filter(|(name, _)| {
            // A fresh quality section replaces the old one.
            let replaced = name == QUALITY && extra.is_some();
            !groups.contains_key(name) && !replaced
        })
        .collect();
    let mut names: Vec<&String> = groups.keys().chain(carried.keys()).collect();
    names.sort();
    // The cache-quality section comes last, after the timing groups.
    names.retain(|name| name.as_str() != QUALITY);
    for group in names {
        let Some(measurements) = groups.get(group) else {
            writeln!(md, "{}\n", as_earlier(group, &carried[group]))?;
            continue;
        };
        let fresh = measurements.iter().all(|m| m.measured >= started);
        writeln!(md, "## {group}{}\n", if fresh { "" } else { EARLIER })?;
        let has_ours = measurements.iter().any(|m| is_ours(&m.function));
        let ranges = rounds > 1;
        if has_ours && ranges {
            writeln!(
                md,
                "| implementation | median | ratio (peer / ours) | rounds' ratios |\n| --- | ---: | ---: | ---: |"
            )?;
        } else if has_ours {
            writeln!(md, "| implementation | median | ratio (peer / ours) |\n| --- | ---: | ---: |")?;
        } else {
            writeln!(md, "| measurement | median |\n| --- | ---: |")?;
        }
        for m in measurements {
            if has_ours {
                let ratio = match m.ratio {
                    _ if is_ours(&m.function) => "ours".to_owned(),
                    Some(ratio) => format!("{ratio:.2}"),
                    None => "–".to_owned(),
                };
                if ranges {
                    let range = m.ratio_range.map_or_else(|| "–".to_owned(), |(lo, hi)| format!("{lo:.2}–{hi:.2}"));
                    writeln!(md, "| {} | {} | {ratio} | {range} |", m.function, format_duration(m.median_ns))?;
                } else {
                    writeln!(md, "| {} | {} | {ratio} |", m.function, format_duration(m.median_ns))?;
                }
            } else {
                writeln!(md, "| {} | {} |", m.function, format_duration(m.median_ns))?;
            }
        }
        let file_name = format!("{}.svg", group.replace(['/', ' '], "_"));
        let bars: Vec<chart::Bar> = measurements
            .iter()
            .map(|m| chart::Bar { label: m.function.clone(), value_ns: m.median_ns, ours: is_ours(&m.function) })
            .collect();
        std::fs::write(charts_dir.join(&file_name), chart::render(group, &bars))?;
        writeln!(md, "\n![{group}](bench-charts/{file_name})\n")?;
    }
    match (extra, carried.get(QUALITY)) {
        (Some(extra), _) => writeln!(md, "{}", extra.trim_end())?,
        (None, Some(earlier)) => writeln!(md, "{}", as_earlier(QUALITY, earlier))?,
        (None, None) => {}
    }
    std::fs::write(docs.join("benchmarks.md"), md)?;
    Ok(())
}

/// Removes what the benchmark processes wrote under the temporary folder (`infra-benches-<pid>`; the
/// logging benchmarks write gigabytes there, and a benchmark process cannot clean up after itself).
fn remove_bench_scratch() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(|name| name.starts_with("infra-benches-")) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_dates_and_durations() {
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_083_200); // 2026-12-01
        assert_eq!(utc_date(time), "2026-12-01 00:00 UTC");
        assert_eq!(utc_date(SystemTime::UNIX_EPOCH), "1970-01-01 00:00 UTC");
        assert_eq!(format_duration(12.345), "12.35 ns");
        assert_eq!(format_duration(1_500.0), "1.50 µs");
        assert_eq!(format_duration(2_500_000.0), "2.50 ms");
    }

    #[test]
    fn pairs_peers_with_ours_by_parameter() {
        assert!(is_ours("infra"));
        assert!(is_ours("infra-cache/2"));
        assert!(!is_ours("moka/2"));
        assert_eq!(parameter("moka/2"), "2");
        assert_eq!(parameter("moka"), "");
    }

    /// Medians over rounds, and ratios paired within a round before their median: a round in which one
    /// implementation alone was slowed does not move the figures.
    #[test]
    fn combines_rounds_by_medians_of_paired_ratios() {
        let at = SystemTime::UNIX_EPOCH;
        let round = |ours: f64, peer: f64| {
            let measurement =
                |function: &str, median_ns| Measurement { function: function.to_owned(), median_ns, measured: at };
            BTreeMap::from([(
                "grp".to_owned(),
                vec![measurement("infra/1", ours), measurement("peer/1", peer), measurement("floor/2", 5.0)],
            )])
        };
        // The second round slowed ours down by half again; the third slowed the peer.
        let rows = combine(&[round(10.0, 9.0), round(15.0, 9.0), round(10.0, 12.0)]);
        let rows = &rows["grp"];
        let row = |name: &str| rows.iter().find(|row| row.function == name).expect("a row each");
        assert_eq!(row("infra/1").median_ns, 10.0);
        assert_eq!(row("infra/1").ratio, None, "ours has no ratio");
        assert_eq!(row("peer/1").median_ns, 9.0);
        assert_eq!(row("peer/1").ratio, Some(0.9), "the median of 0.9, 0.6 and 1.2");
        assert_eq!(row("peer/1").ratio_range, Some((0.6, 1.2)));
        assert_eq!(row("floor/2").ratio, None, "nothing of ours with that parameter");
        let single = combine(&[round(10.0, 9.0)]);
        assert_eq!(single["grp"][2].ratio_range, None, "no range from one round");
        let mut even = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(median(&mut even), 2.5);
    }

    #[test]
    fn collects_criterion_output() {
        let dir = tempfile::tempdir().unwrap();
        for (function, median) in [("infra", 10.0), ("peer", 25.0)] {
            let new = dir.path().join("grp").join(function).join("new");
            std::fs::create_dir_all(&new).unwrap();
            std::fs::write(
                new.join("benchmark.json"),
                format!(r#"{{"group_id":"grp","function_id":"{function}","value_str":null}}"#),
            )
            .unwrap();
            std::fs::write(new.join("estimates.json"), format!(r#"{{"median":{{"point_estimate":{median}}}}}"#))
                .unwrap();
        }
        let groups = collect(dir.path()).unwrap();
        let grp = &groups["grp"];
        assert_eq!(grp.len(), 2);
        assert_eq!(grp[0].function, "infra");
        assert_eq!(grp[1].median_ns, 25.0);

        let docs = dir.path().join("docs");
        let previous = "# Benchmarks\n\npreamble\n\n## grp\n\nold figures\n\n## aaa (earlier run)\n\nkept\n\n\
                        ## zzz\n\nkept too\n\n## cache quality\n\nold quality\n";
        let rows = combine(std::slice::from_ref(&groups));
        write_report(&docs, &rows, 1, SystemTime::UNIX_EPOCH, "cargo xtask bench", Some("## extra\n\nbody"), previous)
            .unwrap();
        let md = std::fs::read_to_string(docs.join("benchmarks.md")).unwrap();
        assert!(md.contains("| peer | 25.00 ns | 2.50 |"), "{md}");
        assert!(md.ends_with("## extra\n\nbody\n"), "{md}");
        assert!(docs.join("bench-charts/grp.svg").exists());
        // Groups this run did not measure are carried over, in order, as earlier runs; measured ones and
        // the old quality section are replaced.
        let (aaa, grp, zzz) = (
            md.find("## aaa (earlier run)\n\nkept\n").unwrap(),
            md.find("## grp").unwrap(),
            md.find("## zzz (earlier run)\n\nkept too\n").unwrap(),
        );
        assert!(aaa < grp && grp < zzz, "{md}");
        assert!(!md.contains("old figures") && !md.contains("old quality") && !md.contains("preamble"), "{md}");

        // Without a fresh quality section, the old one stays, last.
        write_report(&docs, &rows, 1, SystemTime::UNIX_EPOCH, "cargo xtask bench", None, previous).unwrap();
        let md = std::fs::read_to_string(docs.join("benchmarks.md")).unwrap();
        assert!(md.ends_with("## cache quality (earlier run)\n\nold quality\n"), "{md}");

        // With rounds, each ratio has its range beside it.
        let rounds = combine(&[groups.clone(), groups]);
        write_report(&docs, &rounds, 2, SystemTime::UNIX_EPOCH, "cargo xtask bench --rounds 2", None, previous)
            .unwrap();
        let md = std::fs::read_to_string(docs.join("benchmarks.md")).unwrap();
        assert!(md.contains("| peer | 25.00 ns | 2.50 | 2.50–2.50 |"), "{md}");
        assert!(md.contains("2 rounds, each measuring every implementation once"), "{md}");
    }
}
