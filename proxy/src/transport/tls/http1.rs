//! One bounded HTTP/1.1 exchange over plain TCP, for the signed objects the TLS layer fetches
//! (CRLs from distribution points, OCSP responses): their signatures are what moat trusts, so
//! `http://` only. The whole exchange has a deadline and the body a size cap.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;

#[derive(Debug)]
pub(crate) enum Http1Error {
    Url,
    Connect(std::io::Error),
    Http(hyper::Error),
    Status(u16),
    Body,
    Timeout,
}

/// A GET, or a POST of `(content type, body)`; the response body when the status is 200.
pub(crate) async fn fetch(
    url: &str,
    post: Option<(&'static str, Vec<u8>)>,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Vec<u8>, Http1Error> {
    let uri: hyper::Uri = url.parse().map_err(|_| Http1Error::Url)?;
    if uri.scheme_str() != Some("http") {
        return Err(Http1Error::Url);
    }
    let host = uri.host().ok_or(Http1Error::Url)?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let exchange = async move {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(Http1Error::Connect)?;
        let _ = tcp.set_nodelay(true);
        let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(Http1Error::Http)?;
        let driver = tokio::spawn(conn);
        let host_header = if port == 80 { host.clone() } else { format!("{host}:{port}") };
        let req = match post {
            None => hyper::Request::get(path).header(hyper::header::HOST, host_header).body(Full::default()),
            Some((content_type, body)) => hyper::Request::post(path)
                .header(hyper::header::HOST, host_header)
                .header(hyper::header::CONTENT_TYPE, content_type)
                .body(Full::new(Bytes::from(body))),
        };
        let body = match req {
            Err(_) => Err(Http1Error::Url),
            Ok(req) => match send.send_request(req).await {
                Err(e) => Err(Http1Error::Http(e)),
                Ok(resp) if resp.status() != hyper::StatusCode::OK => {
                    Err(Http1Error::Status(resp.status().as_u16()))
                }
                Ok(resp) => Limited::new(resp.into_body(), max_bytes)
                    .collect()
                    .await
                    .map(|b| b.to_bytes().to_vec())
                    .map_err(|_| Http1Error::Body),
            },
        };
        driver.abort();
        body
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| Http1Error::Timeout)?
}
