//! The admin API against a running moat, real Mosquitto and raw TLS clients: tokens and scopes on
//! every endpoint, runtime bans that kick live sessions (v5 DISCONNECT 0x98) and survive a
//! restart, client listing and kicks, status and the redacted config.

use std::time::Duration;

use moat_e2e::http::{request, Response};
use moat_e2e::packets::{self, Version};
use moat_e2e::policy::PolicyDir;
use moat_e2e::{unique, ClientAuth, Env, Moat, MoatOptions, ANONYMOUS_AUTH};

const WAIT: Duration = Duration::from_secs(10);
const ADMIN: &str = "admin-token-0123456789abcdef";
const READER: &str = "reader-token-0123456789abcdef";

fn options(dir: &PolicyDir) -> MoatOptions {
    let tokens = dir.write(
        "tokens.yaml",
        &format!(
            "tokens:\n  - name: ops\n    scope: admin\n    token: \"{ADMIN}\"\n  - name: prom\n    scope: read\n    token: \"{READER}\"\n"
        ),
    );
    let store = dir.path().join("bans.json");
    MoatOptions {
        client_auth: ClientAuth::None,
        admin_extra: Some(format!("  tokens_file: \"{}\"\n", tokens.display())),
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}bans:\n  store: \"{}\"\n", store.display())),
        ..Default::default()
    }
}

async fn call(moat: &Moat, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Response {
    request(moat.admin_port, method, path, token, body).await.expect("admin request")
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", r.body))
}

#[tokio::test]
async fn every_endpoint_needs_the_right_token_and_scope() {
    let dir = PolicyDir::new();
    let env = Env::start_with(options(&dir)).await;
    let m = &env.moat;
    // Open endpoints.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(call(m, "GET", path, None, None).await.status, 200, "{path}");
    }
    let reads = [
        "/metrics",
        "/api/v1/status",
        "/api/v1/config",
        "/api/v1/bans",
        "/api/v1/clients",
        "/api/v1/openapi.json",
    ];
    for path in reads {
        let none = call(m, "GET", path, None, None).await;
        assert_eq!(none.status, 401, "{path} without a token: {}", none.body);
        assert_eq!(json(&none)["code"], "UNAUTHORIZED", "{path}");
        assert!(none.headers.to_ascii_lowercase().contains("www-authenticate: bearer"), "{path}");
        let wrong = call(m, "GET", path, Some("not-a-token-0123456789"), None).await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        assert_eq!(call(m, "GET", path, Some(READER), None).await.status, 200, "{path} with read scope");
        assert_eq!(call(m, "GET", path, Some(ADMIN), None).await.status, 200, "{path} with admin scope");
    }
    // Changes need the admin scope.
    let ban = r#"{"kind":"clientid","who":"scoped"}"#;
    let changes: [(&str, &str, Option<&str>); 5] = [
        ("POST", "/api/v1/bans", Some(ban)),
        ("DELETE", "/api/v1/bans/clientid/scoped", None),
        ("DELETE", "/api/v1/bans", None),
        ("DELETE", "/api/v1/clients/nobody", None),
        ("POST", "/api/v1/reload", None),
    ];
    for (method, path, body) in changes {
        let r = call(m, method, path, Some(READER), body).await;
        assert_eq!(r.status, 403, "{method} {path} with read scope: {}", r.body);
        assert_eq!(json(&r)["code"], "FORBIDDEN");
        assert_eq!(call(m, method, path, None, body).await.status, 401, "{method} {path} without token");
    }
    // Unknown paths and bad input are JSON errors too.
    let r = call(m, "GET", "/api/v1/nope", Some(ADMIN), None).await;
    assert_eq!((r.status, json(&r)["code"].as_str()), (404, Some("NOT_FOUND")));
    let r = call(m, "POST", "/api/v1/bans", Some(ADMIN), Some(r#"{"kind":"planet","who":"x"}"#)).await;
    assert!(r.status == 400 || r.status == 422, "bad kind: {} {}", r.status, r.body);
    assert!(json(&r)["message"].is_string());
    let r = call(m, "GET", "/api/v1/bans?limit=0", Some(ADMIN), None).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // No token, password or key material in the effective config.
    let cfg = call(m, "GET", "/api/v1/config", Some(READER), None).await;
    assert!(!cfg.body.contains(ADMIN) && !cfg.body.contains(READER), "{}", cfg.body);
    assert!(!cfg.body.contains("PRIVATE KEY"), "{}", cfg.body);
    assert_eq!(json(&cfg)["admin"]["tokens"][0]["name"], "ops");
    assert!(!env.moat.logs().contains(ADMIN), "a token reached the logs");
}

#[tokio::test]
async fn a_runtime_ban_kicks_live_sessions_refuses_new_ones_and_survives_restart() {
    let dir = PolicyDir::new();
    let opts = options(&dir);
    let mut env = Env::start_with(opts.clone()).await;
    let id5 = unique("victim5");
    let id3 = unique("victim3");
    let mut v5 = env.raw_connected(Version::V5, &id5).await;
    let mut v3 = env.raw_connected(Version::V311, &id3).await;
    let mut bystander = env.raw_connected(Version::V5, &unique("bystander")).await;

    let body = r#"{"kind":"clientid_re","who":"victim[35]-.*","reason":"test ban","duration":"1h"}"#;
    let r = call(&env.moat, "POST", "/api/v1/bans", Some(ADMIN), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(json(&r)["source"], "runtime");

    // Both live sessions are closed at once, v5 with DISCONNECT 0x98; the bystander stays.
    let closed = v5.read_until_closed(Duration::from_secs(3)).await.expect("v5 closed");
    let reason = closed.disconnect_reason();
    assert_eq!(
        reason,
        Some(0x98),
        "v5 victim got {:?}",
        closed.packets.iter().map(|p| p.describe()).collect::<Vec<_>>()
    );
    let closed = v3.read_until_closed(Duration::from_secs(3)).await.expect("v3 closed");
    assert!(closed.packets.is_empty(), "3.1.1 gets no DISCONNECT: {:?}", closed.packets.len());
    bystander.send(&packets::pingreq()).await.expect("bystander ping");
    bystander.expect_packet(packets::PINGRESP, WAIT).await.expect("bystander still served");

    // New connections are refused before the broker sees them.
    let mut c = env.raw().await;
    c.send(&packets::connect(Version::V5, &id5)).await.expect("CONNECT");
    assert_eq!(c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK").connack_code(), Some(0x8A));

    // The ban is listed, then survives a restart of moat.
    let list = json(&call(&env.moat, "GET", "/api/v1/bans?kind=clientid_re", Some(READER), None).await);
    assert_eq!(list["meta"]["count"], 1, "{list}");
    assert_eq!(list["data"][0]["reason"], "test ban");
    env.moat.proc.signal(libc::SIGTERM);
    for _ in 0..100 {
        if env.moat.proc.try_exit().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(env.moat.proc.try_exit().is_some(), "moat did not stop");
    let restarted = Moat::start(&env.pki, &env_opts(&env, &opts)).await;
    env.moat = restarted;
    let mut c = env.raw().await;
    c.send(&packets::connect(Version::V311, &id3)).await.expect("CONNECT");
    assert_eq!(c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK").connack_code(), Some(0x05));

    // Removing it lets the client back in.
    let path = "/api/v1/bans/clientid_re/victim%5B35%5D-.%2A";
    let r = call(&env.moat, "DELETE", path, Some(ADMIN), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(call(&env.moat, "DELETE", path, Some(ADMIN), None).await.status, 404);
    let mut c = env.raw().await;
    c.send(&packets::connect(Version::V311, &id3)).await.expect("CONNECT");
    assert_eq!(c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK").connack_code(), Some(0));
}

/// The options the environment started moat with (the upstream points at its tap).
fn env_opts(env: &Env, base: &MoatOptions) -> MoatOptions {
    MoatOptions { upstream: env.tap.addr(), ..base.clone() }
}

#[tokio::test]
async fn clients_are_listed_filtered_and_kicked() {
    let dir = PolicyDir::new();
    let env = Env::start_with(options(&dir)).await;
    let a = unique("list-a");
    let b = unique("list-b");
    let mut ca = env.raw_connected(Version::V5, &a).await;
    let _cb = env.raw_connected(Version::V311, &b).await;

    let all = json(&call(&env.moat, "GET", "/api/v1/clients", Some(READER), None).await);
    let ids: Vec<&str> =
        all["data"].as_array().expect("data").iter().filter_map(|c| c["clientid"].as_str()).collect();
    assert!(ids.contains(&a.as_str()) && ids.contains(&b.as_str()), "{all}");
    let one =
        json(&call(&env.moat, "GET", &format!("/api/v1/clients?clientid={a}"), Some(READER), None).await);
    assert_eq!(one["meta"]["count"], 1, "{one}");
    assert_eq!(one["data"][0]["proto_ver"], 5);
    assert_eq!(one["data"][0]["ip_address"], "127.0.0.1");
    let paged = json(&call(&env.moat, "GET", "/api/v1/clients?limit=1&page=2", Some(READER), None).await);
    assert_eq!(paged["data"].as_array().map(Vec::len), Some(1), "{paged}");
    let none = json(&call(&env.moat, "GET", "/api/v1/clients?ip_address=10.9.9.9", Some(READER), None).await);
    assert_eq!(none["meta"]["count"], 0);

    let r = call(&env.moat, "DELETE", &format!("/api/v1/clients/{a}"), Some(ADMIN), None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let closed = ca.read_until_closed(Duration::from_secs(3)).await.expect("kicked");
    let reason = closed.disconnect_reason();
    assert_eq!(reason, Some(0x98));
    // Gone from the list once closed; kicking again is a 404.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let one =
        json(&call(&env.moat, "GET", &format!("/api/v1/clients?clientid={a}"), Some(READER), None).await);
    assert_eq!(one["meta"]["count"], 0, "{one}");
    assert_eq!(
        call(&env.moat, "DELETE", &format!("/api/v1/clients/{a}"), Some(ADMIN), None).await.status,
        404
    );
    let status = json(&call(&env.moat, "GET", "/api/v1/status", Some(READER), None).await);
    assert_eq!(status["sessions"], 1, "{status}");
}

/// Runs `moat ctl ARGS` against `moat`; returns (exit code, stdout, stderr).
async fn ctl(moat: &Moat, token_file: Option<&std::path::Path>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(moat_e2e::moat_bin());
    cmd.arg("ctl").arg("--url").arg(format!("http://127.0.0.1:{}", moat.admin_port));
    if let Some(t) = token_file {
        cmd.arg("--token-file").arg(t);
    }
    cmd.args(args).env_remove("MOAT_ADMIN_TOKEN");
    let out = moat_e2e::procs::run_with_timeout(cmd, Duration::from_secs(20)).await.expect("moat ctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn moat_ctl_drives_bans_clients_status_and_reload() {
    let dir = PolicyDir::new();
    let env = Env::start_with(options(&dir)).await;
    let admin = dir.write("admin.token", &format!("{ADMIN}\n"));
    let reader = dir.write("reader.token", READER);
    let id = unique("ctl");
    let mut c = env.raw_connected(Version::V5, &id).await;

    let (code, out, err) = ctl(&env.moat, Some(&admin), &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"policy_generation\""), "{out}");
    let (code, out, _) = ctl(&env.moat, Some(&reader), &["clients", "list", "--clientid", &id]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&id), "{out}");

    // A read token cannot change anything; no token at all is refused.
    let (code, _, err) = ctl(&env.moat, Some(&reader), &["bans", "add", "username", "mallory"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("403"), "{err}");
    let (code, _, err) = ctl(&env.moat, None, &["status"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");

    // A CIDR ban with a slash in it, added and removed through ctl.
    let (code, out, err) = ctl(
        &env.moat,
        Some(&admin),
        &["bans", "add", "cidr", "10.1.0.0/16", "--reason", "ctl", "--duration", "1h"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10.1.0.0/16"), "{out}");
    let (_, out, _) = ctl(&env.moat, Some(&reader), &["bans", "list", "--kind", "cidr"]).await;
    assert!(out.contains("\"count\": 1"), "{out}");
    let (code, _, err) = ctl(&env.moat, Some(&admin), &["bans", "rm", "cidr", "10.1.0.0/16"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ctl(&env.moat, Some(&admin), &["bans", "rm", "cidr", "10.1.0.0/16"]).await;
    assert_eq!(code, 1, "removing twice is a 404: {err}");

    let (code, _, err) = ctl(&env.moat, Some(&admin), &["reload"]).await;
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ctl(&env.moat, Some(&admin), &["clients", "kick", &id]).await;
    assert_eq!(code, 0, "{err}");
    let closed = c.read_until_closed(Duration::from_secs(3)).await.expect("kicked");
    assert!(closed
        .packets
        .iter()
        .any(|p| p.packet_type() == packets::DISCONNECT && p.disconnect_reason() == Some(0x98)));

    // Unreachable admin API: exit 2 with a message, no panic.
    let mut cmd = tokio::process::Command::new(moat_e2e::moat_bin());
    cmd.args(["ctl", "--url", "http://127.0.0.1:1", "status"]);
    let out = moat_e2e::procs::run_with_timeout(cmd, Duration::from_secs(20)).await.expect("ctl");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[tokio::test]
async fn the_admin_api_can_be_served_over_https_only() {
    let dir = PolicyDir::new();
    let env = Env::start_with(MoatOptions { admin_tls: true, ..options(&dir) }).await;
    let r =
        moat_e2e::http::request_tls(env.moat.admin_port, env.tls(), "GET", "/api/v1/status", Some(READER))
            .await
            .expect("HTTPS");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(json(&r)["policy_generation"].is_u64());
    let r = moat_e2e::http::request_tls(env.moat.admin_port, env.tls(), "GET", "/healthz", None)
        .await
        .expect("HTTPS");
    assert_eq!(r.status, 200);
    // Plain HTTP on the TLS port gets no answer.
    let plain = request(env.moat.admin_port, "GET", "/healthz", None, None).await;
    assert!(plain.map_or(true, |r| r.status != 200), "plain HTTP was served on the TLS admin port");
    // moat ctl over https, verified against the CA; without --cacert it refuses to run.
    let token = dir.write("reader.token", READER);
    let url = format!("https://localhost:{}", env.moat.admin_port);
    let run = |extra: Vec<std::ffi::OsString>| {
        let mut cmd = tokio::process::Command::new(moat_e2e::moat_bin());
        cmd.arg("ctl").arg("--url").arg(&url).arg("--token-file").arg(&token).args(extra).arg("status");
        moat_e2e::procs::run_with_timeout(cmd, Duration::from_secs(20))
    };
    let out = run(vec!["--cacert".into(), env.pki.ca_cert().into()]).await.expect("ctl");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("policy_generation"));
    let out = run(vec![]).await.expect("ctl");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--cacert"));
}
