//! Warm restart (feature `persist`): save the hot set to a file, load it at start.
//!
//! The file is JSON lines: a header, then one entry per line, hottest first. It is written to a
//! temporary file beside the target and renamed over it, so a crash mid-save leaves the previous file.
//! Two forms: keys with values ([`Cache::save_hot_set`], [`Cache::load_hot_set`]), for values that
//! stay valid across a restart, and keys alone ([`Cache::save_hot_keys`], [`Cache::load_hot_keys`]),
//! reloaded through a loader, for values that must be fresh.

use std::fs::File;
use std::hash::{BuildHasher, Hash};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::Cache;
use crate::warm::BoxError;

/// The first line of a hot-set file.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Header {
    infra_cache_hot_set: u32,
    values: bool,
}

const FORMAT_VERSION: u32 = 1;

/// Why a hot set could not be saved or loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PersistError {
    /// Reading or writing the file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a hot set this version can read.
    #[error("{}:{line}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// What [`Cache::load_hot_keys`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HotKeysReport {
    /// Keys loaded and inserted.
    pub loaded: usize,
    /// Keys whose loader failed (they are simply not cached).
    pub failed: usize,
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Saves up to `limit` of the hottest entries, keys and values, to `path`; returns how many.
    pub fn save_hot_set(&self, path: impl AsRef<Path>, limit: usize) -> Result<usize, PersistError>
    where
        K: Serialize,
        V: Serialize,
    {
        let entries = self.hottest(limit);
        write_lines(path.as_ref(), true, entries.iter().map(|(key, value)| serde_json::to_string(&(key, value))))
    }

    /// Inserts the entries saved by [`save_hot_set`](Self::save_hot_set), with the cache's time to
    /// live; returns how many.
    pub fn load_hot_set(&self, path: impl AsRef<Path>) -> Result<usize, PersistError>
    where
        K: DeserializeOwned,
        V: DeserializeOwned,
    {
        let entries: Vec<(K, V)> = read_lines(path.as_ref(), true)?;
        let count = entries.len();
        // Coldest first, so that the hottest are the most recent when the cache is smaller than the set.
        for (key, value) in entries.into_iter().rev() {
            self.insert(key, value);
        }
        Ok(count)
    }

    /// Saves the keys of up to `limit` of the hottest entries to `path`; returns how many.
    pub fn save_hot_keys(&self, path: impl AsRef<Path>, limit: usize) -> Result<usize, PersistError>
    where
        K: Serialize,
    {
        let entries = self.hottest(limit);
        write_lines(path.as_ref(), false, entries.iter().map(|(key, _)| serde_json::to_string(key)))
    }

    /// Loads the keys saved by [`save_hot_keys`](Self::save_hot_keys) through `loader` and inserts the
    /// values. A key whose loader fails is counted and skipped.
    pub fn load_hot_keys<E>(
        &self,
        path: impl AsRef<Path>,
        loader: impl Fn(&K) -> Result<V, E>,
    ) -> Result<HotKeysReport, PersistError>
    where
        K: DeserializeOwned,
        E: Into<BoxError>,
    {
        let keys: Vec<K> = read_lines(path.as_ref(), false)?;
        let mut report = HotKeysReport::default();
        for key in keys.into_iter().rev() {
            match loader(&key) {
                Ok(value) => {
                    self.insert(key, value);
                    report.loaded += 1;
                }
                Err(_) => report.failed += 1,
            }
        }
        Ok(report)
    }
}

fn write_lines(
    path: &Path,
    values: bool,
    lines: impl Iterator<Item = serde_json::Result<String>>,
) -> Result<usize, PersistError> {
    let io = |source| PersistError::Io { path: path.to_path_buf(), source };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut out = BufWriter::new(File::create(&temporary).map_err(io)?);
    let header = serde_json::to_string(&Header { infra_cache_hot_set: FORMAT_VERSION, values })
        .map_err(|error| io(std::io::Error::other(error)))?;
    writeln!(out, "{header}").map_err(io)?;
    let mut count = 0;
    for line in lines {
        let line = line.map_err(|error| io(std::io::Error::other(error)))?;
        writeln!(out, "{line}").map_err(io)?;
        count += 1;
    }
    out.into_inner().map_err(|error| io(error.into_error()))?.sync_all().map_err(io)?;
    std::fs::rename(&temporary, path).map_err(io)?;
    Ok(count)
}

fn read_lines<T: DeserializeOwned>(path: &Path, values: bool) -> Result<Vec<T>, PersistError> {
    let io = |source| PersistError::Io { path: path.to_path_buf(), source };
    let format = |line, reason: String| PersistError::Format { path: path.to_path_buf(), line, reason };
    let mut lines = BufReader::new(File::open(path).map_err(io)?).lines();
    let header = lines.next().ok_or_else(|| format(1, "empty file; expected a hot-set header".into()))?.map_err(io)?;
    let header: Header =
        serde_json::from_str(&header).map_err(|error| format(1, format!("not a hot-set header ({error})")))?;
    if header.infra_cache_hot_set != FORMAT_VERSION {
        return Err(format(1, format!("format version {} is not {FORMAT_VERSION}", header.infra_cache_hot_set)));
    }
    if header.values != values {
        let (found, wanted) = if header.values { ("keys and values", "keys") } else { ("keys", "keys and values") };
        return Err(format(1, format!("the file holds {found}; load it with the {wanted} loader")));
    }
    let mut items = Vec::new();
    for (index, line) in lines.enumerate() {
        let line = line.map_err(io)?;
        let item = serde_json::from_str(&line).map_err(|error| format(index + 2, error.to_string()))?;
        items.push(item);
    }
    Ok(items)
}
