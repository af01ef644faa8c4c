//! Structured log aggregation for latency-sensitive services: the caller pays for a clock reading
//! and a hand-over to a queue; formatting, redaction and writing happen on a background worker and
//! on one thread per sink, so a slow or failing sink never holds anyone up; nothing accepted is lost
//! at shutdown, and every entry dropped on purpose is counted.
//!
//! ```
//! use infra_log::{Level, LogAggregator, MemorySink, Query, TraceContext, info, set_trace_context};
//!
//! let memory = MemorySink::new(10_000);
//! let logs = LogAggregator::builder("order-gateway")
//!     .directives("info,orders=debug")
//!     .sink(memory.clone())
//!     .build()?;
//!
//! let _trace = set_trace_context(TraceContext::new(0x4bf92f3577b34da6a3ce929d0e0e4736, 0x00f067aa0ba902b7, 1));
//! info!(logs, "orders", "order accepted", order_id = 1042u64, venue = "XLON", qty = 100, password = "hunter2");
//! logs.debug("book refreshed", "orders");
//! logs.debug("not kept: pool logs at info", "pool");
//! logs.flush();
//!
//! let trace = memory.trace(0x4bf92f3577b34da6a3ce929d0e0e4736);
//! assert_eq!(trace.len(), 2);
//! assert_eq!(trace[0].field("venue").map(ToString::to_string).as_deref(), Some("XLON"));
//! assert_eq!(trace[0].field("password").map(ToString::to_string).as_deref(), Some("[REDACTED]"));
//! let found = memory.search(&Query { text: Some("refreshed".into()), min_level: Some(Level::Debug), ..Query::default() });
//! assert_eq!(found.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Levels come from directives in the familiar `info,orders=debug,pool=warn` form
//! ([`Directives`]); custom filters run on the worker ([`LogAggregator::add_filter`]). Correlation:
//! a thread-local context ([`set_trace_context`]), a future adapter ([`with_trace_context`]) and a
//! [`ContextProvider`] for a tracer. Sinks: [`JsonLinesSink`], [`RollingFileSink`] (rotation by
//! size and time, retention by count, size and age, gzip, fsync policy; [`search_files`] searches
//! them, rolled ones included), [`ConsoleSink`], [`MemorySink`] (searchable, trace lookups by
//! index), [`SyslogSink`] (RFC 5424 over UDP, TCP and Unix sockets), [`CallbackSink`], or any
//! [`Sink`]. The guide is
//! `docs/log.md`.
//!
//! ## Feature flags
//!
//! - `log`: `LogBridge`, a `log::Log` feeding the aggregator, so `log::info!` reports here.
//! - `tracing`: `LogLayer`, a `tracing_subscriber::Layer`, so `tracing::info!` events become
//!   entries with typed fields.

mod aggregator;
#[cfg(feature = "log")]
mod bridge;
mod burst;
mod context;
mod entry;
mod field;
mod filter;
#[cfg(feature = "tracing")]
mod layer;
mod level;
mod rolling;
mod sink;
mod syslog;

pub use aggregator::{BuildError, LogAggregator, LogAggregatorBuilder, LogStats, Overflow, SinkStats};
#[cfg(feature = "log")]
pub use bridge::LogBridge;
pub use context::{
    ContextProvider, TraceContext, TraceContextGuard, WithTraceContext, clear_trace_context, current_trace_context,
    set_trace_context, with_trace_context,
};
pub use entry::{LogEntry, TimestampCache, rfc3339};
pub use field::{Field, FieldValue};
pub use filter::{DirectiveError, Directives};
#[cfg(feature = "tracing")]
pub use layer::LogLayer;
pub use level::{Level, ParseLevelError};
pub use rolling::{Fsync, RollingError, RollingFileBuilder, RollingFileSink, search_files};
pub use sink::{CallbackSink, ConsoleSink, JsonLinesSink, MemorySink, Query, Sink};
pub use syslog::{ENTERPRISE_NUMBER, SyslogError, SyslogSink, SyslogTransport};

/// Logs an entry with typed fields, building nothing unless the level is enabled:
/// `log!(logs, Level::Info, "orders", "accepted", order_id = 7u64, "http.method" = "POST")`.
/// Field values are anything that converts into a [`FieldValue`]: strings, integers, floats, bools,
/// and errors through [`FieldValue::error`].
#[macro_export]
macro_rules! log {
    ($logs:expr, $level:expr, $component:expr, $message:expr $(, $key:tt = $value:expr)* $(,)?) => {{
        let logs: &$crate::LogAggregator = &$logs;
        let level: $crate::Level = $level;
        if logs.enabled(level, $component) {
            logs.log_checked(level, $component, $message, ::std::vec![$($crate::Field::new($crate::__field_key!($key), $value)),*]);
        }
    }};
}

/// [`log!`] at debug level.
#[macro_export]
macro_rules! debug {
    ($logs:expr, $component:expr, $message:expr $(, $key:tt = $value:expr)* $(,)?) => {
        $crate::log!($logs, $crate::Level::Debug, $component, $message $(, $key = $value)*)
    };
}

/// [`log!`] at info level.
#[macro_export]
macro_rules! info {
    ($logs:expr, $component:expr, $message:expr $(, $key:tt = $value:expr)* $(,)?) => {
        $crate::log!($logs, $crate::Level::Info, $component, $message $(, $key = $value)*)
    };
}

/// [`log!`] at warning level.
#[macro_export]
macro_rules! warn {
    ($logs:expr, $component:expr, $message:expr $(, $key:tt = $value:expr)* $(,)?) => {
        $crate::log!($logs, $crate::Level::Warning, $component, $message $(, $key = $value)*)
    };
}

/// [`log!`] at error level.
#[macro_export]
macro_rules! error {
    ($logs:expr, $component:expr, $message:expr $(, $key:tt = $value:expr)* $(,)?) => {
        $crate::log!($logs, $crate::Level::Error, $component, $message $(, $key = $value)*)
    };
}

/// [`log!`] at critical level.
#[macro_export]
macro_rules! critical {
    ($logs:expr, $component:expr, $message:expr $(, $key:tt = $value:expr)* $(,)?) => {
        $crate::log!($logs, $crate::Level::Critical, $component, $message $(, $key = $value)*)
    };
}

/// A field key written as an identifier (`order_id`) or a string literal (`"http.method"`).
#[doc(hidden)]
#[macro_export]
macro_rules! __field_key {
    ($key:ident) => {
        ::core::stringify!($key)
    };
    ($key:literal) => {
        $key
    };
}
