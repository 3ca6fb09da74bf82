//! Flapping detection: a client id that reconnects `max_count` times within the window is banned
//! (CONNACK 0x8A), other ids are not; with `ip_max_count`, rotating client ids from one address
//! gets the address banned before TLS (trap 17).

use std::time::Duration;

use moat_e2e::packets::{self, Version};
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, RawClient, ANONYMOUS_AUTH};

const WAIT: Duration = Duration::from_secs(10);

async fn env(flapping: &str) -> Env {
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}flapping:\n{flapping}")),
        ..Default::default()
    })
    .await
}

async fn connack(env: &Env, id: &str) -> Option<u8> {
    let mut c = RawClient::connect(env.moat.port, env.tls()).await.ok()?;
    c.send(&packets::connect(Version::V5, id)).await.ok()?;
    let ack = c.expect_packet(packets::CONNACK, WAIT).await.ok()?;
    ack.connack_code()
}

#[tokio::test]
async fn reconnecting_client_id_is_banned() {
    let env = env("  max_count: 3\n  window: 1m\n  ban_time: 5m\n").await;
    let flapper = unique("flapper");
    assert_eq!(connack(&env, &flapper).await, Some(0));
    assert_eq!(connack(&env, &flapper).await, Some(0));
    assert_eq!(connack(&env, &flapper).await, Some(0x8A), "third connect within the window");
    assert_eq!(connack(&env, &flapper).await, Some(0x8A), "still banned");
    assert_eq!(connack(&env, &unique("calm")).await, Some(0), "another id is not affected");
}

#[tokio::test]
async fn rotating_client_ids_get_the_address_banned() {
    let env = env("  max_count: 3\n  window: 1m\n  ban_time: 5m\n  ip_max_count: 4\n").await;
    for i in 0..3 {
        assert_eq!(connack(&env, &unique("rotate")).await, Some(0), "connect {i}");
    }
    assert_eq!(connack(&env, &unique("rotate")).await, Some(0x8A), "fourth connect from one address");
    assert!(RawClient::connect(env.moat.port, env.tls()).await.is_err(), "banned address completed TLS");
}
