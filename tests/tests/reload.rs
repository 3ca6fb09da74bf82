//! Live reload through the admin API and SIGHUP, under live sessions: a good policy applies to
//! connections already open (at once), a broken one changes nothing and says why, a ban added to
//! the ban file disconnects the matching live session. Nothing is dropped that should not be.

use std::path::PathBuf;
use std::time::Duration;

use moat_e2e::http::request;
use moat_e2e::packets::{self, RawPacket, Version};
use moat_e2e::policy::{ack as ack_of, metric_with_labels, publish_v5, PolicyDir};
use moat_e2e::{unique, ClientAuth, Env, MoatOptions, RawClient};

const WAIT: Duration = Duration::from_secs(10);
const ADMIN: &str = "reload-admin-token-0123456789";

struct Files {
    acl: PathBuf,
    bans: PathBuf,
}

fn acl_allowing(topic: &str) -> String {
    format!("rules:\n  - permission: allow\n    who: all\n    action: all\n    topics: [\"{topic}\"]\n")
}

async fn env(dir: &PolicyDir) -> (Env, Files) {
    let acl = dir.write("acl.yaml", &acl_allowing("a/#"));
    let bans = dir.write("bans.yaml", "bans: []\n");
    let tokens = dir
        .write("tokens.yaml", &format!("tokens:\n  - name: ops\n    scope: admin\n    token: \"{ADMIN}\"\n"));
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        admin_extra: Some(format!("  tokens_file: \"{}\"\n", tokens.display())),
        policy_yaml: Some(format!(
            "authentication:\n  - name: anon\n    type: anonymous\nauthorization:\n  acl: \"{}\"\nbans:\n  file: \"{}\"\n",
            acl.display(),
            bans.display()
        )),
        ..Default::default()
    })
    .await;
    (env, Files { acl, bans })
}

/// PUBLISH QoS 1 and the reason code of its PUBACK (0 when the v5 PUBACK carries none).
async fn publish_qos1(c: &mut RawClient, topic: &str, pid: u16) -> u8 {
    c.send(&publish_v5(topic, 1, pid, &[], b"x")).await.expect("PUBLISH");
    let ack: RawPacket = c.expect_packet(packets::PUBACK, WAIT).await.expect("PUBACK");
    let (id, code) = ack_of(&ack).expect("PUBACK body");
    assert_eq!(id, pid, "PUBACK for another packet id");
    code
}

async fn reload(env: &Env) -> (u16, serde_json::Value) {
    let r = request(env.moat.admin_port, "POST", "/api/v1/reload", Some(ADMIN), None).await.expect("reload");
    (r.status, serde_json::from_str(&r.body).unwrap_or_default())
}

async fn topics_at_broker(env: &Env) -> Vec<String> {
    env.tap
        .all_packets()
        .iter()
        .filter(|p| p.packet_type() == packets::PUBLISH)
        .filter_map(|p| p.publish_topic().map(|t| String::from_utf8_lossy(t).into_owned()))
        .collect()
}

#[tokio::test]
async fn a_good_reload_applies_to_live_sessions_without_dropping_them() {
    let dir = PolicyDir::new();
    let (env, files) = env(&dir).await;
    let mut c = env.raw_connected(Version::V5, &unique("live")).await;
    assert_eq!(publish_qos1(&mut c, "a/1", 1).await, 0x00, "allowed before the reload");

    std::fs::write(&files.acl, acl_allowing("b/#")).expect("rewrite ACL");
    let (status, report) = reload(&env).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["result"], "success");
    assert_eq!(report["restart_required"], serde_json::json!([]), "{report}");

    // Same connection, new policy.
    assert_eq!(publish_qos1(&mut c, "a/2", 2).await, 0x87, "a/# is no longer allowed");
    assert_eq!(publish_qos1(&mut c, "b/1", 3).await, 0x00, "b/# is now allowed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let topics = topics_at_broker(&env).await;
    assert_eq!(topics, vec!["a/1".to_string(), "b/1".to_string()], "the broker saw {topics:?}");

    let status =
        request(env.moat.admin_port, "GET", "/api/v1/status", Some(ADMIN), None).await.expect("status");
    let status: serde_json::Value = serde_json::from_str(&status.body).expect("json");
    assert_eq!(status["last_reload"]["result"], "success", "{status}");
    assert_eq!(status["sessions"], 1, "the session survived: {status}");
}

#[tokio::test]
async fn a_broken_policy_changes_nothing_and_says_why() {
    let dir = PolicyDir::new();
    let (env, files) = env(&dir).await;
    let mut c = env.raw_connected(Version::V5, &unique("keep")).await;
    let generation_before = generation(&env).await;

    std::fs::write(
        &files.acl,
        "rules:\n  - permission: allow\n    who: all\n    action: fly\n    topics: [\"b/#\"]\n",
    )
    .expect("break ACL");
    let (status, body) = reload(&env).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "RELOAD_FAILED");
    let errors = body["errors"].to_string();
    assert!(
        errors.contains("acl.yaml") && errors.contains("action"),
        "errors name the file and key: {errors}"
    );
    assert_eq!(generation(&env).await, generation_before, "a failed reload changed the generation");

    // The old policy is still in force for the live session and for new ones.
    assert_eq!(publish_qos1(&mut c, "a/1", 1).await, 0x00);
    let mut fresh = env.raw_connected(Version::V5, &unique("fresh")).await;
    assert_eq!(publish_qos1(&mut fresh, "b/1", 1).await, 0x87);
    let metrics = request(env.moat.admin_port, "GET", "/metrics", Some(ADMIN), None).await.expect("metrics");
    // At least the API's reload; the file watcher may also have tried (and failed) on the same
    // change by now, which is counted too.
    let failures = metric_with_labels(&metrics.body, "moat_config_reloads_total", &[("result", "failure")]);
    assert!(failures.is_some_and(|n| n >= 1.0), "failed reloads counted: {failures:?}");
    let successes = metric_with_labels(&metrics.body, "moat_config_reloads_total", &[("result", "success")]);
    assert_eq!(successes, None, "a broken policy was counted as a successful reload");
}

#[tokio::test]
async fn sighup_reloads_and_a_new_file_ban_disconnects_the_live_session() {
    let dir = PolicyDir::new();
    let (env, files) = env(&dir).await;
    let victim = unique("filebanned");
    let mut c = env.raw_connected(Version::V5, &victim).await;
    let mut other = env.raw_connected(Version::V5, &unique("other")).await;
    let before = generation(&env).await;

    std::fs::write(
        &files.bans,
        format!("bans:\n  - kind: clientid\n    who: {victim}\n    reason: reload test\n"),
    )
    .expect("write bans");
    env.moat.proc.signal(libc::SIGHUP);
    let closed = c.read_until_closed(Duration::from_secs(5)).await.expect("closed");
    let reason = closed.disconnect_reason();
    assert_eq!(reason, Some(0x98), "{:?}", closed.packets.iter().map(|p| p.describe()).collect::<Vec<_>>());
    assert!(generation(&env).await > before);
    other.send(&packets::pingreq()).await.expect("ping");
    other.expect_packet(packets::PINGRESP, WAIT).await.expect("the other session is untouched");
}

async fn generation(env: &Env) -> u64 {
    let r = request(env.moat.admin_port, "GET", "/api/v1/status", Some(ADMIN), None).await.expect("status");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    v["policy_generation"].as_u64().expect("generation")
}

/// Kubernetes updates a mounted ConfigMap by writing a new timestamped directory and renaming the
/// `..data` symlink over the old one; the files themselves are symlinks through `..data`.
#[tokio::test]
async fn a_configmap_style_symlink_swap_reloads_by_itself() {
    use std::os::unix::fs::symlink;
    let dir = PolicyDir::new();
    let cm = dir.path().join("configmap");
    std::fs::create_dir_all(cm.join("..2026_11_24_a")).expect("mkdir");
    std::fs::write(cm.join("..2026_11_24_a/acl.yaml"), acl_allowing("a/#")).expect("acl a");
    symlink("..2026_11_24_a", cm.join("..data")).expect("..data");
    symlink("..data/acl.yaml", cm.join("acl.yaml")).expect("acl link");
    let tokens = dir
        .write("tokens.yaml", &format!("tokens:\n  - name: ops\n    scope: admin\n    token: \"{ADMIN}\"\n"));
    let env = Env::start_with(MoatOptions {
        client_auth: ClientAuth::None,
        admin_extra: Some(format!("  tokens_file: \"{}\"\n", tokens.display())),
        policy_yaml: Some(format!(
            "authentication:\n  - name: anon\n    type: anonymous\nauthorization:\n  acl: \"{}\"\n",
            cm.join("acl.yaml").display()
        )),
        ..Default::default()
    })
    .await;
    let mut c = env.raw_connected(Version::V5, &unique("cm")).await;
    assert_eq!(publish_qos1(&mut c, "a/1", 1).await, 0x00);
    let before = generation(&env).await;

    std::fs::create_dir_all(cm.join("..2026_11_24_b")).expect("mkdir");
    std::fs::write(cm.join("..2026_11_24_b/acl.yaml"), acl_allowing("b/#")).expect("acl b");
    symlink("..2026_11_24_b", cm.join("..data_tmp")).expect("..data_tmp");
    std::fs::rename(cm.join("..data_tmp"), cm.join("..data")).expect("swap");
    std::fs::remove_dir_all(cm.join("..2026_11_24_a")).expect("old dir");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while generation(&env).await == before {
        assert!(tokio::time::Instant::now() < deadline, "no reload after the swap:\n{}", env.moat.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(publish_qos1(&mut c, "a/2", 2).await, 0x87, "the old ACL is still in force");
    assert_eq!(publish_qos1(&mut c, "b/1", 3).await, 0x00, "the new ACL is not in force");
    // Touching nothing relevant (a file beside the policy) causes no reload.
    let after = generation(&env).await;
    std::fs::write(cm.join("unrelated.txt"), "x").expect("unrelated");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(generation(&env).await, after, "an unrelated file caused a reload");
}
