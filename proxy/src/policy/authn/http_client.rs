//! The one HTTP client moat uses to call out (JWKS fetches, the HTTP auth backend): reqwest over
//! rustls with the aws-lc-rs provider and the system trust store. Plain `http://` only to a
//! loopback address (a sidecar's local auth service); anything else must be `https://`, so a
//! network attacker can neither forge keys nor answer "allow".

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;

/// Parses and checks a callout URL (config time).
pub fn check_url(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not allowed (they would end up in logs)".into());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err("plain http is allowed only to a loopback address; use https".into()),
        other => Err(format!("scheme `{other}` is not http or https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A client with a per-request timeout and no redirects (a redirect could leave https or loopback).
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("moat/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Reads a response body of at most `max` bytes; a larger one is an error, never buffered whole.
pub async fn read_body(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("response larger than {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len().saturating_add(chunk.len()) > max {
            return Err(format!("response larger than {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_or_loopback_http() {
        assert!(check_url("https://auth.example/jwks").is_ok());
        assert!(check_url("http://127.0.0.1:8080/auth").is_ok());
        assert!(check_url("http://[::1]/auth").is_ok());
        assert!(check_url("http://localhost/auth").is_ok());
        assert!(check_url("http://auth.example/auth").unwrap_err().contains("loopback"));
        assert!(check_url("ftp://x/").is_err());
        assert!(check_url("https://u:p@auth.example/").unwrap_err().contains("credentials"));
        assert!(check_url("not a url").is_err());
    }
}
