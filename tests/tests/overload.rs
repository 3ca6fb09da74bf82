//! Overload protection: a slow consumer is disconnected once its outbound queue stays full past
//! `limits.slow_consumer_timeout`, while a client that reads keeps flowing.

use std::net::SocketAddr;
use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, RawClient, ANONYMOUS_AUTH};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(10);

async fn metric(env: &Env, name_and_labels: &str) -> u64 {
    let m = moat_e2e::http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
    let prefix = format!("{name_and_labels} ");
    m.body.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Reads one whole MQTT packet's worth of bytes (enough for CONNACK / SUBACK here).
async fn read_packet<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> packets::RawPacket {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        if let Ok(Some((p, _))) = packets::parse_one(&buf) {
            return p;
        }
        let n = tokio::time::timeout(WAIT, s.read(&mut chunk)).await.expect("read").expect("read");
        assert!(n > 0, "closed early");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn slow_consumer_is_disconnected_and_a_reader_is_not() {
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}limits:\n  slow_consumer_timeout: 1s\n")),
        ..Default::default()
    })
    .await;
    let topic = unique("slow");

    // The slow consumer: a small receive buffer, subscribes, then never reads again.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(SocketAddr::from(([127, 0, 0, 1], env.moat.port))).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut slow = TlsConnector::from(env.tls()).connect(name, tcp).await.expect("TLS");
    slow.write_all(&packets::connect(Version::V5, &unique("slow"))).await.unwrap();
    assert_eq!(read_packet(&mut slow).await.connack_code(), Some(0));
    slow.write_all(&packets::subscribe(Version::V5, 1, topic.as_bytes(), 0)).await.unwrap();
    assert_eq!(read_packet(&mut slow).await.packet_type(), packets::SUBACK);

    // A client that reads: it must keep its session.
    let mut reader = env.raw_connected(Version::V311, &unique("reader")).await;
    reader.send(&packets::subscribe(Version::V311, 1, topic.as_bytes(), 0)).await.unwrap();
    reader.expect_packet(packets::SUBACK, WAIT).await.unwrap();
    let reading = tokio::spawn(async move {
        let mut n = 0;
        while n < 60 {
            match reader.read_packet(WAIT).await {
                Ok(Some(p)) if p.packet_type() == packets::PUBLISH => n += 1,
                Ok(Some(_)) => {}
                other => panic!("reader lost its session after {n} messages: {other:?}"),
            }
        }
        reader
    });

    // 60 × 100 KB straight into the broker: far more than moat queues for one client (64 KiB)
    // plus what the slow client's socket buffers hold.
    let mut publisher = TcpStream::connect(("127.0.0.1", env.broker.port)).await.unwrap();
    publisher.write_all(&packets::connect(Version::V311, &unique("pub"))).await.unwrap();
    let payload = vec![b'x'; 100_000];
    for _ in 0..60 {
        publisher
            .write_all(&packets::publish(Version::V311, topic.as_bytes(), 0, false, 0, &payload))
            .await
            .unwrap();
    }

    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&env, "moat_quota_exceeded_total{quota=\"slow_consumer_timeout\"}").await < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow consumer never disconnected\n{}",
            env.moat.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Draining the slow client now ends in the close (after whatever was already buffered).
    let mut sink = vec![0u8; 64 * 1024];
    let drained = tokio::time::timeout(WAIT, async {
        loop {
            match slow.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the slow consumer's connection was not closed");
    let mut reader = reading.await.expect("the reading client received every message");
    reader.send(&packets::pingreq()).await.unwrap();
    reader.expect_packet(packets::PINGRESP, WAIT).await.expect("the reading client is still connected");
    assert_eq!(metric(&env, "moat_quota_exceeded_total{quota=\"slow_consumer_timeout\"}").await, 1);
}

fn overload_env_opts(overload: &str) -> MoatOptions {
    MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}overload:\n{overload}")),
        ..Default::default()
    }
}

#[tokio::test]
async fn connection_overload_refuses_new_clients_before_tls_and_recovers() {
    let env = Env::start_with(overload_env_opts("  max_connections: 2\n")).await;
    // The harness's readiness probe (a bare TCP connect) counts until moat sees it close.
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&env, "moat_connections_active{listener=\"mqtts\"}").await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the readiness probe never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let topic = unique("ovl");
    let mut a = env.raw_connected(Version::V311, &unique("ovl")).await;
    let b = env.raw_connected(Version::V311, &unique("ovl")).await;
    assert!(RawClient::connect(env.moat.port, env.tls()).await.is_err(), "a third client completed TLS");
    // Existing sessions keep flowing.
    a.send(&packets::publish(Version::V311, topic.as_bytes(), 1, false, 1, b"still")).await.unwrap();
    a.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK while overloaded");
    env.sub.wait_for(&topic, b"still", WAIT).await.expect("delivered while overloaded");
    assert!(metric(&env, "moat_overload_refusals_total{kind=\"connections\"}").await >= 1);
    // One session ends: new clients are admitted again, by themselves.
    b.shutdown().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut c) = RawClient::connect(env.moat.port, env.tls()).await {
            c.send(&packets::connect(Version::V311, &unique("ovl"))).await.unwrap();
            if let Ok(ack) = c.expect_packet(packets::CONNACK, WAIT).await {
                assert_eq!(ack.connack_code(), Some(0));
                break;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(env.tap.connections().len(), 3, "the refused client reached the broker");
}

#[tokio::test]
async fn memory_overload_refuses_before_tls() {
    // 1 MiB is below any real process: every new connection is refused, and nothing is dialed.
    let env = Env::start_with(overload_env_opts("  max_memory: 1MiB\n")).await;
    assert!(
        RawClient::connect(env.moat.port, env.tls()).await.is_err(),
        "TLS completed over the memory limit"
    );
    assert!(metric(&env, "moat_overload_refusals_total{kind=\"memory\"}").await >= 1);
    assert!(metric(&env, "moat_resident_memory_bytes").await > 1 << 20, "RSS gauge not exported");
    env.assert_no_upstream_bytes("memory overload").await;
}

/// A minimal broker on `listener`: answers every CONNECT with a v5 CONNACK success, holds the
/// connection until the peer closes (health probes close without sending anything).
fn fake_broker(listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                    let _ = s.write_all(&[0x20, 0x03, 0x00, 0x00, 0x00]).await;
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    })
}

#[tokio::test]
async fn unhealthy_upstream_refuses_with_server_busy_and_recovers() {
    let pki = moat_e2e::Pki::new();
    let port = moat_e2e::net::ClosedPort::new();
    let opts = MoatOptions {
        upstream: format!("127.0.0.1:{}", port.port),
        upstream_connect_timeout: Some("500ms".into()),
        ..overload_env_opts("  upstream_unhealthy: true\n  check_interval: 200ms\n")
    };
    let moat = moat_e2e::Moat::start(&pki, &opts).await;
    let connack = |id: String| {
        let pki = &pki;
        let port = moat.port;
        async move {
            let mut c = RawClient::connect(port, pki.client_config()).await.expect("TLS");
            c.send(&packets::connect(Version::V5, &id)).await.unwrap();
            c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK").connack_code()
        }
    };
    // The first client finds the upstream down (0x88 server unavailable, after a failed dial);
    // later ones are told 0x89 server busy without a dial.
    assert_eq!(connack(unique("up")).await, Some(0x88));
    assert_eq!(connack(unique("up")).await, Some(0x89));
    assert_eq!(connack(unique("up")).await, Some(0x89));
    let admin = moat.admin_port;
    let m = moat_e2e::http::get(admin, "/metrics").await.expect("metrics");
    assert!(m.body.contains("moat_overload_refusals_total{kind=\"upstream\"} 2"), "refusal metric");
    // The broker comes back: the monitor's probe clears the mark within a check interval or so.
    let broker = fake_broker(port.listen());
    let back = std::time::Instant::now();
    loop {
        if connack(unique("up")).await == Some(0) {
            break;
        }
        assert!(back.elapsed() < WAIT, "never recovered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("upstream recovery noticed after {:?}", back.elapsed());
    broker.abort();
}
