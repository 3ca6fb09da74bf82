//! The audit stream (`audit: {output: file | stdout}`): security decisions as JSON lines with the
//! fields README "Logs" documents, apart from the main log, and never a password.

use std::collections::BTreeMap;
use std::time::Duration;

use moat_e2e::catalogue;
use moat_e2e::packets::{self, Version};
use moat_e2e::policy::{connect_with, password_yaml, PolicyDir, ARGON2ID_HASH, ARGON2ID_PASSWORD};
use moat_e2e::{unique, Env, MoatOptions};
use serde_json::Value;

/// Password hashes are verified by a debug build of moat.
const AUTH_WAIT: Duration = Duration::from_secs(20);
const WRONG_PASSWORD: &str = "Wr0ng-but-S3cret-9f81c2";

async fn start(dir: &PolicyDir, audit_yaml: &str) -> Env {
    let users = dir.write("users.yaml", &password_yaml(&[("alice", ARGON2ID_HASH)]));
    let policy_yaml = format!(
        "authentication:\n  - name: users\n    type: password_file\n    path: \"{}\"\n{audit_yaml}",
        users.display()
    );
    Env::start_with(MoatOptions { policy_yaml: Some(policy_yaml), ..Default::default() }).await
}

/// Sends CONNECT with these credentials; returns the CONNACK return code.
async fn connack(env: &Env, client_id: &str, password: &str) -> u8 {
    let mut c = env.raw().await;
    c.send(&connect_with(Version::V311, client_id, Some("alice"), Some(password.as_bytes()))).await.unwrap();
    let ack = c
        .expect_packet(packets::CONNACK, AUTH_WAIT)
        .await
        .unwrap_or_else(|e| panic!("no CONNACK: {e}\n{}", env.moat.logs()));
    ack.connack_code().expect("CONNACK code")
}

/// The JSON lines of an audit stream, each checked to be one JSON object.
fn json_lines(text: &str) -> Vec<BTreeMap<String, Value>> {
    // Only complete lines: the stream may be read while moat appends to it.
    let complete = text.rsplit_once('\n').map_or("", |(done, _)| done);
    complete
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("audit line is not a JSON object ({e}): {l}"))
        })
        .collect()
}

/// Waits (bounded) until the stream read by `read` has a line with `message`; returns it.
async fn wait_line(read: impl Fn() -> String, message: &str) -> (BTreeMap<String, Value>, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = read();
        if let Some(line) =
            json_lines(&text).into_iter().find(|l| l.get("message") == Some(&Value::from(message)))
        {
            return (line, text);
        }
        assert!(tokio::time::Instant::now() < deadline, "no `{message}` audit line within 10s:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The common fields and the documented event fields are all there.
fn assert_documented(line: &BTreeMap<String, Value>, message: &str, client_id: &str) {
    let documented = catalogue::audit_events();
    let fields = documented.get(message).unwrap_or_else(|| panic!("README documents no `{message}` event"));
    for f in ["timestamp", "level", "target", "message", "span"]
        .iter()
        .map(|s| s.to_string())
        .chain(fields.clone())
    {
        assert!(line.contains_key(&f), "`{message}` audit line lacks documented field `{f}`: {line:?}");
    }
    assert_eq!(line["target"], "moat::audit", "{line:?}");
    assert_eq!(line["level"], "INFO", "{line:?}");
    let span = line["span"].as_object().expect("span is an object");
    assert_eq!(span.get("name"), Some(&Value::from("conn")), "{line:?}");
    assert_eq!(span.get("listener"), Some(&Value::from("mqtts")), "{line:?}");
    assert_eq!(span.get("client_id"), Some(&Value::from(client_id)), "{line:?}");
    assert!(
        span.get("peer").and_then(Value::as_str).is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{line:?}"
    );
    assert!(span.get("id").is_some_and(Value::is_u64), "{line:?}");
}

#[tokio::test]
async fn denied_connect_is_a_json_line_in_the_audit_file_without_the_password() {
    let dir = PolicyDir::new();
    let audit_path = dir.path().join("audit.jsonl");
    let env = start(&dir, &format!("audit:\n  output: file\n  path: \"{}\"\n", audit_path.display())).await;
    let read = || std::fs::read_to_string(&audit_path).unwrap_or_default();

    let denied_id = unique("audit-denied");
    assert_eq!(connack(&env, &denied_id, WRONG_PASSWORD).await, 0x04, "wrong password is refused");
    let (line, _) = wait_line(read, "authentication failed").await;
    assert_documented(&line, "authentication failed", &denied_id);
    assert_eq!(line["authenticator"], "password_file", "{line:?}");
    assert_eq!(line["reason"], "bad_credentials", "{line:?}");
    assert_eq!(line["username"], "alice", "{line:?}");

    let allowed_id = unique("audit-allowed");
    assert_eq!(connack(&env, &allowed_id, ARGON2ID_PASSWORD).await, 0x00, "right password is accepted");
    let (line, text) = wait_line(read, "authenticated").await;
    assert_documented(&line, "authenticated", &allowed_id);
    assert_eq!(line["username"], "alice", "{line:?}");

    // Never a password, in the audit file or the main log; and the audit events left the main log.
    let main_log = env.moat.proc.stderr();
    for (name, stream) in [("audit file", &text), ("main log", &main_log)] {
        assert!(!stream.contains(WRONG_PASSWORD), "{name} contains the password:\n{stream}");
        assert!(!stream.contains("password\":"), "{name} has a password field:\n{stream}");
    }
    assert!(!main_log.contains("authentication failed"), "audit event also in the main log:\n{main_log}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&audit_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the audit file names users: private to moat's user");
    }
    // Nothing of the refused client reached the broker (the accepted one's CONNECT did).
    let upstream: Vec<_> =
        env.tap.connections().iter().map(|c| String::from_utf8_lossy(&c.bytes).into_owned()).collect();
    assert!(upstream.iter().all(|b| !b.contains(&denied_id)), "refused CONNECT reached the broker");
}

#[tokio::test]
async fn audit_to_stdout_keeps_it_apart_from_the_main_log_on_stderr() {
    let dir = PolicyDir::new();
    let env = start(&dir, "audit:\n  output: stdout\n").await;
    let denied_id = unique("audit-stdout");
    assert_eq!(connack(&env, &denied_id, WRONG_PASSWORD).await, 0x04);
    let (line, text) = wait_line(|| env.moat.proc.stdout(), "authentication failed").await;
    assert_documented(&line, "authentication failed", &denied_id);
    assert!(!text.contains(WRONG_PASSWORD), "{text}");
    let main_log = env.moat.proc.stderr();
    assert!(!main_log.contains("authentication failed"), "audit event also in the main log:\n{main_log}");
}

#[tokio::test]
async fn without_audit_config_the_events_stay_in_the_main_log() {
    let dir = PolicyDir::new();
    let env = start(&dir, "").await;
    assert_eq!(connack(&env, &unique("audit-none"), WRONG_PASSWORD).await, 0x04);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !env.moat.proc.stderr().contains("authentication failed") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no audit event in the main log:\n{}",
            env.moat.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!env.moat.proc.stderr().contains(WRONG_PASSWORD));
    assert!(env.moat.proc.stdout().trim().is_empty(), "stdout: {}", env.moat.proc.stdout());
}

#[tokio::test]
async fn main_json_log_has_the_documented_field_names() {
    let dir = PolicyDir::new();
    let users = dir.write("users.yaml", &password_yaml(&[("alice", ARGON2ID_HASH)]));
    let policy_yaml = format!(
        "authentication:\n  - name: users\n    type: password_file\n    path: \"{}\"\n",
        users.display()
    );
    let env = Env::start_with(MoatOptions {
        policy_yaml: Some(policy_yaml),
        log_format: "json".into(),
        ..Default::default()
    })
    .await;
    let client_id = unique("json-log");
    assert_eq!(connack(&env, &client_id, WRONG_PASSWORD).await, 0x04);
    // README "Logs": timestamp, level, target, fields.message, span (innermost), spans (all).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = env.moat.proc.stderr();
        let found = json_lines(&text).into_iter().find(|l| {
            l.get("fields").and_then(|f| f.get("message")) == Some(&Value::from("authentication failed"))
        });
        if let Some(l) = found {
            break l;
        }
        assert!(tokio::time::Instant::now() < deadline, "no JSON audit event in the main log:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for f in ["timestamp", "level", "target", "fields", "span", "spans"] {
        assert!(line.contains_key(f), "main JSON log line lacks `{f}`: {line:?}");
    }
    assert_eq!(line["target"], "moat::audit");
    let span = line["span"].as_object().expect("span");
    assert_eq!(span.get("name"), Some(&Value::from("conn")));
    assert_eq!(span.get("client_id"), Some(&Value::from(client_id.as_str())));
    assert!(line["spans"].as_array().is_some_and(|s| !s.is_empty()), "{line:?}");
    assert!(!env.moat.proc.stderr().contains(WRONG_PASSWORD));
}

#[tokio::test]
async fn acl_denial_is_an_audit_line_with_action_topic_and_rule() {
    let dir = PolicyDir::new();
    let acl = dir.write(
        "acl.yaml",
        "no_match: allow\nrules:\n  - id: no-secrets\n    permission: deny\n    who: all\n    action: publish\n    topics: [\"secret/#\"]\n",
    );
    let audit_path = dir.path().join("audit.jsonl");
    let env = start(
        &dir,
        &format!(
            "authorization:\n  acl: \"{}\"\naudit:\n  output: file\n  path: \"{}\"\n",
            acl.display(),
            audit_path.display()
        ),
    )
    .await;
    let client_id = unique("audit-acl");
    let mut c = env.raw().await;
    c.send(&connect_with(Version::V311, &client_id, Some("alice"), Some(ARGON2ID_PASSWORD.as_bytes())))
        .await
        .unwrap();
    let ack = c.expect_packet(packets::CONNACK, AUTH_WAIT).await.unwrap();
    assert_eq!(ack.connack_code(), Some(0));
    let topic = format!("secret/{client_id}");
    c.send(&packets::publish(Version::V311, topic.as_bytes(), 0, false, 0, b"classified")).await.unwrap();

    let (line, _) =
        wait_line(|| std::fs::read_to_string(&audit_path).unwrap_or_default(), "ACL denied").await;
    assert_documented(&line, "ACL denied", &client_id);
    assert_eq!(line["action"], "publish", "{line:?}");
    assert_eq!(line["topic"], Value::from(topic.as_str()), "{line:?}");
    assert_eq!(line["rule"], "no-secrets", "{line:?}");
    env.sub.barrier().await.unwrap();
    assert!(env.sub.messages().iter().all(|m| m.topic != topic), "the denied PUBLISH reached the broker");
}
