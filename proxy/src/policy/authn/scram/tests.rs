use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::*;

const SALT_B64: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const CLIENT_FIRST: &[u8] = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const CLIENT_FINAL: &[u8] = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";

fn rfc7677_credential() -> ScramCredential {
    let salt = STANDARD.decode(SALT_B64).expect("salt");
    ScramCredential::derive(Mechanism::Sha256, b"pencil", &salt, 4096)
}

#[test]
fn rfc7677_scram_sha256_test_vector() {
    let credential = rfc7677_credential();
    let first = parse_client_first(CLIENT_FIRST).expect("client-first");
    assert_eq!(first.username, "user");
    let state =
        ServerFirst::start_with_nonce(Mechanism::Sha256, first, Some(&credential), 4096, SERVER_NONCE);
    assert_eq!(
        state.message(),
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );
    let last = parse_client_final(CLIENT_FINAL).expect("client-final");
    assert_eq!(state.finish(&last).expect("verified"), "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

#[test]
fn stored_form_round_trips_and_never_holds_the_password() {
    let credential = rfc7677_credential();
    let text = credential.encode();
    assert!(text.starts_with("4096:W22ZaJ0SNY7soEsUEjb6gQ==:"));
    let parsed = ScramCredential::parse(Mechanism::Sha256, &text).expect("parses");
    assert_eq!(parsed.encode(), text);
    assert!(!format!("{parsed:?}").contains(SALT_B64));
}

#[test]
fn stored_form_errors() {
    let good = rfc7677_credential().encode();
    let low = good.replacen("4096:", "4095:", 1);
    assert!(ScramCredential::parse(Mechanism::Sha256, &low).unwrap_err().contains("out of range"));
    assert!(ScramCredential::parse(Mechanism::Sha512, &good).unwrap_err().contains("64 bytes"));
    assert!(ScramCredential::parse(Mechanism::Sha256, "4096:AAAA:x:y").unwrap_err().contains("salt"));
    assert!(ScramCredential::parse(Mechanism::Sha256, "4096:a:b").unwrap_err().contains("malformed"));
    assert!(ScramCredential::parse(Mechanism::Sha256, "x:a:b:c").unwrap_err().contains("iteration"));
}

#[test]
fn wrong_proof_and_unknown_user_fail_the_same_way() {
    let credential = rfc7677_credential();
    let mut bad = CLIENT_FINAL.to_vec();
    let at = bad.len() - 5;
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    let first = parse_client_first(CLIENT_FIRST).expect("first");
    let state =
        ServerFirst::start_with_nonce(Mechanism::Sha256, first, Some(&credential), 4096, SERVER_NONCE);
    let wrong = state.finish(&parse_client_final(&bad).expect("final"));
    assert_eq!(wrong, Err(ScramError::BadCredentials));

    let first = parse_client_first(CLIENT_FIRST).expect("first");
    let state = ServerFirst::start_with_nonce(Mechanism::Sha256, first, None, 4096, SERVER_NONCE);
    // The fake salt is stable per username and differs between usernames.
    let again = parse_client_first(CLIENT_FIRST).expect("first");
    let again = ServerFirst::start_with_nonce(Mechanism::Sha256, again, None, 4096, SERVER_NONCE);
    assert_eq!(state.message(), again.message());
    let other = parse_client_first(b"n,,n=other,r=rOprNGfwEbeRWgbNEkqO").expect("first");
    let other = ServerFirst::start_with_nonce(Mechanism::Sha256, other, None, 4096, SERVER_NONCE);
    assert_ne!(state.message().split(",s=").nth(1), other.message().split(",s=").nth(1));
    let unknown = state.finish(&parse_client_final(CLIENT_FINAL).expect("final"));
    assert_eq!(unknown, Err(ScramError::BadCredentials));
}

#[test]
fn nonce_must_match() {
    let credential = rfc7677_credential();
    let first = parse_client_first(CLIENT_FIRST).expect("first");
    let state = ServerFirst::start_with_nonce(Mechanism::Sha256, first, Some(&credential), 4096, "other");
    let result = state.finish(&parse_client_final(CLIENT_FINAL).expect("final"));
    assert_eq!(result, Err(ScramError::NonceMismatch));
}

#[test]
fn client_first_parser() {
    let ok = parse_client_first(b"n,,n=a=2Cb=3Dc,r=abc").expect("escapes");
    assert_eq!(ok.username, "a,b=c");
    assert_eq!(ok.bare, "n=a=2Cb=3Dc,r=abc");
    for (input, expected) in [
        (&b"y,,n=u,r=abc"[..], ScramError::ChannelBinding),
        (b"p=tls-unique,,n=u,r=abc", ScramError::ChannelBinding),
    ] {
        assert_eq!(parse_client_first(input).unwrap_err(), expected);
    }
    for input in [
        &b""[..],
        b"n,a=admin,n=u,r=abc",
        b"n,,n=u",
        b"n,,n=u,r=abc,m=ext",
        b"n,,n=u,r=abc,x=1",
        b"n,,r=abc,n=u",
        b"n,,n=,r=abc",
        b"n,,n=u=2X,r=abc",
        b"n,,n=u=,r=abc",
        b"n,,n=u,r=",
        b"n,,n=u,r=a b",
        b"n,,n=u,r=\xff",
        b"\xff\xfe",
        b"n,,n=u\x01,r=abc",
    ] {
        assert!(
            matches!(parse_client_first(input), Err(ScramError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
    let mut long = b"n,,n=u,r=".to_vec();
    long.resize(MAX_MESSAGE_LEN + 1, b'a');
    assert!(parse_client_first(&long).is_err());
}

#[test]
fn client_final_parser() {
    let ok = parse_client_final(b"c=biws,r=abc,p=AAAA").expect("parses");
    assert_eq!(ok.without_proof, "c=biws,r=abc");
    assert_eq!(ok.proof, vec![0, 0, 0]);
    assert_eq!(parse_client_final(b"c=eSws,r=abc,p=AAAA").unwrap_err(), ScramError::ChannelBinding);
    for input in [
        &b""[..],
        b"c=biws,r=abc",
        b"c=biws,r=abc,p=!!!",
        b"c=biws,r=abc,x=1,p=AAAA",
        b"r=abc,c=biws,p=AAAA",
        b"c=biws,r=,p=AAAA",
        b"c=biws,p=AAAA",
    ] {
        assert!(
            matches!(parse_client_final(input), Err(ScramError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn sha512_round_trip_with_an_independent_client() {
    // Client side computed with the RustCrypto crates directly, not via Mechanism.
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha512};
    let salt = [7u8; 16];
    let credential = ScramCredential::derive(Mechanism::Sha512, b"secret", &salt, 4096);
    let first = parse_client_first(b"n,,n=bob,r=cnonce").expect("first");
    let state = ServerFirst::start(Mechanism::Sha512, first, Some(&credential), 4096).expect("start");
    let server_first = state.message().to_string();
    let nonce = server_first.split(',').next().and_then(|r| r.strip_prefix("r=")).expect("nonce");
    assert!(nonce.starts_with("cnonce") && nonce.len() >= "cnonce".len() + 24);
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("n=bob,r=cnonce,{server_first},{without_proof}");
    let mut salted = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(b"secret", &salt, 4096, &mut salted);
    let mac = |key: &[u8], data: &[u8]| {
        let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("key");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    };
    let client_key = mac(&salted, b"Client Key");
    let stored = Sha512::digest(&client_key);
    let signature = mac(&stored, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    let final_msg = format!("{without_proof},p={}", STANDARD.encode(&proof));
    let server_final = state.finish(&parse_client_final(final_msg.as_bytes()).expect("final")).expect("ok");
    let server_key = mac(&salted, b"Server Key");
    assert_eq!(server_final, format!("v={}", STANDARD.encode(mac(&server_key, auth_message.as_bytes()))));
}
