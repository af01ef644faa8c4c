//! Toxics: what a proxy does to the bytes (or connections) passing through, in Toxiproxy's vocabulary.

use serde_json::{Map, Value, json};

use super::ProxyError;

/// Which way through the proxy a toxic applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the upstream server.
    Upstream,
    /// From the upstream server back to the client.
    Downstream,
}

impl Direction {
    fn parse(text: &str) -> Result<Self, ProxyError> {
        match text {
            "upstream" => Ok(Direction::Upstream),
            "downstream" => Ok(Direction::Downstream),
            other => Err(ProxyError::BadRequest(format!(
                "stream was invalid, can be either upstream or downstream: {other:?}"
            ))),
        }
    }

    /// Toxiproxy's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upstream => "upstream",
            Direction::Downstream => "downstream",
        }
    }
}

/// A toxic's type and attributes (Toxiproxy's units: milliseconds, KB/s of 1000 bytes, microseconds for
/// the slicer's delay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToxicKind {
    /// Delays each chunk by `latency` ms, plus or minus up to `jitter` ms.
    Latency {
        /// Milliseconds added.
        latency: u64,
        /// Milliseconds of uniform variation either way.
        jitter: u64,
    },
    /// Passes data at `rate` KB/s.
    Bandwidth {
        /// Kilobytes (1000 bytes) per second.
        rate: u64,
    },
    /// Delays closing the connection by `delay` ms after the peer closed it.
    SlowClose {
        /// Milliseconds.
        delay: u64,
    },
    /// Drops all data, and closes the connection after `timeout` ms; with 0, holds it open (a black hole)
    /// until the toxic is removed.
    Timeout {
        /// Milliseconds; 0 never closes.
        timeout: u64,
    },
    /// Resets the connection (TCP RST) after `timeout` ms.
    ResetPeer {
        /// Milliseconds; 0 resets at once.
        timeout: u64,
    },
    /// Cuts data into pieces of `average_size` ± `size_variation` bytes, `delay` µs apart.
    Slicer {
        /// Average piece size in bytes.
        average_size: u64,
        /// Variation either way in bytes.
        size_variation: u64,
        /// Microseconds between pieces.
        delay: u64,
    },
    /// Closes the connection once `bytes` bytes have passed.
    LimitData {
        /// Bytes allowed through.
        bytes: u64,
    },
    /// Ours: answers HTTP requests on the connections it hits with `status` (say 503) instead of passing
    /// them to the upstream server. Toxicity is the share of connections answered so.
    HttpStatus {
        /// The status code answered.
        status: u16,
        /// The response body.
        body: String,
    },
    /// Ours: resets the first `connections` connections made after it was added, then lets connections
    /// through (a service that refuses connections while it starts).
    FailFirst {
        /// Connections refused.
        connections: u64,
    },
}

impl ToxicKind {
    /// Toxiproxy's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ToxicKind::Latency { .. } => "latency",
            ToxicKind::Bandwidth { .. } => "bandwidth",
            ToxicKind::SlowClose { .. } => "slow_close",
            ToxicKind::Timeout { .. } => "timeout",
            ToxicKind::ResetPeer { .. } => "reset_peer",
            ToxicKind::Slicer { .. } => "slicer",
            ToxicKind::LimitData { .. } => "limit_data",
            ToxicKind::HttpStatus { .. } => "http_status",
            ToxicKind::FailFirst { .. } => "fail_first",
        }
    }

    /// Parses a type and its attributes; unknown attributes are ignored and missing ones are 0, as in
    /// Toxiproxy, but negative or fractional numbers are refused.
    pub(crate) fn parse(kind: &str, attributes: &Map<String, Value>) -> Result<Self, ProxyError> {
        let number = |name: &str| -> Result<u64, ProxyError> {
            match attributes.get(name) {
                None | Some(Value::Null) => Ok(0),
                Some(value) => value.as_u64().ok_or_else(|| {
                    ProxyError::BadRequest(format!("attribute {name} must be a whole number >= 0, got {value}"))
                }),
            }
        };
        Ok(match kind {
            "latency" => ToxicKind::Latency { latency: number("latency")?, jitter: number("jitter")? },
            "bandwidth" => ToxicKind::Bandwidth { rate: number("rate")? },
            "slow_close" => ToxicKind::SlowClose { delay: number("delay")? },
            "timeout" => ToxicKind::Timeout { timeout: number("timeout")? },
            "reset_peer" => ToxicKind::ResetPeer { timeout: number("timeout")? },
            "slicer" => ToxicKind::Slicer {
                average_size: number("average_size")?,
                size_variation: number("size_variation")?,
                delay: number("delay")?,
            },
            "limit_data" => ToxicKind::LimitData { bytes: number("bytes")? },
            "http_status" => {
                let status = match number("status")? {
                    0 => 503,
                    code @ 100..=599 => code as u16,
                    other => return Err(ProxyError::BadRequest(format!("status {other} is not an HTTP status"))),
                };
                let body = attributes.get("body").and_then(Value::as_str).unwrap_or_default().to_owned();
                ToxicKind::HttpStatus { status, body }
            }
            "fail_first" => ToxicKind::FailFirst { connections: number("connections")? },
            other => {
                return Err(ProxyError::BadRequest(format!(
                    "invalid toxic type {other:?}: expected latency, bandwidth, slow_close, timeout, reset_peer, \
                     slicer, limit_data, http_status or fail_first"
                )));
            }
        })
    }

    fn attributes(&self) -> Value {
        match self {
            ToxicKind::Latency { latency, jitter } => json!({ "latency": latency, "jitter": jitter }),
            ToxicKind::Bandwidth { rate } => json!({ "rate": rate }),
            ToxicKind::SlowClose { delay } => json!({ "delay": delay }),
            ToxicKind::Timeout { timeout } | ToxicKind::ResetPeer { timeout } => json!({ "timeout": timeout }),
            ToxicKind::Slicer { average_size, size_variation, delay } => {
                json!({ "average_size": average_size, "size_variation": size_variation, "delay": delay })
            }
            ToxicKind::LimitData { bytes } => json!({ "bytes": bytes }),
            ToxicKind::HttpStatus { status, body } => json!({ "status": status, "body": body }),
            ToxicKind::FailFirst { connections } => json!({ "connections": connections }),
        }
    }
}

/// A toxic on a proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    /// Its name, unique on its proxy (Toxiproxy's default: `<type>_<stream>`).
    pub name: String,
    /// The direction it applies to.
    pub stream: Direction,
    /// The share of connections it applies to, decided once per connection.
    pub toxicity: f32,
    /// What it does.
    pub kind: ToxicKind,
}

impl Toxic {
    /// A toxic applying to every connection in `stream`, named as Toxiproxy would.
    pub fn new(kind: ToxicKind, stream: Direction) -> Self {
        Toxic { name: format!("{}_{}", kind.type_name(), stream.as_str()), stream, toxicity: 1.0, kind }
    }

    /// Parses Toxiproxy's JSON form: `{"name", "type", "stream", "toxicity", "attributes"}`.
    pub(crate) fn from_json(value: &Value) -> Result<Self, ProxyError> {
        let object = value.as_object().ok_or_else(|| ProxyError::BadRequest("a toxic is a JSON object".into()))?;
        let kind_name = object
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| ProxyError::BadRequest("missing required field: type".into()))?;
        let stream = match object.get("stream").and_then(Value::as_str) {
            None | Some("") => Direction::Downstream,
            Some(stream) => Direction::parse(stream)?,
        };
        let empty = Map::new();
        let attributes = match object.get("attributes") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(attributes)) => attributes,
            Some(other) => return Err(ProxyError::BadRequest(format!("attributes must be an object, got {other}"))),
        };
        let kind = ToxicKind::parse(kind_name, attributes)?;
        let toxicity = parse_toxicity(object.get("toxicity"))?.unwrap_or(1.0);
        let name = match object.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => format!("{}_{}", kind.type_name(), stream.as_str()),
        };
        Ok(Toxic { name, stream, toxicity, kind })
    }

    /// Applies a Toxiproxy update (`{"attributes": {...}, "toxicity": x}`): given attributes replace the
    /// current ones, the rest keep their values.
    pub(crate) fn updated(&self, value: &Value) -> Result<Self, ProxyError> {
        let object = value.as_object().ok_or_else(|| ProxyError::BadRequest("an update is a JSON object".into()))?;
        let mut attributes = match self.kind.attributes() {
            Value::Object(current) => current,
            _ => Map::new(),
        };
        if let Some(Value::Object(given)) = object.get("attributes") {
            attributes.extend(given.iter().map(|(key, value)| (key.clone(), value.clone())));
        }
        let kind = ToxicKind::parse(self.kind.type_name(), &attributes)?;
        let toxicity = parse_toxicity(object.get("toxicity"))?.unwrap_or(self.toxicity);
        Ok(Toxic { name: self.name.clone(), stream: self.stream, toxicity, kind })
    }

    /// Toxiproxy's JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.kind.attributes(),
        })
    }
}

fn parse_toxicity(value: Option<&Value>) -> Result<Option<f32>, ProxyError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_f64() {
            Some(toxicity) if (0.0..=1.0).contains(&toxicity) => Ok(Some(toxicity as f32)),
            _ => Err(ProxyError::BadRequest(format!("toxicity must be a number in 0..=1, got {value}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toxics_round_trip_through_json_with_toxiproxy_defaults() {
        let toxic = Toxic::from_json(&json!({"type": "latency", "attributes": {"latency": 100, "jitter": 5}})).unwrap();
        assert_eq!(toxic.name, "latency_downstream");
        assert_eq!(toxic.stream, Direction::Downstream);
        assert_eq!(toxic.toxicity, 1.0);
        assert_eq!(toxic.kind, ToxicKind::Latency { latency: 100, jitter: 5 });
        assert_eq!(Toxic::from_json(&toxic.to_json()).unwrap(), toxic);

        let updated = toxic.updated(&json!({"attributes": {"jitter": 0}, "toxicity": 0.5})).unwrap();
        assert_eq!(updated.kind, ToxicKind::Latency { latency: 100, jitter: 0 });
        assert_eq!(updated.toxicity, 0.5);
    }

    #[test]
    fn bad_toxics_are_refused() {
        for bad in [
            json!({"type": "lag"}),
            json!({"type": "latency", "stream": "sideways"}),
            json!({"type": "latency", "attributes": {"latency": -5}}),
            json!({"type": "latency", "attributes": {"latency": 1.5}}),
            json!({"type": "latency", "toxicity": 2.0}),
            json!({"type": "http_status", "attributes": {"status": 999}}),
            json!({"attributes": {}}),
            json!([]),
        ] {
            assert!(matches!(Toxic::from_json(&bad), Err(ProxyError::BadRequest(_))), "{bad}");
        }
    }
}
