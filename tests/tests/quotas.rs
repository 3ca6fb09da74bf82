//! Per-client quotas (`limits:` and a listener's `limits:` overrides): each violation gets its
//! reason code (v5) or a close (3.1.1), is counted in `moat_quota_exceeded_total{quota}`, logged
//! to `moat::audit`, and nothing of the offending packet reaches the broker.

use std::time::Duration;

use moat_e2e::packets::{self, mqtt_str, packet, props, Connect, RawPacket, Version};
use moat_e2e::policy::subscribe_many;
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, ANONYMOUS_AUTH};

const WAIT: Duration = Duration::from_secs(10);

/// Global quotas, and a listener override that turns shared subscriptions off (the global default
/// leaves them on), so the override is what refuses `$share/`.
async fn env() -> Env {
    let limits = "limits:\n  max_topic_levels: 3\n  max_topic_length: 40\n  max_clientid_length: 20\n  \
                  max_subscriptions: 2\n  max_inflight: 2\n  keepalive_min: 10s\n  keepalive_max: 100s\n";
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}{limits}")),
        listener_extra: Some("    limits:\n      shared_subscriptions: false\n".to_string()),
        ..Default::default()
    })
    .await
}

/// Sends CONNECT and returns the CONNACK.
async fn connack(env: &Env, connect: &Connect) -> RawPacket {
    let mut c = env.raw().await;
    c.send(&connect.encode()).await.expect("send CONNECT");
    c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK")
}

async fn metric(env: &Env, quota: &str) -> u64 {
    let m = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
    let prefix = format!("moat_quota_exceeded_total{{quota=\"{quota}\"}} ");
    m.body.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn assert_audited(env: &Env, quota: &str) {
    let logs = env.moat.logs();
    assert!(
        logs.lines().any(|l| l.contains("moat::audit") && l.contains("quota exceeded") && l.contains(quota)),
        "no audit line for {quota}:\n{logs}"
    );
}

fn unsubscribe(version: Version, pid: u16, filter: &str) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if version == Version::V5 {
        body.extend(props(&[]));
    }
    body.extend(mqtt_str(filter.as_bytes()));
    packet(0xA2, &body)
}

/// The filters of every SUBSCRIBE the broker received.
fn upstream_filters(env: &Env) -> Vec<String> {
    let mut out = Vec::new();
    for p in env.tap.all_packets().iter().filter(|p| p.packet_type() == packets::SUBSCRIBE) {
        // v5 bodies: pid, property length 0 (moat forwards the client's empty properties).
        let mut rest = &p.body[3..];
        while rest.len() >= 2 {
            let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            out.push(String::from_utf8_lossy(&rest[2..2 + len]).into_owned());
            rest = &rest[2 + len + 1..];
        }
    }
    out
}

#[tokio::test]
async fn long_client_id_is_refused_before_anything_reaches_the_broker() {
    let env = env().await;
    let long = "c".repeat(21);
    let v5 = connack(&env, &Connect::new(Version::V5, &long)).await;
    assert_eq!(v5.connack_code(), Some(0x85), "{}", v5.describe());
    let v3 = connack(&env, &Connect::new(Version::V311, &long)).await;
    assert_eq!(v3.connack_code(), Some(0x02), "{}", v3.describe());
    assert_eq!(metric(&env, "max_clientid_length").await, 2);
    assert_audited(&env, "max_clientid_length");
    env.assert_no_upstream_bytes("client id over quota").await;
}

#[tokio::test]
async fn will_topic_counts_against_topic_quotas() {
    let env = env().await;
    let deep = Connect::new(Version::V5, &unique("will")).will("a/b/c/d", b"bye", 0, false);
    let ack = connack(&env, &deep).await;
    assert_eq!(ack.connack_code(), Some(0x97), "{}", ack.describe());
    let long = Connect::new(Version::V311, &unique("will")).will(&"w".repeat(41), b"bye", 0, false);
    let ack = connack(&env, &long).await;
    assert_eq!(ack.connack_code(), Some(0x03), "{}", ack.describe());
    assert_eq!(metric(&env, "max_topic_levels").await, 1);
    assert_eq!(metric(&env, "max_topic_length").await, 1);
    env.assert_no_upstream_bytes("Will over quota").await;
}

#[tokio::test]
async fn publish_over_topic_quotas() {
    let env = env().await;
    let topic = unique("q");
    // v5 QoS 1: PUBACK 0x97, and the session goes on.
    let mut c = env.raw_connected(Version::V5, &unique("pub")).await;
    c.send(&packets::publish(Version::V5, format!("{topic}/b/c/d").as_bytes(), 1, false, 1, b"x"))
        .await
        .unwrap();
    let ack = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    assert_eq!(ack.body, vec![0, 1, 0x97], "PUBACK with quota exceeded");
    c.send(&packets::publish(Version::V5, format!("{topic}/ok").as_bytes(), 1, false, 2, b"y"))
        .await
        .unwrap();
    let ack = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    assert_eq!(ack.body.get(2).copied().unwrap_or(0), 0, "the next PUBLISH is accepted");
    env.sub.wait_for(&format!("{topic}/ok"), b"y", WAIT).await.expect("allowed message delivered");
    // v5 QoS 0: no ack to carry a code → DISCONNECT 0x97.
    c.send(&packets::publish(Version::V5, "x".repeat(41).as_bytes(), 0, false, 0, b"z")).await.unwrap();
    let closed = c.read_until_closed(WAIT).await.expect("closed");
    assert_eq!(closed.packets.last().and_then(RawPacket::disconnect_reason), Some(0x97));
    // 3.1.1: no negative ack → close.
    let mut c = env.raw_connected(Version::V311, &unique("pub")).await;
    c.send(&packets::publish(Version::V311, format!("{topic}/b/c/d").as_bytes(), 1, false, 1, b"x"))
        .await
        .unwrap();
    let closed = c.read_until_closed(WAIT).await.expect("3.1.1 client closed");
    assert!(closed.packets.is_empty(), "no ack for the refused PUBLISH: {:?}", closed.packets);
    assert_eq!(metric(&env, "max_topic_levels").await, 2);
    assert_eq!(metric(&env, "max_topic_length").await, 1);
    assert_audited(&env, "max_topic_levels");
    assert!(env.tap.wait_closed_count(2, WAIT).await, "upstream connections not closed");
    let forwarded: Vec<String> = env
        .tap
        .all_packets()
        .iter()
        .filter_map(|p| p.publish_topic().map(|t| String::from_utf8_lossy(t).into_owned()))
        .collect();
    assert_eq!(forwarded, vec![format!("{topic}/ok")], "only the allowed PUBLISH reached the broker");
}

#[tokio::test]
async fn subscription_quotas() {
    let env = env().await;
    let mut c = env.raw_connected(Version::V5, &unique("subq")).await;
    let expect_suback = |codes: Vec<u8>| move |p: RawPacket| assert_eq!(p.body[3..], codes[..], "{p:?}");
    // Two filters fill the quota; a third is refused, a shared one is off on this listener, a
    // deep one is over max_topic_levels. Re-subscribing to a held filter does not count.
    c.send(&subscribe_many(Version::V5, 1, &[("s/1", 0), ("s/2", 0), ("s/3", 0)])).await.unwrap();
    expect_suback(vec![0, 0, 0x97])(c.expect_packet(packets::SUBACK, WAIT).await.unwrap());
    c.send(&subscribe_many(Version::V5, 2, &[("$share/g/s/4", 0), ("s/1", 0), ("a/b/c/d", 0)]))
        .await
        .unwrap();
    expect_suback(vec![0x9E, 0, 0x97])(c.expect_packet(packets::SUBACK, WAIT).await.unwrap());
    // Unsubscribing frees a slot once the broker confirms.
    c.send(&unsubscribe(Version::V5, 3, "s/1")).await.unwrap();
    c.expect_packet(packets::UNSUBACK, WAIT).await.expect("UNSUBACK");
    c.send(&subscribe_many(Version::V5, 4, &[("s/3", 0)])).await.unwrap();
    expect_suback(vec![0])(c.expect_packet(packets::SUBACK, WAIT).await.unwrap());
    assert_eq!(
        upstream_filters(&env),
        vec!["s/1", "s/2", "s/1", "s/3"],
        "refused filters reached the broker"
    );
    assert_eq!(metric(&env, "max_subscriptions").await, 1);
    assert_eq!(metric(&env, "shared_subscriptions").await, 1);
    assert_eq!(metric(&env, "max_topic_levels").await, 1);
    // 3.1.1 gets its only failure code, 0x80.
    let mut c = env.raw_connected(Version::V311, &unique("subq")).await;
    c.send(&subscribe_many(Version::V311, 1, &[("$share/g/x", 0), ("t/1", 0)])).await.unwrap();
    let p = c.expect_packet(packets::SUBACK, WAIT).await.unwrap();
    assert_eq!(p.body[2..], [0x80, 0], "{p:?}");
}

#[tokio::test]
async fn inflight_quota_is_the_announced_receive_maximum() {
    let env = env().await;
    let mut c = env.raw().await;
    c.send(&Connect::new(Version::V5, &unique("infl")).encode()).await.unwrap();
    let ack = c.expect_packet(packets::CONNACK, WAIT).await.unwrap();
    let props = ack.v5_connack_properties().expect("properties");
    assert!(props.contains(&(0x21, vec![0, 2])), "Receive Maximum 2 announced: {props:?}");
    // Sequential QoS 1 publishes, each acked, never exceed it.
    let topic = unique("infl");
    for id in 1..=4u16 {
        c.send(&packets::publish(Version::V5, topic.as_bytes(), 1, false, id, b"s")).await.unwrap();
        c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    }
    // Three unacknowledged at once: the third is over the quota (one write, one read by moat).
    let mut burst = Vec::new();
    for id in 10..13u16 {
        burst.extend(packets::publish(Version::V5, topic.as_bytes(), 2, false, id, b"b"));
    }
    c.send(&burst).await.unwrap();
    let closed = c.read_until_closed(WAIT).await.expect("closed");
    assert_eq!(
        closed.packets.iter().filter_map(RawPacket::disconnect_reason).collect::<Vec<_>>(),
        vec![0x93],
        "DISCONNECT receive maximum exceeded: {:?}",
        closed.packets
    );
    // Moat closes its upstream side after delivering what was queued: count once it has.
    assert!(env.tap.wait_closed_count(1, WAIT).await, "upstream connection not closed");
    let forwarded = env.tap.all_packets().iter().filter(|p| p.packet_type() == packets::PUBLISH).count();
    assert_eq!(forwarded, 4 + 2, "the PUBLISH over the quota reached the broker");
    assert_eq!(metric(&env, "max_inflight").await, 1);
    // 3.1.1: closed without an answer.
    let mut c = env.raw_connected(Version::V311, &unique("infl")).await;
    let mut burst = Vec::new();
    for id in 10..13u16 {
        burst.extend(packets::publish(Version::V311, topic.as_bytes(), 1, false, id, b"c"));
    }
    c.send(&burst).await.unwrap();
    c.read_until_closed(WAIT).await.expect("3.1.1 closed");
    assert_eq!(metric(&env, "max_inflight").await, 2);
}

#[tokio::test]
async fn keep_alive_bounds() {
    let env = env().await;
    // v5 above the maximum: clamped, told as Server Keep Alive, and the broker sees the same.
    let mut long = Connect::new(Version::V5, &unique("ka"));
    long.keep_alive = 500;
    let ack = connack(&env, &long).await;
    assert_eq!(ack.connack_code(), Some(0));
    let props = ack.v5_connack_properties().expect("properties");
    assert!(props.contains(&(0x13, vec![0, 100])), "Server Keep Alive 100: {props:?}");
    // v5 below the minimum: raised.
    let mut short = Connect::new(Version::V5, &unique("ka"));
    short.keep_alive = 2;
    let props = connack(&env, &short).await.v5_connack_properties().expect("properties");
    assert!(props.contains(&(0x13, vec![0, 10])), "Server Keep Alive 10: {props:?}");
    let keep_alives: Vec<u16> = env
        .tap
        .all_packets()
        .iter()
        .filter(|p| p.packet_type() == packets::CONNECT)
        .map(|p| u16::from_be_bytes([p.body[8], p.body[9]]))
        .collect();
    assert_eq!(keep_alives, vec![100, 10], "the broker enforces the clamped keep-alive");
    // 3.1.1 above the maximum (and 0 = none) cannot be told: refused with return code 2.
    for ka in [500, 0] {
        let mut v3 = Connect::new(Version::V311, &unique("ka"));
        v3.keep_alive = ka;
        let ack = connack(&env, &v3).await;
        assert_eq!(ack.connack_code(), Some(0x02), "keep-alive {ka}: {}", ack.describe());
    }
    assert_eq!(env.tap.connections().len(), 2, "refused 3.1.1 clients reached the broker");
    assert_eq!(metric(&env, "keepalive_max").await, 2);
    // 3.1.1 below the minimum: accepted (raising it is harmless).
    let mut v3 = Connect::new(Version::V311, &unique("ka"));
    v3.keep_alive = 2;
    assert_eq!(connack(&env, &v3).await.connack_code(), Some(0));
}

/// A real client library (rumqttc v5) reads the Receive Maximum moat announces and keeps to it:
/// 20 concurrent QoS 1 publishes all arrive, and the session is never cut for exceeding it.
#[tokio::test]
async fn rumqttc_keeps_to_the_announced_receive_maximum() {
    let env = env().await;
    let topic = unique("rq");
    let client =
        moat_e2e::v5::Client::connect(env.v5_options(&unique("rq"), env.tls())).await.expect("connect");
    let sends = (0..20u8).map(|i| client.publish(&topic, moat_e2e::QoS::AtLeastOnce, false, vec![i]));
    for r in futures_join_all(sends).await {
        r.expect("every publish acknowledged");
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.sub.messages().iter().filter(|m| m.topic == topic).count() < 20 {
        assert!(tokio::time::Instant::now() < deadline, "messages lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&env, "max_inflight").await, 0, "a well-behaved client was counted over the quota");
    // And a SUBSCRIBE over max_subscriptions is refused to the library too.
    client.subscribe("r/1", moat_e2e::QoS::AtMostOnce).await.expect("first");
    client.subscribe("r/2", moat_e2e::QoS::AtMostOnce).await.expect("second");
    let third = client.subscribe("r/3", moat_e2e::QoS::AtMostOnce).await;
    assert!(format!("{third:?}").contains("QuotaExceeded"), "{third:?}");
}

/// Polls every future to completion concurrently (no extra dependency for join_all).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut handles: Vec<_> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in handles.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
