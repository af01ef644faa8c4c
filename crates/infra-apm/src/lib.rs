//! Metrics for latency-sensitive services: counters, gauges and histograms with labels, updated at the
//! price of an atomic add or less, exposed the way Prometheus expects.
//!
//! Ask the [`Collector`] for a series once and keep the handle: [`Counter::inc`] is a plain load and
//! store on a cell the calling thread owns alone, [`Histogram::record`] one atomic add (quantiles within
//! [`RELATIVE_ERROR`], 0.78%, of the true value). The seed's by-name calls
//! ([`Collector::increment_counter`], [`Collector::set_gauge`], [`Collector::record_histogram`]) look the
//! series up each time. [`Collector::render_prometheus`] writes the text exposition format.
//!
//! ```
//! use infra_apm::Collector;
//!
//! let collector = Collector::builder("order-gateway").build();
//! let orders = collector.counter("orders", "Orders accepted.", &[("venue", "XLON")])?;
//! let latency = collector.histogram("order_latency_seconds", "Order round trip.", &[])?;
//! orders.inc();
//! latency.record(0.000_250);
//! collector.set_gauge("open_orders", 12.0, &[("venue", "XLON")])?;
//!
//! let text = collector.render_prometheus();
//! assert!(text.contains("orders_total{venue=\"XLON\"} 1"));
//! assert!((latency.snapshot().quantile(0.5) - 0.000_250).abs() <= 0.000_250 * infra_apm::RELATIVE_ERROR);
//! # Ok::<(), infra_apm::ApmError>(())
//! ```
//!
//! Transactions ([`Collector::start_transaction`], [`Collector::time`], [`Collector::time_result`],
//! [`Collector::time_future`]) time units of work on the collector's clock and count their outcomes;
//! [`Collector::transaction_stats`] summarises them.
//!
//! [`Collector::render`] writes OpenMetrics 1.0 or Prometheus 0.0.4 ([`Format::from_accept`] picks
//! the one a scraper asks for); with the `http` feature, `Collector::serve` answers `/metrics`.
//!
//! ## Feature flags
//!
//! - `http`: `Collector::serve`, a small `/metrics` listener on a thread of its own (no async runtime).
//! - `metrics`: `ApmRecorder`, a `metrics::Recorder`, so code instrumented with the `metrics` crate's
//!   macros reports into the collector.
//!
//! Each transaction name keeps its last one and five minutes; SLA objectives over them
//! ([`Collector::set_sla`]) send one [`SlaEvent`] when a breach starts and one when it ends
//! ([`Collector::on_sla_event`]).
//!
//! [`Collector::sample_process`] keeps CPU, memory, threads and descriptors in gauges;
//! [`Collector::dashboard`] is a serde-serializable snapshot of everything, and
//! [`Collector::history`] a bounded ring of past ones.
//!
//! [`Collector::windowed_histogram`] adds 1- and 5-minute windows to any histogram. The guide is
//! `docs/apm.md`.

mod collector;
mod dashboard;
mod error;
mod exposition;
mod histogram;
#[cfg(feature = "http")]
mod http;
mod instruments;
mod name;
mod process;
#[cfg(feature = "metrics")]
mod recorder;
mod sla;
mod transaction;
mod window;
mod windowed;

pub use collector::{Collector, CollectorBuilder, DEFAULT_BUCKETS, DEFAULT_CARDINALITY_LIMIT};
pub use dashboard::{DEFAULT_HISTORY, Dashboard, SeriesValue, SlaSummary};
pub use error::ApmError;
pub use exposition::Format;
pub use histogram::{Bucket, HistogramSnapshot, HistogramStats, RELATIVE_ERROR};
#[cfg(feature = "http")]
pub use http::{MetricsServer, ServeError};
pub use instruments::{Counter, Gauge, Histogram};
pub use process::ProcessSample;
#[cfg(feature = "metrics")]
pub use recorder::ApmRecorder;
pub use sla::{Objective, Sla, SlaEvent, SlaEventKind, SlaStatus, SlaWindow};
pub use transaction::{Transaction, TransactionStats, TransactionTimer};
pub use windowed::{WindowView, WindowedHistogram};
