//! infra-chaos injection points against the `fail` crate's (with its `failpoints` feature on, as a build
//! that can inject at all must have it), with an empty loop body as the floor:
//!
//! - `chaos_point_idle`: a point while nothing is configured anywhere (the cost production pays).
//! - `chaos_point_other_targeted`: a point while an experiment or failpoint targets another point.
//! - `chaos_proxy_transfer`: a 64 KiB and a 1 MiB payload sent to a loopback sink that acknowledges each
//!   with one byte, directly and through the fault proxy with no toxics (ratio: proxy's share of direct
//!   throughput, the inverse of the time ratio).
//! - `chaos_proxy_round_trip`: one byte echoed, directly and through the proxy (the proxy's added latency is
//!   the difference of the medians).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

/// Both points inline where they are used, as in real code; the floor is the same loop with no point.
#[inline(always)]
fn ours() -> Result<(), infra_chaos::ChaosError> {
    infra_chaos::point!("bench.checked")
}

#[inline(always)]
fn theirs() -> Option<u32> {
    fail::fail_point!("bench.checked", |_| Some(1));
    None
}

#[inline(always)]
fn floor() -> Option<u32> {
    black_box(None)
}

fn points(c: &mut Criterion) {
    let mut group = c.benchmark_group("chaos_point_idle");
    group.bench_function("infra", |b| b.iter(|| black_box(ours())));
    group.bench_function("fail", |b| b.iter(|| black_box(theirs())));
    group.bench_function("floor", |b| b.iter(|| black_box(floor())));
    group.finish();

    // Something else is targeted: ours skips the lookup through the call site's cache, fail looks the
    // name up under its registry lock.
    infra_chaos::global().configure("bench.other", "return").unwrap();
    fail::cfg("bench.other", "return").unwrap();
    let mut group = c.benchmark_group("chaos_point_other_targeted");
    group.bench_function("infra", |b| b.iter(|| black_box(ours())));
    group.bench_function("fail", |b| b.iter(|| black_box(theirs())));
    group.finish();
    infra_chaos::global().remove("bench.other");
    fail::remove("bench.other");
    assert!(ours().is_ok() && theirs().is_none(), "nothing targeted the measured point");
}

/// A loopback server that reads `size` bytes at a time and answers each with one byte.
async fn sink(size: usize) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let mut left = size;
                    while left > 0 {
                        match socket.read(&mut buf[..left.min(256 * 1024)]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => left -= n,
                        }
                    }
                    if socket.write_all(&[1]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn proxy(c: &mut Criterion) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = runtime.block_on(infra_chaos::ProxyServer::start("127.0.0.1:0".parse().unwrap())).unwrap();

    let mut group = c.benchmark_group("chaos_proxy_transfer");
    for (label, size) in [("64KiB", 64 * 1024), ("1MiB", 1024 * 1024)] {
        let direct = runtime.block_on(sink(size));
        let name = format!("sink_{label}");
        let proxied: std::net::SocketAddr =
            server.create(&name, "127.0.0.1:0", &direct.to_string(), true).unwrap().listen.parse().unwrap();
        let payload = vec![0xA5u8; size];
        for (who, addr) in [("direct", direct), ("infra_proxy", proxied)] {
            group.bench_function(criterion::BenchmarkId::new(who, label), |b| {
                let mut stream = runtime.block_on(tokio::net::TcpStream::connect(addr)).unwrap();
                stream.set_nodelay(true).unwrap();
                b.iter(|| {
                    runtime.block_on(async {
                        stream.write_all(&payload).await.unwrap();
                        let mut ack = [0u8; 1];
                        stream.read_exact(&mut ack).await.unwrap();
                    })
                });
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("chaos_proxy_round_trip");
    let direct = runtime.block_on(sink(1));
    let proxied: std::net::SocketAddr =
        server.create("echo", "127.0.0.1:0", &direct.to_string(), true).unwrap().listen.parse().unwrap();
    for (who, addr) in [("direct", direct), ("infra_proxy", proxied)] {
        group.bench_function(who, |b| {
            // The client runs as a task on the runtime, like a service's, not across a thread hand-off.
            b.iter_custom(|iters| {
                runtime.block_on(async move {
                    tokio::spawn(async move {
                        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                        stream.set_nodelay(true).unwrap();
                        let mut ack = [0u8; 1];
                        let started = std::time::Instant::now();
                        for _ in 0..iters {
                            stream.write_all(&[7]).await.unwrap();
                            stream.read_exact(&mut ack).await.unwrap();
                        }
                        started.elapsed()
                    })
                    .await
                    .unwrap()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(chaos_benches, points, proxy);
criterion_main!(chaos_benches);
