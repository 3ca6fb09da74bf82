//! Rate limits: PUBLISH messages/s and bytes/s per connection, per listener and per node, all
//! enforced by backpressure (nothing dropped, every QoS 1 message arrives), and connection
//! attempts per listener and per source IP, refused before the TLS handshake.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moat_e2e::packets::{self, Version};
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, RawClient, ANONYMOUS_AUTH};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const WAIT: Duration = Duration::from_secs(15);

async fn env_with(limits: &str) -> Env {
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}limits:\n{limits}")),
        tls_handshake_timeout: Some("1s".into()),
        ..Default::default()
    })
    .await
}

/// Sends `count` QoS 1 PUBLISHes (ids from `first_id`) in one write and waits for every PUBACK.
async fn publish_all(c: &mut RawClient, topic: &str, first_id: u16, count: u16, payload_len: usize) {
    let mut burst = Vec::new();
    for i in 0..count {
        let id = first_id + i;
        let mut payload = id.to_be_bytes().to_vec();
        payload.resize(payload_len.max(2), b'p');
        burst.extend(packets::publish(Version::V311, topic.as_bytes(), 1, false, id, &payload));
    }
    c.send(&burst).await.expect("send burst");
    for _ in 0..count {
        c.expect_packet(packets::PUBACK, WAIT).await.expect("every PUBLISH acknowledged");
    }
}

/// Waits until the direct subscriber has `count` distinct messages on `topic`.
async fn delivered(env: &Env, topic: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut ids: Vec<Vec<u8>> =
            env.sub.messages().iter().filter(|m| m.topic == topic).map(|m| m.payload[..2].to_vec()).collect();
        ids.sort();
        ids.dedup();
        if ids.len() >= count {
            assert_eq!(ids.len(), count, "more distinct messages than sent");
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} of {count} messages arrived", ids.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_held_to_100_per_second_without_losing_a_qos1_message() {
    let env = env_with("  publish_rate: \"100/s, burst 10\"\n").await;
    let topic = unique("r100");
    let mut c = env.raw_connected(Version::V311, &unique("r100")).await;
    let started = Instant::now();
    publish_all(&mut c, &topic, 1, 300, 16).await;
    let took = started.elapsed();
    delivered(&env, &topic, 300).await;
    let rate = 300.0 / took.as_secs_f64();
    eprintln!("300 QoS 1 PUBLISHes at publish_rate 100/s (burst 10): {took:?}, {rate:.1} msg/s");
    // 10 at once, then 290 at 100/s: 2.9 s; a loaded 2-core machine may add some.
    assert!(took >= Duration::from_millis(2800), "rate not held: 300 messages in {took:?}");
    assert!(took <= Duration::from_millis(4500), "throttled far below the rate: {took:?}");
}

#[tokio::test]
async fn bytes_per_second_per_connection() {
    // 40 messages of ~1 KB at 20 KB/s; the byte burst is at least one max-size packet (1 KiB).
    let env = env_with("  max_packet_size: 1100\n  publish_bytes_rate: \"20KB/s, burst 2KB\"\n").await;
    let topic = unique("bytes");
    let mut c = env.raw_connected(Version::V311, &unique("bytes")).await;
    let started = Instant::now();
    publish_all(&mut c, &topic, 1, 40, 1000).await;
    let took = started.elapsed();
    delivered(&env, &topic, 40).await;
    let bytes = 40.0 * (1000.0 + 2.0 + 2.0 + topic.len() as f64 + 3.0);
    eprintln!(
        "40 KB at publish_bytes_rate 20KB/s: {took:?}, {:.1} KB/s",
        bytes / took.as_secs_f64() / 1000.0
    );
    assert!(took >= Duration::from_millis(1800), "byte rate not held: {took:?}");
    assert!(took <= Duration::from_millis(4000), "{took:?}");
}

#[tokio::test]
async fn listener_rate_is_shared_by_its_connections() {
    // Each connection alone would be unlimited; together they get 50/s.
    let env = env_with("  listener_publish_rate: \"50/s, burst 5\"\n").await;
    let topic = unique("lst");
    let mut a = env.raw_connected(Version::V311, &unique("lst")).await;
    let mut b = env.raw_connected(Version::V311, &unique("lst")).await;
    let started = Instant::now();
    tokio::join!(publish_all(&mut a, &topic, 1, 50, 8), publish_all(&mut b, &topic, 1001, 50, 8));
    let took = started.elapsed();
    delivered(&env, &topic, 100).await;
    eprintln!("2 × 50 messages at listener_publish_rate 50/s: {took:?}");
    assert!(took >= Duration::from_millis(1800), "listener rate not held: {took:?}");
    assert!(took <= Duration::from_millis(3500), "{took:?}");
}

#[tokio::test]
async fn node_rate_spans_listeners() {
    // Listener `plain` lifts nothing: the node bucket alone holds the TLS and the plaintext
    // listener together to 50/s.
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}limits:\n  node_publish_rate: \"50/s, burst 5\"\n")),
        plaintext_listener: true,
        ..Default::default()
    })
    .await;
    let topic = unique("node");
    let mut a = env.raw_connected(Version::V311, &unique("node")).await;
    let plain_port = env.moat.plain_port.expect("plain listener");
    let mut plain = TcpStream::connect(("127.0.0.1", plain_port)).await.expect("plain connect");
    let started = Instant::now();
    let plain_side = async {
        use tokio::io::AsyncWriteExt;
        plain.write_all(&packets::connect(Version::V311, &unique("node"))).await.unwrap();
        let mut burst = Vec::new();
        for id in 1001..1051u16 {
            let mut payload = id.to_be_bytes().to_vec();
            payload.resize(8, b'p');
            burst.extend(packets::publish(Version::V311, topic.as_bytes(), 1, false, id, &payload));
        }
        plain.write_all(&burst).await.unwrap();
        // CONNACK (4 bytes) + 50 PUBACKs (4 bytes each).
        let mut got = vec![0u8; 4 + 50 * 4];
        tokio::time::timeout(WAIT, plain.read_exact(&mut got)).await.expect("plain acks").unwrap();
    };
    tokio::join!(publish_all(&mut a, &topic, 1, 50, 8), plain_side);
    let took = started.elapsed();
    delivered(&env, &topic, 100).await;
    eprintln!("2 listeners × 50 messages at node_publish_rate 50/s: {took:?}");
    assert!(took >= Duration::from_millis(1800), "node rate not held across listeners: {took:?}");
}

/// A TCP connection from `ip` that moat closes at once (refused before TLS) or keeps open waiting
/// for a ClientHello (accepted). Returns whether it was refused.
async fn refused_from(ip: Ipv4Addr, port: u16) -> bool {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(IpAddr::V4(ip), 0)).expect("bind source address");
    let Ok(mut tcp) = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await else {
        return true;
    };
    let mut byte = [0u8; 1];
    // moat closes a refused connection immediately; an accepted one waits for the ClientHello.
    matches!(tokio::time::timeout(Duration::from_millis(300), tcp.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn connection_rate_per_ip_refuses_before_tls() {
    let env = env_with("  connection_rate_per_ip: \"1/s, burst 2\"\n").await;
    let ip = Ipv4Addr::new(127, 0, 0, 77);
    let mut refused = 0;
    for _ in 0..5 {
        if refused_from(ip, env.moat.port).await {
            refused += 1;
        }
    }
    assert!((2..=3).contains(&refused), "5 attempts within ~1.5 s, burst 2 at 1/s: {refused} refused");
    // Another address is not affected, and a full TLS + MQTT session from it works.
    assert!(!refused_from(Ipv4Addr::new(127, 0, 0, 78), env.moat.port).await);
    let _ok = env.raw_connected(Version::V311, &unique("other")).await;
    let m = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
    assert!(m.body.contains("reason=\"connection_rate_per_ip\""), "no denial metric");
    assert_eq!(env.tap.connections().len(), 1, "only the legitimate client reached the broker");
}

/// Latency of a QoS 1 publish → PUBACK round trip through moat.
async fn round_trip(c: &mut RawClient, topic: &str, id: u16) -> Duration {
    let started = Instant::now();
    c.send(&packets::publish(Version::V311, topic.as_bytes(), 1, false, id, b"lat")).await.unwrap();
    c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    started.elapsed()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

#[tokio::test]
async fn connection_flood_from_many_addresses_leaves_a_live_client_responsive() {
    let env =
        env_with("  connection_rate: \"50/s, burst 50\"\n  connection_rate_per_ip: \"1/s, burst 2\"\n").await;
    let topic = unique("lat");
    let mut legit = env.raw_connected(Version::V311, &unique("legit")).await;
    let mut id = 0u16;
    let mut baseline = Vec::new();
    for _ in 0..50 {
        id += 1;
        baseline.push(round_trip(&mut legit, &topic, id).await);
    }

    // 500 attempts from 100 addresses 127.0.0.2..=101, 5 each, 50 at a time, bounded to 5 s.
    let port = env.moat.port;
    let counts = Arc::new(std::sync::Mutex::new((0usize, 0usize)));
    let flood_started = Instant::now();
    let flood = {
        let counts = counts.clone();
        tokio::spawn(async move {
            let workers = (0..50u8).map(|w| {
                let counts = counts.clone();
                tokio::spawn(async move {
                    for round in 0..10u8 {
                        let ip = Ipv4Addr::new(127, 0, 0, 2 + (w * 2 + round % 2));
                        let refused = refused_from(ip, port).await;
                        let mut c = counts.lock().unwrap();
                        if refused {
                            c.0 += 1;
                        } else {
                            c.1 += 1;
                        }
                    }
                })
            });
            for w in workers.collect::<Vec<_>>() {
                let _ = w.await;
            }
        })
    };
    let mut during = Vec::new();
    while !flood.is_finished() {
        assert!(flood_started.elapsed() < Duration::from_secs(5), "flood not bounded");
        id += 1;
        during.push(round_trip(&mut legit, &topic, id).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let flood_took = flood_started.elapsed();
    let (refused, accepted) = *counts.lock().unwrap();
    let base_p50 = percentile(&mut baseline, 0.5);
    let base_max = percentile(&mut baseline, 1.0);
    let p50 = percentile(&mut during, 0.5);
    let p99 = percentile(&mut during, 0.99);
    let max = percentile(&mut during, 1.0);
    eprintln!(
        "flood: {} attempts in {flood_took:?}: {refused} refused before TLS, {accepted} accepted; \
         legit publish→PUBACK baseline p50 {base_p50:?} max {base_max:?}; during flood ({} samples) \
         p50 {p50:?} p99 {p99:?} max {max:?}",
        refused + accepted,
        during.len()
    );
    assert_eq!(refused + accepted, 500);
    // Listener: 50 at once + 50/s; per IP: 2 at once + 1/s (100 addresses).
    let allowed = 50.0 + 50.0 * flood_took.as_secs_f64() + 5.0;
    assert!(
        (accepted as f64) <= allowed,
        "{accepted} accepted in {flood_took:?}, at most {allowed:.0} allowed"
    );
    assert!(refused >= 200, "the rates refused only {refused} of 500");
    assert!(during.len() >= 5, "too few samples during the flood");
    assert!(p99 < Duration::from_millis(250), "legit client latency under flood: p99 {p99:?}");
    let m = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
    assert!(m.body.contains("reason=\"connection_rate\""), "no listener-rate denial metric");
    assert!(m.body.contains("reason=\"connection_rate_per_ip\""), "no per-IP denial metric");
    // No flood connection got as far as the broker.
    assert_eq!(env.tap.connections().len(), 1, "flood connections reached the broker");
    delivered_count(&env, &topic, usize::from(id)).await;
}

async fn delivered_count(env: &Env, topic: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while env.sub.messages().iter().filter(|m| m.topic == topic).count() < count {
        assert!(tokio::time::Instant::now() < deadline, "latency probes lost");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn listener_override_infinity_lifts_the_global_rate() {
    // Globally 10/s; this listener says `infinity`: 100 messages go through at once.
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}limits:\n  publish_rate: \"10/s, burst 1\"\n")),
        listener_extra: Some("    limits:\n      publish_rate: infinity\n".to_string()),
        ..Default::default()
    })
    .await;
    let topic = unique("inf");
    let mut c = env.raw_connected(Version::V311, &unique("inf")).await;
    let started = Instant::now();
    publish_all(&mut c, &topic, 1, 100, 8).await;
    let took = started.elapsed();
    delivered(&env, &topic, 100).await;
    assert!(took < Duration::from_secs(2), "the global 10/s still applied: {took:?}");
}
