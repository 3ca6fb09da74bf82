//! Framing and stream robustness through moat: byte-by-byte trickle, many packets in one
//! write, pipelined load in order, many concurrent clients, unsubscribe, v5 properties and
//! topic aliases, JSON logs.

use std::time::Duration;

use moat_e2e::mqtt::{Ev, EVENT_TIMEOUT};
use moat_e2e::packets::{self, publish, publish_body, Version};
use moat_e2e::{unique, v311, v5, Env, MoatOptions, QoS};

#[tokio::test]
async fn trickled_byte_by_byte_packets_are_reassembled() {
    let env = Env::start().await;
    for v in [Version::V311, Version::V5] {
        let topic = unique("trickle");
        let mut c = env.raw().await;
        let bytes = [packets::connect(v, &unique("t")), publish(v, topic.as_bytes(), 1, false, 7, b"slowly")]
            .concat();
        for b in &bytes {
            c.send(std::slice::from_ref(b)).await.unwrap(); // one TLS record per byte
        }
        let ack = c.expect_packet(packets::CONNACK, EVENT_TIMEOUT).await.unwrap();
        assert_eq!(ack.connack_code(), Some(0));
        let puback = c.expect_packet(packets::PUBACK, EVENT_TIMEOUT).await.unwrap();
        assert_eq!(&puback.body[..2], &[0, 7]);
        env.sub.wait_for(&topic, b"slowly", EVENT_TIMEOUT).await.unwrap();
    }
}

#[tokio::test]
async fn many_packets_in_one_write_are_all_processed() {
    let env = Env::start().await;
    for v in [Version::V311, Version::V5] {
        let topic = unique("burst");
        let mut c = env.raw().await;
        let burst = [
            packets::connect(v, &unique("b")),
            packets::subscribe(v, 1, topic.as_bytes(), 1),
            publish(v, topic.as_bytes(), 1, false, 2, b"one"),
            publish(v, topic.as_bytes(), 0, false, 0, b"two"),
            packets::pingreq(),
        ]
        .concat();
        c.send(&burst).await.unwrap();
        let mut types = Vec::new();
        let mut payloads = Vec::new();
        while types.len() < 6 {
            let p = c
                .read_packet(EVENT_TIMEOUT)
                .await
                .unwrap_or_else(|e| panic!("{v:?}: got only {types:?}: {e}\n{}", env.moat.logs()))
                .unwrap_or_else(|| panic!("{v:?}: closed after {types:?}"));
            if p.packet_type() == packets::PUBLISH {
                payloads.push(p.body[p.body.len() - 3..].to_vec());
                if p.flags() & 0x06 != 0 {
                    // QoS 1 delivery to us: acknowledge it.
                    let pid = {
                        let tl = u16::from_be_bytes([p.body[0], p.body[1]]) as usize;
                        [p.body[2 + tl], p.body[3 + tl]]
                    };
                    c.send(&[0x40, 0x02, pid[0], pid[1]]).await.unwrap();
                }
            }
            types.push(packets::type_name(p.packet_type()));
        }
        types.sort();
        let mut want = vec!["CONNACK", "SUBACK", "PUBACK", "PINGRESP", "PUBLISH", "PUBLISH"];
        want.sort();
        assert_eq!(types, want, "{v:?}");
        assert_eq!(payloads, vec![b"one".to_vec(), b"two".to_vec()], "{v:?}: own messages out of order");
        env.sub.wait_for(&topic, b"one", EVENT_TIMEOUT).await.unwrap();
        env.sub.wait_for(&topic, b"two", EVENT_TIMEOUT).await.unwrap();
    }
}

#[tokio::test]
async fn pipelined_qos1_stream_arrives_complete_and_in_order() {
    let env = Env::start().await;
    let topic = unique("stream");
    let sub = v311::Client::connect(env.v311_options(&unique("ssub"), env.tls())).await.unwrap();
    sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let publ = v5::Client::connect(env.v5_options(&unique("spub"), env.tls())).await.unwrap();
    const N: usize = 1000;
    for i in 0..N {
        let payload = format!("{i:06}-{}", "x".repeat(i % 200));
        publ.client
            .publish(&topic, v5::conv_qos(QoS::AtLeastOnce), false, payload.into_bytes())
            .await
            .unwrap();
    }
    sub.recv_publish(Duration::from_secs(30), |p| p.payload.starts_with(format!("{:06}-", N - 1).as_bytes()))
        .await
        .unwrap_or_else(|e| panic!("{e}; got {}\n{}", sub.publishes().len(), env.moat.logs()));
    let got: Vec<usize> = sub
        .publishes()
        .iter()
        .map(|p| std::str::from_utf8(&p.payload[..6]).unwrap().parse().unwrap())
        .collect();
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "messages lost, duplicated or reordered");
    for p in sub.publishes() {
        let i: usize = std::str::from_utf8(&p.payload[..6]).unwrap().parse().unwrap();
        assert_eq!(p.payload.len(), 7 + i % 200, "payload {i} altered");
    }
}

#[tokio::test]
async fn many_concurrent_clients() {
    let env = Env::start().await;
    let topic = unique("crowd");
    let sub = v5::Client::connect(env.v5_options(&unique("csub"), env.tls())).await.unwrap();
    sub.subscribe(&format!("{topic}/#"), QoS::AtLeastOnce).await.unwrap();
    const N: usize = 40;
    let mut tasks = Vec::new();
    for i in 0..N {
        let opts = env.v311_options(&unique("crowd"), env.tls());
        let t = format!("{topic}/{i}");
        tasks.push(tokio::spawn(async move {
            let c = v311::Client::connect(opts).await?;
            c.publish(&t, QoS::AtLeastOnce, false, format!("hi {i}").into_bytes()).await?;
            c.disconnect().await;
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t).await.expect("client task hung").unwrap().unwrap();
    }
    for i in 0..N {
        let t = format!("{topic}/{i}");
        sub.recv_publish(EVENT_TIMEOUT, |p| p.topic.as_ref() == t.as_bytes()).await.unwrap();
    }
    assert_eq!(sub.publishes().len(), N);
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let env = Env::start().await;
    let topic = unique("unsub");
    let c = v5::Client::connect(env.v5_options(&unique("u"), env.tls())).await.unwrap();
    c.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    c.publish(&topic, QoS::AtLeastOnce, false, b"before".to_vec()).await.unwrap();
    c.recv_publish(EVENT_TIMEOUT, |p| p.payload.as_ref() == b"before").await.unwrap();
    let from = c.log.len();
    c.client.unsubscribe(&topic).await.unwrap();
    let r = c
        .log
        .wait_for(from, EVENT_TIMEOUT, |e| {
            matches!(e, Ev::Event(v5::Event::Incoming(v5::Packet::UnsubAck(_))))
        })
        .await;
    assert!(r.is_some(), "no UNSUBACK through moat");
    c.publish(&topic, QoS::AtLeastOnce, false, b"after".to_vec()).await.unwrap();
    env.sub.wait_for(&topic, b"after", EVENT_TIMEOUT).await.unwrap();
    env.sub.barrier().await.unwrap();
    c.publish(&topic, QoS::AtLeastOnce, false, b"marker".to_vec()).await.unwrap();
    env.sub.wait_for(&topic, b"marker", EVENT_TIMEOUT).await.unwrap();
    assert!(
        !c.publishes().iter().any(|p| p.payload.as_ref() != b"before"),
        "delivered after UNSUBSCRIBE: {:?}",
        c.publishes()
    );
}

#[tokio::test]
async fn v5_publish_properties_survive_the_proxy() {
    use rumqttc::v5::mqttbytes::v5::PublishProperties;
    let env = Env::start().await;
    let topic = unique("props");
    let sub = v5::Client::connect(env.v5_options(&unique("psub"), env.tls())).await.unwrap();
    sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let publ = v5::Client::connect(env.v5_options(&unique("ppub"), env.tls())).await.unwrap();
    let props = PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(3600),
        response_topic: Some(format!("{topic}/reply")),
        correlation_data: Some(bytes::Bytes::from_static(b"\x00corr\xff")),
        user_properties: vec![
            ("k1".into(), "v1".into()),
            ("k1".into(), "v2".into()),
            ("ü".into(), "∆".into()),
        ],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    publ.client
        .publish_with_properties(&topic, v5::conv_qos(QoS::AtLeastOnce), false, b"{\"a\":1}".to_vec(), props)
        .await
        .unwrap();
    let got = sub.recv_publish(EVENT_TIMEOUT, |p| p.topic.as_ref() == topic.as_bytes()).await.unwrap();
    let p = got.properties.expect("properties stripped");
    assert_eq!(p.payload_format_indicator, Some(1));
    assert!(
        p.message_expiry_interval.is_some_and(|e| e > 3500 && e <= 3600),
        "{:?}",
        p.message_expiry_interval
    );
    assert_eq!(p.response_topic.as_deref(), Some(format!("{topic}/reply").as_str()));
    assert_eq!(p.correlation_data.as_deref(), Some(&b"\x00corr\xff"[..]));
    assert_eq!(
        p.user_properties,
        vec![("k1".to_string(), "v1".to_string()), ("k1".into(), "v2".into()), ("ü".into(), "∆".into())]
    );
    assert_eq!(p.content_type.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn v5_topic_alias_honours_connack_maximum() {
    let env = Env::start().await;
    let topic = unique("alias");
    let mut c = env.raw().await;
    c.send(&packets::connect(Version::V5, &unique("al"))).await.unwrap();
    let ack = c.expect_packet(packets::CONNACK, EVENT_TIMEOUT).await.unwrap();
    assert_eq!(ack.connack_code(), Some(0));
    let props_list = ack.v5_connack_properties().expect("parse CONNACK properties");
    let max = props_list
        .iter()
        .find(|(id, _)| *id == 0x22)
        .map(|(_, v)| u16::from_be_bytes([v[0], v[1]]))
        .unwrap_or(0);
    let with_alias = |t: &[u8], payload: &[u8]| {
        packets::packet(0x30, &publish_body(Version::V5, t, None, &[0x23, 0x00, 0x01], payload))
    };
    if max >= 1 {
        // Advertised: the alias must work end to end.
        c.send(&with_alias(topic.as_bytes(), b"one")).await.unwrap();
        c.send(&with_alias(b"", b"two")).await.unwrap();
        env.sub.wait_for(&topic, b"one", EVENT_TIMEOUT).await.unwrap();
        env.sub.wait_for(&topic, b"two", EVENT_TIMEOUT).await.unwrap_or_else(|e| {
            panic!("aliased PUBLISH lost (CONNACK topic alias maximum {max}): {e}\n{}", env.moat.logs())
        });
    } else {
        // Not advertised: using one is a protocol error (0x94 Topic Alias invalid).
        c.send(&with_alias(topic.as_bytes(), b"one")).await.unwrap();
        let closed = c.read_until_closed(Duration::from_secs(5)).await.unwrap();
        let reasons: Vec<_> = closed.packets.iter().filter_map(|p| p.disconnect_reason()).collect();
        assert!(matches!(reasons.as_slice(), [0x94] | [0x82]), "{:?}", closed.packets);
        env.assert_upstream_only(&[packets::CONNECT, packets::DISCONNECT], "alias without maximum").await;
    }
}

#[tokio::test]
async fn json_log_format_emits_json_lines() {
    let env = Env::start_with(MoatOptions { log_format: "json".into(), ..Default::default() }).await;
    let c = v311::Client::connect(env.v311_options(&unique("j"), env.tls())).await.unwrap();
    c.disconnect().await;
    let _ = env.tap.wait_all_closed(Duration::from_secs(3)).await;
    let stderr = env.moat.proc.stderr();
    let stdout = env.moat.proc.stdout();
    let lines: Vec<_> = stderr.lines().chain(stdout.lines()).filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log output at all");
    for l in &lines {
        let l = l.trim();
        assert!(l.starts_with('{') && l.ends_with('}'), "not a JSON log line: {l}");
    }
}
