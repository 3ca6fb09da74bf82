//! Many replicas, one policy state (issue 9): two or three moat processes in front of one
//! Mosquitto share runtime bans, flapping counters and their health through a real
//! `redis-server`. A ban made on one replica kicks and refuses the client on the others within a
//! second; flapping counts connects across replicas; Redis killed and restarted under traffic
//! leaves sessions flowing, keeps the last known bans, applies fail_mode, and recovers.

use std::time::{Duration, Instant};

use moat_e2e::fleet::{
    self, another, call, connect, connected, eventually, expect_kicked, metric, ADMIN, PROPAGATION, WAIT,
};
use moat_e2e::http::request;
use moat_e2e::packets::{self, Version};
use moat_e2e::policy::PolicyDir;
use moat_e2e::redis::Redis;
use moat_e2e::{unique, Env, MoatOptions, RawClient, ANONYMOUS_AUTH};

/// Options for one replica: TLS listener, admin token, standalone Redis backend under `prefix`.
fn replica(
    dir: &PolicyDir,
    redis: &Redis,
    prefix: &str,
    redis_extra: &str,
    policy_extra: &str,
) -> MoatOptions {
    fleet::replica(dir, &format!("    url: \"{}\"\n", redis.url()), prefix, redis_extra, policy_extra)
}

async fn alive(c: &mut RawClient, what: &str) {
    c.send(&packets::pingreq()).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    c.expect_packet(packets::PINGRESP, Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

fn upstream_saw(env: &Env, id: &str) -> bool {
    env.tap.connections().iter().any(|c| c.bytes.windows(id.len()).any(|w| w == id.as_bytes()))
}

#[tokio::test]
async fn a_ban_on_one_replica_kicks_and_refuses_on_the_others_within_a_second() {
    let redis = Redis::start().await;
    let dir = PolicyDir::new();
    let prefix = unique("ban");
    let opts = replica(&dir, &redis, &prefix, "    fail_mode: closed\n", "");
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts.clone()).await;
    let c = another(&env, opts).await;
    let (a_admin, b_port, c_port) = (env.moat.admin_port, b.port, c.port);

    let vb = unique("vic-b");
    let vc = unique("vic-c");
    let mut on_b = connected(&env, b_port, Version::V5, &vb).await;
    let mut on_c = connected(&env, c_port, Version::V5, &vc).await;
    let mut bystander = connected(&env, c_port, Version::V5, &unique("bystander")).await;

    let body = r#"{"kind":"clientid_re","who":"vic-.*","reason":"fleet test","duration":"1h"}"#;
    let r = call(a_admin, "POST", "/api/v1/bans", Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let posted = Instant::now();
    expect_kicked(&mut on_b, "session on replica B").await;
    expect_kicked(&mut on_c, "session on replica C").await;
    let took = posted.elapsed();
    assert!(took < PROPAGATION, "kicks on the other replicas took {took:?}");
    alive(&mut bystander, "bystander on C").await;

    // The other replicas list it and refuse new connections before the broker sees them.
    let listed = call(b.admin_port, "GET", "/api/v1/bans?kind=clientid_re", None).await;
    assert!(listed.body.contains("vic-.*") && listed.body.contains("\"runtime\""), "{}", listed.body);
    let late = unique("vic-late");
    for (port, version, code) in [(b_port, Version::V5, 0x8A), (c_port, Version::V311, 5)] {
        let (_c, got) = connect(&env, port, version, &late).await;
        assert_eq!(got, Some(code), "banned client on replica {port}");
    }
    assert!(!upstream_saw(&env, &late), "a banned client's CONNECT reached the broker");

    // Removed through a third replica: admitted again everywhere within a second.
    let r = call(c.admin_port, "DELETE", "/api/v1/bans/clientid_re/vic-.*", None).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let removed = Instant::now();
    let again = unique("vic-again");
    let ok = eventually(PROPAGATION, || async {
        let (_c, code) = connect(&env, b_port, Version::V5, &again).await;
        code == Some(0)
    })
    .await;
    assert!(ok, "replica B still refuses after the ban was removed on C ({:?})", removed.elapsed());
    assert!(!env.moat.logs().contains(ADMIN) && !b.logs().contains(ADMIN));
}

#[tokio::test]
async fn flapping_is_counted_across_replicas() {
    let redis = Redis::start().await;
    let dir = PolicyDir::new();
    let prefix = unique("flap");
    // Four connects within the window ban; each replica alone sees two, under its local threshold.
    let flapping = "flapping:\n  max_count: 4\n  window: 60s\n  ban_time: 60s\n";
    let opts = replica(&dir, &redis, &prefix, "", flapping);
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts.clone()).await;
    let c = another(&env, opts).await;
    let id = unique("flapper");
    for (n, port) in [env.moat.port, b.port, env.moat.port].into_iter().enumerate() {
        let c = connected(&env, port, Version::V5, &id).await;
        c.shutdown().await;
        let _ = n;
    }
    let (_x, code) = connect(&env, b.port, Version::V5, &id).await;
    assert_eq!(code, Some(0x8A), "the fourth connect (second on B) crosses the fleet threshold");
    // A replica that never saw the client refuses it too, and the ban is a visible fleet ban.
    let (_y, code) = connect(&env, c.port, Version::V311, &id).await;
    assert_eq!(code, Some(5), "replica C refuses the flapping client");
    let listed = call(c.admin_port, "GET", "/api/v1/bans?kind=clientid", None).await;
    assert!(listed.body.contains(&id) && listed.body.contains("flapping"), "{}", listed.body);
    // Another client is unaffected.
    connected(&env, c.port, Version::V5, &unique("steady")).await;
}

#[tokio::test]
async fn redis_outage_keeps_sessions_and_last_bans_applies_fail_mode_and_recovers() {
    let mut redis = Redis::start().await;
    let dir = PolicyDir::new();
    let prefix = unique("outage");
    let env = Env::start_with(replica(&dir, &redis, &prefix, "    fail_mode: open\n", "")).await;
    let closed = another(&env, replica(&dir, &redis, &prefix, "    fail_mode: closed\n", "")).await;
    let (open_port, open_admin) = (env.moat.port, env.moat.admin_port);

    let banned = unique("banned-before");
    let r =
        call(open_admin, "POST", "/api/v1/bans", Some(&format!(r#"{{"kind":"clientid","who":"{banned}"}}"#)))
            .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut worker = connected(&env, open_port, Version::V5, &unique("worker")).await;
    let mut worker_b = connected(&env, closed.port, Version::V311, &unique("worker-b")).await;
    assert!(
        eventually(WAIT, || async {
            call(closed.admin_port, "GET", "/api/v1/bans", None).await.body.contains(&banned)
        })
        .await,
        "ban did not reach the second replica"
    );

    redis.stop();
    // Both notice: metric and readiness (open: still ready but degraded; closed: not ready).
    assert!(
        eventually(WAIT, || async { metric(open_admin, "moat_state_backend_up").await == Some(0.0) }).await,
        "moat_state_backend_up stayed 1 with Redis down"
    );
    let ready = request(open_admin, "GET", "/readyz", None, None).await.expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert!(ready.body.contains("degraded"), "{}", ready.body);
    assert!(
        eventually(WAIT, || async {
            let r = request(closed.admin_port, "GET", "/readyz", None, None).await.expect("readyz");
            r.status == 503 && r.body.contains("degraded")
        })
        .await,
        "fail-closed replica stayed ready"
    );

    // Existing sessions keep flowing through both replicas.
    for (n, (c, v)) in [(&mut worker, Version::V5), (&mut worker_b, Version::V311)].into_iter().enumerate() {
        let topic = format!("{prefix}/during/{n}");
        c.send(&packets::publish(v, topic.as_bytes(), 0, false, 0, b"still here")).await.expect("publish");
        env.sub
            .wait_for(&topic, b"still here", WAIT)
            .await
            .expect("broker got the publish during the outage");
    }
    // The last known bans still apply; new clients: admitted (open) or refused (closed, 0x88 / 3).
    let (_x, code) = connect(&env, open_port, Version::V5, &banned).await;
    assert_eq!(code, Some(0x8A), "last known ban not enforced during the outage");
    let fresh = unique("fresh");
    connected(&env, open_port, Version::V5, &fresh).await;
    let refused = unique("refused");
    let (_y, code) = connect(&env, closed.port, Version::V5, &refused).await;
    assert_eq!(code, Some(0x88), "fail_mode closed admitted a client during the outage");
    let (_z, code) = connect(&env, closed.port, Version::V311, &refused).await;
    assert_eq!(code, Some(3));
    assert!(!upstream_saw(&env, &refused) && !upstream_saw(&env, &banned));
    // A ban cannot be made while Redis is down: the API says so and nothing changes.
    let r = call(open_admin, "POST", "/api/v1/bans", Some(r#"{"kind":"clientid","who":"during"}"#)).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(!r.body.contains("redis://"), "{}", r.body);
    let stats = metric(open_admin, "moat_state_backend_errors_total").await;
    assert!(stats.is_some_and(|n| n > 0.0), "no backend errors counted");

    redis.restart().await;
    assert!(
        eventually(WAIT, || async {
            metric(open_admin, "moat_state_backend_up").await == Some(1.0)
                && request(closed.admin_port, "GET", "/readyz", None, None)
                    .await
                    .is_ok_and(|r| r.status == 200)
        })
        .await,
        "replicas did not recover after Redis came back:\n{}",
        closed.logs()
    );
    // A ban made after recovery on the fail-closed replica kicks the open one's session in 1 s.
    alive(&mut worker, "worker after recovery").await;
    let r =
        call(closed.admin_port, "POST", "/api/v1/bans", Some(r#"{"kind":"clientid_re","who":"worker-.*"}"#))
            .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let took = expect_kicked(&mut worker, "worker after recovery").await;
    assert!(took < PROPAGATION, "ban after recovery took {took:?}");
    let (_w, code) = connect(&env, closed.port, Version::V5, &unique("fresh2")).await;
    assert_eq!(code, Some(0), "fail-closed replica still refuses after recovery");
    assert!(env.moat.proc.pid() > 0 && closed.proc.pid() > 0);
}

/// Connection acceptance: 300 sequential TLS connects (CONNECT → CONNACK → DISCONNECT) with the
/// Redis backend (fleet flapping counters and a per-client-id cap: four Redis round trips per
/// connection) versus embedded. Prints the ratio; asserts only that Redis does not collapse it.
#[tokio::test]
async fn acceptance_rate_redis_vs_embedded() {
    const N: usize = 300;
    let redis = Redis::start().await;
    let dir = PolicyDir::new();
    let flapping = "flapping:\n  max_count: 100000\n  window: 60s\n  ban_time: 60s\n  ip_max_count: 100000\n";
    let shared = replica(&dir, &redis, &unique("bench"), "    max_connections_per_client_id: 2\n", flapping);
    let env = Env::start_with(shared.clone()).await;
    let embedded = another(
        &env,
        MoatOptions { policy_yaml: Some(format!("{ANONYMOUS_AUTH}{flapping}")), ..shared.clone() },
    )
    .await;
    // Interleaved, one connect each in turn, so load from other processes hits both alike.
    let targets = [("embedded", embedded.port), ("redis", env.moat.port)];
    let mut spent = [Duration::ZERO; 2];
    for i in 0..N {
        for (k, (name, port)) in targets.iter().enumerate() {
            let start = Instant::now();
            let mut c = connected(&env, *port, Version::V5, &format!("{name}-{i}")).await;
            c.send(&packets::disconnect(Version::V5)).await.expect("DISCONNECT");
            c.shutdown().await;
            spent[k] += start.elapsed();
        }
    }
    let rates: Vec<f64> = spent.iter().map(|d| N as f64 / d.as_secs_f64()).collect();
    for ((name, _), rate) in targets.iter().zip(&rates) {
        println!("{name}: {N} sequential TLS connects at {rate:.0}/s");
    }
    let ratio = rates[1] / rates[0];
    println!("acceptance rate redis/embedded = {ratio:.2}");
    assert!(ratio > 0.3, "the Redis backend cut connection acceptance to {ratio:.2} of embedded");
}

#[tokio::test]
async fn a_fleet_wide_cap_per_client_id_holds_across_replicas_and_frees_on_disconnect() {
    // This Redis wants an ACL user and password, read by moat from files and never logged.
    const SECRET: &str = "redis-pass-7f3a9c1e5b";
    let password = format!(">{SECRET}");
    let redis = Redis::start_with(&["--user", "fleet", "on", &password, "~*", "&*", "+@all"]).await;
    let dir = PolicyDir::new();
    let user = dir.write("redis-user", "fleet\n");
    let pass = dir.write("redis-pass", &format!("{SECRET}\n"));
    let auth = format!(
        "    username_file: \"{}\"\n    password_file: \"{}\"\n    max_connections_per_client_id: 1\n",
        user.display(),
        pass.display()
    );
    let opts = replica(&dir, &redis, &unique("cap"), &auth, "");
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts).await;
    let id = unique("single");
    let mut first = connected(&env, env.moat.port, Version::V5, &id).await;
    // The same client id on another replica: refused (quota exceeded) before the broker sees it.
    let before = env.tap.connections().len();
    let (_x, code) = connect(&env, b.port, Version::V5, &id).await;
    assert_eq!(code, Some(0x97), "second session of a capped client id admitted");
    let (_y, code) = connect(&env, b.port, Version::V311, &id).await;
    assert_eq!(code, Some(3), "3.1.1 has no quota code: server unavailable");
    assert_eq!(env.tap.connections().len(), before, "a refused session reached the broker");
    alive(&mut first, "first session").await;
    // Once the first session ends its slot is free again on every replica.
    first.send(&packets::disconnect(Version::V5)).await.expect("DISCONNECT");
    first.shutdown().await;
    let ok = eventually(WAIT, || async { connect(&env, b.port, Version::V5, &id).await.1 == Some(0) }).await;
    assert!(ok, "the slot was not given back after the session ended");
    let status = call(b.admin_port, "GET", "/api/v1/status", None).await;
    assert!(status.body.contains(r#""up":true"#), "{}", status.body);
    let config = call(b.admin_port, "GET", "/api/v1/config", None).await;
    assert!(config.body.contains(r#""password_set":true"#), "{}", config.body);
    for text in [env.moat.logs(), b.logs(), config.body, status.body] {
        assert!(!text.contains(SECRET), "the Redis password leaked");
    }
}

#[tokio::test]
async fn rediss_with_a_private_ca_shares_bans_over_tls() {
    let redis_pki = moat_e2e::Pki::new();
    let (cert, key, ca) = (
        redis_pki.server.cert.display().to_string(),
        redis_pki.server.key.display().to_string(),
        redis_pki.ca_cert().display().to_string(),
    );
    let redis = Redis::start_with(&[
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ])
    .await;
    let dir = PolicyDir::new();
    let mut opts = replica(&dir, &redis, &unique("tls"), &format!("    ca_file: \"{ca}\"\n"), "");
    opts.policy_yaml = opts.policy_yaml.map(|y| y.replace("redis://", "rediss://"));
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts).await;
    let id = unique("tls-victim");
    let mut on_b = connected(&env, b.port, Version::V5, &id).await;
    let r = call(
        env.moat.admin_port,
        "POST",
        "/api/v1/bans",
        Some(&format!(r#"{{"kind":"clientid","who":"{id}"}}"#)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let took = expect_kicked(&mut on_b, "session on replica B over rediss").await;
    assert!(took < PROPAGATION, "took {took:?}");
}

/// Password guessing spread over replicas and addresses: failed authentications are counted per
/// username and per address across the fleet, so neither rotating replicas nor rotating source
/// addresses escapes `flapping.auth_failure_max_count`.
#[tokio::test]
async fn authentication_failures_are_counted_across_replicas() {
    use moat_e2e::policy::{connect_with, password_yaml, BCRYPT_HASH, BCRYPT_PASSWORD};
    let redis = Redis::start().await;
    let dir = PolicyDir::new();
    let prefix = unique("authfail");
    let users = dir.write("users.yaml", &password_yaml(&[("alice", BCRYPT_HASH), ("bob", BCRYPT_HASH)]));
    let flapping =
        "flapping:\n  max_count: 100\n  window: 60s\n  ban_time: 60s\n  auth_failure_max_count: 3\n";
    let mut opts = replica(&dir, &redis, &prefix, "", flapping);
    let chain = format!(
        "authentication:\n  - name: users\n    type: password_file\n    path: \"{}\"\n",
        users.display()
    );
    opts.policy_yaml = opts.policy_yaml.map(|y| y.replace(ANONYMOUS_AUTH, &chain));
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts).await;
    let attempt = |port: u16, source: [u8; 4], user: &'static str, password: &'static [u8]| {
        let tls = env.tls();
        async move {
            let mut c = RawClient::connect_from(port, tls, source.into()).await.ok()?;
            c.send(&connect_with(Version::V5, &unique("guess"), Some(user), Some(password))).await.ok()?;
            c.expect_packet(packets::CONNACK, Duration::from_secs(20)).await.ok()?.connack_code()
        }
    };
    // Three wrong passwords for alice from three addresses on two replicas: no replica and no
    // address alone reaches 3, the fleet does.
    for (port, source) in
        [(env.moat.port, [127, 0, 0, 11]), (b.port, [127, 0, 0, 12]), (env.moat.port, [127, 0, 0, 13])]
    {
        assert_eq!(attempt(port, source, "alice", b"wrong").await, Some(0x86));
    }
    assert!(
        eventually(WAIT, || async {
            attempt(b.port, [127, 0, 0, 14], "alice", BCRYPT_PASSWORD.as_bytes()).await == Some(0x8A)
        })
        .await,
        "alice is not banned on replica B after three fleet-wide failures"
    );
    assert_eq!(attempt(env.moat.port, [127, 0, 0, 14], "bob", BCRYPT_PASSWORD.as_bytes()).await, Some(0x00));
    // One address guessing different users over both replicas gets the address banned everywhere.
    for (port, user) in [(env.moat.port, "bob"), (b.port, "carol"), (env.moat.port, "dave")] {
        assert_eq!(attempt(port, [127, 0, 0, 20], user, b"wrong").await, Some(0x86));
    }
    assert!(
        eventually(WAIT, || async {
            RawClient::connect_from(b.port, env.tls(), [127, 0, 0, 20].into()).await.is_err()
        })
        .await,
        "the guessing address still completes TLS on replica B"
    );
    let listed = call(b.admin_port, "GET", "/api/v1/bans", None).await;
    assert!(listed.body.contains("authentication failures"), "{}", listed.body);
}
