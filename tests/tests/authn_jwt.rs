//! JWT authentication through moat to a real Mosquitto: HS256 / RS256 / ES256 via a JWKS served
//! by a local HTTP server, alg pinning (`alg: none`, HS-with-the-RSA-public-key), exp/nbf/iat
//! with leeway on both sides, required claims with placeholders, the `acl` claim, JWKS rotation
//! and failure (last good keys, never fetched → deny), disconnect on expiry, pipelining behind a
//! slow JWKS. Every refusal is checked on the client (CONNACK code) and at the broker (nothing
//! forwarded: the tap and the direct subscriber on `#`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use moat_e2e::callout::{Reply, Stub};
use moat_e2e::packets::{self, RawPacket, Version};
use moat_e2e::policy::{self, connect_with, PolicyDir};
use moat_e2e::{http, unique, Env, MoatOptions, RawClient};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const V311: Version = Version::V311;
const V5: Version = Version::V5;
/// 40 bytes: above moat's 32-byte minimum for HMAC secrets.
const SECRET: &[u8] = b"moat-e2e-hs256-secret-0123456789abcdefgh";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&h, claims, key).expect("sign")
}

fn hs(claims: Value) -> String {
    sign(Algorithm::HS256, None, &EncodingKey::from_secret(SECRET), &claims)
}

/// An unsigned token (`alg: none`), as an attacker would send it.
fn unsigned(claims: &Value) -> String {
    let b = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.", b(&json!({"alg": "none", "typ": "JWT"})), b(claims))
}

fn refused_code(version: Version, v5_code: u8) -> u8 {
    match (version, v5_code) {
        (Version::V5, c) => c,
        (_, 0x86) => 0x04,
        (_, 0x87) => 0x05,
        (_, c) => c,
    }
}

async fn start(policy_yaml: String) -> Env {
    Env::start_with(MoatOptions { policy_yaml: Some(policy_yaml), ..Default::default() }).await
}

/// Sends CONNECT (and anything pipelined after it) in one write; returns the CONNACK and socket.
async fn connack(env: &Env, bytes: &[u8], ctx: &str) -> (RawPacket, RawClient) {
    let mut c = env.raw().await;
    c.send(bytes).await.unwrap_or_else(|e| panic!("{ctx}: send: {e}"));
    let ack = c
        .expect_packet(packets::CONNACK, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: no CONNACK: {e}\n{}", env.moat.logs()));
    (ack, c)
}

async fn expect_code(env: &Env, version: Version, id: &str, token: &str, code: u8, ctx: &str) -> RawClient {
    let bytes = connect_with(version, id, Some("user"), Some(token.as_bytes()));
    let (ack, mut c) = connack(env, &bytes, ctx).await;
    assert_eq!(
        ack.connack_code(),
        Some(code),
        "{ctx} ({version:?}): got {}\n{}",
        ack.describe(),
        env.moat.logs()
    );
    if code != 0 {
        let closed = c.read_until_closed(WAIT).await.unwrap_or_else(|e| panic!("{ctx}: not closed: {e}"));
        assert!(closed.packets.is_empty(), "{ctx}: packets after the refusal");
    }
    c
}

fn hs_policy(dir: &PolicyDir, extra: &str) -> String {
    let secret = dir.write("jwt.secret", std::str::from_utf8(SECRET).expect("utf8"));
    format!(
        "authentication:\n  - name: jwt\n    type: jwt\n    algorithms: [HS256]\n    secret_file: \"{}\"\n    leeway: 10s\n{extra}",
        secret.display()
    )
}

#[tokio::test]
async fn hs256_refuses_forged_expired_premature_and_mismatched_tokens_and_forwards_nothing() {
    let dir = PolicyDir::new();
    let env = start(hs_policy(&dir, "    required_claims:\n      sub: \"${clientid}\"\n")).await;
    let t = now();
    let other = EncodingKey::from_secret(b"another-secret-of-enough-length-0123456789");
    for version in [V311, V5] {
        let id = unique("dev");
        let bad = |c: u8| refused_code(version, c);
        let cases: Vec<(&str, String, u8)> = vec![
            (
                "wrong signature",
                sign(Algorithm::HS256, None, &other, &json!({"sub": id, "exp": t + 60})),
                bad(0x86),
            ),
            ("expired beyond leeway", hs(json!({"sub": id, "exp": t - 30})), bad(0x86)),
            ("not yet valid beyond leeway", hs(json!({"sub": id, "exp": t + 60, "nbf": t + 60})), bad(0x86)),
            ("issued in the future", hs(json!({"sub": id, "exp": t + 120, "iat": t + 60})), bad(0x86)),
            ("no exp", hs(json!({"sub": id})), bad(0x86)),
            ("sub of another client", hs(json!({"sub": "someone-else", "exp": t + 60})), bad(0x86)),
            ("alg none", unsigned(&json!({"sub": id, "exp": t + 60})), bad(0x86)),
            (
                "HS384 not configured",
                sign(
                    Algorithm::HS384,
                    None,
                    &EncodingKey::from_secret(SECRET),
                    &json!({"sub": id, "exp": t + 60}),
                ),
                bad(0x86),
            ),
        ];
        for (ctx, token, code) in cases {
            // Pipelined PUBLISH and SUBSCRIBE wait behind the decision and die with the refusal.
            let mut bytes = connect_with(version, &id, Some("user"), Some(token.as_bytes()));
            bytes.extend(packets::publish(version, b"jwt/pipelined", 1, false, 1, b"x"));
            bytes.extend(packets::subscribe(version, 2, b"#", 0));
            let (ack, mut c) = connack(&env, &bytes, ctx).await;
            assert_eq!(
                ack.connack_code(),
                Some(code),
                "{ctx} ({version:?}): {}\n{}",
                ack.describe(),
                env.moat.logs()
            );
            let closed = c.read_until_closed(WAIT).await.expect("closed");
            assert!(closed.packets.is_empty(), "{ctx}: packets after the refusal");
        }
    }
    env.assert_no_upstream_bytes("refused JWTs").await;
    let metrics = http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
    for label in [
        "bad_signature",
        "token_expired",
        "token_not_yet_valid",
        "token_iat_future",
        "claim_mismatch",
        "alg_not_allowed",
    ] {
        assert!(
            policy::metric_with_labels(
                &metrics.body,
                "moat_authentications_total",
                &[("authenticator", "jwt"), ("result", label)]
            )
            .is_some_and(|v| v >= 1.0),
            "no jwt/{label} in metrics:\n{}",
            metrics.body
        );
    }
}

#[tokio::test]
async fn hs256_accepts_valid_tokens_within_leeway_on_both_sides() {
    let dir = PolicyDir::new();
    let env = start(hs_policy(&dir, "    required_claims:\n      sub: \"${clientid}\"\n")).await;
    let t = now();
    for version in [V311, V5] {
        for (ctx, claims) in [
            ("valid", json!({"exp": t + 60, "iat": t})),
            ("expired within leeway", json!({"exp": t - 5})),
            ("nbf within leeway", json!({"exp": t + 60, "nbf": t + 5})),
        ] {
            let id = unique("dev");
            let mut claims = claims;
            claims["sub"] = json!(id);
            let mut c = expect_code(&env, version, &id, &hs(claims), 0, ctx).await;
            let topic = unique("jwt/ok");
            c.send(&packets::publish(version, topic.as_bytes(), 1, false, 7, b"hello"))
                .await
                .expect("publish");
            c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
            env.sub.wait_for(&topic, b"hello", WAIT).await.expect("the broker received the publish");
        }
    }
    // The CONNECT the broker saw carries no token (password dropped by default).
    for conn in env.tap.connections() {
        let first = conn.packets().first().and_then(policy::parse_connect).expect("forwarded CONNECT");
        assert_eq!(first.password, None, "the token reached the broker");
    }
}

fn rsa_pair() -> (String, String) {
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    (k.serialize_pem(), k.public_key_pem())
}

#[tokio::test]
async fn alg_confusion_and_alg_none_are_refused_against_an_rsa_key() {
    let dir = PolicyDir::new();
    let (private_pem, public_pem) = rsa_pair();
    let public = dir.write("rsa.pub.pem", &public_pem);
    let env = start(format!(
        "authentication:\n  - name: jwt\n    type: jwt\n    algorithms: [RS256]\n    public_key: \"{}\"\n",
        public.display()
    ))
    .await;
    let claims = json!({"exp": now() + 60});
    // The classic confusion: HS256 "signed" with the RSA public key as the HMAC secret.
    let confused = sign(Algorithm::HS256, None, &EncodingKey::from_secret(public_pem.as_bytes()), &claims);
    let rsa = EncodingKey::from_rsa_pem(private_pem.as_bytes()).expect("rsa key");
    for version in [V311, V5] {
        let code = refused_code(version, 0x86);
        expect_code(&env, version, &unique("c"), &confused, code, "HS256 with the public key").await;
        expect_code(&env, version, &unique("c"), &unsigned(&claims), code, "alg none").await;
    }
    env.assert_no_upstream_bytes("alg confusion").await;
    let ok = sign(Algorithm::RS256, None, &rsa, &claims);
    expect_code(&env, V5, &unique("c"), &ok, 0, "RS256").await;
}

fn es_pair() -> (EncodingKey, Value) {
    let k = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
    let enc = EncodingKey::from_ec_pem(k.serialize_pem().as_bytes()).expect("ec pem");
    let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, Algorithm::ES256).expect("jwk");
    (enc, serde_json::to_value(jwk).expect("jwk json"))
}

fn jwks(keys: &[(&str, &Value)]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|(kid, jwk)| {
            let mut j = (*jwk).clone();
            j["kid"] = json!(kid);
            j["alg"] = json!("ES256");
            j
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

fn jwks_policy(url: &str, extra: &str) -> String {
    format!(
        "authentication:\n  - name: jwt\n    type: jwt\n    algorithms: [ES256]\n    jwks_url: \"{url}\"\n    jwks_refresh: 1h\n    jwks_timeout: 2s\n{extra}"
    )
}

#[tokio::test]
async fn jwks_kid_rotation_and_last_good_keys_when_the_endpoint_fails() {
    let (k1, j1) = es_pair();
    let (k2, j2) = es_pair();
    let (k3, j3) = es_pair();
    let doc1 = jwks(&[("k1", &j1)]);
    let stub = Stub::start(Box::new(move |_| Reply::ok(doc1.clone()))).await;
    let env = start(jwks_policy(&stub.url("/jwks"), "")).await;
    let claims = json!({"exp": now() + 300});
    let tok = |k: &EncodingKey, kid: &str| sign(Algorithm::ES256, Some(kid), k, &claims);

    expect_code(&env, V5, &unique("c"), &tok(&k1, "k1"), 0, "kid k1").await;
    // A token signed by k2 but claiming kid k1 does not verify.
    expect_code(&env, V5, &unique("c"), &tok(&k2, "k1"), 0x86, "k2 under kid k1").await;

    // Rotation: the endpoint now serves k2 only; a token with the unknown kid k2 makes moat
    // refresh early (refresh interval is 1h) and is accepted; k1 is gone.
    let doc2 = jwks(&[("k2", &j2)]);
    stub.set(Box::new(move |_| Reply::ok(doc2.clone())));
    expect_code(&env, V5, &unique("c"), &tok(&k2, "k2"), 0, "kid k2 after rotation").await;
    expect_code(&env, V311, &unique("c"), &tok(&k1, "k1"), 0x04, "rotated-out k1").await;

    // The endpoint fails: an unknown kid triggers a refresh that fails; the last good keys stay.
    let doc3 = jwks(&[("k3", &j3)]);
    stub.set(Box::new(|_| Reply::status(500, "down")));
    tokio::time::sleep(Duration::from_millis(2100)).await; // past the minimum gap between fetches
    expect_code(&env, V5, &unique("c"), &tok(&k3, "k3"), 0x86, "k3 while the endpoint is down").await;
    expect_code(&env, V5, &unique("c"), &tok(&k2, "k2"), 0, "k2 from the last good copy").await;
    let metrics = http::get(env.moat.admin_port, "/metrics").await.expect("metrics");
    let failures = http::metric_sum(&metrics.body, "moat_jwks_refresh_failures_total").unwrap_or(0.0);
    assert!(failures >= 1.0, "refresh failure not counted:\n{}", metrics.body);
    drop(doc3);
}

#[tokio::test]
async fn jwks_never_fetched_refuses_within_the_timeout() {
    // Nothing listens on this port: the JWKS is never fetched.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let env = start(jwks_policy(&format!("http://127.0.0.1:{port}/jwks"), "")).await;
    let (k, _) = es_pair();
    let token = sign(Algorithm::ES256, Some("k"), &k, &json!({"exp": now() + 60}));
    for version in [V311, V5] {
        let started = std::time::Instant::now();
        expect_code(&env, version, &unique("c"), &token, refused_code(version, 0x87), "no keys").await;
        assert!(started.elapsed() < Duration::from_secs(5), "CONNECT waited {:?}", started.elapsed());
    }
    env.assert_no_upstream_bytes("no JWKS").await;
}

#[tokio::test]
async fn pipelined_publish_behind_a_slow_jwks_never_reaches_the_broker() {
    let (_k1, j1) = es_pair();
    let (k2, _) = es_pair();
    let doc = jwks(&[("k1", &j1)]);
    // The first fetch takes 1.5 s; the token is signed by a key the JWKS does not have.
    let stub =
        Stub::start(Box::new(move |_| Reply::ok(doc.clone()).delayed(Duration::from_millis(1500)))).await;
    let env = start(jwks_policy(&stub.url("/jwks"), "")).await;
    let token = sign(Algorithm::ES256, Some("k1"), &k2, &json!({"exp": now() + 60}));
    for version in [V311, V5] {
        let mut bytes = connect_with(version, &unique("slow"), Some("user"), Some(token.as_bytes()));
        bytes.extend(packets::publish(version, b"slow/secret", 1, true, 1, b"must not arrive"));
        bytes.extend(packets::disconnect(version));
        let (ack, mut c) = connack(&env, &bytes, "slow JWKS").await;
        assert_eq!(ack.connack_code(), Some(refused_code(version, 0x86)), "{}", env.moat.logs());
        c.read_until_closed(WAIT).await.expect("closed");
    }
    env.assert_no_upstream_bytes("pipelined behind a slow JWKS").await;
}

#[tokio::test]
async fn acl_claim_restricts_the_client_and_invalid_rules_refuse_the_connect() {
    let dir = PolicyDir::new();
    let env = start(hs_policy(&dir, "    acl_claim: acl\n    username_claim: sub\n")).await;
    let t = now();
    let rules = json!([
        {"permission": "allow", "who": "all", "action": "publish", "topics": ["claims/${username}/#"]},
    ]);
    for version in [V311, V5] {
        let user = unique("u");
        let token = hs(json!({"sub": user, "exp": t + 60, "acl": rules}));
        let mut c = expect_code(&env, version, &unique("c"), &token, 0, "acl claim").await;
        let allowed = format!("claims/{user}/t");
        c.send(&packets::publish(version, allowed.as_bytes(), 1, false, 1, b"ok")).await.expect("pub");
        let ack = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
        assert_eq!(policy::ack(&ack).map(|a| a.1), Some(0), "allowed publish");
        c.send(&packets::publish(version, b"claims/other/t", 1, false, 2, b"denied")).await.expect("pub");
        let ack = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
        // v5: 0x87 not authorized; 3.1.1 has no negative PUBACK (moat answers it, drops the publish).
        let want = if version == V5 { 0x87 } else { 0 };
        assert_eq!(policy::ack(&ack).map(|a| a.1), Some(want), "denied publish");
        env.sub.wait_for(&allowed, b"ok", WAIT).await.expect("allowed publish reached the broker");
    }
    let got: Vec<String> = env.sub.messages().into_iter().map(|m| m.topic).collect();
    assert!(!got.iter().any(|t| t == "claims/other/t"), "denied publish reached the broker: {got:?}");
    // Rules that do not parse refuse the CONNECT instead of granting anything.
    for bad in [json!([{"permission": "sometimes"}]), json!("allow all")] {
        let token = hs(json!({"sub": "x", "exp": t + 60, "acl": bad}));
        expect_code(&env, V5, &unique("c"), &token, 0x87, "invalid acl claim").await;
        expect_code(&env, V311, &unique("c"), &token, 0x05, "invalid acl claim").await;
    }
}

#[tokio::test]
async fn disconnect_on_expiry_closes_the_session_when_the_token_expires() {
    let dir = PolicyDir::new();
    let secret = dir.write("jwt.secret", std::str::from_utf8(SECRET).expect("utf8"));
    let env = start(format!(
        "authentication:\n  - name: jwt\n    type: jwt\n    algorithms: [HS256]\n    secret_file: \"{}\"\n    leeway: 0s\n    disconnect_on_expiry: true\n",
        secret.display()
    ))
    .await;
    for version in [V5, V311] {
        let token = hs(json!({"exp": now() + 3}));
        let mut c = expect_code(&env, version, &unique("exp"), &token, 0, "short-lived token").await;
        let started = std::time::Instant::now();
        let closed = c.read_until_closed(Duration::from_secs(8)).await.expect("session closed at expiry");
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1500), "closed too early ({took:?})");
        match version {
            V5 => {
                let reasons: Vec<Option<u8>> =
                    closed.packets.iter().map(RawPacket::disconnect_reason).collect();
                assert_eq!(reasons, vec![Some(0x87)], "v5 expects DISCONNECT 0x87");
            }
            _ => assert!(closed.packets.is_empty(), "3.1.1: closed without a packet"),
        }
    }
}

#[tokio::test]
async fn identity_comes_from_the_token_and_token_from_username_works() {
    let dir = PolicyDir::new();
    let env = start(hs_policy(
        &dir,
        "    token_from: username\n    username_claim: sub\n    clientid_claim: cid\n",
    ))
    .await;
    let t = now();
    let token = hs(json!({"sub": "verified-user", "cid": "verified-client", "exp": t + 60}));
    for version in [V311, V5] {
        // The token is the username; the password field is unused.
        let bytes = connect_with(version, "claimed-client", Some(&token), None);
        let (ack, _c) = connack(&env, &bytes, "token in username").await;
        assert_eq!(ack.connack_code(), Some(0), "{}\n{}", ack.describe(), env.moat.logs());
        // A token that lacks the identity claim is refused.
        let no_sub = hs(json!({"cid": "x", "exp": t + 60}));
        let bytes = connect_with(version, "c", Some(&no_sub), None);
        let (ack, _c) = connack(&env, &bytes, "no sub").await;
        assert_eq!(ack.connack_code(), Some(refused_code(version, 0x86)));
    }
    assert!(env.tap.wait_connections(2, WAIT).await, "two sessions forwarded");
    // Trap 5: the broker sees the identity the token vouches for, never the token or the claims
    // the client made in CONNECT.
    for conn in env.tap.connections() {
        let c = conn.packets().first().and_then(policy::parse_connect).expect("forwarded CONNECT");
        assert_eq!(c.username.as_deref(), Some("verified-user"));
        assert_eq!(c.client_id, "verified-client");
        assert_eq!(c.password, None);
    }
}
