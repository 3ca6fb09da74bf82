//! `moat dev`: a throwaway PKI, an embedded broker and a TLS listener, so a newcomer sees moat
//! work with one command. Nothing here is meant for production.

mod broker;
mod pki;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use broker::{start as start_embedded_broker, BrokerError};
pub use pki::{write_dev_pki, PkiError};

/// The options of `moat dev`.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub dir: PathBuf,
    pub upstream: Option<String>,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

/// The main config `moat dev` writes next to its certificates (and then loads like any other).
pub fn dev_config_yaml(listen: SocketAddr, admin: SocketAddr, upstream: &str) -> String {
    format!(
        "# Written by `moat dev`: a throwaway setup, not for production.\n\
         listeners:\n\
         \x20 - name: dev-tls\n\
         \x20   bind: \"{listen}\"\n\
         \x20   tls:\n\
         \x20     cert: server.crt\n\
         \x20     key: server.key\n\
         \x20     client_ca: ca.crt\n\
         \x20     client_auth: optional\n\
         upstream:\n\
         \x20 address: \"{upstream}\"\n\
         \x20 allow_insecure: true\n\
         admin:\n\
         \x20 bind: \"{admin}\"\n\
         \x20 tokens_file: admin-tokens.yaml\n\
         bans:\n\
         \x20 store: bans.json\n\
         authentication:\n\
         \x20 - name: dev-cert\n\
         \x20   type: x509\n\
         \x20   username_from: cn\n\
         \x20 - name: dev-anonymous\n\
         \x20   type: anonymous\n\
         authorization:\n\
         \x20 acl: acl.yaml\n"
    )
}

/// The example ACL `moat dev` runs with (policies/dev-acl.yaml): publish and subscribe under
/// `demo/`, nothing else.
pub const DEV_ACL: &str = include_str!("../../../policies/dev-acl.yaml");

/// Writes a fresh random admin token: `admin.token` (the token, for `moat ctl --token-file`) and
/// `admin-tokens.yaml` (the admin API's token file). Throwaway, like the rest of the dev setup.
pub fn write_dev_admin_token(dir: &Path) -> std::io::Result<()> {
    let mut bytes = [0u8; 24];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| std::io::Error::other("no secure random source"))?;
    let token = hex::encode(bytes);
    std::fs::write(dir.join("admin.token"), format!("{token}\n"))?;
    std::fs::write(
        dir.join("admin-tokens.yaml"),
        format!("# Written by `moat dev`: a throwaway token.\ntokens:\n  - name: dev\n    scope: admin\n    token: \"{token}\"\n"),
    )
}

/// The ready-to-paste `moat ctl` commands printed by `moat dev`.
pub fn ctl_commands(dir: &Path, admin: SocketAddr) -> String {
    let d = dir.display();
    let mut s = String::new();
    let _ = writeln!(s, "Operate it (admin API, token in {d}/admin.token):");
    let _ = writeln!(s, "  moat ctl --url http://{admin} --token-file {d}/admin.token clients list");
    let _ = writeln!(s, "  moat ctl --url http://{admin} --token-file {d}/admin.token bans add clientid some-device --duration 10m");
    s
}

/// The ready-to-paste client commands printed by `moat dev`.
pub fn client_commands(dir: &Path, listen: SocketAddr) -> String {
    let d = dir.display();
    let host = listen.ip();
    let port = listen.port();
    let mut s = String::new();
    let _ = writeln!(s, "Subscribe (TLS, server verified against the dev CA):");
    let _ = writeln!(s, "  mosquitto_sub -h {host} -p {port} --cafile {d}/ca.crt -t 'demo/#' -v");
    let _ = writeln!(s, "Publish (mutual TLS with the dev client certificate, CN dev-client):");
    let _ = writeln!(
        s,
        "  mosquitto_pub -h {host} -p {port} --cafile {d}/ca.crt --cert {d}/client.crt --key {d}/client.key -t demo/hello -m 'hello through moat'"
    );
    s
}
