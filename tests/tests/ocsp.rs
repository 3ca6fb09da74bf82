//! OCSP: stapling of the server certificate (`tls.ocsp_stapling`) and checks of client
//! certificates (`tls.client_ocsp`), against a real OCSP responder: an HTTP server in the test
//! that has `openssl ocsp` answer each request from an index file (it can be stopped).
//! Certificates carry the responder URL in their AIA extension.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moat_e2e::pki::CertFiles;
use moat_e2e::{http, packets, tls, unique, ClientAuth, Moat, MoatOptions, Mosquitto, Pki, RawClient, Tap};

/// A local HTTP OCSP responder: each POSTed request is answered by `openssl ocsp` in responder
/// mode (`-index`, `-rsigner`: the real thing), run per request on the request's bytes. Requests
/// are counted; the responder can be stopped (its port then refuses connections) and resumed.
struct Responder {
    port: u16,
    hits: Arc<AtomicUsize>,
    args: Arc<Vec<std::ffi::OsString>>,
    dir: PathBuf,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Writes the responder's index: `(serial, revoked)` per certificate.
fn write_index(dir: &Path, entries: &[(u64, bool)]) -> PathBuf {
    let mut text = String::new();
    for &(serial, revoked) in entries {
        let mut hex = format!("{serial:X}");
        if hex.len() % 2 == 1 {
            hex.insert(0, '0');
        }
        let (flag, rev) = if revoked { ("R", "200601000000Z") } else { ("V", "") };
        text.push_str(&format!("{flag}\t301231235959Z\t{rev}\t{hex}\tunknown\t/CN=test-{hex}\n"));
    }
    let path = dir.join("index.txt");
    std::fs::write(&path, text).expect("write index");
    path
}

impl Responder {
    /// Binds the responder port first: certificates name its URL before it serves.
    async fn bind() -> (u16, tokio::net::TcpListener) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind responder");
        (l.local_addr().expect("addr").port(), l)
    }

    fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}/")
    }

    async fn run(
        pki: &Pki,
        listener: tokio::net::TcpListener,
        entries: &[(u64, bool)],
        serve: bool,
    ) -> Responder {
        let index = write_index(pki.dir(), entries);
        let args: Vec<std::ffi::OsString> = vec![
            "ocsp".into(),
            "-index".into(),
            index.into(),
            "-CA".into(),
            pki.ca_cert().into(),
            "-rsigner".into(),
            pki.ca_cert().into(),
            "-rkey".into(),
            pki.ca_key().into(),
            "-nmin".into(),
            "10".into(),
        ];
        let port = listener.local_addr().expect("addr").port();
        let mut r = Responder {
            port,
            hits: Arc::new(AtomicUsize::new(0)),
            args: Arc::new(args),
            dir: pki.dir().to_path_buf(),
            server: None,
        };
        if serve {
            r.serve(listener);
        }
        r
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (hits, args, dir) = (self.hits.clone(), self.args.clone(), self.dir.clone());
        let app = axum::Router::new().route(
            "/",
            axum::routing::post(move |body: axum::body::Bytes| {
                let (hits, args, dir) = (hits.clone(), args.clone(), dir.clone());
                async move {
                    let n = hits.fetch_add(1, Ordering::SeqCst);
                    let (req, resp) =
                        (dir.join(format!("ocsp-req-{n}.der")), dir.join(format!("ocsp-resp-{n}.der")));
                    std::fs::write(&req, &body).expect("write request");
                    let out = tokio::process::Command::new("openssl")
                        .args(args.iter())
                        .arg("-reqin")
                        .arg(&req)
                        .arg("-respout")
                        .arg(&resp)
                        .stdin(std::process::Stdio::null())
                        .output()
                        .await
                        .expect("run openssl ocsp");
                    match std::fs::read(&resp) {
                        Ok(bytes) => (axum::http::StatusCode::OK, bytes),
                        Err(_) => {
                            eprintln!("openssl ocsp failed: {}", String::from_utf8_lossy(&out.stderr));
                            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, Vec::new())
                        }
                    }
                }
            }),
        );
        self.server = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// The responder becomes unreachable (connection refused).
    fn stop(&mut self) {
        if let Some(f) = self.server.take() {
            f.abort();
        }
    }

    async fn resume(&mut self) {
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.expect("rebind responder");
        self.serve(listener);
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn metric(moat: &Moat, name: &str, filter: &str) -> Option<f64> {
    let text = http::get(moat.admin_port, "/metrics").await.expect("metrics").body;
    let values: Vec<f64> = http::metric_lines(&text, name)
        .iter()
        .filter(|l| l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

async fn wait_metric(moat: &Moat, name: &str, filter: &str, above: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(moat, name, filter).await.unwrap_or(f64::MIN) <= above {
        assert!(Instant::now() < deadline, "{name}{{{filter}}} never rose above {above}\n{}", moat.logs());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `openssl s_client -status` against the listener: its output (the OCSP part included).
async fn s_client(port: u16, pki: &Pki) -> String {
    let out = tokio::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), "-status", "-servername", "localhost"])
        .arg("-CAfile")
        .arg(pki.ca_cert())
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out)
        .await
        .expect("s_client timed out")
        .expect("s_client");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn stapled(out: &str) -> bool {
    out.contains("OCSP Response Status: successful") && out.contains("Cert Status: good")
}

fn stapling(server: &CertFiles, extra: &str) -> MoatOptions {
    MoatOptions {
        server_files: Some(server.clone()),
        tls_extra: Some(format!(
            "      ocsp_stapling:\n        refresh: 1s\n        min_interval: 200ms\n        timeout: 2s\n{extra}"
        )),
        ..Default::default()
    }
}

#[tokio::test]
async fn staple_is_served_and_the_last_good_one_survives_a_responder_outage() {
    let pki = Pki::new();
    let (port, listener) = Responder::bind().await;
    let server = pki.ocsp_cert("server-ocsp", true, &Responder::url(port));
    let mut responder = Responder::run(&pki, listener, &[(server.serial, false)], true).await;
    let broker = Mosquitto::start().await;
    let moat = Moat::start(&pki, &MoatOptions { upstream: broker.addr(), ..stapling(&server, "") }).await;

    wait_metric(&moat, "moat_tls_ocsp_staple_next_update_timestamp_seconds", "listener=\"mqtts\"", 0.0).await;
    let out = s_client(moat.port, &pki).await;
    assert!(stapled(&out), "no good staple in the handshake:\n{out}\n{}", moat.logs());
    assert!(
        metric(&moat, "moat_tls_ocsp_staple_age_seconds", "mqtts").await.is_some(),
        "no staple age gauge"
    );

    // Responder down: fetches fail, the last good staple is still served.
    responder.stop();
    let failures =
        metric(&moat, "moat_tls_ocsp_fetch_failures_total", "reason=\"connect\"").await.unwrap_or(0.0);
    wait_metric(&moat, "moat_tls_ocsp_fetch_failures_total", "reason=\"connect\"", failures).await;
    wait_metric(&moat, "moat_tls_ocsp_fetch_failures_total", "reason=\"connect\"", failures + 1.0).await;
    let out = s_client(moat.port, &pki).await;
    assert!(stapled(&out), "last good staple not served while the responder is down:\n{out}");
    assert!(moat.logs().contains("OCSP staple fetch failed"), "{}", moat.logs());
}

#[tokio::test]
async fn a_rotated_certificate_gets_its_own_staple() {
    let pki = Pki::new();
    let (port, listener) = Responder::bind().await;
    let first = pki.ocsp_cert("server-first", true, &Responder::url(port));
    let second = pki.ocsp_cert("server-second", true, &Responder::url(port));
    // The responder knows only the first certificate for now.
    let _responder = Responder::run(&pki, listener, &[(first.serial, false)], true).await;
    let broker = Mosquitto::start().await;
    let moat = Moat::start(&pki, &MoatOptions { upstream: broker.addr(), ..stapling(&first, "") }).await;
    wait_metric(&moat, "moat_tls_ocsp_staple_next_update_timestamp_seconds", "mqtts", 0.0).await;
    let serial = |s: u64| format!("Serial Number: {s:04X}");
    let out = s_client(moat.port, &pki).await;
    assert!(stapled(&out) && out.contains(&serial(first.serial)), "{out}");

    // Rotation: the new certificate and key replace the files (atomic renames).
    let reloads = metric(&moat, "moat_tls_reloads_total", "result=\"success\"").await.unwrap_or(0.0);
    let unknown =
        metric(&moat, "moat_tls_ocsp_fetch_failures_total", "reason=\"unknown\"").await.unwrap_or(0.0);
    for (from, to) in [(&second.key, &first.key), (&second.cert, &first.cert)] {
        let tmp = to.with_extension("tmp");
        std::fs::copy(from, &tmp).expect("copy");
        std::fs::rename(&tmp, to).expect("rename");
    }
    wait_metric(&moat, "moat_tls_reloads_total", "result=\"success\"", reloads).await;
    // The responder does not know the new certificate: the old staple must not go with it.
    wait_metric(&moat, "moat_tls_ocsp_fetch_failures_total", "reason=\"unknown\"", unknown).await;
    let out = s_client(moat.port, &pki).await;
    assert!(
        out.contains("OCSP response: no response sent"),
        "old staple sent with the new certificate:\n{out}"
    );

    // Once the responder knows it, the new certificate is stapled.
    write_index(pki.dir(), &[(first.serial, false), (second.serial, false)]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = s_client(moat.port, &pki).await;
        if stapled(&out) && out.contains(&serial(second.serial)) {
            break;
        }
        assert!(!out.contains(&serial(first.serial)), "old staple sent with the new certificate:\n{out}");
        assert!(Instant::now() < deadline, "new certificate never stapled:\n{out}\n{}", moat.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_revoked_server_certificate_is_never_stapled() {
    let pki = Pki::new();
    let (port, listener) = Responder::bind().await;
    let server = pki.ocsp_cert("server-revoked", true, &Responder::url(port));
    let _responder = Responder::run(&pki, listener, &[(server.serial, true)], true).await;
    let broker = Mosquitto::start().await;
    let moat = Moat::start(&pki, &MoatOptions { upstream: broker.addr(), ..stapling(&server, "") }).await;
    wait_metric(&moat, "moat_tls_ocsp_fetch_failures_total", "reason=\"revoked\"", 0.0).await;
    let out = s_client(moat.port, &pki).await;
    assert!(out.contains("OCSP response: no response sent"), "a revoked status was stapled:\n{out}");
    assert!(!out.contains("Cert Status"), "{out}");
    assert!(metric(&moat, "moat_tls_ocsp_staple_next_update_timestamp_seconds", "mqtts").await.is_none());
}

#[tokio::test]
async fn must_staple_refuses_handshakes_until_a_good_staple_is_held() {
    let pki = Pki::new();
    let (port, listener) = Responder::bind().await;
    let server = pki.ocsp_cert("server-must", true, &Responder::url(port));
    // The responder is down from the start (its port refuses connections).
    let mut responder = Responder::run(&pki, listener, &[(server.serial, false)], false).await;
    let broker = Mosquitto::start().await;
    let moat = Moat::start(
        &pki,
        &MoatOptions { upstream: broker.addr(), ..stapling(&server, "        must_staple: true\n") },
    )
    .await;
    wait_metric(&moat, "moat_tls_ocsp_fetch_failures_total", "listener=\"mqtts\"", 0.0).await;
    assert!(
        RawClient::connect(moat.port, pki.client_config()).await.is_err(),
        "handshake completed without a staple under must_staple"
    );
    let ready = http::get(moat.admin_port, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 503, "ready without a staple: {}", ready.body);
    assert!(ready.body.contains("OCSP"), "{}", ready.body);

    responder.resume().await;
    wait_metric(&moat, "moat_tls_ocsp_staple_next_update_timestamp_seconds", "mqtts", 0.0).await;
    let out = s_client(moat.port, &pki).await;
    assert!(stapled(&out), "{out}");
    let ready = http::get(moat.admin_port, "/readyz").await.expect("readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);
}

fn client_ocsp(upstream: String, mode: &str) -> MoatOptions {
    MoatOptions {
        upstream,
        client_auth: ClientAuth::Required,
        tls_extra: Some(format!(
            "      client_ocsp:\n        mode: {mode}\n        timeout: 1s\n        cache_ttl: 60s\n"
        )),
        ..Default::default()
    }
}

/// TLS handshake + CONNECT; `Some(elapsed)` when CONNACK 0 came back.
async fn admitted(port: u16, pki: &Pki, cert: &CertFiles) -> Option<Duration> {
    let config = tls::client_config(&[pki.ca_cert()], Some(cert));
    let started = Instant::now();
    let mut c = RawClient::connect(port, config).await.ok()?;
    c.send(&packets::connect(moat_e2e::Version::V311, &unique("ocsp"))).await.ok()?;
    match c.expect_packet(packets::CONNACK, Duration::from_secs(5)).await {
        Ok(a) if a.connack_code() == Some(0) => Some(started.elapsed()),
        _ => None,
    }
}

#[tokio::test]
async fn client_certificates_are_checked_and_answers_cached() {
    let pki = Pki::new();
    let (port, listener) = Responder::bind().await;
    let good = pki.ocsp_cert("client-good", false, &Responder::url(port));
    let revoked = pki.ocsp_cert("client-revoked", false, &Responder::url(port));
    let responder =
        Responder::run(&pki, listener, &[(good.serial, false), (revoked.serial, true)], true).await;
    let broker = Mosquitto::start().await;
    let tap = Tap::start(broker.port).await;
    let moat = Moat::start(&pki, &client_ocsp(tap.addr(), "hard_fail")).await;

    let cold = admitted(moat.port, &pki, &good).await;
    assert!(cold.is_some(), "good client refused\n{}", moat.logs());
    assert_eq!(responder.hits(), 1, "the responder was not asked");
    assert_eq!(tap.connections().len(), 1, "{:?}", tap.summary());

    // Cached: no new request for the same certificate.
    let mut warm = Vec::new();
    for _ in 0..10 {
        warm.push(admitted(moat.port, &pki, &good).await.expect("good client refused (cached)"));
    }
    assert_eq!(responder.hits(), 1, "cached answer not used");
    let warm_avg = warm.iter().sum::<Duration>() / 10;
    // The same connection to a listener without client_ocsp, for the added latency.
    let plain = Moat::start(
        &pki,
        &MoatOptions { client_auth: ClientAuth::Required, upstream: tap.addr(), ..Default::default() },
    )
    .await;
    // One warm-up connection, as the OCSP listener had its cold one.
    assert!(admitted(plain.port, &pki, &good).await.is_some(), "plain listener refused");
    let mut base = Vec::new();
    for _ in 0..10 {
        base.push(admitted(plain.port, &pki, &good).await.expect("plain listener refused"));
    }
    let base_avg = base.iter().sum::<Duration>() / 10;
    eprintln!(
        "client OCSP connect-to-CONNACK: cold {:?}, warm (cached) avg {warm_avg:?}, without client_ocsp avg {base_avg:?}",
        cold.unwrap_or_default()
    );
    drop(plain);

    // Revoked: the connection is closed before MQTT; nothing reaches the broker.
    assert!(admitted(moat.port, &pki, &revoked).await.is_none(), "revoked client admitted");
    assert_eq!(responder.hits(), 2);
    assert_eq!(tap.connections().len(), 22, "revoked client reached the broker: {:?}", tap.summary());
    assert!(admitted(moat.port, &pki, &revoked).await.is_none(), "revoked client admitted (cached)");
    assert_eq!(responder.hits(), 2, "revoked answer not cached");
    assert_eq!(tap.connections().len(), 22);
    wait_metric(&moat, "moat_tls_client_ocsp_checks_total", "result=\"revoked\",cache=\"hit\"", 0.0).await;
    assert!(
        metric(&moat, "moat_tls_client_ocsp_checks_total", "result=\"good\",cache=\"hit\"").await
            >= Some(10.0)
    );
}

#[tokio::test]
async fn responder_down_soft_fail_admits_hard_fail_refuses() {
    let pki = Pki::new();
    let (port, listener) = Responder::bind().await;
    drop(listener); // nothing listens: connection refused
    let device = pki.ocsp_cert("client-device", false, &Responder::url(port));
    let broker = Mosquitto::start().await;
    let tap = Tap::start(broker.port).await;

    let soft = Moat::start(&pki, &client_ocsp(tap.addr(), "soft_fail")).await;
    assert!(admitted(soft.port, &pki, &device).await.is_some(), "soft_fail refused\n{}", soft.logs());
    assert_eq!(tap.connections().len(), 1);
    wait_metric(&soft, "moat_tls_client_ocsp_checks_total", "result=\"error\"", 0.0).await;

    let hard = Moat::start(&pki, &client_ocsp(tap.addr(), "hard_fail")).await;
    assert!(admitted(hard.port, &pki, &device).await.is_none(), "hard_fail admitted with the responder down");
    assert_eq!(tap.connections().len(), 1, "refused client reached the broker: {:?}", tap.summary());
    assert!(hard.logs().contains("client certificate OCSP check failed"), "{}", hard.logs());
}
