//! A tiny HTTP/1.0 GET client for the admin endpoints (no extra dependencies).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

/// GET http://127.0.0.1:`port``path`.
pub async fn get(port: u16, path: &str) -> Result<Response> {
    request(port, "GET", path, None, None).await
}

/// `method` http://127.0.0.1:`port``path` with an optional bearer token and JSON body.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    json_body: Option<&str>,
) -> Result<Response> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.context("connect admin")?;
        let mut head = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        let body = json_body.unwrap_or("");
        if json_body.is_some() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        s.write_all(head.as_bytes()).await?;
        s.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        parse_response(&raw)
    })
    .await
    .map_err(|_| anyhow!("{method} {path} timed out"))?
}

/// Status, headers and (de-chunked) body of a whole HTTP/1.x response.
fn parse_response(raw: &[u8]) -> Result<Response> {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("no header end in {text:?}"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line {status_line:?}"))?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok(Response { status, headers: head.to_string(), body })
}

fn dechunk(mut s: &str) -> Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").ok_or_else(|| anyhow!("bad chunk"))?;
        let n = usize::from_str_radix(size.trim(), 16)?;
        if n == 0 {
            return Ok(out);
        }
        if rest.len() < n {
            bail!("short chunk");
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
}

/// Sum of all samples of metric `name` (exact name, any labels) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value = if rest.starts_with('{') { rest.rsplit_once('}').map(|(_, v)| v) } else { Some(rest) };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse::<f64>().ok()) {
            found = true;
            sum += v;
        }
    }
    found.then_some(sum)
}

/// The sample lines of metric `name`.
pub fn metric_lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with('{') || r.starts_with(' ')))
        .collect()
}

/// `method` https://localhost:`port``path` (TLS verified with `config`), bearer token optional.
pub async fn request_tls(
    port: u16,
    config: std::sync::Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<Response> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.context("connect admin")?;
        let name = rustls_pki_types::ServerName::try_from("localhost".to_string()).context("name")?;
        let mut s =
            tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.context("TLS handshake")?;
        let mut head = format!("{method} {path} HTTP/1.0\r\nHost: localhost:{port}\r\nConnection: close\r\n");
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        head.push_str("Content-Length: 0\r\n\r\n");
        s.write_all(head.as_bytes()).await?;
        let mut raw = Vec::new();
        // A peer that closes without close_notify is fine here: the body is complete.
        let _ = s.read_to_end(&mut raw).await;
        parse_response(&raw)
    })
    .await
    .map_err(|_| anyhow!("{method} {path} over TLS timed out"))?
}
