//! [`Flags`]: the entry type. Readers evaluate lock-free against an immutable snapshot; writers build a new
//! snapshot and swap it in.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use crate::published::{Published, SnapshotRead};

use crate::context::Context;
use crate::definition::{ClientFeatures, FeatureDefinition, FeatureUpdate, StrategyDefinition};
use crate::error::{DefinitionError, FlagError, LoadError};
use crate::snapshot::{CodeRule, Definitions, Environment, Reason, Snapshot, VariantResult};
use crate::stats::FlagStats;

/// The seed's flag status: how a flag defined in code decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagStatus {
    /// On for everyone.
    Enabled,
    /// Off for everyone.
    Disabled,
    /// On for a percentage of users ([`Flags::set_percentage_rollout`]).
    PercentageRollout,
    /// On for users in given segments ([`Flags::set_user_segments`]).
    UserSegments,
}

/// A flag as the in-code API describes it (the seed's `FeatureFlag`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FeatureFlag {
    /// The name.
    pub name: String,
    /// The answer for contexts a rollout or segment rule cannot decide (no user id, no segments).
    pub default_value: bool,
    /// A human description.
    pub description: String,
    /// How the flag decides.
    pub status: FlagStatus,
    /// The rollout percentage, for [`FlagStatus::PercentageRollout`].
    pub rollout_percentage: f64,
    /// The targeted segments, for [`FlagStatus::UserSegments`].
    pub segments: Vec<String>,
}

impl FeatureFlag {
    /// The rule that decides this flag in place of Unleash strategies, for the statuses that need one.
    pub(crate) fn code_rule(&self) -> Option<CodeRule> {
        match self.status {
            FlagStatus::Enabled | FlagStatus::Disabled => None,
            FlagStatus::PercentageRollout => {
                Some(CodeRule::Rollout { percentage: self.rollout_percentage, default_value: self.default_value })
            }
            FlagStatus::UserSegments => {
                Some(CodeRule::Segments { segments: self.segments.clone(), default_value: self.default_value })
            }
        }
    }
}

/// Evaluation counts for one flag (the seed's `get_flag_analytics`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FlagAnalytics {
    /// The flag.
    pub name: String,
    /// Evaluations that answered yes.
    pub yes: u64,
    /// Evaluations that answered no.
    pub no: u64,
    /// Variant name to how often it was handed out (`disabled` included).
    pub variants: std::collections::BTreeMap<String, u64>,
    /// When the flag was last evaluated, to the resolution of the clock's coarse reading (about 1 ms).
    pub last_evaluated: Option<SystemTime>,
}

/// One flag in a listing (the seed's `get_all_flags`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FlagSummary {
    /// The Unleash definition in force.
    pub definition: FeatureDefinition,
    /// The in-code view, for flags created or changed through the seed API.
    pub code: Option<FeatureFlag>,
    /// Its counts.
    pub analytics: FlagAnalytics,
}

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// How many flags are now defined.
    pub flags: usize,
    /// Problems found in the definitions; the faulty parts evaluate to false.
    pub problems: Vec<DefinitionError>,
}

/// A provider event, as OpenFeature names them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FlagsEvent {
    /// A flag set was loaded for the first time.
    Ready,
    /// The flag set changed; the names of the flags whose definitions changed, were added or removed.
    ConfigurationChanged {
        /// Changed flags.
        flags: Vec<String>,
    },
    /// A source failed; the flags in use stay as they were.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// An evaluation of a flag that asks for impression data (or of any flag, with
/// [`FlagsBuilder::expose_all`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure<'a> {
    /// The flag.
    pub flag: &'a str,
    /// The answer.
    pub enabled: bool,
    /// The variant handed out, for variant evaluations.
    pub variant: Option<&'a str>,
    /// The context evaluated.
    pub context: &'a Context,
}

type Listener = Arc<dyn Fn(&FlagsEvent) + Send + Sync>;
type ExposureListener = Arc<dyn Fn(&Exposure<'_>) + Send + Sync>;

/// Builds a [`Flags`].
#[must_use]
pub struct FlagsBuilder {
    clock: quanta::Clock,
    /// Set by [`FlagsBuilder::clock`]: analytics stamps then come from that clock too.
    custom_clock: bool,
    wall_anchor: Option<SystemTime>,
    strict: bool,
    expose_all: bool,
    hostname: Option<String>,
    features: Option<ClientFeatures>,
}

impl std::fmt::Debug for FlagsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlagsBuilder").field("strict", &self.strict).field("expose_all", &self.expose_all).finish()
    }
}

impl FlagsBuilder {
    /// The clock for date constraints without a context time and for analytics timestamps; a
    /// `quanta::Clock::mock()` lets tests move time by hand.
    pub fn clock(mut self, clock: quanta::Clock) -> Self {
        self.clock = clock;
        self.custom_clock = true;
        self
    }

    /// The wall-clock time the clock's current reading stands for (default: now). With a mock clock this
    /// fixes what "now" is for date constraints.
    pub fn wall_clock_anchor(mut self, at: SystemTime) -> Self {
        self.wall_anchor = Some(at);
        self
    }

    /// Refuse flag sets with invalid definitions instead of loading them with the faulty parts off.
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Report every evaluation to exposure listeners, not only those of flags with `impressionData`.
    pub fn expose_all(mut self, expose_all: bool) -> Self {
        self.expose_all = expose_all;
        self
    }

    /// The host name `applicationHostname` strategies compare with (default: the machine's).
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// The flag set to start with.
    pub fn features(mut self, features: ClientFeatures) -> Self {
        self.features = Some(features);
        self
    }

    /// Builds the flag set.
    ///
    /// # Errors
    ///
    /// With [`FlagsBuilder::strict`], fails when the initial flag set has invalid definitions.
    pub fn build(mut self) -> Result<Flags, LoadError> {
        let features = self.features.take();
        let flags = self.build_empty();
        if let Some(features) = features {
            flags.load(features)?;
        }
        Ok(flags)
    }

    /// The flag set without its initial features: building it cannot fail.
    fn build_empty(self) -> Flags {
        // Analytics stamps: the process's coarse wall clock when time is the system's, else this clock.
        let system_stamps = !self.custom_clock && self.wall_anchor.is_none() && crate::coarse_clock::start();
        if !system_stamps {
            start_quanta_upkeep();
        }
        let anchor_instant = self.clock.now();
        let anchor_wall = self.wall_anchor.unwrap_or_else(SystemTime::now);
        let anchor_wall_nanos = match anchor_wall.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(since) => since.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        };
        Flags {
            inner: Arc::new(Inner {
                snapshot: Published::new(Snapshot::default()),
                state: Mutex::new(State::default()),
                stats: Mutex::new(HashMap::new()),
                clock: self.clock,
                anchor_instant,
                anchor_wall_nanos,
                system_stamps,
                hostname: self.hostname.unwrap_or_else(machine_hostname).into(),
                strict: self.strict,
                expose_all: self.expose_all,
                listeners: Mutex::new(Vec::new()),
                exposure: ArcSwap::from_pointee(Vec::new()),
                unknown_flag_evaluations: AtomicU64::new(0),
                loads: AtomicU64::new(0),
            }),
        }
    }
}

/// Starts quanta's upkeep thread once per process: it refreshes the coarse reading of clocks given to the
/// builder every millisecond, so evaluations can timestamp themselves without reading the clock.
fn start_quanta_upkeep() {
    static UPKEEP: std::sync::OnceLock<Option<quanta::Handle>> = std::sync::OnceLock::new();
    UPKEEP.get_or_init(|| quanta::Upkeep::new(Duration::from_millis(1)).start().ok());
}

pub(crate) fn machine_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_default()
}

#[derive(Debug, Default)]
struct State {
    definitions: Definitions,
    problems: Vec<DefinitionError>,
}

struct Inner {
    snapshot: Published,
    state: Mutex<State>,
    stats: Mutex<HashMap<String, Arc<FlagStats>>>,
    clock: quanta::Clock,
    anchor_instant: quanta::Instant,
    anchor_wall_nanos: i128,
    /// Evaluations are stamped from [`crate::coarse_clock`], not from `clock`.
    system_stamps: bool,
    hostname: Box<str>,
    strict: bool,
    expose_all: bool,
    listeners: Mutex<Vec<Listener>>,
    exposure: ArcSwap<Vec<ExposureListener>>,
    unknown_flag_evaluations: AtomicU64,
    loads: AtomicU64,
}

/// Feature flags: Unleash's evaluation model, the seed's in-code API, lock-free reads.
///
/// Cheap to clone; every clone sees the same flags.
#[derive(Clone)]
pub struct Flags {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flags").field("flags", &self.inner.snapshot.load_full().features.len()).finish()
    }
}

impl Default for Flags {
    fn default() -> Self {
        Self::new()
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock (a listener's, say) leaves the state consistent: every writer
    // builds the new state completely before storing it.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One evaluation, as work on the current snapshot: the flag's position, its answer, the count; whether
/// it is to be reported to exposure listeners is written to `exposed`. `None` for unknown flags.
struct Evaluation<'a, E> {
    flags: &'a Flags,
    name: &'a str,
    evaluate: E,
    exposed: &'a mut bool,
}

impl<T, E: FnOnce(&Snapshot, usize, &dyn Environment) -> (bool, T)> SnapshotRead for Evaluation<'_, E> {
    type Output = Option<(bool, T)>;

    // Forced inline: this is the whole hot path of `is_enabled`.
    #[inline(always)]
    fn run(self, snapshot: &Snapshot) -> Self::Output {
        let flags = self.flags;
        let inner = &*flags.inner;
        let at = snapshot.position(self.name)?;
        let (enabled, detail) = (self.evaluate)(snapshot, at, flags);
        let feature = &snapshot.features[at];
        feature.stats.record(enabled, flags.coarse_stamp());
        *self.exposed = feature.impression_data || inner.expose_all;
        Some((enabled, detail))
    }
}

/// The clock and host name, for the rules that read them.
impl Environment for Flags {
    fn now_unix_nanos(&self) -> i128 {
        let elapsed = self.inner.clock.now().saturating_duration_since(self.inner.anchor_instant);
        self.inner.anchor_wall_nanos + elapsed.as_nanos() as i128
    }

    fn hostname(&self) -> &str {
        &self.inner.hostname
    }
}

impl Flags {
    /// An empty flag set on the system clock.
    pub fn new() -> Self {
        Self::builder().build_empty()
    }

    /// Starts building a flag set.
    pub fn builder() -> FlagsBuilder {
        FlagsBuilder {
            clock: quanta::Clock::new(),
            custom_clock: false,
            wall_anchor: None,
            strict: false,
            expose_all: false,
            hostname: None,
            features: None,
        }
    }

    /// The Unix time in nanoseconds (at least 1, so that 0 means "never"), about a millisecond coarse: the
    /// time an evaluation is stamped with for analytics.
    #[inline]
    fn coarse_stamp(&self) -> u64 {
        // `system_stamps` is set only when the clock thread started, so its reading is never 0 here.
        if self.inner.system_stamps { crate::coarse_clock::unix_nanos() } else { self.clock_stamp() }
    }

    /// [`Flags::coarse_stamp`] from the builder's clock.
    #[cold]
    fn clock_stamp(&self) -> u64 {
        let mut at = self.inner.clock.recent();
        if at < self.inner.anchor_instant {
            // No upkeep thread is updating the coarse reading (another owner stopped it): read the clock.
            at = self.inner.clock.now();
        }
        let unix_nanos = self.inner.anchor_wall_nanos + (at - self.inner.anchor_instant).as_nanos() as i128;
        unix_nanos.clamp(1, i128::from(u64::MAX)) as u64
    }

    fn stamp_to_time(stamp: u64) -> Option<SystemTime> {
        (stamp > 0).then(|| SystemTime::UNIX_EPOCH + Duration::from_nanos(stamp))
    }

    /// Evaluates flag `name` with `evaluate`, which answers (enabled, detail); counts the evaluation,
    /// and reports it to exposure listeners when the flag asks for that. Listeners run after the
    /// snapshot is released, so they may evaluate flags themselves. `None` (counted) for unknown flags.
    ///
    /// Forced inline into each public evaluation, which is itself an ordinary function: every caller
    /// then gets the same, fully inlined code behind one call, whatever the inliner makes of its own.
    #[inline(always)]
    fn evaluate_with<T>(
        &self,
        name: &str,
        context: &Context,
        evaluate: impl FnOnce(&Snapshot, usize, &dyn Environment) -> (bool, T),
        variant_of: impl FnOnce(&T) -> Option<&str>,
    ) -> Option<(bool, T)> {
        let inner = &*self.inner;
        // The evaluation hands back only the answer: a flag that asks for exposure is told apart by a plain
        // bool written beside it, and the listener gets the caller's `name` (equal to the flag's), so the
        // hot path moves no reference-counted name and no wide value through the thread-local access.
        let mut exposed = false;
        let outcome = inner.snapshot.read(Evaluation { flags: self, name, evaluate, exposed: &mut exposed });
        match outcome {
            None => {
                inner.unknown_flag_evaluations.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some((enabled, detail)) => {
                if exposed {
                    self.expose(&Exposure { flag: name, enabled, variant: variant_of(&detail), context });
                }
                Some((enabled, detail))
            }
        }
    }

    /// Whether the flag called `name` is on for `context`. Unknown flags are off (and counted in
    /// [`Flags::unknown_flag_evaluations`]).
    pub fn is_enabled(&self, name: &str, context: &Context) -> bool {
        self.evaluate_with(name, context, |snapshot, at, env| (snapshot.is_enabled_at(at, context, env), ()), |()| None)
            .is_some_and(|(enabled, ())| enabled)
    }

    /// The variant of flag `name` for `context`: `disabled` (with `feature_enabled` false) for unknown or
    /// off flags, `disabled` with `feature_enabled` true for flags without variants.
    pub fn variant(&self, name: &str, context: &Context) -> VariantResult {
        self.evaluate_with(name, context, |snapshot, at, env| snapshot.variant_at(at, context, env), |v| Some(&v.name))
            .map_or_else(|| VariantResult::disabled(false), |(_, variant)| variant)
    }

    /// Like [`Flags::is_enabled`], with what decided the answer; `None` for unknown flags.
    pub fn evaluate(&self, name: &str, context: &Context) -> Option<(bool, Reason)> {
        self.evaluate_with(name, context, |snapshot, at, env| snapshot.evaluate_at(at, context, env), |_| None)
    }

    /// Whether at least one flag set has been loaded (or a flag created).
    pub fn is_ready(&self) -> bool {
        self.inner.loads.load(Ordering::Relaxed) > 0
    }

    /// The seed's `is_enabled(name, user_id, user_segments, default)`: `default` for unknown flags.
    pub fn is_enabled_for(&self, name: &str, user_id: Option<&str>, segments: &[&str], default: bool) -> bool {
        let mut context = Context::new().segments(segments.iter().copied());
        context.user_id = user_id.map(str::to_owned);
        self.evaluate(name, &context).map_or(default, |(enabled, _)| enabled)
    }

    /// Runs `work` when flag `name` is on for `context` (the seed's `feature_flag` decorator).
    pub fn run_if_enabled<T>(&self, name: &str, context: &Context, work: impl FnOnce() -> T) -> Option<T> {
        self.is_enabled(name, context).then(work)
    }

    /// Whether a flag called `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.snapshot.read(|snapshot: &Snapshot| snapshot.position(name).is_some())
    }

    /// The names of every flag, in definition order.
    pub fn names(&self) -> Vec<String> {
        self.inner.snapshot.load_full().features.iter().map(|f| f.name.to_string()).collect()
    }

    /// Evaluations of flags that are not defined.
    pub fn unknown_flag_evaluations(&self) -> u64 {
        self.inner.unknown_flag_evaluations.load(Ordering::Relaxed)
    }

    /// Problems found by the last load.
    pub fn problems(&self) -> Vec<DefinitionError> {
        lock(&self.inner.state).problems.clone()
    }

    #[cold]
    fn expose(&self, exposure: &Exposure<'_>) {
        for listener in self.inner.exposure.load().iter() {
            listener(exposure);
        }
    }

    /// Calls `listener` for every exposure: evaluations of flags with `impressionData` (or of all flags,
    /// with [`FlagsBuilder::expose_all`]). It runs on the evaluating thread: keep it short, or hand off
    /// to a channel.
    pub fn on_exposure(&self, listener: impl Fn(&Exposure<'_>) + Send + Sync + 'static) {
        let listener: ExposureListener = Arc::new(listener);
        self.inner.exposure.rcu(|current| {
            let mut next = Vec::clone(current);
            next.push(listener.clone());
            next
        });
    }

    /// Calls `listener` on provider events (ready, configuration changed, error).
    pub fn subscribe(&self, listener: impl Fn(&FlagsEvent) + Send + Sync + 'static) {
        lock(&self.inner.listeners).push(Arc::new(listener));
    }

    /// Records a source's failure in `last_error` and returns the event to send, `None` when the same
    /// failure was already reported (so a source failing on every poll is reported once). The caller sends
    /// it with [`Flags::emit`] after releasing its own lock, so listeners may call back into the source.
    pub(crate) fn source_error(last_error: &mut Option<String>, message: String) -> Option<FlagsEvent> {
        if last_error.as_deref() == Some(message.as_str()) {
            return None;
        }
        *last_error = Some(message.clone());
        Some(FlagsEvent::Error { message })
    }

    pub(crate) fn emit(&self, event: &FlagsEvent) {
        let listeners = lock(&self.inner.listeners).clone();
        for listener in listeners {
            listener(event);
        }
    }

    /// Replaces the Unleash-defined flags with `features`; flags created in code stay.
    ///
    /// # Errors
    ///
    /// With [`FlagsBuilder::strict`], fails on invalid definitions, keeping the flags in use.
    pub fn load(&self, features: ClientFeatures) -> Result<LoadReport, LoadError> {
        self.reload(|definitions| definitions.features = features)
    }

    /// Loads a flag set from JSON in Unleash's `/client/features` format, or delta-API events applied to
    /// the current set.
    ///
    /// # Errors
    ///
    /// Fails on malformed JSON (the flags in use stay), and as [`Flags::load`] does.
    pub fn load_json(&self, json: &str) -> Result<LoadReport, LoadError> {
        let update: FeatureUpdate = serde_json::from_str(json)?;
        self.apply(update)
    }

    /// Loads a flag-set file (see [`Flags::load_json`]).
    ///
    /// # Errors
    ///
    /// Fails when the file cannot be read, and as [`Flags::load_json`] does.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<LoadReport, LoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io { path: path.to_owned(), source })?;
        self.load_json(&text)
    }

    /// Loads `path` now and reloads it whenever its content changes, checking every `interval`.
    ///
    /// # Errors
    ///
    /// Fails when the first load fails.
    pub fn watch_file(&self, path: impl AsRef<Path>, interval: Duration) -> Result<crate::FileWatcher, LoadError> {
        crate::FileWatcher::start(self, path, interval)
    }

    /// Applies a full set or delta events.
    ///
    /// # Errors
    ///
    /// As [`Flags::load`].
    pub fn apply(&self, update: FeatureUpdate) -> Result<LoadReport, LoadError> {
        self.reload(|definitions| match update {
            FeatureUpdate::Full(features) => definitions.features = features,
            FeatureUpdate::Delta { events } => definitions.features.apply_events(&events),
        })
    }

    /// The one way flags change: edit a copy of the definitions, compile it, swap it in, tell listeners.
    /// The outer error is the edit's refusal; the inner result is the load's.
    fn update<E>(
        &self,
        edit: impl FnOnce(&mut Definitions) -> Result<(), E>,
    ) -> Result<Result<LoadReport, LoadError>, E> {
        let mut state = lock(&self.inner.state);
        let mut definitions = state.definitions.clone();
        edit(&mut definitions)?;
        let (snapshot, problems) = {
            let mut stats = lock(&self.inner.stats);
            for feature in &definitions.features.features {
                stats.entry(feature.name.clone()).or_default();
            }
            // Every flag has its entry now, so the fallback never runs.
            Snapshot::compile(&definitions, &|flag: &str| stats.get(flag).cloned().unwrap_or_default())
        };
        if self.inner.strict && !problems.is_empty() {
            return Ok(Err(LoadError::Invalid(problems)));
        }
        let changed = changed_flags(&state.definitions, &definitions);
        let report = LoadReport { flags: snapshot.features.len(), problems: problems.clone() };
        self.inner.snapshot.store(snapshot);
        state.definitions = definitions;
        state.problems = problems;
        drop(state);
        if self.inner.loads.fetch_add(1, Ordering::Relaxed) == 0 {
            self.emit(&FlagsEvent::Ready);
        }
        if !changed.is_empty() {
            self.emit(&FlagsEvent::ConfigurationChanged { flags: changed });
        }
        Ok(Ok(report))
    }

    /// A load: edits that cannot be refused.
    fn reload(&self, edit: impl FnOnce(&mut Definitions)) -> Result<LoadReport, LoadError> {
        let result: Result<_, std::convert::Infallible> = self.update(|definitions| {
            edit(definitions);
            Ok(())
        });
        match result {
            Ok(load) => load,
            Err(never) => match never {},
        }
    }

    /// An in-code change: refused edits and strict-mode objections both come back as [`FlagError`].
    fn change(&self, edit: impl FnOnce(&mut Definitions) -> Result<(), FlagError>) -> Result<(), FlagError> {
        match self.update(edit)? {
            Ok(_) => Ok(()),
            Err(err) => Err(FlagError::Invalid(err.to_string())),
        }
    }

    /// Creates a flag in code (the seed's `create_flag`).
    ///
    /// # Errors
    ///
    /// [`FlagError::EmptyName`], or [`FlagError::DuplicateFlag`] when the name is taken.
    pub fn create_flag(
        &self,
        name: &str,
        default_value: bool,
        description: &str,
        status: FlagStatus,
    ) -> Result<FeatureFlag, FlagError> {
        if name.is_empty() {
            return Err(FlagError::EmptyName);
        }
        let flag = FeatureFlag {
            name: name.to_owned(),
            default_value,
            description: description.to_owned(),
            status,
            rollout_percentage: 0.0,
            segments: Vec::new(),
        };
        let created = flag.clone();
        self.change(move |definitions| {
            if definitions.features.features.iter().any(|f| f.name == flag.name) {
                return Err(FlagError::DuplicateFlag(flag.name.clone()));
            }
            definitions.features.features.push(FeatureDefinition {
                name: flag.name.clone(),
                description: Some(flag.description.clone()),
                ..FeatureDefinition::default()
            });
            apply_code_flag(definitions, &flag);
            definitions.code_flags.insert(flag.name.clone(), flag);
            Ok(())
        })?;
        Ok(created)
    }

    /// Sets a flag's status (the seed's `set_flag_status`). On flags defined by Unleash, `Enabled` and
    /// `Disabled` switch the flag on and off, keeping its strategies.
    ///
    /// # Errors
    ///
    /// [`FlagError::UnknownFlag`].
    pub fn set_flag_status(&self, name: &str, status: FlagStatus) -> Result<(), FlagError> {
        self.edit_code_flag(
            name,
            |flag| flag.status = status,
            |feature| match status {
                FlagStatus::Enabled => feature.enabled = true,
                FlagStatus::Disabled => feature.enabled = false,
                FlagStatus::PercentageRollout | FlagStatus::UserSegments => {}
            },
        )
    }

    /// Rolls a flag out to `percentage` of users (the seed's `set_percentage_rollout`). Users keep their
    /// bucket (Unleash's, grouped by flag name and sticky on the user id), so raising the percentage never
    /// removes anyone. Buckets are whole percents, as in Unleash: 12.5 covers buckets 1 to 12. On flags
    /// defined by Unleash, sets the rollout of every `flexibleRollout` strategy.
    ///
    /// # Errors
    ///
    /// [`FlagError::InvalidPercentage`] outside 0..=100, [`FlagError::UnknownFlag`].
    pub fn set_percentage_rollout(&self, name: &str, percentage: f64) -> Result<(), FlagError> {
        if !(0.0..=100.0).contains(&percentage) {
            return Err(FlagError::InvalidPercentage(percentage));
        }
        self.edit_code_flag(
            name,
            |flag| {
                flag.status = FlagStatus::PercentageRollout;
                flag.rollout_percentage = percentage;
            },
            |feature| {
                for strategy in feature.strategies.iter_mut().filter(|s| s.name == "flexibleRollout") {
                    strategy.parameters.insert("rollout".into(), (percentage.floor() as u32).to_string());
                }
            },
        )
    }

    /// Targets a flag at users in `segments` (the seed's `set_user_segments`).
    ///
    /// # Errors
    ///
    /// [`FlagError::UnknownFlag`].
    pub fn set_user_segments(&self, name: &str, segments: &[&str]) -> Result<(), FlagError> {
        let segments: Vec<String> = segments.iter().map(|s| (*s).to_owned()).collect();
        self.edit_code_flag(
            name,
            |flag| {
                flag.status = FlagStatus::UserSegments;
                flag.segments = segments.clone();
            },
            |feature| feature.strategies = vec![segments_strategy(&segments)],
        )
    }

    /// Makes flag `name` answer `value` for `user_id`, whatever else it says (the seed's
    /// `set_user_override`).
    ///
    /// # Errors
    ///
    /// [`FlagError::UnknownFlag`].
    pub fn set_user_override(&self, user_id: &str, name: &str, value: bool) -> Result<(), FlagError> {
        self.change(|definitions| {
            if !definitions.features.features.iter().any(|f| f.name == name) {
                return Err(FlagError::UnknownFlag(name.to_owned()));
            }
            definitions.user_overrides.entry(name.to_owned()).or_default().insert(user_id.to_owned(), value);
            Ok(())
        })
    }

    /// Edits a flag: through its in-code view when it was created in code, else its Unleash definition.
    fn edit_code_flag(
        &self,
        name: &str,
        code: impl FnOnce(&mut FeatureFlag),
        unleash: impl FnOnce(&mut FeatureDefinition),
    ) -> Result<(), FlagError> {
        self.change(|definitions| {
            if let Some(flag) = definitions.code_flags.get_mut(name) {
                code(flag);
                let flag = flag.clone();
                apply_code_flag(definitions, &flag);
                return Ok(());
            }
            match definitions.features.features.iter_mut().find(|f| f.name == name) {
                Some(feature) => {
                    unleash(feature);
                    Ok(())
                }
                None => Err(FlagError::UnknownFlag(name.to_owned())),
            }
        })
    }

    /// Evaluation counts of flag `name` (the seed's `get_flag_analytics`).
    pub fn analytics(&self, name: &str) -> Option<FlagAnalytics> {
        let stats = lock(&self.inner.stats).get(name).cloned()?;
        Some(self.analytics_of(name, &stats))
    }

    fn analytics_of(&self, name: &str, stats: &FlagStats) -> FlagAnalytics {
        let (yes, no, stamp) = stats.totals();
        FlagAnalytics {
            name: name.to_owned(),
            yes,
            no,
            variants: stats.variant_totals(),
            last_evaluated: if yes + no > 0 { Self::stamp_to_time(stamp) } else { None },
        }
    }

    /// Every flag with its definition, in-code view and counts (the seed's `get_all_flags`).
    pub fn all_flags(&self) -> Vec<FlagSummary> {
        let state = lock(&self.inner.state);
        let stats = lock(&self.inner.stats);
        state
            .definitions
            .features
            .features
            .iter()
            .map(|definition| FlagSummary {
                definition: definition.clone(),
                code: state.definitions.code_flags.get(&definition.name).cloned(),
                analytics: match stats.get(&definition.name) {
                    Some(s) => self.analytics_of(&definition.name, s),
                    None => self.analytics_of(&definition.name, &FlagStats::default()),
                },
            })
            .collect()
    }

    /// The Unleash definitions in force, as a `/client/features` document.
    pub fn definitions(&self) -> ClientFeatures {
        lock(&self.inner.state).definitions.features.clone()
    }
}

/// Writes an in-code flag's status into its Unleash definition.
///
/// The definition shows the nearest Unleash equivalent, for listings and export; evaluation follows the
/// flag's [`FeatureFlag::code_rule`], which adds the seed's default for undecidable contexts.
fn apply_code_flag(definitions: &mut Definitions, flag: &FeatureFlag) {
    let Some(feature) = definitions.features.features.iter_mut().find(|f| f.name == flag.name) else { return };
    feature.description = Some(flag.description.clone());
    feature.enabled = flag.status != FlagStatus::Disabled;
    feature.strategies = match flag.status {
        FlagStatus::Enabled | FlagStatus::Disabled => Vec::new(),
        FlagStatus::PercentageRollout => vec![StrategyDefinition {
            name: "flexibleRollout".into(),
            parameters: [
                ("rollout".to_owned(), (flag.rollout_percentage.floor() as u32).to_string()),
                ("stickiness".to_owned(), "userId".to_owned()),
                ("groupId".to_owned(), flag.name.clone()),
            ]
            .into(),
            ..Default::default()
        }],
        FlagStatus::UserSegments => vec![segments_strategy(&flag.segments)],
    };
}

/// The Unleash strategy for segment targeting: on when any of the context's segments is listed.
fn segments_strategy(segments: &[String]) -> StrategyDefinition {
    StrategyDefinition {
        name: "default".into(),
        constraints: vec![crate::definition::ConstraintDefinition {
            context_name: crate::context::USER_SEGMENTS_FIELD.into(),
            operator: "IN".into(),
            values: segments.to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn changed_flags(before: &Definitions, after: &Definitions) -> Vec<String> {
    let old: HashMap<&str, &FeatureDefinition> =
        before.features.features.iter().map(|f| (f.name.as_str(), f)).collect();
    let new: HashMap<&str, &FeatureDefinition> = after.features.features.iter().map(|f| (f.name.as_str(), f)).collect();
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(name, definition)| {
            old.get(*name) != Some(*definition)
                || before.code_flags.get(**name) != after.code_flags.get(**name)
                || before.user_overrides.get(**name) != after.user_overrides.get(**name)
        })
        .map(|(name, _)| (*name).to_owned())
        .chain(old.keys().filter(|name| !new.contains_key(*name)).map(|name| (*name).to_owned()))
        .collect();
    if before.features.segments != after.features.segments && changed.is_empty() {
        changed.extend(new.keys().map(|name| (*name).to_owned()));
    }
    changed.sort();
    changed
}
