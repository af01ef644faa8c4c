//! Carrying a span context across process boundaries: W3C Trace Context (levels 1 and 2) and B3.

use std::collections::HashMap;

use crate::context::{SpanContext, TraceState};
use crate::id::{SpanId, TraceFlags, TraceId, eight_hex_ascii, parse_any_hex, parse_lower_hex};

/// Writes headers into a carrier.
pub trait Injector {
    /// Sets a header, replacing any with the same name.
    fn set(&mut self, name: &str, value: String);
}

/// Reads headers from a carrier. Header names are case-insensitive.
pub trait Extractor {
    /// Calls `each` with every value of a header, in order (a header may be sent several times).
    fn for_each<'a>(&'a self, name: &str, each: &mut dyn FnMut(&'a str));

    /// The first value of a header; `None` when absent.
    fn get(&self, name: &str) -> Option<&str> {
        let mut first = None;
        self.for_each(name, &mut |value| {
            if first.is_none() {
                first = Some(value);
            }
        });
        first
    }

    /// Calls `each` with the index in `names` and the value of every header named there, in one
    /// pass where the carrier can (the propagators read `traceparent` and `tracestate` together).
    fn for_each_of<'a>(&'a self, names: &[&str], each: &mut dyn FnMut(usize, &'a str)) {
        for (index, name) in names.iter().enumerate() {
            self.for_each(name, &mut |value| each(index, value));
        }
    }

    /// Every value of a header, in order.
    fn get_all(&self, name: &str) -> Vec<&str> {
        let mut all = Vec::new();
        self.for_each(name, &mut |value| all.push(value));
        all
    }
}

impl Injector for HashMap<String, String> {
    fn set(&mut self, name: &str, value: String) {
        if !self.is_empty() {
            self.retain(|k, _| !(k.len() == name.len() && k.eq_ignore_ascii_case(name)));
        }
        self.insert(name.to_owned(), value);
    }
}

impl Extractor for HashMap<String, String> {
    fn for_each<'a>(&'a self, name: &str, each: &mut dyn FnMut(&'a str)) {
        // Names are case-insensitive, so every key must be looked at anyway: one scan, no hashing
        // (comparing lengths first rejects most keys at once).
        for (key, value) in self {
            if key.len() == name.len() && key.eq_ignore_ascii_case(name) {
                each(value);
            }
        }
    }

    fn for_each_of<'a>(&'a self, names: &[&str], each: &mut dyn FnMut(usize, &'a str)) {
        for (key, value) in self {
            if let Some(index) = names.iter().position(|n| key.len() == n.len() && key.eq_ignore_ascii_case(n)) {
                each(index, value);
            }
        }
    }
}

impl Injector for Vec<(String, String)> {
    fn set(&mut self, name: &str, value: String) {
        self.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.push((name.to_owned(), value));
    }
}

impl Extractor for Vec<(String, String)> {
    fn for_each<'a>(&'a self, name: &str, each: &mut dyn FnMut(&'a str)) {
        self.as_slice().for_each(name, each);
    }

    fn for_each_of<'a>(&'a self, names: &[&str], each: &mut dyn FnMut(usize, &'a str)) {
        self.as_slice().for_each_of(names, each);
    }
}

/// Header pairs in order, as `(&str, &str)` or `(String, String)`.
impl<K: AsRef<str>, V: AsRef<str>> Extractor for [(K, V)] {
    fn for_each<'a>(&'a self, name: &str, each: &mut dyn FnMut(&'a str)) {
        self.iter().filter(|(k, _)| k.as_ref().eq_ignore_ascii_case(name)).for_each(|(_, v)| each(v.as_ref()));
    }

    fn for_each_of<'a>(&'a self, names: &[&str], each: &mut dyn FnMut(usize, &'a str)) {
        for (key, value) in self {
            if let Some(index) = names.iter().position(|n| key.as_ref().eq_ignore_ascii_case(n)) {
                each(index, value.as_ref());
            }
        }
    }
}

#[cfg(feature = "http")]
impl Injector for http::HeaderMap {
    fn set(&mut self, name: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::header::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::try_from(value))
        {
            self.insert(name, value);
        }
    }
}

#[cfg(feature = "http")]
impl Extractor for http::HeaderMap {
    fn for_each<'a>(&'a self, name: &str, each: &mut dyn FnMut(&'a str)) {
        // Values that are not visible ASCII cannot be valid trace headers: they are passed on as a
        // NUL, which every parser here rejects.
        for value in http::HeaderMap::get_all(self, name) {
            each(value.to_str().unwrap_or("\u{0}"));
        }
    }
}

/// Why a header was not accepted. The tracer counts these and starts a new trace, as the
/// specification says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// `traceparent` broke the specification's rules.
    #[error("traceparent {value:?} is invalid: {reason}")]
    Traceparent {
        /// The header as received (cut to 64 characters).
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `traceparent` was sent more than once.
    #[error("traceparent was sent {0} times; exactly one is allowed")]
    DuplicateTraceparent(usize),
    /// A B3 header broke its rules.
    #[error("b3 header {value:?} is invalid: {reason}")]
    B3 {
        /// The header as received (cut to 64 characters).
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
}

fn cut(value: &str) -> String {
    value.chars().take(64).collect()
}

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// W3C Trace Context: `traceparent` and `tracestate`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContextPropagator;

impl TraceContextPropagator {
    /// Writes `traceparent` (version 00) and, when non-empty, `tracestate`. Nothing is written for
    /// an invalid context.
    pub fn inject(&self, context: &SpanContext, carrier: &mut (impl Injector + ?Sized)) {
        if !context.is_valid() {
            return;
        }
        carrier.set(TRACEPARENT, traceparent(context));
        if !context.trace_state().is_empty() {
            carrier.set(TRACESTATE, context.trace_state().header());
        }
    }

    /// Reads a remote parent. `Ok(None)` when there is no `traceparent`; an error when it is
    /// malformed (a new trace should start). A malformed `tracestate` is dropped without affecting
    /// `traceparent`, as the specification requires.
    ///
    /// # Errors
    /// The `traceparent` header is present but invalid, or sent more than once.
    pub fn extract(&self, carrier: &(impl Extractor + ?Sized)) -> Result<Option<SpanContext>, ExtractError> {
        let (mut header, mut parents) = (None, 0usize);
        // One tracestate header (the common case) is parsed in place; several are joined first.
        let (mut single, mut joined, mut count) = (None, String::new(), 0usize);
        carrier.for_each_of(&[TRACEPARENT, TRACESTATE], &mut |index, value| {
            if index == 0 {
                header = Some(value);
                parents += 1;
                return;
            }
            count += 1;
            if count == 1 {
                single = Some(value);
            } else {
                if count == 2 {
                    joined.push_str(single.unwrap_or_default());
                }
                joined.push(',');
                joined.push_str(value);
            }
        });
        let header = match (header, parents) {
            (None, _) => return Ok(None),
            (Some(one), 1) => one,
            (Some(_), many) => return Err(ExtractError::DuplicateTraceparent(many)),
        };
        let (trace_id, span_id, flags) = parse_traceparent(header)?;
        let state = match (count, single) {
            (0, _) | (_, None) => TraceState::EMPTY,
            (1, Some(one)) => TraceState::parse(one).unwrap_or_default(),
            _ => TraceState::parse(&joined).unwrap_or_default(),
        };
        Ok(Some(SpanContext::new(trace_id, span_id, flags, true, state)))
    }
}

/// The `traceparent` value of a context: `00-{trace id}-{span id}-{flags}`.
pub fn traceparent(context: &SpanContext) -> String {
    let mut out = [b'-'; 55];
    out[..2].copy_from_slice(b"00");
    let trace = context.trace_id().to_u128();
    for (i, shift) in [96u32, 64, 32, 0].into_iter().enumerate() {
        out[3 + 8 * i..11 + 8 * i].copy_from_slice(&eight_hex_ascii((trace >> shift) as u32));
    }
    let span = context.span_id().to_u64();
    out[36..44].copy_from_slice(&eight_hex_ascii((span >> 32) as u32));
    out[44..52].copy_from_slice(&eight_hex_ascii(span as u32));
    let flags = eight_hex_ascii(u32::from(context.flags().known().bits()));
    out[53..55].copy_from_slice(&flags[6..]);
    // Every byte written is ASCII: the conversion cannot fail.
    std::str::from_utf8(&out).map(str::to_owned).unwrap_or_default()
}

/// Parses a `traceparent` value by the specification's rules, including those for versions
/// above 00.
///
/// # Errors
/// What makes the value invalid.
pub fn parse_traceparent(value: &str) -> Result<(TraceId, SpanId, TraceFlags), ExtractError> {
    let invalid = |reason| ExtractError::Traceparent { value: cut(value), reason };
    let bytes = trim_ows(value.as_bytes());
    if bytes.len() < 3 || bytes[2] != b'-' {
        return Err(invalid("it does not start with a two-digit version and a dash"));
    }
    let version =
        parse_lower_hex(&bytes[..2], 2).ok_or_else(|| invalid("the version is not two lowercase hex digits"))?;
    if version == 0xff {
        return Err(invalid("version ff is forbidden"));
    }
    if version == 0 && bytes.len() != 55 {
        return Err(invalid("a version 00 header is exactly 55 characters"));
    }
    if bytes.len() < 55 {
        return Err(invalid("it is shorter than 55 characters"));
    }
    if bytes.len() > 55 && bytes[55] != b'-' {
        return Err(invalid("a field after the flags must follow a dash"));
    }
    if bytes[35] != b'-' || bytes[52] != b'-' {
        return Err(invalid("the fields are not separated by dashes"));
    }
    let trace_id =
        parse_lower_hex(&bytes[3..35], 32).ok_or_else(|| invalid("the trace id is not 32 lowercase hex digits"))?;
    if trace_id == 0 {
        return Err(invalid("the trace id is all zeros"));
    }
    let span_id =
        parse_lower_hex(&bytes[36..52], 16).ok_or_else(|| invalid("the parent id is not 16 lowercase hex digits"))?;
    if span_id == 0 {
        return Err(invalid("the parent id is all zeros"));
    }
    let flags =
        parse_lower_hex(&bytes[53..55], 2).ok_or_else(|| invalid("the flags are not two lowercase hex digits"))?;
    Ok((TraceId::from_u128(trace_id), SpanId::from_u64(span_id as u64), TraceFlags::new(flags as u8)))
}

/// Optional whitespace (spaces and tabs, nothing else) off both ends.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !ows(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// B3 propagation (Zipkin): the single `b3` header or the `X-B3-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum B3Propagator {
    /// `b3: {trace id}-{span id}-{sampled}`.
    #[default]
    Single,
    /// `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    Multiple,
}

impl B3Propagator {
    /// Writes the context in this encoding.
    pub fn inject(&self, context: &SpanContext, carrier: &mut (impl Injector + ?Sized)) {
        if !context.is_valid() {
            return;
        }
        let sampled = if context.is_sampled() { "1" } else { "0" };
        match self {
            B3Propagator::Single => {
                carrier.set("b3", format!("{}-{}-{sampled}", context.trace_id(), context.span_id()))
            }
            B3Propagator::Multiple => {
                carrier.set("x-b3-traceid", context.trace_id().to_string());
                carrier.set("x-b3-spanid", context.span_id().to_string());
                carrier.set("x-b3-sampled", sampled.to_owned());
            }
        }
    }

    /// Reads a remote parent from either encoding (single first). 64-bit trace ids are widened
    /// to 128 bits with zeros on the left.
    ///
    /// # Errors
    /// A B3 header is present but malformed.
    pub fn extract(&self, carrier: &(impl Extractor + ?Sized)) -> Result<Option<SpanContext>, ExtractError> {
        if let Some(single) = carrier.get("b3") {
            return extract_single(single);
        }
        let Some(trace) = carrier.get("x-b3-traceid") else { return Ok(None) };
        let invalid = |value: &str, reason| ExtractError::B3 { value: cut(value), reason };
        let trace_id = b3_trace_id(trace).ok_or_else(|| invalid(trace, "the trace id is not 16 or 32 hex digits"))?;
        let span = carrier.get("x-b3-spanid").ok_or_else(|| invalid(trace, "X-B3-SpanId is missing"))?;
        let span_id = b3_span_id(span).ok_or_else(|| invalid(span, "the span id is not 16 hex digits"))?;
        let debug = carrier.get("x-b3-flags") == Some("1");
        let sampled = match carrier.get("x-b3-sampled") {
            None => debug,
            Some("1" | "true") => true,
            Some("0" | "false") => debug,
            Some(other) => return Err(invalid(other, "X-B3-Sampled is not 1, 0, true or false")),
        };
        let flags = TraceFlags::NONE.with_sampled(sampled);
        Ok(Some(SpanContext::new(trace_id, span_id, flags, true, TraceState::EMPTY)))
    }
}

fn b3_trace_id(hex: &str) -> Option<TraceId> {
    if hex.len() != 16 && hex.len() != 32 {
        return None;
    }
    let bits = parse_any_hex(hex.as_bytes())?;
    (bits != 0).then(|| TraceId::from_u128(bits))
}

fn b3_span_id(hex: &str) -> Option<SpanId> {
    if hex.len() != 16 {
        return None;
    }
    let bits = parse_any_hex(hex.as_bytes())?;
    (bits != 0).then(|| SpanId::from_u64(bits as u64))
}

fn extract_single(value: &str) -> Result<Option<SpanContext>, ExtractError> {
    let invalid = |reason| ExtractError::B3 { value: cut(value), reason };
    let mut parts = value.trim().split('-');
    let first = parts.next().unwrap_or_default();
    // A lone sampling decision ("0", "1", "d") carries no ids: there is no parent to continue.
    if matches!(first, "0" | "1" | "d") {
        return Ok(None);
    }
    let trace_id = b3_trace_id(first).ok_or_else(|| invalid("the trace id is not 16 or 32 hex digits"))?;
    let span_id = parts.next().and_then(b3_span_id).ok_or_else(|| invalid("the span id is not 16 hex digits"))?;
    let sampled = match parts.next() {
        None | Some("0") => false,
        Some("1" | "d") => true,
        Some(_) => return Err(invalid("the sampling state is not 0, 1 or d")),
    };
    if let Some(parent) = parts.next() {
        b3_span_id(parent).ok_or_else(|| invalid("the parent span id is not 16 hex digits"))?;
    }
    if parts.next().is_some() {
        return Err(invalid("too many fields"));
    }
    let flags = TraceFlags::NONE.with_sampled(sampled);
    Ok(Some(SpanContext::new(trace_id, span_id, flags, true, TraceState::EMPTY)))
}

/// The encodings a tracer injects and accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// W3C Trace Context.
    TraceContext,
    /// B3 single header.
    B3Single,
    /// B3 multiple headers.
    B3Multiple,
}

impl Propagation {
    pub(crate) fn inject(self, context: &SpanContext, carrier: &mut (impl Injector + ?Sized)) {
        match self {
            Propagation::TraceContext => TraceContextPropagator.inject(context, carrier),
            Propagation::B3Single => B3Propagator::Single.inject(context, carrier),
            Propagation::B3Multiple => B3Propagator::Multiple.inject(context, carrier),
        }
    }

    pub(crate) fn extract(self, carrier: &(impl Extractor + ?Sized)) -> Result<Option<SpanContext>, ExtractError> {
        match self {
            Propagation::TraceContext => TraceContextPropagator.extract(carrier),
            Propagation::B3Single | Propagation::B3Multiple => B3Propagator::Single.extract(carrier),
        }
    }
}
