//! What a finished span is made of: attributes, events, links, status, kind, and the record handed to
//! exporters.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

use crate::context::SpanContext;
use crate::id::SpanId;

/// A typed attribute value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    I64(i64),
    /// A float.
    F64(f64),
    /// A string; `&'static str` keys and values are never copied.
    Str(Cow<'static, str>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::Str(v) => f.write_str(v),
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::$variant(v $(as $cast)?)
            }
        }
    )*};
}

value_from!(bool => Bool, i64 => I64, i32 => I64 as i64, u32 => I64 as i64, u16 => I64 as i64,
    i16 => I64 as i64, u8 => I64 as i64, f64 => F64, f32 => F64 as f64);

impl From<u64> for Value {
    /// Values above `i64::MAX` saturate: OTLP has no unsigned integer.
    fn from(v: u64) -> Self {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    /// Values above `i64::MAX` saturate: OTLP has no unsigned integer.
    fn from(v: usize) -> Self {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<&'static str> for Value {
    fn from(v: &'static str) -> Self {
        Value::Str(Cow::Borrowed(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(Cow::Owned(v))
    }
}

impl From<Cow<'static, str>> for Value {
    fn from(v: Cow<'static, str>) -> Self {
        Value::Str(v)
    }
}

/// An attribute: a key and a typed value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyValue {
    /// The key, by OpenTelemetry's semantic conventions where one applies (`http.request.method`).
    pub key: Cow<'static, str>,
    /// The value.
    pub value: Value,
}

impl KeyValue {
    /// An attribute.
    pub fn new(key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        KeyValue { key: key.into(), value: value.into() }
    }
}

/// What part a span plays in a request, as OpenTelemetry defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    /// Work inside the process.
    #[default]
    Internal,
    /// Handling a request from another process.
    Server,
    /// A request to another process.
    Client,
    /// Sending a message to be handled later.
    Producer,
    /// Handling a message sent earlier.
    Consumer,
}

/// How a span ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(tag = "code", content = "description", rename_all = "snake_case")]
pub enum Status {
    /// Nobody said.
    #[default]
    Unset,
    /// Succeeded, as the application says.
    Ok,
    /// Failed, with a description.
    Error(Cow<'static, str>),
}

impl Status {
    /// An error with this description.
    pub fn error(description: impl Into<Cow<'static, str>>) -> Self {
        Status::Error(description.into())
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        matches!(self, Status::Error(_))
    }
}

/// Something that happened during a span, with its time and fields (the seed's span log).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// What happened.
    pub name: Cow<'static, str>,
    /// When, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Its fields.
    pub attributes: Vec<KeyValue>,
    /// Fields beyond the per-event limit, counted and left out.
    pub dropped_attributes: u32,
}

/// A reference to a span in this or another trace (a batch job's inputs, a retried request).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    /// The span linked to.
    pub context: SpanContext,
    /// Why.
    pub attributes: Vec<KeyValue>,
    /// Attributes beyond the per-link limit, counted and left out.
    pub dropped_attributes: u32,
}

impl Link {
    /// A link without attributes.
    pub fn new(context: SpanContext) -> Self {
        Link { context, attributes: Vec::new(), dropped_attributes: 0 }
    }
}

/// A finished span as exporters receive it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SpanData {
    /// Its identity.
    #[serde(flatten)]
    pub context: SpanContext,
    /// The parent's span id, [`SpanId::INVALID`] for a root.
    #[serde(serialize_with = "crate::data::serialize_span_id")]
    pub parent_span_id: SpanId,
    /// Whether the parent is in another process.
    pub parent_is_remote: bool,
    /// The operation.
    pub name: Cow<'static, str>,
    /// Its part in the request.
    pub kind: SpanKind,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Attributes (the seed's tags).
    pub attributes: Vec<KeyValue>,
    /// Attributes beyond the limit, counted and left out.
    pub dropped_attributes: u32,
    /// Events (the seed's logs).
    pub events: Vec<Event>,
    /// Events beyond the limit.
    pub dropped_events: u32,
    /// Links.
    pub links: Vec<Link>,
    /// Links beyond the limit.
    pub dropped_links: u32,
    /// How it ended.
    pub status: Status,
}

impl SpanData {
    /// How long it took.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.end_unix_nanos.saturating_sub(self.start_unix_nanos))
    }

    /// The attribute with this key.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes.iter().find(|kv| kv.key == key).map(|kv| &kv.value)
    }
}

pub(crate) fn serialize_span_id<S: serde::Serializer>(id: &SpanId, s: S) -> Result<S::Ok, S::Error> {
    if id.is_valid() { s.collect_str(id) } else { s.serialize_none() }
}

impl Serialize for SpanContext {
    /// The OpenTelemetry names for trace context in non-OTLP formats: `trace_id`, `span_id`,
    /// `trace_flags` (hex), and `trace_state` when there is one.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("trace_id", &self.trace_id().to_string())?;
        map.serialize_entry("span_id", &self.span_id().to_string())?;
        map.serialize_entry("trace_flags", &format!("{:02x}", self.flags().bits()))?;
        if !self.trace_state().is_empty() {
            map.serialize_entry("trace_state", &self.trace_state().header())?;
        }
        map.end()
    }
}

/// How many attributes, events and links a span keeps; the rest are counted in the span's
/// `dropped_*` fields and in the tracer's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanLimits {
    /// Attributes per span.
    pub attributes: u32,
    /// Events per span.
    pub events: u32,
    /// Links per span.
    pub links: u32,
    /// Attributes per event.
    pub attributes_per_event: u32,
    /// Attributes per link.
    pub attributes_per_link: u32,
}

impl Default for SpanLimits {
    /// OpenTelemetry's defaults: 128 of each.
    fn default() -> Self {
        SpanLimits { attributes: 128, events: 128, links: 128, attributes_per_event: 128, attributes_per_link: 128 }
    }
}
