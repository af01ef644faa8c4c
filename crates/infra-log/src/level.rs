//! Severity levels.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

/// How severe an entry is (the seed's `LogLevel`, plus `Trace` for the `tracing` and `log` bridges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    /// Step-by-step detail.
    Trace = 0,
    /// Diagnostic detail.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that the service handled.
    Warning = 3,
    /// An operation failed.
    Error = 4,
    /// The service cannot go on as it should.
    Critical = 5,
}

impl Level {
    /// Every level, least severe first.
    pub const ALL: [Level; 6] =
        [Level::Trace, Level::Debug, Level::Info, Level::Warning, Level::Error, Level::Critical];

    /// The upper-case name, as written in the JSON and console outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    /// The syslog severity (RFC 5424): critical 2, error 3, warning 4, info 6, debug and trace 7.
    pub fn syslog_severity(self) -> u8 {
        match self {
            Level::Critical => 2,
            Level::Error => 3,
            Level::Warning => 4,
            Level::Info => 6,
            Level::Debug | Level::Trace => 7,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not one of trace, debug, info, warn(ing), error, critical (or fatal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?}: use trace, debug, info, warn, error or critical")]
pub struct ParseLevelError(pub String);

impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(text: &str) -> Result<Level, ParseLevelError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "trace" => Ok(Level::Trace),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" | "warning" => Ok(Level::Warning),
            "error" => Ok(Level::Error),
            "critical" | "fatal" => Ok(Level::Critical),
            _ => Err(ParseLevelError(text.to_owned())),
        }
    }
}
