//! The OTLP exporter against a loopback receiver that decodes requests with the official protobuf
//! types (the `opentelemetry-proto` crate): every span arrives with its attributes, events, links,
//! status and parent; retryable statuses are retried honouring `Retry-After`.
#![cfg(feature = "otlp")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use infra_trace::{KeyValue, OtlpExporter, Processor, SpanKind, Status, Tracer};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

struct Received {
    requests: Vec<ExportTraceServiceRequest>,
    headers: Vec<Vec<(String, String)>>,
}

/// Answers each request with the next status of `script` (then 200), recording decoded bodies.
fn receiver(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Received { requests: Vec::new(), headers: Vec::new() }));
    let store = Arc::clone(&received);
    std::thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let mut headers = Vec::new();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                }
                let length: usize = headers.iter().find(|(n, _)| n == "content-length").unwrap().1.parse().unwrap();
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                if headers.iter().any(|(n, v)| n == "content-encoding" && v == "gzip") {
                    let mut plain = Vec::new();
                    flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain).unwrap();
                    body = plain;
                }
                let (status, retry_after) = script.next().unwrap_or((200, None));
                {
                    let mut store = store.lock().unwrap();
                    if status == 200 {
                        store.requests.push(ExportTraceServiceRequest::decode(&body[..]).unwrap());
                    }
                    store.headers.push(headers);
                }
                let extra = retry_after.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
                let reply = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\n\r\n");
                if stream.write_all(reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (url, received)
}

#[test]
fn every_span_arrives_decodable_by_the_official_types() {
    let (url, received) = receiver(vec![(503, Some("0")), (429, None)]);
    let exporter = OtlpExporter::builder(url).header("x-api-key", "k").build().unwrap();
    let tracer = Tracer::builder("checkout")
        .resource_attribute("service.version", "1.2.3")
        .processor(Processor::Simple)
        .exporter(exporter)
        .build()
        .unwrap();
    let mut root = tracer.span("POST /orders").kind(SpanKind::Server).root().start();
    root.set_attribute("http.response.status_code", 201);
    root.set_attribute("sampled", true);
    root.set_attribute("ratio", 0.5);
    root.add_event("validated", [KeyValue::new("lines", 3)]);
    let mut child = tracer.start_child("db", root.context());
    child.set_status(Status::error("deadlock"));
    child.add_link(root.context().clone(), [KeyValue::new("why", "retry")]);
    let (root_ctx, child_ctx) = (root.context().clone(), child.context().clone());
    drop(child);
    drop(root);
    tracer.shutdown_with_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(tracer.stats().export_failed, 0, "{:?}", tracer.last_export_error());

    let received = received.lock().unwrap();
    assert_eq!(received.headers.len(), 4, "two retried attempts, then two spans");
    assert!(received.headers[0].iter().any(|(n, v)| n == "content-type" && v == "application/x-protobuf"));
    assert!(received.headers[0].iter().any(|(n, v)| n == "x-api-key" && v == "k"));
    let spans: Vec<_> = received
        .requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .inspect(|rs| {
            let attrs = &rs.resource.as_ref().unwrap().attributes;
            let service = attrs.iter().find(|kv| kv.key == "service.name").unwrap();
            assert_eq!(service.value.as_ref().unwrap().value, Some(AnyValue::StringValue("checkout".into())));
            assert!(attrs.iter().any(|kv| kv.key == "service.version"));
        })
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    assert_eq!(spans.len(), 2);
    let root = spans.iter().find(|s| s.name == "POST /orders").unwrap();
    let child = spans.iter().find(|s| s.name == "db").unwrap();
    assert_eq!(root.trace_id, root_ctx.trace_id().to_bytes());
    assert_eq!(root.span_id, root_ctx.span_id().to_bytes());
    assert!(root.parent_span_id.is_empty());
    assert_eq!(root.kind, 2);
    assert_eq!(root.attributes.len(), 3);
    let value = |name: &str| root.attributes.iter().find(|kv| kv.key == name).unwrap().value.clone().unwrap().value;
    assert_eq!(value("http.response.status_code"), Some(AnyValue::IntValue(201)));
    assert_eq!(value("sampled"), Some(AnyValue::BoolValue(true)));
    assert_eq!(value("ratio"), Some(AnyValue::DoubleValue(0.5)));
    assert_eq!(root.events[0].name, "validated");
    assert!(root.events[0].time_unix_nano >= root.start_time_unix_nano);
    assert!(root.end_time_unix_nano >= root.start_time_unix_nano);
    assert_eq!(root.flags & 0xff, 0x03, "sampled and random");
    assert_eq!(child.parent_span_id, root_ctx.span_id().to_bytes());
    assert_eq!(child.span_id, child_ctx.span_id().to_bytes());
    let status = child.status.as_ref().unwrap();
    assert_eq!((status.code, status.message.as_str()), (2, "deadlock"));
    assert_eq!(child.links[0].span_id, root_ctx.span_id().to_bytes());
    assert_eq!(child.links[0].attributes[0].key, "why");
}

#[test]
fn a_collector_that_keeps_refusing_is_counted_not_retried_forever() {
    let (url, received) = receiver(vec![(503, Some("0")); 20]);
    let exporter = OtlpExporter::builder(url).max_retries(2).build().unwrap();
    let tracer = Tracer::builder("svc").processor(Processor::Simple).exporter(exporter).build().unwrap();
    drop(tracer.start_root("op"));
    let stats = tracer.stats();
    assert_eq!((stats.export_failed, stats.export_errors), (1, 1));
    assert!(tracer.last_export_error().unwrap().contains("status 503 after 3 attempts"));
    assert_eq!(received.lock().unwrap().headers.len(), 3);
    let bad = (400, None);
    let (url, _) = receiver(vec![bad]);
    let tracer = Tracer::builder("svc")
        .processor(Processor::Simple)
        .exporter(OtlpExporter::builder(url).build().unwrap())
        .build()
        .unwrap();
    drop(tracer.start_root("op"));
    assert!(tracer.last_export_error().unwrap().contains("not retryable"));
}

#[test]
fn a_bad_endpoint_is_refused_when_building() {
    let error = OtlpExporter::builder("127.0.0.1:4318").build().unwrap_err();
    assert!(error.to_string().contains("http://"), "{error}");
}
