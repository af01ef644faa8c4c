//! Rolling JSON-lines files: rotation by size and by time, retention by count, total size and age,
//! optional gzip of rolled files, a chosen fsync policy; and search over the files, rolled ones
//! included, so search survives a restart.
//!
//! The active file is `{stem}.jsonl`; a rolled one is `{stem}.{sequence}.{start}.jsonl` (`.gz` when
//! compressed), where `start` is the UTC time of its first entry (`20261201T091500Z`). Time-based
//! rotation and retention by age follow the entries' own timestamps, which come from the
//! aggregator's clock, so tests drive them with a mock clock instead of sleeping.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::context::TraceContext;
use crate::entry::{LogEntry, TimestampCache, rfc3339};
use crate::field::{Field, FieldValue};
use crate::level::Level;
use crate::sink::{Query, Sink};

/// When rolled data reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fsync {
    /// Leave it to the operating system.
    #[default]
    Never,
    /// After every batch (durable, slower).
    EveryBatch,
    /// When a file is rolled.
    OnRotate,
}

/// A rolling-file configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollingError {
    /// The directory cannot be created or written.
    #[error("log directory {path} is not writable: {source}")]
    Unwritable {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The file stem is empty or has a path separator.
    #[error("log file stem {0:?} is invalid: give a plain name such as \"orders\" (no '/' or '.')")]
    Stem(String),
    /// A limit of zero.
    #[error("rolling-file setting {0} must be at least 1")]
    Zero(&'static str),
}

/// Configures a [`RollingFileSink`].
#[must_use = "a builder does nothing until build() is called"]
#[derive(Debug, Clone)]
pub struct RollingFileBuilder {
    dir: PathBuf,
    stem: String,
    max_bytes: Option<u64>,
    every: Option<Duration>,
    max_files: Option<usize>,
    max_total_bytes: Option<u64>,
    max_age: Option<Duration>,
    gzip: bool,
    fsync: Fsync,
}

/// Writes JSON lines to a file in a directory, rolling it by size and time and keeping the rolled
/// files within the retention limits.
#[derive(Debug)]
pub struct RollingFileSink {
    config: RollingFileBuilder,
    writer: Option<BufWriter<File>>,
    size: u64,
    /// The time window (`every`) of the active file, and the time of its first entry.
    window: Option<u64>,
    first_entry: Option<u64>,
    next_sequence: u64,
    buffer: Vec<u8>,
    timestamps: TimestampCache,
}

impl RollingFileSink {
    /// A sink writing `{stem}.jsonl` in `dir`.
    pub fn builder(dir: impl Into<PathBuf>, stem: impl Into<String>) -> RollingFileBuilder {
        RollingFileBuilder {
            dir: dir.into(),
            stem: stem.into(),
            max_bytes: None,
            every: None,
            max_files: None,
            max_total_bytes: None,
            max_age: None,
            gzip: false,
            fsync: Fsync::Never,
        }
    }

    fn active_path(&self) -> PathBuf {
        self.config.dir.join(format!("{}.jsonl", self.config.stem))
    }

    fn open(&mut self) -> io::Result<()> {
        let file = OpenOptions::new().create(true).append(true).open(self.active_path())?;
        self.size = file.metadata()?.len();
        self.writer = Some(BufWriter::with_capacity(1 << 16, file));
        Ok(())
    }

    /// Closes the active file and renames it to its rolled name, compressing it if asked, then
    /// applies retention.
    fn roll(&mut self, now_unix_nanos: u64) -> io::Result<()> {
        if let Some(mut writer) = self.writer.take() {
            writer.flush()?;
            if self.config.fsync != Fsync::Never {
                writer.get_ref().sync_all()?;
            }
        }
        let active = self.active_path();
        if fs::metadata(&active).map(|m| m.len()).unwrap_or(0) > 0 {
            let start = compact_time(self.first_entry.unwrap_or(now_unix_nanos));
            let rolled = self.config.dir.join(format!("{}.{:06}.{start}.jsonl", self.config.stem, self.next_sequence));
            self.next_sequence += 1;
            fs::rename(&active, &rolled)?;
            if self.config.gzip {
                let mut gz = rolled.clone().into_os_string();
                gz.push(".gz");
                let mut encoder =
                    flate2::write::GzEncoder::new(BufWriter::new(File::create(&gz)?), flate2::Compression::fast());
                io::copy(&mut File::open(&rolled)?, &mut encoder)?;
                let mut out = encoder.finish()?;
                out.flush()?;
                if self.config.fsync != Fsync::Never {
                    out.get_ref().sync_all()?;
                }
                fs::remove_file(&rolled)?;
            }
        }
        self.first_entry = None;
        self.retain(now_unix_nanos)?;
        self.open()
    }

    /// Deletes the oldest rolled files beyond the count, total size and age limits.
    fn retain(&self, now_unix_nanos: u64) -> io::Result<()> {
        let mut rolled = rolled_files(&self.config.dir, &self.config.stem)?;
        // Newest first: keep from the front, delete from the back.
        rolled.sort_by_key(|f| std::cmp::Reverse(f.sequence));
        let mut total = 0u64;
        for (kept, file) in rolled.iter().enumerate() {
            total += file.bytes;
            let too_many = self.config.max_files.is_some_and(|max| kept >= max);
            let too_big = self.config.max_total_bytes.is_some_and(|max| total > max);
            let too_old = self.config.max_age.is_some_and(|age| {
                file.start_unix_nanos.is_some_and(|start| now_unix_nanos.saturating_sub(start) > age.as_nanos() as u64)
            });
            if too_many || too_big || too_old {
                fs::remove_file(&file.path)?;
            }
        }
        Ok(())
    }
}

impl RollingFileBuilder {
    /// Roll when the active file would exceed this many bytes.
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// Roll at every multiple of this period (of the entries' UTC time): hourly, daily, ...
    pub fn every(mut self, period: Duration) -> Self {
        self.every = Some(period);
        self
    }

    /// Keep at most this many rolled files.
    pub fn max_files(mut self, files: usize) -> Self {
        self.max_files = Some(files);
        self
    }

    /// Keep rolled files totalling at most this many bytes.
    pub fn max_total_bytes(mut self, bytes: u64) -> Self {
        self.max_total_bytes = Some(bytes);
        self
    }

    /// Delete rolled files whose first entry is older than this.
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Gzip rolled files.
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// When to fsync (default: never, leave it to the operating system).
    pub fn fsync(mut self, fsync: Fsync) -> Self {
        self.fsync = fsync;
        self
    }

    /// Creates the directory if needed and opens the active file.
    ///
    /// # Errors
    /// A directory that cannot be created or written, an invalid stem, or a zero limit.
    pub fn build(self) -> Result<RollingFileSink, RollingError> {
        if self.stem.is_empty() || self.stem.contains(['/', '\\', '.']) {
            return Err(RollingError::Stem(self.stem));
        }
        for (value, name) in [
            (self.max_bytes.map(|v| v as usize), "max_bytes"),
            (self.max_files, "max_files"),
            (self.max_total_bytes.map(|v| v as usize), "max_total_bytes"),
            (self.every.map(|d| d.as_nanos() as usize), "every"),
        ] {
            if value == Some(0) {
                return Err(RollingError::Zero(name));
            }
        }
        let unwritable = |source| RollingError::Unwritable { path: self.dir.clone(), source };
        fs::create_dir_all(&self.dir).map_err(unwritable)?;
        let next_sequence =
            rolled_files(&self.dir, &self.stem).map_err(unwritable)?.iter().map(|f| f.sequence + 1).max().unwrap_or(0);
        let mut sink = RollingFileSink {
            config: self,
            writer: None,
            size: 0,
            window: None,
            first_entry: None,
            next_sequence,
            buffer: Vec::new(),
            timestamps: TimestampCache::default(),
        };
        sink.open().map_err(|source| RollingError::Unwritable { path: sink.config.dir.clone(), source })?;
        Ok(sink)
    }
}

impl Sink for RollingFileSink {
    fn write_batch(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        if self.writer.is_none() {
            self.open()?;
        }
        for entry in entries {
            self.buffer.clear();
            entry.write_json(&mut self.buffer, &mut self.timestamps);
            self.buffer.push(b'\n');
            let window = self.config.every.map(|period| entry.time_unix_nanos / period.as_nanos().max(1) as u64);
            let new_window = window.is_some() && self.window.is_some() && window != self.window;
            let too_big =
                self.config.max_bytes.is_some_and(|max| self.size > 0 && self.size + self.buffer.len() as u64 > max);
            if new_window || too_big {
                self.roll(entry.time_unix_nanos)?;
            }
            self.window = window.or(self.window);
            self.first_entry.get_or_insert(entry.time_unix_nanos);
            let writer = self.writer.as_mut().ok_or_else(|| io::Error::other("the active log file is not open"))?;
            writer.write_all(&self.buffer)?;
            self.size += self.buffer.len() as u64;
        }
        if let Some(writer) = &mut self.writer {
            writer.flush()?;
            if self.config.fsync == Fsync::EveryBatch {
                writer.get_ref().sync_data()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(writer) => writer.flush(),
            None => Ok(()),
        }
    }

    fn name(&self) -> String {
        format!("rolling-file:{}", self.active_path().display())
    }
}

struct RolledFile {
    path: PathBuf,
    sequence: u64,
    start_unix_nanos: Option<u64>,
    bytes: u64,
}

fn rolled_files(dir: &Path, stem: &str) -> io::Result<Vec<RolledFile>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(stem).and_then(|r| r.strip_prefix('.')) else { continue };
        let rest = rest.strip_suffix(".gz").unwrap_or(rest);
        let Some(rest) = rest.strip_suffix(".jsonl") else { continue };
        let Some((sequence, start)) = rest.split_once('.') else { continue };
        let Ok(sequence) = sequence.parse() else { continue };
        files.push(RolledFile {
            path: entry.path(),
            sequence,
            start_unix_nanos: parse_compact_time(start),
            bytes: entry.metadata()?.len(),
        });
    }
    Ok(files)
}

/// `20261201T091500Z` for a timestamp: file-name safe, sortable.
fn compact_time(unix_nanos: u64) -> String {
    let full = rfc3339(unix_nanos);
    format!("{}{}{}T{}{}{}Z", &full[0..4], &full[5..7], &full[8..10], &full[11..13], &full[14..16], &full[17..19])
}

fn parse_compact_time(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(11..13)?, num(13..15)?);
    // Days since the epoch for a civil date (the inverse of `rfc3339`'s conversion).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(seconds).ok().map(|s| s * 1_000_000_000)
}

/// Searches the JSON-lines files a [`RollingFileSink`] wrote in `dir` for `stem`, rolled (and
/// gzipped) ones included, oldest first; so search survives a restart. Lines that are not entries
/// written by this crate are skipped.
///
/// # Errors
/// The directory or a file cannot be read.
pub fn search_files(dir: &Path, stem: &str, query: &Query) -> io::Result<Vec<LogEntry>> {
    let mut rolled = rolled_files(dir, stem)?;
    rolled.sort_by_key(|f| f.sequence);
    let mut paths: Vec<PathBuf> = rolled.into_iter().map(|f| f.path).collect();
    let active = dir.join(format!("{stem}.jsonl"));
    if active.exists() {
        paths.push(active);
    }
    let text = query.text.as_ref().map(|t| t.to_lowercase());
    let mut found = Vec::new();
    for path in paths {
        let file = File::open(&path)?;
        let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
            Box::new(flate2::read::GzDecoder::new(file))
        } else {
            Box::new(file)
        };
        for line in BufReader::new(reader).lines() {
            let Some(entry) = parse_line(&line?) else { continue };
            if query.matches(&entry, text.as_deref()) {
                found.push(entry);
            }
        }
    }
    if query.limit > 0 && found.len() > query.limit {
        found.drain(..found.len() - query.limit);
    }
    Ok(found)
}

/// An entry back from the JSON this crate writes.
fn parse_line(line: &str) -> Option<LogEntry> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let text = |key: &str| value.get(key).and_then(|v| v.as_str());
    let time_unix_nanos = parse_rfc3339(text("timestamp")?)?;
    let level: Level = text("level")?.parse().ok()?;
    let fields = value
        .get("fields")
        .and_then(|f| f.as_object())
        .map(|fields| {
            fields
                .iter()
                .map(|(key, v)| {
                    let value = match v {
                        serde_json::Value::Bool(b) => FieldValue::Bool(*b),
                        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                            (Some(u), _, _) => FieldValue::U64(u),
                            (None, Some(i), _) => FieldValue::I64(i),
                            (_, _, Some(f)) => FieldValue::F64(f),
                            _ => FieldValue::Str(Cow::Owned(n.to_string())),
                        },
                        serde_json::Value::String(s) => FieldValue::Str(Cow::Owned(s.clone())),
                        other => FieldValue::Str(Cow::Owned(other.to_string())),
                    };
                    Field { key: Cow::Owned(key.clone()), value }
                })
                .collect()
        })
        .unwrap_or_default();
    let trace = text("trace_id").and_then(|id| {
        let trace_id = u128::from_str_radix(id, 16).ok()?;
        let span_id = text("span_id").and_then(|s| u64::from_str_radix(s, 16).ok()).unwrap_or(0);
        let flags = text("trace_flags").and_then(|f| u8::from_str_radix(f, 16).ok()).unwrap_or(0);
        Some(TraceContext::new(trace_id, span_id, flags))
    });
    Some(LogEntry {
        time_unix_nanos,
        level,
        service: Arc::from(text("service.name").unwrap_or_default()),
        component: Cow::Owned(text("component").unwrap_or_default().to_owned()),
        message: Cow::Owned(text("message").unwrap_or_default().to_owned()),
        fields,
        error: text("error").map(str::to_owned),
        trace,
    })
}

/// Nanoseconds since the epoch from the RFC 3339 form this crate writes.
fn parse_rfc3339(text: &str) -> Option<u64> {
    // 2026-12-01T09:15:00.123456789Z
    if text.len() != 30 {
        return None;
    }
    let compact =
        format!("{}{}{}T{}{}{}Z", &text[0..4], &text[5..7], &text[8..10], &text[11..13], &text[14..16], &text[17..19]);
    let nanos: u64 = text[20..29].parse().ok()?;
    Some(parse_compact_time(&compact)? + nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_times_round_trip() {
        for nanos in [0u64, 951_782_400_000_000_000, 1_796_122_800_000_000_000, 4_102_444_799_000_000_000] {
            assert_eq!(parse_compact_time(&compact_time(nanos)), Some(nanos));
            assert_eq!(parse_rfc3339(&rfc3339(nanos + 123)), Some(nanos + 123));
        }
    }
}
