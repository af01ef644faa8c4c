//! [`Collector`]: the registry of metric families and their series, and the seed's by-name API.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use hashbrown::HashTable;

use quanta::Clock;

use crate::dashboard::{DEFAULT_HISTORY, History};
use crate::error::ApmError;
use crate::exposition::{self, Format};
use crate::histogram::HistogramCell;
use crate::instruments::{Counter, CounterCell, Gauge, GaugeCell, Histogram};
use crate::name::{check_label, check_metric};
use crate::process::CpuMark;
use crate::sla::{SlaSubscriber, Tracked};
use crate::window::{HistogramWindows, TransactionWindows};

/// Label combinations a metric may have before further ones go to its overflow series.
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2_000;

/// Prometheus's default histogram boundaries, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The kinds of instrument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series' storage.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    Counter(Arc<CounterCell>),
    Gauge(Arc<GaugeCell>),
    Histogram(Arc<HistogramCell>),
}

impl Cell {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Cell::Counter(Arc::default()),
            Kind::Gauge => Cell::Gauge(Arc::default()),
            Kind::Histogram => Cell::Histogram(Arc::default()),
        }
    }
}

/// Label pairs, sorted by name.
pub(crate) type Labels = Vec<(String, String)>;

/// A metric: its kind, help, and series by label set.
#[derive(Debug)]
pub(crate) struct Family {
    pub(crate) kind: Kind,
    pub(crate) help: String,
    pub(crate) series: BTreeMap<Labels, Cell>,
    /// Where series beyond the cardinality limit are counted, exposed with `overflow="true"`.
    pub(crate) overflow: Option<Cell>,
    /// Label sets turned away by the cardinality limit (each time one was asked for).
    pub(crate) rejected_label_sets: u64,
    /// The unit, exposed as OpenMetrics `# UNIT` (the name ends with `_<unit>`).
    pub(crate) unit: Option<String>,
}

pub(crate) struct Inner {
    pub(crate) service: String,
    pub(crate) clock: Clock,
    pub(crate) cardinality_limit: usize,
    pub(crate) buckets: Vec<f64>,
    pub(crate) families: Mutex<BTreeMap<String, Family>>,
    /// The by-name fast path: series by name and labels exactly as callers spelled them (label order
    /// included), so that a lookup hashes and compares borrowed strings and allocates nothing.
    aliases: RwLock<HashTable<Alias>>,
    alias_hasher: foldhash::fast::RandomState,
    /// When the collector was built, on its clock: windows and events count from here.
    pub(crate) epoch: quanta::Instant,
    pub(crate) windows: Mutex<std::collections::HashMap<String, Arc<TransactionWindows>>>,
    pub(crate) slas: Mutex<Vec<Tracked>>,
    pub(crate) sla_subscribers: Mutex<Vec<SlaSubscriber>>,
    /// Wakes the flush thread when the collector goes.
    flusher: Mutex<Option<std::thread::Thread>>,
    /// The previous CPU reading, for the CPU percentage.
    pub(crate) cpu_mark: Mutex<Option<CpuMark>>,
    pub(crate) history: Mutex<History>,
    pub(crate) history_capacity: usize,
    /// Help texts given before their metric was registered.
    descriptions: Mutex<std::collections::HashMap<String, String>>,
    /// Units given before their metric was registered.
    units: Mutex<std::collections::HashMap<String, String>>,
    /// Windows of the histograms asked for with them, by name and sorted labels.
    pub(crate) histogram_windows: Mutex<std::collections::HashMap<(String, Labels), Arc<HistogramWindows>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(thread) = lock(&self.flusher).take() {
            thread.unpark();
        }
    }
}

/// Locks a mutex, going on past poisoning: every change under these locks is a single insertion or
/// assignment, so a panic elsewhere leaves the state consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One spelling of a series' name and labels, pointing at its storage.
struct Alias {
    hash: u64,
    name: Box<str>,
    labels: Box<[(Box<str>, Box<str>)]>,
    cell: Cell,
}

impl Alias {
    fn matches(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        &*self.name == name
            && self.labels.len() == labels.len()
            && self.labels.iter().zip(labels).all(|((k, v), (k2, v2))| &**k == *k2 && &**v == *v2)
    }
}

/// Collects metrics: counters, gauges and histograms with labels, and renders them for Prometheus.
///
/// Cheap to clone (an `Arc`). Ask for a series once ([`counter`](Self::counter), [`gauge`](Self::gauge),
/// [`histogram`](Self::histogram)) and keep the handle: updating it costs an atomic operation. The
/// by-name methods of the seed ([`increment_counter`](Self::increment_counter),
/// [`set_gauge`](Self::set_gauge), [`record_histogram`](Self::record_histogram)) look the series up on
/// every call.
#[derive(Clone)]
pub struct Collector {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector").field("service", &self.inner.service).finish_non_exhaustive()
    }
}

/// Configures a [`Collector`].
#[derive(Debug)]
pub struct CollectorBuilder {
    service: String,
    clock: Option<Clock>,
    cardinality_limit: usize,
    buckets: Vec<f64>,
    flush_interval: Option<std::time::Duration>,
    history: usize,
}

impl CollectorBuilder {
    /// How many past dashboard snapshots to keep (default [`DEFAULT_HISTORY`]; 0 keeps none).
    pub fn history(mut self, snapshots: usize) -> Self {
        self.history = snapshots;
        self
    }

    /// Runs a flush thread that every `interval` (by the system's time) evaluates the SLA objectives,
    /// so breach and recovery events arrive without any call, samples the process's resources into
    /// gauges, and keeps a dashboard snapshot in the history; the thread ends with the collector. A zero interval means no thread.
    pub fn flush_interval(mut self, interval: std::time::Duration) -> Self {
        self.flush_interval = Some(interval);
        self
    }

    /// The clock that timings and windows use; `quanta::Clock::mock()` in tests.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Label combinations per metric before further ones are folded into one overflow series
    /// (default [`DEFAULT_CARDINALITY_LIMIT`]); each refusal is counted and exposed.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// Histogram bucket boundaries for Prometheus exposition (default [`DEFAULT_BUCKETS`]). Quantiles do
    /// not depend on them: histograms keep fine buckets and the boundaries only shape the exposition.
    pub fn buckets(mut self, boundaries: impl IntoIterator<Item = f64>) -> Self {
        self.buckets = boundaries.into_iter().collect();
        self
    }

    /// Builds the collector. Boundaries are sorted and deduplicated; non-finite ones are dropped (`+Inf`
    /// is always exposed).
    pub fn build(mut self) -> Collector {
        self.buckets.retain(|bound| bound.is_finite());
        self.buckets.sort_by(f64::total_cmp);
        self.buckets.dedup();
        let clock = self.clock.unwrap_or_default();
        let collector = Collector {
            inner: Arc::new(Inner {
                service: self.service,
                epoch: clock.now(),
                clock,
                cardinality_limit: self.cardinality_limit,
                buckets: self.buckets,
                families: Mutex::new(BTreeMap::new()),
                aliases: RwLock::new(HashTable::new()),
                alias_hasher: foldhash::fast::RandomState::default(),
                windows: Mutex::default(),
                slas: Mutex::default(),
                sla_subscribers: Mutex::default(),
                flusher: Mutex::new(None),
                cpu_mark: Mutex::new(None),
                history: Mutex::default(),
                history_capacity: self.history,
                descriptions: Mutex::default(),
                // The units of the metrics the collector names itself, known before they are registered,
                // so that the hot paths that register them never set them again.
                units: Mutex::new(std::collections::HashMap::from([
                    (crate::transaction::DURATION.to_owned(), "seconds".to_owned()),
                    (crate::process::RESIDENT_MEMORY.to_owned(), "bytes".to_owned()),
                ])),
                histogram_windows: Mutex::default(),
            }),
        };
        if let Some(interval) = self.flush_interval.filter(|interval| !interval.is_zero()) {
            collector.spawn_flusher(interval);
        }
        collector
    }
}

impl Collector {
    /// A builder for a collector named after the service it measures (the seed's `service_name`).
    pub fn builder(service: impl Into<String>) -> CollectorBuilder {
        CollectorBuilder {
            service: service.into(),
            clock: None,
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            buckets: DEFAULT_BUCKETS.to_vec(),
            flush_interval: None,
            history: DEFAULT_HISTORY,
        }
    }

    /// Sets the help text of a metric that has none, now or when it is registered.
    pub fn describe(&self, name: &str, help: &str) {
        let mut families = self.families();
        match families.get_mut(name) {
            Some(family) if family.help.is_empty() => family.help = help.to_owned(),
            Some(_) => {}
            None => {
                lock(&self.inner.descriptions).insert(name.to_owned(), help.to_owned());
            }
        }
    }

    /// Sets a metric's unit (`seconds`, `bytes`, ...), exposed as OpenMetrics `# UNIT`. OpenMetrics wants
    /// the name to end with `_<unit>` (the counter suffix `_total` aside): `request_duration_seconds`
    /// takes `seconds`. Anything else is an [`ApmError::InvalidUnit`].
    pub fn set_unit(&self, name: &str, unit: &str) -> Result<(), ApmError> {
        check_metric(name)?;
        let valid = !unit.is_empty() && unit.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid || !name.trim_end_matches("_total").ends_with(&format!("_{unit}")) {
            return Err(ApmError::InvalidUnit { name: name.to_owned(), unit: unit.to_owned() });
        }
        let mut families = self.families();
        match families.get_mut(name) {
            Some(family) => family.unit = Some(unit.to_owned()),
            None => {
                lock(&self.inner.units).insert(name.to_owned(), unit.to_owned());
            }
        }
        Ok(())
    }

    /// Time since the collector was built, on its clock.
    pub fn elapsed(&self) -> std::time::Duration {
        self.inner.clock.now().duration_since(self.inner.epoch)
    }

    pub(crate) fn slas(&self) -> MutexGuard<'_, Vec<Tracked>> {
        lock(&self.inner.slas)
    }

    pub(crate) fn sla_subscribers(&self) -> MutexGuard<'_, Vec<SlaSubscriber>> {
        lock(&self.inner.sla_subscribers)
    }

    /// The windows of a transaction name, created on first use.
    pub(crate) fn windows_for(&self, transaction: &str) -> Arc<TransactionWindows> {
        Arc::clone(lock(&self.inner.windows).entry(transaction.to_owned()).or_default())
    }

    /// The windows of a transaction name that has been used.
    pub(crate) fn transaction_windows(&self, transaction: &str) -> Option<Arc<TransactionWindows>> {
        lock(&self.inner.windows).get(transaction).cloned()
    }

    fn spawn_flusher(&self, interval: std::time::Duration) {
        let weak = Arc::downgrade(&self.inner);
        let spawned = std::thread::Builder::new().name("infra-apm-flush".into()).spawn(move || {
            loop {
                std::thread::park_timeout(interval);
                let Some(inner) = weak.upgrade() else { break };
                let collector = Collector { inner };
                collector.evaluate_slas();
                // Where /proc is missing the gauges simply stay unset.
                let _ = collector.sample_process();
                collector.record_dashboard();
            }
        });
        // Without the thread (the system refused one), evaluate_slas still works when called.
        if let Ok(handle) = spawned {
            *lock(&self.inner.flusher) = Some(handle.thread().clone());
        }
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// The clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// The counter series `name{labels}`, registered on first use with `help` (the help of the first
    /// registration is kept).
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Counter, ApmError> {
        self.series(Kind::Counter, name, help, labels, |cell| match cell {
            Cell::Counter(cell) => Some(Counter(Arc::clone(cell))),
            _ => None,
        })
    }

    /// The gauge series `name{labels}`.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Gauge, ApmError> {
        self.series(Kind::Gauge, name, help, labels, |cell| match cell {
            Cell::Gauge(cell) => Some(Gauge(Arc::clone(cell))),
            _ => None,
        })
    }

    /// The histogram series `name{labels}`.
    pub fn histogram(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Histogram, ApmError> {
        self.series(Kind::Histogram, name, help, labels, |cell| match cell {
            Cell::Histogram(cell) => Some(Histogram(Arc::clone(cell))),
            _ => None,
        })
    }

    /// Adds `by` to a counter, by name (the seed's `increment_counter`). An existing series is found
    /// without allocating; the first call for a series registers it.
    pub fn increment_counter(&self, name: &str, by: u64, labels: &[(&str, &str)]) -> Result<(), ApmError> {
        let done = self.with_alias(name, labels, |cell| match cell {
            Cell::Counter(counter) => {
                counter.add(by);
                true
            }
            _ => false,
        });
        if !done {
            self.counter(name, "", labels)?.add(by);
        }
        Ok(())
    }

    /// Sets a gauge, by name (the seed's `set_gauge`).
    pub fn set_gauge(&self, name: &str, value: f64, labels: &[(&str, &str)]) -> Result<(), ApmError> {
        if !value.is_finite() {
            return Err(ApmError::NotFinite { name: name.to_owned(), value });
        }
        let done = self.with_alias(name, labels, |cell| match cell {
            Cell::Gauge(gauge) => {
                gauge.set(value);
                true
            }
            _ => false,
        });
        if !done {
            self.gauge(name, "", labels)?.set(value);
        }
        Ok(())
    }

    /// Records into a histogram, by name (the seed's `record_histogram`).
    pub fn record_histogram(&self, name: &str, value: f64, labels: &[(&str, &str)]) -> Result<(), ApmError> {
        if !value.is_finite() {
            return Err(ApmError::NotFinite { name: name.to_owned(), value });
        }
        if value < 0.0 {
            return Err(ApmError::NegativeObservation { name: name.to_owned(), value });
        }
        let done = self.with_alias(name, labels, |cell| match cell {
            Cell::Histogram(histogram) => {
                histogram.record(value);
                true
            }
            _ => false,
        });
        if !done {
            self.histogram(name, "", labels)?.record(value);
        }
        Ok(())
    }

    /// Everything, in the Prometheus text exposition format 0.0.4.
    pub fn render_prometheus(&self) -> String {
        self.render(Format::Prometheus)
    }

    /// Everything, in the OpenMetrics 1.0 text format.
    pub fn render_openmetrics(&self) -> String {
        self.render(Format::OpenMetrics)
    }

    /// Everything, in `format` (see [`Format::from_accept`] to follow a scraper's `Accept` header).
    pub fn render(&self, format: Format) -> String {
        exposition::render(&self.families(), &self.inner.buckets, format)
    }

    /// Runs `update` on the series spelled `name{labels}` if it has been seen before; false otherwise (or
    /// when `update` declines, for another kind), and the caller takes the registering path.
    fn with_alias(&self, name: &str, labels: &[(&str, &str)], update: impl FnOnce(&Cell) -> bool) -> bool {
        let hash = self.inner.alias_hasher.hash_one((name, labels));
        let aliases = self.inner.aliases.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        aliases.find(hash, |alias| alias.matches(name, labels)).is_some_and(|alias| update(&alias.cell))
    }

    /// Remembers a spelling of a registered series for the fast path.
    fn remember(&self, name: &str, labels: &[(&str, &str)], cell: &Cell) {
        let hash = self.inner.alias_hasher.hash_one((name, labels));
        let mut aliases = self.inner.aliases.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if aliases.find(hash, |alias| alias.matches(name, labels)).is_none() {
            let alias = Alias {
                hash,
                name: name.into(),
                labels: labels.iter().map(|(k, v)| (Box::from(*k), Box::from(*v))).collect(),
                cell: cell.clone(),
            };
            aliases.insert_unique(hash, alias, |alias| alias.hash);
        }
    }

    pub(crate) fn families(&self) -> MutexGuard<'_, BTreeMap<String, Family>> {
        lock(&self.inner.families)
    }

    /// Finds or registers a series and hands it out through `handle`.
    fn series<T>(
        &self,
        kind: Kind,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        handle: impl Fn(&Cell) -> Option<T>,
    ) -> Result<T, ApmError> {
        check_metric(name)?;
        let reserved: &[&str] = if kind == Kind::Histogram { &["le"] } else { &[] };
        let mut sorted: Labels = Vec::with_capacity(labels.len());
        for (label, value) in labels {
            check_label(name, label, reserved)?;
            sorted.push(((*label).to_owned(), (*value).to_owned()));
        }
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(ApmError::DuplicateLabel { metric: name.to_owned(), label: pair[0].0.clone() });
        }
        let limit = self.inner.cardinality_limit;
        let mut families = self.families();
        let family = families.entry(name.to_owned()).or_insert_with(|| Family {
            kind,
            help: if help.is_empty() {
                lock(&self.inner.descriptions).remove(name).unwrap_or_default()
            } else {
                help.to_owned()
            },
            series: BTreeMap::new(),
            overflow: None,
            rejected_label_sets: 0,
            unit: lock(&self.inner.units).remove(name),
        });
        if family.kind != kind {
            return Err(ApmError::KindConflict {
                name: name.to_owned(),
                existing: family.kind.name(),
                requested: kind.name(),
            });
        }
        if family.help.is_empty() && !help.is_empty() {
            family.help = help.to_owned();
        }
        let conflict =
            || ApmError::KindConflict { name: name.to_owned(), existing: kind.name(), requested: kind.name() };
        if let Some(cell) = family.series.get(&sorted) {
            let cell = cell.clone();
            drop(families);
            self.remember(name, labels, &cell);
            return handle(&cell).ok_or_else(conflict);
        }
        if family.series.len() >= limit {
            family.rejected_label_sets += 1;
            return handle(family.overflow.get_or_insert_with(|| Cell::new(kind))).ok_or_else(conflict);
        }
        let cell = Cell::new(kind);
        family.series.insert(sorted, cell.clone());
        drop(families);
        // Label sets refused by the cardinality limit get no alias: the aliases stay bounded too.
        self.remember(name, labels, &cell);
        handle(&cell).ok_or_else(conflict)
    }
}
