//! Prometheus as an analysis provider (feature `prometheus`): a PromQL query through the HTTP API
//! (`GET /api/v1/query`), its one value the measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::rollout::Analysis;

/// Why a query gave no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrometheusError {
    /// Prometheus could not be reached or did not answer in time.
    #[error("Prometheus at {url} unreachable: {reason}")]
    Unreachable {
        /// The server.
        url: String,
        /// What happened.
        reason: String,
    },
    /// Prometheus answered with an error (a PromQL syntax error, a timeout of the query).
    #[error("Prometheus refused the query: {0}")]
    Query(String),
    /// The answer was not one number: several series (aggregate them, e.g. with `sum`), a matrix, or
    /// something that is not Prometheus's JSON.
    #[error("the query's answer is not one value: {0}")]
    Shape(String),
}

/// A PromQL query whose single value is an analysis measurement: `sum(rate(...[1m]))` for a rate, or a
/// ratio of two. No series (nothing measured yet) and NaN (0/0) are no value: the analysis is then
/// inconclusive and pauses the rollout.
#[derive(Debug, Clone)]
pub struct PrometheusQuery {
    url: String,
    query: String,
    agent: ureq::Agent,
    failures: Arc<AtomicU64>,
}

impl PrometheusQuery {
    /// `query` against the Prometheus at `url` (`http://127.0.0.1:9090`), with a 5-second timeout.
    pub fn new(url: impl Into<String>, query: impl Into<String>) -> Self {
        Self::with_timeout(url, query, Duration::from_secs(5))
    }

    /// As [`PrometheusQuery::new`], with the timeout for each query.
    pub fn with_timeout(url: impl Into<String>, query: impl Into<String>, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build();
        PrometheusQuery {
            url: url.into().trim_end_matches('/').to_owned(),
            query: query.into(),
            agent: agent.into(),
            failures: Arc::default(),
        }
    }

    /// The query.
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Queries that failed so far (unreachable, refused, or not one value): each counts as no value.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Runs the query now: `Ok(None)` when there is no series or the value is NaN.
    ///
    /// # Errors
    ///
    /// [`PrometheusError`] when Prometheus is unreachable, refuses the query, or answers with more than
    /// one value.
    pub fn value(&self) -> Result<Option<f64>, PrometheusError> {
        let unreachable = |reason: String| PrometheusError::Unreachable { url: self.url.clone(), reason };
        let mut response = self
            .agent
            .get(format!("{}/api/v1/query", self.url))
            .query("query", &self.query)
            .call()
            .map_err(|err| unreachable(err.to_string()))?;
        let text = response.body_mut().read_to_string().map_err(|err| unreachable(err.to_string()))?;
        parse_answer(&text)
    }

    /// The measurement as an [`Analysis`] takes it: a failed query counts (see
    /// [`PrometheusQuery::failures`]) and reads as no value.
    pub fn metric(&self) -> impl Fn() -> Option<f64> + Send + Sync + 'static {
        let query = self.clone();
        move || match query.value() {
            Ok(value) => value,
            Err(_) => {
                query.failures.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

impl Analysis {
    /// An analysis of a Prometheus query (feature `prometheus`): succeeds when `success` holds for its
    /// value, fails when `failure` holds; no value is inconclusive.
    pub fn prometheus(
        name: impl Into<String>,
        query: &PrometheusQuery,
        success: impl Fn(f64) -> bool + Send + Sync + 'static,
        failure: impl Fn(f64) -> bool + Send + Sync + 'static,
    ) -> Analysis {
        Analysis::new(name, query.metric(), success, failure)
    }
}

/// Reads Prometheus's answer: `{"status": "success", "data": {"resultType": "vector" | "scalar", ...}}`.
fn parse_answer(text: &str) -> Result<Option<f64>, PrometheusError> {
    let answer: serde_json::Value =
        serde_json::from_str(text).map_err(|err| PrometheusError::Shape(format!("not JSON ({err}): {text:.200}")))?;
    if answer["status"] != "success" {
        let error = answer["error"].as_str().unwrap_or("no reason given");
        return Err(PrometheusError::Query(error.to_owned()));
    }
    let data = &answer["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"],
        Some("vector") => match data["result"].as_array().map(Vec::as_slice) {
            Some([]) => return Ok(None),
            Some([series]) => &series["value"],
            Some(many) => {
                return Err(PrometheusError::Shape(format!("{} series; aggregate them to one (sum, avg)", many.len())));
            }
            None => return Err(PrometheusError::Shape("a vector without a result list".into())),
        },
        other => return Err(PrometheusError::Shape(format!("result type {other:?}; use an instant vector"))),
    };
    // A sample is [time, "value"]; Prometheus writes values as strings ("NaN", "+Inf" included).
    let value =
        sample[1].as_str().ok_or_else(|| PrometheusError::Shape(format!("a sample without a value: {sample}")))?;
    let value: f64 = value.parse().map_err(|_| PrometheusError::Shape(format!("value {value:?} is not a number")))?;
    Ok(if value.is_nan() { None } else { Some(value) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vectors_and_scalars_and_refuses_ambiguity() {
        let vector =
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"0.25"]}]}}"#;
        assert_eq!(parse_answer(vector), Ok(Some(0.25)));
        let scalar = r#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"3"]}}"#;
        assert_eq!(parse_answer(scalar), Ok(Some(3.0)));
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_answer(empty), Ok(None));
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert_eq!(parse_answer(nan), Ok(None));
        let two = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"a":"1"},"value":[1,"1"]},{"metric":{"a":"2"},"value":[1,"2"]}]}}"#;
        assert!(matches!(parse_answer(two), Err(PrometheusError::Shape(reason)) if reason.contains("aggregate")));
        let refused = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert_eq!(parse_answer(refused), Err(PrometheusError::Query("parse error at char 5".into())));
        assert!(matches!(parse_answer("<html>"), Err(PrometheusError::Shape(_))));
    }

    #[test]
    fn an_unreachable_server_is_no_value_and_is_counted() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let query = PrometheusQuery::with_timeout(format!("http://127.0.0.1:{port}"), "up", Duration::from_millis(300));
        assert!(matches!(query.value(), Err(PrometheusError::Unreachable { .. })));
        let metric = query.metric();
        assert_eq!(metric(), None);
        assert_eq!(query.failures(), 1);
    }
}
