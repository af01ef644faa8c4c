//! Escalation policies, with the semantics PagerDuty documents: ordered levels, each notified in turn
//! until someone acknowledges; repeats of the whole policy; an acknowledgement timeout that re-opens.

use std::time::Duration;

use crate::error::ConfigError;
use crate::matcher::Matcher;

/// When an escalation stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscalateUntil {
    /// Until someone acknowledges (PagerDuty's rule).
    Acknowledged,
    /// Until the alert is resolved, acknowledged or not.
    Resolved,
}

/// One level: who is told, and how long they have before the next level is.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationLevel {
    /// Receivers notified at this level.
    pub receivers: Vec<String>,
    /// Time before escalating to the next level.
    pub delay: Duration,
}

impl EscalationLevel {
    /// A level notifying `receivers`, escalating after `delay`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(receivers: I, delay: Duration) -> Self {
        EscalationLevel { receivers: receivers.into_iter().map(Into::into).collect(), delay }
    }
}

/// An escalation policy (the seed's `EscalationPolicy`): for alerts its matchers select, level 1 is
/// notified when the alert fires, then each next level when the previous one's delay passes without an
/// acknowledgement (or a resolution); after the last level the policy starts over `repeat` more times.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalationPolicy {
    pub(crate) name: String,
    pub(crate) matchers: Vec<Matcher>,
    pub(crate) levels: Vec<EscalationLevel>,
    pub(crate) repeat: u32,
    pub(crate) until: EscalateUntil,
    pub(crate) acknowledgement_timeout: Option<Duration>,
}

impl EscalationPolicy {
    /// A policy named `name` with `levels`, for every alert, stopping at acknowledgement, never repeated.
    pub fn new(name: impl Into<String>, levels: Vec<EscalationLevel>) -> Self {
        EscalationPolicy {
            name: name.into(),
            matchers: Vec::new(),
            levels,
            repeat: 0,
            until: EscalateUntil::Acknowledged,
            acknowledgement_timeout: None,
        }
    }

    /// Only alerts matching every matcher use this policy.
    pub fn matcher(mut self, matcher: Matcher) -> Self {
        self.matchers.push(matcher);
        self
    }

    /// Runs the whole policy this many more times after the last level.
    pub fn repeat(mut self, times: u32) -> Self {
        self.repeat = times;
        self
    }

    /// What stops it (default: an acknowledgement).
    pub fn until(mut self, until: EscalateUntil) -> Self {
        self.until = until;
        self
    }

    /// Re-opens an acknowledged alert not resolved within this time, and escalates it again from level 1.
    pub fn acknowledgement_timeout(mut self, timeout: Duration) -> Self {
        self.acknowledgement_timeout = Some(timeout);
        self
    }

    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the policy against the receivers that exist.
    pub(crate) fn validate(&self, known: &dyn Fn(&str) -> bool) -> Result<(), ConfigError> {
        if self.levels.is_empty() {
            return Err(ConfigError::Escalation(format!("policy {:?} has no level", self.name)));
        }
        for (n, level) in self.levels.iter().enumerate() {
            if level.receivers.is_empty() {
                return Err(ConfigError::Escalation(format!(
                    "policy {:?}, level {}: nobody to notify",
                    self.name,
                    n + 1
                )));
            }
            if level.delay.is_zero() {
                return Err(ConfigError::Escalation(format!(
                    "policy {:?}, level {}: the delay is zero",
                    self.name,
                    n + 1
                )));
            }
            if let Some(unknown) = level.receivers.iter().find(|receiver| !known(receiver)) {
                return Err(ConfigError::UnknownReceiver(unknown.clone()));
            }
        }
        if self.acknowledgement_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::Zero("acknowledgement_timeout"));
        }
        Ok(())
    }
}

/// Where one alert's escalation stands.
#[derive(Debug, Clone)]
pub(crate) struct Escalation {
    pub(crate) policy: usize,
    /// The level notified last (0-based).
    pub(crate) level: usize,
    /// When the next level is due.
    pub(crate) next: Duration,
    /// Full repeats of the policy left.
    pub(crate) repeats_left: u32,
}
