//! Helpers for tests with several moat replicas sharing state through Redis (tests/tests/redis.rs
//! and redis_ha.rs): one replica's options, admin calls, connecting and waiting for a kick.

use std::time::{Duration, Instant};

use crate::http::{request, Response};
use crate::packets::{self, Version};
use crate::policy::PolicyDir;
use crate::{Env, Moat, MoatOptions, RawClient, ANONYMOUS_AUTH};

/// The admin token every replica accepts.
pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const WAIT: Duration = Duration::from_secs(10);
/// The bound on how long a change takes to reach every replica.
pub const PROPAGATION: Duration = Duration::from_secs(1);

/// One replica's options: TLS listener, admin token, Redis backend reached through `redis_lines`
/// (indented lines inside `state.redis:`, e.g. `    url: "redis://…"\n`) under `prefix`.
pub fn replica(
    dir: &PolicyDir,
    redis_lines: &str,
    prefix: &str,
    extra: &str,
    policy_extra: &str,
) -> MoatOptions {
    let tokens = dir
        .write("tokens.yaml", &format!("tokens:\n  - name: ops\n    scope: admin\n    token: \"{ADMIN}\"\n"));
    MoatOptions {
        admin_extra: Some(format!("  tokens_file: \"{}\"\n", tokens.display())),
        policy_yaml: Some(format!(
            "{ANONYMOUS_AUTH}state:\n  backend: redis\n  redis:\n{redis_lines}    key_prefix: \"{prefix}:\"\n    timeout: 300ms\n{extra}{policy_extra}"
        )),
        ..Default::default()
    }
}

/// A second (third…) replica in front of the same broker (through the env's tap).
pub async fn another(env: &Env, mut opts: MoatOptions) -> Moat {
    opts.upstream = env.tap.addr();
    Moat::start(&env.pki, &opts).await
}

/// An admin API call with the [`ADMIN`] token.
pub async fn call(port: u16, method: &str, path: &str, body: Option<&str>) -> Response {
    request(port, method, path, Some(ADMIN), body).await.expect("admin request")
}

/// Connects to `port` and returns the client and its CONNACK code.
pub async fn connect(env: &Env, port: u16, version: Version, id: &str) -> (RawClient, Option<u8>) {
    let mut c = RawClient::connect(port, env.tls()).await.expect("TLS connect");
    c.send(&packets::connect(version, id)).await.expect("send CONNECT");
    let code = c.expect_packet(packets::CONNACK, WAIT).await.ok().and_then(|p| p.connack_code());
    (c, code)
}

pub async fn connected(env: &Env, port: u16, version: Version, id: &str) -> RawClient {
    let (c, code) = connect(env, port, version, id).await;
    assert_eq!(code, Some(0), "CONNACK for {id} on {port}");
    c
}

/// Waits for the v5 DISCONNECT 0x98 and the close; returns how long it took.
pub async fn expect_kicked(c: &mut RawClient, what: &str) -> Duration {
    let start = Instant::now();
    let closed = c.read_until_closed(Duration::from_secs(5)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        closed.disconnect_reason(),
        Some(0x98),
        "{what}: {:?}",
        closed.packets.iter().map(|p| p.describe()).collect::<Vec<_>>()
    );
    start.elapsed()
}

/// A metric's value from the replica's `/metrics`.
pub async fn metric(port: u16, name: &str) -> Option<f64> {
    let r = call(port, "GET", "/metrics", None).await;
    r.body
        .lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Polls `check` every 50 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
