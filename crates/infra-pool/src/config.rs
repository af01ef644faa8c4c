//! What a pool is told at build time, and the checks that keep a bad setting from reaching it.

use std::time::Duration;

use crate::core::{Cleanup, Core};
use crate::error::BuildError;

/// When a connection taken from the idle set is checked with the manager's `validate` before it is handed
/// out.
///
/// Whatever the policy, the manager's cheap `is_broken` is asked on every checkout, so connections the server
/// closed are found without a round trip when the driver can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheck {
    /// Validate on every checkout: one round trip per acquire, nothing stale ever handed out.
    Always,
    /// Validate only connections that sat idle at least this long (the usual choice: a busy pool pays
    /// nothing, a connection left overnight is checked).
    IdleLongerThan(Duration),
    /// Never validate on checkout (periodic checks of idle connections may still run).
    Never,
}

/// The pool's settings, fixed when it is built.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) acquire_timeout: Duration,
    pub(crate) create_timeout: Duration,
    pub(crate) health_check: HealthCheck,
    pub(crate) health_check_timeout: Duration,
    pub(crate) health_check_interval: Option<Duration>,
    pub(crate) create_retries: u32,
    pub(crate) retry_backoff: Duration,
    pub(crate) maintenance_interval: Duration,
}

/// Default largest number of connections.
pub const DEFAULT_MAX_SIZE: usize = 10;
/// Default time an acquire may wait, all told.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time one connection attempt may take.
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time one health check may take.
pub const DEFAULT_HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default age at which a connection is closed.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Default idle time after which a connection beyond `min_idle` is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Default gap between maintenance passes (warming, reaping, periodic checks).
pub const DEFAULT_MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

impl Default for Config {
    fn default() -> Self {
        Config {
            max_size: DEFAULT_MAX_SIZE,
            min_idle: 0,
            max_lifetime: Some(DEFAULT_MAX_LIFETIME),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            create_timeout: DEFAULT_CREATE_TIMEOUT,
            health_check: HealthCheck::IdleLongerThan(Duration::from_secs(30)),
            health_check_timeout: DEFAULT_HEALTH_CHECK_TIMEOUT,
            health_check_interval: None,
            create_retries: 0,
            retry_backoff: Duration::from_millis(100),
            maintenance_interval: DEFAULT_MAINTENANCE_INTERVAL,
        }
    }
}

impl Config {
    /// Refuses settings the pool cannot honour, naming the one to change.
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        if self.max_size == 0 {
            return Err(BuildError::ZeroMaxSize);
        }
        if self.min_idle > self.max_size {
            return Err(BuildError::MinIdleAboveMax { min_idle: self.min_idle, max_size: self.max_size });
        }
        let durations = [
            ("acquire_timeout", Some(self.acquire_timeout)),
            ("create_timeout", Some(self.create_timeout)),
            ("health_check_timeout", Some(self.health_check_timeout)),
            ("maintenance_interval", Some(self.maintenance_interval)),
            ("max_lifetime", self.max_lifetime),
            ("idle_timeout", self.idle_timeout),
            ("health_check_interval", self.health_check_interval),
        ];
        if let Some((setting, _)) = durations.iter().find(|(_, value)| *value == Some(Duration::ZERO)) {
            return Err(BuildError::ZeroDuration { setting });
        }
        if self.health_check == HealthCheck::IdleLongerThan(Duration::ZERO) {
            return Err(BuildError::ZeroDuration { setting: "health_check(HealthCheck::IdleLongerThan)" });
        }
        Ok(())
    }

    /// Whether checkouts and returns need the time: only when some rule depends on a connection's age.
    pub(crate) fn needs_clock(&self) -> bool {
        self.max_lifetime.is_some()
            || self.idle_timeout.is_some()
            || matches!(self.health_check, HealthCheck::IdleLongerThan(_))
    }
}

/// What both builders collect: the settings, the clock, the cleanup hook.
pub(crate) struct Settings<C> {
    pub(crate) config: Config,
    pub(crate) clock: quanta::Clock,
    pub(crate) cleanup: Option<Cleanup<C>>,
}

impl<C> Settings<C> {
    pub(crate) fn new() -> Self {
        Settings { config: Config::default(), clock: quanta::Clock::new(), cleanup: None }
    }

    /// The core these settings describe, once they pass their checks.
    pub(crate) fn into_core(self) -> Result<Core<C>, BuildError> {
        self.config.validate()?;
        Ok(Core::new(self.config, self.clock, self.cleanup))
    }
}

impl<C> std::fmt::Debug for Settings<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The setters both builders expose (each holds a `settings: Settings<$conn>`).
macro_rules! config_setters {
    ($conn:ty) => {
        /// The most connections the pool holds, in use, idle and being opened together (default 10).
        pub fn max_size(mut self, max_size: usize) -> Self {
            self.settings.config.max_size = max_size;
            self
        }

        /// Idle connections kept open, warmed in the background at start and after losses (default 0;
        /// the seed's `min_size`). Idle connections up to this many are never closed for idleness.
        pub fn min_idle(mut self, min_idle: usize) -> Self {
            self.settings.config.min_idle = min_idle;
            self
        }

        /// Age at which a connection is closed instead of reused (default 30 minutes; `None` keeps
        /// connections forever).
        pub fn max_lifetime(mut self, max_lifetime: impl Into<Option<Duration>>) -> Self {
            self.settings.config.max_lifetime = max_lifetime.into();
            self
        }

        /// Idle time after which a connection beyond `min_idle` is closed (default 10 minutes; the seed's
        /// `max_idle_seconds`; `None` never closes idle connections).
        pub fn idle_timeout(mut self, idle_timeout: impl Into<Option<Duration>>) -> Self {
            self.settings.config.idle_timeout = idle_timeout.into();
            self
        }

        /// How long an acquire may take in all, waiting and connecting (default 30 s; the seed's
        /// `acquire(timeout)`). `get_timeout` overrides it per call.
        pub fn acquire_timeout(mut self, acquire_timeout: Duration) -> Self {
            self.settings.config.acquire_timeout = acquire_timeout;
            self
        }

        /// How long one connection attempt may take (default 5 s).
        pub fn create_timeout(mut self, create_timeout: Duration) -> Self {
            self.settings.config.create_timeout = create_timeout;
            self
        }

        /// When checkouts validate a connection (default: when it sat idle 30 s or more).
        pub fn health_check(mut self, health_check: $crate::HealthCheck) -> Self {
            self.settings.config.health_check = health_check;
            self
        }

        /// How long one health check may take before the connection counts as failed (default 5 s).
        pub fn health_check_timeout(mut self, health_check_timeout: Duration) -> Self {
            self.settings.config.health_check_timeout = health_check_timeout;
            self
        }

        /// Validates idle connections in the background this often (default: never; the seed's
        /// `health_check`), so a dead connection is replaced before anyone asks for it.
        pub fn health_check_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
            self.settings.config.health_check_interval = interval.into();
            self
        }

        /// Extra attempts after a failed connection attempt, `backoff` apart and doubling (default no
        /// retries, so an acquirer hears the connect error at once).
        pub fn create_retries(mut self, retries: u32, backoff: Duration) -> Self {
            self.settings.config.create_retries = retries;
            self.settings.config.retry_backoff = backoff;
            self
        }

        /// How often the background worker warms, reaps and checks (default 1 s).
        pub fn maintenance_interval(mut self, interval: Duration) -> Self {
            self.settings.config.maintenance_interval = interval;
            self
        }

        /// The clock for lifetimes and idleness (default: quanta's TSC clock). Tests pass
        /// `quanta::Clock::mock()` and move time by hand.
        pub fn clock(mut self, clock: quanta::Clock) -> Self {
            self.settings.clock = clock;
            self
        }

        /// Runs `cleanup` on every connection the pool closes (the seed's `cleanup`); not on detached ones.
        /// A panic in it is caught and counted.
        pub fn on_destroy(mut self, cleanup: impl Fn(&mut $conn) + Send + Sync + 'static) -> Self {
            self.settings.cleanup = Some(Box::new(cleanup));
            self
        }
    };
}

pub(crate) use config_setters;
