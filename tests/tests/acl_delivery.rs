//! `authorization.check_delivery`: each broker → client PUBLISH is checked against the client's
//! subscribe permissions. A deny written as `{eq: "a/secret"}` refuses only that literal filter,
//! so `a/#` may be subscribed; the delivery check still keeps `a/secret` from the client, and moat
//! acknowledges the dropped QoS 1 delivery to the broker itself.

use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::policy::PolicyDir;
use moat_e2e::{unique, v311, ClientAuth, Env, MoatOptions, QoS};

const WAIT: Duration = Duration::from_secs(10);

async fn env(check_delivery: bool) -> (Env, PolicyDir) {
    let dir = PolicyDir::new();
    let acl = dir.write(
        "acl.yaml",
        "rules:\n  - permission: deny\n    who: all\n    action: subscribe\n    topics: [{eq: \"a/secret\"}]\n\
         \x20 - permission: allow\n    who: all\n    action: all\n    topics: [\"a/#\"]\n",
    );
    let policy = format!(
        "authentication:\n  - name: anon\n    type: anonymous\nauthorization:\n  acl: \"{}\"\n  check_delivery: {check_delivery}\n",
        acl.display()
    );
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(policy),
        ..Default::default()
    })
    .await;
    (env, dir)
}

/// Subscribes to `prefix/#` through moat, publishes `secret` then `ok` straight on the broker,
/// and returns the topics the client received before `ok` arrived.
async fn deliveries(env: &Env, prefix: &str) -> Vec<Vec<u8>> {
    let mut c = env.raw_connected(Version::V311, &unique("deliver")).await;
    c.send(&packets::subscribe(Version::V311, 1, format!("{prefix}/#").as_bytes(), 1)).await.unwrap();
    loop {
        let p = c.read_packet(WAIT).await.unwrap().expect("open");
        if p.packet_type() == packets::SUBACK {
            break;
        }
    }
    let publisher = v311::Client::connect(v311::options(&unique("direct-pub"), env.broker.port, None))
        .await
        .expect("direct publisher");
    publisher
        .publish(&format!("{prefix}/secret"), QoS::AtLeastOnce, false, "s")
        .await
        .expect("publish secret");
    publisher.publish(&format!("{prefix}/ok"), QoS::AtLeastOnce, false, "o").await.expect("publish ok");
    let mut topics = Vec::new();
    loop {
        let p = c.read_packet(WAIT).await.unwrap().expect("open");
        if p.packet_type() != packets::PUBLISH {
            continue;
        }
        let topic = p.publish_topic().expect("topic").to_vec();
        let done = topic == format!("{prefix}/ok").into_bytes();
        topics.push(topic);
        if done {
            return topics;
        }
    }
}

#[tokio::test]
async fn delivery_check_drops_denied_topics_under_an_allowed_filter() {
    // Each test has its own broker, so the fixed topics of the rule file do not collide.
    let (env, _dir) = env(true).await;
    let got = deliveries(&env, "a").await;
    assert_eq!(got, vec![b"a/ok".to_vec()], "delivery check let a denied topic through");
    // The dropped QoS 1 delivery was acknowledged to the broker by moat: the tap saw a PUBACK go up.
    let deadline = tokio::time::Instant::now() + WAIT;
    while !env.tap.all_packets().iter().any(|p| p.packet_type() == packets::PUBACK) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no PUBACK for the dropped delivery: {:?}",
            env.tap.summary()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn without_the_check_the_allowed_filter_receives_everything() {
    let (env, _dir) = env(false).await;
    let got = deliveries(&env, "a").await;
    assert_eq!(got, vec![b"a/secret".to_vec(), b"a/ok".to_vec()]);
}
