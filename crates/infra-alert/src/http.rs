//! Notifiers over HTTP (feature `http`): a webhook with Alertmanager's payload, and a client that pushes
//! alerts into a real Alertmanager.

use std::time::Duration;

use serde_json::{Value, json};

use crate::notify::{Notification, NotificationStatus, Notifier, rfc3339};

fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build().into()
}

fn post_json(agent: &ureq::Agent, url: &str, body: &Value) -> Result<(), String> {
    let payload = body.to_string();
    let response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(payload.as_bytes())
        .map_err(|err| format!("POST {url}: {err}"))?;
    let status = response.status().as_u16();
    if (200..300).contains(&status) { Ok(()) } else { Err(format!("POST {url}: status {status}")) }
}

/// POSTs each notification as Alertmanager's webhook payload (version 4) to a URL, so receivers written
/// for Alertmanager's webhooks take it unchanged.
#[derive(Debug)]
pub struct WebhookNotifier {
    url: String,
    external_url: String,
    agent: ureq::Agent,
}

impl WebhookNotifier {
    /// A webhook to `url`, each request bounded by `timeout`; `external_url` fills the payload's
    /// `externalURL` and `generatorURL` (where a reader can look the alert up).
    pub fn new(url: impl Into<String>, external_url: impl Into<String>, timeout: Duration) -> Self {
        WebhookNotifier { url: url.into(), external_url: external_url.into(), agent: agent(timeout) }
    }
}

impl Notifier for WebhookNotifier {
    fn notify(&self, notification: &Notification) -> Result<(), String> {
        post_json(&self.agent, &self.url, &notification.webhook_payload(&self.external_url))
    }
}

/// Pushes alerts to a real Alertmanager's `POST /api/v2/alerts`: firing alerts with an end `firing_ttl`
/// ahead (Alertmanager resolves an alert nobody re-sends by then, so keep the route's `repeat_interval`
/// shorter), resolved ones with the time they ended, which resolves them there.
#[derive(Debug)]
pub struct AlertmanagerNotifier {
    url: String,
    generator_url: String,
    firing_ttl: Duration,
    agent: ureq::Agent,
}

impl AlertmanagerNotifier {
    /// A client for the Alertmanager at `base_url` (`http://host:9093`).
    pub fn new(base_url: &str, generator_url: impl Into<String>, firing_ttl: Duration, timeout: Duration) -> Self {
        AlertmanagerNotifier {
            url: format!("{}/api/v2/alerts", base_url.trim_end_matches('/')),
            generator_url: generator_url.into(),
            firing_ttl,
            agent: agent(timeout),
        }
    }
}

impl Notifier for AlertmanagerNotifier {
    fn notify(&self, notification: &Notification) -> Result<(), String> {
        let alerts: Vec<Value> = notification
            .alerts
            .iter()
            .map(|alert| {
                let ends = match (alert.status, alert.ends_at) {
                    (NotificationStatus::Resolved, Some(ends)) => notification.epoch + ends,
                    _ => notification.epoch + notification.sent_at + self.firing_ttl,
                };
                let labels: serde_json::Map<String, Value> =
                    alert.labels.iter().map(|(k, v)| (k.to_owned(), Value::String(v.to_owned()))).collect();
                let annotations: serde_json::Map<String, Value> =
                    alert.annotations.iter().map(|(k, v)| (k.to_owned(), Value::String(v.to_owned()))).collect();
                json!({
                    "labels": labels,
                    "annotations": annotations,
                    "startsAt": rfc3339(notification.epoch + alert.starts_at),
                    "endsAt": rfc3339(ends),
                    "generatorURL": self.generator_url,
                })
            })
            .collect();
        post_json(&self.agent, &self.url, &Value::Array(alerts))
    }
}
