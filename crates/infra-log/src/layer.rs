//! A `tracing_subscriber::Layer` (feature `tracing`): events recorded with `tracing::info!` and
//! friends become entries, their fields typed.

use std::borrow::Cow;
use std::fmt;

use tracing::field::{Field as TracingField, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::aggregator::LogAggregator;
use crate::field::{Field, FieldValue};
use crate::level::Level;

/// Feeds `tracing` events into a [`LogAggregator`]: the event's target is the component, its
/// `message` field the message, its other fields typed fields.
#[derive(Debug, Clone)]
pub struct LogLayer {
    logs: LogAggregator,
}

impl LogLayer {
    /// A layer into `logs`.
    pub fn new(logs: LogAggregator) -> Self {
        LogLayer { logs }
    }
}

fn level(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::ERROR => Level::Error,
        tracing::Level::WARN => Level::Warning,
        tracing::Level::INFO => Level::Info,
        tracing::Level::DEBUG => Level::Debug,
        _ => Level::Trace,
    }
}

#[derive(Default)]
struct Collect {
    message: Option<String>,
    fields: Vec<Field>,
}

impl Collect {
    fn push(&mut self, field: &TracingField, value: FieldValue) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.fields.push(Field { key: Cow::Borrowed(field.name()), value });
        }
    }
}

impl Visit for Collect {
    fn record_debug(&mut self, field: &TracingField, value: &dyn fmt::Debug) {
        self.push(field, FieldValue::Str(Cow::Owned(format!("{value:?}"))));
    }

    fn record_str(&mut self, field: &TracingField, value: &str) {
        self.push(field, FieldValue::Str(Cow::Owned(value.to_owned())));
    }

    fn record_i64(&mut self, field: &TracingField, value: i64) {
        self.push(field, FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &TracingField, value: u64) {
        self.push(field, FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &TracingField, value: f64) {
        self.push(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &TracingField, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }

    fn record_error(&mut self, field: &TracingField, value: &(dyn std::error::Error + 'static)) {
        self.push(field, FieldValue::error(value));
    }
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        !metadata.is_event() || self.logs.enabled(level(metadata.level()), metadata.target())
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let level = level(metadata.level());
        if !self.logs.enabled(level, metadata.target()) {
            return;
        }
        let mut collect = Collect::default();
        event.record(&mut collect);
        self.logs.log(level, metadata.target().to_owned(), collect.message.unwrap_or_default(), collect.fields);
    }
}
