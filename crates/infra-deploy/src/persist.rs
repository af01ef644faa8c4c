//! A rollout's state on disk, so that a controller that restarts resumes or safely aborts it.
//!
//! One JSON document per rollout, replaced atomically (written beside, synced, renamed over) at every
//! transition, and every few seconds of progress within a step. Times are kept relative to the moment of
//! writing (time spent in the current step, time to the next measurement), so they carry over to the next
//! controller's clock.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::DeployError;
use crate::rollout::{Phase, RolloutEvent};

/// Where a rollout's state is kept: a file, replaced whole when the rollout moves on.
#[derive(Debug, Clone)]
pub struct RolloutStore {
    path: PathBuf,
}

/// The state written: what a resumed rollout needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Saved {
    pub(crate) fingerprint: String,
    pub(crate) phase: Phase,
    pub(crate) in_step: Duration,
    pub(crate) measured: u32,
    pub(crate) failed: u32,
    pub(crate) next_measure_in: Duration,
    pub(crate) held: bool,
    pub(crate) version: u64,
    pub(crate) weight: f64,
    pub(crate) events: Vec<RolloutEvent>,
}

/// The most events a saved state keeps (the newest).
const KEPT_EVENTS: usize = 200;

impl RolloutStore {
    /// State kept in `path` (its folder must exist).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RolloutStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, what: &str, reason: impl std::fmt::Display) -> DeployError {
        DeployError::Persist(format!("{what} {}: {reason}", self.path.display()))
    }

    pub(crate) fn save(&self, saved: &Saved) -> Result<(), DeployError> {
        let events: Vec<Value> = saved
            .events
            .iter()
            .rev()
            .take(KEPT_EVENTS)
            .rev()
            .map(|event| json!({ "at_ms": event.at.as_millis() as u64, "what": event.what }))
            .collect();
        let document = json!({
            "format": 1,
            "fingerprint": saved.fingerprint,
            "phase": saved.phase,
            "in_step_ms": saved.in_step.as_millis() as u64,
            "measured": saved.measured,
            "failed": saved.failed,
            "next_measure_in_ms": saved.next_measure_in.as_millis() as u64,
            "held": saved.held,
            "version": saved.version,
            "weight": saved.weight,
            "events": events,
        });
        let staging = self.path.with_extension("tmp");
        let written = (|| {
            let mut file = std::fs::File::create(&staging)?;
            file.write_all(document.to_string().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&staging, &self.path)
        })();
        written.map_err(|err| self.error("cannot write", err))
    }

    /// `None` when nothing was saved yet.
    pub(crate) fn load(&self) -> Result<Option<Saved>, DeployError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(self.error("cannot read", err)),
        };
        let bad = |what: &str| self.error("unreadable rollout state in", what);
        let document: Value = serde_json::from_str(&text).map_err(|err| bad(&err.to_string()))?;
        if document["format"] != 1 {
            return Err(bad("unknown format (expected 1)"));
        }
        let number = |key: &str| document[key].as_u64().ok_or_else(|| bad(&format!("no number {key}")));
        let events = document["events"]
            .as_array()
            .ok_or_else(|| bad("no events"))?
            .iter()
            .map(|event| {
                let at = Duration::from_millis(event["at_ms"].as_u64().unwrap_or(0));
                RolloutEvent { at, what: event["what"].as_str().unwrap_or_default().to_owned() }
            })
            .collect();
        Ok(Some(Saved {
            fingerprint: document["fingerprint"].as_str().ok_or_else(|| bad("no fingerprint"))?.to_owned(),
            phase: Phase::deserialize(&document["phase"]).map_err(|err| bad(&format!("phase: {err}")))?,
            in_step: Duration::from_millis(number("in_step_ms")?),
            measured: u32::try_from(number("measured")?).map_err(|_| bad("measured out of range"))?,
            failed: u32::try_from(number("failed")?).map_err(|_| bad("failed out of range"))?,
            next_measure_in: Duration::from_millis(number("next_measure_in_ms")?),
            held: document["held"].as_bool().ok_or_else(|| bad("no held"))?,
            version: number("version")?,
            weight: document["weight"]
                .as_f64()
                .filter(|w| (0.0..=100.0).contains(w))
                .ok_or_else(|| bad("no weight"))?,
            events,
        }))
    }
}
