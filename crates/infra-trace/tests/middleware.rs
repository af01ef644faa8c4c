//! The tower layers: a server span per request continuing the caller's trace, a client span per
//! outgoing request with its context injected, the standard HTTP attributes and error statuses.
#![cfg(feature = "tower")]

use std::convert::Infallible;

use infra_trace::{ClientLayer, InMemoryExporter, ServerLayer, SpanKind, Status, Tracer, Value, current_context};
use tower::{Layer, ServiceExt, service_fn};

fn tracer(spans: &InMemoryExporter) -> Tracer {
    Tracer::builder("api").exporter(spans.clone()).build().unwrap()
}

#[tokio::test]
async fn the_server_layer_continues_the_callers_trace() {
    let spans = InMemoryExporter::new(100);
    let tracer = tracer(&spans);
    let inner_tracer = tracer.clone();
    let service = ServerLayer::new(tracer.clone()).layer(service_fn(move |request: http::Request<()>| {
        // Work inside the handler is a child of the server span.
        let current = current_context().expect("the server span is current in the handler");
        drop(inner_tracer.start("db-query"));
        let status = if request.uri().path() == "/boom" { 503 } else { 201 };
        async move {
            assert_eq!(current_context().map(|c| c.span_id()), Some(current.span_id()));
            Ok::<_, Infallible>(http::Response::builder().status(status).body(()).unwrap())
        }
    }));
    let request = http::Request::post("/orders?x=1")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .header("host", "gateway:8080")
        .body(())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 201);
    service.oneshot(http::Request::get("/boom").body(()).unwrap()).await.unwrap();
    tracer.force_flush();

    let all = spans.spans();
    let server = all.iter().find(|s| s.name == "POST /orders").unwrap();
    assert_eq!(server.kind, SpanKind::Server);
    assert_eq!(server.context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(server.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(server.parent_is_remote);
    assert_eq!(server.attribute("http.request.method"), Some(&Value::from("POST")));
    assert_eq!(server.attribute("url.path"), Some(&Value::from("/orders")));
    assert_eq!(server.attribute("url.query"), Some(&Value::from("x=1")));
    assert_eq!(server.attribute("server.address"), Some(&Value::from("gateway:8080")));
    assert_eq!(server.attribute("http.response.status_code"), Some(&Value::I64(201)));
    assert_eq!(server.status, Status::Unset);
    let db = all.iter().find(|s| s.name == "db-query").unwrap();
    assert_eq!(db.parent_span_id, server.context.span_id());
    let failed = all.iter().find(|s| s.name == "GET /boom").unwrap();
    assert!(failed.status.is_error());
    assert!(!failed.parent_span_id.is_valid(), "no traceparent: a new trace");
}

#[tokio::test]
async fn the_client_layer_injects_its_span_and_records_the_status() {
    let spans = InMemoryExporter::new(100);
    let tracer = tracer(&spans);
    let client = ClientLayer::new(tracer.clone()).layer(service_fn(|request: http::Request<()>| async move {
        // The "server" side echoes what arrived.
        let header = request.headers().get("traceparent").unwrap().to_str().unwrap().to_owned();
        Ok::<_, Infallible>(http::Response::builder().status(404).header("x-seen", header).body(()).unwrap())
    }));
    let root = tracer.start_root("checkout").entered();
    let response = client.oneshot(http::Request::get("http://pricing:9000/quote").body(()).unwrap()).await.unwrap();
    let root_ctx = root.context().clone();
    drop(root);
    tracer.force_flush();
    let seen = response.headers()["x-seen"].to_str().unwrap().to_owned();
    let all = spans.spans();
    let call = all.iter().find(|s| s.kind == SpanKind::Client).unwrap();
    assert_eq!(call.parent_span_id, root_ctx.span_id());
    assert_eq!(seen, format!("00-{}-{}-03", call.context.trace_id(), call.context.span_id()));
    assert_eq!(call.attribute("url.full"), Some(&Value::from("http://pricing:9000/quote")));
    assert_eq!(call.attribute("server.port"), Some(&Value::I64(9000)));
    assert_eq!(call.attribute("http.response.status_code"), Some(&Value::I64(404)));
    assert!(call.status.is_error(), "a client sees 4xx as an error");
}
