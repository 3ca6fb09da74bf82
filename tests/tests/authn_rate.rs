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

/// Connects per round; rounds alternate between the authenticators (the machine is shared, so
/// interleaving spreads other load evenly) and the median round is reported.
const CONNECTS: usize = 100;
const ROUNDS: usize = 5;
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

struct Target {
    env: Env,
    connect: Vec<u8>,
}

async fn target(policy: String, password: Option<&str>) -> Target {
    let env = Env::start_with(MoatOptions {
        policy_yaml: Some(policy),
        plaintext_listener: true,
        ..Default::default()
    })
    .await;
    let connect = connect_with(Version::V311, "rate", Some("user"), password.map(str::as_bytes));
    let port = env.moat.plain_port.expect("plain listener");
    rate(port, &connect).await; // warm-up round, not counted
    Target { env, connect }
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
    let targets = [
        ("anonymous", target("authentication:\n  - name: a\n    type: anonymous\n".into(), None).await),
        (
            "jwt HS256",
            target(jwt("HS256", &format!("secret_file: \"{}\"", secret.display())), Some(&hs)).await,
        ),
        (
            "jwt RS256",
            target(jwt("RS256", &format!("public_key: \"{}\"", public.display())), Some(&rs)).await,
        ),
        ("http backend", target(http(""), Some("pw")).await),
        ("http backend, cached", target(http("    cache_ttl: 1m\n"), Some("pw")).await),
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); targets.len()];
    for _ in 0..ROUNDS {
        for (i, (_, t)) in targets.iter().enumerate() {
            let port = t.env.moat.plain_port.expect("plain listener");
            rates[i].push(rate(port, &t.connect).await);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = rates.iter_mut().map(median).collect();
    println!(
        "connection rate, {ROUNDS} interleaved rounds of {CONNECTS} sequential CONNECT→CONNACK on loopback \
         (plaintext listener), median round:"
    );
    for ((name, _), r) in targets.iter().zip(&medians) {
        println!("  {name:<22} {r:>8.0} /s   {:.2}× anonymous", r / medians[0]);
    }
}
