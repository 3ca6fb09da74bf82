//! Strict parsers for the two client messages (RFC 5802 section 7). Anything outside the subset
//! moat supports is refused: channel binding (`y`, `p=`), an authorization identity, extensions
//! (including the mandatory-extension `m=`), non-printable nonces, bad `=XX` escapes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::exchange::ScramError;
use super::MAX_MESSAGE_LEN;

/// Nonces longer than this are refused (real clients send 16–32 characters).
const MAX_NONCE_LEN: usize = 256;
/// Usernames longer than this are refused (the MQTT username field allows 65535, nobody needs it).
const MAX_USERNAME_LEN: usize = 256;

/// `n,,n=<user>,r=<nonce>`.
#[derive(Debug)]
pub struct ClientFirst {
    pub username: String,
    pub nonce: String,
    /// `client-first-message-bare`, part of the AuthMessage.
    pub bare: String,
}

/// `c=biws,r=<nonce>,p=<proof>`.
#[derive(Debug)]
pub struct ClientFinal {
    pub nonce: String,
    pub proof: Vec<u8>,
    /// `client-final-message-without-proof`, part of the AuthMessage.
    pub without_proof: String,
}

fn text(data: &[u8]) -> Result<&str, ScramError> {
    if data.len() > MAX_MESSAGE_LEN {
        return Err(ScramError::Malformed("message too long"));
    }
    std::str::from_utf8(data).map_err(|_| ScramError::Malformed("not UTF-8"))
}

/// `printable = %x21-2B / %x2D-7E` (no comma).
fn check_nonce(nonce: &str) -> Result<(), ScramError> {
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
        return Err(ScramError::Malformed("nonce empty or too long"));
    }
    if !nonce.bytes().all(|b| (0x21..=0x7E).contains(&b) && b != b',') {
        return Err(ScramError::Malformed("nonce has non-printable characters"));
    }
    Ok(())
}

/// `saslname`: `=2C` is `,`, `=3D` is `=`, any other `=` is an error.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(rest.get(..i).unwrap_or(""));
        let escape = rest.get(i..i + 3);
        match escape {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in username")),
        }
        rest = rest.get(i + 3..).unwrap_or("");
    }
    out.push_str(rest);
    if out.is_empty() || out.len() > MAX_USERNAME_LEN || out.chars().any(char::is_control) {
        return Err(ScramError::Malformed("username empty, too long or with control characters"));
    }
    Ok(out)
}

/// Parses the client-first message from CONNECT or AUTH 0x19 Authentication Data.
pub fn parse_client_first(data: &[u8]) -> Result<ClientFirst, ScramError> {
    let s = text(data)?;
    let bare = match s.strip_prefix("n,,") {
        Some(bare) => bare,
        None if s.starts_with("y,") || s.starts_with("p=") => return Err(ScramError::ChannelBinding),
        None if s.starts_with("n,") => {
            return Err(ScramError::Malformed("authorization identity not supported"))
        }
        None => return Err(ScramError::Malformed("bad GS2 header")),
    };
    let mut fields = bare.split(',');
    let (Some(user), Some(nonce), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(ScramError::Malformed("expected n=<user>,r=<nonce> and no extensions"));
    };
    let user = user.strip_prefix("n=").ok_or(ScramError::Malformed("expected n=<user>"))?;
    let nonce = nonce.strip_prefix("r=").ok_or(ScramError::Malformed("expected r=<nonce>"))?;
    check_nonce(nonce)?;
    Ok(ClientFirst { username: decode_saslname(user)?, nonce: nonce.to_string(), bare: bare.to_string() })
}

/// Parses the client-final message from AUTH 0x18 Authentication Data.
pub fn parse_client_final(data: &[u8]) -> Result<ClientFinal, ScramError> {
    let s = text(data)?;
    let (without_proof, proof) =
        s.rsplit_once(",p=").ok_or(ScramError::Malformed("expected ,p=<proof> at the end"))?;
    let mut fields = without_proof.split(',');
    let (Some(binding), Some(nonce), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(ScramError::Malformed("expected c=<binding>,r=<nonce>,p=<proof> and no extensions"));
    };
    let binding = binding.strip_prefix("c=").ok_or(ScramError::Malformed("expected c=<binding>"))?;
    // base64("n,,"): the only GS2 header moat accepts in client-first.
    if binding != "biws" {
        return Err(ScramError::ChannelBinding);
    }
    let nonce = nonce.strip_prefix("r=").ok_or(ScramError::Malformed("expected r=<nonce>"))?;
    check_nonce(nonce)?;
    let proof = STANDARD.decode(proof).map_err(|_| ScramError::Malformed("proof is not base64"))?;
    Ok(ClientFinal { nonce: nonce.to_string(), proof, without_proof: without_proof.to_string() })
}
