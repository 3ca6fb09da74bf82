//! MQTT 5 enhanced authentication with SCRAM-SHA-256/512 (trap 13): the exchange runs between the
//! client and moat over AUTH packets; the broker never sees an Authentication Method, data or an
//! AUTH packet (the tap records what moat sent it, and a default Mosquitto would refuse a CONNECT
//! with a method it does not know). The client side is `moat_e2e::scram`, computed independently
//! of moat's code.

use std::time::Duration;

use moat_e2e::packets::{self, RawPacket, Version};
use moat_e2e::policy::{self, PolicyDir, ARGON2ID_HASH, ARGON2ID_PASSWORD};
use moat_e2e::scram::{self, Hash, ScramClient};
use moat_e2e::{moat_command, unique, Env, MoatOptions, RawClient};

const WAIT: Duration = Duration::from_secs(10);
/// Argon2id (the password-file path) in a debug build is slow.
const AUTH_WAIT: Duration = Duration::from_secs(20);
const ITERATIONS: u32 = 4096;

/// alice has an argon2id hash and SCRAM credentials for both mechanisms, all for the same
/// password; carol has only the argon2id hash.
fn users_yaml() -> String {
    let mut y = format!("users:\n  alice:\n    password_hash: \"{ARGON2ID_HASH}\"\n");
    for hash in [Hash::Sha256, Hash::Sha512] {
        let salt: Vec<u8> =
            (0..16u8).map(|i| i.wrapping_mul(7).wrapping_add(hash.key().len() as u8)).collect();
        y.push_str(&format!(
            "    {}: \"{}\"\n",
            hash.key(),
            hash.stored(ARGON2ID_PASSWORD, &salt, ITERATIONS)
        ));
    }
    y.push_str(&format!("  carol:\n    password_hash: \"{ARGON2ID_HASH}\"\n"));
    y
}

fn auth_yaml(users: &std::path::Path) -> String {
    format!("authentication:\n  - name: users\n    type: password_file\n    path: \"{}\"\n", users.display())
}

async fn start(dir: &PolicyDir, connect_timeout: Option<&str>) -> Env {
    let users = dir.write("users.yaml", &users_yaml());
    Env::start_with(MoatOptions {
        policy_yaml: Some(auth_yaml(&users)),
        connect_timeout: connect_timeout.map(str::to_string),
        ..Default::default()
    })
    .await
}

/// Sends CONNECT with client-first, expects AUTH 0x18 with server-first; returns it.
async fn begin(env: &Env, c: &mut RawClient, client: &ScramClient, id: &str) -> Vec<u8> {
    c.send(&scram::connect(id, client.hash.method(), &client.client_first(), None)).await.expect("CONNECT");
    let p = c
        .expect_packet(packets::AUTH, WAIT)
        .await
        .unwrap_or_else(|e| panic!("no AUTH from moat: {e}\n{}", env.moat.logs()));
    let (reason, method, data) = scram::parse_auth(&p).expect("AUTH with method and data");
    assert_eq!(reason, 0x18, "server-first must come as AUTH 0x18");
    assert_eq!(method, client.hash.method());
    data
}

/// A complete SCRAM login; returns the connection after a verified CONNACK 0x00.
async fn login(env: &Env, hash: Hash, user: &str, password: &str) -> RawClient {
    let mut c = env.raw().await;
    let mut client = ScramClient::new(hash, user, password);
    let server_first = begin(env, &mut c, &client, &unique("scram")).await;
    let last = client.client_final(&server_first, None).expect("client-final");
    c.send(&scram::auth(0x18, hash.method(), &last)).await.expect("AUTH");
    let ack = c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK");
    assert_eq!(ack.connack_code(), Some(0), "{}\n{}", ack.describe(), env.moat.logs());
    let (method, data) = scram::connack_auth(&ack).expect("CONNACK carries method and server-final");
    assert_eq!(method, hash.method());
    client.verify_server_final(&data).expect("server-final verifies");
    c
}

/// Nothing enhanced-auth related reached the broker: no AUTH, no method/data in CONNECT.
fn assert_broker_saw_no_auth(env: &Env, ctx: &str) {
    for p in env.tap.all_packets() {
        assert_ne!(p.packet_type(), packets::AUTH, "{ctx}: AUTH reached the broker");
        if let Some(connect) = policy::parse_connect(&p) {
            assert!(
                !connect.properties.iter().any(|(id, _)| *id == 0x15 || *id == 0x16),
                "{ctx}: the broker got authentication properties: {:?}",
                connect.properties
            );
        }
    }
}

async fn publish_qos1(c: &mut RawClient, topic: &str, pid: u16, data: &[u8]) {
    c.send(&packets::publish(Version::V5, topic.as_bytes(), 1, false, pid, data)).await.expect("PUBLISH");
    let ack = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    assert_eq!(policy::ack(&ack), Some((pid, 0)), "PUBACK");
}

/// Expects CONNACK `code` (or, for `None`, any close without CONNACK 0x00), then the close.
async fn expect_refused(env: &Env, c: &mut RawClient, code: u8, ctx: &str) {
    let ack = c
        .expect_packet(packets::CONNACK, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: no CONNACK: {e}\n{}", env.moat.logs()));
    assert_eq!(ack.connack_code(), Some(code), "{ctx}: {}\n{}", ack.describe(), env.moat.logs());
    let closed = c.read_until_closed(WAIT).await.unwrap_or_else(|e| panic!("{ctx}: still open: {e}"));
    assert!(closed.packets.is_empty(), "{ctx}: packets after the refusal");
}

#[tokio::test]
async fn scram_sha256_and_sha512_log_in_and_publish() {
    let dir = PolicyDir::new();
    let env = start(&dir, None).await;
    for (i, hash) in [Hash::Sha256, Hash::Sha512].into_iter().enumerate() {
        let mut c = login(&env, hash, "alice", ARGON2ID_PASSWORD).await;
        let topic = unique("scram/ok");
        publish_qos1(&mut c, &topic, 1 + i as u16, b"hello").await;
        env.sub.wait_for(&topic, b"hello", WAIT).await.expect("broker got the PUBLISH");
    }
    assert_broker_saw_no_auth(&env, "login");
    // The broker was shown the SCRAM identity as the CONNECT username (broker_identity default).
    let connects: Vec<_> = env.tap.all_packets().iter().filter_map(policy::parse_connect).collect();
    assert_eq!(connects.len(), 2);
    assert!(connects.iter().all(|c| c.username.as_deref() == Some("alice")), "{connects:?}");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_refused_alike() {
    let dir = PolicyDir::new();
    let env = start(&dir, None).await;
    let mut salts = Vec::new();
    for (user, password) in
        [("alice", "wrong"), ("mallory", ARGON2ID_PASSWORD), ("mallory", "x"), ("carol", ARGON2ID_PASSWORD)]
    {
        let ctx = format!("{user}/{password}");
        let mut c = env.raw().await;
        let mut client = ScramClient::new(Hash::Sha256, user, password);
        let server_first = begin(&env, &mut c, &client, &unique("scram-bad")).await;
        let text = String::from_utf8(server_first.clone()).expect("utf8");
        assert!(text.ends_with(&format!(",i={ITERATIONS}")), "{ctx}: {text}");
        salts.push(text.split(",s=").nth(1).map(str::to_string));
        let last = client.client_final(&server_first, None).expect("client-final");
        // The PUBLISH is pipelined behind the client-final: it must never reach the broker.
        let mut bytes = scram::auth(0x18, Hash::Sha256.method(), &last);
        bytes.extend(packets::publish(Version::V5, unique("scram/leak").as_bytes(), 0, false, 0, b"leak"));
        c.send(&bytes).await.expect("send");
        expect_refused(&env, &mut c, 0x87, &ctx).await;
    }
    // An unknown user's salt is stable, like a real user's.
    assert_eq!(salts[1], salts[2]);
    assert_ne!(salts[0], salts[1]);
    env.assert_no_upstream_bytes("failed SCRAM logins").await;
    let metrics = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.expect("metrics").body;
    let failures = policy::metric_with_labels(
        &metrics,
        "moat_authentications_total",
        &[("authenticator", "scram"), ("result", "bad_credentials")],
    );
    assert_eq!(failures, Some(4.0), "{metrics}");
}

#[tokio::test]
async fn bad_exchanges_are_refused_before_the_broker() {
    let dir = PolicyDir::new();
    let env = start(&dir, Some("2s")).await;

    // Unsupported method: 0x8C at once, no AUTH.
    let mut c = env.raw().await;
    c.send(&scram::connect("m", "SCRAM-SHA-1", b"n,,n=alice,r=abc", None)).await.expect("send");
    expect_refused(&env, &mut c, 0x8C, "unsupported method").await;

    // Channel binding requested: refused without an AUTH.
    let mut c = env.raw().await;
    c.send(&scram::connect("m", "SCRAM-SHA-256", b"y,,n=alice,r=abc", None)).await.expect("send");
    expect_refused(&env, &mut c, 0x87, "channel binding").await;

    // Malformed client-first.
    let mut c = env.raw().await;
    c.send(&scram::connect("m", "SCRAM-SHA-256", b"n,,r=abc", None)).await.expect("send");
    expect_refused(&env, &mut c, 0x87, "malformed client-first").await;

    type Variant = (&'static str, fn(&mut ScramClient, &[u8]) -> Vec<u8>, u8);
    let variants: [Variant; 5] = [
        (
            "wrong nonce",
            |c, sf| scram::auth(0x18, c.hash.method(), &c.client_final(sf, Some("abc")).unwrap()),
            0x87,
        ),
        ("malformed client-final", |c, _| scram::auth(0x18, c.hash.method(), b"c=biws,r=x"), 0x87),
        (
            "AUTH 0x19 instead of 0x18",
            |c, sf| scram::auth(0x19, c.hash.method(), &c.client_final(sf, None).unwrap()),
            0x82,
        ),
        (
            "other method",
            |c, sf| scram::auth(0x18, "SCRAM-SHA-512", &c.client_final(sf, None).unwrap()),
            0x8C,
        ),
        (
            "PUBLISH instead of AUTH",
            |_, _| packets::publish(Version::V5, b"scram/x", 0, false, 0, b"x"),
            0x82,
        ),
    ];
    for (ctx, build, code) in variants {
        let mut c = env.raw().await;
        let mut client = ScramClient::new(Hash::Sha256, "alice", ARGON2ID_PASSWORD);
        let server_first = begin(&env, &mut c, &client, &unique("scram-bad")).await;
        c.send(&build(&mut client, &server_first)).await.expect("send");
        expect_refused(&env, &mut c, code, ctx).await;
    }

    // No client-final within timeouts.connect.
    let mut c = env.raw().await;
    let client = ScramClient::new(Hash::Sha256, "alice", ARGON2ID_PASSWORD);
    begin(&env, &mut c, &client, "slow").await;
    expect_refused(&env, &mut c, 0x87, "timeout").await;

    env.assert_no_upstream_bytes("bad exchanges").await;
}

#[tokio::test]
async fn reauthentication_succeeds_then_fails_with_disconnect() {
    let dir = PolicyDir::new();
    let env = start(&dir, None).await;
    let mut c = login(&env, Hash::Sha512, "alice", ARGON2ID_PASSWORD).await;

    // Success: AUTH 0x19 → AUTH 0x18 → AUTH 0x18 → AUTH 0x00 with a verified server-final.
    let mut client = ScramClient::new(Hash::Sha512, "alice", ARGON2ID_PASSWORD);
    c.send(&scram::auth(0x19, Hash::Sha512.method(), &client.client_first())).await.expect("AUTH 0x19");
    let p = c.expect_packet(packets::AUTH, WAIT).await.expect("server-first");
    let (reason, _, server_first) = scram::parse_auth(&p).expect("AUTH");
    assert_eq!(reason, 0x18);
    // Other packets keep flowing during the exchange.
    let topic = unique("scram/during");
    publish_qos1(&mut c, &topic, 7, b"during").await;
    let last = client.client_final(&server_first, None).expect("client-final");
    c.send(&scram::auth(0x18, Hash::Sha512.method(), &last)).await.expect("AUTH 0x18");
    let p = c.expect_packet(packets::AUTH, WAIT).await.expect("AUTH success");
    let (reason, method, server_final) = scram::parse_auth(&p).expect("AUTH");
    assert_eq!((reason, method.as_str()), (0x00, Hash::Sha512.method()));
    client.verify_server_final(&server_final).expect("re-auth server-final verifies");
    let after = unique("scram/after");
    publish_qos1(&mut c, &after, 8, b"after").await;
    env.sub.wait_for(&topic, b"during", WAIT).await.expect("during");
    env.sub.wait_for(&after, b"after", WAIT).await.expect("after");

    // Failure: wrong password → DISCONNECT 0x87 and close.
    let mut client = ScramClient::new(Hash::Sha512, "alice", "wrong");
    c.send(&scram::auth(0x19, Hash::Sha512.method(), &client.client_first())).await.expect("AUTH 0x19");
    let p = c.expect_packet(packets::AUTH, WAIT).await.expect("server-first");
    let (_, _, server_first) = scram::parse_auth(&p).expect("AUTH");
    let last = client.client_final(&server_first, None).expect("client-final");
    c.send(&scram::auth(0x18, Hash::Sha512.method(), &last)).await.expect("AUTH 0x18");
    let closed = c.read_until_closed(WAIT).await.expect("closed");
    assert_eq!(closed.disconnect_reason(), Some(0x87), "{:?}", closed.packets);

    // A different method on re-authentication: a protocol error (MQTT 5 4.12.1; 0x8C is not a
    // DISCONNECT reason code).
    let mut c = login(&env, Hash::Sha256, "alice", ARGON2ID_PASSWORD).await;
    let client = ScramClient::new(Hash::Sha512, "alice", ARGON2ID_PASSWORD);
    c.send(&scram::auth(0x19, Hash::Sha512.method(), &client.client_first())).await.expect("AUTH 0x19");
    let closed = c.read_until_closed(WAIT).await.expect("closed");
    assert_eq!(closed.disconnect_reason(), Some(0x82), "{:?}", closed.packets);

    let _ = env.tap.wait_all_closed(Duration::from_secs(3)).await;
    assert_broker_saw_no_auth(&env, "re-authentication");
}

#[tokio::test]
async fn auth_from_a_password_session_is_a_protocol_error() {
    let dir = PolicyDir::new();
    let env = start(&dir, None).await;
    let mut c = env.raw().await;
    let connect =
        policy::connect_with(Version::V5, &unique("pw"), Some("carol"), Some(ARGON2ID_PASSWORD.as_bytes()));
    c.send(&connect).await.expect("CONNECT");
    let ack = c.expect_packet(packets::CONNACK, AUTH_WAIT).await.expect("CONNACK");
    assert_eq!(ack.connack_code(), Some(0), "{}", env.moat.logs());
    let client = ScramClient::new(Hash::Sha256, "carol", ARGON2ID_PASSWORD);
    c.send(&scram::auth(0x19, Hash::Sha256.method(), &client.client_first())).await.expect("AUTH");
    let closed = c.read_until_closed(WAIT).await.expect("closed");
    assert_eq!(closed.disconnect_reason(), Some(0x82), "{:?}", closed.packets);
    let _ = env.tap.wait_all_closed(Duration::from_secs(3)).await;
    assert_broker_saw_no_auth(&env, "AUTH from a password session");
}

#[tokio::test]
async fn moat_passwd_scram_file_works() {
    let dir = PolicyDir::new();
    let users = dir.path().join("users.yaml");
    let mut cmd = moat_command();
    cmd.arg("passwd").arg("--scram").arg(&users).arg("dora");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("spawn moat passwd");
    {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(b"dora-secret\n").expect("write password");
    }
    let out = child.wait_with_output().expect("moat passwd");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&users).expect("read");
    assert!(!text.contains("dora-secret"));
    let env =
        Env::start_with(MoatOptions { policy_yaml: Some(auth_yaml(&users)), ..Default::default() }).await;
    for hash in [Hash::Sha256, Hash::Sha512] {
        let mut c = login(&env, hash, "dora", "dora-secret").await;
        let topic = unique("scram/passwd");
        publish_qos1(&mut c, &topic, 1, b"p").await;
        env.sub.wait_for(&topic, b"p", WAIT).await.expect("delivered");
    }
}

/// Connects per second: SCRAM-SHA-256 (4096 iterations, client PBKDF2 included) vs a plain
/// password-file CONNECT (argon2id, moat verifies). `cargo nextest run -p moat-e2e --test
/// authn_scram --run-ignored only`.
#[tokio::test]
#[ignore = "measurement"]
async fn measure_connects_per_second() {
    let dir = PolicyDir::new();
    let env = start(&dir, None).await;
    const N: u32 = 30;
    let started = std::time::Instant::now();
    for _ in 0..N {
        let c = login(&env, Hash::Sha256, "alice", ARGON2ID_PASSWORD).await;
        c.shutdown().await;
    }
    let scram = f64::from(N) / started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    for _ in 0..N {
        let mut c = env.raw().await;
        let connect = policy::connect_with(
            Version::V5,
            &unique("pw"),
            Some("alice"),
            Some(ARGON2ID_PASSWORD.as_bytes()),
        );
        c.send(&connect).await.expect("CONNECT");
        let ack: RawPacket = c.expect_packet(packets::CONNACK, AUTH_WAIT).await.expect("CONNACK");
        assert_eq!(ack.connack_code(), Some(0));
        c.shutdown().await;
    }
    let plain = f64::from(N) / started.elapsed().as_secs_f64();
    // The client's own PBKDF2 (4096 iterations, this debug-built test crate) per login.
    let started = std::time::Instant::now();
    for _ in 0..N {
        std::hint::black_box(Hash::Sha256.stored(ARGON2ID_PASSWORD, &[0u8; 16], ITERATIONS));
    }
    let client_ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(N);
    eprintln!(
        "MEASURE connects/s: scram-sha-256(4096) {scram:.1}, password_file(argon2id m=256,t=2) {plain:.1}; \
         client-side PBKDF2 alone {client_ms:.1} ms per login"
    );
}
