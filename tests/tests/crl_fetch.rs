//! `tls.crl_fetch`: CRLs downloaded from an HTTP distribution point (a real local axum server
//! in the test) revoke a client mid-test; a failing distribution point keeps the last good CRL;
//! with no CRL fetched yet, client certificates are refused (fail closed).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::routing::get;
use moat_e2e::{http, packets, tls, unique, ClientAuth, Moat, MoatOptions, Mosquitto, Pki, RawClient, Tap};

/// What the distribution point serves: `Some(bytes)` with 200, or `None` with 503.
type Body = Arc<Mutex<Option<Vec<u8>>>>;

struct CrlServer {
    port: u16,
    body: Body,
    task: tokio::task::JoinHandle<()>,
}

impl CrlServer {
    async fn start(initial: Option<Vec<u8>>) -> CrlServer {
        let body: Body = Arc::new(Mutex::new(initial));
        let b = body.clone();
        let app = axum::Router::new().route(
            "/ca.crl",
            get(move || {
                let b = b.clone();
                async move {
                    match b.lock().unwrap().clone() {
                        Some(bytes) => (StatusCode::OK, bytes),
                        None => (StatusCode::SERVICE_UNAVAILABLE, Vec::new()),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CrlServer { port, body, task }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ca.crl", self.port)
    }

    fn serve(&self, bytes: Option<Vec<u8>>) {
        *self.body.lock().unwrap() = bytes;
    }
}

impl Drop for CrlServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn options(url: &str, upstream: String) -> MoatOptions {
    MoatOptions {
        upstream,
        client_auth: ClientAuth::Required,
        tls_extra: Some(format!(
            "      crl_fetch:\n        interval: 300ms\n        timeout: 2s\n        urls: [\"{url}\"]\n"
        )),
        ..Default::default()
    }
}

async fn metric(moat: &Moat, name: &str, result: &str) -> f64 {
    let text = http::get(moat.admin_port, "/metrics").await.expect("metrics").body;
    http::metric_lines(&text, name)
        .iter()
        .filter(|l| l.contains(&format!("result=\"{result}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_metric(moat: &Moat, name: &str, result: &str, above: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(moat, name, result).await <= above {
        assert!(
            Instant::now() < deadline,
            "{name}{{result={result}}} never rose above {above}\n{}",
            moat.logs()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn admitted(port: u16, pki: &Pki, cert: &moat_e2e::pki::CertFiles) -> bool {
    let config = tls::client_config(&[pki.ca_cert()], Some(cert));
    let Ok(mut c) = RawClient::connect(port, config).await else { return false };
    if c.send(&packets::connect(moat_e2e::Version::V311, &unique("dp"))).await.is_err() {
        return false;
    }
    matches!(c.expect_packet(packets::CONNACK, Duration::from_secs(5)).await, Ok(a) if a.connack_code() == Some(0))
}

#[tokio::test]
async fn fetched_crl_revokes_a_client_and_last_good_copy_survives_outages() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let tap = Tap::start(broker.port).await;
    let device = pki.client_cert("device");
    let good = pki.client_cert("good");
    let empty = std::fs::read(pki.write_crl("dp-empty", &[], false)).unwrap();
    let server = CrlServer::start(Some(empty)).await;
    let moat = Moat::start(&pki, &options(&server.url(), tap.addr())).await;

    wait_metric(&moat, "moat_tls_reloads_total", "success", 0.0).await;
    assert!(admitted(moat.port, &pki, &device).await, "device refused with an empty CRL\n{}", moat.logs());

    // Revoked at the distribution point, mid-test.
    let reloads = metric(&moat, "moat_tls_reloads_total", "success").await;
    server.serve(Some(std::fs::read(pki.write_crl("dp-revoked", &[device.serial], false)).unwrap()));
    wait_metric(&moat, "moat_tls_reloads_total", "success", reloads).await;
    let upstream_before = tap.connections().len();
    assert!(!admitted(moat.port, &pki, &device).await, "revoked device admitted after the CRL refresh");
    assert!(admitted(moat.port, &pki, &good).await, "good client refused");
    assert_eq!(
        tap.connections().len(),
        upstream_before + 1,
        "refused client reached the broker: {:?}",
        tap.summary()
    );

    // The distribution point fails (503, then garbage): the last good CRL stays in force.
    let failures = metric(&moat, "moat_tls_crl_fetches_total", "failure").await;
    server.serve(None);
    wait_metric(&moat, "moat_tls_crl_fetches_total", "failure", failures).await;
    server.serve(Some(b"not a CRL".to_vec()));
    wait_metric(&moat, "moat_tls_crl_fetches_total", "failure", failures + 1.0).await;
    assert!(!admitted(moat.port, &pki, &device).await, "revoked device admitted while the CRL server failed");
    assert!(admitted(moat.port, &pki, &good).await, "good client refused while the CRL server failed");
    assert!(moat.logs().contains("CRL fetch failed"), "{}", moat.logs());
}

#[tokio::test]
async fn no_fetched_crl_yet_fails_closed() {
    let pki = Pki::new();
    let broker = Mosquitto::start().await;
    let device = pki.client_cert("device");
    let server = CrlServer::start(None).await;
    let moat = Moat::start(&pki, &options(&server.url(), broker.addr())).await;
    wait_metric(&moat, "moat_tls_crl_fetches_total", "failure", 0.0).await;
    assert!(!admitted(moat.port, &pki, &device).await, "client admitted before any CRL was fetched");
    // Once the distribution point answers, the client gets in.
    server.serve(Some(std::fs::read(pki.write_crl("dp", &[], false)).unwrap()));
    wait_metric(&moat, "moat_tls_reloads_total", "success", 0.0).await;
    assert!(admitted(moat.port, &pki, &device).await, "{}", moat.logs());
}
