//! Just enough of the Redis and PostgreSQL wire protocols to probe a server and ask it simple questions
//! (is it up, how many connections does it see) without pulling a client library into every test.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

fn protocol_error(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// A Redis (RESP2) reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RespValue {
    /// `+OK` and the like.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$5 hello`, or `None` for the null bulk string.
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`, or `None` for the null array.
    Array(Option<Vec<RespValue>>),
}

/// Sends one command to the Redis server at `addr` on a new connection and returns its reply.
///
/// # Errors
///
/// Fails on socket errors and on replies that are not RESP2.
pub fn redis_command(addr: SocketAddr, args: &[&[u8]]) -> io::Result<RespValue> {
    let mut stream = connect(addr)?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg);
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    read_resp(&mut BufReader::new(stream))
}

fn read_resp(reader: &mut impl BufRead) -> io::Result<RespValue> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.strip_suffix("\r\n").ok_or_else(|| protocol_error("truncated RESP line"))?;
    let (kind, rest) = line.split_at_checked(1).ok_or_else(|| protocol_error("empty RESP line"))?;
    let number = || rest.parse::<i64>().map_err(|_| protocol_error(format!("bad RESP length {rest:?}")));
    Ok(match kind {
        "+" => RespValue::Simple(rest.to_owned()),
        "-" => RespValue::Error(rest.to_owned()),
        ":" => RespValue::Integer(number()?),
        "$" => match usize::try_from(number()?) {
            Err(_) => RespValue::Bulk(None),
            Ok(len) => {
                let mut bytes = vec![0; len + 2];
                reader.read_exact(&mut bytes)?;
                bytes.truncate(len);
                RespValue::Bulk(Some(bytes))
            }
        },
        "*" => match usize::try_from(number()?) {
            Err(_) => RespValue::Array(None),
            Ok(len) => RespValue::Array(Some((0..len).map(|_| read_resp(reader)).collect::<io::Result<_>>()?)),
        },
        other => return Err(protocol_error(format!("unknown RESP type {other:?}"))),
    })
}

/// Runs `sql` with the simple-query protocol as `user` on `database` (trust authentication, as the
/// harness's throwaway clusters use) and returns the rows of the last result, NULL as `None`.
///
/// # Errors
///
/// Fails on socket errors, on a server error (its message is returned), and when the server asks for a
/// password.
pub fn postgres_query(addr: SocketAddr, user: &str, database: &str, sql: &str) -> io::Result<Vec<Vec<Option<String>>>> {
    let mut stream = connect(addr)?;
    let mut startup = Vec::new();
    startup.extend_from_slice(&196_608_i32.to_be_bytes()); // protocol 3.0
    for part in ["user", user, "database", database] {
        startup.extend_from_slice(part.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    write_message(&mut stream, None, &startup)?;
    read_until_ready(&mut stream)?;

    let mut query = sql.as_bytes().to_vec();
    query.push(0);
    write_message(&mut stream, Some(b'Q'), &query)?;
    let rows = read_until_ready(&mut stream)?;
    write_message(&mut stream, Some(b'X'), &[])?;
    Ok(rows)
}

fn write_message(stream: &mut TcpStream, tag: Option<u8>, payload: &[u8]) -> io::Result<()> {
    let len = i32::try_from(payload.len() + 4).map_err(|_| protocol_error("message too long"))?;
    let mut message = Vec::with_capacity(payload.len() + 5);
    message.extend(tag);
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(payload);
    stream.write_all(&message)
}

/// Reads messages until ReadyForQuery, collecting data rows and failing on ErrorResponse.
fn read_until_ready(stream: &mut TcpStream) -> io::Result<Vec<Vec<Option<String>>>> {
    let mut rows = Vec::new();
    let mut error = None;
    loop {
        let mut header = [0u8; 5];
        stream.read_exact(&mut header)?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let len = usize::try_from(len - 4).map_err(|_| protocol_error("negative message length"))?;
        let mut body = vec![0; len];
        stream.read_exact(&mut body)?;
        match header[0] {
            b'R' if body.get(..4) != Some(&[0, 0, 0, 0]) => {
                return Err(protocol_error("the server asks for a password; the harness uses trust authentication"));
            }
            b'T' => rows.clear(),
            b'D' => rows.push(parse_data_row(&body)?),
            b'E' => error = Some(error_message(&body)),
            b'Z' => return error.map_or(Ok(rows), |message| Err(io::Error::other(message))),
            _ => {}
        }
    }
}

fn parse_data_row(body: &[u8]) -> io::Result<Vec<Option<String>>> {
    let truncated = || protocol_error("truncated data row");
    let count = u16::from_be_bytes(body.get(..2).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?);
    let mut at = 2;
    let mut row = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = i32::from_be_bytes(body.get(at..at + 4).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?);
        at += 4;
        match usize::try_from(len) {
            Err(_) => row.push(None),
            Ok(len) => {
                let value = body.get(at..at + len).ok_or_else(truncated)?;
                row.push(Some(String::from_utf8_lossy(value).into_owned()));
                at += len;
            }
        }
    }
    Ok(row)
}

/// The human-readable fields of an ErrorResponse: severity, code and message.
fn error_message(body: &[u8]) -> String {
    let mut parts = Vec::new();
    for field in body.split(|&b| b == 0).filter(|f| !f.is_empty()) {
        if matches!(field[0], b'S' | b'C' | b'M') {
            parts.push(String::from_utf8_lossy(&field[1..]).into_owned());
        }
    }
    format!("postgres: {}", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_resp_replies() {
        let mut input: &[u8] = b"*3\r\n$3\r\nfoo\r\n:7\r\n$-1\r\n";
        assert_eq!(
            read_resp(&mut input).unwrap(),
            RespValue::Array(Some(vec![
                RespValue::Bulk(Some(b"foo".to_vec())),
                RespValue::Integer(7),
                RespValue::Bulk(None)
            ]))
        );
        let mut bad: &[u8] = b"?what\r\n";
        assert!(read_resp(&mut bad).is_err());
    }

    #[test]
    fn parses_data_rows_with_nulls() {
        let mut body = vec![0, 2];
        body.extend_from_slice(&1i32.to_be_bytes());
        body.push(b'1');
        body.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(parse_data_row(&body).unwrap(), vec![Some("1".to_owned()), None]);
        assert!(parse_data_row(&body[..5]).is_err());
    }
}
