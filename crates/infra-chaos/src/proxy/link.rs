//! One proxied connection: the client, its upstream, and the toxics between them.
//!
//! Each direction copies straight from one socket to the other while no toxic applies to it (one buffer,
//! no hand-off, so an idle proxy costs little), and switches to a reader and a writer joined by a channel
//! once a toxic appears: the reader stamps each chunk with the moment it may leave (latency), the writer
//! applies the rest (bandwidth, slicing, limits, black holes, resets) in order.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::toxic::{Direction, ToxicKind};
use super::{ToxicEntry, ToxicList};
use crate::mix;

/// A direction's buffer starts small and doubles while reads fill it, up to this: bulk transfers get few
/// large system calls (a 1 MiB payload passes at 85% of loopback speed), chatty connections stay small.
const BUFFER: usize = 1024 * 1024;
/// The size of chunks read once toxics apply (each is a fresh allocation handed to the writer).
const TOXIC_CHUNK: usize = 64 * 1024;
const FIRST_BUFFER: usize = 16 * 1024;
/// Chunks in flight between a direction's reader and writer.
const PIPELINE: usize = 64;

/// How a direction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The source closed; the other direction carries on.
    Eof,
    /// A toxic closes the whole connection (limit reached, timeout elapsed), or a socket failed.
    Close,
    /// A toxic resets the client's connection.
    Reset,
}

/// Whether `entry` applies to the connection seeded `seed`: decided once per connection and toxic, the same
/// answer every time it is asked.
fn applies(entry: &ToxicEntry, seed: u64) -> bool {
    let toxicity = entry.toxic.toxicity;
    if toxicity >= 1.0 {
        return true;
    }
    mix::unit(mix::mix64(seed ^ entry.id.wrapping_mul(mix::GOLDEN))) < f64::from(toxicity)
}

fn applying<'a>(
    list: &'a ToxicList,
    direction: Direction,
    seed: u64,
) -> impl Iterator<Item = &'a Arc<ToxicEntry>> + 'a {
    list.iter().filter(move |entry| entry.toxic.stream == direction && applies(entry, seed))
}

/// A small random stream per connection, for jitter and slice sizes.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(mix::GOLDEN);
        mix::mix64(self.0)
    }

    /// Uniform in `-spread..=spread`.
    fn spread(&mut self, spread: u64) -> i64 {
        if spread == 0 {
            return 0;
        }
        (self.next() % (2 * spread + 1)) as i64 - spread as i64
    }
}

/// Serves one client connection until it ends.
pub(crate) async fn run(client: TcpStream, upstream: String, toxics: watch::Receiver<ToxicList>, seed: u64) {
    let _ = client.set_nodelay(true);
    let list = toxics.borrow().clone();

    // Connection-level toxics first: refusing the first connections, answering HTTP by hand.
    for entry in list.iter().filter(|entry| applies(entry, seed)) {
        match &entry.toxic.kind {
            ToxicKind::FailFirst { connections } => {
                let refused = entry
                    .refused
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < *connections).then_some(n + 1));
                if refused.is_ok() {
                    let _ = client.set_zero_linger();
                    return;
                }
            }
            ToxicKind::HttpStatus { status, body } => {
                answer_http(client, *status, body).await;
                return;
            }
            _ => {}
        }
    }

    let Ok(Ok(upstream)) = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&upstream)).await else {
        return; // the client sees its connection closed, as with Toxiproxy
    };
    let _ = upstream.set_nodelay(true);
    let (mut client, mut upstream) = (client, upstream);
    let end = {
        // Borrowed halves: unlike owned ones they do not send FIN when dropped, so a reset stays a reset.
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let up = pump(client_read, upstream_write, Direction::Upstream, toxics.clone(), seed);
        let down = pump(upstream_read, client_write, Direction::Downstream, toxics, seed ^ 1);
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        loop {
            let end = tokio::select! {
                end = &mut up, if !up_done => { up_done = true; end }
                end = &mut down, if !down_done => { down_done = true; end }
            };
            if end != End::Eof || (up_done && down_done) {
                break end;
            }
        }
    };
    if end == End::Reset {
        // With a zero linger, closing the socket sends RST instead of FIN.
        let _ = client.set_zero_linger();
    }
}

/// Reads the request head and answers with `status`, never reaching the upstream server.
async fn answer_http(mut client: TcpStream, status: u16, body: &str) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let read_head = async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read_head).await;
    let response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Chaos",
    }
}

/// Copies one direction until it ends.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut src: R,
    mut dst: W,
    direction: Direction,
    mut toxics: watch::Receiver<ToxicList>,
    seed: u64,
) -> End {
    let mut buf = vec![0u8; FIRST_BUFFER];
    // The fast path: no toxic applies to this direction.
    let pending = loop {
        if applying(&toxics.borrow_and_update(), direction, seed).next().is_some() {
            break None;
        }
        tokio::select! {
            // A change first: data that arrives with a new toxic must meet it.
            biased;
            changed = toxics.changed() => if changed.is_err() { return End::Close },
            read = src.read(&mut buf) => match read {
                Ok(0) | Err(_) => return finish(dst, &toxics, direction, seed).await,
                Ok(n) => {
                    if applying(&toxics.borrow(), direction, seed).next().is_some() {
                        break Some(buf[..n].to_vec());
                    }
                    if dst.write_all(&buf[..n]).await.is_err() {
                        return End::Close;
                    }
                    if n == buf.len() && buf.len() < BUFFER {
                        buf.resize(buf.len() * 2, 0);
                    }
                }
            },
        }
    };
    drop(buf);
    toxic_pump(src, dst, direction, toxics, seed, pending).await
}

/// Closes the write side after the source closed, after a slow close's delay.
async fn finish<W: AsyncWrite + Unpin>(
    mut dst: W,
    toxics: &watch::Receiver<ToxicList>,
    direction: Direction,
    seed: u64,
) -> End {
    let delay = applying(&toxics.borrow(), direction, seed)
        .filter_map(|entry| match entry.toxic.kind {
            ToxicKind::SlowClose { delay } => Some(delay),
            _ => None,
        })
        .max();
    if let Some(delay) = delay {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let _ = dst.shutdown().await;
    End::Eof
}

/// The latency to add to a chunk read now.
fn latency(list: &ToxicList, direction: Direction, seed: u64, draws: &mut Draws) -> Duration {
    applying(list, direction, seed)
        .filter_map(|entry| match entry.toxic.kind {
            ToxicKind::Latency { latency, jitter } => {
                Some(Duration::from_millis((latency as i64 + draws.spread(jitter)).max(0) as u64))
            }
            _ => None,
        })
        .sum()
}

/// The direction once a toxic applies: a reader stamping chunks, a writer applying toxics.
async fn toxic_pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut src: R,
    dst: W,
    direction: Direction,
    toxics: watch::Receiver<ToxicList>,
    seed: u64,
    pending: Option<Vec<u8>>,
) -> End {
    let (chunks, mut arriving) = mpsc::channel::<(Vec<u8>, Instant)>(PIPELINE);
    let reader_toxics = toxics.clone();
    let reader = async move {
        let mut draws = Draws(seed ^ 0x5EED);
        if let Some(first) = pending {
            let release = Instant::now() + latency(&reader_toxics.borrow(), direction, seed, &mut draws);
            if chunks.send((first, release)).await.is_err() {
                return;
            }
        }
        loop {
            let mut buf = vec![0u8; TOXIC_CHUNK];
            match src.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.truncate(n);
                    let release = Instant::now() + latency(&reader_toxics.borrow(), direction, seed, &mut draws);
                    if chunks.send((buf, release)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut writer = Writer::new(dst, direction, toxics, seed);
        loop {
            let deadline = writer.deadline();
            // A timer set in the past fires at the timer's next tick, not at once: check by hand first.
            if deadline.is_some_and(|deadline| deadline <= Instant::now()) {
                return writer.expired();
            }
            tokio::select! {
                // Deadlines first: a reset or timeout that is due wins over data waiting to pass.
                biased;
                () = sleep_until_option(deadline) => return writer.expired(),
                changed = writer.toxics.changed() => {
                    if changed.is_err() {
                        return End::Close;
                    }
                    writer.notice();
                }
                chunk = arriving.recv() => match chunk {
                    None => return finish(writer.dst, &writer.toxics, direction, seed).await,
                    Some((data, release)) => {
                        tokio::time::sleep_until(release).await;
                        if let Some(end) = writer.write(&data).await {
                            return end;
                        }
                    }
                },
            }
        }
    };
    tokio::pin!(reader, writer);
    let mut reader_done = false;
    loop {
        tokio::select! {
            () = &mut reader, if !reader_done => reader_done = true,
            end = &mut writer => return end,
        }
    }
}

async fn sleep_until_option(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The writing end of a toxic direction, with what it remembers per toxic.
struct Writer<W> {
    dst: W,
    direction: Direction,
    toxics: watch::Receiver<ToxicList>,
    seed: u64,
    draws: Draws,
    /// When each toxic was first seen applying to this connection.
    since: HashMap<u64, Instant>,
    /// Bytes each limit_data toxic has let through.
    passed: HashMap<u64, u64>,
    /// Bandwidth sleep owed, carried between chunks so timer granularity averages out.
    owed: f64,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    fn new(dst: W, direction: Direction, toxics: watch::Receiver<ToxicList>, seed: u64) -> Self {
        let mut writer = Writer {
            dst,
            direction,
            toxics,
            seed,
            draws: Draws(seed ^ 0xD1CE),
            since: HashMap::new(),
            passed: HashMap::new(),
            owed: 0.0,
        };
        writer.notice();
        writer
    }

    /// Starts the clocks of toxics seen for the first time.
    fn notice(&mut self) {
        let now = Instant::now();
        let list = self.toxics.borrow_and_update().clone();
        for entry in applying(&list, self.direction, self.seed) {
            self.since.entry(entry.id).or_insert(now);
        }
    }

    /// The earliest moment a timeout or reset toxic ends the connection.
    fn deadline(&self) -> Option<Instant> {
        let list = self.toxics.borrow();
        applying(&list, self.direction, self.seed)
            .filter_map(|entry| {
                let after = match entry.toxic.kind {
                    ToxicKind::Timeout { timeout } if timeout > 0 => timeout,
                    ToxicKind::ResetPeer { timeout } => timeout,
                    _ => return None,
                };
                Some(*self.since.get(&entry.id)? + Duration::from_millis(after))
            })
            .min()
    }

    /// What the earliest deadline meant.
    fn expired(&self) -> End {
        let list = self.toxics.borrow();
        let now = Instant::now();
        let reset = applying(&list, self.direction, self.seed).any(|entry| {
            matches!(entry.toxic.kind, ToxicKind::ResetPeer { timeout }
                if self.since.get(&entry.id).is_some_and(|since| *since + Duration::from_millis(timeout) <= now))
        });
        if reset { End::Reset } else { End::Close }
    }

    /// Passes one chunk through the toxics; `Some` when the connection ends.
    async fn write(&mut self, data: &[u8]) -> Option<End> {
        let list = self.toxics.borrow().clone();
        let mut data = data;
        let mut end = None;
        let mut slicer = None;
        for entry in applying(&list, self.direction, self.seed) {
            match &entry.toxic.kind {
                // A black hole: the data is dropped while the toxic stands.
                ToxicKind::Timeout { .. } => return None,
                ToxicKind::LimitData { bytes } => {
                    let passed = self.passed.entry(entry.id).or_insert(0);
                    let left = bytes.saturating_sub(*passed);
                    if data.len() as u64 >= left {
                        data = &data[..left as usize];
                        end = Some(End::Close);
                    }
                    *passed += data.len() as u64;
                }
                ToxicKind::Bandwidth { rate } if *rate > 0 => {
                    self.owed += data.len() as f64 / (*rate as f64 * 1000.0);
                    if self.owed > 0.0 {
                        let started = Instant::now();
                        tokio::time::sleep(Duration::from_secs_f64(self.owed)).await;
                        self.owed -= started.elapsed().as_secs_f64();
                    }
                }
                ToxicKind::Slicer { average_size, size_variation, delay } => {
                    slicer = Some((*average_size, *size_variation, *delay));
                }
                _ => {}
            }
        }
        let written = match slicer {
            Some((average, variation, delay)) if average > 0 => {
                self.write_sliced(data, average, variation, delay).await
            }
            _ => self.dst.write_all(data).await,
        };
        match written {
            Ok(()) => end,
            Err(_) => Some(End::Close),
        }
    }

    async fn write_sliced(&mut self, mut data: &[u8], average: u64, variation: u64, delay: u64) -> io::Result<()> {
        while !data.is_empty() {
            let size = (average as i64 + self.draws.spread(variation.min(average.saturating_sub(1)))).max(1) as usize;
            let (piece, rest) = data.split_at(size.min(data.len()));
            self.dst.write_all(piece).await?;
            data = rest;
            if !data.is_empty() && delay > 0 {
                tokio::time::sleep(Duration::from_micros(delay)).await;
            }
        }
        Ok(())
    }
}
