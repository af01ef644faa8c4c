//! A log entry and its two written forms: a JSON object and a human-readable line.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::context::TraceContext;
use crate::field::{Field, FieldValue};
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
    pub fn field(&self, key: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|f| f.key == key).map(|f| &f.value)
    }

    /// The entry as one JSON object (no newline).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out, &mut TimestampCache::default());
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends the entry as one JSON object (no newline): the same document as its `Serialize`
    /// implementation, written directly, with the date part of the timestamp reused from `cache`
    /// while the second does not change.
    pub fn write_json(&self, out: &mut Vec<u8>, cache: &mut TimestampCache) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        cache.write(out, self.time_unix_nanos);
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(self.level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"service.name\":");
        write_json_str(out, &self.service);
        out.extend_from_slice(b",\"component\":");
        write_json_str(out, &self.component);
        out.extend_from_slice(b",\"message\":");
        write_json_str(out, &self.message);
        if !self.fields.is_empty() {
            out.extend_from_slice(b",\"fields\":{");
            for (i, field) in self.fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, &field.key);
                out.push(b':');
                match &field.value {
                    FieldValue::Str(v) => write_json_str(out, v),
                    FieldValue::Error(v) => write_json_str(out, v),
                    FieldValue::I64(v) => write_int(out, v.unsigned_abs(), *v < 0),
                    FieldValue::U64(v) => write_int(out, *v, false),
                    FieldValue::Bool(v) => out.extend_from_slice(if *v { b"true" } else { b"false" }),
                    // serde_json's float formatting (and `null` for NaN and infinities, as it does).
                    FieldValue::F64(v) => {
                        let _ = serde_json::to_writer(&mut *out, v);
                    }
                }
            }
            out.push(b'}');
        }
        if let Some(error) = &self.error {
            out.extend_from_slice(b",\"error\":");
            write_json_str(out, error);
        }
        if let Some(trace) = &self.trace {
            out.extend_from_slice(b",\"trace_id\":\"");
            write_hex(out, trace.trace_id, 32);
            if trace.span_id != 0 {
                out.extend_from_slice(b"\",\"span_id\":\"");
                write_hex(out, u128::from(trace.span_id), 16);
            }
            out.extend_from_slice(b"\",\"trace_flags\":\"");
            write_hex(out, u128::from(trace.flags), 2);
            out.push(b'"');
        }
        out.push(b'}');
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

/// The date and time to the second of the last timestamp written, reused while the second lasts.
#[derive(Debug, Default, Clone)]
pub struct TimestampCache {
    second: Option<u64>,
    prefix: String,
}

impl TimestampCache {
    fn write(&mut self, out: &mut Vec<u8>, unix_nanos: u64) {
        let second = unix_nanos / 1_000_000_000;
        if self.second != Some(second) {
            let full = rfc3339(second * 1_000_000_000);
            self.prefix = full[..19].to_owned();
            self.second = Some(second);
        }
        out.extend_from_slice(self.prefix.as_bytes());
        out.push(b'.');
        let nanos = unix_nanos % 1_000_000_000;
        let mut digits = [b'0'; 9];
        let mut n = nanos;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
        out.extend_from_slice(&digits);
        out.push(b'Z');
    }
}

/// A JSON string: quotes, and escapes for `"`, `\` and control characters (as serde_json writes
/// them); runs without any are copied whole.
fn write_json_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

fn write_int(out: &mut Vec<u8>, mut value: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

fn write_hex(out: &mut Vec<u8>, value: u128, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(HEX[((value >> (i * 4)) & 0xf) as usize]);
    }
}

/// Control characters shown as escapes, so one entry is always one line.
pub(crate) fn push_escaped(out: &mut String, text: &str) {
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
    fn the_direct_writer_agrees_with_serde() {
        let entry = LogEntry {
            time_unix_nanos: 1_796_122_800_000_000_042,
            level: Level::Warning,
            service: "svc \"quoted\"".into(),
            component: "orders::fills".into(),
            message: "tab\there, newline\n, bell\u{7}, backslash \\, unicode é ☃".into(),
            fields: vec![
                Field::new("int", -42i64),
                Field::new("uint", u64::MAX),
                Field::new("float", 0.1),
                Field::new("nan", f64::NAN),
                Field::new("yes", true),
                Field::new("k\"ey", "v\u{1f}"),
                Field { key: "err".into(), value: FieldValue::Error("boom".into()) },
            ],
            error: Some("failed: \"x\"".into()),
            trace: Some(TraceContext::new(0xabc, 0xdef, 1)),
        };
        let direct: serde_json::Value = serde_json::from_str(&entry.to_json()).unwrap();
        let via_serde: serde_json::Value = serde_json::to_value(&entry).unwrap();
        assert_eq!(direct, via_serde);
        let mut cache = TimestampCache::default();
        for nanos in [0u64, 999_999_999, 1_000_000_000, 1_796_122_800_123_456_789] {
            let mut out = Vec::new();
            cache.write(&mut out, nanos);
            assert_eq!(String::from_utf8(out).unwrap(), rfc3339(nanos));
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(951_782_400_000_000_001), "2000-02-29T00:00:00.000000001Z");
        assert_eq!(rfc3339(1_796_122_800_123_456_789), "2026-12-01T11:00:00.123456789Z");
    }
}
