//! Rolling files: rotation by size and by time (on the injected clock), retention by count, total
//! size and age, gzip, search over the files after a restart, and the errors a bad path gets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use infra_log::{
    Level, LogAggregator, Query, RollingError, RollingFileSink, TraceContext, info, search_files, set_trace_context,
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("infra-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn lines_in(dir: &Path) -> usize {
    search_files(dir, "app", &Query::default()).unwrap().len()
}

#[test]
fn files_roll_by_size_and_nothing_is_lost() {
    let dir = TempDir::new("size");
    let sink = RollingFileSink::builder(&dir.0, "app").max_bytes(2_000).build().unwrap();
    let logs = LogAggregator::builder("svc").sink(sink).build().unwrap();
    for i in 0..200u64 {
        info!(logs, "orders", "order accepted", seq = i);
    }
    assert!(logs.flush());
    let names = files(&dir.0);
    assert!(names.len() > 5, "{names:?}");
    for name in &names {
        let size = std::fs::metadata(dir.0.join(name)).unwrap().len();
        assert!(size <= 2_000, "{name} is {size} bytes");
    }
    let all = search_files(&dir.0, "app", &Query::default()).unwrap();
    let seqs: Vec<String> = all.iter().map(|e| e.field("seq").unwrap().to_string()).collect();
    assert_eq!(seqs, (0..200).map(|i| i.to_string()).collect::<Vec<_>>(), "every entry, in order, across files");
}

#[test]
fn files_roll_by_time_and_old_ones_age_out_on_the_injected_clock() {
    let dir = TempDir::new("time");
    let (clock, mock) = quanta::Clock::mock();
    let sink = RollingFileSink::builder(&dir.0, "app")
        .every(Duration::from_secs(3600))
        .max_age(Duration::from_secs(3 * 3600 + 1800))
        .build()
        .unwrap();
    let logs = LogAggregator::builder("svc").clock(clock).sink(sink).build().unwrap();
    for hour in 0..6 {
        logs.info(format!("hour {hour}"), "svc");
        assert!(logs.flush());
        mock.increment(Duration::from_secs(3600));
    }
    logs.info("hour 6", "svc");
    assert!(logs.flush());
    let names = files(&dir.0);
    // Hours 0..=5 were rolled; those whose first entry is more than three and a half hours old are
    // gone.
    let rolled: Vec<&String> = names.iter().filter(|n| n.as_str() != "app.jsonl").collect();
    assert_eq!(rolled.len(), 3, "{names:?}");
    let messages: Vec<String> =
        search_files(&dir.0, "app", &Query::default()).unwrap().iter().map(|e| e.message.to_string()).collect();
    assert_eq!(messages, ["hour 3", "hour 4", "hour 5", "hour 6"]);
}

#[test]
fn retention_by_count_and_total_size_and_gzip() {
    let dir = TempDir::new("count");
    let sink = RollingFileSink::builder(&dir.0, "app").max_bytes(500).max_files(3).gzip(true).build().unwrap();
    let logs = LogAggregator::builder("svc").sink(sink).build().unwrap();
    for i in 0..100u64 {
        info!(logs, "svc", "entry", seq = i);
    }
    assert!(logs.flush());
    let names = files(&dir.0);
    let rolled: Vec<&String> = names.iter().filter(|n| n.ends_with(".jsonl.gz")).collect();
    assert_eq!(rolled.len(), 3, "{names:?}");
    assert_eq!(names.len(), 4, "three rolled files and the active one: {names:?}");
    let found = search_files(&dir.0, "app", &Query::default()).unwrap();
    assert!(!found.is_empty() && found.last().unwrap().field("seq").unwrap().to_string() == "99");

    let dir = TempDir::new("total");
    let sink = RollingFileSink::builder(&dir.0, "app").max_bytes(400).max_total_bytes(1_000).build().unwrap();
    let logs = LogAggregator::builder("svc").sink(sink).build().unwrap();
    for i in 0..100u64 {
        info!(logs, "svc", "entry", seq = i);
    }
    assert!(logs.flush());
    let rolled_bytes: u64 = files(&dir.0)
        .iter()
        .filter(|n| n.as_str() != "app.jsonl")
        .map(|n| std::fs::metadata(dir.0.join(n)).unwrap().len())
        .sum();
    assert!(rolled_bytes <= 1_000, "{rolled_bytes} bytes of rolled files");
}

#[test]
fn search_survives_a_restart() {
    let dir = TempDir::new("restart");
    {
        let sink = RollingFileSink::builder(&dir.0, "app").max_bytes(1_000).gzip(true).build().unwrap();
        let logs = LogAggregator::builder("svc").sink(sink).build().unwrap();
        let _trace = set_trace_context(TraceContext::new(0xfeed, 0xbeef, 1));
        for i in 0..50u64 {
            info!(logs, "orders", "filled", seq = i);
        }
        logs.error("rejected by risk", "risk", Some("limit exceeded"));
        assert!(logs.shutdown_with_timeout(Duration::from_secs(10)));
    }
    // A new process: a new sink on the same folder carries on the numbering and search finds the old
    // entries, rolled and gzipped ones included.
    let sink = RollingFileSink::builder(&dir.0, "app").max_bytes(1_000).gzip(true).build().unwrap();
    let logs = LogAggregator::builder("svc").sink(sink).build().unwrap();
    logs.info("after restart", "svc");
    assert!(logs.flush());
    let traced = search_files(&dir.0, "app", &Query { trace_id: Some(0xfeed), ..Query::default() }).unwrap();
    assert_eq!(traced.len(), 51);
    assert_eq!(traced[0].trace.unwrap().span_id, 0xbeef);
    let errors = search_files(&dir.0, "app", &Query { min_level: Some(Level::Error), ..Query::default() }).unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error.as_deref(), Some("limit exceeded"));
    let text = search_files(&dir.0, "app", &Query { text: Some("RESTART".into()), ..Query::default() }).unwrap();
    assert_eq!(text.len(), 1);
    assert_eq!(lines_in(&dir.0), 52);
}

#[test]
fn bad_paths_and_settings_are_refused_when_building() {
    let dir = TempDir::new("bad");
    std::fs::create_dir_all(&dir.0).unwrap();
    let file = dir.0.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let error = RollingFileSink::builder(file.join("logs"), "app").build().unwrap_err();
    assert!(matches!(error, RollingError::Unwritable { .. }), "{error}");
    assert!(error.to_string().contains("a-file"), "{error}");
    assert!(matches!(RollingFileSink::builder(&dir.0, "a/b").build(), Err(RollingError::Stem(_))));
    assert!(matches!(RollingFileSink::builder(&dir.0, "app").max_bytes(0).build(), Err(RollingError::Zero(_))));
}
