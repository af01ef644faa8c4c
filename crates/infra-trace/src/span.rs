//! A span in progress: an RAII handle that records until it ends.

use std::borrow::Cow;
use std::fmt;

use crate::context::SpanContext;
use crate::current::{ContextGuard, attach_ref};
use crate::data::{Event, KeyValue, Link, SpanData, SpanKind, SpanLimits, Status, Value};
use crate::id::SpanId;
use crate::pipeline;

/// A span in progress. It ends when dropped or when [`Span::end`] is called, and only then goes to
/// the exporters. An unsampled span carries its context (so the trace continues downstream) and
/// records nothing; every method on it is a no-op.
///
/// `Send`, so a span can move into a task; it does not hold the tracer, so keeping it costs the
/// tracer nothing.
pub struct Span {
    context: SpanContext,
    /// Taken (and ended) by `Drop`, never dropped in place: the compiler's drop glue for a span then has
    /// nothing of a recording's to do, and stays small enough to inline into every span's end.
    recording: std::mem::ManuallyDrop<Option<Recording>>,
}

/// What a sampled span holds while it runs: kept small, so that starting and ending a span moves
/// little memory; attributes, events, links and status live in [`Extras`], allocated on first use.
/// Times are raw readings of the tracer's clock until the worker converts them.
pub(crate) struct Recording {
    pub(crate) tracer_id: u64,
    pub(crate) parent_span_id: SpanId,
    pub(crate) name: Cow<'static, str>,
    pub(crate) start: u64,
    pub(crate) extras: Option<Box<Extras>>,
    pub(crate) kind: SpanKind,
    pub(crate) parent_is_remote: bool,
}

/// The parts of a recording most spans of a hot path never use.
pub(crate) struct Extras {
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) events: Vec<Event>,
    pub(crate) links: Vec<Link>,
    pub(crate) status: Status,
    pub(crate) dropped_attributes: u32,
    pub(crate) dropped_events: u32,
    pub(crate) dropped_links: u32,
    pub(crate) limits: SpanLimits,
}

impl Extras {
    pub(crate) fn new(limits: SpanLimits) -> Box<Extras> {
        Box::new(Extras {
            attributes: Vec::new(),
            events: Vec::new(),
            links: Vec::new(),
            status: Status::Unset,
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
            limits,
        })
    }
}

impl Recording {
    fn extras(&mut self) -> &mut Extras {
        let tracer_id = self.tracer_id;
        self.extras.get_or_insert_with(|| Extras::new(pipeline::limits(tracer_id)))
    }
}

/// An ended span on its way to the worker.
pub(crate) struct Ended {
    pub(crate) context: SpanContext,
    pub(crate) recording: Recording,
    pub(crate) end: u64,
}

impl Span {
    #[inline(always)]
    pub(crate) fn new(context: SpanContext, recording: Option<Recording>) -> Self {
        Span { context, recording: std::mem::ManuallyDrop::new(recording) }
    }

    /// A span that records nothing, with this context (for code that must hand on a span but has
    /// no tracer).
    #[inline]
    pub fn non_recording(context: SpanContext) -> Self {
        Span { context, recording: std::mem::ManuallyDrop::new(None) }
    }

    /// Its identity, for propagation and for children.
    pub fn context(&self) -> &SpanContext {
        &self.context
    }

    /// Whether it records (it was sampled).
    pub fn is_recording(&self) -> bool {
        self.recording.is_some()
    }

    /// Sets an attribute (the seed's `add_span_tag`), replacing one with the same key. Beyond the
    /// limit, new keys are counted and left out.
    pub fn set_attribute(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) {
        let Some(recording) = &mut *self.recording else { return };
        let extras = recording.extras();
        let key = key.into();
        let value = value.into();
        if let Some(existing) = extras.attributes.iter_mut().find(|kv| kv.key == key) {
            existing.value = value;
        } else if extras.attributes.len() < extras.limits.attributes as usize {
            extras.attributes.push(KeyValue { key, value });
        } else {
            extras.dropped_attributes += 1;
        }
    }

    /// Sets several attributes.
    pub fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        for kv in attributes {
            self.set_attribute(kv.key, kv.value);
        }
    }

    /// Records an event now, with fields (the seed's `add_span_log`).
    pub fn add_event(&mut self, name: impl Into<Cow<'static, str>>, attributes: impl IntoIterator<Item = KeyValue>) {
        let Some(recording) = &mut *self.recording else { return };
        let time = pipeline::now(recording.tracer_id);
        let extras = recording.extras();
        if extras.events.len() >= extras.limits.events as usize {
            extras.dropped_events += 1;
            return;
        }
        let (attributes, dropped_attributes) = bounded(attributes, extras.limits.attributes_per_event);
        extras.events.push(Event { name: name.into(), time_unix_nanos: time, attributes, dropped_attributes });
    }

    /// Links another span (from this or another trace).
    pub fn add_link(&mut self, context: SpanContext, attributes: impl IntoIterator<Item = KeyValue>) {
        let Some(recording) = &mut *self.recording else { return };
        let extras = recording.extras();
        if extras.links.len() >= extras.limits.links as usize || !context.is_valid() {
            extras.dropped_links += 1;
            return;
        }
        let (attributes, dropped_attributes) = bounded(attributes, extras.limits.attributes_per_link);
        extras.links.push(Link { context, attributes, dropped_attributes });
    }

    /// Sets how it ended. `Ok` is final: a later `Error` does not override it, as OpenTelemetry
    /// specifies.
    pub fn set_status(&mut self, status: Status) {
        let Some(recording) = &mut *self.recording else { return };
        if status == Status::Unset {
            return;
        }
        let extras = recording.extras();
        if extras.status != Status::Ok {
            extras.status = status;
        }
    }

    /// Records an error: status error with its message, and an `exception` event with
    /// OpenTelemetry's `exception.type` and `exception.message`.
    pub fn record_error(&mut self, error: &(dyn std::error::Error + 'static)) {
        if self.recording.is_none() {
            return;
        }
        let message = error.to_string();
        self.add_event(
            "exception",
            [
                KeyValue::new("exception.type", std::any::type_name_of_val(error).to_owned()),
                KeyValue::new("exception.message", message.clone()),
            ],
        );
        self.set_status(Status::Error(message.into()));
    }

    /// Renames it.
    pub fn update_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(recording) = &mut *self.recording {
            recording.name = name.into();
        }
    }

    /// Makes it the current span on this thread until the guard drops.
    pub fn enter(&self) -> ContextGuard {
        attach_ref(&self.context)
    }

    /// Makes it current and hands back a guard that owns it: dropping the guard restores the
    /// previous current span and ends this one.
    #[inline]
    pub fn entered(self) -> EnteredSpan {
        let guard = attach_ref(&self.context);
        EnteredSpan { span: self, guard }
    }

    /// Runs `f` with this span current.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = self.enter();
        f()
    }

    /// Ends it now (the seed's `end_span`).
    pub fn end(self) {
        drop(self);
    }

    /// Ends it with this status.
    pub fn end_with_status(mut self, status: Status) {
        self.set_status(status);
        drop(self);
    }
}

fn bounded(attributes: impl IntoIterator<Item = KeyValue>, limit: u32) -> (Vec<KeyValue>, u32) {
    let mut kept = Vec::new();
    let mut dropped = 0u32;
    for kv in attributes {
        if kept.len() < limit as usize {
            kept.push(kv);
        } else {
            dropped += 1;
        }
    }
    (kept, dropped)
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        // An unsampled span ends with this one test; the ending of a recorded one stays out of line,
        // so that its stack frame and register saves are not paid by every span that drops.
        if self.recording.is_some() {
            self.end_recorded();
        }
    }
}

impl Span {
    #[inline(never)]
    fn end_recorded(&mut self) {
        if let Some(recording) = self.recording.take() {
            pipeline::end_span(std::mem::take(&mut self.context), recording);
        }
    }
}

impl Ended {
    /// The exported form, times converted from clock readings to wall time.
    pub(crate) fn finish(self, shared: &pipeline::Shared) -> SpanData {
        let Ended { context, recording, end } = self;
        let Recording { parent_span_id, name, start, extras, kind, parent_is_remote, .. } = recording;
        let mut data = SpanData {
            context,
            parent_span_id,
            parent_is_remote,
            name,
            kind,
            start_unix_nanos: shared.unix_nanos(start),
            end_unix_nanos: shared.unix_nanos(end),
            attributes: Vec::new(),
            dropped_attributes: 0,
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
            dropped_links: 0,
            status: Status::Unset,
        };
        if let Some(extras) = extras {
            let Extras {
                attributes, mut events, links, status, dropped_attributes, dropped_events, dropped_links, ..
            } = *extras;
            for event in &mut events {
                event.time_unix_nanos = shared.unix_nanos(event.time_unix_nanos);
            }
            data.attributes = attributes;
            data.events = events;
            data.links = links;
            data.status = status;
            data.dropped_attributes = dropped_attributes;
            data.dropped_events = dropped_events;
            data.dropped_links = dropped_links;
        }
        data
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Span");
        s.field("context", &self.context).field("recording", &self.recording.is_some());
        if let Some(recording) = &*self.recording {
            s.field("name", &recording.name).field("kind", &recording.kind);
        }
        s.finish()
    }
}

/// A span that is current until this guard drops; dropping it ends the span. Derefs to the span.
#[must_use = "the span ends when the guard drops"]
#[derive(Debug)]
pub struct EnteredSpan {
    // Field order matters: the guard must restore the previous context before the span ends.
    guard: ContextGuard,
    span: Span,
}

impl std::ops::Deref for EnteredSpan {
    type Target = Span;
    fn deref(&self) -> &Span {
        &self.span
    }
}

impl std::ops::DerefMut for EnteredSpan {
    fn deref_mut(&mut self) -> &mut Span {
        &mut self.span
    }
}

impl EnteredSpan {
    /// Leaves the span (restoring the previous current one) and hands it back, still running.
    pub fn exit(mut self) -> Span {
        drop(std::mem::replace(&mut self.guard, ContextGuard::detached()));
        std::mem::replace(&mut self.span, Span::non_recording(SpanContext::INVALID))
    }
}
