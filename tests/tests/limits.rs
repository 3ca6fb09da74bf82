//! `limits.max_subscribe_filters`: a SUBSCRIBE carrying more filters is refused (v5 DISCONNECT
//! 0x97 quota exceeded) and never reaches the broker; one within the limit goes through.

use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::policy::subscribe_many;
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, ANONYMOUS_AUTH};

const WAIT: Duration = Duration::from_secs(10);

async fn env() -> Env {
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}limits:\n  max_subscribe_filters: 2\n")),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn subscribe_with_too_many_filters_is_refused() {
    let env = env().await;
    let mut c = env.raw_connected(Version::V5, &unique("limits")).await;
    c.send(&subscribe_many(Version::V5, 1, &[("a/1", 0), ("a/2", 0)])).await.unwrap();
    let p = c.read_packet(WAIT).await.unwrap().expect("SUBACK");
    assert_eq!(p.packet_type(), packets::SUBACK, "{}", p.describe());

    c.send(&subscribe_many(Version::V5, 2, &[("b/1", 0), ("b/2", 0), ("b/3", 0)])).await.unwrap();
    let p = c.read_packet(WAIT).await.unwrap().expect("DISCONNECT");
    assert_eq!(p.disconnect_reason(), Some(0x97), "{}", p.describe());
    assert!(c.read_packet(WAIT).await.unwrap().is_none(), "connection stays open");
    let subscribes = env.tap.all_packets().iter().filter(|p| p.packet_type() == packets::SUBSCRIBE).count();
    assert_eq!(subscribes, 1, "the refused SUBSCRIBE reached the broker: {:?}", env.tap.summary());
}

/// Raw TLS clients that completed CONNECT/CONNACK through moat.
async fn connected_clients(env: &Env, n: usize) -> Vec<moat_e2e::RawClient> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(env.raw_connected(Version::V311, &unique("cap")).await);
    }
    out
}

#[tokio::test]
async fn connections_per_ip_are_capped_before_tls() {
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}limits:\n  max_connections_per_ip: 2\n")),
        ..Default::default()
    })
    .await;
    let mut held = connected_clients(&env, 2).await;
    assert!(
        moat_e2e::RawClient::connect(env.moat.port, env.tls()).await.is_err(),
        "a third connection from 127.0.0.1 completed TLS"
    );
    // Freeing a slot lets the next one in.
    held.pop();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if moat_e2e::RawClient::connect(env.moat.port, env.tls()).await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the freed slot was never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
    assert!(m.body.contains("reason=\"connection_limit_per_ip\""), "no denial metric");
}

#[tokio::test]
async fn listener_connection_cap() {
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        listener_extra: Some("    max_connections: 1\n".to_string()),
        ..Default::default()
    })
    .await;
    // The harness's readiness probe (a bare TCP connect) holds the only slot until moat sees it
    // close during the TLS handshake: wait for that before taking the slot.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let m = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
        if m.body.contains("moat_connections_active{listener=\"mqtts\"} 0") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the readiness probe's slot was never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _held = connected_clients(&env, 1).await;
    assert!(
        moat_e2e::RawClient::connect(env.moat.port, env.tls()).await.is_err(),
        "a second connection to a listener capped at 1 completed TLS"
    );
}

/// `limits.publish_rate`: a client that sends 45 QoS 1 PUBLISHes at once is slowed to the rate by
/// backpressure (moat stops reading), and every message arrives: nothing is dropped.
#[tokio::test]
async fn publish_rate_is_enforced_by_backpressure_without_loss() {
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}limits:\n  publish_rate: \"20/s, burst 5\"\n")),
        ..Default::default()
    })
    .await;
    let topic = unique("rated");
    let mut c = env.raw_connected(Version::V311, &unique("rate")).await;
    let mut burst = Vec::new();
    for id in 1..=45u16 {
        burst.extend(packets::publish(Version::V311, topic.as_bytes(), 1, false, id, &id.to_be_bytes()));
    }
    let started = std::time::Instant::now();
    c.send(&burst).await.unwrap();
    for _ in 0..45 {
        c.expect_packet(packets::PUBACK, Duration::from_secs(15)).await.expect("every PUBLISH acknowledged");
    }
    let took = started.elapsed();
    // 5 at once, then 40 at 20/s: at least 2 s (a little slack for timer granularity).
    assert!(took >= Duration::from_millis(1800), "45 PUBLISHes went through in {took:?}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.sub.messages().iter().filter(|m| m.topic == topic).count() < 45 {
        assert!(tokio::time::Instant::now() < deadline, "messages lost under rate limiting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
