//! The `/metrics` listener (feature `http`): formats by `Accept`, status codes, shutdown.
#![cfg(feature = "http")]

use std::io::{Read, Write};
use std::net::TcpStream;

use infra_apm::Collector;

fn get(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serves_both_formats_and_refuses_the_rest() {
    let collector = Collector::builder("svc").build();
    collector.counter("orders", "Orders.", &[]).unwrap().add(5);
    let server = collector.serve("127.0.0.1:0").unwrap();
    let address = server.local_addr();

    let plain = get(address, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(plain.starts_with("HTTP/1.1 200 OK\r\n"), "{plain}");
    assert!(plain.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"), "{plain}");
    assert!(plain.ends_with("orders_total 5\n"), "{plain}");

    let open = get(
        address,
        "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n",
    );
    assert!(open.contains("Content-Type: application/openmetrics-text; version=1.0.0"), "{open}");
    assert!(open.contains("# TYPE orders counter\n") && open.ends_with("orders_total 5\n# EOF\n"), "{open}");

    assert!(get(address, "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(get(address, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").starts_with("HTTP/1.1 405"));
    // A request cut short (the client closes its half before the headers end) gets a 400.
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(b"GET /metr").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");

    server.shutdown();
    assert!(TcpStream::connect(address).is_err(), "the listener is closed after shutdown");
}

#[test]
fn a_busy_address_is_a_typed_error() {
    let collector = Collector::builder("svc").build();
    let first = collector.serve("127.0.0.1:0").unwrap();
    let error = collector.serve(first.local_addr()).unwrap_err();
    assert!(error.to_string().contains("cannot serve metrics on"), "{error}");
}
