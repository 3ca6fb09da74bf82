//! Authentication through moat: password files (moat YAML and mosquitto_passwd), x509 identity,
//! the authenticator chain, the identity shown to the broker (trap 5), pipelining before the
//! decision (trap 2) and assigned client ids (trap 4). Every test checks what the client got and
//! what the broker received (direct subscriber on `#` and the recording tap).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use moat_e2e::packets::{self, RawPacket, Version};
use moat_e2e::policy::{
    self, connect_with, mosquitto_hash, mosquitto_passwd, parse_connect, password_yaml, BrokerRecorder,
    ConnectInfo, PolicyDir, ARGON2ID_HASH, ARGON2ID_PASSWORD, BCRYPT_HASH, BCRYPT_PASSWORD,
};
use moat_e2e::procs::run_with_timeout;
use moat_e2e::{
    tls, unique, v311, v5, ClientAuth, Env, Moat, MoatOptions, Mosquitto, Pki, QoS, RawClient, Tap,
};

/// Bound for a CONNACK: password hashes are verified by a debug build of moat.
const AUTH_WAIT: Duration = Duration::from_secs(20);
const WAIT: Duration = Duration::from_secs(10);

const V311: Version = Version::V311;
const V5: Version = Version::V5;

fn users_file(dir: &PolicyDir) -> std::path::PathBuf {
    dir.write("users.yaml", &password_yaml(&[("alice", ARGON2ID_HASH), ("bob", BCRYPT_HASH)]))
}

fn password_auth(users: &Path) -> String {
    format!("authentication:\n  - name: users\n    type: password_file\n    path: \"{}\"\n", users.display())
}

async fn start(policy_yaml: String, client_auth: ClientAuth) -> Env {
    Env::start_with(MoatOptions { client_auth, policy_yaml: Some(policy_yaml), ..Default::default() }).await
}

fn with_cert(env: &Env, cn: &str) -> Arc<rustls::ClientConfig> {
    let cert = env.pki.client_cert(cn);
    tls::client_config(&[env.pki.ca_cert()], Some(&cert))
}

/// Opens a TLS connection, writes `bytes` in one write, returns the CONNACK and the socket.
async fn first_connack(
    env: &Env,
    tls: Arc<rustls::ClientConfig>,
    bytes: &[u8],
    ctx: &str,
) -> (RawPacket, RawClient) {
    let mut c = RawClient::connect(env.moat.port, tls)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: TLS connect to moat: {e}\n{}", env.moat.logs()));
    c.send(bytes).await.unwrap_or_else(|e| panic!("{ctx}: send: {e}"));
    let ack = c
        .expect_packet(packets::CONNACK, AUTH_WAIT)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: no CONNACK: {e}\n{}", env.moat.logs()));
    (ack, c)
}

/// Expects CONNACK with `code`, then the connection closed with nothing more received.
async fn expect_refused(env: &Env, tls: Arc<rustls::ClientConfig>, bytes: &[u8], code: u8, ctx: &str) {
    let (ack, mut c) = first_connack(env, tls, bytes, ctx).await;
    assert_eq!(
        ack.connack_code(),
        Some(code),
        "{ctx}: expected CONNACK 0x{code:02x}, got {}\n{}",
        ack.describe(),
        env.moat.logs()
    );
    let closed = c
        .read_until_closed(WAIT)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: moat kept a refused connection open: {e}"));
    assert!(
        closed.packets.is_empty(),
        "{ctx}: packets after the refusal: {:?}",
        closed.packets.iter().map(RawPacket::describe).collect::<Vec<_>>()
    );
}

async fn expect_accepted(env: &Env, tls: Arc<rustls::ClientConfig>, bytes: &[u8], ctx: &str) -> RawClient {
    let (ack, c) = first_connack(env, tls, bytes, ctx).await;
    assert_eq!(
        ack.connack_code(),
        Some(0),
        "{ctx}: CONNACK refused: {}\n{}",
        ack.describe(),
        env.moat.logs()
    );
    c
}

/// The CONNECTs moat forwarded (recorded by the tap), in connection order.
fn forwarded_connects(env: &Env) -> Vec<ConnectInfo> {
    env.tap.connections().iter().filter_map(|c| c.packets().first().and_then(parse_connect)).collect()
}

/// Publishes QoS 1 on a raw connection and returns the PUBACK reason code.
async fn raw_publish_qos1(c: &mut RawClient, version: Version, topic: &str, pid: u16, data: &[u8]) -> u8 {
    c.send(&packets::publish(version, topic.as_bytes(), 1, false, pid, data)).await.expect("send PUBLISH");
    let ack = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    let (id, reason) = policy::ack(&ack).expect("PUBACK body");
    assert_eq!(id, pid, "PUBACK for the wrong packet id");
    reason
}

// ----- password_file

#[tokio::test]
async fn password_file_admits_rumqttc_v311_and_v5_clients() {
    let dir = PolicyDir::new();
    let env = start(password_auth(&users_file(&dir)), ClientAuth::None).await;
    let base = unique("authn-ok");

    let mut o = env.v311_options(&unique("alice"), env.tls());
    o.set_credentials("alice", ARGON2ID_PASSWORD);
    let alice = v311::Client::connect(o)
        .await
        .unwrap_or_else(|e| panic!("alice (argon2id, 3.1.1) refused: {e}\n{}", env.moat.logs()));
    let t311 = format!("{base}/v311");
    alice.publish(&t311, QoS::AtLeastOnce, false, b"from alice".to_vec()).await.unwrap();
    env.sub.wait_for(&t311, b"from alice", WAIT).await.unwrap();

    let mut o = env.v5_options(&unique("bob"), env.tls());
    o.set_credentials("bob", BCRYPT_PASSWORD);
    let bob = v5::Client::connect(o)
        .await
        .unwrap_or_else(|e| panic!("bob (bcrypt, v5) refused: {e}\n{}", env.moat.logs()));
    let t5 = format!("{base}/v5");
    bob.publish(&t5, QoS::ExactlyOnce, false, b"from bob".to_vec()).await.unwrap();
    env.sub.wait_for(&t5, b"from bob", WAIT).await.unwrap();

    // Each password user is its own identity: alice's password does not open bob.
    let mut o = env.v311_options(&unique("bob-wrong"), env.tls());
    o.set_credentials("bob", ARGON2ID_PASSWORD);
    let err = v311::Client::connect(o).await.err().expect("bob with alice's password admitted");
    assert!(err.to_string().contains("refused"), "unexpected failure: {err}");

    let mut topics: Vec<_> = env.sub.messages().into_iter().map(|m| m.topic).collect();
    topics.sort();
    assert_eq!(topics, vec![t311, t5], "broker received {:?}", env.sub.summary());
    alice.disconnect().await;
    bob.disconnect().await;
}

async fn mosquitto_pub(
    env: &Env,
    version: &str,
    user: &str,
    password: &str,
    topic: &str,
    msg: &str,
) -> std::process::Output {
    let mut cmd = tokio::process::Command::new("mosquitto_pub");
    cmd.args(["-h", "localhost", "-p", &env.moat.port.to_string(), "-V", version, "-q", "1"])
        .args(["--cafile", &env.pki.ca_cert().display().to_string()])
        .args(["-u", user, "-P", password, "-t", topic, "-m", msg, "-i", &unique("mpub")]);
    run_with_timeout(cmd, Duration::from_secs(30)).await.expect("mosquitto_pub")
}

#[tokio::test]
async fn password_file_admits_mosquitto_pub_with_credentials() {
    let dir = PolicyDir::new();
    // A YAML file holding a mosquitto_passwd hash ($7$, PBKDF2-SHA512) next to argon2id.
    let carol = mosquitto_hash("carol-secret").await.unwrap();
    let users = dir.write("users.yaml", &password_yaml(&[("alice", ARGON2ID_HASH), ("carol", &carol)]));
    let env = start(password_auth(&users), ClientAuth::None).await;
    let base = unique("mpub");
    for (version, user, pw) in [
        ("mqttv311", "carol", "carol-secret"),
        ("mqttv5", "carol", "carol-secret"),
        ("mqttv311", "alice", ARGON2ID_PASSWORD),
    ] {
        let topic = format!("{base}/{user}/{version}");
        let out = mosquitto_pub(&env, version, user, pw, &topic, "cli message").await;
        assert!(
            out.status.success(),
            "mosquitto_pub -u {user} ({version}) failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            env.moat.logs()
        );
        env.sub.wait_for(&topic, b"cli message", WAIT).await.unwrap();
    }
    let denied = format!("{base}/denied");
    for (version, user, pw) in [("mqttv311", "carol", "nope"), ("mqttv5", "mallory", "carol-secret")] {
        let out = mosquitto_pub(&env, version, user, pw, &denied, "must not arrive").await;
        assert!(!out.status.success(), "mosquitto_pub -u {user} -P {pw} ({version}) succeeded");
    }
    env.sub.barrier().await.unwrap();
    assert!(
        env.sub.messages().iter().all(|m| m.topic != denied),
        "a refused client's message reached the broker: {:?}",
        env.sub.summary()
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_refusal() {
    let dir = PolicyDir::new();
    let env = start(password_auth(&users_file(&dir)), ClientAuth::None).await;
    for (version, code) in [(V311, 0x04), (V5, 0x86)] {
        let cases: [(&str, Option<&[u8]>, &str); 4] = [
            ("alice", Some(b"wrong"), "wrong password"),
            ("nobody", Some(ARGON2ID_PASSWORD.as_bytes()), "unknown user"),
            ("alice", None, "username without password"),
            ("alice", Some(b""), "empty password"),
        ];
        for (user, pw, what) in cases {
            let ctx = format!("{version:?} {what}");
            let bytes = connect_with(version, &unique("bad"), Some(user), pw);
            expect_refused(&env, env.tls(), &bytes, code, &ctx).await;
        }
    }
    env.assert_no_upstream_bytes("refused password logins").await;

    // Counted as password_file failures (whatever the result label), never as allows.
    let m = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.unwrap().body;
    let name = "moat_authentications_total";
    let all = policy::metric_with_labels(&m, name, &[("authenticator", "password_file")]).unwrap_or(0.0);
    let allowed = policy::metric_with_labels(&m, name, &[("result", "allow")]).unwrap_or(0.0);
    assert!(
        all - allowed >= 8.0 && allowed == 0.0,
        "{name}: password_file {all}, allow {allowed}\n{}",
        moat_e2e::http::metric_lines(&m, name).join("\n")
    );
}

#[tokio::test]
async fn mosquitto_passwd_file_is_accepted_as_path() {
    let dir = PolicyDir::new();
    let file = dir.path().join("passwd");
    mosquitto_passwd(&file, "dave", "dave-secret", true).await.unwrap();
    mosquitto_passwd(&file, "erin", "erin-secret", false).await.unwrap();
    let env = start(password_auth(&file), ClientAuth::None).await;

    // Refusals first: nothing may reach the broker for them.
    for (version, code) in [(V311, 0x04), (V5, 0x86)] {
        for (user, pw) in [("dave", "erin-secret"), ("zed", "dave-secret")] {
            let bytes = connect_with(version, &unique("bad"), Some(user), Some(pw.as_bytes()));
            expect_refused(&env, env.tls(), &bytes, code, &format!("{version:?} {user}")).await;
        }
    }
    assert!(
        env.tap.connections().is_empty(),
        "refused logins opened broker connections: {:?}",
        env.tap.summary()
    );

    let topic = unique("passwd/dave");
    let mut c = expect_accepted(
        &env,
        env.tls(),
        &connect_with(V311, &unique("dave"), Some("dave"), Some(b"dave-secret")),
        "dave",
    )
    .await;
    assert_eq!(raw_publish_qos1(&mut c, V311, &topic, 1, b"dave").await, 0);
    env.sub.wait_for(&topic, b"dave", WAIT).await.unwrap();

    let mut o = env.v5_options(&unique("erin"), env.tls());
    o.set_credentials("erin", "erin-secret");
    let erin =
        v5::Client::connect(o).await.unwrap_or_else(|e| panic!("erin refused: {e}\n{}", env.moat.logs()));
    let t = unique("passwd/erin");
    erin.publish(&t, QoS::AtLeastOnce, false, b"erin".to_vec()).await.unwrap();
    env.sub.wait_for(&t, b"erin", WAIT).await.unwrap();
    erin.disconnect().await;
}

// ----- x509

#[tokio::test]
async fn x509_username_from_cn_is_the_identity_acl_placeholders_see() {
    let dir = PolicyDir::new();
    let acl = dir.write(
        "acl.yaml",
        "no_match: deny\nrules:\n  - id: own-subtree\n    permission: allow\n    who: all\n    action: all\n    topics: [\"devices/${username}/#\"]\n",
    );
    let env = start(
        format!(
            "authentication:\n  - name: certs\n    type: x509\n    username_from: cn\nauthorization:\n  acl: \"{}\"\n",
            acl.display()
        ),
        ClientAuth::Required,
    )
    .await;
    let cn = unique("dev");
    // The client claims another username and a password: the certificate decides (trap 5).
    let mut c = expect_accepted(
        &env,
        with_cert(&env, &cn),
        &connect_with(V5, &unique("x509"), Some("intruder"), Some(b"whatever")),
        "client with cert",
    )
    .await;
    let mine = format!("devices/{cn}/telemetry");
    assert_eq!(raw_publish_qos1(&mut c, V5, &mine, 1, b"mine").await, 0x00, "own subtree denied");
    assert_eq!(
        raw_publish_qos1(&mut c, V5, "devices/intruder/telemetry", 2, b"claimed").await,
        0x87,
        "the claimed username's subtree was granted"
    );
    c.send(&policy::subscribe_many(V5, 3, &[(&format!("devices/{cn}/#"), 1), ("devices/intruder/#", 1)]))
        .await
        .unwrap();
    let sa = c.expect_packet(packets::SUBACK, WAIT).await.unwrap();
    assert_eq!(policy::suback(&sa, V5), Some((3, vec![0x01, 0x87])), "SUBACK {sa:?}");

    env.sub.wait_for(&mine, b"mine", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();
    let topics: Vec<_> = env.sub.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(topics, vec![mine.clone()], "broker received {:?}", env.sub.summary());

    let connects = forwarded_connects(&env);
    assert_eq!(connects.len(), 1, "{:?}", env.tap.summary());
    assert_eq!(connects[0].username.as_deref(), Some(cn.as_str()), "broker saw {:?}", connects[0]);
    assert_eq!(connects[0].password, None, "password forwarded: {:?}", connects[0]);
}

#[tokio::test]
async fn x509_require_clientid_match_refuses_other_ids() {
    let env = start(
        "authentication:\n  - name: certs\n    type: x509\n    require_clientid_match: true\n".into(),
        ClientAuth::Required,
    )
    .await;
    let cn = unique("dev");
    let tls = with_cert(&env, &cn);
    for (version, code) in [(V311, 0x02), (V5, 0x85)] {
        let bytes = packets::connect(version, &format!("{cn}-not"));
        expect_refused(&env, tls.clone(), &bytes, code, &format!("{version:?} mismatching client id")).await;
    }
    env.assert_no_upstream_bytes("client id / cert CN mismatch").await;

    let mut c = expect_accepted(&env, tls, &packets::connect(V5, &cn), "client id = CN").await;
    let topic = unique("x509-match");
    assert_eq!(raw_publish_qos1(&mut c, V5, &topic, 1, b"ok").await, 0);
    env.sub.wait_for(&topic, b"ok", WAIT).await.unwrap();
}

// ----- chain order

#[tokio::test]
async fn chain_falls_through_from_x509_to_password_file() {
    let dir = PolicyDir::new();
    let users = users_file(&dir);
    let env = start(
        format!(
            "authentication:\n  - name: certs\n    type: x509\n    username_from: cn\n  - name: users\n    type: password_file\n    path: \"{}\"\n",
            users.display()
        ),
        ClientAuth::Optional,
    )
    .await;
    // No cert, no username: nobody decided.
    expect_refused(&env, env.tls(), &packets::connect(V311, &unique("none")), 0x05, "3.1.1 nothing matched")
        .await;
    expect_refused(&env, env.tls(), &packets::connect(V5, &unique("none")), 0x87, "v5 nothing matched").await;
    // No cert, wrong password: password_file denies.
    let bad = connect_with(V311, &unique("bad"), Some("alice"), Some(b"wrong"));
    expect_refused(&env, env.tls(), &bad, 0x04, "no cert, wrong password").await;
    assert!(env.tap.connections().is_empty(), "refusals reached the broker: {:?}", env.tap.summary());

    // No cert, good password: x509 ignores, password_file allows.
    let mut c = expect_accepted(
        &env,
        env.tls(),
        &connect_with(V311, &unique("alice"), Some("alice"), Some(ARGON2ID_PASSWORD.as_bytes())),
        "no cert, alice",
    )
    .await;
    let t = unique("chain/alice");
    assert_eq!(raw_publish_qos1(&mut c, V311, &t, 1, b"a").await, 0);
    env.sub.wait_for(&t, b"a", WAIT).await.unwrap();

    // A cert decides first: a wrong password beside it is never consulted.
    let cn = unique("dev");
    let mut c = expect_accepted(
        &env,
        with_cert(&env, &cn),
        &connect_with(V5, &unique("certy"), Some("alice"), Some(b"wrong")),
        "cert + wrong password",
    )
    .await;
    let t = unique("chain/cert");
    assert_eq!(raw_publish_qos1(&mut c, V5, &t, 1, b"c").await, 0);
    env.sub.wait_for(&t, b"c", WAIT).await.unwrap();

    let users: Vec<_> = forwarded_connects(&env).into_iter().map(|c| c.username).collect();
    assert_eq!(users, vec![Some("alice".to_string()), Some(cn)], "identities shown to the broker");
}

#[tokio::test]
async fn x509_only_listener_refuses_clients_without_a_cert() {
    let env = start("authentication:\n  - name: certs\n    type: x509\n".into(), ClientAuth::Optional).await;
    let creds = |v| connect_with(v, &unique("nocert"), Some("alice"), Some(ARGON2ID_PASSWORD.as_bytes()));
    expect_refused(&env, env.tls(), &creds(V311), 0x05, "3.1.1 without cert").await;
    expect_refused(&env, env.tls(), &creds(V5), 0x87, "v5 without cert").await;
    expect_refused(&env, env.tls(), &packets::connect(V5, &unique("nocert")), 0x87, "v5 bare").await;
    env.assert_no_upstream_bytes("x509-only listener, no cert").await;

    let mut c = expect_accepted(
        &env,
        with_cert(&env, &unique("dev")),
        &packets::connect(V311, &unique("c")),
        "with cert",
    )
    .await;
    let t = unique("x509only");
    assert_eq!(raw_publish_qos1(&mut c, V311, &t, 1, b"x").await, 0);
    env.sub.wait_for(&t, b"x", WAIT).await.unwrap();
}

// ----- identity shown to the broker (trap 5)

#[tokio::test]
async fn broker_sees_the_verified_username_and_never_the_password_by_default() {
    let dir = PolicyDir::new();
    let users = users_file(&dir);
    let env =
        start(format!("{}  - name: anon\n    type: anonymous\n", password_auth(&users)), ClientAuth::None)
            .await;
    let cases: [(Version, Option<&str>, Option<&str>); 3] = [
        (V311, Some("alice"), Some(ARGON2ID_PASSWORD)),
        (V5, Some("bob"), Some(BCRYPT_PASSWORD)),
        (V311, None, None),
    ];
    for (i, (version, user, pw)) in cases.into_iter().enumerate() {
        let id = unique("ident");
        let mut c = expect_accepted(
            &env,
            env.tls(),
            &connect_with(version, &id, user, pw.map(str::as_bytes)),
            &format!("{version:?} {user:?}"),
        )
        .await;
        let t = unique("ident/t");
        assert_eq!(raw_publish_qos1(&mut c, version, &t, 1, b"p").await, 0);
        env.sub.wait_for(&t, b"p", WAIT).await.unwrap();
        let fwd = forwarded_connects(&env);
        let got = fwd.get(i).unwrap_or_else(|| panic!("no forwarded CONNECT #{i}: {:?}", env.tap.summary()));
        assert_eq!(got.client_id, id);
        assert_eq!(got.username.as_deref(), user, "broker saw the wrong username: {got:?}");
        assert_eq!(got.password, None, "the password reached the broker: {got:?}");
        assert_eq!(got.flags & 0x40, 0, "password flag set in the forwarded CONNECT: {got:?}");
    }
}

#[tokio::test]
async fn anonymous_client_claimed_username_is_not_shown_to_the_broker() {
    let env = Env::start().await; // policy: a single anonymous authenticator
    for version in [V311, V5] {
        let mut c = expect_accepted(
            &env,
            env.tls(),
            &connect_with(version, &unique("anon"), Some("admin"), Some(b"hunter2")),
            &format!("{version:?} anonymous claiming admin"),
        )
        .await;
        let t = unique("anon/t");
        assert_eq!(raw_publish_qos1(&mut c, version, &t, 1, b"p").await, 0);
        env.sub.wait_for(&t, b"p", WAIT).await.unwrap();
    }
    for got in forwarded_connects(&env) {
        assert_eq!(got.username, None, "unverified username forwarded: {got:?}");
        assert_eq!(got.password, None, "password forwarded: {got:?}");
    }
    assert_eq!(forwarded_connects(&env).len(), 2, "{:?}", env.tap.summary());
}

#[tokio::test]
async fn broker_with_its_own_password_file_gets_the_password_only_with_keep() {
    let dir = PolicyDir::new();
    let users = users_file(&dir);
    let broker_pw = dir.path().join("mosquitto.passwd");
    mosquitto_passwd(&broker_pw, "alice", ARGON2ID_PASSWORD, true).await.unwrap();
    mosquitto_passwd(&broker_pw, "recorder", "recorder-secret", false).await.unwrap();
    let pki = Pki::new();
    let pw = broker_pw.clone();
    let broker =
        Mosquitto::start_with(move |_| format!("allow_anonymous false\npassword_file {}\n", pw.display()))
            .await;
    // Premise: this broker really refuses a client without credentials.
    let anon = v311::Client::connect(v311::options(&unique("anon"), broker.port, None)).await;
    assert!(anon.is_err(), "the password-protected broker admitted an anonymous client");
    let rec = BrokerRecorder::start(broker.port, "recorder", "recorder-secret")
        .await
        .unwrap_or_else(|e| panic!("recorder: {e}\n{}", broker.proc.logs()));

    let tap_keep = Tap::start(broker.port).await;
    let moat_keep = Moat::start(
        &pki,
        &MoatOptions {
            upstream: tap_keep.addr(),
            policy_yaml: Some(format!(
                "{}broker_identity:\n  username: verified\n  password: keep\n",
                password_auth(&users)
            )),
            ..Default::default()
        },
    )
    .await;
    let tap_drop = Tap::start(broker.port).await;
    let moat_drop = Moat::start(
        &pki,
        &MoatOptions {
            upstream: tap_drop.addr(),
            policy_yaml: Some(password_auth(&users)),
            ..Default::default()
        },
    )
    .await;

    // keep: the broker's own check passes.
    let mut o = v311::options(&unique("keep"), moat_keep.port, Some(pki.client_config()));
    o.set_credentials("alice", ARGON2ID_PASSWORD);
    let c = v311::Client::connect(o)
        .await
        .unwrap_or_else(|e| panic!("keep: {e}\n{}\n{}", moat_keep.logs(), broker.proc.logs()));
    let t = unique("keep/t");
    c.publish(&t, QoS::AtLeastOnce, false, b"kept".to_vec()).await.unwrap();
    rec.wait_for(&t, b"kept").await.unwrap();
    let fwd: Vec<_> = tap_keep.all_packets().iter().filter_map(parse_connect).collect();
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].username.as_deref(), Some("alice"));
    assert_eq!(fwd[0].password.as_deref(), Some(ARGON2ID_PASSWORD.as_bytes()));
    c.disconnect().await;

    // drop (default): moat admits alice, the broker does not get her password and refuses.
    let denied = unique("drop/t");
    for version in [V311, V5] {
        let mut raw = RawClient::connect(moat_drop.port, pki.client_config()).await.unwrap();
        let mut bytes =
            connect_with(version, &unique("drop"), Some("alice"), Some(ARGON2ID_PASSWORD.as_bytes()));
        bytes.extend(packets::publish(version, denied.as_bytes(), 0, false, 0, b"x"));
        raw.send(&bytes).await.unwrap();
        let ack = raw
            .expect_packet(packets::CONNACK, AUTH_WAIT)
            .await
            .unwrap_or_else(|e| panic!("{version:?} drop: {e}\n{}", moat_drop.logs()));
        assert_ne!(
            ack.connack_code(),
            Some(0),
            "{version:?}: broker accepted alice without her password\n{}",
            broker.proc.logs()
        );
        raw.read_until_closed(WAIT).await.unwrap();
    }
    let fwd: Vec<_> = tap_drop.all_packets().iter().filter_map(parse_connect).collect();
    assert_eq!(fwd.len(), 2, "{:?}", tap_drop.summary());
    for f in fwd {
        assert_eq!(f.username.as_deref(), Some("alice"));
        assert_eq!(f.password, None, "password forwarded without `password: keep`: {f:?}");
    }
    rec.barrier().await.unwrap();
    assert!(
        !rec.topics().contains(&denied),
        "the broker published for a client it refused: {:?}",
        rec.topics()
    );
}

// ----- pipelining (trap 2)

#[tokio::test]
async fn pipelined_packets_behind_a_refused_connect_never_reach_the_broker() {
    let dir = PolicyDir::new();
    let env = start(password_auth(&users_file(&dir)), ClientAuth::None).await;
    let topic = unique("pipelined");
    for (version, code) in [(V311, 0x04), (V5, 0x86)] {
        // Wrong password (fast hash) and unknown user (dummy hash: the slow path).
        for (user, pw) in [("alice", "wrong"), ("nobody", "password")] {
            let mut bytes = connect_with(version, &unique("pipe"), Some(user), Some(pw.as_bytes()));
            bytes.extend(packets::publish(version, topic.as_bytes(), 0, false, 0, b"qos0"));
            bytes.extend(packets::publish(version, topic.as_bytes(), 1, true, 1, b"qos1 retained"));
            bytes.extend(packets::subscribe(version, 2, b"#", 0));
            bytes.extend(packets::disconnect(version));
            expect_refused(&env, env.tls(), &bytes, code, &format!("{version:?} pipelined {user}")).await;
        }
    }
    env.assert_no_upstream_bytes("pipelined after a refused CONNECT").await;
}

#[tokio::test]
async fn pipelined_packets_behind_an_accepted_connect_still_go_through_the_acl() {
    let dir = PolicyDir::new();
    let users = users_file(&dir);
    let acl = dir.write(
        "acl.yaml",
        "rules:\n  - permission: allow\n    who: {username: alice}\n    action: publish\n    topics: [\"ok/#\"]\n",
    );
    let env = start(
        format!("{}authorization:\n  acl: \"{}\"\n", password_auth(&users), acl.display()),
        ClientAuth::None,
    )
    .await;
    let ok = format!("ok/{}", unique("p"));
    let secret = format!("secret/{}", unique("p"));
    let mut bytes = connect_with(V5, &unique("pipe"), Some("alice"), Some(ARGON2ID_PASSWORD.as_bytes()));
    bytes.extend(packets::publish(V5, ok.as_bytes(), 1, false, 1, b"allowed"));
    bytes.extend(packets::publish(V5, secret.as_bytes(), 1, false, 2, b"denied qos1"));
    bytes.extend(packets::publish(V5, secret.as_bytes(), 0, false, 0, b"denied qos0"));
    let mut c = env.raw().await;
    c.send(&bytes).await.unwrap();
    // The CONNACK comes first: moat must not answer pipelined packets before the session exists.
    let first = c.read_packet(AUTH_WAIT).await.unwrap().expect("closed before CONNACK");
    assert_eq!(
        first.packet_type(),
        packets::CONNACK,
        "first packet to the client is {} (not CONNACK): moat answered a pipelined packet before the CONNACK\n{}",
        first.describe(),
        env.moat.logs()
    );
    assert_eq!(first.connack_code(), Some(0), "{}", env.moat.logs());
    let mut acks = Vec::new();
    for _ in 0..2 {
        let p = c.expect_packet(packets::PUBACK, WAIT).await.unwrap();
        acks.push(policy::ack(&p).unwrap());
    }
    acks.sort();
    assert_eq!(acks, vec![(1, 0x00), (2, 0x87)], "PUBACKs (id, reason)");
    env.sub.wait_for(&ok, b"allowed", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();
    let topics: Vec<_> = env.sub.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(topics, vec![ok], "broker received {:?}", env.sub.summary());
    let leaked: Vec<_> = env
        .tap
        .all_packets()
        .iter()
        .filter(|p| p.publish_topic() == Some(secret.as_bytes()))
        .map(RawPacket::describe)
        .collect();
    assert!(leaked.is_empty(), "denied PUBLISH forwarded: {leaked:?}");
}

// ----- empty client id (trap 4)

#[tokio::test]
async fn empty_client_id_gets_a_moat_id_that_clientid_rules_see() {
    let dir = PolicyDir::new();
    let acl = dir.write(
        "acl.yaml",
        "rules:\n  - permission: allow\n    who: all\n    action: all\n    topics: [\"devices/${clientid}/#\"]\n",
    );
    let env = start(
        format!(
            "authentication:\n  - name: anon\n    type: anonymous\nauthorization:\n  acl: \"{}\"\n",
            acl.display()
        ),
        ClientAuth::None,
    )
    .await;
    let (ack, mut c) = first_connack(&env, env.tls(), &packets::connect(V5, ""), "v5 empty id").await;
    assert_eq!(ack.connack_code(), Some(0));
    let props = ack.v5_connack_properties().expect("CONNACK properties");
    let assigned = policy::str_prop(&props, 0x12)
        .unwrap_or_else(|| panic!("no Assigned Client Identifier in CONNACK: {props:?}"));
    assert!(
        assigned.len() == 21
            && assigned.starts_with("moat-")
            && assigned[5..].chars().all(|ch| ch.is_ascii_hexdigit()),
        "assigned id {assigned:?} is not moat-<16 hex>"
    );
    let mine = format!("devices/{assigned}/x");
    assert_eq!(raw_publish_qos1(&mut c, V5, &mine, 1, b"assigned").await, 0x00);
    assert_eq!(raw_publish_qos1(&mut c, V5, "devices/other/x", 2, b"other").await, 0x87);
    env.sub.wait_for(&mine, b"assigned", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();
    let topics: Vec<_> = env.sub.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(topics, vec![mine], "broker received {:?}", env.sub.summary());
    // The broker knows the client under the same id.
    let ids: Vec<_> = forwarded_connects(&env).into_iter().map(|c| c.client_id).collect();
    assert_eq!(ids, vec![assigned], "broker saw a different id than the client was told");
}

#[tokio::test]
async fn v311_empty_client_id_without_clean_session_gets_0x02() {
    // MQTT-3.1.3-8: zero-byte client id with CleanSession 0 -> CONNACK 0x02, then close.
    let env = Env::start().await;
    let mut persistent = packets::Connect::new(V311, "");
    persistent.clean = false;
    expect_refused(&env, env.tls(), &persistent.encode(), 0x02, "3.1.1 empty id, clean 0").await;
    env.assert_no_upstream_bytes("3.1.1 empty id, clean 0").await;
}

// ----- AUTH packets (trap 13)

#[tokio::test]
async fn client_auth_packet_is_never_forwarded_to_the_broker() {
    let dir = PolicyDir::new();
    let env = start(password_auth(&users_file(&dir)), ClientAuth::None).await;
    let mut c = expect_accepted(
        &env,
        env.tls(),
        &connect_with(V5, &unique("reauth"), Some("alice"), Some(ARGON2ID_PASSWORD.as_bytes())),
        "alice v5",
    )
    .await;
    // AUTH, reason 0x19 (re-authenticate), Authentication Method "SCRAM-SHA-1", Authentication Data.
    let mut props = vec![0x15];
    props.extend(packets::mqtt_str(b"SCRAM-SHA-1"));
    props.push(0x16);
    props.extend(packets::mqtt_str(b"n,,n=alice,r=abc"));
    let mut body = vec![0x19];
    body.extend(packets::props(&props));
    c.send(&packets::packet(0xf0, &body)).await.unwrap();
    let closed = c
        .read_until_closed(WAIT)
        .await
        .unwrap_or_else(|e| panic!("session still open after an unsolicited AUTH: {e}\n{}", env.moat.logs()));
    let _ = env.tap.wait_all_closed(Duration::from_secs(3)).await;
    let auth: Vec<_> = env
        .tap
        .all_packets()
        .iter()
        .filter(|p| p.packet_type() == packets::AUTH)
        .map(RawPacket::describe)
        .collect();
    assert!(auth.is_empty(), "moat forwarded the client's AUTH to the broker: {:?}", env.tap.summary());
    let reasons: Vec<_> = closed.packets.iter().filter_map(RawPacket::disconnect_reason).collect();
    assert!(
        reasons.len() == 1 && reasons[0] >= 0x80,
        "expected one DISCONNECT with an error reason, got {:?}",
        closed.packets.iter().map(RawPacket::describe).collect::<Vec<_>>()
    );
}

// ----- uniform failure (trap 6)

/// A Mosquitto `$7$` (PBKDF2-SHA512) hash with chosen iterations, computed by python3's hashlib.
async fn pbkdf2_sha512_hash(password: &str, iterations: u32) -> String {
    let script = format!(
        "import base64,hashlib,os\nsalt=os.urandom(12)\nh=hashlib.pbkdf2_hmac('sha512',{password:?}.encode(),salt,{iterations})\n\
         print('$7$%d$%s$%s' % ({iterations}, base64.b64encode(salt).decode(), base64.b64encode(h).decode()))\n"
    );
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("-c").arg(script);
    let out = run_with_timeout(cmd, Duration::from_secs(30)).await.expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn unknown_user_takes_about_as_long_as_a_wrong_password() {
    let dir = PolicyDir::new();
    // Expensive enough that hashing dominates a CONNECT round trip.
    let hash = pbkdf2_sha512_hash("s3cret", 12_000).await;
    let users = dir.write("users.yaml", &password_yaml(&[("alice", &hash)]));
    let env = start(password_auth(&users), ClientAuth::None).await;
    // Sanity: the hash verifies.
    expect_accepted(
        &env,
        env.tls(),
        &connect_with(V311, &unique("ok"), Some("alice"), Some(b"s3cret")),
        "alice with the right password",
    )
    .await;

    async fn timed(env: &Env, user: &str, pw: &[u8]) -> Duration {
        let mut c = env.raw().await; // TLS handshake outside the measurement
        let bytes = connect_with(V311, &unique("t"), Some(user), Some(pw));
        let start = tokio::time::Instant::now();
        c.send(&bytes).await.unwrap();
        let ack = c.expect_packet(packets::CONNACK, AUTH_WAIT).await.unwrap();
        let took = start.elapsed();
        assert_eq!(ack.connack_code(), Some(0x04), "{user}: {}", ack.describe());
        took
    }
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..5 {
        wrong.push(timed(&env, "alice", b"not-it").await);
        unknown.push(timed(&env, &format!("nobody{i}"), b"not-it").await);
    }
    wrong.sort();
    unknown.sort();
    let (w, u) = (wrong[2], unknown[2]);
    assert!(
        w >= Duration::from_millis(20),
        "wrong-password median {w:?}: the test hash is too cheap to compare timings"
    );
    eprintln!("wrong password {wrong:?}\nunknown user {unknown:?}");
    let ratio = u.as_secs_f64() / w.as_secs_f64();
    assert!(
        (0.33..=3.0).contains(&ratio),
        "unknown user median {u:?} vs wrong password median {w:?} (ratio {ratio:.2}): \
         a login failure reveals whether the user exists\nwrong {wrong:?}\nunknown {unknown:?}"
    );
}

// ----- x509 client id from the certificate

#[tokio::test]
async fn x509_clientid_from_cn_replaces_the_claimed_client_id() {
    let dir = PolicyDir::new();
    let acl = dir.write(
        "acl.yaml",
        "rules:\n  - permission: allow\n    who: all\n    action: all\n    topics: [\"devices/${clientid}/#\"]\n",
    );
    let env = start(
        format!(
            "authentication:\n  - name: certs\n    type: x509\n    clientid_from: cn\nauthorization:\n  acl: \"{}\"\n",
            acl.display()
        ),
        ClientAuth::Required,
    )
    .await;
    let cn = unique("dev");
    let mut c =
        expect_accepted(&env, with_cert(&env, &cn), &packets::connect(V5, "claimed-id"), "cert").await;
    let mine = format!("devices/{cn}/x");
    assert_eq!(raw_publish_qos1(&mut c, V5, &mine, 1, b"cn").await, 0x00);
    assert_eq!(
        raw_publish_qos1(&mut c, V5, "devices/claimed-id/x", 2, b"claimed").await,
        0x87,
        "the claimed client id was used by the ACL"
    );
    env.sub.wait_for(&mine, b"cn", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();
    let topics: Vec<_> = env.sub.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(topics, vec![mine]);
    let ids: Vec<_> = forwarded_connects(&env).into_iter().map(|c| c.client_id).collect();
    assert_eq!(ids, vec![cn], "client id shown to the broker");
}

// ----- fail closed on broken authentication config

async fn moat_check_policy(dir: &PolicyDir, policy_yaml: String) -> (bool, String) {
    let pki = Pki::new();
    let opts = MoatOptions { policy_yaml: Some(policy_yaml), ..Default::default() };
    let config = dir
        .write("moat.yaml", &opts.render(&pki, moat_e2e::net::free_port(), moat_e2e::net::free_port(), None));
    let mut cmd = tokio::process::Command::from(moat_e2e::moat_command());
    cmd.arg("check").arg("-c").arg(&config);
    let out = run_with_timeout(cmd, Duration::from_secs(20)).await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn broken_password_file_and_empty_chain_are_refused_at_startup() {
    let dir = PolicyDir::new();
    // Line 3: a hash moat cannot verify (never "accept anything"); line 5: unknown key.
    let users = dir.write(
        "users.yaml",
        "users:\n  alice:\n    password_hash: \"plaintext-hunter2\"\n  bob:\n    pasword_hash: \"$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie\"\n",
    );
    let (ok, stderr) = moat_check_policy(&dir, password_auth(&users)).await;
    assert!(!ok, "moat check accepted a broken password file:\n{stderr}");
    for line in [3, 5] {
        assert!(
            stderr.lines().any(|l| l.contains(&format!("users.yaml:{line}:"))),
            "no `users.yaml:{line}:` line; stderr:\n{stderr}"
        );
    }
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("EGdrhbKUv8Oc9vGiXX0HQ"),
        "a password or hash leaked into the error output:\n{stderr}"
    );

    let (ok, stderr) = moat_check_policy(&dir, "authentication: []\n".into()).await;
    assert!(!ok, "an empty authentication chain was accepted (must fail closed):\n{stderr}");
}
