//! Toxiproxy's HTTP API over a small HTTP/1.1 server (keep-alive, `Content-Length` bodies: what the
//! Toxiproxy clients send).

use std::sync::Weak;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Inner, ProxyError, ProxyServer, Toxic, VERSION};

/// Largest request head or body accepted.
const MAX_REQUEST: usize = 1 << 20;

pub(crate) async fn serve(listener: TcpListener, server: Weak<Inner>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let server = server.clone();
        tokio::spawn(async move {
            let _ = connection(stream, server).await;
        });
    }
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// Serves requests on one connection until the client closes it or asks to.
async fn connection(mut stream: TcpStream, server: Weak<Inner>) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await? else { return Ok(()) };
        let Some(inner) = server.upgrade() else { return Ok(()) };
        let (status, body) = route(&ProxyServer { inner }, &request).await;
        write_response(&mut stream, status, body.as_ref(), request.close).await?;
        if request.close {
            return Ok(());
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<Option<Request>> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buffer.len() > MAX_REQUEST {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split_whitespace();
    let method = request_line.next().unwrap_or_default().to_owned();
    let target = request_line.next().unwrap_or_default();
    let version = request_line.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let mut length = 0usize;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().unwrap_or(0);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if length > MAX_REQUEST {
        return Ok(None);
    }
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Ok(Some(Request { method, path, body, close }))
}

async fn write_response(stream: &mut TcpStream, status: u16, body: Option<&Value>, close: bool) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        _ => "Internal Server Error",
    };
    let connection = if close { "close" } else { "keep-alive" };
    let mut response = format!("HTTP/1.1 {status} {reason}\r\nConnection: {connection}\r\n");
    let payload = body.map(|body| body.to_string()).unwrap_or_default();
    if status != 204 {
        response.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", payload.len()));
    }
    response.push_str("\r\n");
    response.push_str(&payload);
    stream.write_all(response.as_bytes()).await
}

fn error(error: &ProxyError) -> (u16, Option<Value>) {
    (error.status(), Some(json!({ "error": error.to_string(), "status": error.status() })))
}

fn parse_body(request: &Request) -> Result<Value, ProxyError> {
    if request.body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&request.body).map_err(|err| ProxyError::BadRequest(format!("bad request body: {err}")))
}

fn text(value: &Value, field: &str) -> Option<String> {
    value.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// `POST /populate`'s body: `[{"name", "listen", "upstream", "enabled"}]`.
fn populate_specs(request: &Request) -> Result<Vec<(String, String, String, bool)>, ProxyError> {
    let body = parse_body(request)?;
    let list = body.as_array().ok_or_else(|| ProxyError::BadRequest("populate takes a JSON array".into()))?;
    list.iter()
        .map(|proxy| {
            let name = text(proxy, "name").filter(|n| !n.is_empty());
            let upstream = text(proxy, "upstream").filter(|u| !u.is_empty());
            match (name, upstream) {
                (Some(name), Some(upstream)) => Ok((
                    name,
                    text(proxy, "listen").unwrap_or_default(),
                    upstream,
                    proxy.get("enabled").and_then(Value::as_bool).unwrap_or(true),
                )),
                _ => Err(ProxyError::BadRequest("missing required field: name or upstream".into())),
            }
        })
        .collect()
}

/// Answers one request: a status and a JSON body (none for 204).
async fn route(server: &ProxyServer, request: &Request) -> (u16, Option<Value>) {
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let outcome = match (request.method.as_str(), segments.as_slice()) {
        ("GET", ["version"]) => Ok((200, Some(json!({ "version": VERSION })))),
        ("POST", ["reset"]) => server.reset().map(|()| (204, None)),
        ("GET", ["proxies"]) => {
            let proxies: serde_json::Map<String, Value> =
                server.proxies().into_iter().map(|proxy| (proxy.name.clone(), proxy.to_json())).collect();
            Ok((200, Some(Value::Object(proxies))))
        }
        ("POST", ["proxies"]) => parse_body(request).and_then(|body| {
            let enabled = body.get("enabled").and_then(Value::as_bool).unwrap_or(true);
            let name = text(&body, "name").unwrap_or_default();
            let listen = text(&body, "listen").unwrap_or_default();
            let upstream = text(&body, "upstream").unwrap_or_default();
            server.create(&name, &listen, &upstream, enabled).map(|info| (201, Some(info.to_json())))
        }),
        ("POST", ["populate"]) => match populate_specs(request) {
            Ok(specs) => server.populate(&specs).await.map(|proxies| {
                (201, Some(json!({ "proxies": proxies.iter().map(super::ProxyInfo::to_json).collect::<Vec<_>>() })))
            }),
            Err(error) => Err(error),
        },
        ("GET", ["proxies", name]) => server.proxy(name).map(|info| (200, Some(info.to_json()))),
        ("POST" | "PATCH", ["proxies", name]) => match parse_body(request) {
            Ok(body) => {
                let listen = text(&body, "listen");
                let upstream = text(&body, "upstream");
                let enabled = body.get("enabled").and_then(Value::as_bool);
                let updated = server.update(name, listen.as_deref(), upstream.as_deref(), enabled).await;
                updated.map(|info| (200, Some(info.to_json())))
            }
            Err(error) => Err(error),
        },
        ("DELETE", ["proxies", name]) => server.delete(name).await.map(|()| (204, None)),
        ("GET", ["proxies", name, "toxics"]) => {
            server.toxics(name).map(|toxics| (200, Some(Value::Array(toxics.iter().map(Toxic::to_json).collect()))))
        }
        ("POST", ["proxies", name, "toxics"]) => parse_body(request)
            .and_then(|body| Toxic::from_json(&body))
            .and_then(|toxic| server.add_toxic(name, toxic))
            .map(|toxic| (200, Some(toxic.to_json()))),
        ("GET", ["proxies", name, "toxics", toxic]) => server.toxics(name).and_then(|toxics| {
            toxics
                .iter()
                .find(|t| t.name == *toxic)
                .map(|t| (200, Some(t.to_json())))
                .ok_or_else(|| ProxyError::NotFound(format!("toxic {toxic}")))
        }),
        ("POST" | "PATCH", ["proxies", name, "toxics", toxic]) => parse_body(request)
            .and_then(|body| server.update_toxic(name, toxic, &body))
            .map(|toxic| (200, Some(toxic.to_json()))),
        ("DELETE", ["proxies", name, "toxics", toxic]) => server.remove_toxic(name, toxic).map(|()| (204, None)),
        (method, _) => {
            Ok((405, Some(json!({ "error": format!("no route for {method} {}", request.path), "status": 405 }))))
        }
    };
    outcome.unwrap_or_else(|err| error(&err))
}
