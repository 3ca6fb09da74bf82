//! Publish/subscribe through moat (TLS and mTLS) to a real mosquitto, with rumqttc
//! MQTT 3.1.1 and MQTT 5 clients: QoS 0/1/2, retained messages, Wills.
//! Every test checks what the client saw *and* what the broker received.

use std::time::Duration;

use moat_e2e::mqtt::EVENT_TIMEOUT;
use moat_e2e::packets;
use moat_e2e::{payload, unique, v311, v5, ClientAuth, Env, MoatOptions, QoS};

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

fn qnum(q: QoS) -> u8 {
    q as u8
}

async fn env_for(auth: ClientAuth) -> Env {
    Env::start_with(MoatOptions { client_auth: auth, ..Default::default() }).await
}

fn tls_for(env: &Env, auth: ClientAuth) -> std::sync::Arc<rustls::ClientConfig> {
    match auth {
        ClientAuth::Required => env.mtls(),
        _ => env.tls(),
    }
}

async fn roundtrip_v311(auth: ClientAuth) {
    let env = env_for(auth).await;
    let base = unique("rt311");
    let sub = v311::Client::connect(env.v311_options(&unique("sub"), tls_for(&env, auth)))
        .await
        .unwrap_or_else(|e| panic!("subscriber connect through moat: {e}\n{}", env.moat.logs()));
    sub.subscribe(&format!("{base}/#"), QoS::ExactlyOnce).await.unwrap();
    let publ = v311::Client::connect(env.v311_options(&unique("pub"), tls_for(&env, auth))).await.unwrap();

    for q in QOS {
        let topic = format!("{base}/q{}", qnum(q));
        let data = payload(4096 + qnum(q) as usize, qnum(q));
        publ.publish(&topic, q, false, data.clone()).await.unwrap();
        let got = sub
            .recv_publish(EVENT_TIMEOUT, |p| p.topic == topic)
            .await
            .unwrap_or_else(|e| panic!("{q:?}: {e}\n{}", env.moat.logs()));
        assert_eq!(got.payload.as_ref(), &data[..], "{q:?}: payload altered through moat");
        assert_eq!(got.qos, q, "{q:?}: delivered at wrong QoS");
        assert!(!got.retain);
        let at_broker = env.sub.wait_for(&topic, &data, EVENT_TIMEOUT).await.unwrap();
        assert_eq!(at_broker.qos, q, "{q:?}: broker got the publish at the wrong QoS");
    }
    // A large payload spanning many TLS records.
    let big = payload(300_000, 7);
    let topic = format!("{base}/big");
    publ.publish(&topic, QoS::AtLeastOnce, false, big.clone()).await.unwrap();
    let got = sub.recv_publish(EVENT_TIMEOUT, |p| p.topic == topic).await.unwrap();
    assert_eq!(got.payload.len(), big.len());
    assert!(got.payload.as_ref() == &big[..], "large payload altered");
    env.sub.wait_for(&topic, &big, EVENT_TIMEOUT).await.unwrap();
    // Exactly one copy of each at the subscriber.
    assert_eq!(sub.publishes().len(), 4, "duplicates or extras: {:?}", sub.publishes());
    publ.disconnect().await;
    sub.disconnect().await;
}

async fn roundtrip_v5(auth: ClientAuth) {
    let env = env_for(auth).await;
    let base = unique("rt5");
    let sub = v5::Client::connect(env.v5_options(&unique("sub"), tls_for(&env, auth)))
        .await
        .unwrap_or_else(|e| panic!("subscriber connect through moat: {e}\n{}", env.moat.logs()));
    sub.subscribe(&format!("{base}/#"), QoS::ExactlyOnce).await.unwrap();
    let publ = v5::Client::connect(env.v5_options(&unique("pub"), tls_for(&env, auth))).await.unwrap();

    for q in QOS {
        let topic = format!("{base}/q{}", qnum(q));
        let data = payload(4096 + qnum(q) as usize, qnum(q));
        publ.publish(&topic, q, false, data.clone()).await.unwrap();
        let got = sub
            .recv_publish(EVENT_TIMEOUT, |p| p.topic.as_ref() == topic.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{q:?}: {e}\n{}", env.moat.logs()));
        assert_eq!(got.payload.as_ref(), &data[..], "{q:?}: payload altered through moat");
        assert_eq!(got.qos, v5::conv_qos(q), "{q:?}: delivered at wrong QoS");
        assert!(!got.retain);
        let at_broker = env.sub.wait_for(&topic, &data, EVENT_TIMEOUT).await.unwrap();
        assert_eq!(at_broker.qos, q);
    }
    let big = payload(300_000, 9);
    let topic = format!("{base}/big");
    publ.publish(&topic, QoS::ExactlyOnce, false, big.clone()).await.unwrap();
    let got = sub.recv_publish(EVENT_TIMEOUT, |p| p.topic.as_ref() == topic.as_bytes()).await.unwrap();
    assert!(got.payload.as_ref() == &big[..], "large payload altered");
    env.sub.wait_for(&topic, &big, EVENT_TIMEOUT).await.unwrap();
    assert_eq!(sub.publishes().len(), 4, "duplicates or extras");
    publ.disconnect().await;
    sub.disconnect().await;
}

#[tokio::test]
async fn v311_tls_qos012_roundtrip() {
    roundtrip_v311(ClientAuth::None).await;
}

#[tokio::test]
async fn v311_mtls_qos012_roundtrip() {
    roundtrip_v311(ClientAuth::Required).await;
}

#[tokio::test]
async fn v5_tls_qos012_roundtrip() {
    roundtrip_v5(ClientAuth::None).await;
}

#[tokio::test]
async fn v5_mtls_qos012_roundtrip() {
    roundtrip_v5(ClientAuth::Required).await;
}

#[tokio::test]
async fn v311_retained_message_reaches_later_subscriber() {
    let env = Env::start().await;
    let topic = unique("retained311");
    let data = b"retained-payload-311".to_vec();
    let publ = v311::Client::connect(env.v311_options(&unique("pub"), env.tls())).await.unwrap();
    publ.publish(&topic, QoS::AtLeastOnce, true, data.clone()).await.unwrap();
    env.sub.wait_for(&topic, &data, EVENT_TIMEOUT).await.unwrap();
    publ.disconnect().await;

    let sub = v311::Client::connect(env.v311_options(&unique("late"), env.tls())).await.unwrap();
    sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let got = sub.recv_publish(EVENT_TIMEOUT, |p| p.topic == topic).await.unwrap();
    assert!(got.retain, "retained message delivered without the retain flag");
    assert_eq!(got.payload.as_ref(), &data[..]);
    assert_eq!(got.qos, QoS::AtLeastOnce);
}

#[tokio::test]
async fn v5_retained_message_reaches_later_subscriber() {
    let env = Env::start().await;
    let topic = unique("retained5");
    let data = b"retained-payload-5".to_vec();
    let publ = v5::Client::connect(env.v5_options(&unique("pub"), env.tls())).await.unwrap();
    publ.publish(&topic, QoS::ExactlyOnce, true, data.clone()).await.unwrap();
    env.sub.wait_for(&topic, &data, EVENT_TIMEOUT).await.unwrap();
    publ.disconnect().await;

    let sub = v5::Client::connect(env.v5_options(&unique("late"), env.tls())).await.unwrap();
    sub.subscribe(&topic, QoS::ExactlyOnce).await.unwrap();
    let got = sub.recv_publish(EVENT_TIMEOUT, |p| p.topic.as_ref() == topic.as_bytes()).await.unwrap();
    assert!(got.retain, "retained message delivered without the retain flag");
    assert_eq!(got.payload.as_ref(), &data[..]);
}

#[tokio::test]
async fn v311_will_delivered_after_abrupt_disconnect_not_after_clean_one() {
    let env = Env::start().await;
    let will_topic = unique("will311");
    let watcher = v311::Client::connect(env.v311_options(&unique("watch"), env.tls())).await.unwrap();
    watcher.subscribe(&will_topic, QoS::AtLeastOnce).await.unwrap();

    // Clean DISCONNECT: the broker must discard the Will.
    let mut o = env.v311_options(&unique("clean"), env.tls());
    o.set_last_will(v311::LastWill::new(&will_topic, b"clean-will".to_vec(), QoS::AtLeastOnce, false));
    let clean = v311::Client::connect(o).await.unwrap();
    clean.disconnect().await;
    assert!(
        env.tap.wait_closed_count(1, Duration::from_secs(5)).await,
        "moat kept upstream open: {:?}",
        env.tap.summary()
    );
    env.sub.barrier().await.unwrap();
    assert!(
        env.sub.messages().is_empty(),
        "Will published after a clean DISCONNECT: {:?}",
        env.sub.summary()
    );

    // Abrupt close (socket dropped, no DISCONNECT): the Will must fire.
    let mut o = env.v311_options(&unique("abrupt"), env.tls());
    o.set_last_will(v311::LastWill::new(&will_topic, b"abrupt-will".to_vec(), QoS::AtLeastOnce, false));
    let abrupt = v311::Client::connect(o).await.unwrap();
    abrupt.abort().await;
    let got = watcher.recv_publish(EVENT_TIMEOUT, |p| p.topic == will_topic).await.unwrap_or_else(|e| {
        panic!("no Will after abrupt close: {e}\nupstream: {:?}\n{}", env.tap.summary(), env.moat.logs())
    });
    assert_eq!(got.payload.as_ref(), b"abrupt-will");
    env.sub.wait_for(&will_topic, b"abrupt-will", EVENT_TIMEOUT).await.unwrap();
    assert_eq!(watcher.publishes().len(), 1, "clean Will leaked: {:?}", watcher.publishes());
}

#[tokio::test]
async fn v5_will_delivered_after_abrupt_disconnect() {
    let env = Env::start().await;
    let will_topic = unique("will5");
    let watcher = v5::Client::connect(env.v5_options(&unique("watch"), env.tls())).await.unwrap();
    watcher.subscribe(&will_topic, QoS::AtLeastOnce).await.unwrap();

    // Raw socket so the abrupt close is exactly a TCP close with no DISCONNECT.
    let mut c = env.raw().await;
    let connect = packets::Connect::new(packets::Version::V5, &unique("abrupt5"))
        .will(&will_topic, b"abrupt-will-5", 1, false)
        .encode();
    c.send(&connect).await.unwrap();
    let ack = c.expect_packet(packets::CONNACK, Duration::from_secs(10)).await.unwrap();
    assert_eq!(ack.connack_code(), Some(0));
    drop(c.into_inner()); // no close_notify, no DISCONNECT
    let got = watcher
        .recv_publish(EVENT_TIMEOUT, |p| p.topic.as_ref() == will_topic.as_bytes())
        .await
        .unwrap_or_else(|e| {
            panic!("no Will after abrupt close: {e}\nupstream: {:?}\n{}", env.tap.summary(), env.moat.logs())
        });
    assert_eq!(got.payload.as_ref(), b"abrupt-will-5");
    env.sub.wait_for(&will_topic, b"abrupt-will-5", EVENT_TIMEOUT).await.unwrap();
    // moat must not have turned the abrupt close into a DISCONNECT towards the broker
    // with reason 0x00 (which suppresses the Will).
    for p in env.tap.all_packets() {
        if let Some(r) = p.disconnect_reason() {
            assert_ne!(r, 0x00, "moat sent a normal DISCONNECT upstream for an abrupt close");
        }
    }
}

#[tokio::test]
async fn plaintext_listener_roundtrip() {
    let env = Env::start_with(MoatOptions { plaintext_listener: true, ..Default::default() }).await;
    let port = env.moat.plain_port.unwrap();
    let topic = unique("plain");
    let sub = v311::Client::connect(v311::options(&unique("psub"), port, None)).await.unwrap();
    sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    let publ = v5::Client::connect(v5::options(&unique("ppub"), port, None)).await.unwrap();
    publ.publish(&topic, QoS::AtLeastOnce, false, b"plain".to_vec()).await.unwrap();
    let got = sub.recv_publish(EVENT_TIMEOUT, |p| p.topic == topic).await.unwrap();
    assert_eq!(got.payload.as_ref(), b"plain");
    env.sub.wait_for(&topic, b"plain", EVENT_TIMEOUT).await.unwrap();
}
