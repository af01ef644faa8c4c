//! Tower middleware (feature `tower`): a server layer that continues the caller's trace in a server
//! span per request, and a client layer that opens a client span and injects its context into the
//! outgoing request. Both work with any `tower::Service` over `http::Request`, so with axum, hyper
//! (through `hyper-util`'s tower adapters), tonic and reqwest-middleware stacks alike.
//!
//! Attributes follow OpenTelemetry's HTTP semantic conventions: `http.request.method`, `url.path`,
//! `url.scheme`, `server.address`, `url.full` (client), `http.response.status_code`,
//! `network.protocol.version`; a 5xx response (server) or any 4xx/5xx (client) sets the status to error,
//! as the conventions ask, and so does an error from the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::current::ContextGuard;
use crate::data::{SpanKind, Status};
use crate::span::Span;
use crate::tracer::Tracer;

/// Opens a server span for each request, as a child of the caller's context when its headers carry
/// one (malformed headers are counted and a new trace starts).
#[derive(Clone, Debug)]
pub struct ServerLayer {
    tracer: Tracer,
}

impl ServerLayer {
    /// A layer starting spans on `tracer`.
    pub fn new(tracer: Tracer) -> Self {
        ServerLayer { tracer }
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = TracedServer<S>;

    fn layer(&self, inner: S) -> TracedServer<S> {
        TracedServer { inner, tracer: self.tracer.clone() }
    }
}

/// The service [`ServerLayer`] wraps around yours.
#[derive(Clone, Debug)]
pub struct TracedServer<S> {
    inner: S,
    tracer: Tracer,
}

fn version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

fn method_name(method: &http::Method) -> String {
    method.as_str().to_owned()
}

impl<S, B, R> Service<http::Request<B>> for TracedServer<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Traced<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let parent = self.tracer.extract(request.headers());
        let method = method_name(request.method());
        let name = format!("{method} {}", request.uri().path());
        let mut builder = self.tracer.span(name).kind(SpanKind::Server);
        builder = match &parent {
            Some(parent) => builder.parent(parent),
            None => builder.root(),
        };
        let mut span = builder.start();
        span.set_attribute("http.request.method", method);
        span.set_attribute("url.path", request.uri().path().to_owned());
        if let Some(query) = request.uri().query() {
            span.set_attribute("url.query", query.to_owned());
        }
        if let Some(scheme) = request.uri().scheme_str() {
            span.set_attribute("url.scheme", scheme.to_owned());
        }
        if let Some(host) = request.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()) {
            span.set_attribute("server.address", host.to_owned());
        }
        if let Some(agent) = request.headers().get(http::header::USER_AGENT).and_then(|h| h.to_str().ok()) {
            span.set_attribute("user_agent.original", agent.to_owned());
        }
        span.set_attribute("network.protocol.version", version(request.version()));
        // The inner service's own spans (and logs) see the server span as current while it builds
        // its future, and on every poll of it.
        let future = {
            let _current = span.enter();
            self.inner.call(request)
        };
        Traced { inner: future, span: Some(span), error_from: 500 }
    }
}

/// Opens a client span for each outgoing request and injects its context into the headers.
#[derive(Clone, Debug)]
pub struct ClientLayer {
    tracer: Tracer,
}

impl ClientLayer {
    /// A layer starting spans on `tracer`, as children of the current span.
    pub fn new(tracer: Tracer) -> Self {
        ClientLayer { tracer }
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = TracedClient<S>;

    fn layer(&self, inner: S) -> TracedClient<S> {
        TracedClient { inner, tracer: self.tracer.clone() }
    }
}

/// The service [`ClientLayer`] wraps around a client.
#[derive(Clone, Debug)]
pub struct TracedClient<S> {
    inner: S,
    tracer: Tracer,
}

impl<S, B, R> Service<http::Request<B>> for TracedClient<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Error: fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Traced<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let method = method_name(request.method());
        let mut span = self.tracer.span(method.clone()).kind(SpanKind::Client).start();
        span.set_attribute("http.request.method", method);
        span.set_attribute("url.full", request.uri().to_string());
        if let Some(host) = request.uri().host() {
            span.set_attribute("server.address", host.to_owned());
        }
        if let Some(port) = request.uri().port_u16() {
            span.set_attribute("server.port", port);
        }
        self.tracer.inject(span.context(), request.headers_mut());
        let future = {
            let _current = span.enter();
            self.inner.call(request)
        };
        Traced { inner: future, span: Some(span), error_from: 400 }
    }
}

pin_project! {
    /// The response future of the traced services: the span is current on every poll and ends
    /// with the response status when the future completes.
    #[must_use = "futures do nothing unless polled"]
    pub struct Traced<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
        error_from: u16,
    }
}

impl<F> fmt::Debug for Traced<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Traced").field("span", &self.span).finish()
    }
}

impl<F, R, E> Future for Traced<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
    E: fmt::Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _current: Option<ContextGuard> = this.span.as_ref().map(Span::enter);
        let output = this.inner.poll(cx);
        if let Poll::Ready(result) = &output
            && let Some(mut span) = this.span.take()
        {
            match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    span.set_attribute("http.response.status_code", status);
                    if status >= *this.error_from {
                        span.set_status(Status::Error(format!("HTTP {status}").into()));
                    }
                }
                Err(error) => {
                    span.set_attribute("error.type", "service_error");
                    span.set_status(Status::Error(error.to_string().into()));
                }
            }
            drop(_current);
            span.end();
        }
        output
    }
}
