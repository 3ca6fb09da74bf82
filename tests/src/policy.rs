//! Helpers for the authentication and ACL end-to-end tests: policy files on disk, known password
//! hashes, packets the generic builders do not cover (multi-filter SUBSCRIBE, v5 PUBLISH with
//! properties, PUBREL), decoders for what moat answered or forwarded (CONNECT fields, SUBSCRIBE
//! filters, SUBACK codes, acks), a credentialed recorder for a password-protected broker, and
//! metric samples selected by label.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::mqtt::{v311, QoS, EVENT_TIMEOUT};
use crate::packets::{self, mqtt_str, packet, props, read_varint, RawPacket, Version};
use crate::procs::run_with_timeout;

/// argon2id known answer (RFC 9106 reference vector as PHC string, m=256 KiB so a debug build
/// verifies it quickly): password `password`, salt `somesalt`.
pub const ARGON2ID_PASSWORD: &str = "password";
pub const ARGON2ID_HASH: &str =
    "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
/// bcrypt known answer (cost 4).
pub const BCRYPT_PASSWORD: &str = "correctbatteryhorsestapler";
pub const BCRYPT_HASH: &str = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";

/// A private, world-readable directory for policy files (mosquitto drops privileges when run as
/// root and must still read a password file put here).
pub struct PolicyDir {
    dir: tempfile::TempDir,
}

impl PolicyDir {
    pub fn new() -> PolicyDir {
        let dir = tempfile::Builder::new().prefix("moat-e2e-policy-").tempdir().expect("policy temp dir");
        set_mode(dir.path(), 0o755);
        PolicyDir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `name` (world-readable) and returns the absolute path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write policy file");
        set_mode(&p, 0o644);
        p
    }
}

impl Default for PolicyDir {
    fn default() -> Self {
        Self::new()
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `mosquitto_passwd -b [-c] FILE USER PASSWORD`.
pub async fn mosquitto_passwd(file: &Path, user: &str, password: &str, create: bool) -> Result<()> {
    let mut cmd = tokio::process::Command::new("mosquitto_passwd");
    cmd.arg("-b");
    if create {
        cmd.arg("-c");
    }
    cmd.arg(file).arg(user).arg(password);
    let out = run_with_timeout(cmd, Duration::from_secs(20)).await?;
    if !out.status.success() {
        bail!("mosquitto_passwd failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    set_mode(file, 0o644);
    Ok(())
}

/// A Mosquitto-format hash (`$7$…`, PBKDF2-SHA512) of `password`, made by `mosquitto_passwd`.
pub async fn mosquitto_hash(password: &str) -> Result<String> {
    let dir = tempfile::tempdir()?;
    let f = dir.path().join("pw");
    mosquitto_passwd(&f, "u", password, true).await?;
    let text = std::fs::read_to_string(&f)?;
    let line = text.lines().next().context("empty mosquitto_passwd output")?;
    Ok(line
        .strip_prefix("u:")
        .with_context(|| format!("unexpected mosquitto_passwd line {line:?}"))?
        .to_string())
}

/// A YAML password file for moat: `(user, hash)` pairs.
pub fn password_yaml(users: &[(&str, &str)]) -> String {
    let mut y = String::from("users:\n");
    for (u, h) in users {
        y.push_str(&format!("  {u}:\n    password_hash: \"{h}\"\n"));
    }
    y
}

/// A CONNECT with credentials.
pub fn connect_with(
    version: Version,
    client_id: &str,
    username: Option<&str>,
    password: Option<&[u8]>,
) -> Vec<u8> {
    let mut c = packets::Connect::new(version, client_id);
    c.username = username.map(str::to_string);
    c.password = password.map(<[u8]>::to_vec);
    c.encode()
}

/// SUBSCRIBE with several `(filter, options)` entries.
pub fn subscribe_many(version: Version, pid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pid.to_be_bytes().to_vec();
    if version == Version::V5 {
        body.extend(props(&[]));
    }
    for (f, o) in filters {
        body.extend(mqtt_str(f.as_bytes()));
        body.push(*o);
    }
    packet(0x82, &body)
}

/// A v5 PUBLISH with the given encoded properties (e.g. `[0x23, 0, 1]` = Topic Alias 1).
pub fn publish_v5(topic: &str, qos: u8, pid: u16, properties: &[u8], payload: &[u8]) -> Vec<u8> {
    let header = 0x30 | (qos << 1);
    let pid = (qos > 0).then_some(pid);
    packet(header, &packets::publish_body(Version::V5, topic.as_bytes(), pid, properties, payload))
}

/// Topic Alias property.
pub fn alias_prop(alias: u16) -> Vec<u8> {
    let mut p = vec![0x23];
    p.extend(alias.to_be_bytes());
    p
}

/// PUBREL for `pid` (3.1.1 form; valid in v5 too, meaning reason 0x00).
pub fn pubrel(pid: u16) -> Vec<u8> {
    let [a, b] = pid.to_be_bytes();
    vec![0x62, 0x02, a, b]
}

/// Packet id and reason code of a PUBACK/PUBREC/PUBREL/PUBCOMP (no reason byte means 0x00).
pub fn ack(p: &RawPacket) -> Option<(u16, u8)> {
    let id = u16::from_be_bytes([*p.body.first()?, *p.body.get(1)?]);
    Some((id, p.body.get(2).copied().unwrap_or(0)))
}

/// Packet id and return/reason codes of a SUBACK.
pub fn suback(p: &RawPacket, version: Version) -> Option<(u16, Vec<u8>)> {
    if p.packet_type() != packets::SUBACK {
        return None;
    }
    let id = u16::from_be_bytes([*p.body.first()?, *p.body.get(1)?]);
    let mut at = 2;
    if version == Version::V5 {
        let (len, used) = read_varint(p.body.get(at..)?)?;
        at += used + len;
    }
    Some((id, p.body.get(at..)?.to_vec()))
}

/// Packet id and `(filter, options)` of a SUBSCRIBE.
pub fn subscribe_filters(p: &RawPacket, version: Version) -> Option<(u16, Vec<(String, u8)>)> {
    if p.packet_type() != packets::SUBSCRIBE {
        return None;
    }
    let b = &p.body;
    let id = u16::from_be_bytes([*b.first()?, *b.get(1)?]);
    let mut at = 2;
    if version == Version::V5 {
        let (len, used) = read_varint(b.get(at..)?)?;
        at += used + len;
    }
    let mut out = Vec::new();
    while at < b.len() {
        let (s, next) = read_str(b, at)?;
        out.push((String::from_utf8_lossy(s).into_owned(), *b.get(next)?));
        at = next + 1;
    }
    Some((id, out))
}

fn read_str(b: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]) as usize;
    Some((b.get(at + 2..at + 2 + len)?, at + 2 + len))
}

/// The fields of a CONNECT as moat forwarded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectInfo {
    pub level: u8,
    pub flags: u8,
    pub client_id: String,
    pub will_topic: Option<String>,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    /// v5 CONNECT properties.
    pub properties: Vec<(u8, Vec<u8>)>,
}

/// Decodes a CONNECT (3.1.1 or v5).
pub fn parse_connect(p: &RawPacket) -> Option<ConnectInfo> {
    if p.packet_type() != packets::CONNECT {
        return None;
    }
    let b = &p.body;
    let (_name, at) = read_str(b, 0)?;
    let level = *b.get(at)?;
    let flags = *b.get(at + 1)?;
    let mut at = at + 4;
    let mut properties = Vec::new();
    if level == 5 {
        let (len, used) = read_varint(b.get(at..)?)?;
        properties = packets::parse_v5_properties(b.get(at + used..at + used + len)?)?;
        at += used + len;
    }
    let (id, next) = read_str(b, at)?;
    at = next;
    let mut will_topic = None;
    if flags & 0x04 != 0 {
        if level == 5 {
            let (len, used) = read_varint(b.get(at..)?)?;
            at += used + len;
        }
        let (t, next) = read_str(b, at)?;
        will_topic = Some(String::from_utf8_lossy(t).into_owned());
        let (_payload, next) = read_str(b, next)?;
        at = next;
    }
    let mut username = None;
    if flags & 0x80 != 0 {
        let (u, next) = read_str(b, at)?;
        username = Some(String::from_utf8_lossy(u).into_owned());
        at = next;
    }
    let mut password = None;
    if flags & 0x40 != 0 {
        let (pw, _) = read_str(b, at)?;
        password = Some(pw.to_vec());
    }
    Some(ConnectInfo {
        level,
        flags,
        client_id: String::from_utf8_lossy(id).into_owned(),
        will_topic,
        username,
        password,
        properties,
    })
}

/// A v5 UTF-8 string property value (2-byte length + bytes) as text.
pub fn str_prop(props: &[(u8, Vec<u8>)], id: u8) -> Option<String> {
    let (_, v) = props.iter().find(|(i, _)| *i == id)?;
    let (s, _) = read_str(v, 0)?;
    Some(String::from_utf8_lossy(s).into_owned())
}

/// A v5 two-byte integer property.
pub fn u16_prop(props: &[(u8, Vec<u8>)], id: u8) -> Option<u16> {
    let (_, v) = props.iter().find(|(i, _)| *i == id)?;
    Some(u16::from_be_bytes([*v.first()?, *v.get(1)?]))
}

/// Sum of the samples of `name` whose labels include every `(key, value)` of `labels`.
pub fn metric_with_labels(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in crate::http::metric_lines(text, name) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let Some(inner) = rest.strip_prefix('{').and_then(|r| r.split_once('}')) else {
            continue;
        };
        let (label_text, value) = inner;
        if labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\""))) {
            if let Some(v) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
                *found.get_or_insert(0.0) += v;
            }
        }
    }
    found
}

/// A plaintext rumqttc client straight on a broker that requires credentials, subscribed to
/// `#`: records what the broker accepted (the [`crate::DirectSubscriber`] of password-protected
/// brokers).
pub struct BrokerRecorder {
    pub client: v311::Client,
}

impl BrokerRecorder {
    pub async fn start(broker_port: u16, user: &str, password: &str) -> Result<BrokerRecorder> {
        let mut o = v311::options(&crate::unique("e2e-recorder"), broker_port, None);
        o.set_credentials(user, password);
        let client = v311::Client::connect(o).await?;
        client.subscribe("#", QoS::ExactlyOnce).await?;
        Ok(BrokerRecorder { client })
    }

    pub async fn wait_for(&self, topic: &str, payload: &[u8]) -> Result<()> {
        self.client
            .recv_publish(EVENT_TIMEOUT, |p| p.topic == topic && p.payload.as_ref() == payload)
            .await
            .map(|_| ())
            .map_err(|e| anyhow!("broker never got {topic}: {e}; got {:?}", self.topics()))
    }

    /// Round-trips a marker through the broker: everything it accepted before is recorded.
    pub async fn barrier(&self) -> Result<()> {
        let topic = crate::unique("moat-e2e/recorder-barrier");
        self.client.publish(&topic, QoS::AtLeastOnce, false, b"barrier".to_vec()).await?;
        self.client.recv_publish(EVENT_TIMEOUT, |p| p.topic == topic).await?;
        Ok(())
    }

    pub fn topics(&self) -> Vec<String> {
        self.client.publishes().into_iter().map(|p| p.topic).collect()
    }
}
