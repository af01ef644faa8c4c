//! Hot reload from a JSON file in Unleash's `/client/features` format.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::LoadError;
use crate::flags::{Flags, lock};
use crate::periodic::PeriodicWorker;
use crate::snapshot::FxHasher;

/// Watches a flag file and reloads it when its content changes.
///
/// A file that does not parse (or, in strict mode, has invalid definitions) keeps the last good flag set
/// in force; the error is kept in [`FileWatcher::last_error`] and sent to [`Flags::subscribe`] listeners
/// as [`FlagsEvent::Error`](crate::FlagsEvent::Error). Dropping the watcher stops its thread.
#[derive(Debug)]
pub struct FileWatcher {
    shared: Arc<Shared>,
    worker: PeriodicWorker,
}

#[derive(Debug)]
struct Shared {
    flags: Flags,
    path: PathBuf,
    state: Mutex<WatchState>,
}

#[derive(Debug, Default)]
struct WatchState {
    /// A hash of the content last seen, loaded or not, so a bad file is reported once, not every poll.
    seen: Option<u64>,
    last_error: Option<String>,
    reloads: u64,
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = FxHasher::default();
    hasher.write(bytes);
    hasher.write_u64(bytes.len() as u64);
    hasher.finish()
}

impl Shared {
    /// Reads the file and reloads it if its content changed. Returns whether it loaded a new set.
    ///
    /// The watcher's lock is not held while loading, since loading runs the flag set's listeners.
    fn check(&self) -> Result<bool, LoadError> {
        let outcome = std::fs::read(&self.path)
            .map_err(|source| LoadError::Io { path: self.path.clone(), source })
            .and_then(|bytes| {
                let hash = content_hash(&bytes);
                if lock(&self.state).seen.replace(hash) == Some(hash) {
                    return Ok(false);
                }
                self.flags.load_json(&String::from_utf8_lossy(&bytes)).map(|_| true)
            });
        let mut state = lock(&self.state);
        let event = match &outcome {
            Ok(true) => {
                state.last_error = None;
                state.reloads += 1;
                None
            }
            Ok(false) => None,
            Err(err) => Flags::source_error(&mut state.last_error, err.to_string()),
        };
        drop(state);
        if let Some(event) = event {
            self.flags.emit(&event);
        }
        outcome
    }
}

impl FileWatcher {
    /// Loads `path` into `flags` now, then checks it every `interval` on a background thread named
    /// `infra-flags-watch`.
    ///
    /// # Errors
    ///
    /// Fails when the first load fails: there is no good set to fall back on yet.
    pub fn start(flags: &Flags, path: impl AsRef<Path>, interval: Duration) -> Result<Self, LoadError> {
        let shared = Arc::new(Shared {
            flags: flags.clone(),
            path: path.as_ref().to_owned(),
            state: Mutex::new(WatchState::default()),
        });
        shared.check()?;
        let polled = shared.clone();
        // Errors are recorded and reported by `check`; polling goes on with the last good set.
        let worker = PeriodicWorker::spawn("infra-flags-watch", interval, move || {
            let _ = polled.check();
        })
        .map_err(|source| LoadError::Io { path: path.as_ref().to_owned(), source })?;
        Ok(Self { shared, worker })
    }

    /// Checks the file now, without waiting for the next poll. Returns whether a new set was loaded.
    ///
    /// # Errors
    ///
    /// The load's error, when the file changed and does not load; the last good set stays.
    pub fn check_now(&self) -> Result<bool, LoadError> {
        self.shared.check()
    }

    /// The error of the last check, until a good file loads.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared.state).last_error.clone()
    }

    /// How many times the file has been loaded since the watcher started (the first load included).
    pub fn reloads(&self) -> u64 {
        lock(&self.shared.state).reloads
    }

    /// Stops the background thread and waits for it (dropping the watcher does the same).
    pub fn shutdown(mut self) {
        self.worker.stop();
    }
}
