//! Syslog (RFC 5424) over UDP, TCP (octet-counted framing, RFC 6587) and a Unix datagram socket,
//! with the trace context and the fields in structured-data elements.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
#[cfg(unix)]
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use crate::entry::{LogEntry, push_escaped, rfc3339};
use crate::sink::Sink;

/// The private enterprise number in our structured-data IDs (`trace@32473`): 32473 is the number
/// RFC 5612 reserves for documentation and examples, as no number is registered for this crate.
pub const ENTERPRISE_NUMBER: u32 = 32473;

/// Where syslog messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTransport {
    /// One datagram per message.
    Udp(SocketAddr),
    /// A stream of octet-counted messages (`LEN SP MESSAGE`); reconnects after an error.
    Tcp(SocketAddr),
    /// A Unix datagram socket (`/dev/log` and the like).
    #[cfg(unix)]
    Unix(PathBuf),
}

/// A syslog destination that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyslogError {
    /// The address does not resolve to a socket address.
    #[error("syslog address {0:?} is invalid: give host:port, e.g. \"127.0.0.1:514\"")]
    Address(String),
    /// The facility is not 0..=23.
    #[error("syslog facility {0} is invalid: use 0..=23 (1 user, 16..=23 local0..local7)")]
    Facility(u8),
    /// The socket could not be opened.
    #[error("syslog socket for {0:?} could not be opened: {1}")]
    Socket(SyslogTransport, io::Error),
}

/// Sends entries to a syslog daemon in RFC 5424 format.
#[derive(Debug)]
pub struct SyslogSink {
    transport: SyslogTransport,
    facility: u8,
    hostname: String,
    app_name: String,
    procid: String,
    socket: Socket,
    buffer: String,
}

#[derive(Debug)]
enum Socket {
    Udp(UdpSocket),
    Tcp(Option<TcpStream>),
    #[cfg(unix)]
    Unix(UnixDatagram),
}

impl SyslogSink {
    /// UDP to `address` (`"127.0.0.1:514"`).
    ///
    /// # Errors
    /// An address that does not resolve, or a socket that cannot be opened.
    pub fn udp(address: &str) -> Result<SyslogSink, SyslogError> {
        Self::new(SyslogTransport::Udp(resolve(address)?))
    }

    /// TCP with octet-counted framing to `address`.
    ///
    /// # Errors
    /// An address that does not resolve. (A daemon that is down is not an error here: the sink
    /// connects when it first writes, and reconnects after failures.)
    pub fn tcp(address: &str) -> Result<SyslogSink, SyslogError> {
        Self::new(SyslogTransport::Tcp(resolve(address)?))
    }

    /// A Unix datagram socket at `path`.
    ///
    /// # Errors
    /// The local socket cannot be created.
    #[cfg(unix)]
    pub fn unix(path: impl Into<PathBuf>) -> Result<SyslogSink, SyslogError> {
        Self::new(SyslogTransport::Unix(path.into()))
    }

    /// A sink for this transport, facility `user` (1), the machine's host name and the process id.
    ///
    /// # Errors
    /// A socket that cannot be opened.
    pub fn new(transport: SyslogTransport) -> Result<SyslogSink, SyslogError> {
        let socket = match &transport {
            SyslogTransport::Udp(address) => {
                let local: SocketAddr = if address.is_ipv4() {
                    ([0, 0, 0, 0], 0).into()
                } else {
                    "[::]:0".parse().map_err(|_| SyslogError::Address(address.to_string()))?
                };
                Socket::Udp(UdpSocket::bind(local).map_err(|e| SyslogError::Socket(transport.clone(), e))?)
            }
            SyslogTransport::Tcp(_) => Socket::Tcp(None),
            #[cfg(unix)]
            SyslogTransport::Unix(_) => {
                Socket::Unix(UnixDatagram::unbound().map_err(|e| SyslogError::Socket(transport.clone(), e))?)
            }
        };
        let hostname = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "-".to_owned());
        Ok(SyslogSink {
            transport,
            facility: 1,
            hostname: printable(&hostname, 255),
            app_name: String::new(),
            procid: std::process::id().to_string(),
            socket,
            buffer: String::new(),
        })
    }

    /// The facility, 0..=23 (default 1, user).
    ///
    /// # Errors
    /// A facility above 23.
    pub fn facility(mut self, facility: u8) -> Result<SyslogSink, SyslogError> {
        if facility > 23 {
            return Err(SyslogError::Facility(facility));
        }
        self.facility = facility;
        Ok(self)
    }

    /// The APP-NAME (default: each entry's service name).
    pub fn app_name(mut self, name: &str) -> SyslogSink {
        self.app_name = printable(name, 48);
        self
    }

    /// One message in RFC 5424 format (no framing).
    pub fn format(&self, entry: &LogEntry) -> String {
        let mut out = String::with_capacity(256);
        self.format_into(entry, &mut out);
        out
    }

    fn format_into(&self, entry: &LogEntry, out: &mut String) {
        let priority = u32::from(self.facility) * 8 + u32::from(entry.level.syslog_severity());
        // RFC 5424 allows at most six digits of fractional seconds.
        let time = rfc3339(entry.time_unix_nanos);
        let time = format!("{}Z", &time[..26]);
        let app = if self.app_name.is_empty() { printable(&entry.service, 48) } else { self.app_name.clone() };
        let msgid = printable(&entry.component, 32);
        let _ = write!(out, "<{priority}>1 {time} {} {app} {} {msgid} ", self.hostname, self.procid);
        let mut structured = false;
        if let Some(trace) = &entry.trace {
            let _ = write!(
                out,
                "[trace@{ENTERPRISE_NUMBER} trace_id=\"{:032x}\" span_id=\"{:016x}\" trace_flags=\"{:02x}\"]",
                trace.trace_id, trace.span_id, trace.flags
            );
            structured = true;
        }
        if !entry.fields.is_empty() || entry.error.is_some() {
            let _ = write!(out, "[fields@{ENTERPRISE_NUMBER}");
            for field in &entry.fields {
                let name = param_name(&field.key);
                if name.is_empty() {
                    continue;
                }
                let _ = write!(out, " {name}=\"");
                param_value(out, &field.value.to_string());
                out.push('"');
            }
            if let Some(error) = &entry.error {
                out.push_str(" error=\"");
                param_value(out, error);
                out.push('"');
            }
            out.push(']');
            structured = true;
        }
        if !structured {
            out.push('-');
        }
        out.push(' ');
        // Control characters escaped, so a message never splits in a daemon's line-based output.
        push_escaped(out, &entry.message);
    }

    fn send(&mut self, message: &str) -> io::Result<()> {
        match (&mut self.socket, &self.transport) {
            (Socket::Udp(socket), SyslogTransport::Udp(address)) => {
                socket.send_to(message.as_bytes(), address)?;
            }
            (Socket::Tcp(stream), SyslogTransport::Tcp(address)) => {
                if stream.is_none() {
                    let connected = TcpStream::connect_timeout(address, Duration::from_secs(5))?;
                    connected.set_nodelay(true)?;
                    *stream = Some(connected);
                }
                let framed = format!("{} {message}", message.len());
                let written = stream.as_mut().map(|s| s.write_all(framed.as_bytes()));
                if let Some(Err(error)) = written {
                    // Reconnect on the next write; this batch is retried by the sink's thread.
                    *stream = None;
                    return Err(error);
                }
            }
            #[cfg(unix)]
            (Socket::Unix(socket), SyslogTransport::Unix(path)) => {
                socket.send_to(message.as_bytes(), path)?;
            }
            _ => return Err(io::Error::other("syslog socket and transport disagree")),
        }
        Ok(())
    }
}

impl Sink for SyslogSink {
    fn write_batch(&mut self, entries: &[LogEntry]) -> io::Result<()> {
        for entry in entries {
            let mut message = std::mem::take(&mut self.buffer);
            message.clear();
            self.format_into(entry, &mut message);
            let sent = self.send(&message);
            self.buffer = message;
            sent?;
        }
        Ok(())
    }

    fn name(&self) -> String {
        format!("syslog:{:?}", self.transport)
    }
}

fn resolve(address: &str) -> Result<SocketAddr, SyslogError> {
    address
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| SyslogError::Address(address.to_owned()))
}

/// A header field: printable ASCII without spaces, at most `max` characters, `-` when empty.
fn printable(text: &str, max: usize) -> String {
    let cleaned: String = text.chars().filter(|c| c.is_ascii_graphic()).take(max).collect();
    if cleaned.is_empty() { "-".to_owned() } else { cleaned }
}

/// An SD-PARAM name: printable ASCII except `=`, space, `]` and `"`, at most 32 characters.
fn param_name(key: &str) -> String {
    key.chars().filter(|c| c.is_ascii_graphic() && !matches!(c, '=' | ']' | '"')).take(32).collect()
}

/// An SD-PARAM value with `"`, `\` and `]` escaped by a backslash, as RFC 5424 requires.
fn param_value(out: &mut String, value: &str) {
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        if c.is_control() {
            let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
}
