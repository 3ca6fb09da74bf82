//! Child processes (mosquitto, moat) that can never outlive the test: killed on Drop
//! (also while panicking) and, via PR_SET_PDEATHSIG, when the test process itself dies.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::net;
use crate::pki::Pki;

/// A spawned process with stdout/stderr captured to files.
pub struct Proc {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and output captured under `log_dir/<name>.{out,err}`.
    /// Call only from the test's own thread (PDEATHSIG is tied to the spawning thread).
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Result<Proc> {
        let stdout = log_dir.join(format!("{name}.out"));
        let stderr = log_dir.join(format!("{name}.err"));
        cmd.stdin(Stdio::null()).stdout(File::create(&stdout)?).stderr(File::create(&stderr)?);
        // SAFETY: prctl is async-signal-safe; no allocation between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("spawn {name}: {cmd:?}"))?;
        Ok(Proc { name: name.to_string(), child, stdout, stderr, status: None })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, sig: i32) {
        if self.status.is_none() {
            // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(self.child.id() as i32, sig);
            }
        }
    }

    /// The exit status if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Both outputs, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "----- {} stdout -----\n{}\n----- {} stderr -----\n{}",
            self.name,
            tail(&self.stdout(), 8000),
            self.name,
            tail(&self.stderr(), 8000)
        )
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A real mosquitto broker on a private loopback port.
pub struct Mosquitto {
    pub port: u16,
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

impl Mosquitto {
    /// Plain MQTT on 127.0.0.1 (anonymous, no persistence).
    pub async fn start() -> Mosquitto {
        Self::start_with(|_| String::new()).await
    }

    /// Like [`Mosquitto::start`]; `extra(port)` returns extra config lines appended after the
    /// `listener` line (e.g. TLS settings for harness self-tests).
    pub async fn start_with(extra: impl Fn(u16) -> String) -> Mosquitto {
        let mut last_err = String::new();
        for _attempt in 0..4 {
            let dir = tempfile::Builder::new().prefix("moat-e2e-mosq-").tempdir().unwrap();
            let port = net::free_port();
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "per_listener_settings false\nallow_anonymous true\npersistence false\n\
                     log_dest stderr\nlog_type all\nlistener {port} 127.0.0.1\n{}\n",
                    extra(port)
                ),
            )
            .unwrap();
            let mut cmd = Command::new(MOSQUITTO);
            cmd.arg("-c").arg(&conf);
            let mut proc = Proc::spawn("mosquitto", cmd, dir.path()).expect("spawn mosquitto");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if proc.try_exit().is_some() {
                    last_err = proc.logs();
                    break;
                }
                let log = proc.stderr();
                if log.contains(" running") && net::can_connect(port).await {
                    return Mosquitto { port, proc, _dir: dir };
                }
                if tokio::time::Instant::now() >= deadline {
                    panic!("mosquitto did not become ready within 10s\n{}", proc.logs());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !last_err.contains("in use") {
                break;
            }
        }
        panic!("mosquitto failed to start:\n{last_err}");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Path of the moat binary: `$MOAT_BIN`, else `<workspace>/target/debug/moat`
/// (honouring `$CARGO_TARGET_DIR`).
pub fn moat_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MOAT_BIN") {
        return PathBuf::from(p);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let p = PathBuf::from(t).join("debug/moat");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/moat"))
}

/// A `Command` for the moat binary, with a helpful panic if it was not built.
pub fn moat_command() -> Command {
    let bin = moat_bin();
    assert!(
        bin.exists(),
        "moat binary not found at {}: run `cargo build -p moat --bin moat` first (or set MOAT_BIN)",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.env("RUST_LOG", std::env::var("MOAT_E2E_LOG").unwrap_or_else(|_| "debug".into()));
    cmd.env_remove("RUST_LOG_STYLE");
    cmd
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Optional,
    Required,
}

impl ClientAuth {
    fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        }
    }
}

/// What goes into the generated moat config.
#[derive(Clone, Debug)]
pub struct MoatOptions {
    pub client_auth: ClientAuth,
    /// `upstream.address`; set by [`crate::Env`] to the tap.
    pub upstream: String,
    pub upstream_connect_timeout: Option<String>,
    /// Raw YAML lines added inside the `upstream:` block (indent them by 2 spaces).
    pub upstream_extra: Option<String>,
    /// `timeouts.connect`
    pub connect_timeout: Option<String>,
    pub tls_handshake_timeout: Option<String>,
    pub shutdown_grace: Option<String>,
    pub max_packet_size: Option<u32>,
    /// Adds a second listener `plain` with `plaintext: true` on 127.0.0.1.
    pub plaintext_listener: bool,
    /// `--log-format` on the command line.
    pub log_format: String,
    /// Raw YAML appended to the config (authentication, authorization, broker_identity);
    /// `None` appends an explicit anonymous authenticator, so tests about other things connect.
    pub policy_yaml: Option<String>,
    /// Raw YAML lines added inside the TLS listener's `tls:` block (indent them by 6 spaces).
    pub tls_extra: Option<String>,
    /// Serve the TLS listener as MQTT over WebSocket (wss) on this path.
    pub websocket_path: Option<String>,
    /// Raw YAML lines added to the TLS listener itself (indent them by 4 spaces).
    pub listener_extra: Option<String>,
    /// Raw YAML lines added inside the `admin:` block (indent them by 2 spaces).
    pub admin_extra: Option<String>,
    /// Serve the admin API over HTTPS with the test server certificate.
    pub admin_tls: bool,
    /// Serve this certificate and key instead of `pki.server` (e.g. paths through a
    /// Kubernetes-style `..data` symlink, for reload tests).
    pub server_files: Option<crate::pki::CertFiles>,
    /// Raw YAML of further listeners (list items indented by 2 spaces), e.g. a `tls_psk` one.
    /// [`Moat::start`] waits only for its own listeners: wait for these in the test.
    pub extra_listeners: Option<String>,
}

/// The policy part of configs that are not about authentication.
pub const ANONYMOUS_AUTH: &str = "authentication:\n  - name: anonymous\n    type: anonymous\n";

impl Default for MoatOptions {
    fn default() -> Self {
        MoatOptions {
            client_auth: ClientAuth::None,
            upstream: "127.0.0.1:1883".into(),
            upstream_connect_timeout: Some("2s".into()),
            upstream_extra: None,
            connect_timeout: None,
            tls_handshake_timeout: None,
            shutdown_grace: Some("2s".into()),
            max_packet_size: None,
            plaintext_listener: false,
            log_format: "text".into(),
            policy_yaml: None,
            tls_extra: None,
            websocket_path: None,
            listener_extra: None,
            admin_extra: None,
            admin_tls: false,
            server_files: None,
            extra_listeners: None,
        }
    }
}

impl MoatOptions {
    /// Renders the YAML config for the given ports.
    pub fn render(&self, pki: &Pki, port: u16, admin_port: u16, plain_port: Option<u16>) -> String {
        let mut y = String::new();
        y.push_str("listeners:\n");
        y.push_str(&format!("  - name: mqtts\n    bind: \"127.0.0.1:{port}\"\n    tls:\n"));
        let server = self.server_files.as_ref().unwrap_or(&pki.server);
        y.push_str(&format!("      cert: \"{}\"\n", server.cert.display()));
        y.push_str(&format!("      key: \"{}\"\n", server.key.display()));
        if self.client_auth != ClientAuth::None {
            y.push_str(&format!("      client_ca: \"{}\"\n", pki.ca_cert().display()));
        }
        y.push_str(&format!("      client_auth: {}\n", self.client_auth.as_str()));
        if let Some(extra) = &self.tls_extra {
            y.push_str(extra);
        }
        if let Some(extra) = &self.listener_extra {
            y.push_str(extra);
        }
        if let Some(path) = &self.websocket_path {
            y.push_str(&format!("    websocket:\n      path: \"{path}\"\n"));
        }
        if let Some(p) = plain_port {
            y.push_str(&format!("  - name: plain\n    bind: \"127.0.0.1:{p}\"\n    plaintext: true\n"));
        }
        if let Some(extra) = &self.extra_listeners {
            y.push_str(extra);
        }
        y.push_str(&format!("upstream:\n  address: \"{}\"\n", self.upstream));
        if let Some(t) = &self.upstream_connect_timeout {
            y.push_str(&format!("  connect_timeout: {t}\n"));
        }
        if let Some(extra) = &self.upstream_extra {
            y.push_str(extra);
        }
        let mut timeouts = String::new();
        if let Some(t) = &self.tls_handshake_timeout {
            timeouts.push_str(&format!("  tls_handshake: {t}\n"));
        }
        if let Some(t) = &self.connect_timeout {
            timeouts.push_str(&format!("  connect: {t}\n"));
        }
        if let Some(t) = &self.shutdown_grace {
            timeouts.push_str(&format!("  shutdown_grace: {t}\n"));
        }
        if !timeouts.is_empty() {
            y.push_str("timeouts:\n");
            y.push_str(&timeouts);
        }
        if let Some(m) = self.max_packet_size {
            y.push_str(&format!("limits:\n  max_packet_size: {m}\n"));
        }
        y.push_str(&format!("admin:\n  bind: \"127.0.0.1:{admin_port}\"\n"));
        if let Some(extra) = &self.admin_extra {
            y.push_str(extra);
        }
        if self.admin_tls {
            y.push_str(&format!(
                "  tls:\n    cert: \"{}\"\n    key: \"{}\"\n",
                pki.server.cert.display(),
                pki.server.key.display()
            ));
        }
        y.push_str(self.policy_yaml.as_deref().unwrap_or(ANONYMOUS_AUTH));
        y
    }
}

/// A running `moat run` process.
pub struct Moat {
    /// The TLS listener.
    pub port: u16,
    pub admin_port: u16,
    pub plain_port: Option<u16>,
    pub config_path: PathBuf,
    pub proc: Proc,
    _dir: tempfile::TempDir,
}

impl Moat {
    /// Writes a config for `opts` and starts `moat run -c CONFIG`; returns once the TLS
    /// listener (and the plaintext one, if any) and the admin listener accept TCP.
    pub async fn start(pki: &Pki, opts: &MoatOptions) -> Moat {
        let mut last = String::new();
        for _attempt in 0..4 {
            let dir = tempfile::Builder::new().prefix("moat-e2e-moat-").tempdir().unwrap();
            let port = net::free_port();
            let admin_port = net::free_port();
            let plain_port = opts.plaintext_listener.then(net::free_port);
            let config_path = dir.path().join("moat.yaml");
            std::fs::write(&config_path, opts.render(pki, port, admin_port, plain_port)).unwrap();
            let mut cmd = moat_command();
            cmd.arg("run").arg("-c").arg(&config_path).arg("--log-format").arg(&opts.log_format);
            let mut proc = Proc::spawn("moat", cmd, dir.path()).expect("spawn moat");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            loop {
                if let Some(status) = proc.try_exit() {
                    last = format!(
                        "moat exited early with {status}\nconfig:\n{}\n{}",
                        std::fs::read_to_string(&config_path).unwrap_or_default(),
                        proc.logs()
                    );
                    break;
                }
                let mut ready = net::can_connect(port).await && net::can_connect(admin_port).await;
                if let Some(p) = plain_port {
                    ready = ready && net::can_connect(p).await;
                }
                if ready {
                    return Moat { port, admin_port, plain_port, config_path, proc, _dir: dir };
                }
                if tokio::time::Instant::now() >= deadline {
                    panic!(
                        "moat did not accept TCP on {port}/{admin_port} within 15s\nconfig:\n{}\n{}",
                        std::fs::read_to_string(&config_path).unwrap_or_default(),
                        proc.logs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !last.to_lowercase().contains("in use") {
                break;
            }
        }
        panic!("{last}");
    }

    pub fn logs(&self) -> String {
        self.proc.logs()
    }

    /// Whether moat logs `needle` within `within`: a client sees a refusal before moat has
    /// written the line that explains it.
    pub async fn logged(&self, needle: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if self.logs().contains(needle) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs a command to completion with a timeout (kills it on timeout).
pub async fn run_with_timeout(
    mut cmd: tokio::process::Command,
    timeout: Duration,
) -> Result<std::process::Output> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let child = cmd.spawn().with_context(|| format!("spawn {cmd:?}"))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(out) => Ok(out?),
        Err(_) => bail!("{cmd:?} did not finish within {timeout:?}"),
    }
}
