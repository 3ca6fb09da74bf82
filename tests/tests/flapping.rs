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

/// Password guessing: failed authentications are counted per source address and per username,
/// whatever client ids the guesser rotates through. The address is then refused before TLS and
/// the username refused from any address, while other users are unaffected.
#[tokio::test]
async fn repeated_authentication_failures_ban_the_address_and_the_username() {
    use moat_e2e::policy::{connect_with, password_yaml, PolicyDir, BCRYPT_HASH, BCRYPT_PASSWORD};
    let dir = PolicyDir::new();
    // Both users have the bcrypt fixture's password.
    let users = dir.write("users.yaml", &password_yaml(&[("alice", BCRYPT_HASH), ("bob", BCRYPT_HASH)]));
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        policy_yaml: Some(format!(
            "authentication:\n  - name: users\n    type: password_file\n    path: \"{}\"\n\
             flapping:\n  max_count: 100\n  window: 1m\n  ban_time: 5m\n  auth_failure_max_count: 3\n",
            users.display()
        )),
        ..Default::default()
    })
    .await;
    let guesser: std::net::IpAddr = [127, 0, 0, 7].into();
    let elsewhere: std::net::IpAddr = [127, 0, 0, 8].into();
    let attempt = |source, user: &'static str, password: &'static [u8]| {
        let tls = env.tls();
        let port = env.moat.port;
        async move {
            let mut c = RawClient::connect_from(port, tls, source).await.ok()?;
            c.send(&connect_with(Version::V5, &unique("guess"), Some(user), Some(password))).await.ok()?;
            c.expect_packet(packets::CONNACK, Duration::from_secs(20)).await.ok()?.connack_code()
        }
    };
    assert_eq!(attempt(guesser, "alice", b"guess-1").await, Some(0x86));
    assert_eq!(attempt(guesser, "alice", b"guess-2").await, Some(0x86));
    // The third failure bans both; it is itself answered as a failure.
    assert_eq!(attempt(guesser, "alice", b"guess-3").await, Some(0x86));
    assert!(
        RawClient::connect_from(env.moat.port, env.tls(), guesser).await.is_err(),
        "the guessing address still completes TLS"
    );
    assert_eq!(
        attempt(elsewhere, "alice", BCRYPT_PASSWORD.as_bytes()).await,
        Some(0x8A),
        "alice is banned everywhere"
    );
    assert_eq!(
        attempt(elsewhere, "bob", BCRYPT_PASSWORD.as_bytes()).await,
        Some(0x00),
        "bob is not affected"
    );
    let connects = env.tap.all_packets().iter().filter(|p| p.packet_type() == packets::CONNECT).count();
    assert_eq!(connects, 1, "only bob reached the broker");
}
