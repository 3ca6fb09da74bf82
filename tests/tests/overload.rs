//! Overload protection: a slow consumer is disconnected once its outbound queue stays full past
//! `limits.slow_consumer_timeout`, while a client that reads keeps flowing.

use std::net::SocketAddr;
use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, ANONYMOUS_AUTH};
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
