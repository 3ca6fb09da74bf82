//! `moat ctl`: the admin API from the command line, like `emqx ctl`. The token comes from a file
//! (`--token-file`) or the `MOAT_ADMIN_TOKEN` environment variable, never from an argument
//! (arguments are visible to every user through `ps`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Largest response read (a full client or ban listing page is far below this).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Path-segment encoding: everything but unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// rustls client config trusting `cacert` (PEM) and the server name from `addr` (host part).
fn client_tls(
    addr: &str,
    cacert: Option<&std::path::Path>,
) -> Result<(Arc<rustls::ClientConfig>, rustls_pki_types::ServerName<'static>), CtlError> {
    use rustls_pki_types::pem::PemObject;
    let path = cacert.ok_or_else(|| CtlError::Tls("an https:// URL needs --cacert FILE".into()))?;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|_| CtlError::Tls(format!("cannot read certificates from {}", path.display())))?;
    for c in certs {
        roots.add(c).map_err(|e| CtlError::Tls(format!("{}: {e}", path.display())))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CtlError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| CtlError::BadUrl(addr.to_string()))?;
    Ok((Arc::new(config), name))
}

#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("TLS: {0}")]
    Tls(String),
    #[error("admin URL must look like http://HOST:PORT, got `{0}`")]
    BadUrl(String),
    #[error("cannot reach the admin API at {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("admin API request failed: {0}")]
    Http(String),
    #[error("the admin API did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot read the token file {path}: {source}")]
    TokenFile { path: String, source: std::io::Error },
}

pub struct Ctl {
    /// `host:port`.
    addr: String,
    token: Option<String>,
    /// Set for `https://` URLs: the server is verified against these roots.
    tls: Option<(Arc<rustls::ClientConfig>, rustls_pki_types::ServerName<'static>)>,
}

/// A response: status and body (JSON from the API).
pub struct Answer {
    pub status: u16,
    pub body: String,
}

pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

impl Ctl {
    pub fn new(
        url: &str,
        token_file: Option<&std::path::Path>,
        cacert: Option<&std::path::Path>,
    ) -> Result<Self, CtlError> {
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(r), _) => (false, r),
            (_, Some(r)) => (true, r),
            _ => return Err(CtlError::BadUrl(url.to_string())),
        };
        let addr = Some(rest.trim_end_matches('/'))
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| CtlError::BadUrl(url.to_string()))?
            .to_string();
        let tls = if https { Some(client_tls(&addr, cacert)?) } else { None };
        let token = match token_file {
            Some(p) => Some(
                std::fs::read_to_string(p)
                    .map_err(|source| CtlError::TokenFile { path: p.display().to_string(), source })?
                    .trim()
                    .to_string(),
            ),
            None => std::env::var("MOAT_ADMIN_TOKEN").ok().map(|t| t.trim().to_string()),
        };
        Ok(Self { addr, token, tls })
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<String>) -> Result<Answer, CtlError> {
        tokio::time::timeout(TIMEOUT, self.call_inner(method, path, body))
            .await
            .map_err(|_| CtlError::Timeout(TIMEOUT))?
    }

    async fn call_inner(&self, method: Method, path: &str, body: Option<String>) -> Result<Answer, CtlError> {
        let stream = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|source| CtlError::Connect { addr: self.addr.clone(), source })?;
        let mut sender = match &self.tls {
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| CtlError::Http(e.to_string()))?;
                tokio::spawn(conn);
                sender
            }
            Some((config, name)) => {
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|source| CtlError::Connect { addr: self.addr.clone(), source })?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                    .await
                    .map_err(|e| CtlError::Http(e.to_string()))?;
                tokio::spawn(conn);
                sender
            }
        };
        let mut req = Request::builder().method(method).uri(path).header(HOST, &self.addr);
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CtlError::Http(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| CtlError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE);
        let bytes = limited.collect().await.map_err(|e| CtlError::Http(e.to_string()))?.to_bytes();
        Ok(Answer { status, body: String::from_utf8_lossy(&bytes).into_owned() })
    }
}

/// `moat ctl` arguments (parsed by the binary, run here so they are testable).
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// The admin API.
    #[arg(long, default_value = "http://127.0.0.1:9090", global = true)]
    pub url: String,
    /// File holding a bearer token (default: the MOAT_ADMIN_TOKEN environment variable).
    #[arg(long, global = true)]
    pub token_file: Option<std::path::PathBuf>,
    /// PEM CA bundle verifying an `https://` admin API (`admin.tls`).
    #[arg(long, global = true)]
    pub cacert: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum CtlCommand {
    /// Version, uptime, policy generation, last reload.
    Status,
    /// Re-read the configuration and policy files (all or nothing).
    Reload,
    /// The configuration in force (no secrets).
    Config,
    /// Bans: list, add, rm, clear.
    Bans {
        #[command(subcommand)]
        command: BansCommand,
    },
    /// Live sessions: list, kick.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum BansCommand {
    List {
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// KIND is clientid, username, ipaddr, clientid_re, username_re or cidr.
    Add {
        kind: String,
        who: String,
        #[arg(long)]
        reason: Option<String>,
        /// How long, e.g. 10m, 2h, 7d (default: until removed).
        #[arg(long)]
        duration: Option<String>,
    },
    Rm {
        kind: String,
        who: String,
    },
    /// Remove every runtime ban.
    Clear,
}

#[derive(clap::Subcommand, Debug)]
pub enum ClientsCommand {
    List {
        #[arg(long)]
        clientid: Option<String>,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        ip: Option<String>,
        #[arg(long, default_value_t = 1)]
        page: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    Kick {
        clientid: String,
    },
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode_segment(v)))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// The request a command makes.
pub fn request_for(cmd: &CtlCommand) -> (Method, String, Option<String>) {
    match cmd {
        CtlCommand::Status => (Method::GET, "/api/v1/status".into(), None),
        CtlCommand::Reload => (Method::POST, "/api/v1/reload".into(), None),
        CtlCommand::Config => (Method::GET, "/api/v1/config".into(), None),
        CtlCommand::Bans { command } => match command {
            BansCommand::List { kind, page, limit } => (
                Method::GET,
                format!(
                    "/api/v1/bans{}",
                    query(&[
                        ("kind", kind.clone()),
                        ("page", Some(page.to_string())),
                        ("limit", Some(limit.to_string()))
                    ])
                ),
                None,
            ),
            BansCommand::Add { kind, who, reason, duration } => {
                let mut body = serde_json::json!({ "kind": kind, "who": who, "by": "moat-ctl" });
                if let Some(r) = reason {
                    body["reason"] = r.clone().into();
                }
                if let Some(d) = duration {
                    body["duration"] = d.clone().into();
                }
                (Method::POST, "/api/v1/bans".into(), Some(body.to_string()))
            }
            BansCommand::Rm { kind, who } => (
                Method::DELETE,
                format!("/api/v1/bans/{}/{}", encode_segment(kind), encode_segment(who)),
                None,
            ),
            BansCommand::Clear => (Method::DELETE, "/api/v1/bans".into(), None),
        },
        CtlCommand::Clients { command } => match command {
            ClientsCommand::List { clientid, username, ip, page, limit } => (
                Method::GET,
                format!(
                    "/api/v1/clients{}",
                    query(&[
                        ("clientid", clientid.clone()),
                        ("username", username.clone()),
                        ("ip_address", ip.clone()),
                        ("page", Some(page.to_string())),
                        ("limit", Some(limit.to_string())),
                    ])
                ),
                None,
            ),
            ClientsCommand::Kick { clientid } => {
                (Method::DELETE, format!("/api/v1/clients/{}", encode_segment(clientid)), None)
            }
        },
    }
}

/// Runs one command: prints the API's JSON answer (pretty) on stdout for 2xx, on stderr
/// otherwise. Returns whether the API reported success.
pub async fn run(args: &CtlArgs) -> Result<bool, CtlError> {
    let ctl = Ctl::new(&args.url, args.token_file.as_deref(), args.cacert.as_deref())?;
    let (method, path, body) = request_for(&args.command);
    let answer = ctl.call(method, &path, body).await?;
    let pretty = serde_json::from_str::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(answer.body);
    let ok = (200..300).contains(&answer.status);
    if ok {
        if !pretty.is_empty() {
            println!("{pretty}");
        }
    } else {
        eprintln!("HTTP {}: {pretty}", answer.status);
    }
    Ok(ok)
}
