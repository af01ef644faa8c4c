//! What travels between services: the span context and the vendor list of `tracestate`.

use std::fmt;
use std::sync::Arc;

use crate::id::{SpanId, TraceFlags, TraceId};

/// The most list members a `tracestate` may hold.
pub const TRACESTATE_MAX_MEMBERS: usize = 32;
/// The combined length of `tracestate` this crate propagates: the 512 characters the specification
/// asks every vendor to carry at least.
pub const TRACESTATE_MAX_LEN: usize = 512;
/// Members longer than this are the first to go when `tracestate` must be cut.
const TRACESTATE_LONG_MEMBER: usize = 128;

/// The identity of a span as other services see it: trace id, span id, flags, `tracestate`, and
/// whether it came from another process.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    remote: bool,
    state: TraceState,
}

impl SpanContext {
    /// The invalid context: no trace.
    pub const INVALID: SpanContext = SpanContext {
        trace_id: TraceId::INVALID,
        span_id: SpanId::INVALID,
        flags: TraceFlags::NONE,
        remote: false,
        state: TraceState::EMPTY,
    };

    /// A context with these parts.
    pub fn new(trace_id: TraceId, span_id: SpanId, flags: TraceFlags, remote: bool, state: TraceState) -> Self {
        SpanContext { trace_id, span_id, flags, remote, state }
    }

    /// The trace this span belongs to.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// This span's id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The `trace-flags` byte.
    pub fn flags(&self) -> TraceFlags {
        self.flags
    }

    /// Whether the trace is sampled (recorded).
    pub fn is_sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// Whether this context was extracted from another process's headers.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// Both ids are valid.
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }

    /// The vendor list.
    pub fn trace_state(&self) -> &TraceState {
        &self.state
    }

    /// This context with another vendor list.
    pub fn with_trace_state(mut self, state: TraceState) -> Self {
        self.state = state;
        self
    }
}

impl fmt::Debug for SpanContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanContext")
            .field("trace_id", &format_args!("{}", self.trace_id))
            .field("span_id", &format_args!("{}", self.span_id))
            .field("flags", &self.flags)
            .field("remote", &self.remote)
            .field("state", &self.state)
            .finish()
    }
}

/// The W3C `tracestate` list: vendor keys and opaque values, left-most most recent.
///
/// Cheap to clone (one shared allocation, none when empty). Parsing follows the specification:
/// optional whitespace and empty members are accepted, a malformed member or a repeated key discards
/// the whole list, more than 32 members discard it, and the list is cut to [`TRACESTATE_MAX_LEN`]
/// characters by dropping members longer than 128 characters first, then from the right.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct TraceState(Option<Arc<[Member]>>);

/// One `key=value` list member.
type Member = (Box<str>, Box<str>);

/// Why a `tracestate` key or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraceStateError {
    /// The key breaks the specification's key grammar.
    #[error(
        "tracestate key {0:?} is invalid: keys are 1-256 of a-z 0-9 _ - * / starting with a-z or 0-9, optionally tenant@system"
    )]
    InvalidKey(String),
    /// The value breaks the specification's value grammar.
    #[error(
        "tracestate value {0:?} is invalid: values are 1-256 printable ASCII characters except ',' and '=', not ending in a space"
    )]
    InvalidValue(String),
}

impl TraceState {
    /// The empty list.
    pub const EMPTY: TraceState = TraceState(None);

    /// Parses a combined `tracestate` header (several headers joined with commas). `None` when the
    /// specification says to discard it.
    pub fn parse(header: &str) -> Option<TraceState> {
        let mut members: Vec<(Box<str>, Box<str>)> = Vec::new();
        for raw in header.split(',') {
            let member = raw.trim_matches(|c| c == ' ' || c == '\t');
            if member.is_empty() {
                continue;
            }
            let (key, value) = member.split_once('=')?;
            if !valid_key(key) || !valid_value(value) {
                return None;
            }
            if members.iter().any(|(existing, _)| &**existing == key) {
                return None;
            }
            members.push((key.into(), value.into()));
            if members.len() > TRACESTATE_MAX_MEMBERS {
                return None;
            }
        }
        Some(TraceState::from_members(members))
    }

    /// A list of these members, cut to the propagation limit.
    fn from_members(mut members: Vec<(Box<str>, Box<str>)>) -> TraceState {
        truncate(&mut members);
        if members.is_empty() { TraceState(None) } else { TraceState(Some(members.into())) }
    }

    /// Builds a list from key/value pairs, left-most first.
    ///
    /// # Errors
    /// A key or value the specification does not allow.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<TraceState, TraceStateError> {
        let mut members: Vec<(Box<str>, Box<str>)> = Vec::new();
        for (key, value) in pairs {
            check(key, value)?;
            members.retain(|(existing, _)| &**existing != key);
            members.push((key.into(), value.into()));
        }
        members.truncate(TRACESTATE_MAX_MEMBERS);
        Ok(TraceState::from_members(members))
    }

    /// This list with `key` set to `value` and moved to the left, as a vendor does when it takes
    /// part in the trace; the right-most member goes if the list would exceed 32.
    ///
    /// # Errors
    /// A key or value the specification does not allow.
    pub fn insert(&self, key: &str, value: &str) -> Result<TraceState, TraceStateError> {
        check(key, value)?;
        let mut members: Vec<(Box<str>, Box<str>)> = Vec::with_capacity(self.len() + 1);
        members.push((key.into(), value.into()));
        members.extend(self.iter().filter(|(k, _)| *k != key).map(|(k, v)| (k.into(), v.into())));
        members.truncate(TRACESTATE_MAX_MEMBERS);
        Ok(TraceState::from_members(members))
    }

    /// This list without `key`.
    pub fn remove(&self, key: &str) -> TraceState {
        let members: Vec<(Box<str>, Box<str>)> =
            self.iter().filter(|(k, _)| *k != key).map(|(k, v)| (k.into(), v.into())).collect();
        TraceState::from_members(members)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The members, left-most first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().flat_map(|members| members.iter()).map(|(k, v)| (&**k, &**v))
    }

    /// How many members.
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |members| members.len())
    }

    /// No members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The header value: `key=value` pairs joined by commas.
    pub fn header(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push('=');
            out.push_str(value);
        }
        out
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.header())
    }
}

fn check(key: &str, value: &str) -> Result<(), TraceStateError> {
    if !valid_key(key) {
        return Err(TraceStateError::InvalidKey(key.to_owned()));
    }
    if !valid_value(value) {
        return Err(TraceStateError::InvalidValue(value.to_owned()));
    }
    Ok(())
}

/// Cuts whole members until the combined header fits [`TRACESTATE_MAX_LEN`]: members longer than
/// 128 characters first (right to left), then from the right.
fn truncate(members: &mut Vec<(Box<str>, Box<str>)>) {
    let member_len = |(k, v): &(Box<str>, Box<str>)| k.len() + 1 + v.len();
    let combined = |members: &[(Box<str>, Box<str>)]| {
        members.iter().map(member_len).sum::<usize>() + members.len().saturating_sub(1)
    };
    while combined(members) > TRACESTATE_MAX_LEN {
        match members.iter().rposition(|m| member_len(m) > TRACESTATE_LONG_MEMBER) {
            Some(long) => {
                members.remove(long);
            }
            None => {
                members.pop();
            }
        }
    }
}

fn simple_key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// The key grammar: a simple key of up to 256 characters starting with a-z or 0-9, or a multi-tenant
/// key `tenant@system` (tenant up to 241 characters starting with a-z or 0-9, system up to 14 starting
/// with a-z).
fn valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    match key.split_once('@') {
        None => {
            (1..=256).contains(&bytes.len())
                && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
                && bytes.iter().all(|&c| simple_key_char(c))
        }
        Some((tenant, system)) => {
            let (tenant, system) = (tenant.as_bytes(), system.as_bytes());
            (1..=241).contains(&tenant.len())
                && matches!(tenant[0], b'a'..=b'z' | b'0'..=b'9')
                && tenant.iter().all(|&c| simple_key_char(c))
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && system.iter().all(|&c| simple_key_char(c))
        }
    }
}

/// The value grammar: 1 to 256 printable ASCII characters except `,` and `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    (1..=256).contains(&bytes.len())
        && bytes.iter().all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && bytes[bytes.len() - 1] != b' '
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_specification_allows() {
        let state = TraceState::parse("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE,,\t").unwrap();
        assert_eq!(state.header(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        assert_eq!(state.get("congo"), Some("t61rcWkgMzE"));
        assert!(TraceState::parse("").unwrap().is_empty());
        assert!(TraceState::parse("foo@bar=1").is_some());
        assert!(TraceState::parse("foo= leading space kept").unwrap().get("foo") == Some(" leading space kept"));
    }

    #[test]
    fn discards_what_it_must() {
        for bad in ["foo", "Foo=1", "foo=1,foo=2", "foo=a,b", "@foo=1", "foo@=1", "foo@bar@baz=1", "foo=\u{1}"] {
            assert!(TraceState::parse(bad).is_none(), "{bad:?} should be discarded");
        }
        let thirty_two: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(TraceState::parse(&thirty_two.join(",")).unwrap().len(), 32);
        let thirty_three: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(TraceState::parse(&thirty_three.join(",")).is_none());
    }

    #[test]
    fn long_lists_lose_long_members_first_then_the_right_end() {
        let long = format!("long={}", "x".repeat(200));
        let mut members = vec![long.clone()];
        members.extend((0..30).map(|i| format!("key{i:02}=value{i:02}")));
        let state = TraceState::parse(&members.join(",")).unwrap();
        assert!(state.get("long").is_none(), "the member over 128 characters goes first");
        assert!(state.header().len() <= TRACESTATE_MAX_LEN);
        assert_eq!(state.iter().next().unwrap().0, "key00", "order of the rest is kept");
    }

    #[test]
    fn insert_moves_the_key_left() {
        let state = TraceState::parse("rojo=1,congo=2").unwrap();
        assert_eq!(state.insert("congo", "3").unwrap().header(), "congo=3,rojo=1");
        assert!(state.insert("Bad", "1").is_err());
    }
}
