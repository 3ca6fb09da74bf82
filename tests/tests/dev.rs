//! `moat dev`: throwaway PKI, embedded broker (or --upstream), printed commands that work.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use moat_e2e::procs::run_with_timeout;
use moat_e2e::{moat_command, net, unique, v311, DirectSubscriber, Mosquitto, Proc, QoS};
use tokio::io::{AsyncBufReadExt, BufReader};

const PEM_FILES: [&str; 5] = ["ca.crt", "server.crt", "server.key", "client.crt", "client.key"];

struct Dev {
    proc: Proc,
    dir: tempfile::TempDir,
    port: u16,
    admin_port: u16,
    _logs: tempfile::TempDir,
}

impl Dev {
    async fn start(upstream: Option<&str>) -> Dev {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::Builder::new().prefix("moat-e2e-dev-").tempdir().unwrap();
            let logs = tempfile::tempdir().unwrap();
            let (port, admin_port) = (net::free_port(), net::free_port());
            let mut cmd = moat_command();
            cmd.arg("dev")
                .arg("--dir")
                .arg(dir.path())
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--admin")
                .arg(format!("127.0.0.1:{admin_port}"));
            if let Some(u) = upstream {
                cmd.arg("--upstream").arg(u);
            }
            let mut proc = Proc::spawn("moat-dev", cmd, logs.path()).unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(s) = proc.try_exit() {
                    last = format!("moat dev exited early ({s})\n{}", proc.logs());
                    break;
                }
                if proc.stdout().lines().any(|l| l.trim().starts_with("moat dev ready")) {
                    assert!(
                        net::can_connect(port).await,
                        "`moat dev ready` printed but {port} does not accept\n{}",
                        proc.logs()
                    );
                    return Dev { proc, dir, port, admin_port, _logs: logs };
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no `moat dev ready` line within 20 s\n{}",
                    proc.logs()
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            if !last.to_lowercase().contains("in use") {
                break;
            }
        }
        panic!("{last}");
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn sigint_exits_zero(mut self) {
        self.proc.signal(libc::SIGINT);
        let status = self
            .proc
            .wait_exit(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("moat dev still running 10 s after SIGINT\n{}", self.proc.logs()));
        assert!(status.success(), "moat dev exit status after SIGINT: {status}\n{}", self.proc.logs());
        assert!(!net::can_connect(self.port).await, "listener still up after exit");
    }
}

fn assert_pem_files(dir: &Path) {
    for f in PEM_FILES {
        let p = dir.join(f);
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let want = if f.ends_with(".key") { "PRIVATE KEY-----" } else { "-----BEGIN CERTIFICATE-----" };
        assert!(text.contains(want), "{f} is not PEM of the right kind:\n{text}");
    }
}

/// The printed commands: continuation lines joined, shell prompt stripped.
fn printed_command(stdout: &str, program: &str) -> Option<String> {
    let joined = stdout.replace("\\\r\n", " ").replace("\\\n", " ");
    joined.lines().find_map(|l| l.find(program).map(|i| l[i..].trim().to_string()))
}

/// Replaces the value after `-p`/`--port` by `port` (the only adaptation allowed).
fn with_port(cmd: &str, port: u16) -> String {
    let mut out = Vec::new();
    let mut replace_next = false;
    for w in cmd.split(' ') {
        if replace_next && !w.is_empty() {
            out.push(port.to_string());
            replace_next = false;
            continue;
        }
        replace_next = w == "-p" || w == "--port";
        out.push(w.to_string());
    }
    out.join(" ")
}

#[tokio::test]
async fn dev_writes_pki_prints_working_commands_and_stops_on_sigint() {
    let dev = Dev::start(None).await;
    assert_pem_files(dev.dir.path());
    let stdout = dev.proc.stdout();
    let sub_cmd = printed_command(&stdout, "mosquitto_sub")
        .unwrap_or_else(|| panic!("no mosquitto_sub command:\n{stdout}"));
    let pub_cmd = printed_command(&stdout, "mosquitto_pub")
        .unwrap_or_else(|| panic!("no mosquitto_pub command:\n{stdout}"));
    for c in [&sub_cmd, &pub_cmd] {
        assert!(c.contains("demo/"), "command not under demo/#: {c}");
        assert!(
            c.contains(&dev.dir.path().join("ca.crt").display().to_string()),
            "command does not use DIR/ca.crt: {c}"
        );
    }
    if !sub_cmd.contains(&dev.port.to_string()) {
        eprintln!("note: printed commands do not mention --listen port {}; adapting", dev.port);
    }
    let sub_cmd = with_port(&sub_cmd, dev.port);
    let pub_cmd = with_port(&pub_cmd, dev.port);

    // Run the printed subscriber as-is (through sh, so its quoting applies; stdbuf only
    // line-buffers its stdout, which is a pipe here).
    let mut sub = tokio::process::Command::new("sh");
    sub.arg("-c")
        .arg(format!("exec stdbuf -oL {sub_cmd}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut sub = sub.spawn().unwrap();
    let mut lines = BufReader::new(sub.stdout.take().unwrap()).lines();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            let _ = tx.send(l);
        }
    });
    // The subscriber has no readiness signal: publish (printed command) until it prints.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let received = loop {
        let mut publ = tokio::process::Command::new("sh");
        publ.arg("-c").arg(&pub_cmd);
        let out = run_with_timeout(publ, Duration::from_secs(10)).await.unwrap();
        assert!(
            out.status.success(),
            "printed mosquitto_pub failed: {pub_cmd}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            dev.proc.logs()
        );
        if let Ok(Some(l)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            break l;
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = sub.kill().await;
            let err = sub.wait_with_output().await.map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
            panic!("printed mosquitto_sub never printed a message\nsub: {sub_cmd}\npub: {pub_cmd}\nsub stderr: {err:?}\n{}", dev.proc.logs());
        }
    };
    assert!(!received.trim().is_empty());
    if let Some(m) = message_of(&pub_cmd) {
        assert!(received.contains(&m), "subscriber printed {received:?}, published {m:?}");
    }
    let _ = sub.kill().await;
    dev.sigint_exits_zero().await;
}

/// The `-m` argument of a printed mosquitto_pub, if simply quoted.
fn message_of(cmd: &str) -> Option<String> {
    let i = cmd.find(" -m ")? + 4;
    let rest = &cmd[i..];
    let q = rest.chars().next()?;
    if q == '\'' || q == '"' {
        let end = rest[1..].find(q)?;
        Some(rest[1..1 + end].to_string())
    } else {
        rest.split_whitespace().next().map(str::to_string)
    }
}

fn dev_tls(dev: &Dev, with_cert: bool) -> std::sync::Arc<rustls::ClientConfig> {
    let client = moat_e2e::pki::CertFiles {
        cert: dev.file("client.crt"),
        key: dev.file("client.key"),
        // Not used: no CRL is written for the dev PKI.
        serial: 0,
    };
    let ca = dev.file("ca.crt");
    moat_e2e::tls::client_config(&[ca.as_path()], with_cert.then_some(&client))
}

#[tokio::test]
async fn dev_embedded_broker_rumqttc_v311_roundtrip() {
    let dev = Dev::start(None).await;
    let topic = format!("demo/{}", unique("e2e"));
    for with_cert in [false, true] {
        let sub =
            v311::Client::connect(v311::options(&unique("dsub"), dev.port, Some(dev_tls(&dev, with_cert))))
                .await
                .unwrap_or_else(|e| {
                    panic!("connect via moat dev (client cert: {with_cert}): {e}\n{}", dev.proc.logs())
                });
        sub.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
        let publ =
            v311::Client::connect(v311::options(&unique("dpub"), dev.port, Some(dev_tls(&dev, with_cert))))
                .await
                .unwrap();
        let data = moat_e2e::payload(2000, with_cert as u8);
        publ.publish(&topic, QoS::AtLeastOnce, false, data.clone()).await.unwrap();
        let got = sub.recv_publish(Duration::from_secs(10), |p| p.topic == topic).await.unwrap();
        assert_eq!(got.payload.as_ref(), &data[..]);
        publ.disconnect().await;
        sub.disconnect().await;
    }
    // The server certificate is valid for localhost, 127.0.0.1 and ::1.
    for name in ["localhost", "127.0.0.1", "::1"] {
        let r = moat_e2e::RawClient::connect_as(dev.port, dev_tls(&dev, false), name).await;
        assert!(r.is_ok(), "dev server cert not valid for {name}: {:?}", r.err());
    }
    let r = moat_e2e::RawClient::connect_as(dev.port, dev_tls(&dev, false), "example.com").await;
    assert!(r.is_err(), "name verification is not effective");
    // Admin is up on --admin.
    let h = moat_e2e::http::get(dev.admin_port, "/healthz").await.unwrap();
    assert_eq!(h.status, 200);
    // The printed `moat ctl` command works as written: token file, ban store.
    let token = dev.dir.path().join("admin.token");
    let mut cmd = tokio::process::Command::new(moat_e2e::moat_bin());
    cmd.args(["ctl", "--url", &format!("http://127.0.0.1:{}", dev.admin_port), "--token-file"])
        .arg(&token)
        .args(["bans", "add", "clientid", "dev-banned", "--duration", "10m"]);
    let out = moat_e2e::procs::run_with_timeout(cmd, Duration::from_secs(20)).await.unwrap();
    assert!(out.status.success(), "moat ctl in dev: {}", String::from_utf8_lossy(&out.stderr));
    dev.sigint_exits_zero().await;
}

#[tokio::test]
async fn dev_with_upstream_uses_that_broker() {
    let broker = Mosquitto::start().await;
    let direct = DirectSubscriber::start(broker.port).await.unwrap();
    let dev = Dev::start(Some(&broker.addr())).await;
    assert_pem_files(dev.dir.path());
    let topic = format!("demo/{}", unique("up"));
    let publ = v311::Client::connect(v311::options(&unique("dup"), dev.port, Some(dev_tls(&dev, false))))
        .await
        .unwrap();
    publ.publish(&topic, QoS::ExactlyOnce, false, b"to mosquitto".to_vec()).await.unwrap();
    direct.wait_for(&topic, b"to mosquitto", Duration::from_secs(10)).await.unwrap();
    dev.sigint_exits_zero().await;
}
