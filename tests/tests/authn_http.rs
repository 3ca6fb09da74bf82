//! HTTP backend authentication through moat to a real Mosquitto, against a local backend run by
//! the test: allow / deny / ignore, superuser, what the backend is told, failures (timeout, 500,
//! garbage) with `on_failure: deny` and `ignore`, the answer cache, pipelining behind a slow
//! backend, and the password never appearing in moat's logs.

use std::time::Duration;

use moat_e2e::callout::{Reply, Stub};
use moat_e2e::packets::{self, RawPacket, Version};
use moat_e2e::policy::{self, connect_with, PolicyDir};
use moat_e2e::{unique, Env, MoatOptions, RawClient};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const V311: Version = Version::V311;
const V5: Version = Version::V5;

async fn start(policy_yaml: String) -> Env {
    Env::start_with(MoatOptions { policy_yaml: Some(policy_yaml), ..Default::default() }).await
}

fn http_auth(url: &str, extra: &str) -> String {
    format!(
        "authentication:\n  - name: backend\n    type: http\n    url: \"{url}\"\n    timeout: 1s\n{extra}"
    )
}

/// The backend's rules: by username.
fn decide(body: &[u8]) -> Reply {
    let req: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let user = req["username"].as_str().unwrap_or("");
    let pw = req["password"].as_str().unwrap_or("");
    match (user, pw) {
        ("alice", "alice-pw") => Reply::ok(json!({"result": "allow"}).to_string()),
        ("root", "root-pw") => Reply::ok(json!({"result": "allow", "is_superuser": true}).to_string()),
        ("carol", _) => Reply::ok(json!({"result": "ignore"}).to_string()),
        _ => Reply::ok(json!({"result": "deny"}).to_string()),
    }
}

async fn connack(env: &Env, bytes: &[u8], ctx: &str) -> (RawPacket, RawClient) {
    let mut c = env.raw().await;
    c.send(bytes).await.unwrap_or_else(|e| panic!("{ctx}: send: {e}"));
    let ack = c
        .expect_packet(packets::CONNACK, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: no CONNACK: {e}\n{}", env.moat.logs()));
    (ack, c)
}

async fn expect_code(env: &Env, version: Version, user: &str, pw: &str, code: u8, ctx: &str) -> RawClient {
    let bytes = connect_with(version, &unique("h"), Some(user), Some(pw.as_bytes()));
    let (ack, mut c) = connack(env, &bytes, ctx).await;
    assert_eq!(
        ack.connack_code(),
        Some(code),
        "{ctx} ({version:?}): {}\n{}",
        ack.describe(),
        env.moat.logs()
    );
    if code != 0 {
        let closed = c.read_until_closed(WAIT).await.unwrap_or_else(|e| panic!("{ctx}: not closed: {e}"));
        assert!(closed.packets.is_empty(), "{ctx}: packets after the refusal");
    }
    c
}

async fn publish_reason(c: &mut RawClient, version: Version, topic: &str, pid: u16) -> u8 {
    c.send(&packets::publish(version, topic.as_bytes(), 1, false, pid, b"m")).await.expect("publish");
    let ack = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    policy::ack(&ack).expect("PUBACK body").1
}

#[tokio::test]
async fn backend_allows_denies_ignores_and_grants_superuser() {
    let dir = PolicyDir::new();
    // An ACL that grants nothing: only a superuser may publish.
    let acl = dir.write("acl.yaml", "rules: []\n");
    let stub = Stub::start(Box::new(decide)).await;
    let env =
        start(format!("{}authorization:\n  acl: \"{}\"\n", http_auth(&stub.url("/auth"), ""), acl.display()))
            .await;
    for version in [V311, V5] {
        let (deny, none) = if version == V5 { (0x86, 0x87) } else { (0x04, 0x05) };
        expect_code(&env, version, "mallory", "x", deny, "backend deny").await;
        expect_code(&env, version, "alice", "wrong", deny, "wrong password").await;
        // ignore: no authenticator left in the chain → refused.
        expect_code(&env, version, "carol", "x", none, "backend ignore").await;
    }
    env.assert_no_upstream_bytes("refused by the backend").await;

    let mut alice = expect_code(&env, V5, "alice", "alice-pw", 0, "alice").await;
    let topic = unique("http/root");
    assert_eq!(publish_reason(&mut alice, V5, &topic, 1).await, 0x87, "alice is no superuser");
    let mut root = expect_code(&env, V5, "root", "root-pw", 0, "root").await;
    assert_eq!(publish_reason(&mut root, V5, &topic, 1).await, 0, "superuser bypasses the ACL");
    env.sub.wait_for(&topic, b"m", WAIT).await.expect("superuser publish reached the broker");
    assert_eq!(env.sub.messages().len(), 1, "only the superuser's publish: {:?}", env.sub.summary());

    // What the backend was told.
    let req: Value =
        serde_json::from_slice(stub.requests().last().expect("a request")).expect("JSON request");
    assert_eq!(req["username"], "root");
    assert_eq!(req["password"], "root-pw");
    assert_eq!(req["peerhost"], "127.0.0.1");
    assert_eq!(req["listener"], "mqtts");
    assert!(req["clientid"].as_str().is_some_and(|c| c.starts_with("h-")), "{req}");
}

#[tokio::test]
async fn backend_failures_deny_by_default() {
    let stub = Stub::start(Box::new(|_| Reply::ok("{}"))).await;
    let env = start(http_auth(&stub.url("/auth"), "")).await;
    let failures: Vec<(&str, Reply)> = vec![
        ("timeout", Reply::ok(json!({"result": "allow"}).to_string()).delayed(Duration::from_secs(3))),
        ("500", Reply::status(500, json!({"result": "allow"}).to_string())),
        ("garbage", Reply::ok("<html>allow</html>")),
        ("unknown result", Reply::ok(json!({"result": "yes"}).to_string())),
        ("302", Reply::status(302, "")),
    ];
    for (ctx, reply) in failures {
        stub.set(Box::new(move |_| reply.clone()));
        let started = std::time::Instant::now();
        expect_code(&env, V5, "alice", "alice-pw", 0x87, ctx).await;
        expect_code(&env, V311, "alice", "alice-pw", 0x05, ctx).await;
        assert!(started.elapsed() < Duration::from_secs(6), "{ctx}: took {:?}", started.elapsed());
    }
    env.assert_no_upstream_bytes("backend failures").await;
    // Refused as a backend failure by the http authenticator (not merely by the end of the chain).
    let metrics = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
    let n = policy::metric_with_labels(
        &metrics.body,
        "moat_authentications_total",
        &[("authenticator", "http"), ("result", "backend_failure")],
    );
    assert_eq!(n, Some(10.0), "backend failures counted:\n{}", metrics.body);
}

#[tokio::test]
async fn on_failure_ignore_passes_to_the_next_authenticator() {
    let stub = Stub::start(Box::new(|_| Reply::status(503, "down"))).await;
    let env = start(format!(
        "{}  - name: anon\n    type: anonymous\n",
        http_auth(&stub.url("/auth"), "    on_failure: ignore\n")
    ))
    .await;
    for version in [V311, V5] {
        expect_code(&env, version, "alice", "alice-pw", 0, "backend down, anonymous next").await;
    }
    // A definite deny is still a deny, not a failure.
    stub.set(Box::new(|_| Reply::ok(json!({"result": "deny"}).to_string())));
    expect_code(&env, V5, "alice", "alice-pw", 0x86, "backend deny").await;
}

#[tokio::test]
async fn answers_are_cached_per_credential() {
    let stub = Stub::start(Box::new(decide)).await;
    let env = start(http_auth(&stub.url("/auth"), "    cache_ttl: 1m\n")).await;
    for _ in 0..3 {
        expect_code(&env, V5, "alice", "alice-pw", 0, "cached allow")
            .await
            .send(&packets::disconnect(V5))
            .await
            .ok();
    }
    // Client ids differ per connection (unique), so they are part of the key: use a fixed one.
    let fixed = unique("fixed");
    for _ in 0..3 {
        let bytes = connect_with(V5, &fixed, Some("alice"), Some(b"alice-pw"));
        let (ack, mut c) = connack(&env, &bytes, "fixed id").await;
        assert_eq!(ack.connack_code(), Some(0));
        c.send(&packets::disconnect(V5)).await.ok();
        let _ = c.read_until_closed(WAIT).await;
    }
    let calls_for_fixed = stub
        .requests()
        .iter()
        .filter(|b| serde_json::from_slice::<Value>(b).is_ok_and(|v| v["clientid"] == fixed.as_str()))
        .count();
    assert_eq!(calls_for_fixed, 1, "the backend was asked again for a cached answer");
    // A different password is a different key: asked again, and denied.
    let bytes = connect_with(V5, &fixed, Some("alice"), Some(b"other"));
    let (ack, _c) = connack(&env, &bytes, "other password").await;
    assert_eq!(ack.connack_code(), Some(0x86));
    let calls_for_fixed = stub
        .requests()
        .iter()
        .filter(|b| serde_json::from_slice::<Value>(b).is_ok_and(|v| v["clientid"] == fixed.as_str()))
        .count();
    assert_eq!(calls_for_fixed, 2);
}

#[tokio::test]
async fn pipelined_publish_behind_a_slow_backend_never_reaches_the_broker() {
    let stub = Stub::start(Box::new(|_| {
        Reply::ok(json!({"result": "deny"}).to_string()).delayed(Duration::from_millis(700))
    }))
    .await;
    let env = start(http_auth(&stub.url("/auth"), "")).await;
    for version in [V311, V5] {
        let mut bytes = connect_with(version, &unique("slow"), Some("alice"), Some(b"alice-pw"));
        bytes.extend(packets::publish(version, b"slow/secret", 1, true, 1, b"must not arrive"));
        bytes.extend(packets::subscribe(version, 2, b"#", 0));
        let (ack, mut c) = connack(&env, &bytes, "slow backend").await;
        assert_eq!(ack.connack_code(), Some(if version == V5 { 0x86 } else { 0x04 }));
        c.read_until_closed(WAIT).await.expect("closed");
    }
    env.assert_no_upstream_bytes("pipelined behind a slow backend").await;
}

#[tokio::test]
async fn the_password_never_appears_in_moats_logs() {
    const PW: &str = "Sup3r-Secret-Pa55word-for-log-check";
    let stub = Stub::start(Box::new(|b| {
        let v: Value = serde_json::from_slice(b).unwrap_or(Value::Null);
        match v["username"].as_str() {
            Some("ok") => Reply::ok(json!({"result": "allow"}).to_string()),
            Some("slow") => Reply::ok("{}").delayed(Duration::from_secs(3)),
            Some("bad") => Reply::status(500, "error"),
            _ => Reply::ok(json!({"result": "deny"}).to_string()),
        }
    }))
    .await;
    let env = start(http_auth(&stub.url("/auth"), "    cache_ttl: 1m\n")).await;
    expect_code(&env, V5, "ok", PW, 0, "allow").await;
    expect_code(&env, V5, "no", PW, 0x86, "deny").await;
    expect_code(&env, V5, "slow", PW, 0x87, "timeout").await;
    expect_code(&env, V311, "bad", PW, 0x05, "500").await;
    assert!(
        stub.requests().iter().any(|b| String::from_utf8_lossy(b).contains(PW)),
        "the backend got the password"
    );
    // moat logs at debug level in these tests.
    let logs = env.moat.logs();
    assert!(logs.contains("HTTP auth backend failed"), "expected failure logs:\n{logs}");
    assert!(!logs.contains(PW), "the password is in moat's logs:\n{logs}");
}

#[tokio::test]
async fn moat_check_reports_jwt_and_http_mistakes_with_file_line_and_key() {
    let dir = PolicyDir::new();
    dir.write("short.secret", "too short");
    let config = dir.write(
        "moat.yaml",
        "listeners:\n  - name: x\n    bind: \"127.0.0.1:1884\"\n    plaintext: true\n\
         authentication:\n  - name: j\n    type: jwt\n    algorithms: [HS256, none]\n    secret_file: short.secret\n\
         \x20   required_claims:\n      sub: \"${password}\"\n  - name: h\n    type: http\n    url: \"http://10.0.0.1/auth\"\n\
         \x20   on_failure: allow\n",
    );
    let mut cmd = tokio::process::Command::from(moat_e2e::moat_command());
    cmd.arg("check").arg("-c").arg(&config);
    let out =
        moat_e2e::procs::run_with_timeout(cmd, Duration::from_secs(20)).await.expect("moat check exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "moat check accepted:\n{stderr}");
    for expected in [
        "moat.yaml:8: authentication[0].algorithms: `none`",
        "moat.yaml:9: authentication[0].secret_file: the secret is 9 bytes",
        "moat.yaml:11: authentication[0].required_claims.sub: unknown placeholder",
        "moat.yaml:14: authentication[1].url: plain http is allowed only to a loopback address",
        "moat.yaml:15: authentication[1].on_failure: `allow` is not deny or ignore",
    ] {
        assert!(stderr.contains(expected), "missing `{expected}` in:\n{stderr}");
    }
}
