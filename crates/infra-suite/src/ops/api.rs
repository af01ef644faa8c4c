//! The ops API's handlers and the JSON they speak.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use infra_alert::{Alert, AlertId, Matcher, Silence, SilenceId};
use infra_apm::Format;
use infra_chaos::{Experiment, ExperimentId, ExperimentResults, Fault, LatencyProfile, Target};
use infra_deploy::Phase;
use infra_flags::{FlagStatus, FlagSummary};
use infra_log::{Level, Query as LogQuery};
use infra_trace::{SpanData, Status, TraceId};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::InfraSuite;

/// What every handler shares.
pub(super) struct Shared {
    pub(super) suite: InfraSuite,
    pub(super) token: String,
}

type Api = State<Arc<Shared>>;
type Reply = Result<Json<Value>, ApiError>;

/// An error as the API reports it: a status and a message, as JSON.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "status": self.status.as_u16(), "error": self.message }))).into_response()
    }
}

/// A JSON body, parsed whatever its `Content-Type` (curl users forget it), with errors as [`ApiError`]:
/// over the size limit 413, not JSON or not this endpoint's shape 400. An empty body reads as `{}`, so
/// endpoints whose fields are all optional take no body at all.
pub(super) struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(status, "the body is larger than this server accepts")
            } else {
                ApiError::new(status, rejection.body_text())
            }
        })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
        serde_json::from_slice(text)
            .map(Body)
            .map_err(|err| ApiError::bad_request(format!("the body is not the JSON this endpoint takes: {err}")))
    }
}

fn query<T>(parsed: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    parsed.map(|Query(value)| value).map_err(|rejection| ApiError::bad_request(rejection.body_text()))
}

pub(super) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API is described at /api/v1/openapi.json")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "this endpoint does not take that method")
}

// ---------------------------------------------------------------------------------------------------------
// Health and metrics

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(shared): Api) -> Response {
    if shared.suite.is_shut_down() {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "shutting down" }))).into_response()
    } else {
        Json(json!({ "status": "ready", "service": shared.suite.service() })).into_response()
    }
}

pub(super) async fn metrics(State(shared): Api, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or("");
    let format = Format::from_accept(accept);
    shared.suite.publish_metrics();
    ([(header::CONTENT_TYPE, format.content_type())], shared.suite.apm().render(format)).into_response()
}

pub(super) async fn dashboard() -> Response {
    html(include_str!("assets/dashboard.html"), "text/html; charset=utf-8")
}

pub(super) async fn dashboard_script() -> Response {
    html(include_str!("assets/dashboard.js"), "text/javascript; charset=utf-8")
}

pub(super) async fn dashboard_style() -> Response {
    html(include_str!("assets/dashboard.css"), "text/css; charset=utf-8")
}

/// A built-in asset; the policy allows nothing but this server's own scripts and styles.
fn html(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn transaction_json(name: &str, stats: &infra_apm::TransactionStats) -> Value {
    json!({
        "name": name,
        "count": stats.count,
        "rate_1m": stats.rate_1m,
        "error_rate_1m": stats.error_rate_1m,
        "p50_us": stats.latency_1m.p50 * 1e6,
        "p95_us": stats.latency_1m.p95 * 1e6,
        "p99_us": stats.latency_1m.p99 * 1e6,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OverviewParams {
    /// Include the kept snapshots (for a chart's first draw).
    history: Option<bool>,
}

/// Every transaction's rate, errors and latency quantiles now, and optionally the kept snapshots.
pub(super) async fn overview(State(shared): Api, parsed: Result<Query<OverviewParams>, QueryRejection>) -> Reply {
    let with_history = query(parsed)?.history.unwrap_or(false);
    let apm = shared.suite.apm();
    let now = apm.dashboard();
    let transactions: Vec<Value> = now.transactions.iter().map(|(name, stats)| transaction_json(name, stats)).collect();
    let history: Vec<Value> = if with_history {
        apm.history()
            .iter()
            .map(|snapshot| {
                let transactions: Vec<Value> =
                    snapshot.transactions.iter().map(|(name, stats)| transaction_json(name, stats)).collect();
                json!({ "at_seconds": snapshot.at_seconds, "transactions": transactions })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Json(json!({
        "service": shared.suite.service(),
        "at_seconds": now.at_seconds,
        "transactions": transactions,
        "history": history,
        "open_alerts": shared.suite.alerts().open_alerts(None).len(),
    })))
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json")).into_response()
}

// ---------------------------------------------------------------------------------------------------------
// Alerts

fn alert_json(alert: &Alert) -> Value {
    let labels: BTreeMap<&str, &str> = alert.labels.iter().collect();
    let annotations: BTreeMap<&str, &str> = alert.annotations.iter().collect();
    json!({
        "id": alert.id.to_string(),
        "fingerprint": alert.fingerprint.to_string(),
        "title": alert.title,
        "severity": alert.severity.as_str(),
        "status": alert.status.as_str(),
        "description": alert.description,
        "source": alert.source,
        "labels": labels,
        "annotations": annotations,
        "created_seconds": alert.created.as_secs_f64(),
        "last_seen_seconds": alert.last_seen.as_secs_f64(),
        "acknowledged_by": alert.acknowledged_by,
        "occurrences": alert.occurrences,
        "escalation_level": alert.escalation_level,
    })
}

fn alert_id(text: &str) -> Result<AlertId, ApiError> {
    text.parse().map_err(|_| ApiError::not_found(format!("no alert {text}: ids look like alert-7")))
}

pub(super) async fn list_alerts(State(shared): Api) -> Json<Value> {
    let alerts = shared.suite.alerts();
    let open: Vec<Value> = alerts.open_alerts(None).iter().map(alert_json).collect();
    let stats = alerts.statistics();
    Json(json!({
        "alerts": open,
        "statistics": { "created": stats.created, "firing": stats.firing, "acknowledged": stats.acknowledged,
                        "resolved": stats.resolved },
    }))
}

pub(super) async fn get_alert(State(shared): Api, Path(id): Path<String>) -> Reply {
    let id = alert_id(&id)?;
    let alert = shared.suite.alerts().get(id).ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    Ok(Json(alert_json(&alert)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Acknowledge {
    by: Option<String>,
}

pub(super) async fn acknowledge_alert(
    State(shared): Api,
    Path(id): Path<String>,
    Body(body): Body<Acknowledge>,
) -> Reply {
    let id = alert_id(&id)?;
    let by = body.by.unwrap_or_else(|| "ops-api".to_owned());
    let alerts = shared.suite.alerts();
    let changed = alerts.acknowledge(id, &by).map_err(|err| ApiError::not_found(err.to_string()))?;
    let alert = alerts.get(id).ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    Ok(Json(json!({ "changed": changed, "alert": alert_json(&alert) })))
}

pub(super) async fn resolve_alert(State(shared): Api, Path(id): Path<String>) -> Reply {
    let id = alert_id(&id)?;
    let alerts = shared.suite.alerts();
    let changed = alerts.resolve(id).map_err(|err| ApiError::not_found(err.to_string()))?;
    let alert = alerts.get(id).map(|alert| alert_json(&alert));
    Ok(Json(json!({ "changed": changed, "alert": alert })))
}

fn silence_json(id: SilenceId, silence: &Silence, now: Duration) -> Value {
    json!({
        "id": id.to_string(),
        "matchers": silence.matchers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "starts_in_seconds": silence.starts.saturating_sub(now).as_secs_f64(),
        "ends_in_seconds": silence.ends.saturating_sub(now).as_secs_f64(),
        "active": silence.starts <= now && now < silence.ends,
        "created_by": silence.author,
        "comment": silence.comment,
    })
}

pub(super) async fn list_silences(State(shared): Api) -> Json<Value> {
    let alerts = shared.suite.alerts();
    let now = alerts.now();
    let silences: Vec<Value> = alerts.silences().iter().map(|(id, silence)| silence_json(*id, silence, now)).collect();
    Json(json!({ "silences": silences }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewSilence {
    matchers: Vec<String>,
    duration_seconds: f64,
    created_by: Option<String>,
    comment: Option<String>,
}

/// The longest silence the API sets: a year (longer ones are forgotten rather than ended).
const MAX_SILENCE: f64 = 366.0 * 86_400.0;

pub(super) async fn create_silence(State(shared): Api, Body(body): Body<NewSilence>) -> Result<Response, ApiError> {
    if !(body.duration_seconds > 0.0 && body.duration_seconds <= MAX_SILENCE) {
        return Err(ApiError::bad_request(format!(
            "duration_seconds {} is out of range: give more than 0 and at most {MAX_SILENCE}",
            body.duration_seconds
        )));
    }
    let matchers = body
        .matchers
        .iter()
        .map(|text| Matcher::parse(text).map_err(|err| ApiError::bad_request(format!("matcher {text:?}: {err}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let alerts = shared.suite.alerts();
    let now = alerts.now();
    let silence = Silence::new(
        matchers,
        now,
        now + Duration::from_secs_f64(body.duration_seconds),
        body.created_by.unwrap_or_else(|| "ops-api".to_owned()),
        body.comment.unwrap_or_default(),
    )
    .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let id = alerts.add_silence(silence.clone());
    Ok((StatusCode::CREATED, Json(silence_json(id, &silence, now))).into_response())
}

pub(super) async fn expire_silence(State(shared): Api, Path(id): Path<String>) -> Reply {
    let parsed: SilenceId =
        id.parse().map_err(|_| ApiError::not_found(format!("no silence {id}: ids look like silence-3")))?;
    shared.suite.alerts().expire_silence(parsed).map_err(|err| ApiError::not_found(err.to_string()))?;
    Ok(Json(json!({ "expired": parsed.to_string() })))
}

// ---------------------------------------------------------------------------------------------------------
// Flags

fn flag_json(flag: &FlagSummary) -> Value {
    let definition = &flag.definition;
    let rollout = match &flag.code {
        Some(code) if code.status == FlagStatus::PercentageRollout => Some(code.rollout_percentage),
        _ => definition
            .strategies
            .iter()
            .find(|strategy| strategy.name == "flexibleRollout")
            .and_then(|strategy| strategy.parameters.get("rollout"))
            .and_then(|rollout| rollout.parse::<f64>().ok()),
    };
    let strategies: Vec<Value> = definition
        .strategies
        .iter()
        .map(|strategy| json!({ "name": strategy.name, "parameters": strategy.parameters }))
        .collect();
    json!({
        "name": definition.name,
        "enabled": definition.enabled,
        "description": definition.description,
        "rollout_percent": rollout,
        "strategies": strategies,
        "evaluations": { "yes": flag.analytics.yes, "no": flag.analytics.no, "variants": flag.analytics.variants },
    })
}

fn find_flag(suite: &InfraSuite, name: &str) -> Result<FlagSummary, ApiError> {
    suite
        .flags()
        .all_flags()
        .into_iter()
        .find(|flag| flag.definition.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no flag {name:?}")))
}

pub(super) async fn list_flags(State(shared): Api) -> Json<Value> {
    let flags: Vec<Value> = shared.suite.flags().all_flags().iter().map(flag_json).collect();
    Json(json!({ "flags": flags }))
}

pub(super) async fn get_flag(State(shared): Api, Path(name): Path<String>) -> Reply {
    Ok(Json(flag_json(&find_flag(&shared.suite, &name)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Toggle {
    /// The state wanted; absent: the opposite of the current one.
    enabled: Option<bool>,
}

pub(super) async fn toggle_flag(State(shared): Api, Path(name): Path<String>, Body(body): Body<Toggle>) -> Reply {
    let current = find_flag(&shared.suite, &name)?;
    let enabled = body.enabled.unwrap_or(!current.definition.enabled);
    let status = if enabled { FlagStatus::Enabled } else { FlagStatus::Disabled };
    shared.suite.flags().set_flag_status(&name, status).map_err(|err| ApiError::not_found(err.to_string()))?;
    Ok(Json(flag_json(&find_flag(&shared.suite, &name)?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rollout {
    percent: f64,
}

pub(super) async fn set_rollout(State(shared): Api, Path(name): Path<String>, Body(body): Body<Rollout>) -> Reply {
    find_flag(&shared.suite, &name)?;
    shared
        .suite
        .flags()
        .set_percentage_rollout(&name, body.percent)
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok(Json(flag_json(&find_flag(&shared.suite, &name)?)))
}

// ---------------------------------------------------------------------------------------------------------
// Deployments

fn deployments_json(suite: &InfraSuite) -> Value {
    let status = suite.deployer().status();
    let deployments: Vec<Value> = status
        .deployments
        .iter()
        .map(|d| {
            json!({ "name": d.info.name, "version": d.info.version, "percent": d.percent,
                    "health": d.health.as_str() })
        })
        .collect();
    let events: Vec<Value> = status
        .events
        .iter()
        .rev()
        .take(50)
        .map(|event| json!({ "at_seconds": event.at.as_secs_f64(), "what": event.what }))
        .collect();
    let rollout = suite.rollout().map(|rollout| {
        let events: Vec<String> = rollout.events().iter().map(|event| format!("{event:?}")).collect();
        json!({ "phase": rollout.phase(), "events": events })
    });
    json!({
        "service": status.service,
        "active": status.active,
        "deployments": deployments,
        "rollout": rollout,
        "events": events,
    })
}

pub(super) async fn deployments(State(shared): Api) -> Json<Value> {
    Json(deployments_json(&shared.suite))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Shift {
    deployment: String,
    percent: f64,
}

pub(super) async fn shift_traffic(State(shared): Api, Body(body): Body<Shift>) -> Reply {
    let deployer = shared.suite.deployer();
    if !deployer.status().deployments.iter().any(|d| d.info.name == body.deployment) {
        return Err(ApiError::not_found(format!("no deployment {:?}", body.deployment)));
    }
    deployer.shift_traffic(&body.deployment, body.percent).map_err(|err| ApiError::bad_request(err.to_string()))?;
    Ok(Json(deployments_json(&shared.suite)))
}

fn open_rollout(suite: &InfraSuite) -> Result<infra_deploy::Rollout, ApiError> {
    let rollout = suite.rollout().ok_or_else(|| ApiError::not_found("no rollout is tracked by this suite"))?;
    match rollout.phase() {
        Phase::Promoted | Phase::Aborted { .. } => {
            Err(ApiError::conflict(format!("the rollout is over: {}", json!(rollout.phase()))))
        }
        _ => Ok(rollout),
    }
}

pub(super) async fn promote(State(shared): Api) -> Reply {
    open_rollout(&shared.suite)?.promote();
    Ok(Json(deployments_json(&shared.suite)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rollback {
    reason: Option<String>,
}

/// Aborts the tracked rollout while it runs; otherwise returns traffic to the previous deployment.
pub(super) async fn rollback(State(shared): Api, Body(body): Body<Rollback>) -> Reply {
    let reason = body.reason.unwrap_or_else(|| "rolled back through the ops API".to_owned());
    match open_rollout(&shared.suite) {
        Ok(rollout) => rollout.abort(&reason),
        Err(_) => shared.suite.deployer().rollback().map_err(|err| ApiError::conflict(err.to_string()))?,
    }
    Ok(Json(deployments_json(&shared.suite)))
}

// ---------------------------------------------------------------------------------------------------------
// Chaos

fn target_name(target: &Target) -> String {
    match target {
        Target::Point(point) => point.clone(),
        Target::Prefix(prefix) => format!("{prefix}*"),
        Target::Any => "*".to_owned(),
    }
}

fn experiment_json(results: &ExperimentResults) -> Value {
    json!({
        "id": results.id.to_string(),
        "name": results.name,
        "kind": format!("{:?}", results.kind),
        "target": target_name(&results.target),
        "state": results.state.as_str(),
        "calls": results.calls,
        "injections": results.injections,
        "errors": results.errors,
        "latency_added_ms": results.latency_added.as_secs_f64() * 1e3,
        "abort_reason": results.abort_reason,
    })
}

pub(super) async fn list_experiments(State(shared): Api) -> Json<Value> {
    let chaos = shared.suite.chaos();
    let experiments: Vec<Value> = chaos.all_results().iter().map(experiment_json).collect();
    Json(json!({ "killed": chaos.is_killed(), "experiments": experiments }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewExperiment {
    name: Option<String>,
    /// An injection point's name; ending in `*`: every point with that prefix.
    target: String,
    fault: FaultSpec,
    probability: Option<f64>,
    duration_seconds: Option<f64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum FaultSpec {
    Latency { millis: f64 },
    Error,
}

/// The longest experiment the API starts: a day.
const MAX_EXPERIMENT: f64 = 86_400.0;

pub(super) async fn start_experiment(
    State(shared): Api,
    Body(body): Body<NewExperiment>,
) -> Result<Response, ApiError> {
    let target = match body.target.as_str() {
        "" => return Err(ApiError::bad_request("target is empty: name an injection point, or a prefix ending in *")),
        "*" => Target::Any,
        prefix if prefix.ends_with('*') => Target::Prefix(prefix.trim_end_matches('*').to_owned()),
        point => Target::point(point),
    };
    let fault = match body.fault {
        FaultSpec::Latency { millis } if (0.0..=60_000.0).contains(&millis) => {
            Fault::Latency(LatencyProfile::Fixed(Duration::from_secs_f64(millis / 1e3)))
        }
        FaultSpec::Latency { millis } => {
            return Err(ApiError::bad_request(format!("latency millis {millis} is out of range: 0 to 60000")));
        }
        FaultSpec::Error => Fault::Error,
    };
    let mut experiment = Experiment::new(target, fault);
    if let Some(name) = body.name {
        experiment = experiment.name(name);
    }
    if let Some(probability) = body.probability {
        if !(0.0..=1.0).contains(&probability) {
            return Err(ApiError::bad_request(format!("probability {probability} is out of range: 0 to 1")));
        }
        experiment = experiment.probability(probability);
    }
    if let Some(seconds) = body.duration_seconds {
        if !(seconds > 0.0 && seconds <= MAX_EXPERIMENT) {
            return Err(ApiError::bad_request(format!(
                "duration_seconds {seconds} is out of range: more than 0, at most {MAX_EXPERIMENT}"
            )));
        }
        experiment = experiment.duration(Duration::from_secs_f64(seconds));
    }
    let chaos = shared.suite.chaos();
    let id = chaos.create_experiment(experiment).map_err(|err| ApiError::bad_request(err.to_string()))?;
    chaos.start_experiment(id).map_err(|err| ApiError::conflict(err.to_string()))?;
    let results = chaos.results(id).ok_or_else(|| ApiError::not_found(format!("no experiment {id}")))?;
    Ok((StatusCode::CREATED, Json(experiment_json(&results))).into_response())
}

pub(super) async fn stop_experiment(State(shared): Api, Path(id): Path<String>) -> Reply {
    let parsed: ExperimentId =
        id.parse().map_err(|_| ApiError::not_found(format!("no experiment {id}: ids look like exp-2")))?;
    let chaos = shared.suite.chaos();
    let stopped = chaos.stop_experiment(parsed).map_err(|err| ApiError::not_found(err.to_string()))?;
    let results = chaos.results(parsed).ok_or_else(|| ApiError::not_found(format!("no experiment {parsed}")))?;
    Ok(Json(json!({ "stopped": stopped, "experiment": experiment_json(&results) })))
}

pub(super) async fn kill_switch(State(shared): Api) -> Json<Value> {
    shared.suite.chaos().kill_switch();
    Json(json!({ "killed": true }))
}

pub(super) async fn rearm(State(shared): Api) -> Json<Value> {
    shared.suite.chaos().rearm();
    Json(json!({ "killed": shared.suite.chaos().is_killed() }))
}

// ---------------------------------------------------------------------------------------------------------
// Traces and logs

fn span_json(span: &SpanData) -> Value {
    let (status, message) = match &span.status {
        Status::Unset => ("unset", None),
        Status::Ok => ("ok", None),
        Status::Error(message) => ("error", Some(message.to_string())),
    };
    let attributes: BTreeMap<&str, String> =
        span.attributes.iter().map(|kv| (&*kv.key, kv.value.to_string())).collect();
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|event| json!({ "name": event.name, "time_unix_nanos": event.time_unix_nanos }))
        .collect();
    let parent = if span.parent_span_id.to_u64() == 0 { None } else { Some(span.parent_span_id.to_string()) };
    json!({
        "trace_id": span.context.trace_id().to_string(),
        "span_id": span.context.span_id().to_string(),
        "parent_span_id": parent,
        "name": span.name,
        "kind": span.kind,
        "start_unix_nanos": span.start_unix_nanos,
        "end_unix_nanos": span.end_unix_nanos,
        "duration_us": span.duration().as_secs_f64() * 1e6,
        "status": status,
        "status_message": message,
        "attributes": attributes,
        "events": events,
    })
}

pub(super) async fn get_trace(State(shared): Api, Path(id): Path<String>) -> Reply {
    let trace_id = TraceId::from_hex(&id)
        .ok_or_else(|| ApiError::not_found(format!("no trace {id}: trace ids are 32 lowercase hex digits")))?;
    let mut spans = shared.suite.spans().trace(trace_id);
    if spans.is_empty() {
        return Err(ApiError::not_found(format!("no trace {id} is kept (unsampled, or evicted since)")));
    }
    spans.sort_by_key(|span| span.start_unix_nanos);
    Ok(Json(json!({ "trace_id": id, "spans": spans.iter().map(span_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Recent {
    limit: Option<usize>,
}

/// The most recent traces, newest first: each root's name, duration, status and span count.
pub(super) async fn recent_traces(State(shared): Api, parsed: Result<Query<Recent>, QueryRejection>) -> Reply {
    let limit = query(parsed)?.limit.unwrap_or(20).min(500);
    let traces: Vec<Value> = shared
        .suite
        .spans()
        .recent_traces(limit)
        .iter()
        .filter_map(|spans| {
            // The root: the span without a local parent (the first to start when a trace arrived whole
            // from elsewhere).
            let root = spans
                .iter()
                .find(|span| span.parent_span_id.to_u64() == 0 || span.parent_is_remote)
                .or_else(|| spans.iter().min_by_key(|span| span.start_unix_nanos))?;
            Some(json!({
                "trace_id": root.context.trace_id().to_string(),
                "root": root.name,
                "duration_us": root.duration().as_secs_f64() * 1e6,
                "status": if spans.iter().any(|span| matches!(span.status, Status::Error(_))) { "error" } else { "ok" },
                "spans": spans.len(),
            }))
        })
        .collect();
    Ok(Json(json!({ "traces": traces })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogSearch {
    text: Option<String>,
    level: Option<String>,
    component: Option<String>,
    trace_id: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn search_logs(State(shared): Api, parsed: Result<Query<LogSearch>, QueryRejection>) -> Reply {
    let search = query(parsed)?;
    let min_level = match &search.level {
        Some(level) => Some(level.parse::<Level>().map_err(|err| ApiError::bad_request(err.to_string()))?),
        None => None,
    };
    let trace_id = match &search.trace_id {
        Some(id) => Some(
            TraceId::from_hex(id)
                .ok_or_else(|| ApiError::bad_request(format!("trace_id {id:?}: expected 32 lowercase hex digits")))?
                .to_u128(),
        ),
        None => None,
    };
    let found = shared.suite.log_memory().search(&LogQuery {
        min_level,
        component: search.component,
        trace_id,
        text: search.text,
        limit: search.limit.unwrap_or(100).min(1_000),
        ..LogQuery::default()
    });
    let entries: Vec<Value> =
        found.iter().map(|entry| serde_json::from_str(&entry.to_json()).unwrap_or(Value::Null)).collect();
    Ok(Json(json!({ "entries": entries })))
}
