//! A SCRAM client (RFC 5802) computed with the RustCrypto crates directly, independent of moat's
//! implementation, and the hand-made MQTT 5 packets of an enhanced-authentication exchange.

use anyhow::{anyhow, bail, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::packets::{self, mqtt_str, packet, props, RawPacket};

/// Which SCRAM hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha512,
}

impl Hash {
    pub fn method(self) -> &'static str {
        match self {
            Hash::Sha256 => "SCRAM-SHA-256",
            Hash::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The password-file key of this mechanism.
    pub fn key(self) -> &'static str {
        match self {
            Hash::Sha256 => "scram_sha256",
            Hash::Sha512 => "scram_sha512",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha512 => {
                let mut m = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => Sha256::digest(data).to_vec(),
            Hash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn salted(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Hash::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }

    /// The stored credential for the password file: `iterations:salt:StoredKey:ServerKey`.
    pub fn stored(self, password: &str, salt: &[u8], iterations: u32) -> String {
        let salted = self.salted(password.as_bytes(), salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        let stored = self.digest(&client_key);
        let server = self.hmac(&salted, b"Server Key");
        format!(
            "{iterations}:{}:{}:{}",
            STANDARD.encode(salt),
            STANDARD.encode(stored),
            STANDARD.encode(server)
        )
    }
}

/// One client side of an exchange.
pub struct ScramClient {
    pub hash: Hash,
    pub user: String,
    pub password: String,
    pub nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(hash: Hash, user: &str, password: &str) -> ScramClient {
        let nonce = format!("e2e{}", crate::unique("n").replace('-', ""));
        ScramClient { hash, user: user.into(), password: password.into(), nonce, server_signature: None }
    }

    fn bare(&self) -> String {
        format!("n={},r={}", self.user.replace('=', "=3D").replace(',', "=2C"), self.nonce)
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.bare()).into_bytes()
    }

    /// The client-final message for `server_first`, using `nonce_override` instead of the
    /// server's combined nonce when given (to test a wrong nonce).
    pub fn client_final(&mut self, server_first: &[u8], nonce_override: Option<&str>) -> Result<Vec<u8>> {
        let server_first = std::str::from_utf8(server_first)?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            if let Some(v) = field.strip_prefix("r=") {
                nonce = Some(v.to_string());
            } else if let Some(v) = field.strip_prefix("s=") {
                salt = Some(STANDARD.decode(v)?);
            } else if let Some(v) = field.strip_prefix("i=") {
                iterations = Some(v.parse::<u32>()?);
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            bail!("server-first incomplete: {server_first}");
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() < self.nonce.len() + 18 {
            bail!("server nonce does not extend ours by 18+ characters: {nonce}");
        }
        let nonce = nonce_override.map_or(nonce, str::to_string);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.bare());
        let salted = self.hash.salted(self.password.as_bytes(), &salt, iterations);
        let client_key = self.hash.hmac(&salted, b"Client Key");
        let stored = self.hash.digest(&client_key);
        let signature = self.hash.hmac(&stored, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let server_key = self.hash.hmac(&salted, b"Server Key");
        self.server_signature = Some(self.hash.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks `v=<ServerSignature>` (the server proves it knows the credential).
    pub fn verify_server_final(&self, data: &[u8]) -> Result<()> {
        let text = std::str::from_utf8(data)?;
        let sig = text.strip_prefix("v=").ok_or_else(|| anyhow!("server-final is not v=...: {text}"))?;
        let expected = self.server_signature.as_ref().ok_or_else(|| anyhow!("no exchange yet"))?;
        if STANDARD.decode(sig)? != *expected {
            bail!("server signature does not verify");
        }
        Ok(())
    }
}

/// Authentication Method + Authentication Data properties (unencoded block).
fn auth_props(method: &str, data: &[u8]) -> Vec<u8> {
    let mut p = vec![0x15];
    p.extend(mqtt_str(method.as_bytes()));
    p.push(0x16);
    p.extend(mqtt_str(data));
    p
}

/// A v5 CONNECT (clean start, keep-alive 60) with Authentication Method and Data.
pub fn connect(client_id: &str, method: &str, data: &[u8], username: Option<&str>) -> Vec<u8> {
    let mut body = mqtt_str(b"MQTT");
    body.push(5);
    body.push(0x02 | if username.is_some() { 0x80 } else { 0 });
    body.extend(60u16.to_be_bytes());
    body.extend(props(&auth_props(method, data)));
    body.extend(mqtt_str(client_id.as_bytes()));
    if let Some(u) = username {
        body.extend(mqtt_str(u.as_bytes()));
    }
    packet(0x10, &body)
}

/// An AUTH packet with `reason`, method and data.
pub fn auth(reason: u8, method: &str, data: &[u8]) -> Vec<u8> {
    let mut body = vec![reason];
    body.extend(props(&auth_props(method, data)));
    packet(0xF0, &body)
}

/// (reason code, Authentication Method, Authentication Data) of an AUTH packet.
pub fn parse_auth(p: &RawPacket) -> Option<(u8, String, Vec<u8>)> {
    if p.packet_type() != packets::AUTH {
        return None;
    }
    let reason = *p.body.first()?;
    let (len, used) = packets::read_varint(p.body.get(1..)?)?;
    let props = packets::parse_v5_properties(p.body.get(1 + used..1 + used + len)?)?;
    let method = crate::policy::str_prop(&props, 0x15)?;
    let data = props.iter().find(|(id, _)| *id == 0x16).and_then(|(_, v)| v.get(2..)).map(<[u8]>::to_vec)?;
    Some((reason, method, data))
}

/// Authentication Method and Data of a v5 CONNACK.
pub fn connack_auth(p: &RawPacket) -> Option<(String, Vec<u8>)> {
    let props = p.v5_connack_properties()?;
    let method = crate::policy::str_prop(&props, 0x15)?;
    let data = props.iter().find(|(id, _)| *id == 0x16).and_then(|(_, v)| v.get(2..)).map(<[u8]>::to_vec)?;
    Some((method, data))
}
