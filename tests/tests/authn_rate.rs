//! Connection rate (CONNECT → CONNACK per second, sequential, loopback plaintext listener so TLS
//! does not hide the authenticator's cost) for anonymous, JWT HS256, JWT RS256 and the HTTP
//! backend, in one run. A measurement, not a check: run it against a release build with
//!   cargo build --release -p moat --bin moat
//!   MOAT_BIN=target/release/moat MOAT_E2E_LOG=warn cargo nextest run -p moat-e2e --test authn_rate --run-ignored only --no-capture

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use moat_e2e::callout::{Reply, Stub};
use moat_e2e::packets::Version;
use moat_e2e::policy::{connect_with, PolicyDir};
use moat_e2e::{Env, MoatOptions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECTS: usize = 500;
const SECRET: &str = "moat-e2e-hs256-secret-0123456789abcdefgh";

async fn rate(port: u16, connect: &[u8]) -> f64 {
    let started = Instant::now();
    for i in 0..CONNECTS {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.write_all(connect).await.expect("send CONNECT");
        let mut ack = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut ack))
            .await
            .expect("CONNACK in time")
            .expect("CONNACK");
        assert_eq!(ack, [0x20, 0x02, 0x00, 0x00], "connect {i} refused");
        s.write_all(&[0xe0, 0x00]).await.expect("DISCONNECT");
    }
    CONNECTS as f64 / started.elapsed().as_secs_f64()
}

async fn measure(policy: String, password: Option<&str>) -> f64 {
    let env = Env::start_with(MoatOptions {
        policy_yaml: Some(policy),
        plaintext_listener: true,
        ..Default::default()
    })
    .await;
    let port = env.moat.plain_port.expect("plain listener");
    let connect = connect_with(Version::V311, "rate", Some("user"), password.map(str::as_bytes));
    rate(port, &connect[..]).await; // warm-up round, not counted
    rate(port, &connect).await
}

#[tokio::test]
#[ignore = "measurement; run explicitly against a release build"]
async fn connection_rate_per_authenticator() {
    let dir = PolicyDir::new();
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() + 3600;
    let claims = json!({"sub": "rate", "exp": exp});
    let secret = dir.write("secret", SECRET);
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("hs token");
    let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("rsa");
    let public = dir.write("rsa.pem", &rsa.public_key_pem());
    let rs = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &claims,
        &EncodingKey::from_rsa_pem(rsa.serialize_pem().as_bytes()).expect("rsa pem"),
    )
    .expect("rs token");
    let stub = Stub::start(Box::new(|_| Reply::ok(json!({"result": "allow"}).to_string()))).await;
    let jwt = |alg: &str, key: &str| {
        format!("authentication:\n  - name: j\n    type: jwt\n    algorithms: [{alg}]\n    {key}\n")
    };
    let http = |extra: &str| {
        format!("authentication:\n  - name: h\n    type: http\n    url: \"{}\"\n{extra}", stub.url("/auth"))
    };
    let anon = measure("authentication:\n  - name: a\n    type: anonymous\n".into(), None).await;
    let hs256 = measure(jwt("HS256", &format!("secret_file: \"{}\"", secret.display())), Some(&hs)).await;
    let rs256 = measure(jwt("RS256", &format!("public_key: \"{}\"", public.display())), Some(&rs)).await;
    let backend = measure(http(""), Some("pw")).await;
    let cached = measure(http("    cache_ttl: 1m\n"), Some("pw")).await;
    println!("connection rate, {CONNECTS} sequential CONNECT→CONNACK on loopback (plaintext listener):");
    for (name, r) in [
        ("anonymous", anon),
        ("jwt HS256", hs256),
        ("jwt RS256", rs256),
        ("http backend", backend),
        ("http backend, cached", cached),
    ] {
        println!("  {name:<22} {r:>8.0} /s   {:.2}× anonymous", r / anon);
    }
}
