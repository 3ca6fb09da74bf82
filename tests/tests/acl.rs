//! ACL enforcement through moat: denied PUBLISH answered per protocol version (trap 11), partly
//! denied SUBSCRIBE (trap 12), subscriptions as filters (trap 9), the Will as a publish (trap 3),
//! placeholder injection (trap 7), topic aliases (trap 8), deny_action and shadow mode. Every test
//! checks what the client got and what the broker received (direct subscriber and tap).

use std::path::Path;
use std::time::Duration;

use moat_e2e::http;
use moat_e2e::packets::{self, RawPacket, Version};
use moat_e2e::policy::{
    self, alias_prop, metric_with_labels, publish_v5, pubrel, subscribe_filters, subscribe_many, PolicyDir,
};
use moat_e2e::{unique, v311, ClientAuth, Env, MoatOptions, QoS, RawClient};

const WAIT: Duration = Duration::from_secs(10);
const V311: Version = Version::V311;
const V5: Version = Version::V5;

/// Anonymous clients, the given ACL rule file.
async fn acl_env(dir: &PolicyDir, acl_text: &str) -> Env {
    let acl = dir.write("acl.yaml", acl_text);
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(policy_yaml(&acl)),
        ..Default::default()
    })
    .await
}

fn policy_yaml(acl: &Path) -> String {
    format!(
        "authentication:\n  - name: anon\n    type: anonymous\nauthorization:\n  acl: \"{}\"\n",
        acl.display()
    )
}

/// `permission` for `action` on `topics`, for everyone.
fn rule(permission: &str, action: &str, topics: &[&str]) -> String {
    let list: Vec<String> = topics.iter().map(|t| format!("\"{t}\"")).collect();
    format!(
        "  - permission: {permission}\n    who: all\n    action: {action}\n    topics: [{}]\n",
        list.join(", ")
    )
}

fn acl_file(header: &str, rules: &[String]) -> String {
    format!("{header}rules:\n{}", rules.concat())
}

async fn connected(env: &Env, version: Version) -> RawClient {
    env.raw_connected(version, &unique("acl")).await
}

/// The next packet of type `kind`, skipping deliveries (PUBLISH) from overlapping subscriptions.
async fn expect(c: &mut RawClient, kind: u8, env: &Env, ctx: &str) -> RawPacket {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.read_packet(left).await {
            Ok(Some(p)) if p.packet_type() == kind => return p,
            Ok(Some(p)) if p.packet_type() == packets::PUBLISH => continue,
            Ok(Some(p)) => panic!(
                "{ctx}: expected {}, got {}\n{}",
                packets::type_name(kind),
                p.describe(),
                env.moat.logs()
            ),
            Ok(None) => panic!(
                "{ctx}: connection closed while waiting for {}\n{}",
                packets::type_name(kind),
                env.moat.logs()
            ),
            Err(e) => panic!("{ctx}: {e}\n{}", env.moat.logs()),
        }
    }
}

/// (packet id, reason) of the next ack of `kind`.
async fn expect_ack(c: &mut RawClient, kind: u8, env: &Env, ctx: &str) -> (u16, u8) {
    let p = expect(c, kind, env, ctx).await;
    policy::ack(&p).unwrap_or_else(|| panic!("{ctx}: short ack {p:?}"))
}

/// PUBLISH packets moat forwarded to the broker on `topic`.
fn forwarded_to(env: &Env, topic: &str) -> Vec<String> {
    env.tap
        .all_packets()
        .iter()
        .filter(|p| p.publish_topic() == Some(topic.as_bytes()))
        .map(RawPacket::describe)
        .collect()
}

/// Forwarded PUBLISH packets carrying `payload` (whatever their topic or alias).
fn forwarded_payload(env: &Env, payload: &[u8]) -> Vec<String> {
    env.tap
        .all_packets()
        .iter()
        .filter(|p| p.packet_type() == packets::PUBLISH && p.body.ends_with(payload))
        .map(RawPacket::describe)
        .collect()
}

fn broker_topics(env: &Env) -> Vec<String> {
    let mut t: Vec<_> = env.sub.messages().into_iter().map(|m| m.topic).collect();
    t.sort();
    t
}

/// A plain client straight on the broker, to publish what subscribers through moat may get.
async fn direct_publisher(env: &Env) -> v311::Client {
    v311::Client::connect(v311::options(&unique("direct-pub"), env.broker.port, None))
        .await
        .expect("direct publisher")
}

/// Reads PUBLISH packets until one on `topic` arrives; returns the topics of all received.
async fn publishes_until(c: &mut RawClient, topic: &str, env: &Env) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let p = c
            .read_packet(left)
            .await
            .unwrap_or_else(|e| panic!("waiting for {topic} (got {seen:?}): {e}\n{}", env.moat.logs()))
            .unwrap_or_else(|| {
                panic!("closed while waiting for {topic} (got {seen:?})\n{}", env.moat.logs())
            });
        if let Some(t) = p.publish_topic() {
            let t = String::from_utf8_lossy(t).into_owned();
            let done = t == topic;
            seen.push(t);
            if done {
                return seen;
            }
        }
    }
}

// ----- denied PUBLISH (trap 11)

#[tokio::test]
async fn denied_publish_v311_is_answered_by_moat_and_never_reaches_the_broker() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "publish", &["ok/#"])])).await;
    let mut c = connected(&env, V311).await;
    let base = unique("t");
    let (ok, secret) = (format!("ok/{base}"), format!("secret/{base}"));

    // QoS 0: silently dropped.
    c.send(&packets::publish(V311, secret.as_bytes(), 0, false, 0, b"d0")).await.unwrap();
    // QoS 1: PUBACK from moat (3.1.1 has no reason code: exactly the packet id).
    c.send(&packets::publish(V311, secret.as_bytes(), 1, false, 1, b"d1")).await.unwrap();
    let p = expect(&mut c, packets::PUBACK, &env, "denied QoS1").await;
    assert_eq!(p.body, vec![0, 1], "3.1.1 PUBACK {p:?}");
    // QoS 2: PUBREC from moat, then moat completes the exchange for the client's PUBREL.
    c.send(&packets::publish(V311, secret.as_bytes(), 2, false, 2, b"d2")).await.unwrap();
    let p = expect(&mut c, packets::PUBREC, &env, "denied QoS2").await;
    assert_eq!(p.body, vec![0, 2], "3.1.1 PUBREC {p:?}");
    c.send(&pubrel(2)).await.unwrap();
    let p = expect(&mut c, packets::PUBCOMP, &env, "PUBREL of a denied QoS2").await;
    assert_eq!(p.body, vec![0, 2], "PUBCOMP {p:?}");

    // The session goes on: allowed topics at every QoS.
    c.send(&packets::publish(V311, format!("{ok}/1").as_bytes(), 1, false, 3, b"a1")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "allowed QoS1").await.0, 3);
    c.send(&packets::publish(V311, format!("{ok}/2").as_bytes(), 2, false, 4, b"a2")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBREC, &env, "allowed QoS2").await.0, 4);
    c.send(&pubrel(4)).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBCOMP, &env, "allowed QoS2 PUBCOMP").await.0, 4);
    c.send(&packets::publish(V311, format!("{ok}/0").as_bytes(), 0, false, 0, b"a0")).await.unwrap();
    env.sub.wait_for(&format!("{ok}/0"), b"a0", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();
    assert_eq!(
        broker_topics(&env),
        vec![format!("{ok}/0"), format!("{ok}/1"), format!("{ok}/2")],
        "broker received {:?}",
        env.sub.summary()
    );
    assert!(forwarded_to(&env, &secret).is_empty(), "denied PUBLISH forwarded: {:?}", env.tap.summary());
    let pubrels: Vec<_> = env
        .tap
        .all_packets()
        .iter()
        .filter(|p| p.packet_type() == packets::PUBREL)
        .filter_map(policy::ack)
        .map(|(id, _)| id)
        .collect();
    assert_eq!(pubrels, vec![4], "PUBRELs forwarded to the broker (the denied id 2 must not be)");
}

#[tokio::test]
async fn denied_publish_v5_gets_reason_0x87() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "publish", &["ok/#"])])).await;
    let mut c = connected(&env, V5).await;
    let base = unique("t");
    let (ok, secret) = (format!("ok/{base}"), format!("secret/{base}"));

    c.send(&packets::publish(V5, secret.as_bytes(), 0, false, 0, b"d0")).await.unwrap();
    c.send(&packets::publish(V5, secret.as_bytes(), 1, false, 1, b"d1")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "denied QoS1").await, (1, 0x87));
    c.send(&packets::publish(V5, secret.as_bytes(), 2, false, 2, b"d2")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBREC, &env, "denied QoS2").await, (2, 0x87));

    c.send(&packets::publish(V5, ok.as_bytes(), 1, false, 3, b"a1")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "allowed QoS1").await, (3, 0x00));
    c.send(&packets::publish(V5, ok.as_bytes(), 2, false, 4, b"a2")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBREC, &env, "allowed QoS2").await, (4, 0x00));
    c.send(&pubrel(4)).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBCOMP, &env, "allowed PUBCOMP").await, (4, 0x00));
    env.sub.wait_for(&ok, b"a2", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();
    let payloads: Vec<_> = env.sub.messages().into_iter().map(|m| (m.topic, m.payload.to_vec())).collect();
    assert_eq!(
        payloads,
        vec![(ok.clone(), b"a1".to_vec()), (ok.clone(), b"a2".to_vec())],
        "broker received {:?}",
        env.sub.summary()
    );
    assert!(forwarded_to(&env, &secret).is_empty(), "denied PUBLISH forwarded: {:?}", env.tap.summary());
}

#[tokio::test]
async fn deny_action_disconnect_closes_the_session() {
    let dir = PolicyDir::new();
    let env = acl_env(
        &dir,
        &acl_file(
            "deny_action: disconnect\n",
            &[rule("allow", "publish", &["ok/#"]), rule("allow", "subscribe", &["ok/#"])],
        ),
    )
    .await;
    let secret = format!("secret/{}", unique("t"));

    // v5: DISCONNECT 0x87, then close.
    let mut c = connected(&env, V5).await;
    c.send(&packets::publish(V5, secret.as_bytes(), 1, false, 1, b"x")).await.unwrap();
    let closed = c.read_until_closed(WAIT).await.unwrap();
    let got: Vec<_> = closed.packets.iter().map(RawPacket::describe).collect();
    assert_eq!(
        closed.packets.iter().map(|p| p.disconnect_reason()).collect::<Vec<_>>(),
        vec![Some(0x87)],
        "v5 denied publish with deny_action disconnect: got {got:?}\n{}",
        env.moat.logs()
    );
    // v5 SUBSCRIBE: the same.
    let mut c = connected(&env, V5).await;
    c.send(&packets::subscribe(V5, 1, b"secret/#", 0)).await.unwrap();
    let closed = c.read_until_closed(WAIT).await.unwrap();
    assert_eq!(
        closed.packets.iter().map(|p| p.disconnect_reason()).collect::<Vec<_>>(),
        vec![Some(0x87)],
        "v5 denied subscribe: {:?}",
        closed.packets
    );
    // 3.1.1: closed without an answer, at QoS 0 and 1.
    for qos in [0u8, 1] {
        let mut c = connected(&env, V311).await;
        c.send(&packets::publish(V311, secret.as_bytes(), qos, false, 1, b"x")).await.unwrap();
        let closed = c.read_until_closed(WAIT).await.unwrap();
        assert!(
            closed.packets.is_empty(),
            "3.1.1 QoS{qos}: expected a plain close, got {:?}",
            closed.packets.iter().map(RawPacket::describe).collect::<Vec<_>>()
        );
    }
    env.assert_upstream_only(&[packets::CONNECT, packets::DISCONNECT], "deny_action disconnect").await;
}

// ----- partly denied SUBSCRIBE (trap 12)

async fn partly_denied_subscribe(version: Version, denied_code: u8) {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "subscribe", &["pub/#"])])).await;
    let base = unique("s");
    let (pa, pr, pb) = (format!("pub/{base}/#"), format!("priv/{base}/#"), format!("pub/{base}/b"));
    let mut c = connected(&env, version).await;
    c.send(&subscribe_many(version, 7, &[(&pa, 1), (&pr, 1), (&pb, 0)])).await.unwrap();
    let sa = expect(&mut c, packets::SUBACK, &env, "partly denied SUBSCRIBE").await;
    assert_eq!(
        policy::suback(&sa, version),
        Some((7, vec![0x01, denied_code, 0x00])),
        "SUBACK must merge moat's denial into the broker's codes in the original order: {sa:?}"
    );
    let forwarded: Vec<_> =
        env.tap.all_packets().iter().filter_map(|p| subscribe_filters(p, version)).collect();
    assert_eq!(
        forwarded,
        vec![(7, vec![(pa.clone(), 1), (pb.clone(), 0)])],
        "SUBSCRIBE forwarded to the broker"
    );

    // The broker delivers only what was really subscribed.
    let direct = direct_publisher(&env).await;
    let secret_topic = format!("priv/{base}/x");
    let public_a = format!("pub/{base}/x");
    direct.publish(&secret_topic, QoS::AtMostOnce, false, b"secret".to_vec()).await.unwrap();
    direct.publish(&public_a, QoS::AtMostOnce, false, b"public".to_vec()).await.unwrap();
    let seen = publishes_until(&mut c, &public_a, &env).await;
    direct.publish(&secret_topic, QoS::AtMostOnce, false, b"secret".to_vec()).await.unwrap();
    direct.publish(&pb, QoS::AtMostOnce, false, b"public b".to_vec()).await.unwrap();
    let seen2 = publishes_until(&mut c, &pb, &env).await;
    let all: Vec<_> = seen.into_iter().chain(seen2).collect();
    assert!(!all.contains(&secret_topic), "a message on the denied filter reached the client: {all:?}");

    // All filters denied: moat answers SUBACK itself, nothing is forwarded.
    c.send(&subscribe_many(version, 8, &[(&pr, 0), ("#", 1)])).await.unwrap();
    let sa = expect(&mut c, packets::SUBACK, &env, "all denied").await;
    assert_eq!(policy::suback(&sa, version), Some((8, vec![denied_code, denied_code])), "{sa:?}");
    // A round trip through the broker (PINGREQ) orders the check after anything moat forwarded.
    c.send(&packets::pingreq()).await.unwrap();
    expect(&mut c, packets::PINGRESP, &env, "PINGRESP").await;
    let subs: Vec<_> = env
        .tap
        .all_packets()
        .iter()
        .filter_map(|p| subscribe_filters(p, version))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(subs, vec![7], "an all-denied SUBSCRIBE reached the broker");
}

#[tokio::test]
async fn partly_denied_subscribe_v311_merges_suback_with_0x80() {
    partly_denied_subscribe(V311, 0x80).await;
}

#[tokio::test]
async fn partly_denied_subscribe_v5_merges_suback_with_0x87() {
    partly_denied_subscribe(V5, 0x87).await;
}

// ----- subscriptions are filters (trap 9)

async fn subscribe_codes(env: &Env, c: &mut RawClient, pid: u16, filters: &[&str]) -> Vec<u8> {
    let list: Vec<(&str, u8)> = filters.iter().map(|f| (*f, 0u8)).collect();
    c.send(&subscribe_many(V5, pid, &list)).await.unwrap();
    let sa = expect(c, packets::SUBACK, env, "SUBACK").await;
    let (id, codes) = policy::suback(&sa, V5).unwrap_or_else(|| panic!("bad SUBACK {sa:?}"));
    assert_eq!(id, pid);
    codes
}

#[tokio::test]
async fn wildcard_subscriptions_covering_a_denied_subtree_are_denied() {
    let dir = PolicyDir::new();
    let env = acl_env(
        &dir,
        &acl_file("", &[rule("deny", "subscribe", &["secret/#"]), rule("allow", "subscribe", &["#"])]),
    )
    .await;
    let mut c = connected(&env, V5).await;
    let filters = [
        "#",                 // intersects secret/#
        "secret/x",          // inside it
        "+/x",               // matches secret/x
        "public/#",          // disjoint: allowed by #
        "$share/g/secret/x", // share prefix stripped before matching
        "$share/g/public/#", // stripped: allowed
        "$SYS/#",            // `#` does not cover $-topics: no rule grants it
        "$SYS/broker/uptime",
        "$queue/secret/x", // $queue/ stripped too
    ];
    let codes = subscribe_codes(&env, &mut c, 1, &filters).await;
    assert_eq!(
        filters.iter().zip(&codes).map(|(f, c)| (f.to_string(), *c)).collect::<Vec<_>>(),
        filters
            .iter()
            .zip([0x87, 0x87, 0x87, 0x00, 0x87, 0x00, 0x87, 0x87, 0x87])
            .map(|(f, c)| (f.to_string(), c))
            .collect::<Vec<_>>(),
        "SUBACK codes per filter\n{}",
        env.moat.logs()
    );
    let forwarded: Vec<_> = env
        .tap
        .all_packets()
        .iter()
        .filter_map(|p| subscribe_filters(p, V5))
        .flat_map(|(_, f)| f.into_iter().map(|(f, _)| f))
        .collect();
    assert_eq!(forwarded, vec!["public/#".to_string(), "$share/g/public/#".to_string()]);

    let direct = direct_publisher(&env).await;
    direct.publish("secret/x", QoS::AtMostOnce, false, b"s".to_vec()).await.unwrap();
    direct.publish("public/x", QoS::AtMostOnce, false, b"p".to_vec()).await.unwrap();
    let seen = publishes_until(&mut c, "public/x", &env).await;
    assert!(!seen.iter().any(|t| t.starts_with("secret")), "client got {seen:?}");
}

#[tokio::test]
async fn plus_filter_intersecting_a_deny_rule_is_denied() {
    let dir = PolicyDir::new();
    let env = acl_env(
        &dir,
        &acl_file("", &[rule("deny", "subscribe", &["+/secret"]), rule("allow", "subscribe", &["a/#"])]),
    )
    .await;
    let mut c = connected(&env, V5).await;
    let filters = ["a/#", "a/+", "a/public", "a/secret", "a/b/secret", "b/#"];
    let codes = subscribe_codes(&env, &mut c, 1, &filters).await;
    assert_eq!(codes, vec![0x87, 0x87, 0x00, 0x87, 0x00, 0x87], "codes for {filters:?}\n{}", env.moat.logs());
    let direct = direct_publisher(&env).await;
    direct.publish("a/secret", QoS::AtMostOnce, false, b"s".to_vec()).await.unwrap();
    direct.publish("a/public", QoS::AtMostOnce, false, b"p".to_vec()).await.unwrap();
    let seen = publishes_until(&mut c, "a/public", &env).await;
    assert_eq!(seen, vec!["a/public".to_string()], "client got {seen:?}");
}

#[tokio::test]
async fn hash_rule_does_not_grant_dollar_topics() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "all", &["#"])])).await;
    let mut c = connected(&env, V5).await;
    let codes =
        subscribe_codes(&env, &mut c, 1, &["#", "$SYS/#", "$SYS/broker/clients/connected", "x/+"]).await;
    assert_eq!(codes, vec![0x00, 0x87, 0x87, 0x00], "{}", env.moat.logs());
    let sys = format!("$SYS/{}", unique("e2e"));
    c.send(&packets::publish(V5, sys.as_bytes(), 1, false, 2, b"sys")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "$SYS publish").await, (2, 0x87));
    c.send(&packets::pingreq()).await.unwrap();
    expect(&mut c, packets::PINGRESP, &env, "PINGRESP").await;
    assert!(forwarded_to(&env, &sys).is_empty(), "$SYS publish forwarded: {:?}", env.tap.summary());
    let forwarded: Vec<_> = env
        .tap
        .all_packets()
        .iter()
        .filter_map(|p| subscribe_filters(p, V5))
        .flat_map(|(_, f)| f.into_iter().map(|(f, _)| f))
        .collect();
    assert_eq!(forwarded, vec!["#".to_string(), "x/+".to_string()]);
}

// ----- Will (trap 3)

#[tokio::test]
async fn denied_will_refuses_the_connect() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "publish", &["ok/#"])])).await;
    for (version, code) in [(V311, 0x05), (V5, 0x87)] {
        let connect = packets::Connect::new(version, &unique("will"))
            .will("forbidden/will", b"last words", 1, true)
            .encode();
        let mut c = env.raw().await;
        c.send(&connect).await.unwrap();
        let ack = expect(&mut c, packets::CONNACK, &env, "CONNACK for a denied Will").await;
        assert_eq!(ack.connack_code(), Some(code), "{version:?}: {}", ack.describe());
        let closed = c.read_until_closed(WAIT).await.unwrap();
        assert!(closed.packets.is_empty(), "{:?}", closed.packets);
    }
    env.assert_no_upstream_bytes("CONNECT with a denied Will").await;

    // An allowed Will still works: it fires when the client vanishes.
    let will_topic = format!("ok/{}", unique("will"));
    let connect =
        packets::Connect::new(V311, &unique("will-ok")).will(&will_topic, b"gone", 0, false).encode();
    let mut c = env.raw().await;
    c.send(&connect).await.unwrap();
    let ack = expect(&mut c, packets::CONNACK, &env, "allowed Will").await;
    assert_eq!(ack.connack_code(), Some(0));
    drop(c); // no DISCONNECT: the broker must publish the Will
    env.sub.wait_for(&will_topic, b"gone", WAIT).await.unwrap();
}

// ----- placeholder injection (trap 7)

#[tokio::test]
async fn client_ids_that_would_widen_clientid_rules_are_refused() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "all", &["devices/${clientid}/#"])])).await;
    for (version, code) in [(V311, 0x02), (V5, 0x85)] {
        for id in ["a/+", "#", "+", "x/y"] {
            let mut c = env.raw().await;
            c.send(&packets::connect(version, id)).await.unwrap();
            let ack = expect(&mut c, packets::CONNACK, &env, id).await;
            assert_eq!(
                ack.connack_code(),
                Some(code),
                "{version:?} client id {id:?}: {}\n{}",
                ack.describe(),
                env.moat.logs()
            );
            c.read_until_closed(WAIT).await.unwrap();
        }
    }
    env.assert_no_upstream_bytes("unsafe client ids").await;

    // A plain id gets exactly its own subtree.
    let id = unique("dev");
    let mut c = env.raw_connected(V5, &id).await;
    let mine = format!("devices/{id}/t");
    c.send(&packets::publish(V5, mine.as_bytes(), 1, false, 1, b"mine")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "own subtree").await, (1, 0x00));
    c.send(&packets::publish(V5, b"devices/other/t", 1, false, 2, b"other")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "other subtree").await, (2, 0x87));
    env.sub.wait_for(&mine, b"mine", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();
    assert_eq!(broker_topics(&env), vec![mine], "{:?}", env.sub.summary());
}

// ----- topic aliases (trap 8)

#[tokio::test]
async fn topic_alias_repointed_to_a_denied_topic_stays_denied() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "publish", &["ok/#"])])).await;
    let base = unique("alias");
    let (ok, ok2, secret) = (format!("ok/{base}"), format!("ok/{base}/2"), format!("secret/{base}"));
    let mut c = env.raw().await;
    c.send(&packets::connect(V5, &unique("alias"))).await.unwrap();
    let ack = expect(&mut c, packets::CONNACK, &env, "CONNACK").await;
    assert_eq!(ack.connack_code(), Some(0));
    let props = ack.v5_connack_properties().unwrap();
    let max = policy::u16_prop(&props, 0x22).unwrap_or(0);
    assert!((1..=64).contains(&max), "Topic Alias Maximum in CONNACK: {max} ({props:?})");

    let a1 = alias_prop(1);
    // 1. topic + alias on an allowed topic, 2. alias only: both delivered.
    c.send(&publish_v5(&ok, 1, 1, &a1, b"set")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "alias set").await, (1, 0x00));
    c.send(&publish_v5("", 1, 2, &a1, b"via-alias")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "alias only").await, (2, 0x00));
    env.sub.wait_for(&ok, b"via-alias", WAIT).await.unwrap();
    // 3. alias re-pointed to a denied topic: denied; 4. alias only afterwards: still denied.
    c.send(&publish_v5(&secret, 1, 3, &a1, b"denied-repoint")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "re-point").await, (3, 0x87));
    c.send(&publish_v5("", 1, 4, &a1, b"denied-alias-only")).await.unwrap();
    assert_eq!(
        expect_ack(&mut c, packets::PUBACK, &env, "alias only after re-point").await,
        (4, 0x87),
        "an alias-only PUBLISH after a denied re-point was not denied"
    );
    c.send(&publish_v5("", 0, 0, &a1, b"denied-alias-only-qos0")).await.unwrap();
    // 5. re-pointed to another allowed topic: moat and broker agree again.
    c.send(&publish_v5(&ok2, 1, 5, &a1, b"set2")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "re-point allowed").await, (5, 0x00));
    c.send(&publish_v5("", 1, 6, &a1, b"via-alias2")).await.unwrap();
    assert_eq!(expect_ack(&mut c, packets::PUBACK, &env, "alias only 2").await, (6, 0x00));
    env.sub.wait_for(&ok2, b"via-alias2", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();

    let got: Vec<_> = env
        .sub
        .messages()
        .into_iter()
        .map(|m| (m.topic, String::from_utf8_lossy(&m.payload).into_owned()))
        .collect();
    let expected: Vec<(String, String)> =
        [(&ok, "set"), (&ok, "via-alias"), (&ok2, "set2"), (&ok2, "via-alias2")]
            .into_iter()
            .map(|(t, p)| (t.clone(), p.to_string()))
            .collect();
    assert_eq!(got, expected, "broker received");
    for p in [&b"denied-repoint"[..], b"denied-alias-only", b"denied-alias-only-qos0"] {
        let f = forwarded_payload(&env, p);
        assert!(f.is_empty(), "{:?} forwarded to the broker: {f:?}", String::from_utf8_lossy(p));
    }
}

#[tokio::test]
async fn unknown_or_out_of_range_topic_alias_disconnects() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "publish", &["ok/#"])])).await;
    for (alias, topic, reason) in [(3u16, "", 0x82u8), (60_000, "ok/x", 0x94)] {
        let mut c = connected(&env, V5).await;
        c.send(&publish_v5(topic, 1, 1, &alias_prop(alias), b"alias-abuse")).await.unwrap();
        let closed = c.read_until_closed(WAIT).await.unwrap();
        assert_eq!(
            closed.packets.iter().map(|p| p.disconnect_reason()).collect::<Vec<_>>(),
            vec![Some(reason)],
            "alias {alias}: {:?}\n{}",
            closed.packets.iter().map(RawPacket::describe).collect::<Vec<_>>(),
            env.moat.logs()
        );
    }
    assert!(forwarded_payload(&env, b"alias-abuse").is_empty(), "{:?}", env.tap.summary());
    env.sub.assert_nothing("invalid aliases").await;
}

// ----- shadow mode

#[tokio::test]
async fn shadow_mode_lets_traffic_pass_and_counts_would_deny() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("enforce: false\n", &[rule("allow", "all", &["ok/#"])])).await;
    let secret = format!("secret/{}", unique("shadow"));
    let mut c = connected(&env, V5).await;
    c.send(&packets::subscribe(V5, 1, secret.as_bytes(), 1)).await.unwrap();
    let sa = expect(&mut c, packets::SUBACK, &env, "shadow SUBACK").await;
    assert_eq!(policy::suback(&sa, V5), Some((1, vec![0x01])), "{sa:?}");
    c.send(&packets::publish(V5, secret.as_bytes(), 1, false, 2, b"shadow")).await.unwrap();
    let mut acked = false;
    let mut delivered = false;
    while !(acked && delivered) {
        let p = c.read_packet(WAIT).await.unwrap().expect("closed");
        match p.packet_type() {
            packets::PUBACK => {
                assert_eq!(policy::ack(&p), Some((2, 0x00)), "shadow mode PUBACK");
                acked = true;
            }
            packets::PUBLISH => delivered |= p.publish_topic() == Some(secret.as_bytes()),
            _ => {}
        }
    }
    env.sub.wait_for(&secret, b"shadow", WAIT).await.unwrap();

    let m = http::get(env.moat.admin_port, "/metrics").await.unwrap();
    let would = metric_with_labels(
        &m.body,
        "moat_acl_decisions_total",
        &[("action", "publish"), ("result", "would_deny")],
    );
    assert!(
        would.is_some_and(|v| v >= 1.0),
        "moat_acl_decisions_total{{action=\"publish\",result=\"would_deny\"}} = {would:?}\n{}",
        http::metric_lines(&m.body, "moat_acl_decisions_total").join("\n")
    );
    let would_sub = metric_with_labels(
        &m.body,
        "moat_acl_decisions_total",
        &[("action", "subscribe"), ("result", "would_deny")],
    );
    assert!(would_sub.is_some_and(|v| v >= 1.0), "subscribe would_deny = {would_sub:?}");
    let denied =
        metric_with_labels(&m.body, "moat_acl_decisions_total", &[("result", "deny")]).unwrap_or(0.0);
    assert_eq!(denied, 0.0, "shadow mode counted real denials");
}

// ----- identity from the authenticator reaches the rules (trap 5, trap 7)

/// Password users (all with the argon2id test password) and the ACL file, behind one listener.
async fn password_acl_env(dir: &PolicyDir, users_yaml: &str, acl_text: &str) -> Env {
    let users = dir.write("users.yaml", users_yaml);
    let acl = dir.write("acl.yaml", acl_text);
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!(
            "authentication:\n  - name: users\n    type: password_file\n    path: \"{}\"\n  - name: anon\n    type: anonymous\nauthorization:\n  acl: \"{}\"\n",
            users.display(),
            acl.display()
        )),
        ..Default::default()
    })
    .await
}

async fn login(env: &Env, version: Version, user: &str) -> RawClient {
    let mut c = env.raw().await;
    c.send(&policy::connect_with(
        version,
        &unique(&user.replace(['/', '+', '#'], "_")),
        Some(user),
        Some(policy::ARGON2ID_PASSWORD.as_bytes()),
    ))
    .await
    .unwrap();
    let ack = c
        .expect_packet(packets::CONNACK, Duration::from_secs(20))
        .await
        .unwrap_or_else(|e| panic!("{user}: {e}\n{}", env.moat.logs()));
    assert_eq!(ack.connack_code(), Some(0), "{user} refused: {}\n{}", ack.describe(), env.moat.logs());
    c
}

/// Publishes QoS 1 to each topic; returns the PUBACK reason codes.
async fn publish_all(env: &Env, c: &mut RawClient, topics: &[String], ctx: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, t) in topics.iter().enumerate() {
        let pid = i as u16 + 1;
        c.send(&packets::publish(V5, t.as_bytes(), 1, false, pid, ctx.as_bytes())).await.unwrap();
        let (id, reason) = expect_ack(c, packets::PUBACK, env, ctx).await;
        assert_eq!(id, pid);
        out.push(reason);
    }
    out
}

#[tokio::test]
async fn superuser_groups_attributes_and_address_from_the_password_file_drive_the_rules() {
    let dir = PolicyDir::new();
    let h = policy::ARGON2ID_HASH;
    let users = format!(
        "users:\n  root:\n    password_hash: \"{h}\"\n    superuser: true\n  op:\n    password_hash: \"{h}\"\n    groups: [operators]\n    attributes: {{site: paris}}\n  alice:\n    password_hash: \"{h}\"\n"
    );
    let acl = "rules:\n  - permission: allow\n    who: {group: operators}\n    action: publish\n    topics: [\"ops/#\"]\n  - permission: allow\n    who: all\n    action: publish\n    topics: [\"sites/${attr.site}/#\"]\n  - permission: allow\n    who: {ipaddr: \"127.0.0.0/8\"}\n    action: publish\n    topics: [\"local/#\"]\n  - permission: deny\n    who: all\n    action: all\n    topics: [\"#\"]\n";
    let env = password_acl_env(&dir, &users, acl).await;
    let base = unique("id");
    let t = |s: &str| format!("{s}/{base}");
    let cases: [(&str, Vec<(String, u8)>); 3] = [
        ("root", vec![(t("anything"), 0x00), (t("ops"), 0x00)]),
        (
            "op",
            vec![
                (t("ops"), 0x00),
                (format!("sites/paris/{base}"), 0x00),
                (format!("sites/london/{base}"), 0x87),
                (t("local"), 0x00),
                (t("other"), 0x87),
            ],
        ),
        ("alice", vec![(t("ops"), 0x87), (format!("sites/paris/{base}"), 0x87), (t("local"), 0x00)]),
    ];
    let mut allowed = Vec::new();
    for (user, expected) in cases {
        let mut c = login(&env, V5, user).await;
        let topics: Vec<String> = expected.iter().map(|(t, _)| t.clone()).collect();
        let codes = publish_all(&env, &mut c, &topics, user).await;
        assert_eq!(
            topics.iter().cloned().zip(codes).collect::<Vec<_>>(),
            expected,
            "{user}: PUBACK reason per topic\n{}",
            env.moat.logs()
        );
        allowed.extend(expected.iter().filter(|(_, c)| *c == 0).map(|(t, _)| (t.clone(), user.to_string())));
    }
    env.sub.barrier().await.unwrap();
    let mut got: Vec<_> = env
        .sub
        .messages()
        .into_iter()
        .map(|m| (m.topic, String::from_utf8_lossy(&m.payload).into_owned()))
        .collect();
    got.sort();
    allowed.sort();
    assert_eq!(got, allowed, "broker received");
}

#[tokio::test]
async fn usernames_that_would_widen_username_rules_are_refused() {
    let dir = PolicyDir::new();
    let h = policy::ARGON2ID_HASH;
    let users = format!(
        "users:\n  \"x/y\":\n    password_hash: \"{h}\"\n  \"ev+l\":\n    password_hash: \"{h}\"\n  \"a#b\":\n    password_hash: \"{h}\"\n  alice:\n    password_hash: \"{h}\"\n"
    );
    let acl = "rules:\n  - permission: allow\n    who: all\n    action: all\n    topics: [\"devices/${username}/#\"]\n";
    let env = password_acl_env(&dir, &users, acl).await;
    for (version, code) in [(V311, 0x02), (V5, 0x85)] {
        for user in ["x/y", "ev+l", "a#b"] {
            let mut c = env.raw().await;
            c.send(&policy::connect_with(
                version,
                &unique("u"),
                Some(user),
                Some(policy::ARGON2ID_PASSWORD.as_bytes()),
            ))
            .await
            .unwrap();
            let ack = c.expect_packet(packets::CONNACK, Duration::from_secs(20)).await.unwrap();
            assert_eq!(
                ack.connack_code(),
                Some(code),
                "{version:?} username {user:?}: {}\n{}",
                ack.describe(),
                env.moat.logs()
            );
            c.read_until_closed(WAIT).await.unwrap();
        }
    }
    env.assert_no_upstream_bytes("unsafe usernames").await;

    let mut c = login(&env, V5, "alice").await;
    let codes =
        publish_all(&env, &mut c, &["devices/alice/x".to_string(), "devices/x/y/z".to_string()], "alice")
            .await;
    assert_eq!(codes, vec![0x00, 0x87]);
    env.sub.wait_for("devices/alice/x", b"alice", WAIT).await.unwrap();
    env.sub.barrier().await.unwrap();
    assert_eq!(broker_topics(&env), vec!["devices/alice/x".to_string()]);
}

#[tokio::test]
async fn anonymous_claimed_username_grants_nothing_in_username_rules() {
    let dir = PolicyDir::new();
    let env = acl_env(&dir, &acl_file("", &[rule("allow", "all", &["devices/${username}/#"])])).await;
    let mut c = env.raw().await;
    c.send(&policy::connect_with(V5, &unique("anon"), Some("alice"), Some(b"not checked"))).await.unwrap();
    let ack = expect(&mut c, packets::CONNACK, &env, "anonymous CONNACK").await;
    assert_eq!(ack.connack_code(), Some(0), "{}", env.moat.logs());
    let codes = publish_all(&env, &mut c, &["devices/alice/x".to_string()], "claimed").await;
    assert_eq!(codes, vec![0x87], "a claimed (unverified) username was trusted by the ACL");
    c.send(&packets::subscribe(V5, 9, b"devices/alice/#", 0)).await.unwrap();
    let sa = expect(&mut c, packets::SUBACK, &env, "SUBACK").await;
    assert_eq!(policy::suback(&sa, V5), Some((9, vec![0x87])));
    c.send(&packets::pingreq()).await.unwrap();
    expect(&mut c, packets::PINGRESP, &env, "PINGRESP").await;
    assert!(forwarded_to(&env, "devices/alice/x").is_empty(), "{:?}", env.tap.summary());
    env.sub.assert_nothing("anonymous claiming alice").await;
}

// ----- qualifiers

#[tokio::test]
async fn qos_and_retain_qualifiers_apply_to_publishes_and_wills() {
    let dir = PolicyDir::new();
    let acl = "rules:\n  - permission: deny\n    who: all\n    action: publish\n    qos: [2]\n    topics: [\"q/#\"]\n  - permission: deny\n    who: all\n    action: publish\n    retain: true\n    topics: [\"r/#\"]\n  - permission: allow\n    who: all\n    action: all\n    topics: [\"q/#\", \"r/#\"]\n";
    let env = acl_env(&dir, acl).await;
    let base = unique("qual");
    let (q, r) = (format!("q/{base}"), format!("r/{base}"));
    let mut c = connected(&env, V5).await;
    // (topic, qos, retain, expected reason of PUBACK / PUBREC)
    let cases = [(&q, 1u8, false, 0x00u8), (&q, 2, false, 0x87), (&r, 1, false, 0x00), (&r, 1, true, 0x87)];
    for (i, (topic, qos, retain, want)) in cases.iter().enumerate() {
        let pid = i as u16 + 1;
        let payload = format!("case{i}");
        c.send(&packets::publish(V5, topic.as_bytes(), *qos, *retain, pid, payload.as_bytes()))
            .await
            .unwrap();
        let kind = if *qos == 2 { packets::PUBREC } else { packets::PUBACK };
        let got = expect_ack(&mut c, kind, &env, &payload).await;
        assert_eq!(got, (pid, *want), "{topic} qos {qos} retain {retain}");
        if *qos == 2 && *want == 0 {
            c.send(&pubrel(pid)).await.unwrap();
            expect(&mut c, packets::PUBCOMP, &env, "PUBCOMP").await;
        }
    }
    env.sub.barrier().await.unwrap();
    let got: Vec<_> = env
        .sub
        .messages()
        .into_iter()
        .map(|m| (m.topic, String::from_utf8_lossy(&m.payload).into_owned(), m.retain))
        .collect();
    assert_eq!(
        got,
        vec![(q.clone(), "case0".to_string(), false), (r.clone(), "case2".to_string(), false)],
        "broker received"
    );

    // The Will is checked with its own QoS and retain flag.
    for (qos, retain, want) in [(2u8, false, 0x87u8), (1, true, 0x87), (1, false, 0x00)] {
        let topic = if qos == 2 { &q } else { &r };
        let connect = packets::Connect::new(V5, &unique("will")).will(topic, b"w", qos, retain).encode();
        let mut c = env.raw().await;
        c.send(&connect).await.unwrap();
        let ack = expect(&mut c, packets::CONNACK, &env, "Will CONNACK").await;
        assert_eq!(ack.connack_code(), Some(want), "Will on {topic} qos {qos} retain {retain}");
    }
}

// ----- fail closed on a broken rule file

#[tokio::test]
async fn broken_acl_file_is_refused_at_startup_with_file_and_line() {
    let dir = PolicyDir::new();
    // Line 4: unknown key; line 7: invalid filter.
    let acl_text = "rules:\n  - permission: allow\n    who: all\n    acton: publish\n    topics: [\"ok/#\"]\n  - permission: deny\n    topics: [\"a/#/b\"]\n    action: all\n";
    assert!(acl_text.lines().nth(3).unwrap().contains("acton"));
    assert!(acl_text.lines().nth(6).unwrap().contains("a/#/b"));
    let acl = dir.write("acl.yaml", acl_text);
    let pki = moat_e2e::Pki::new();
    let opts = MoatOptions { policy_yaml: Some(policy_yaml(&acl)), ..Default::default() };
    let config = dir
        .write("moat.yaml", &opts.render(&pki, moat_e2e::net::free_port(), moat_e2e::net::free_port(), None));
    for sub in ["check", "run"] {
        let mut cmd = tokio::process::Command::from(moat_e2e::moat_command());
        cmd.arg(sub).arg("-c").arg(&config);
        let out = moat_e2e::procs::run_with_timeout(cmd, Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("moat {sub} with a broken ACL file did not exit: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "moat {sub} accepted a broken ACL file:\n{stderr}");
        for (line, what) in [(4, "acton"), (7, "a/#/b")] {
            assert!(
                stderr.lines().any(|l| l.contains(&format!("acl.yaml:{line}:"))),
                "moat {sub}: no `acl.yaml:{line}:` line for {what}; stderr:\n{stderr}"
            );
        }
    }
}
