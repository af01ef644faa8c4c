//! OTLP over HTTP/protobuf: spans to a collector's `/v1/traces`, gzip-compressed, retried on the
//! statuses the OTLP specification calls retryable, honouring `Retry-After`.
//!
//! The messages below mirror the official protobuf definitions (`opentelemetry/proto/trace/v1`,
//! `common/v1`, `resource/v1`, `collector/trace/v1`) field for field; the tests decode what this
//! exporter sends with the `opentelemetry-proto` crate's generated types to prove it.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use prost::Message;

use crate::data::{KeyValue, SpanData, SpanKind, Status, Value};
use crate::export::{ExportError, Resource, SpanExporter};

#[derive(Clone, PartialEq, Message)]
struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<ProtoResource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoResource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<ProtoKeyValue>,
}

#[derive(Clone, PartialEq, Message)]
struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    spans: Vec<ProtoSpan>,
}

#[derive(Clone, PartialEq, Message)]
struct InstrumentationScope {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    version: String,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoSpan {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    trace_state: String,
    #[prost(bytes = "vec", tag = "4")]
    parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    name: String,
    #[prost(int32, tag = "6")]
    kind: i32,
    #[prost(fixed64, tag = "7")]
    start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    attributes: Vec<ProtoKeyValue>,
    #[prost(uint32, tag = "10")]
    dropped_attributes_count: u32,
    #[prost(message, repeated, tag = "11")]
    events: Vec<ProtoEvent>,
    #[prost(uint32, tag = "12")]
    dropped_events_count: u32,
    #[prost(message, repeated, tag = "13")]
    links: Vec<ProtoLink>,
    #[prost(uint32, tag = "14")]
    dropped_links_count: u32,
    #[prost(message, optional, tag = "15")]
    status: Option<ProtoStatus>,
    #[prost(fixed32, tag = "16")]
    flags: u32,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoEvent {
    #[prost(fixed64, tag = "1")]
    time_unix_nano: u64,
    #[prost(string, tag = "2")]
    name: String,
    #[prost(message, repeated, tag = "3")]
    attributes: Vec<ProtoKeyValue>,
    #[prost(uint32, tag = "4")]
    dropped_attributes_count: u32,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoLink {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(string, tag = "3")]
    trace_state: String,
    #[prost(message, repeated, tag = "4")]
    attributes: Vec<ProtoKeyValue>,
    #[prost(uint32, tag = "5")]
    dropped_attributes_count: u32,
    #[prost(fixed32, tag = "6")]
    flags: u32,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoStatus {
    #[prost(string, tag = "2")]
    message: String,
    #[prost(int32, tag = "3")]
    code: i32,
}

#[derive(Clone, PartialEq, Message)]
struct ProtoKeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4")]
    value: Option<any_value::Value>,
}

mod any_value {
    // The variant names are the official protobuf field names.
    #![allow(clippy::enum_variant_names)]
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum Value {
        #[prost(string, tag = "1")]
        StringValue(String),
        #[prost(bool, tag = "2")]
        BoolValue(bool),
        #[prost(int64, tag = "3")]
        IntValue(i64),
        #[prost(double, tag = "4")]
        DoubleValue(f64),
    }
}

/// OTLP's span flags: the W3C flags in the low byte, and whether the parent (or linked span) is
/// remote in bits 8 and 9.
const HAS_IS_REMOTE: u32 = 0x100;
const IS_REMOTE: u32 = 0x200;

fn key_values(attributes: &[KeyValue]) -> Vec<ProtoKeyValue> {
    attributes
        .iter()
        .map(|kv| ProtoKeyValue {
            key: kv.key.to_string(),
            value: Some(AnyValue {
                value: Some(match &kv.value {
                    Value::Bool(v) => any_value::Value::BoolValue(*v),
                    Value::I64(v) => any_value::Value::IntValue(*v),
                    Value::F64(v) => any_value::Value::DoubleValue(*v),
                    Value::Str(v) => any_value::Value::StringValue(v.to_string()),
                }),
            }),
        })
        .collect()
}

fn encode_span(span: &SpanData) -> ProtoSpan {
    let remote = if span.parent_is_remote { IS_REMOTE } else { 0 };
    ProtoSpan {
        trace_id: span.context.trace_id().to_bytes().to_vec(),
        span_id: span.context.span_id().to_bytes().to_vec(),
        trace_state: span.context.trace_state().header(),
        parent_span_id: if span.parent_span_id.is_valid() {
            span.parent_span_id.to_bytes().to_vec()
        } else {
            Vec::new()
        },
        name: span.name.to_string(),
        kind: match span.kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        },
        start_time_unix_nano: span.start_unix_nanos,
        end_time_unix_nano: span.end_unix_nanos,
        attributes: key_values(&span.attributes),
        dropped_attributes_count: span.dropped_attributes,
        events: span
            .events
            .iter()
            .map(|e| ProtoEvent {
                time_unix_nano: e.time_unix_nanos,
                name: e.name.to_string(),
                attributes: key_values(&e.attributes),
                dropped_attributes_count: e.dropped_attributes,
            })
            .collect(),
        dropped_events_count: span.dropped_events,
        links: span
            .links
            .iter()
            .map(|l| ProtoLink {
                trace_id: l.context.trace_id().to_bytes().to_vec(),
                span_id: l.context.span_id().to_bytes().to_vec(),
                trace_state: l.context.trace_state().header(),
                attributes: key_values(&l.attributes),
                dropped_attributes_count: l.dropped_attributes,
                flags: u32::from(l.context.flags().known().bits())
                    | HAS_IS_REMOTE
                    | if l.context.is_remote() { IS_REMOTE } else { 0 },
            })
            .collect(),
        dropped_links_count: span.dropped_links,
        status: match &span.status {
            Status::Unset => None,
            Status::Ok => Some(ProtoStatus { message: String::new(), code: 1 }),
            Status::Error(message) => Some(ProtoStatus { message: message.to_string(), code: 2 }),
        },
        flags: u32::from(span.context.flags().known().bits()) | HAS_IS_REMOTE | remote,
    }
}

/// The protobuf body of an OTLP export request for these spans.
fn encode(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
    let mut attributes = vec![KeyValue::new("service.name", resource.service_name.to_string())];
    attributes.extend(resource.attributes.iter().cloned());
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource { attributes: key_values(&attributes) }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "infra-trace".to_owned(),
                    version: env!("CARGO_PKG_VERSION").to_owned(),
                }),
                spans: spans.iter().map(encode_span).collect(),
            }],
        }],
    };
    request.encode_to_vec()
}

/// Sends spans to an OpenTelemetry collector (or anything that speaks OTLP/HTTP) as protobuf.
#[derive(Debug)]
pub struct OtlpExporter {
    endpoint: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    timeout: Duration,
    max_retries: u32,
    agent: ureq::Agent,
}

/// Configures an [`OtlpExporter`].
#[must_use = "a builder does nothing until build() is called"]
#[derive(Debug)]
pub struct OtlpExporterBuilder {
    endpoint: String,
    headers: Vec<(String, String)>,
    gzip: bool,
    timeout: Duration,
    max_retries: u32,
}

impl OtlpExporter {
    /// An exporter posting to `endpoint`, the full URL (`http://127.0.0.1:4318/v1/traces`).
    pub fn builder(endpoint: impl Into<String>) -> OtlpExporterBuilder {
        OtlpExporterBuilder {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            gzip: true,
            timeout: Duration::from_secs(10),
            max_retries: 5,
        }
    }

    fn post(&self, body: &[u8]) -> Result<(u16, Option<Duration>), String> {
        let mut request = self.agent.post(&self.endpoint).header("Content-Type", "application/x-protobuf");
        if self.gzip {
            request = request.header("Content-Encoding", "gzip");
        }
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let response = request.send(body).map_err(|e| e.to_string())?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Ok((response.status().as_u16(), retry_after))
    }
}

impl OtlpExporterBuilder {
    /// A header on every request (an API key, say).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Whether to gzip the body (default yes).
    pub fn gzip(mut self, gzip: bool) -> Self {
        self.gzip = gzip;
        self
    }

    /// The whole time one export may take, retries and waits included (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many times a retryable failure is retried (default 5).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The exporter.
    ///
    /// # Errors
    /// An endpoint that is not an `http://` or `https://` URL.
    pub fn build(self) -> Result<OtlpExporter, ExportError> {
        if !(self.endpoint.starts_with("http://") || self.endpoint.starts_with("https://")) {
            return Err(ExportError::Collector {
                endpoint: self.endpoint,
                reason: "the endpoint must be an http:// or https:// URL ending in /v1/traces".to_owned(),
            });
        }
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(self.timeout)).http_status_as_error(false).build().into();
        Ok(OtlpExporter {
            endpoint: self.endpoint,
            headers: self.headers,
            gzip: self.gzip,
            timeout: self.timeout,
            max_retries: self.max_retries,
            agent,
        })
    }
}

/// Statuses the OTLP specification says to retry.
fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

impl SpanExporter for OtlpExporter {
    fn export(&self, spans: &[SpanData], resource: &Resource) -> Result<(), ExportError> {
        if spans.is_empty() {
            return Ok(());
        }
        let mut body = encode(spans, resource);
        if self.gzip {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&body)?;
            body = encoder.finish()?;
        }
        let failed = |reason: String| ExportError::Collector { endpoint: self.endpoint.clone(), reason };
        let deadline = Instant::now() + self.timeout;
        let mut backoff = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            let outcome = self.post(&body);
            let (reason, wait) = match outcome {
                Ok((status, _)) if (200..300).contains(&status) => return Ok(()),
                Ok((status, retry_after)) if retryable(status) => {
                    (format!("status {status}"), retry_after.unwrap_or(backoff))
                }
                Ok((status, _)) => return Err(failed(format!("status {status}, not retryable"))),
                // Transport errors (refused, reset, timed out) are worth another try too.
                Err(error) => (error, backoff),
            };
            attempt += 1;
            if attempt > self.max_retries || Instant::now() + wait > deadline {
                return Err(failed(format!("{reason} after {attempt} attempts")));
            }
            thread::sleep(wait);
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
