//! Loopback servers the proxy tests forward to.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Serves every connection with `handle`, on a free loopback port.
async fn serve<F, Fut>(handle: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(handle(socket));
        }
    });
    addr
}

/// Echoes what it reads.
pub async fn echo_server() -> SocketAddr {
    serve(|mut socket| async move {
        let (mut read, mut write) = socket.split();
        let _ = tokio::io::copy(&mut read, &mut write).await;
    })
    .await
}

/// Sends `bytes` bytes to each connection, then closes it.
pub async fn sending_server(bytes: usize) -> SocketAddr {
    serve(move |mut socket| async move {
        let _ = socket.write_all(&vec![7u8; bytes]).await;
        let _ = socket.shutdown().await;
    })
    .await
}
