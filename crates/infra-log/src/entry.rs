//! A log entry and its two written forms: a JSON object and a human-readable line.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::context::TraceContext;
use crate::field::Field;
use crate::level::Level;

/// One structured entry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogEntry {
    /// When it was logged, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// How severe.
    pub level: Level,
    /// The service that logged it.
    pub service: Arc<str>,
    /// The part of the service (`orders`, `pool::postgres`).
    pub component: Cow<'static, str>,
    /// What happened.
    pub message: Cow<'static, str>,
    /// Typed key-value fields.
    pub fields: Vec<Field>,
    /// The error text (the seed's `exception`), if any.
    pub error: Option<String>,
    /// The trace it belongs to, if one was current.
    pub trace: Option<TraceContext>,
}

impl LogEntry {
    /// The field with this key.
    pub fn field(&self, key: &str) -> Option<&crate::FieldValue> {
        self.fields.iter().find(|f| f.key == key).map(|f| &f.value)
    }

    /// The entry as one JSON object (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The entry as a human-readable line (no newline), with ANSI colours for the level if asked.
    pub fn to_text(&self, colour: bool) -> String {
        let mut line = String::with_capacity(96 + self.message.len());
        line.push_str(&rfc3339(self.time_unix_nanos));
        line.push(' ');
        if colour {
            let code = match self.level {
                Level::Trace | Level::Debug => "2",
                Level::Info => "32",
                Level::Warning => "33",
                Level::Error => "31",
                Level::Critical => "1;31",
            };
            let _ = write!(line, "\x1b[{code}m{:<8}\x1b[0m", self.level.as_str());
        } else {
            let _ = write!(line, "{:<8}", self.level.as_str());
        }
        let _ = write!(line, " {} [{}] ", self.service, self.component);
        push_escaped(&mut line, &self.message);
        for field in &self.fields {
            let _ = write!(line, " {}=", field.key);
            push_escaped(&mut line, &field.value.to_string());
        }
        if let Some(error) = &self.error {
            line.push_str(" error=");
            push_escaped(&mut line, error);
        }
        if let Some(trace) = &self.trace {
            let _ = write!(line, " trace_id={:032x} span_id={:016x}", trace.trace_id, trace.span_id);
        }
        line
    }
}

/// Control characters shown as escapes, so one entry is always one line.
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

impl Serialize for LogEntry {
    /// `timestamp` (RFC 3339, nanoseconds, UTC), `level`, `service.name`, `component`, `message`,
    /// `fields`, `error`, and OpenTelemetry's names for trace context outside OTLP: `trace_id`,
    /// `span_id`, `trace_flags`.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("timestamp", &rfc3339(self.time_unix_nanos))?;
        map.serialize_entry("level", self.level.as_str())?;
        map.serialize_entry("service.name", &*self.service)?;
        map.serialize_entry("component", &self.component)?;
        map.serialize_entry("message", &self.message)?;
        if !self.fields.is_empty() {
            map.serialize_entry("fields", &Fields(&self.fields))?;
        }
        if let Some(error) = &self.error {
            map.serialize_entry("error", error)?;
        }
        if let Some(trace) = &self.trace {
            map.serialize_entry("trace_id", &trace.trace_id_hex())?;
            if trace.span_id != 0 {
                map.serialize_entry("span_id", &trace.span_id_hex())?;
            }
            map.serialize_entry("trace_flags", &format!("{:02x}", trace.flags))?;
        }
        map.end()
    }
}

struct Fields<'a>(&'a [Field]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for field in self.0 {
            map.serialize_entry(&field.key, &field.value)?;
        }
        map.end()
    }
}

/// RFC 3339 in UTC with nanoseconds: `2026-12-01T09:30:00.123456789Z`.
pub fn rfc3339(unix_nanos: u64) -> String {
    let seconds = unix_nanos / 1_000_000_000;
    let nanos = unix_nanos % 1_000_000_000;
    let days = (seconds / 86_400) as i64;
    let in_day = seconds % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(rfc3339(1_796_122_800_123_456_789), "2026-12-01T11:00:00.123456789Z");
    }
}
