//! Bans from the ban file: an address ban refuses the connection before TLS; identity bans refuse
//! CONNECT with 0x05 (3.1.1) / 0x8A (v5) before authentication, and nothing reaches the broker;
//! an expired ban no longer applies.

use moat_e2e::packets::{self, Version};
use moat_e2e::policy::PolicyDir;
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, RawClient, ANONYMOUS_AUTH};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

async fn env(dir: &PolicyDir, bans: &str) -> Env {
    let file = dir.write("bans.yaml", bans);
    Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!("{ANONYMOUS_AUTH}bans:\n  file: \"{}\"\n", file.display())),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn banned_address_is_refused_before_tls() {
    let dir = PolicyDir::new();
    let env = env(&dir, "bans:\n  - kind: cidr\n    who: 127.0.0.0/8\n    reason: test\n").await;
    assert!(RawClient::connect(env.moat.port, env.tls()).await.is_err(), "a banned address completed TLS");
}

#[tokio::test]
async fn banned_identities_get_connack_banned() {
    let dir = PolicyDir::new();
    let env = env(
        &dir,
        "bans:\n  - kind: clientid\n    who: bad-device\n  - kind: clientid_re\n    who: \"evil-.*\"\n\
         \x20 - kind: clientid\n    who: expired-ban\n    created_at: 1000\n    expires_at: 2000\n",
    )
    .await;
    for (v, id, code) in [
        (Version::V311, "bad-device", 0x05),
        (Version::V5, "bad-device", 0x8A),
        (Version::V5, "evil-7", 0x8A),
    ] {
        let mut c = RawClient::connect(env.moat.port, env.tls()).await.expect("tls");
        c.send(&packets::connect(v, id)).await.expect("CONNECT");
        let ack = c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK");
        assert_eq!(ack.connack_code(), Some(code), "{v:?} {id}");
    }
    // Regexes match the whole id; an expired ban is gone.
    for id in ["not-evil-7", "expired-ban", &unique("fine")] {
        let mut c = RawClient::connect(env.moat.port, env.tls()).await.expect("tls");
        c.send(&packets::connect(Version::V5, id)).await.expect("CONNECT");
        let ack = c.expect_packet(packets::CONNACK, WAIT).await.expect("CONNACK");
        assert_eq!(ack.connack_code(), Some(0), "{id} was refused");
    }
    let connects = env.tap.all_packets().iter().filter(|p| p.packet_type() == packets::CONNECT).count();
    assert_eq!(connects, 3, "banned CONNECTs reached the broker: {:?}", env.tap.summary());
}
