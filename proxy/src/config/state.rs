//! `state:` — where state shared between replicas lives. `embedded` (the default) keeps runtime
//! bans in the local ban store and counters in memory; `redis` shares runtime bans, flapping
//! counters and fleet-wide connection counts through one Redis, so many moat replicas enforce one
//! policy. Redis credentials come from files only, so a config file never holds a secret.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::error::Issues;
use super::raw::S;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    #[serde(default)]
    pub backend: Option<S<String>>,
    #[serde(default)]
    pub redis: Option<RawRedis>,
    #[serde(default)]
    pub fleet_limits: Option<RawFleetLimits>,
}

/// `state.redis.sentinel`: find the master through Redis Sentinel.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSentinel {
    pub master_name: S<String>,
    pub addresses: S<Vec<S<String>>>,
    #[serde(default)]
    pub username_file: Option<S<String>>,
    #[serde(default)]
    pub password_file: Option<S<String>>,
}

/// `state.redis.cluster`: a Redis Cluster, found through any of its nodes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub nodes: S<Vec<S<String>>>,
}

/// `state.fleet_limits`: limits that hold across every replica.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFleetLimits {
    #[serde(default)]
    pub messages_per_user: Option<S<String>>,
    #[serde(default)]
    pub flush_interval: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    #[serde(default)]
    pub url: Option<S<String>>,
    #[serde(default)]
    pub sentinel: Option<RawSentinel>,
    #[serde(default)]
    pub cluster: Option<RawCluster>,
    #[serde(default)]
    pub key_prefix: Option<S<String>>,
    #[serde(default)]
    pub timeout: Option<S<String>>,
    #[serde(default)]
    pub username_file: Option<S<String>>,
    #[serde(default)]
    pub password_file: Option<S<String>>,
    #[serde(default)]
    pub ca_file: Option<S<String>>,
    #[serde(default)]
    pub fail_mode: Option<S<String>>,
    #[serde(default)]
    pub max_connections_per_client_id: Option<S<u32>>,
    #[serde(default)]
    pub max_connections_per_username: Option<S<u32>>,
}

/// The validated `state:` section.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
// One value per config: its size does not matter, and a Box would only add derefs everywhere.
#[allow(clippy::large_enum_variant)]
pub enum StateBackend {
    #[default]
    Embedded,
    Redis(RedisConfig),
}

/// What a new connection gets while Redis cannot be reached (last known bans and local limits are
/// enforced either way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailMode {
    /// Admit it on local checks alone.
    Open,
    /// Refuse it (CONNACK "server unavailable"): no client is admitted unchecked.
    Closed,
}

/// A secret read from a file; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which Redis deployment holds the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server: `redis://host:port/db` or `rediss://…` (TLS); never carries credentials.
    Standalone { url: String },
    /// The master of `master_name`, asked of the Sentinels at `addresses` (URLs, same scheme),
    /// asked again when the master stops answering as master (failover).
    Sentinel {
        master_name: String,
        addresses: Vec<String>,
        /// Credentials for the Sentinels themselves (the data nodes use `username`/`password`).
        username: Option<Secret>,
        password: Option<Secret>,
    },
    /// A Redis Cluster reached through any of `nodes` (URLs, same scheme).
    Cluster { nodes: Vec<String> },
}

impl RedisTopology {
    pub fn as_str(&self) -> &'static str {
        match self {
            RedisTopology::Standalone { .. } => "standalone",
            RedisTopology::Sentinel { .. } => "sentinel",
            RedisTopology::Cluster { .. } => "cluster",
        }
    }

    /// True when the connections use TLS (`rediss://`).
    pub fn tls(&self) -> bool {
        match self {
            RedisTopology::Standalone { url } => url.starts_with("rediss://"),
            RedisTopology::Sentinel { addresses: a, .. } | RedisTopology::Cluster { nodes: a } => {
                a.first().is_some_and(|u| u.starts_with("rediss://"))
            }
        }
    }
}

/// `state.fleet_limits.messages_per_user`: a token bucket per username shared by the fleet.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FleetMessageRate {
    /// Messages per second.
    pub rate: f64,
    /// Bucket capacity (messages).
    pub burst: f64,
    /// How often each replica sends its counts to Redis and reads back the verdict.
    pub flush_interval: Duration,
}

// Rates are finite numbers checked at validation (never NaN).
impl Eq for FleetMessageRate {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisConfig {
    pub topology: RedisTopology,
    /// Prepended to every key and channel, so replicas of different fleets can share a Redis.
    pub key_prefix: String,
    /// Bound on connecting and on each command.
    pub timeout: Duration,
    pub username: Option<Secret>,
    pub password: Option<Secret>,
    /// PEM CA bundle that verifies a `rediss://` server instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    pub fail_mode: FailMode,
    /// Fleet-wide caps on concurrent sessions (none when unset).
    pub max_connections_per_client_id: Option<u32>,
    pub max_connections_per_username: Option<u32>,
    /// Fleet-wide PUBLISH rate per username (`state.fleet_limits`).
    pub messages_per_user: Option<FleetMessageRate>,
}

pub(crate) const DEFAULT_KEY_PREFIX: &str = "moat:";
/// How often a replica sends its per-user message counts to Redis by default.
pub(crate) const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Largest credential file read.
const MAX_SECRET_BYTES: u64 = 4096;

pub(crate) fn state(raw: Option<RawState>, base: &Path, issues: &mut Issues) -> StateBackend {
    let Some(raw) = raw else {
        return StateBackend::Embedded;
    };
    let backend = raw.backend.as_ref().map_or("embedded", |b| b.value.as_str());
    let line = raw.backend.as_ref().map_or(0, |b| b.referenced.line());
    match backend {
        "embedded" => {
            if raw.redis.is_some() {
                issues.push(line, "state.redis", "only used with `backend: redis`");
            }
            if raw.fleet_limits.is_some() {
                issues.push(line, "state.fleet_limits", "only used with `backend: redis`");
            }
            StateBackend::Embedded
        }
        "redis" => match raw.redis {
            Some(r) => {
                let fleet = fleet_limits(raw.fleet_limits, issues);
                redis(r, line, base, issues).map_or(StateBackend::Embedded, |c| {
                    StateBackend::Redis(RedisConfig { messages_per_user: fleet, ..c })
                })
            }
            None => {
                issues.push(
                    line,
                    "state.redis",
                    "`backend: redis` needs a `redis:` section with `url`, `sentinel` or `cluster`",
                );
                StateBackend::Embedded
            }
        },
        other => {
            issues.push(line, "state.backend", format!("`{other}` is not embedded or redis"));
            StateBackend::Embedded
        }
    }
}

/// `state.fleet_limits`; `None` when no fleet limit is set.
fn fleet_limits(raw: Option<RawFleetLimits>, issues: &mut Issues) -> Option<FleetMessageRate> {
    let raw = raw?;
    let flush_interval = match &raw.flush_interval {
        Some(t) => match super::parse_duration(&t.value) {
            Ok(d) if d < Duration::from_millis(10) || d > Duration::from_secs(10) => {
                issues.push(
                    t.referenced.line(),
                    "state.fleet_limits.flush_interval",
                    "must be between 10ms and 10s",
                );
                None
            }
            Ok(d) => Some(d),
            Err(m) => {
                issues.push(t.referenced.line(), "state.fleet_limits.flush_interval", m);
                None
            }
        },
        None => Some(DEFAULT_FLUSH_INTERVAL),
    };
    let key = "state.fleet_limits.messages_per_user";
    let spec = super::rates::rate(raw.messages_per_user.as_ref(), key, issues)?;
    let line = raw.messages_per_user.as_ref().map_or(0, |m| m.referenced.line());
    let crate::policy::limits::Rate::PerSecond(rate) = spec.rate else {
        issues.push(line, key, "must be a finite rate (remove the key for no limit)");
        return None;
    };
    let burst = spec.burst_or_default();
    if !(rate > 0.0 && rate.is_finite() && burst >= 1.0 && burst.is_finite()) {
        issues.push(line, key, "needs a rate above zero and a burst of at least 1");
        return None;
    }
    Some(FleetMessageRate { rate, burst, flush_interval: flush_interval? })
}

/// One Redis URL: scheme, no credentials, a host, parseable.
fn check_url(url: &str, line: u64, key: &str, issues: &mut Issues) {
    match url.split_once("://") {
        Some(("redis" | "rediss", rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            if authority.contains('@') {
                // Never echo the URL: it holds the secret.
                issues.push(
                    line,
                    key,
                    "must not contain credentials; use state.redis.username_file and password_file",
                );
            } else if authority.is_empty() {
                issues.push(line, key, "has no host");
            } else if redis::IntoConnectionInfo::into_connection_info(url).is_err() {
                issues.push(line, key, format!("`{url}` is not a valid Redis URL"));
            }
        }
        _ => issues.push(line, key, "must start with redis:// or rediss:// (TLS)"),
    }
}

/// A list of `host:port` (or `redis://` / `rediss://` URLs, one scheme for all) as URLs.
fn address_list(list: S<Vec<S<String>>>, key: &str, issues: &mut Issues) -> Vec<String> {
    let line = list.referenced.line();
    if list.value.is_empty() || list.value.len() > 64 {
        issues.push(line, key, "must list 1 to 64 addresses");
        return Vec::new();
    }
    let mut urls = Vec::new();
    for a in list.value {
        let text = a.value.trim();
        let url = if text.contains("://") { text.to_string() } else { format!("redis://{text}") };
        check_url(&url, a.referenced.line(), key, issues);
        urls.push(url);
    }
    let tls = urls.first().is_some_and(|u| u.starts_with("rediss://"));
    if urls.iter().any(|u| u.starts_with("rediss://") != tls) {
        issues.push(line, key, "must all use the same scheme (all redis:// or all rediss://)");
    }
    urls
}

fn topology(r: &mut RawRedis, section_line: u64, base: &Path, issues: &mut Issues) -> Option<RedisTopology> {
    let lines: Vec<u64> = [
        r.url.as_ref().map(|u| u.referenced.line()),
        r.sentinel.as_ref().map(|s| s.master_name.referenced.line()),
        r.cluster.as_ref().map(|c| c.nodes.referenced.line()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if lines.len() != 1 {
        let line = lines.get(1).copied().unwrap_or(section_line);
        issues.push(line, "state.redis", "needs exactly one of `url`, `sentinel` or `cluster`");
        return None;
    }
    if let Some(u) = r.url.take() {
        let url = u.value.trim().to_string();
        check_url(&url, u.referenced.line(), "state.redis.url", issues);
        return Some(RedisTopology::Standalone { url });
    }
    if let Some(s) = r.sentinel.take() {
        let name = s.master_name.value.trim().to_string();
        if name.is_empty() || name.len() > 128 || !name.chars().all(|c| c.is_ascii_graphic()) {
            issues.push(
                s.master_name.referenced.line(),
                "state.redis.sentinel.master_name",
                "must be 1 to 128 printable ASCII characters",
            );
        }
        let addresses = address_list(s.addresses, "state.redis.sentinel.addresses", issues);
        let username =
            s.username_file.and_then(|f| secret_file(&f, "state.redis.sentinel.username_file", base, issues));
        let password =
            s.password_file.and_then(|f| secret_file(&f, "state.redis.sentinel.password_file", base, issues));
        return Some(RedisTopology::Sentinel { master_name: name, addresses, username, password });
    }
    let c = r.cluster.take()?;
    Some(RedisTopology::Cluster { nodes: address_list(c.nodes, "state.redis.cluster.nodes", issues) })
}

fn redis(mut r: RawRedis, section_line: u64, base: &Path, issues: &mut Issues) -> Option<RedisConfig> {
    let before = issues.list.len();
    let topology = topology(&mut r, section_line, base, issues);
    let key_prefix = match r.key_prefix {
        Some(p) => {
            let ok = !p.value.is_empty()
                && p.value.len() <= 64
                && p.value.chars().all(|c| c.is_ascii_graphic() && c != '*' && c != '?' && c != '[');
            if !ok {
                issues.push(
                    p.referenced.line(),
                    "state.redis.key_prefix",
                    "must be 1 to 64 printable ASCII characters without spaces or glob characters",
                );
            }
            p.value
        }
        None => DEFAULT_KEY_PREFIX.to_string(),
    };
    let timeout = match r.timeout {
        Some(t) => match super::parse_duration(&t.value) {
            Ok(d) if d.is_zero() || d > Duration::from_secs(60) => {
                issues.push(t.referenced.line(), "state.redis.timeout", "must be between 1ms and 60s");
                Duration::from_secs(1)
            }
            Ok(d) => d,
            Err(m) => {
                issues.push(t.referenced.line(), "state.redis.timeout", m);
                Duration::from_secs(1)
            }
        },
        None => Duration::from_secs(1),
    };
    let username = r.username_file.and_then(|f| secret_file(&f, "state.redis.username_file", base, issues));
    let password = r.password_file.and_then(|f| secret_file(&f, "state.redis.password_file", base, issues));
    let ca_pem = r.ca_file.and_then(|f| {
        if !topology.as_ref().is_some_and(RedisTopology::tls) {
            issues.push(
                f.referenced.line(),
                "state.redis.ca_file",
                "only used with rediss:// (TLS) addresses",
            );
            return None;
        }
        ca_file(&f, base, issues)
    });
    let fail_mode = match r.fail_mode {
        None => FailMode::Closed,
        Some(m) => match m.value.as_str() {
            "open" => FailMode::Open,
            "closed" => FailMode::Closed,
            other => {
                issues.push(
                    m.referenced.line(),
                    "state.redis.fail_mode",
                    format!("`{other}` is not open or closed"),
                );
                FailMode::Closed
            }
        },
    };
    let cap = |v: Option<S<u32>>, key: &str, issues: &mut Issues| {
        v.map(|n| {
            if n.value == 0 {
                issues.push(n.referenced.line(), key, "must be at least 1");
            }
            n.value
        })
    };
    let max_connections_per_client_id =
        cap(r.max_connections_per_client_id, "state.redis.max_connections_per_client_id", issues);
    let max_connections_per_username =
        cap(r.max_connections_per_username, "state.redis.max_connections_per_username", issues);
    if issues.list.len() > before {
        return None;
    }
    Some(RedisConfig {
        topology: topology?,
        key_prefix,
        timeout,
        username,
        password,
        ca_pem,
        fail_mode,
        max_connections_per_client_id,
        max_connections_per_username,
        messages_per_user: None,
    })
}

/// Reads a PEM CA bundle and checks it holds at least one certificate.
fn ca_file(path: &S<String>, base: &Path, issues: &mut Issues) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject as _;
    let file = base.join(&path.value);
    let line = path.referenced.line();
    let bytes = match std::fs::read(&file) {
        Ok(b) if b.len() <= 1024 * 1024 => b,
        Ok(_) => {
            issues.push(line, "state.redis.ca_file", format!("{} is larger than 1 MiB", file.display()));
            return None;
        }
        Err(e) => {
            issues.push(line, "state.redis.ca_file", format!("cannot read {}: {}", file.display(), e.kind()));
            return None;
        }
    };
    let certs: Result<Vec<_>, _> = rustls_pki_types::CertificateDer::pem_slice_iter(&bytes).collect();
    match certs {
        Ok(c) if !c.is_empty() => Some(bytes),
        _ => {
            issues.push(line, "state.redis.ca_file", format!("{} holds no PEM certificate", file.display()));
            None
        }
    }
}

/// Reads a one-line secret; errors name the file but never its contents.
fn secret_file(path: &S<String>, key: &str, base: &Path, issues: &mut Issues) -> Option<Secret> {
    use std::io::Read as _;
    let file = base.join(&path.value);
    let line = path.referenced.line();
    let mut buf = Vec::new();
    let read = std::fs::File::open(&file)
        .and_then(|f| f.take(MAX_SECRET_BYTES + 1).read_to_end(&mut buf))
        .map_err(|e| format!("cannot read {}: {}", file.display(), e.kind()));
    if let Err(m) = read {
        issues.push(line, key, m);
        return None;
    }
    if buf.len() as u64 > MAX_SECRET_BYTES {
        issues.push(line, key, format!("{} is larger than {MAX_SECRET_BYTES} bytes", file.display()));
        return None;
    }
    let Ok(text) = String::from_utf8(buf) else {
        issues.push(line, key, format!("{} is not UTF-8", file.display()));
        return None;
    };
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() || value.contains(['\n', '\r']) {
        issues.push(line, key, format!("{} must hold exactly one non-empty line", file.display()));
        return None;
    }
    Some(Secret(value.to_string()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{from_str, Config, ConfigIssue};

    const BASE: &str = "listeners:\n  - name: plain\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n\
                        authentication:\n  - name: anon\n    type: anonymous\n";

    fn load(state: &str, dir: &Path) -> Result<Config, Vec<ConfigIssue>> {
        from_str(&format!("{BASE}{state}"), &dir.join("moat.yaml")).map_err(|e| e.issues)
    }

    fn issue(state: &str, dir: &Path) -> ConfigIssue {
        let mut found = load(state, dir).expect_err("config unexpectedly valid");
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    }

    #[test]
    fn embedded_is_the_default() {
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(load("", dir.path()).expect("valid").state, StateBackend::Embedded);
        let c = load("state:\n  backend: embedded\n", dir.path()).expect("valid");
        assert_eq!(c.state, StateBackend::Embedded);
    }

    #[test]
    fn redis_with_defaults_and_credentials_from_files() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("user"), "moat\n").expect("write");
        std::fs::write(dir.path().join("pass"), "s3cret-pass\n").expect("write");
        let c = load(
            "state:\n  backend: redis\n  redis:\n    url: \"rediss://cache:6380/2\"\n    username_file: user\n    password_file: pass\n    fail_mode: open\n    max_connections_per_username: 3\n",
            dir.path(),
        )
        .expect("valid");
        let StateBackend::Redis(r) = c.state else { panic!("not redis") };
        assert_eq!(r.key_prefix, "moat:");
        assert_eq!(r.timeout, Duration::from_secs(1));
        assert_eq!(r.fail_mode, FailMode::Open);
        assert_eq!(r.username, Some(Secret("moat".into())));
        assert_eq!(r.password, Some(Secret("s3cret-pass".into())));
        assert_eq!(r.max_connections_per_username, Some(3));
        assert!(!format!("{r:?}").contains("s3cret"), "password in Debug output");
        let closed = load("state:\n  backend: redis\n  redis:\n    url: \"redis://127.0.0.1\"\n", dir.path())
            .expect("valid");
        let StateBackend::Redis(r) = closed.state else { panic!("not redis") };
        assert_eq!(r.fail_mode, FailMode::Closed, "fail closed by default");
    }

    #[test]
    fn each_error_names_line_and_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let i = issue("state:\n  backend: etcd\n", d);
        assert_eq!((i.line, i.key.as_str()), (9, "state.backend"));
        assert!(i.message.contains("`etcd` is not embedded or redis"), "{i:?}");
        let i = issue("state:\n  backend: redis\n", d);
        assert_eq!(i.key, "state.redis");
        let i = issue("state:\n  redis:\n    url: \"redis://x\"\n", d);
        assert_eq!(i.key, "state.redis");
        let i = issue("state:\n  backend: redis\n  redis:\n    url: \"http://x\"\n", d);
        assert_eq!((i.line, i.key.as_str()), (11, "state.redis.url"));
        assert!(i.message.contains("redis:// or rediss://"), "{i:?}");
        let i = issue("state:\n  backend: redis\n  redis:\n    url: \"redis://u:hunter2@x\"\n", d);
        assert_eq!(i.key, "state.redis.url");
        assert!(!i.message.contains("hunter2") && i.message.contains("credentials"), "{i:?}");
        let i =
            issue("state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    key_prefix: \"a b\"\n", d);
        assert_eq!((i.line, i.key.as_str()), (12, "state.redis.key_prefix"));
        let i = issue("state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    timeout: 0s\n", d);
        assert_eq!(i.key, "state.redis.timeout");
        let i = issue("state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    timeout: 5\n", d);
        assert_eq!(i.key, "state.redis.timeout");
        let i =
            issue("state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    fail_mode: maybe\n", d);
        assert_eq!((i.line, i.key.as_str()), (12, "state.redis.fail_mode"));
        let i =
            issue("state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    password_file: nope\n", d);
        assert_eq!(i.key, "state.redis.password_file");
        assert!(i.message.contains("cannot read"), "{i:?}");
        std::fs::write(d.join("two"), "a\nb\n").expect("write");
        let i =
            issue("state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    password_file: two\n", d);
        assert!(i.message.contains("exactly one non-empty line"), "{i:?}");
        let i = issue(
            "state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    max_connections_per_client_id: 0\n",
            d,
        );
        assert_eq!(i.key, "state.redis.max_connections_per_client_id");
        let i = issue("state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    ca_file: two\n", d);
        assert_eq!((i.line, i.key.as_str()), (12, "state.redis.ca_file"));
        assert!(i.message.contains("rediss://"), "{i:?}");
        let i = issue("state:\n  backend: redis\n  redis:\n    url: \"rediss://x\"\n    ca_file: two\n", d);
        assert!(i.message.contains("no PEM certificate"), "{i:?}");
        let i = issue("state:\n  backend: redis\n  redis:\n    url: \"redis://x\"\n    colour: red\n", d);
        assert_eq!((i.line, i.key.as_str()), (12, "colour"));
    }

    #[test]
    fn sentinel_cluster_and_fleet_limits() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        std::fs::write(d.join("spass"), "sentinel-s3cret\n").expect("write");
        let c = load(
            "state:\n  backend: redis\n  redis:\n    sentinel:\n      master_name: mymaster\n      addresses: [\"10.0.0.1:26379\", \"redis://10.0.0.2:26379\"]\n      password_file: spass\n",
            d,
        )
        .expect("valid");
        let StateBackend::Redis(r) = c.state else { panic!("not redis") };
        let RedisTopology::Sentinel { master_name, addresses, password, .. } = &r.topology else {
            panic!("not sentinel: {:?}", r.topology)
        };
        assert_eq!(master_name, "mymaster");
        assert_eq!(addresses, &["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"]);
        assert_eq!(password, &Some(Secret("sentinel-s3cret".into())));
        assert!(!format!("{r:?}").contains("s3cret"));
        assert_eq!(r.messages_per_user, None);
        let c = load(
            "state:\n  backend: redis\n  redis:\n    cluster:\n      nodes: [\"rediss://a:7000\", \"rediss://b:7001\"]\n  fleet_limits:\n    messages_per_user: \"20/s, burst 40\"\n",
            d,
        )
        .expect("valid");
        let StateBackend::Redis(r) = c.state else { panic!("not redis") };
        assert_eq!(r.topology.as_str(), "cluster");
        assert!(r.topology.tls());
        let m = r.messages_per_user.expect("fleet rate");
        assert_eq!((m.rate, m.burst, m.flush_interval), (20.0, 40.0, DEFAULT_FLUSH_INTERVAL));
    }

    #[test]
    fn sentinel_cluster_and_fleet_limit_errors_name_line_and_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let r = "state:\n  backend: redis\n  redis:\n";
        let i = issue(&format!("{r}    url: \"redis://x\"\n    cluster:\n      nodes: [\"a:1\"]\n"), d);
        assert_eq!((i.line, i.key.as_str()), (13, "state.redis"));
        assert!(i.message.contains("exactly one of `url`, `sentinel` or `cluster`"), "{i:?}");
        let i = issue(&format!("{r}    key_prefix: \"k:\"\n"), d);
        assert_eq!((i.line, i.key.as_str()), (9, "state.redis"));
        let i = issue(&format!("{r}    cluster:\n      nodes: []\n"), d);
        assert_eq!((i.line, i.key.as_str()), (12, "state.redis.cluster.nodes"));
        assert!(i.message.contains("1 to 64"), "{i:?}");
        let i = issue(
            &format!("{r}    cluster:\n      nodes:\n        - \"a:1\"\n        - \"http://b:2\"\n"),
            d,
        );
        assert_eq!((i.line, i.key.as_str()), (14, "state.redis.cluster.nodes"));
        assert!(i.message.contains("redis:// or rediss://"), "{i:?}");
        let i = issue(&format!("{r}    cluster:\n      nodes: [\"redis://a:1\", \"rediss://b:2\"]\n"), d);
        assert!(i.message.contains("same scheme"), "{i:?}");
        let i = issue(
            &format!("{r}    sentinel:\n      master_name: m\n      addresses: [\"u:hunter2@h:1\"]\n"),
            d,
        );
        assert_eq!((i.line, i.key.as_str()), (13, "state.redis.sentinel.addresses"));
        assert!(!i.message.contains("hunter2") && i.message.contains("credentials"), "{i:?}");
        let i =
            issue(&format!("{r}    sentinel:\n      master_name: \"a b\"\n      addresses: [\"h:1\"]\n"), d);
        assert_eq!((i.line, i.key.as_str()), (12, "state.redis.sentinel.master_name"));
        let i = issue(
            &format!("{r}    sentinel:\n      master_name: m\n      addresses: [\"h:1\"]\n      password_file: nope\n"),
            d,
        );
        assert_eq!((i.line, i.key.as_str()), (14, "state.redis.sentinel.password_file"));
        let i = issue(&format!("{r}    sentinel:\n      master_name: m\n"), d);
        assert!(i.message.contains("addresses"), "{i:?}");
        let i = issue(&format!("{r}    cluster:\n      nodes: [\"h:1\"]\n    ca_file: x\n"), d);
        assert_eq!((i.line, i.key.as_str()), (13, "state.redis.ca_file"));
        let u = "    url: \"redis://x\"\n";
        let i = issue(&format!("{r}{u}  fleet_limits:\n    messages_per_user: \"fast\"\n"), d);
        assert_eq!((i.line, i.key.as_str()), (13, "state.fleet_limits.messages_per_user"));
        let i = issue(&format!("{r}{u}  fleet_limits:\n    messages_per_user: infinity\n"), d);
        assert_eq!(i.key, "state.fleet_limits.messages_per_user");
        assert!(i.message.contains("finite"), "{i:?}");
        let i = issue(
            &format!("{r}{u}  fleet_limits:\n    messages_per_user: \"10/s\"\n    flush_interval: 1ms\n"),
            d,
        );
        assert_eq!((i.line, i.key.as_str()), (14, "state.fleet_limits.flush_interval"));
        let i = issue("state:\n  fleet_limits:\n    messages_per_user: \"10/s\"\n", d);
        assert_eq!(i.key, "state.fleet_limits");
        assert!(i.message.contains("backend: redis"), "{i:?}");
        let i =
            issue(&format!("{r}{u}  fleet_limits:\n    messages_per_user: \"10/s\"\n    colour: red\n"), d);
        assert_eq!((i.line, i.key.as_str()), (14, "colour"));
    }
}
