//! The admin API's OpenAPI document against the real server: schemathesis (installed by the
//! README test command) generates requests from the document, including invalid ones, and checks
//! every response's status, content type and body schema, and that nothing answers 5xx. The
//! served document is the checked-in one.

use std::time::Duration;

use moat_e2e::http::request;
use moat_e2e::policy::PolicyDir;
use moat_e2e::{ClientAuth, Env, MoatOptions, ANONYMOUS_AUTH};

const TOKEN: &str = "openapi-admin-token-0123456789";

#[tokio::test]
async fn the_admin_api_conforms_to_its_openapi_document() {
    let dir = PolicyDir::new();
    let tokens = dir
        .write("tokens.yaml", &format!("tokens:\n  - name: st\n    scope: admin\n    token: \"{TOKEN}\"\n"));
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        admin_extra: Some(format!("  tokens_file: \"{}\"\n", tokens.display())),
        policy_yaml: Some(format!(
            "{ANONYMOUS_AUTH}bans:\n  store: \"{}\"\n",
            dir.path().join("bans.json").display()
        )),
        ..Default::default()
    })
    .await;
    let _session = env.raw_connected(moat_e2e::Version::V5, &moat_e2e::unique("openapi")).await;

    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proxy/src/admin/openapi.json");
    let served =
        request(env.moat.admin_port, "GET", "/api/v1/openapi.json", Some(TOKEN), None).await.expect("GET");
    let on_disk = std::fs::read_to_string(&doc).expect("openapi.json");
    assert!(served.body == on_disk, "the served document is not the checked-in one (rebuild moat?)");

    let mut cmd = tokio::process::Command::new("schemathesis");
    cmd.arg("run")
        .arg(&doc)
        .arg("--url")
        .arg(format!("http://127.0.0.1:{}", env.moat.admin_port))
        .arg("-H")
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection",
            "--max-examples",
            "25",
            "--seed",
            "20261124",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(dir.path());
    let out = match moat_e2e::procs::run_with_timeout(cmd, Duration::from_secs(300)).await {
        Ok(out) => out,
        Err(e) => panic!("cannot run schemathesis ({e}); run the README test command, which installs it"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found non-conforming responses:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("passed"), "{stdout}");
}
