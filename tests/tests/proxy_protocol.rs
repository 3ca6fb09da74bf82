//! `proxy_protocol: true`: the client's address comes from the balancer's PROXY header, so an ACL
//! rule on `ipaddr` sees the real client; a connection without the header is refused before TLS.

use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::policy::{ack, PolicyDir};
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, RawClient};

const WAIT: Duration = Duration::from_secs(10);

async fn env(dir: &PolicyDir) -> Env {
    let acl = dir.write(
        "acl.yaml",
        "rules:\n  - permission: allow\n    who: {ipaddr: 203.0.113.0/24}\n    action: publish\n    topics: [\"ip/#\"]\n",
    );
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        listener_extra: Some("    proxy_protocol: true\n".to_string()),
        policy_yaml: Some(format!(
            "authentication:\n  - name: anon\n    type: anonymous\nauthorization:\n  acl: \"{}\"\n",
            acl.display()
        )),
        ..Default::default()
    })
    .await
}

/// Connects through a PROXY v1 header claiming `src`, publishes QoS 1 to `topic`, returns the
/// PUBACK reason code.
async fn publish_from(env: &Env, src: &str, topic: &str) -> u8 {
    let header = format!("PROXY TCP4 {src} 127.0.0.1 40000 {}\r\n", env.moat.port);
    let mut c =
        RawClient::connect_with_preamble(env.moat.port, env.tls(), header.as_bytes()).await.expect("connect");
    c.send(&packets::connect(Version::V5, &unique("pp"))).await.expect("CONNECT");
    c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK");
    c.send(&packets::publish(Version::V5, topic.as_bytes(), 1, false, 1, b"from-balancer"))
        .await
        .expect("PUBLISH");
    let p = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    ack(&p).map(|(_, reason)| reason).expect("ack")
}

#[tokio::test]
async fn acl_sees_the_address_from_the_proxy_header() {
    let dir = PolicyDir::new();
    let env = env(&dir).await;
    let allowed = format!("ip/{}", unique("ok"));
    assert_eq!(publish_from(&env, "203.0.113.7", &allowed).await, 0x00);
    env.sub.wait_for(&allowed, b"from-balancer", WAIT).await.expect("delivered");
    let denied = format!("ip/{}", unique("no"));
    assert_eq!(publish_from(&env, "198.51.100.1", &denied).await, 0x87, "the socket address was used");
}

#[tokio::test]
async fn connection_without_header_is_refused() {
    let dir = PolicyDir::new();
    let env = env(&dir).await;
    assert!(RawClient::connect(env.moat.port, env.tls()).await.is_err(), "TLS without PROXY header accepted");
}
