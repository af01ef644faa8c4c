//! Service-level objectives over sliding windows (the seed's `set_sla_threshold`), with one breach event
//! per breach episode and a recovery event when it ends.
//!
//! An objective is about one transaction name: a latency quantile under a threshold, or an error rate
//! under a maximum, judged over the last minute or the last five minutes. [`Collector::evaluate_slas`]
//! judges them all now (the flush thread calls it every flush interval, see
//! [`crate::CollectorBuilder::flush_interval`]); subscribers ([`Collector::on_sla_event`]) hear of each
//! change of state, not of each evaluation. A window without transactions is compliant.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::collector::Collector;
use crate::error::ApmError;
use crate::window::Span;

/// What an objective asks of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Objective {
    /// The `quantile` (0..=1) of latency stays at or under `threshold`.
    Latency {
        /// The quantile, for example 0.99.
        quantile: f64,
        /// The most it may take.
        threshold: Duration,
    },
    /// The share of failed transactions stays at or under `max` (0..=1).
    ErrorRate {
        /// For example 0.01 for 1%.
        max: f64,
    },
}

/// The window an objective is judged over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum SlaWindow {
    /// The last minute (in 10-second steps).
    OneMinute,
    /// The last five minutes (in 30-second steps).
    FiveMinutes,
}

impl SlaWindow {
    pub(crate) fn span(self) -> Span {
        match self {
            SlaWindow::OneMinute => Span::MINUTE,
            SlaWindow::FiveMinutes => Span::FIVE_MINUTES,
        }
    }
}

/// An objective as registered.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sla {
    /// The objective.
    pub objective: Objective,
    /// The window it is judged over.
    pub window: SlaWindow,
}

/// Whether an evaluation started or ended a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaEventKind {
    /// The objective stopped being met.
    Breach,
    /// It is met again.
    Recovery,
}

/// A change of state of one objective, as subscribers hear it.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaEvent {
    /// The transaction name.
    pub transaction: String,
    /// The objective.
    pub sla: Sla,
    /// Breach or recovery.
    pub kind: SlaEventKind,
    /// What was observed: the latency quantile in seconds, or the error rate.
    pub observed: f64,
    /// The share of the window's transactions that met the objective, 0..=100.
    pub compliance_percent: f64,
    /// When, as time since the collector was built on its clock.
    pub at: Duration,
}

/// One objective's state after an evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SlaStatus {
    /// The transaction name.
    pub transaction: String,
    /// The objective.
    pub sla: Sla,
    /// Transactions in the window.
    pub transactions: u64,
    /// What was observed: the latency quantile in seconds, or the error rate (0 without transactions).
    pub observed: f64,
    /// The share of the window's transactions that met the objective, 0..=100 (100 without any).
    pub compliance_percent: f64,
    /// Whether the objective is breached.
    pub breached: bool,
}

/// A subscriber to SLA events.
pub(crate) type SlaSubscriber = Arc<dyn Fn(&SlaEvent) + Send + Sync>;

/// A registered objective and whether it is in a breach episode.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) transaction: String,
    pub(crate) sla: Sla,
    pub(crate) breached: bool,
}

impl Collector {
    /// Sets an objective for a transaction name (replacing one with the same name, kind and window).
    pub fn set_sla(&self, transaction: &str, objective: Objective, window: SlaWindow) -> Result<(), ApmError> {
        match objective {
            Objective::Latency { quantile, .. } if !(0.0..=1.0).contains(&quantile) => {
                return Err(ApmError::InvalidObjective(format!("quantile {quantile} is outside 0..=1")));
            }
            Objective::ErrorRate { max } if !(0.0..=1.0).contains(&max) => {
                return Err(ApmError::InvalidObjective(format!("error rate {max} is outside 0..=1 (1% is 0.01)")));
            }
            _ => {}
        }
        // Make sure the transaction's windows exist, so the first evaluation sees them.
        self.transaction(transaction)?;
        let sla = Sla { objective, window };
        let mut slas = self.slas();
        let same = |tracked: &Tracked| {
            tracked.transaction == transaction
                && tracked.sla.window == window
                && std::mem::discriminant(&tracked.sla.objective) == std::mem::discriminant(&objective)
        };
        slas.retain(|tracked| !same(tracked));
        slas.push(Tracked { transaction: transaction.to_owned(), sla, breached: false });
        Ok(())
    }

    /// The seed's `set_sla_threshold`: the 95th percentile of `transaction` at or under `threshold`,
    /// over the last five minutes.
    pub fn set_sla_threshold(&self, transaction: &str, threshold: Duration) -> Result<(), ApmError> {
        self.set_sla(transaction, Objective::Latency { quantile: 0.95, threshold }, SlaWindow::FiveMinutes)
    }

    /// Calls `subscriber` with every breach and recovery (a panic in it is caught and ignored).
    pub fn on_sla_event(&self, subscriber: impl Fn(&SlaEvent) + Send + Sync + 'static) {
        self.sla_subscribers().push(Arc::new(subscriber));
    }

    /// Judges every objective now; returns each one's state and tells subscribers of changes.
    pub fn evaluate_slas(&self) -> Vec<SlaStatus> {
        let at = self.elapsed();
        let mut statuses = Vec::new();
        let mut events = Vec::new();
        {
            let mut slas = self.slas();
            for tracked in slas.iter_mut() {
                let Some(windows) = self.transaction_windows(&tracked.transaction) else { continue };
                let (all, errors) = windows.views(tracked.sla.window, at);
                let (observed, compliance_percent) = match tracked.sla.objective {
                    Objective::Latency { quantile, threshold } => {
                        let threshold = threshold.as_secs_f64();
                        let within = all.count_at_or_below(threshold) as f64;
                        let share = if all.count == 0 { 100.0 } else { 100.0 * within / all.count as f64 };
                        (all.quantile(quantile), share)
                    }
                    Objective::ErrorRate { .. } => {
                        let rate = if all.count == 0 { 0.0 } else { errors.count as f64 / all.count as f64 };
                        (rate, 100.0 * (1.0 - rate))
                    }
                };
                let breached = all.count > 0
                    && match tracked.sla.objective {
                        Objective::Latency { threshold, .. } => observed > threshold.as_secs_f64(),
                        Objective::ErrorRate { max } => observed > max,
                    };
                if breached != tracked.breached {
                    tracked.breached = breached;
                    events.push(SlaEvent {
                        transaction: tracked.transaction.clone(),
                        sla: tracked.sla,
                        kind: if breached { SlaEventKind::Breach } else { SlaEventKind::Recovery },
                        observed,
                        compliance_percent,
                        at,
                    });
                }
                statuses.push(SlaStatus {
                    transaction: tracked.transaction.clone(),
                    sla: tracked.sla,
                    transactions: all.count,
                    observed,
                    compliance_percent,
                    breached,
                });
            }
        }
        // Subscribers run without the collector's locks held: they may use the collector.
        let subscribers: Vec<SlaSubscriber> = self.sla_subscribers().clone();
        for event in &events {
            for subscriber in &subscribers {
                let _ = catch_unwind(AssertUnwindSafe(|| subscriber(event)));
            }
        }
        statuses
    }
}
