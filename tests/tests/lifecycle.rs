//! Process and connection lifecycle: upstream down, CONNECT timeout, signals, `moat check`,
//! and the admin endpoints.

use std::time::{Duration, Instant};

use moat_e2e::http::{self, metric_lines, metric_sum};
use moat_e2e::packets::{self, Version};
use moat_e2e::procs::run_with_timeout;
use moat_e2e::{net, unique, v311, Env, Moat, MoatOptions, Pki, QoS, RawClient};

/// moat whose upstream is a loopback port nothing listens on (reserved while it lives).
async fn moat_with_dead_upstream(pki: &Pki) -> (Moat, net::ClosedPort) {
    let dead = net::ClosedPort::new();
    let opts = MoatOptions { upstream: format!("127.0.0.1:{}", dead.port), ..Default::default() };
    (Moat::start(pki, &opts).await, dead)
}

// ----- 8. broker down

#[tokio::test]
async fn broker_down_v311_connack_0x03_then_close() {
    let pki = Pki::new();
    let (moat, _dead) = moat_with_dead_upstream(&pki).await;
    let mut c = RawClient::connect(moat.port, pki.client_config()).await.unwrap();
    c.send(&packets::connect(Version::V311, &unique("down"))).await.unwrap();
    let closed =
        c.read_until_closed(Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}\n{}", moat.logs()));
    let got: Vec<_> = closed.packets.iter().map(|p| p.describe()).collect();
    assert_eq!(closed.packets.len(), 1, "expected exactly CONNACK then close, got {got:?}");
    assert_eq!(closed.packets[0].to_bytes(), vec![0x20, 0x02, 0x00, 0x03], "got {got:?}");
}

#[tokio::test]
async fn broker_down_v5_connack_0x88_then_close() {
    let pki = Pki::new();
    let (moat, _dead) = moat_with_dead_upstream(&pki).await;
    let mut c = RawClient::connect(moat.port, pki.client_config()).await.unwrap();
    c.send(&packets::connect(Version::V5, &unique("down5"))).await.unwrap();
    let closed =
        c.read_until_closed(Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}\n{}", moat.logs()));
    let got: Vec<_> = closed.packets.iter().map(|p| p.describe()).collect();
    assert_eq!(closed.packets.len(), 1, "expected exactly CONNACK then close, got {got:?}");
    let ack = &closed.packets[0];
    assert_eq!(ack.packet_type(), packets::CONNACK, "got {got:?}");
    assert_eq!(ack.body[0], 0x00, "session present must be 0");
    assert_eq!(ack.connack_code(), Some(0x88), "got {got:?}");
}

#[tokio::test]
async fn broker_down_rumqttc_sees_refusal() {
    let pki = Pki::new();
    let (moat, _dead) = moat_with_dead_upstream(&pki).await;
    let err = match v311::Client::connect(v311::options(&unique("r"), moat.port, Some(pki.client_config())))
        .await
    {
        Ok(_) => panic!("rumqttc connected although the broker is down"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("ServiceUnavailable"), "unexpected refusal: {err}");
}

// ----- 9. CONNECT timeout

#[tokio::test]
async fn no_connect_closed_after_connect_timeout() {
    let env = Env::start_with(MoatOptions { connect_timeout: Some("1s".into()), ..Default::default() }).await;
    let mut c = env.raw().await;
    let start = Instant::now();
    let closed = c
        .read_until_closed(Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("idle TLS client not closed within 3 s: {e}\n{}", env.moat.logs()));
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(800), "closed too early ({took:?}), before timeouts.connect");
    assert!(closed.packets.is_empty(), "{:?}", closed.packets);
    env.assert_no_upstream_bytes("idle client").await;
}

#[tokio::test]
async fn partial_connect_closed_after_connect_timeout() {
    let env = Env::start_with(MoatOptions { connect_timeout: Some("1s".into()), ..Default::default() }).await;
    let mut c = env.raw().await;
    let connect = packets::connect(Version::V5, "slow");
    c.send(&connect[..6]).await.unwrap();
    let start = Instant::now();
    c.read_until_closed(Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("half-CONNECT client not closed within 3 s: {e}\n{}", env.moat.logs()));
    assert!(start.elapsed() >= Duration::from_millis(800), "closed too early: {:?}", start.elapsed());
    env.assert_no_upstream_bytes("partial CONNECT").await;
}

#[tokio::test]
async fn connected_client_outlives_connect_timeout() {
    // timeouts.connect bounds only the wait for CONNECT, not the session.
    let env = Env::start_with(MoatOptions { connect_timeout: Some("1s".into()), ..Default::default() }).await;
    let mut c = env.raw_connected(Version::V311, &unique("stay")).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1800);
    // Nothing may arrive, and the connection must stay open, for 1.8 s.
    match tokio::time::timeout_at(deadline, c.read_packet(Duration::from_secs(5))).await {
        Err(_) => {}
        Ok(r) => panic!("connected session ended/received after CONNECT: {r:?}"),
    }
    c.send(&packets::pingreq()).await.unwrap();
    c.expect_packet(packets::PINGRESP, Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn no_tls_handshake_closed_after_tls_handshake_timeout() {
    let env =
        Env::start_with(MoatOptions { tls_handshake_timeout: Some("1s".into()), ..Default::default() }).await;
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", env.moat.port)).await.unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let r =
        tokio::time::timeout(Duration::from_secs(3), tokio::io::AsyncReadExt::read(&mut tcp, &mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "TCP client that never starts TLS not closed within 3 s: {r:?}"
    );
    assert!(start.elapsed() >= Duration::from_millis(800), "closed too early: {:?}", start.elapsed());
}

// ----- 10. signals

#[tokio::test]
async fn sigterm_sends_v5_disconnect_0x8b_and_exits_zero() {
    let mut env = Env::start().await;
    let mut c5 = env.raw_connected(Version::V5, &unique("term5")).await;
    let mut c3 = env.raw_connected(Version::V311, &unique("term3")).await;
    env.moat.proc.signal(libc::SIGTERM);
    let closed5 = c5
        .read_until_closed(Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| panic!("v5 client not closed after SIGTERM: {e}\n{}", env.moat.logs()));
    let got: Vec<_> = closed5.packets.iter().map(|p| p.describe()).collect();
    assert_eq!(closed5.packets.len(), 1, "v5: expected one DISCONNECT, got {got:?}");
    assert_eq!(closed5.packets[0].disconnect_reason(), Some(0x8b), "v5: got {got:?}");
    let closed3 = c3.read_until_closed(Duration::from_secs(5)).await.unwrap();
    assert!(closed3.packets.is_empty(), "3.1.1 must not get a DISCONNECT: {:?}", closed3.packets);
    let status = env.moat.proc.wait_exit(Duration::from_secs(5)).await;
    let status =
        status.unwrap_or_else(|| panic!("moat still running 5 s after SIGTERM\n{}", env.moat.logs()));
    assert_eq!(status.code(), Some(0), "moat exit status after SIGTERM: {status}\n{}", env.moat.logs());
    // The listener is gone.
    assert!(!net::can_connect(env.moat.port).await, "listener still accepting after exit");
}

#[tokio::test]
async fn sigterm_stops_accepting_new_connections() {
    let mut env = Env::start().await;
    let mut c5 = env.raw_connected(Version::V5, &unique("t5")).await;
    let _c3 = env.raw_connected(Version::V311, &unique("t3")).await; // may hold the grace period open
    env.moat.proc.signal(libc::SIGTERM);
    // Shutdown has begun once the v5 client is told so.
    let p = c5.read_packet(Duration::from_secs(5)).await.unwrap();
    assert_eq!(p.as_ref().and_then(|p| p.disconnect_reason()), Some(0x8b), "{p:?}");
    match RawClient::connect(env.moat.port, env.tls()).await {
        Err(_) => {}
        Ok(mut c) => {
            let _ = c.send(&packets::connect(Version::V311, &unique("late"))).await;
            if let Ok(Some(p)) = c.read_packet(Duration::from_secs(5)).await {
                panic!("new connection served during shutdown: {}", p.describe());
            }
        }
    }
    let status = env.moat.proc.wait_exit(Duration::from_secs(5)).await.expect("moat did not exit");
    assert_eq!(status.code(), Some(0));
    // Only the two sessions from before SIGTERM ever reached the broker.
    let connects = env.tap.all_packets().iter().filter(|p| p.packet_type() == packets::CONNECT).count();
    assert_eq!(connects, 2, "{:?}", env.tap.summary());
}

#[tokio::test]
async fn sigterm_with_idle_moat_exits_zero_promptly() {
    let mut env = Env::start().await;
    let start = Instant::now();
    env.moat.proc.signal(libc::SIGTERM);
    let status = env.moat.proc.wait_exit(Duration::from_secs(5)).await.expect("moat did not exit on SIGTERM");
    assert_eq!(status.code(), Some(0), "{status}");
    // No connections: no reason to wait for the full grace period (2 s here).
    assert!(start.elapsed() < Duration::from_millis(1900), "idle shutdown took {:?}", start.elapsed());
}

#[tokio::test]
async fn sigint_exits_zero() {
    let mut env = Env::start().await;
    let _c = env.raw_connected(Version::V311, &unique("int")).await;
    env.moat.proc.signal(libc::SIGINT);
    let status = env.moat.proc.wait_exit(Duration::from_secs(5)).await.expect("moat did not exit on SIGINT");
    assert_eq!(status.code(), Some(0), "{status}\n{}", env.moat.logs());
}

// ----- 11. moat check

async fn moat_check(config: &std::path::Path) -> std::process::Output {
    let std_cmd = moat_e2e::moat_command();
    let mut cmd = tokio::process::Command::from(std_cmd);
    cmd.arg("check").arg("-c").arg(config);
    run_with_timeout(cmd, Duration::from_secs(20)).await.unwrap()
}

#[tokio::test]
async fn check_reports_unknown_key_and_missing_cert_with_file_line_key() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&pki.server.key, dir.path().join("server.key")).unwrap();
    let config = dir.path().join("moat.yaml");
    // Line numbers matter: cert is on line 5, bogus_option on line 9.
    let yaml = "listeners:\n\
                \x20 - name: mqtts\n\
                \x20   bind: \"127.0.0.1:8883\"\n\
                \x20   tls:\n\
                \x20     cert: missing-server.crt\n\
                \x20     key: server.key\n\
                upstream:\n\
                \x20 address: \"127.0.0.1:1883\"\n\
                \x20 bogus_option: true\n\
                admin:\n\
                \x20 bind: \"127.0.0.1:9090\"\n";
    assert_eq!(yaml.lines().nth(4).unwrap().trim(), "cert: missing-server.crt");
    assert_eq!(yaml.lines().nth(8).unwrap().trim(), "bogus_option: true");
    std::fs::write(&config, yaml).unwrap();
    let out = moat_check(&config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status {}; stderr:\n{stderr}", out.status);
    let line_with = |line: u32, key: &str| {
        stderr.lines().any(|l| l.contains(&format!("moat.yaml:{line}:")) && l.contains(key))
    };
    assert!(
        line_with(9, "bogus_option"),
        "no `FILE:9: ...bogus_option: message` line for the unknown key; stderr:\n{stderr}"
    );
    assert!(
        line_with(5, "cert"),
        "no `FILE:5: ...cert: message` line for the missing cert file; stderr:\n{stderr}"
    );
    // FILE:LINE: KEY: message
    for l in stderr.lines().filter(|l| l.contains("moat.yaml:")) {
        let rest = l.split("moat.yaml:").nth(1).unwrap();
        let mut parts = rest.splitn(3, ": ");
        let line = parts.next().unwrap_or_default();
        assert!(line.parse::<u32>().is_ok(), "bad FILE:LINE in {l:?}");
        assert!(parts.next().is_some_and(|k| !k.is_empty()), "no KEY in {l:?}");
        assert!(parts.next().is_some_and(|m| !m.is_empty()), "no message in {l:?}");
    }
}

#[tokio::test]
async fn check_accepts_valid_config() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("moat.yaml");
    let opts = MoatOptions { client_auth: moat_e2e::ClientAuth::Required, ..Default::default() };
    std::fs::write(&config, opts.render(&pki, net::free_port(), net::free_port(), None)).unwrap();
    let out = moat_check(&config).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "valid config rejected:\n{}\n{}",
        std::fs::read_to_string(&config).unwrap(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn check_rejects_unparsable_cert_and_bad_duration() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("garbage.crt"), "not a certificate\n").unwrap();
    std::fs::copy(&pki.server.key, dir.path().join("server.key")).unwrap();
    let config = dir.path().join("moat.yaml");
    let yaml = "listeners:\n  - name: mqtts\n    bind: \"127.0.0.1:8883\"\n    tls:\n      cert: garbage.crt\n      key: server.key\ntimeouts:\n  connect: 10 parsecs\n";
    std::fs::write(&config, yaml).unwrap();
    let out = moat_check(&config).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert!(stderr.lines().any(|l| l.contains("moat.yaml:5:") && l.contains("cert")), "stderr:\n{stderr}");
    assert!(stderr.lines().any(|l| l.contains("moat.yaml:8:") && l.contains("connect")), "stderr:\n{stderr}");
}

// ----- 12. admin

fn compact(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[tokio::test]
async fn admin_health_ready_and_metrics_count_connections() {
    let env = Env::start().await;
    let port = env.moat.admin_port;

    let h = http::get(port, "/healthz").await.unwrap();
    assert_eq!(h.status, 200, "{h:?}");
    assert!(compact(&h.body).contains(r#""status":"ok""#), "healthz body {:?}", h.body);

    let r = http::get(port, "/readyz").await.unwrap();
    assert_eq!(r.status, 200, "readyz with broker up: {r:?}");

    let m0 = http::get(port, "/metrics").await.unwrap();
    assert_eq!(m0.status, 200);
    let before = metric_sum(&m0.body, "moat_connections_total").unwrap_or(0.0);

    // Traffic: one good session (kept open) and one protocol error.
    let topic = unique("metrics");
    let c = v311::Client::connect(env.v311_options(&unique("m"), env.tls())).await.unwrap();
    c.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    c.publish(&topic, QoS::AtLeastOnce, false, b"count me".to_vec()).await.unwrap();
    c.recv_publish(Duration::from_secs(10), |p| p.topic == topic).await.unwrap();
    let mut bad = env.raw_connected(Version::V5, &unique("bad")).await;
    let _ = bad.send(&[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01]).await; // QoS 3
    bad.read_until_closed(Duration::from_secs(5)).await.unwrap();

    let m = http::get(port, "/metrics").await.unwrap();
    let text = &m.body;
    assert_eq!(m.status, 200);
    let total = metric_sum(text, "moat_connections_total")
        .unwrap_or_else(|| panic!("no moat_connections_total sample:\n{text}"));
    assert!(total - before >= 2.0, "moat_connections_total went {before} -> {total}\n{text}");
    let active = metric_sum(text, "moat_connections_active")
        .unwrap_or_else(|| panic!("no moat_connections_active:\n{text}"));
    assert!(active >= 1.0, "moat_connections_active = {active} with a client connected\n{text}");

    let packets = metric_lines(text, "moat_packets_total");
    assert!(
        packets.iter().any(|l| l.contains("direction=") && l.contains("type=")),
        "moat_packets_total{{direction,type}} missing:\n{text}"
    );
    assert!(metric_sum(text, "moat_packets_total").unwrap_or(0.0) >= 4.0, "packet counts too low:\n{text}");
    let bytes = metric_lines(text, "moat_bytes_total");
    assert!(bytes.iter().any(|l| l.contains("direction=")), "moat_bytes_total{{direction}} missing:\n{text}");
    assert!(metric_sum(text, "moat_bytes_total").unwrap_or(0.0) > 0.0, "no bytes counted:\n{text}");
    assert!(
        text.contains("moat_upstream_connect_failures_total"),
        "moat_upstream_connect_failures_total missing:\n{text}"
    );
    let perr = metric_lines(text, "moat_protocol_errors_total");
    assert!(
        perr.iter().any(|l| l.contains("kind=")),
        "moat_protocol_errors_total{{kind}} has no sample after a protocol error:\n{text}"
    );
    assert!(metric_sum(text, "moat_protocol_errors_total").unwrap_or(0.0) >= 1.0, "{text}");

    // Active goes back down once the client leaves.
    c.disconnect().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t = http::get(port, "/metrics").await.unwrap().body;
        let a = metric_sum(&t, "moat_connections_active").unwrap_or(-1.0);
        if a == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moat_connections_active stuck at {a} after all clients left\n{t}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let nf = http::get(port, "/nope").await.unwrap();
    assert_eq!(nf.status, 404, "{nf:?}");
}

#[tokio::test]
async fn admin_readyz_503_with_broker_down_and_counts_upstream_failures() {
    let pki = Pki::new();
    let (moat, _dead) = moat_with_dead_upstream(&pki).await;
    let h = http::get(moat.admin_port, "/healthz").await.unwrap();
    assert_eq!(h.status, 200, "healthz must not depend on the broker: {h:?}");
    let r = http::get(moat.admin_port, "/readyz").await.unwrap();
    assert_eq!(r.status, 503, "readyz with broker down: {r:?}");
    assert!(r.body.trim_start().starts_with('{'), "readyz body must be JSON: {:?}", r.body);

    let mut c = RawClient::connect(moat.port, pki.client_config()).await.unwrap();
    c.send(&packets::connect(Version::V311, &unique("f"))).await.unwrap();
    c.read_until_closed(Duration::from_secs(10)).await.unwrap();
    let text = http::get(moat.admin_port, "/metrics").await.unwrap().body;
    let failures = metric_sum(&text, "moat_upstream_connect_failures_total")
        .unwrap_or_else(|| panic!("no moat_upstream_connect_failures_total sample:\n{text}"));
    assert!(failures >= 1.0, "upstream failure not counted:\n{text}");
}

#[tokio::test]
async fn admin_readyz_follows_upstream_availability() {
    let pki = Pki::new();
    let (moat, dead) = moat_with_dead_upstream(&pki).await;
    assert_eq!(http::get(moat.admin_port, "/readyz").await.unwrap().status, 503);
    // The upstream comes up: readyz must turn 200 without restarting moat.
    let listener = dead.listen();
    tokio::spawn(async move {
        loop {
            let _ = listener.accept().await;
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http::get(moat.admin_port, "/readyz").await.unwrap();
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "readyz still {} 10 s after upstream came up", r.status);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
