//! The current span: a per-thread stack for synchronous code, and a future adapter that carries a
//! context across `.await` and task hops.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::context::SpanContext;
use crate::pipeline;
use crate::span::Span;

/// The context of the current span on this thread, if any.
pub fn current_context() -> Option<SpanContext> {
    pipeline::current()
}

/// Makes `context` the current one on this thread until the guard drops (an extracted remote
/// parent, say), so spans started with [`Tracer::start`](crate::Tracer::start) become its children.
#[inline(always)]
pub fn attach(context: SpanContext) -> ContextGuard {
    ContextGuard { depth: pipeline::push_current(context), _same_thread: PhantomData }
}

/// Like [`attach`], cloning the context straight into the thread's stack.
#[inline(always)]
pub(crate) fn attach_ref(context: &SpanContext) -> ContextGuard {
    ContextGuard { depth: pipeline::push_current_ref(context), _same_thread: PhantomData }
}

/// Restores the previous current context when dropped. Not `Send`: it must drop on the thread
/// that attached it.
#[must_use = "the context is current only until the guard drops"]
#[derive(Debug)]
pub struct ContextGuard {
    depth: usize,
    _same_thread: PhantomData<*const ()>,
}

impl ContextGuard {
    /// A guard that restores nothing (what an exited span keeps).
    pub(crate) fn detached() -> Self {
        ContextGuard { depth: pipeline::NOT_PUSHED, _same_thread: PhantomData }
    }
}

impl Drop for ContextGuard {
    #[inline]
    fn drop(&mut self) {
        // Truncating (rather than popping) restores the state from before this guard even if
        // guards are dropped out of order.
        pipeline::truncate_current(self.depth);
    }
}

pin_project! {
    /// A future that runs with a span context current on every poll, on whatever thread polls it,
    /// and that ends its span (if it owns one) when it completes.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<F> {
        #[pin]
        inner: F,
        context: Option<SpanContext>,
        span: Option<Span>,
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = this.context.clone().map(attach);
        let output = this.inner.poll(cx);
        if output.is_ready() {
            // Ends the span now, inside the poll that completed the work, not when the future is
            // eventually dropped.
            drop(this.span.take());
        }
        output
    }
}

/// Carries a span context into futures.
pub trait FutureExt: Future + Sized {
    /// Runs this future inside `span` (current on every poll) and ends the span when it completes.
    fn in_span(self, span: Span) -> Instrumented<Self> {
        let context = span.context().clone();
        Instrumented { inner: self, context: Some(context), span: Some(span) }
    }

    /// Runs this future with `context` current on every poll.
    fn with_context(self, context: SpanContext) -> Instrumented<Self> {
        Instrumented { inner: self, context: Some(context), span: None }
    }

    /// Runs this future with the context current now (at the call, before a `tokio::spawn`, say)
    /// current on every poll.
    fn in_current_span(self) -> Instrumented<Self> {
        Instrumented { inner: self, context: current_context(), span: None }
    }
}

impl<F: Future> FutureExt for F {}
