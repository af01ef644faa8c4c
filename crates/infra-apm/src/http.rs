//! A small HTTP listener serving `/metrics` (feature `http`).
//!
//! One thread accepts connections and answers each in turn: `GET /metrics` (or `/`) with the format the
//! scraper's `Accept` header asks for (OpenMetrics 1.0 or Prometheus 0.0.4), 404 for other paths, 405 for
//! other methods, then closes the connection. Reads and writes time out after two seconds, so a stalled
//! client cannot hold the listener longer than that. It is meant for a Prometheus scraping every few
//! seconds, not as a general web server. [`MetricsServer::shutdown`] (or dropping it) stops the thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use thiserror::Error;

use crate::collector::Collector;
use crate::exposition::Format;

/// The most of a request the listener reads: a scrape's request line and headers fit easily.
const MAX_REQUEST: usize = 16 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The listener could not start.
#[derive(Debug, Error)]
#[error("cannot serve metrics on {address}: {source}")]
pub struct ServeError {
    /// The address asked for.
    pub address: String,
    /// What the system said.
    #[source]
    pub source: std::io::Error,
}

/// A running `/metrics` listener; stops when shut down or dropped.
#[derive(Debug)]
pub struct MetricsServer {
    address: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address it listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting and waits for the thread to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept; the thread then sees the flag.
        let _ = TcpStream::connect_timeout(&self.address, IO_TIMEOUT);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

impl Collector {
    /// Serves `/metrics` on `address` (port 0 picks a free one; see [`MetricsServer::local_addr`]).
    pub fn serve(&self, address: impl ToSocketAddrs + std::fmt::Debug) -> Result<MetricsServer, ServeError> {
        let described = format!("{address:?}");
        let error = |source| ServeError { address: described.clone(), source };
        let listener = TcpListener::bind(address).map_err(error)?;
        let bound = listener.local_addr().map_err(error)?;
        let stopping = Arc::new(AtomicBool::new(false));
        let collector = self.clone();
        let flag = Arc::clone(&stopping);
        let thread = std::thread::Builder::new()
            .name("infra-apm-metrics".into())
            .spawn(move || {
                for connection in listener.incoming() {
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = connection {
                        // A failed exchange concerns that client only.
                        let _ = answer(&collector, stream);
                    }
                }
            })
            .map_err(error)?;
        Ok(MetricsServer { address: bound, stopping, thread: Some(thread) })
    }
}

/// Reads one request and writes one response.
fn answer(collector: &Collector, mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 2048];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 || request.len() + read > MAX_REQUEST {
            return respond(&mut stream, "400 Bad Request", "text/plain; charset=utf-8", "incomplete request\n");
        }
        request.extend_from_slice(&chunk[..read]);
    }
    let request = String::from_utf8_lossy(&request);
    let mut lines = request.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let (method, path) = (request_line.next().unwrap_or(""), request_line.next().unwrap_or(""));
    let accept = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map_or("", |(_, value)| value.trim());
    let path = path.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => {
            let format = Format::from_accept(accept);
            let body = collector.render(format);
            let body = if method == "HEAD" { String::new() } else { body };
            respond(&mut stream, "200 OK", format.content_type(), &body)
        }
        ("GET" | "HEAD", _) => respond(&mut stream, "404 Not Found", "text/plain; charset=utf-8", "try /metrics\n"),
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain; charset=utf-8", "GET /metrics\n"),
    }
}

fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}
