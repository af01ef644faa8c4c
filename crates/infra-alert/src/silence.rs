//! Silences and inhibition rules: the two ways Alertmanager keeps an alert quiet.

use std::fmt;
use std::time::Duration;

use crate::error::ConfigError;
use crate::labels::Labels;
use crate::matcher::{Matcher, all_match};

/// A silence's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SilenceId(pub(crate) u64);

impl fmt::Display for SilenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "silence-{}", self.0)
    }
}

impl std::str::FromStr for SilenceId {
    type Err = String;

    /// Parses the form `Display` writes (`silence-7`) or the bare number (`7`), as an API path carries it.
    fn from_str(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("silence-").unwrap_or(text);
        digits.parse().map(SilenceId).map_err(|_| format!("{text:?} is not a silence id: expected silence-N or N"))
    }
}

/// Mutes the alerts its matchers select, between `starts` and `ends` (offsets on the manager's clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    /// All must match.
    pub matchers: Vec<Matcher>,
    /// When it takes effect.
    pub starts: Duration,
    /// When it expires.
    pub ends: Duration,
    /// Who set it.
    pub author: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// A silence from `starts` to `ends`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Silence`] without matchers (it would mute everything) or with `ends` not after
    /// `starts`.
    pub fn new(
        matchers: Vec<Matcher>,
        starts: Duration,
        ends: Duration,
        author: impl Into<String>,
        comment: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        if matchers.is_empty() {
            return Err(ConfigError::Silence("a silence needs at least one matcher".into()));
        }
        if ends <= starts {
            return Err(ConfigError::Silence(format!("it ends ({ends:?}) before it starts ({starts:?})")));
        }
        Ok(Silence { matchers, starts, ends, author: author.into(), comment: comment.into() })
    }

    /// Whether it mutes `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: Duration) -> bool {
        self.starts <= now && now < self.ends && all_match(&self.matchers, labels)
    }
}

/// While a firing alert matches `source`, alerts matching `target` with the same values of the `equal`
/// labels are muted (Alertmanager's inhibition).
#[derive(Debug, Clone, PartialEq)]
pub struct InhibitRule {
    /// What the inhibiting alert matches.
    pub source: Vec<Matcher>,
    /// What the inhibited alerts match.
    pub target: Vec<Matcher>,
    /// Labels whose values must be equal on both (a label absent from both counts as equal).
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// A rule.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Inhibit`] when either side has no matcher (it would take every alert).
    pub fn new(source: Vec<Matcher>, target: Vec<Matcher>, equal: Vec<String>) -> Result<Self, ConfigError> {
        if source.is_empty() || target.is_empty() {
            return Err(ConfigError::Inhibit("both the source and the target side need a matcher".into()));
        }
        Ok(InhibitRule { source, target, equal })
    }

    /// Whether the firing alert `source` inhibits `target` under this rule. An alert matching both sides
    /// is never inhibited by an alert that also matches both (itself included): Alertmanager's guard
    /// against an alert muting itself.
    pub fn inhibits(&self, source: &Labels, target: &Labels) -> bool {
        if !all_match(&self.source, source) || !all_match(&self.target, target) {
            return false;
        }
        let equal = self.equal.iter().all(|name| source.get(name) == target.get(name));
        if !equal {
            return false;
        }
        let target_is_source = all_match(&self.source, target);
        let source_is_target = all_match(&self.target, source);
        !(target_is_source && source_is_target)
    }
}
