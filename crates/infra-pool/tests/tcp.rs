//! The TCP managers against a loopback listener that hangs up on demand.

use std::io::{Read, Write};
use std::time::Duration;

use infra_pool::{BlockingPool, BlockingTcpManager, HealthCheck, Pool, TcpManager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_connection_the_peer_closed_is_replaced_on_checkout() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let pool = Pool::builder(TcpManager::new(listener.local_addr()?)).max_size(2).build()?;

    let mut conn = pool.get().await?;
    let (mut server_side, _) = listener.accept().await?;
    conn.write_all(b"ping").await?;
    let mut got = [0u8; 4];
    server_side.read_exact(&mut got).await?;
    assert_eq!(&got, b"ping");
    drop(conn);
    assert_eq!(pool.stats().idle, 1);

    // The server hangs up while the connection is idle: the next checkout notices without a round trip.
    drop(server_side);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let accept = tokio::spawn(async move { listener.accept().await.map(|(socket, _)| socket) });
    let mut conn = pool.get().await?;
    let mut fresh_server_side = accept.await??;
    conn.write_all(b"pong").await?;
    fresh_server_side.read_exact(&mut got).await?;
    assert_eq!(&got, b"pong");
    let stats = pool.stats();
    assert_eq!((stats.closed_broken, stats.creates), (1, 2), "{stats:#?}");
    Ok(())
}

#[test]
fn blocking_validation_finds_a_closed_connection() -> Result<(), Box<dyn std::error::Error>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let manager = BlockingTcpManager::new(listener.local_addr()?, Duration::from_secs(1));
    let pool = BlockingPool::builder(manager).max_size(1).health_check(HealthCheck::Always).build()?;

    let mut conn = pool.get()?;
    let (mut server_side, _) = listener.accept()?;
    conn.write_all(b"hi")?;
    let mut got = [0u8; 2];
    server_side.read_exact(&mut got)?;
    drop(conn);
    let conn = pool.get()?; // validated: the peer is still there
    drop(conn);
    assert_eq!(pool.stats().creates, 1);

    drop(server_side);
    std::thread::sleep(Duration::from_millis(20));
    let _conn = pool.get()?; // validation fails; a new connection takes its slot
    let stats = pool.stats();
    assert_eq!((stats.failed_health_checks, stats.creates), (1, 2), "{stats:#?}");
    Ok(())
}
