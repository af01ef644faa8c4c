//! Correlation: the trace and span an entry belongs to, from a thread-local context, a future
//! adapter for async code, or a provider the application plugs in (the umbrella crate hands in
//! `infra-trace`'s current span this way, so this crate depends on no tracer).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

/// The trace an entry belongs to, as W3C Trace Context identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The 128-bit trace id.
    pub trace_id: u128,
    /// The 64-bit span id (0 when only the trace is known).
    pub span_id: u64,
    /// The W3C trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// A context for this trace and span.
    pub fn new(trace_id: u128, span_id: u64, flags: u8) -> Self {
        TraceContext { trace_id, span_id, flags }
    }

    /// Parses the seed's form: a 32-digit hex trace id, optionally followed by `-` or `:` and a
    /// 16-digit span id (a `traceparent` header is accepted too).
    pub fn parse(text: &str) -> Option<TraceContext> {
        let text = text.trim();
        let parts: Vec<&str> = text.split(['-', ':']).collect();
        let (trace, span, flags) = match parts.as_slice() {
            [trace] => (*trace, None, 1),
            [trace, span] => (*trace, Some(*span), 1),
            [_version, trace, span, flags] => (*trace, Some(*span), u8::from_str_radix(flags, 16).ok()?),
            _ => return None,
        };
        if trace.len() != 32 {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let span_id = match span {
            Some(span) if span.len() == 16 => u64::from_str_radix(span, 16).ok()?,
            Some(_) => return None,
            None => 0,
        };
        (trace_id != 0).then_some(TraceContext { trace_id, span_id, flags })
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", self.span_id)
    }
}

impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}-{:016x}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

/// Where the current trace context comes from when no thread-local one is set.
pub trait ContextProvider: Send + Sync + 'static {
    /// The context of the code running now, if any.
    fn current(&self) -> Option<TraceContext>;
}

impl<F: Fn() -> Option<TraceContext> + Send + Sync + 'static> ContextProvider for F {
    fn current(&self) -> Option<TraceContext> {
        self()
    }
}

thread_local! {
    static CURRENT: RefCell<Vec<TraceContext>> = const { RefCell::new(Vec::new()) };
}

/// The thread's current context, if one is set.
#[inline]
pub fn current_trace_context() -> Option<TraceContext> {
    CURRENT.try_with(|stack| stack.try_borrow().ok().and_then(|s| s.last().copied())).ok().flatten()
}

/// Makes `context` the thread's current one until the guard drops, which restores the previous one.
pub fn set_trace_context(context: TraceContext) -> TraceContextGuard {
    let depth = CURRENT
        .try_with(|stack| {
            let Ok(mut stack) = stack.try_borrow_mut() else { return usize::MAX };
            stack.push(context);
            stack.len() - 1
        })
        .unwrap_or(usize::MAX);
    TraceContextGuard { depth, _same_thread: PhantomData }
}

/// Clears every context set on this thread (the seed's `clear_trace_context`); guards still alive
/// then restore nothing.
pub fn clear_trace_context() {
    let _ = CURRENT.try_with(|stack| {
        if let Ok(mut stack) = stack.try_borrow_mut() {
            stack.clear();
        }
    });
}

/// Restores the previous trace context when dropped; not `Send`, it belongs to its thread.
#[must_use = "the context is current only until the guard drops"]
#[derive(Debug)]
pub struct TraceContextGuard {
    depth: usize,
    _same_thread: PhantomData<*const ()>,
}

impl Drop for TraceContextGuard {
    fn drop(&mut self) {
        if self.depth == usize::MAX {
            return;
        }
        let _ = CURRENT.try_with(|stack| {
            if let Ok(mut stack) = stack.try_borrow_mut() {
                stack.truncate(self.depth);
            }
        });
    }
}

pin_project! {
    /// A future with a trace context current on every poll, whichever thread polls it: the
    /// task-local equivalent of [`set_trace_context`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct WithTraceContext<F> {
        #[pin]
        inner: F,
        context: TraceContext,
    }
}

impl<F: Future> Future for WithTraceContext<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = set_trace_context(*this.context);
        this.inner.poll(cx)
    }
}

/// Runs a future with `context` current on every poll.
pub fn with_trace_context<F: Future>(context: TraceContext, future: F) -> WithTraceContext<F> {
    WithTraceContext { inner: future, context }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_restore_and_parse_accepts_the_seed_forms() {
        assert_eq!(current_trace_context(), None);
        let outer = set_trace_context(TraceContext::new(1, 2, 1));
        {
            let _inner = set_trace_context(TraceContext::new(3, 4, 1));
            assert_eq!(current_trace_context().unwrap().trace_id, 3);
        }
        assert_eq!(current_trace_context().unwrap().trace_id, 1);
        drop(outer);
        assert_eq!(current_trace_context(), None);
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(TraceContext::parse(id).unwrap().span_id, 0);
        let full = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!((full.span_id_hex().as_str(), full.flags), ("00f067aa0ba902b7", 1));
        assert!(TraceContext::parse("nope").is_none());
        assert!(TraceContext::parse("00000000000000000000000000000000").is_none());
    }
}
