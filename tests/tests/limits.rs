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
    c.send(&subscribe_many(Version::V5, 1, &[("a/1", 0), ("a/2", 0)]))
        .await
        .unwrap();
    let p = c.read_packet(WAIT).await.unwrap().expect("SUBACK");
    assert_eq!(p.packet_type(), packets::SUBACK, "{}", p.describe());

    c.send(&subscribe_many(
        Version::V5,
        2,
        &[("b/1", 0), ("b/2", 0), ("b/3", 0)],
    ))
    .await
    .unwrap();
    let p = c.read_packet(WAIT).await.unwrap().expect("DISCONNECT");
    assert_eq!(p.disconnect_reason(), Some(0x97), "{}", p.describe());
    assert!(
        c.read_packet(WAIT).await.unwrap().is_none(),
        "connection stays open"
    );
    let subscribes = env
        .tap
        .all_packets()
        .iter()
        .filter(|p| p.packet_type() == packets::SUBSCRIBE)
        .count();
    assert_eq!(
        subscribes,
        1,
        "the refused SUBSCRIBE reached the broker: {:?}",
        env.tap.summary()
    );
}
