//! The service the W3C trace-context test suite drives (its `test/README.md` protocol):
//!
//! ```text
//! cargo run -p infra-trace --example w3c_trace_context_service -- 5000
//! python test.py http://127.0.0.1:5000/test    # in the suite's test/ directory
//! ```
//!
//! It listens on 127.0.0.1 at the port given (not 7777, where the suite's harness listens). For `POST /test` with a JSON array of
//! `{"url": ..., "arguments": [...]}`, it continues the incoming trace (or starts one when the
//! headers are invalid, as the specification says) in a server span, and for each entry sends a
//! `POST` to `url` with `arguments` as the body and its own span id as the new parent id.
//!
//! Plain `std` networking: one thread per connection, HTTP/1.1 with `Content-Length` bodies.
#![allow(clippy::print_stdout)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use infra_trace::{SpanKind, Tracer};

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            break;
        }
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0usize);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { method, path, headers, body }))
}

fn respond(stream: &mut TcpStream, status: &str) -> std::io::Result<()> {
    stream.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
}

/// Sends `body` to `url` (`http://host:port/path`) with these headers; the reply is read and
/// discarded.
fn post(url: &str, headers: &[(String, String)], body: &[u8]) -> std::io::Result<()> {
    let rest = url.strip_prefix("http://").ok_or_else(|| std::io::Error::other("only http:// urls"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    stream.write_all(body)?;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    Ok(())
}

fn handle(tracer: &Tracer, stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    while let Some(request) = read_request(&mut reader)? {
        if request.method != "POST" || request.path != "/test" {
            respond(&mut stream, "404 Not Found")?;
            continue;
        }
        let Ok(serde_json::Value::Array(cases)) = serde_json::from_slice(&request.body) else {
            respond(&mut stream, "400 Bad Request")?;
            continue;
        };
        let parent = tracer.extract(&request.headers);
        let mut span = tracer.span("POST /test").kind(SpanKind::Server);
        span = match &parent {
            Some(parent) => span.parent(parent),
            None => span.root(),
        };
        let server = span.start();
        for case in cases {
            let (Some(url), Some(arguments)) = (case.get("url").and_then(|u| u.as_str()), case.get("arguments")) else {
                continue;
            };
            let client = tracer.span("POST").kind(SpanKind::Client).parent(server.context()).start();
            let mut headers: Vec<(String, String)> = Vec::new();
            tracer.inject(client.context(), &mut headers);
            let body = serde_json::to_vec(arguments).unwrap_or_default();
            if let Err(error) = post(url, &headers, &body) {
                eprintln!("w3c_trace_context_service: POST {url} failed: {error}");
            }
        }
        drop(server);
        respond(&mut stream, "200 OK")?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args().nth(1).ok_or("usage: w3c_trace_context_service PORT")?.parse()?;
    let tracer = Tracer::builder("w3c-trace-context-service").build()?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    println!("listening on http://127.0.0.1:{port}/test");
    serve(listener, tracer)?;
    Ok(())
}

/// Answers the harness on `listener`, a thread per connection, until the listener fails.
/// (`tests/w3c_service.rs` runs this same function.)
pub fn serve(listener: TcpListener, tracer: Tracer) -> std::io::Result<()> {
    for stream in listener.incoming() {
        let stream = stream?;
        let tracer = tracer.clone();
        std::thread::spawn(move || {
            if let Err(error) = handle(&tracer, stream) {
                eprintln!("w3c_trace_context_service: {error}");
            }
        });
    }
    Ok(())
}
