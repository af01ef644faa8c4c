//! Transactions (the seed's `start_transaction`, `record_transaction_time`, `apm_timed`): timing a unit
//! of work and counting its outcome.
//!
//! Every transaction name gets two metrics: `transaction_duration_seconds{transaction=..}` (a histogram)
//! and `transactions_total{transaction=..,outcome="ok"|"error"}` (counters). Time comes from the
//! collector's clock, so tests drive it with `quanta::Clock::mock()`. Three ways in: a guard
//! ([`Collector::start_transaction`]) that records when dropped (an error if dropped while panicking or
//! after [`TransactionTimer::fail`]), closure wrappers ([`Collector::time`], [`Collector::time_result`]),
//! and a future wrapper ([`Collector::time_future`]).

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use crate::collector::Collector;
use crate::error::ApmError;
use crate::histogram::HistogramStats;
use crate::instruments::{Counter, Histogram};
use crate::sla::SlaWindow;
use crate::window::TransactionWindows;

pub(crate) const DURATION: &str = "transaction_duration_seconds";
const OUTCOMES: &str = "transactions_total";

/// The instruments of one transaction name.
#[derive(Debug, Clone)]
struct Instruments {
    duration: Histogram,
    ok: Counter,
    errors: Counter,
    windows: Arc<TransactionWindows>,
    epoch: quanta::Instant,
}

impl Instruments {
    fn record(&self, took: Duration, ok: bool, now: quanta::Instant) {
        self.duration.record_duration(took);
        if ok {
            self.ok.inc()
        } else {
            self.errors.inc()
        }
        self.windows.record(now.duration_since(self.epoch), took.as_secs_f64(), ok);
    }
}

/// Times one transaction; records its duration and outcome when dropped or [`finish`](Self::finish)ed.
#[derive(Debug)]
#[must_use = "the transaction is timed until this guard is dropped"]
pub struct TransactionTimer {
    instruments: Instruments,
    clock: quanta::Clock,
    started: quanta::Instant,
    failed: bool,
    recorded: bool,
}

impl TransactionTimer {
    /// Marks the transaction as failed (it is recorded as an error).
    pub fn fail(&mut self) {
        self.failed = true;
    }

    /// Ends the transaction now, with the outcome so far; returns its duration.
    pub fn finish(mut self) -> Duration {
        self.record()
    }

    fn record(&mut self) -> Duration {
        let now = self.clock.now();
        let took = now.duration_since(self.started);
        if !self.recorded {
            self.recorded = true;
            self.instruments.record(took, !self.failed && !std::thread::panicking(), now);
        }
        took
    }
}

impl Drop for TransactionTimer {
    fn drop(&mut self) {
        self.record();
    }
}

/// A transaction name's instruments, looked up once: starting a timer from it costs a clock read, where
/// [`Collector::start_transaction`] also looks the series up.
#[derive(Debug, Clone)]
pub struct Transaction {
    instruments: Instruments,
    clock: quanta::Clock,
}

impl Transaction {
    /// Starts timing one transaction.
    pub fn start(&self) -> TransactionTimer {
        TransactionTimer {
            instruments: self.instruments.clone(),
            clock: self.clock.clone(),
            started: self.clock.now(),
            failed: false,
            recorded: false,
        }
    }

    /// Records a transaction timed elsewhere, ending now.
    pub fn record(&self, took: Duration, ok: bool) {
        self.instruments.record(took, ok, self.clock.now());
    }
}

/// The seed's `get_transaction_stats` for one transaction name: totals since start, and the last one
/// and five minutes.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct TransactionStats {
    /// Transactions finished.
    pub count: u64,
    /// Of which failed.
    pub errors: u64,
    /// Errors over count, 0..=1 (0 before the first).
    pub error_rate: f64,
    /// Their durations, in seconds, since start.
    pub latency: HistogramStats,
    /// Transactions per second over the last minute (over the time since start, if shorter).
    pub rate_1m: f64,
    /// Transactions per second over the last five minutes (likewise).
    pub rate_5m: f64,
    /// Errors over count in the last minute.
    pub error_rate_1m: f64,
    /// Durations over the last minute.
    pub latency_1m: HistogramStats,
    /// Durations over the last five minutes.
    pub latency_5m: HistogramStats,
}

impl Collector {
    fn transaction_instruments(&self, name: &str) -> Result<Instruments, ApmError> {
        let labels = |outcome| [("transaction", name), ("outcome", outcome)];
        Ok(Instruments {
            duration: self.histogram(DURATION, "How long transactions took.", &[("transaction", name)])?,
            ok: self.counter(OUTCOMES, "Transactions finished, by outcome.", &labels("ok"))?,
            errors: self.counter(OUTCOMES, "Transactions finished, by outcome.", &labels("error"))?,
            windows: self.windows_for(name),
            epoch: self.inner.epoch,
        })
    }

    /// The handle of a transaction name, for hot paths: see [`Transaction`].
    pub fn transaction(&self, name: &str) -> Result<Transaction, ApmError> {
        Ok(Transaction { instruments: self.transaction_instruments(name)?, clock: self.clock().clone() })
    }

    /// Starts timing a transaction (the seed's `start_transaction`).
    pub fn start_transaction(&self, name: &str) -> Result<TransactionTimer, ApmError> {
        Ok(self.transaction(name)?.start())
    }

    /// Records a transaction timed elsewhere (the seed's `record_transaction_time`).
    pub fn record_transaction(&self, name: &str, took: Duration, ok: bool) -> Result<(), ApmError> {
        self.transaction_instruments(name)?.record(took, ok, self.clock().now());
        Ok(())
    }

    /// Runs `work` as a transaction (the seed's `apm_timed`); a panic counts as an error.
    pub fn time<T>(&self, name: &str, work: impl FnOnce() -> T) -> Result<T, ApmError> {
        let timer = self.start_transaction(name)?;
        let value = work();
        drop(timer);
        Ok(value)
    }

    /// Runs the fallible `work` as a transaction: `Err` counts as an error. The outer `Result` is the
    /// collector's (a bad name), the inner one `work`'s.
    pub fn time_result<T, E>(&self, name: &str, work: impl FnOnce() -> Result<T, E>) -> Result<Result<T, E>, ApmError> {
        let mut timer = self.start_transaction(name)?;
        let outcome = work();
        if outcome.is_err() {
            timer.fail();
        }
        drop(timer);
        Ok(outcome)
    }

    /// Awaits `work` as a transaction, from the first poll to completion. If the future is dropped
    /// before it completes, the transaction is recorded as an error.
    pub async fn time_future<F: Future>(&self, name: &str, work: F) -> Result<F::Output, ApmError> {
        let mut timer = self.start_transaction(name)?;
        // Marked failed until the work completes: a dropped future records an error.
        timer.fail();
        let output = work.await;
        timer.failed = false;
        drop(timer);
        Ok(output)
    }

    /// Count, errors, error rate and latency statistics of one transaction name; `None` if it never ran.
    pub fn transaction_stats(&self, name: &str) -> Option<TransactionStats> {
        let instruments = self.existing_transaction(name)?;
        let (ok, errors) = (instruments.ok.value(), instruments.errors.value());
        let count = ok + errors;
        let elapsed = self.elapsed();
        let (minute, minute_errors) = instruments.windows.views(SlaWindow::OneMinute, elapsed);
        let (five, _) = instruments.windows.views(SlaWindow::FiveMinutes, elapsed);
        let per_second = |count: u64, span: Duration| {
            let seconds = span.min(elapsed).as_secs_f64();
            if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
        };
        Some(TransactionStats {
            count,
            errors,
            error_rate: if count == 0 { 0.0 } else { errors as f64 / count as f64 },
            latency: instruments.duration.snapshot().stats(),
            rate_1m: per_second(minute.count, SlaWindow::OneMinute.span().length()),
            rate_5m: per_second(five.count, SlaWindow::FiveMinutes.span().length()),
            error_rate_1m: if minute.count == 0 { 0.0 } else { minute_errors.count as f64 / minute.count as f64 },
            latency_1m: minute.stats(),
            latency_5m: five.stats(),
        })
    }

    fn existing_transaction(&self, name: &str) -> Option<Instruments> {
        let registered = self.families().get(DURATION).is_some_and(|family| {
            family.series.keys().any(|labels| labels.iter().any(|(k, v)| k == "transaction" && v == name))
        });
        if registered { self.transaction_instruments(name).ok() } else { None }
    }
}
