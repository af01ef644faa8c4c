//! Managers for plain TCP connections, for protocols the crate has no adapter for.

use std::io;
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::ReadBuf;
use tokio::net::TcpStream;

use crate::manager::{BlockingManager, Manager};

/// Pools `tokio::net::TcpStream`s to one address (with `TCP_NODELAY`).
///
/// A connection counts as broken when the peer closed it, reset it, or sent bytes nobody asked for (a
/// request/response protocol out of step); this is read from the socket without waiting, on every checkout
/// and return.
#[derive(Debug, Clone)]
pub struct TcpManager {
    addr: SocketAddr,
}

impl TcpManager {
    /// A manager connecting to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        TcpManager { addr }
    }

    /// The address connections go to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Manager for TcpManager {
    type Connection = TcpStream;
    type Error = io::Error;

    async fn create(&self) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn validate(&self, conn: &mut TcpStream) -> io::Result<()> {
        if self.is_broken(conn) {
            return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the peer closed the connection"));
        }
        Ok(())
    }

    fn is_broken(&self, conn: &mut TcpStream) -> bool {
        // A peek that would block means the socket is open with nothing unread: the healthy state. Tokio only
        // asks the kernel when it has seen readiness, so a quiet socket costs no system call.
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        !matches!(conn.poll_peek(&mut cx, &mut buf), Poll::Pending)
    }
}

/// Pools `std::net::TcpStream`s to one address (with `TCP_NODELAY` and a connect timeout).
///
/// `validate` peeks at the socket without blocking: a closed, reset or chattering connection fails.
#[derive(Debug, Clone)]
pub struct BlockingTcpManager {
    addr: SocketAddr,
    connect_timeout: Duration,
}

impl BlockingTcpManager {
    /// A manager connecting to `addr`, giving up on a connection attempt after `connect_timeout`.
    pub fn new(addr: SocketAddr, connect_timeout: Duration) -> Self {
        BlockingTcpManager { addr, connect_timeout }
    }
}

impl BlockingManager for BlockingTcpManager {
    type Connection = StdTcpStream;
    type Error = io::Error;

    fn create(&self) -> io::Result<StdTcpStream> {
        let stream = StdTcpStream::connect_timeout(&self.addr, self.connect_timeout)?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn validate(&self, conn: &mut StdTcpStream) -> io::Result<()> {
        conn.set_nonblocking(true)?;
        let peeked = conn.peek(&mut [0u8; 1]);
        conn.set_nonblocking(false)?;
        match peeked {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(err) => Err(err),
            Ok(0) => Err(io::Error::new(io::ErrorKind::ConnectionAborted, "the peer closed the connection")),
            Ok(_) => Err(io::Error::new(io::ErrorKind::InvalidData, "unread bytes on an idle connection")),
        }
    }
}
