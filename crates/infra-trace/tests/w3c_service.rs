//! The W3C trace-context test protocol, played against `examples/w3c_trace_context_service.rs` (the
//! same code, included as a module): this test is the harness. It sends `POST /test` with the
//! headers of each case and a list of callbacks, receives the service's callbacks, and checks the
//! `traceparent` and `tracestate` they carry against what the specification (levels 1 and 2)
//! requires. The cases are those the public suite (w3c/trace-context `test/test.py`) checks,
//! restated here; the suite itself cannot be fetched in CI.

#[path = "../examples/w3c_trace_context_service.rs"]
#[allow(dead_code, unreachable_pub)]
mod service;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use infra_trace::Tracer;

const ID: &str = "12345678901234567890123456789012";

struct Harness {
    service: SocketAddr,
    callbacks: SocketAddr,
    received: mpsc::Receiver<(String, Headers)>,
}

type Headers = Vec<(String, String)>;

/// Reads one request: its path and headers (the body is read and discarded).
fn read_headers(reader: &mut BufReader<TcpStream>) -> Option<(String, Headers)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end_matches(['\r', '\n']);
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.to_owned(), value.trim_start().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, headers))
}

impl Harness {
    fn start() -> Harness {
        let service_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let service = service_listener.local_addr().unwrap();
        let tracer = Tracer::builder("w3c").build().unwrap();
        std::thread::spawn(move || service::serve(service_listener, tracer));
        let callback_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let callbacks = callback_listener.local_addr().unwrap();
        let (tx, received) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in callback_listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if let Some((path, headers)) = read_headers(&mut reader) {
                    let _ = tx.send((path, headers));
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Harness { service, callbacks, received }
    }

    /// Sends a request with these headers asking for `count` callbacks; returns each callback's headers.
    fn request(&self, headers: &[(&str, &str)], count: usize) -> Vec<Vec<(String, String)>> {
        let list: Vec<String> = (0..count)
            .map(|i| format!(r#"{{"url": "http://{}/callback/{i}", "arguments": []}}"#, self.callbacks))
            .collect();
        let body = format!("[{}]", list.join(","));
        let mut stream = TcpStream::connect(self.service).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut request =
            format!("POST /test HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n", self.service, body.len());
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "the service answered {status:?}");
        let mut by_path: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for _ in 0..count {
            let (path, headers) = self.received.recv_timeout(Duration::from_secs(10)).expect("a callback");
            by_path.insert(path, headers);
        }
        (0..count).map(|i| by_path.remove(&format!("/callback/{i}")).expect("callback per entry")).collect()
    }

    /// The `(trace id, parent id)` of the single callback's `traceparent`, and its `tracestate` members.
    fn one(&self, headers: &[(&str, &str)]) -> (String, String, Vec<(String, String)>) {
        let callback = self.request(headers, 1).remove(0);
        let parents: Vec<&String> =
            callback.iter().filter(|(n, _)| n.eq_ignore_ascii_case("traceparent")).map(|(_, v)| v).collect();
        assert_eq!(parents.len(), 1, "exactly one traceparent: {callback:?}");
        let parts: Vec<&str> = parents[0].split('-').collect();
        assert_eq!(parts.len(), 4, "{}", parents[0]);
        let lower_hex =
            |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        assert!(parts[0] == "00" && lower_hex(parts[1], 32) && lower_hex(parts[2], 16) && lower_hex(parts[3], 2));
        let mut state = Vec::new();
        for (_, value) in callback.iter().filter(|(n, _)| n.eq_ignore_ascii_case("tracestate")) {
            for member in value.split(',') {
                let member = member.trim_matches([' ', '\t']);
                if let Some((k, v)) = member.split_once('=') {
                    state.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        (parts[1].to_owned(), parts[2].to_owned(), state)
    }
}

fn tp(id: &str, flags: &str) -> String {
    format!("00-{id}-1234567890123456-{flags}")
}

fn get<'a>(state: &'a [(String, String)], key: &str) -> Option<&'a str> {
    state.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn traceparent_cases() {
    let h = Harness::start();
    // No headers: a valid traceparent all the same.
    h.one(&[]);
    // Continued: same trace id, new parent id.
    let (trace, parent, _) = h.one(&[("traceparent", &tp(ID, "01"))]);
    assert_eq!(trace, ID);
    assert_ne!(parent, "1234567890123456");
    // Header name in any case.
    for name in ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"] {
        assert_eq!(h.one(&[(name, &tp(ID, "01"))]).0, ID, "{name}");
    }
    // Leading and trailing spaces and tabs are optional whitespace.
    for value in [
        format!(" {}", tp(ID, "01")),
        format!("\t{}", tp(ID, "01")),
        format!("{} ", tp(ID, "01")),
        format!("{}\t", tp(ID, "01")),
        format!("\t {} \t", tp(ID, "01")),
    ] {
        assert_eq!(h.one(&[("traceparent", &value)]).0, ID, "{value:?}");
    }
    // A future version is parsed as far as version 00 goes.
    for value in
        [format!("cc-{ID}-1234567890123456-01"), format!("cc-{ID}-1234567890123456-01-what-the-future-will-be-like")]
    {
        assert_eq!(h.one(&[("traceparent", &value)]).0, ID, "{value}");
    }
    // Everything else restarts the trace.
    let restart = [
        format!("cc-{ID}-1234567890123456-01.what-the-future-will-be-like"),
        format!("00-{ID}-1234567890123456-01."),
        format!("00-{ID}-1234567890123456-01-what-the-future-will-be-like"),
        format!("ff-{ID}-1234567890123456-01"),
        format!(".0-{ID}-1234567890123456-01"),
        format!("0.-{ID}-1234567890123456-01"),
        format!("000-{ID}-1234567890123456-01"),
        format!("0000-{ID}-1234567890123456-01"),
        format!("0-{ID}-1234567890123456-01"),
        "00-.2345678901234567890123456789012-1234567890123456-01".to_owned(),
        "00-1234567890123456789012345678901.-1234567890123456-01".to_owned(),
        "00-123456789012345678901234567890123-1234567890123456-01".to_owned(),
        "00-1234567890123456789012345678901-1234567890123456-01".to_owned(),
        format!("00-{ID}-0000000000000000-01"),
        format!("00-{ID}-.234567890123456-01"),
        format!("00-{ID}-123456789012345.-01"),
        format!("00-{ID}-12345678901234567-01"),
        format!("00-{ID}-123456789012345-01"),
        format!("00-{ID}-1234567890123456-.0"),
        format!("00-{ID}-1234567890123456-0."),
        format!("00-{ID}-1234567890123456-001"),
        format!("00-{ID}-1234567890123456-1"),
    ];
    for value in &restart {
        let (trace, _, _) = h.one(&[("traceparent", value)]);
        assert_ne!(trace, ID, "{value} must restart the trace");
        assert!(!value.contains(&trace), "{value}");
    }
    let (trace, _, _) = h.one(&[("traceparent", "00-00000000000000000000000000000000-1234567890123456-01")]);
    assert_ne!(trace, "00000000000000000000000000000000");
    // Two traceparent headers, or the wrong name: a new trace.
    let (trace, _, _) =
        h.one(&[("traceparent", &tp("12345678901234567890123456789011", "01")), ("traceparent", &tp(ID, "01"))]);
    assert!(trace != ID && trace != "12345678901234567890123456789011");
    for name in ["trace-parent", "trace.parent"] {
        assert_ne!(h.one(&[(name, &tp(ID, "01"))]).0, ID);
    }
}

#[test]
fn tracestate_cases() {
    let h = Harness::start();
    let parent = tp(ID, "00");
    let with = |states: &[&str]| {
        let mut headers = vec![("traceparent", parent.as_str())];
        headers.extend(states.iter().map(|s| ("tracestate", *s)));
        h.one(&headers).2
    };
    // Without a valid traceparent, tracestate is not carried.
    let a = h.one(&[("tracestate", "foo=1")]).2;
    let b = h.one(&[("tracestate", "foo=1,bar=2")]).2;
    assert_eq!(a.len(), b.len());
    // Inherited, and combined in order from several headers.
    let state = with(&["foo=1,bar=2"]);
    assert_eq!((get(&state, "foo"), get(&state, "bar")), (Some("1"), Some("2")));
    let state = with(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]);
    let keys: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["foo", "bar", "rojo", "congo", "baz"]);
    // Header name in any case; wrong names are not tracestate.
    for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
        assert_eq!(get(&h.one(&[("traceparent", &parent), (name, "foo=1")]).2, "foo"), Some("1"));
    }
    for name in ["trace-state", "trace.state"] {
        assert_eq!(get(&h.one(&[("traceparent", &parent), (name, "foo=1")]).2, "foo"), None);
    }
    // Empty headers are accepted and ignored.
    assert!(with(&[""]).is_empty());
    assert_eq!(get(&with(&["foo=1", ""]), "foo"), Some("1"));
    assert_eq!(get(&with(&["", "foo=1"]), "foo"), Some("1"));
    // Duplicated keys discard the list.
    for states in [&["foo=1,foo=1"][..], &["foo=1,foo=2"], &["foo=1", "foo=1"], &["foo=1", "foo=2"]] {
        assert_eq!(get(&with(states), "foo"), None, "{states:?}");
    }
    // Every allowed character survives.
    let key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let value: String = (0x20u8..=0x7e).filter(|c| *c != b',' && *c != b'=').map(char::from).collect();
    for key in [key.to_owned(), format!("{key}@a-z0-9_-*/")] {
        let member = format!("{key}={value}");
        assert_eq!(get(&with(&[&member]), &key), Some(value.as_str()), "{key}");
    }
    // Optional whitespace around members.
    for header in ["foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"] {
        let state = with(&[header]);
        assert_eq!((get(&state, "foo"), get(&state, "bar"), get(&state, "baz")), (Some("1"), Some("2"), Some("3")));
    }
    for header in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
        assert_eq!(get(&with(&[header]), "foo"), Some("1"), "{header:?}");
    }
    // Illegal keys, vendor formats and values discard the list.
    for header in [
        "foo =1",
        "FOO=1",
        "foo.bar=1",
        "foo@=1,bar=2",
        "@foo=1,bar=2",
        "foo@@bar=1,bar=2",
        "foo@bar@baz=1,bar=2",
        "foo=bar=baz",
        "foo=,bar=3",
    ] {
        let state = with(&[header]);
        assert!(get(&state, "foo").is_none() && get(&state, "bar").is_none(), "{header:?} gave {state:?}");
    }
    // 32 members pass, 33 discard the list.
    let members: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
    let headers: Vec<String> = members[..32].chunks(10).map(|c| c.join(",")).collect();
    let state = with(&headers.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!((state.len(), get(&state, "bar01")), (32, Some("01")));
    let headers: Vec<String> = members.chunks(10).map(|c| c.join(",")).collect();
    assert!(with(&headers.iter().map(String::as_str).collect::<Vec<_>>()).is_empty());
    // Key length limits: 256, tenant 241, system 14.
    let ok = [format!("{}=1", "z".repeat(256)), format!("{}@{}=1", "t".repeat(241), "v".repeat(14))];
    for long in &ok {
        assert_eq!(get(&with(&["foo=1", long]), "foo"), Some("1"), "{long}");
    }
    let bad = [format!("{}=1", "z".repeat(257)), format!("{}@v=1", "t".repeat(242)), format!("t@{}=1", "v".repeat(15))];
    for long in &bad {
        assert_eq!(get(&with(&["foo=1", long]), "foo"), None, "{long}");
    }
}

#[test]
fn several_callbacks() {
    let h = Harness::start();
    let parse = |callback: &Vec<(String, String)>| {
        let value = &callback.iter().find(|(n, _)| n.eq_ignore_ascii_case("traceparent")).unwrap().1;
        let parts: Vec<String> = value.split('-').map(str::to_owned).collect();
        (parts[1].clone(), parts[2].clone())
    };
    let continued: Vec<_> = h.request(&[("traceparent", &tp(ID, "01"))], 3).iter().map(parse).collect();
    assert!(continued.iter().all(|(t, _)| t == ID));
    let parents: std::collections::HashSet<_> = continued.iter().map(|(_, p)| p).collect();
    assert_eq!(parents.len(), 3, "each callback has its own parent id");
    let fresh: Vec<_> = h.request(&[], 3).iter().map(parse).collect();
    assert_eq!(fresh.iter().map(|(_, p)| p).collect::<std::collections::HashSet<_>>().len(), 3);
    let zeros = "00-00000000000000000000000000000000-1234567890123456-01";
    let illegal: Vec<_> = h.request(&[("traceparent", zeros)], 3).iter().map(parse).collect();
    assert!(illegal.iter().all(|(t, _)| t != "00000000000000000000000000000000"));
    assert_eq!(illegal.iter().map(|(_, p)| p).collect::<std::collections::HashSet<_>>().len(), 3);
}
