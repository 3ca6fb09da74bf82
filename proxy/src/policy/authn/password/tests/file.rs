//! File-level tests: the YAML and Mosquitto formats, one test per rejection rule, verification
//! semantics (trap 6), `mosquitto_passwd` interoperability and the `upsert_user` round trip.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

/// Fast Argon2id (RFC 9106 KAT, password "password") so that debug-build tests stay quick.
const KAT: &str = "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4";
const BCRYPT_PYTHON_2B: &str = "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie";
const MOSQ_7_ALICE: &str = "$7$101$bw9A/c4vbEONcCdI$oa/qDCZaBCnGTBhf3hVMXdzlYH9EGGHvKeRBSrVZ2pgDbMupA3/BjjgArhIN0eYloANj8SVmkdOZFuVpy3NOUw==";
const MOSQ_6_BOB: &str = "$6$DBVur/j4wiPI5/2i$pA9xFW0xOah9DJyOVeJoBooDtfYjWh6UOPeEfGTJIPgHnvduLrth3VyYpvBgKTKYeDBidzbwY3HVonOFOmWMMg==";
const PBKDF2_SHA256_DAVE: &str = "2b81ee32e722dbcf7fc2e30c669f978a28f3159b9f374eb3aabfe7b81c5aee64";
const SHA256_PREFIX: &str = "ef29bc6ea8493988b6015ffd597e49ce71c0be9b84a2f87f6994e586d49d7070";

fn full_example() -> String {
    format!(
        r#"# moat password file
users:
  alice:
    password_hash: "{KAT}"
    superuser: true
    groups: [operators, admins]
    attributes: {{site: paris}}
  bob:
    password_hash: "{BCRYPT_PYTHON_2B}"
  carol:
    password_hash: "{MOSQ_7_ALICE}"
  carl:
    password_hash: '{MOSQ_6_BOB}'
  dave:
    password_hash: {{algorithm: pbkdf2, mac_fun: sha256, iterations: 1000, salt: "emqx-salt", hash: "{PBKDF2_SHA256_DAVE}"}}
  erin:
    password_hash:
      algorithm: sha256
      salt: pepper
      salt_position: prefix
      hash: "{SHA256_PREFIX}"
"#
    )
}

fn issues(text: &str) -> Vec<LoadIssue> {
    match parse_password_file(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(issues) => issues,
    }
}

fn has_issue(issues: &[LoadIssue], line: u64, key: &str, needle: &str) -> bool {
    issues.iter().any(|i| i.line == line && i.key == key && i.message.contains(needle))
}

fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("moat-authn-{}-{n}-{name}", std::process::id()))
}

#[test]
fn full_yaml_example_loads_and_verifies_every_format() {
    let file = parse_password_file(&full_example()).unwrap();
    assert_eq!(file.len(), 6);
    let alice = file.verify("alice", b"password").unwrap();
    assert!(alice.superuser);
    assert_eq!(alice.groups, ["operators", "admins"]);
    assert_eq!(alice.attributes.get("site").map(String::as_str), Some("paris"));
    let bob = file.verify("bob", b"correctbatteryhorsestapler").unwrap();
    assert!(!bob.superuser && bob.groups.is_empty() && bob.attributes.is_empty());
    assert!(file.verify("carol", b"correct horse").is_some());
    assert!(file.verify("carl", b"s3cret!").is_some());
    assert!(file.verify("dave", b"dave-pass").is_some());
    assert!(file.verify("erin", b"erin-pass").is_some());
}

#[test]
fn wrong_password_is_refused() {
    let file = parse_password_file(&full_example()).unwrap();
    for user in ["alice", "bob", "carol", "carl", "dave", "erin"] {
        assert!(file.verify(user, b"not-the-password").is_none(), "{user}");
    }
    // Another user's password does not work either.
    assert!(file.verify("alice", b"dave-pass").is_none());
}

#[test]
fn unknown_user_gives_the_same_none_and_runs_the_dummy_hash() {
    let file = parse_password_file(&full_example()).unwrap();
    let count = || DUMMY_VERIFICATIONS.with(|c| c.get());
    let before = count();
    let unknown = file.verify("mallory", b"password");
    assert_eq!(count(), before + 1, "unknown user must be verified against the dummy");
    let wrong = file.verify("alice", b"wrong");
    assert_eq!(count(), before + 1, "known users never touch the dummy");
    assert!(unknown.is_none() && wrong.is_none());
    // Usernames are exact: no case folding, no trimming.
    assert!(file.verify("Alice", b"password").is_none());
    assert!(file.verify("alice ", b"password").is_none());
    assert_eq!(count(), before + 3);
}

#[test]
fn unknown_user_takes_comparable_time_to_a_wrong_password() {
    // Real OWASP-cost entries (the dummy imitates them); min over rounds filters scheduler noise.
    let file = parse_password_file(&format!(
        "users:\n  alice:\n    password_hash: \"{}\"\n",
        hash_password(b"alice-pass").expect("hash")
    ))
    .unwrap();
    // Interleaved so that warm-up and frequency changes hit both sides alike; the minimum of
    // each side filters scheduler noise on a busy 2-core machine.
    let (mut wrong, mut unknown) = (Duration::MAX, Duration::MAX);
    for round in 0..6 {
        let (user, best) = if round % 2 == 0 { ("mallory", &mut unknown) } else { ("alice", &mut wrong) };
        let start = Instant::now();
        assert!(file.verify(user, b"wrong-pass").is_none());
        *best = (*best).min(start.elapsed());
    }
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(ratio >= 0.3, "unknown {unknown:?} vs wrong password {wrong:?}");
    assert!(ratio <= 3.0, "unknown {unknown:?} vs wrong password {wrong:?}");
}

#[test]
fn empty_password_is_always_refused() {
    let file = parse_password_file(&format!(
        "users:\n  nopw:\n    password_hash: \"{}\"\n",
        hash_password(b"").expect("hash")
    ))
    .unwrap();
    assert!(file.verify("nopw", b"").is_none(), "an entry hashing the empty string must not log in");
    assert!(file.verify("ghost", b"").is_none());
}

#[test]
fn malformed_hash_is_rejected_with_line_and_key() {
    let text =
        "users:\n  alice:\n    groups: [a]\n    password_hash: \"$argon2id$v=19$m=256,t=2,p=1$!!$nf65\"\n";
    let found = issues(text);
    assert!(has_issue(&found, 4, "users.alice.password_hash", "Argon2"), "{found:?}");
    assert!(found.iter().all(|i| !i.message.contains("nf65")));

    let found = issues("users:\n  bob:\n    password_hash: \"$7$101$***$abc\"\n");
    assert!(has_issue(&found, 3, "users.bob.password_hash", "base64"), "{found:?}");

    let found = issues("users:\n  dave:\n    password_hash:\n      algorithm: sha256\n      salt: s\n      salt_position: prefix\n      hash: \"zz11\"\n");
    assert!(has_issue(&found, 7, "users.dave.password_hash.hash", "hex"), "{found:?}");
}

#[test]
fn unknown_algorithm_is_rejected() {
    let found = issues("users:\n  a:\n    password_hash: \"$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA\"\n");
    assert!(has_issue(&found, 3, "users.a.password_hash", "unknown password hash format"), "{found:?}");

    let found = issues("users:\n  a:\n    password_hash: \"hunter2\"\n");
    assert!(has_issue(&found, 3, "users.a.password_hash", "unknown"), "plaintext must never load");

    let found = issues(
        "users:\n  a:\n    password_hash: {algorithm: md5, salt: s, salt_position: prefix, hash: \"00\"}\n",
    );
    assert!(has_issue(&found, 3, "users.a.password_hash.algorithm", "unsupported algorithm"), "{found:?}");

    let found = issues("users:\n  a:\n    password_hash:\n      algorithm: pbkdf2\n      mac_fun: md5\n      iterations: 10\n      salt: s\n      hash: \"00\"\n");
    assert!(has_issue(&found, 5, "users.a.password_hash.mac_fun", "unsupported mac_fun"), "{found:?}");
}

#[test]
fn duplicate_user_is_rejected() {
    let text =
        format!("users:\n  alice:\n    password_hash: \"{KAT}\"\n  alice:\n    password_hash: \"{KAT}\"\n");
    let found = issues(&text);
    assert!(has_issue(&found, 4, "users.alice", "duplicate user (first defined on line 2)"), "{found:?}");

    let found = match parse_mosquitto_passwd(&format!("alice:{MOSQ_7_ALICE}\n# c\nalice:{MOSQ_6_BOB}\n")) {
        Ok(_) => panic!("duplicate accepted"),
        Err(found) => found,
    };
    assert!(has_issue(&found, 3, "alice", "duplicate user (first defined on line 1)"), "{found:?}");
}

#[test]
fn duplicate_keys_inside_an_entry_are_rejected() {
    let text = format!(
        "users:\n  alice:\n    password_hash: \"{KAT}\"\n    superuser: false\n    superuser: true\n"
    );
    let found = issues(&text);
    assert!(has_issue(&found, 5, "users.alice.superuser", "duplicate key"), "{found:?}");
}

#[test]
fn unknown_keys_are_rejected_at_every_level() {
    let text =
        format!("users:\n  alice:\n    password_hash: \"{KAT}\"\n    superusr: true\nversion: 2\n  \n");
    let found = issues(&text);
    assert!(has_issue(&found, 4, "users.alice.superusr", "unknown key"), "{found:?}");
    assert!(has_issue(&found, 5, "version", "unknown key"), "{found:?}");

    let text = "users:\n  dave:\n    password_hash:\n      algorithm: sha256\n      salt: s\n      salt_position: prefix\n      rounds: 3\n      hash: \"ef29bc6ea8493988b6015ffd597e49ce71c0be9b84a2f87f6994e586d49d7070\"\n";
    let found = issues(text);
    assert!(has_issue(&found, 7, "users.dave.password_hash.rounds", "unknown key"), "{found:?}");
}

#[test]
fn iterations_out_of_range_are_rejected() {
    for (iterations, ok) in [("0", false), ("10000001", false), ("1", true), ("10000000", true)] {
        let text = format!(
            "users:\n  dave:\n    password_hash:\n      algorithm: pbkdf2\n      mac_fun: sha256\n      \
             iterations: {iterations}\n      salt: s\n      hash: \"{PBKDF2_SHA256_DAVE}\"\n"
        );
        match parse_password_file(&text) {
            Ok(_) => assert!(ok, "{iterations} accepted"),
            Err(found) => {
                assert!(!ok, "{iterations} rejected: {found:?}");
                assert!(
                    has_issue(&found, 6, "users.dave.password_hash.iterations", "out of range"),
                    "{found:?}"
                );
            }
        }
    }
    let found = match parse_mosquitto_passwd(&format!("alice:$7$0{}\n", &MOSQ_7_ALICE[6..])) {
        Ok(_) => panic!("accepted"),
        Err(found) => found,
    };
    assert!(has_issue(&found, 1, "alice", "out of range"), "{found:?}");
}

#[test]
fn emqx_short_or_mismatched_derived_keys_are_rejected() {
    // A 1-byte key would let one random password in 256 through.
    let found = issues("users:\n  d:\n    password_hash: {algorithm: pbkdf2, mac_fun: sha256, iterations: 10, salt: s, hash: \"ab\", dk_length: 1}\n");
    assert!(has_issue(&found, 3, "users.d.password_hash.dk_length", "out of range"), "{found:?}");
    let text = format!("users:\n  d:\n    password_hash: {{algorithm: pbkdf2, mac_fun: sha256, iterations: 10, salt: s, hash: \"{PBKDF2_SHA256_DAVE}\", dk_length: 20}}\n");
    let found = issues(&text);
    assert!(has_issue(&found, 3, "users.d.password_hash.hash", "dk_length"), "{found:?}");
    let found = issues("users:\n  d:\n    password_hash: {algorithm: sha256, salt: \"\", salt_position: prefix, hash: \"ef29bc6ea8493988b6015ffd597e49ce71c0be9b84a2f87f6994e586d49d7070\"}\n");
    assert!(has_issue(&found, 3, "users.d.password_hash.salt", "empty"), "{found:?}");
    let found = issues("users:\n  d:\n    password_hash: {algorithm: sha256, salt: s, hash: \"ef29bc6ea8493988b6015ffd597e49ce71c0be9b84a2f87f6994e586d49d7070\"}\n");
    assert!(has_issue(&found, 3, "users.d.password_hash.salt_position", "missing"), "{found:?}");
}

#[test]
fn every_problem_is_collected() {
    let text = format!(
        "users:\n  a:\n    password_hash: \"$1$x$y\"\n  b:\n    colour: red\n    password_hash: \"{KAT}\"\n  c: \n  \"\":\n    password_hash: \"{KAT}\"\n"
    );
    let found = issues(&text);
    assert!(has_issue(&found, 3, "users.a.password_hash", "unknown"), "{found:?}");
    assert!(has_issue(&found, 5, "users.b.colour", "unknown key"), "{found:?}");
    assert!(has_issue(&found, 7, "users.c.password_hash", "missing"), "{found:?}");
    assert!(has_issue(&found, 8, "users.", "empty username"), "{found:?}");
    assert_eq!(found.len(), 4, "{found:?}");
}

#[test]
fn yaml_syntax_and_type_errors_have_a_line_and_no_secret() {
    let found = issues(&format!("users:\n  alice:\n    password_hash: \"{KAT}\"\n    superuser: [\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].line >= 4, "{found:?}");
    let found =
        issues(&format!("users:\n  alice:\n    password_hash: \"{KAT}\"\n    superuser: \"{KAT}\"\n"));
    assert!(found.iter().any(|i| i.line == 4 && i.key == "superuser"), "{found:?}");
    assert!(found.iter().all(|i| !i.message.contains("nf65") && !i.key.contains("nf65")), "{found:?}");
    let found = issues("users: [alice]\n");
    assert_eq!(found[0].line, 1, "{found:?}");
    let found = issues("");
    assert!(has_issue(&found, 1, "users", "missing"), "{found:?}");
}

#[test]
fn mosquitto_format_parses_comments_and_reports_bad_lines() {
    let text = format!("# users\n\nalice:{MOSQ_7_ALICE}\r\nbob:{MOSQ_6_BOB}\n");
    let file = parse_mosquitto_passwd(&text).unwrap();
    assert_eq!(file.len(), 2);
    assert!(file.verify("alice", b"correct horse").is_some());
    assert!(file.verify("bob", b"s3cret!").is_some());
    assert!(file.verify("bob", b"correct horse").is_none());

    let found = match parse_mosquitto_passwd("no-colon-here\n:$7$1$a$b\nzed:plain\n") {
        Ok(_) => panic!("accepted"),
        Err(found) => found,
    };
    assert!(has_issue(&found, 1, "entry", "user:hash"), "{found:?}");
    assert!(has_issue(&found, 2, "username", "empty"), "{found:?}");
    assert!(has_issue(&found, 3, "zed", "unknown"), "{found:?}");
    assert!(parse_mosquitto_passwd("").unwrap().is_empty());
}

#[test]
fn load_detects_the_format_and_bounds_the_read() {
    let yaml = temp_path("users.yaml");
    std::fs::write(&yaml, full_example()).unwrap();
    assert_eq!(load_password_file(&yaml).unwrap().len(), 6);

    let mosq = temp_path("passwd");
    std::fs::write(&mosq, format!("users:{MOSQ_7_ALICE}\nbob:{MOSQ_6_BOB}\n")).unwrap();
    let file = load_password_file(&mosq).unwrap();
    assert!(file.verify("users", b"correct horse").is_some(), "a user named `users` is still Mosquitto");

    let binary = temp_path("binary");
    std::fs::write(&binary, b"users:\n  \xff\xfe:\n").unwrap();
    let found = load_password_file(&binary).err().unwrap_or_default();
    assert!(has_issue(&found, 0, "file", "UTF-8"), "{found:?}");

    let big = temp_path("big");
    std::fs::File::create(&big).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
    let found = load_password_file(&big).err().unwrap_or_default();
    assert!(has_issue(&found, 0, "file", "larger than"), "{found:?}");

    let found = load_password_file(&temp_path("missing")).err().unwrap_or_default();
    assert!(has_issue(&found, 0, "file", "cannot open"), "{found:?}");
    for path in [yaml, mosq, binary, big] {
        let _ = std::fs::remove_file(path);
    }
}

#[test]
fn mosquitto_passwd_output_verifies_at_test_time() {
    let path = temp_path("mosquitto_passwd");
    let run = |args: &[&str]| Command::new("mosquitto_passwd").args(args).output();
    let created = match run(&["-b", "-c", path.to_str().unwrap_or_default(), "alice", "live-pass-1"]) {
        Ok(out) => out,
        Err(e) => {
            eprintln!(
                "SKIPPED: mosquitto_passwd is not installed ({e}); vectors in tests.rs still cover $7$/$6$"
            );
            return;
        }
    };
    assert!(created.status.success(), "{created:?}");
    let sha512 =
        run(&["-H", "sha512", "-b", path.to_str().unwrap_or_default(), "bob", "live-pass-2"]).unwrap();
    assert!(sha512.status.success(), "{sha512:?}");
    let file = load_password_file(&path).unwrap();
    assert_eq!(file.len(), 2);
    assert_eq!(
        file.verify("alice", b"live-pass-1").map(UserEntry::algorithm),
        Some("mosquitto-pbkdf2-sha512")
    );
    assert_eq!(file.verify("bob", b"live-pass-2").map(UserEntry::algorithm), Some("mosquitto-sha512"));
    assert!(file.verify("alice", b"live-pass-2").is_none());
    assert!(file.verify("bob", b"live-pass-1").is_none());
    let _ = std::fs::remove_file(path);
}

#[test]
fn hash_upsert_parse_verify_round_trip() {
    // New file from nothing.
    let text = upsert_user("", "alice", &hash_password(b"alice-pass").expect("hash")).unwrap();
    let file = parse_password_file(&text).unwrap();
    assert!(file.verify("alice", b"alice-pass").is_some());

    // Add a user to an existing file, keeping comments and every other entry.
    let base = full_example();
    let text = upsert_user(&base, "frank", KAT).unwrap();
    assert!(text.starts_with("# moat password file\n"));
    assert!(text.contains("attributes: {site: paris}"));
    let file = parse_password_file(&text).unwrap();
    assert_eq!(file.len(), 7);
    assert!(file.verify("frank", b"password").is_some());
    assert!(file.verify("dave", b"dave-pass").is_some());

    // Replace an existing user's hash, including a multi-line EMQX mapping.
    let text = upsert_user(&text, "erin", BCRYPT_PYTHON_2B).unwrap();
    let file = parse_password_file(&text).unwrap();
    assert_eq!(file.len(), 7);
    assert!(file.verify("erin", b"correctbatteryhorsestapler").is_some());
    assert!(file.verify("erin", b"erin-pass").is_none());
    let alice = upsert_user(&text, "alice", &hash_password(b"new-alice").expect("hash")).unwrap();
    let file = parse_password_file(&alice).unwrap();
    let entry = file.verify("alice", b"new-alice").unwrap();
    assert!(entry.superuser && entry.groups == ["operators", "admins"], "other keys of the entry are kept");
    assert!(file.verify("alice", b"password").is_none());
}

#[test]
fn upsert_handles_empty_users_crlf_and_odd_names() {
    let text = upsert_user("# only a comment\nusers: {}\n", "a\"b\\c", KAT).unwrap();
    let file = parse_password_file(&text).unwrap();
    assert!(file.verify("a\"b\\c", b"password").is_some());
    assert!(text.starts_with("# only a comment\n"));

    let crlf = format!("users:\r\n  bob:\r\n    password_hash: \"{BCRYPT_PYTHON_2B}\"\r\n");
    let text = upsert_user(&crlf, "zoë", KAT).unwrap();
    assert!(!text.replace("\r\n", "").contains('\n'), "line endings kept");
    let file = parse_password_file(&text).unwrap();
    assert!(file.verify("zoë", b"password").is_some());
    assert!(file.verify("bob", b"correctbatteryhorsestapler").is_some());
}

#[test]
fn upsert_refuses_what_it_cannot_edit_safely() {
    let flow = format!("users: {{alice: {{password_hash: \"{KAT}\"}}}}\n");
    assert!(upsert_user(&flow, "bob", KAT).is_err());
    assert!(upsert_user(&flow, "alice", KAT).is_err());
    let err = upsert_user("users:\n", "a", "not-a-hash").unwrap_err();
    assert!(!err.contains("not-a-hash"), "{err}");
    assert!(upsert_user(&format!("alice:{MOSQ_7_ALICE}\n"), "bob", KAT).is_err());
    assert!(upsert_user("users: [\n", "bob", KAT).is_err());
    assert!(upsert_user("users:\n", "", KAT).is_err());
    assert!(upsert_user("users:\n", "a\nb", KAT).is_err());
}

#[test]
fn password_file_can_be_shared_across_the_blocking_pool() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<PasswordFile>();
    assert_send_sync::<UserEntry>();
    assert_send_sync::<LoadIssue>();
}

#[test]
fn load_issue_displays_line_key_and_message() {
    let issue = LoadIssue::new(7, "users.bob.password_hash", "unknown password hash format");
    assert_eq!(issue.to_string(), "line 7: users.bob.password_hash: unknown password hash format");
}

#[test]
fn empty_file_uses_the_default_dummy_for_unknown_users() {
    let file = parse_password_file("users:\n").unwrap();
    assert!(file.is_empty());
    assert_eq!(file.dummy_algorithm(), "argon2id");
    let before = DUMMY_VERIFICATIONS.with(|c| c.get());
    assert!(file.verify("anyone", b"x").is_none());
    assert_eq!(DUMMY_VERIFICATIONS.with(|c| c.get()), before + 1);
}

#[test]
fn truncated_or_corrupted_files_never_panic_nor_leak_hashes() {
    let text = full_example();
    let secrets = ["nf65EOgLrQ", "EGdrhbKUv8", "oa/qDCZaBC", "pA9xFW0xOa", "2b81ee32e7", "ef29bc6ea8"];
    let check = |candidate: &str| {
        for result in [parse_password_file(candidate), parse_mosquitto_passwd(candidate)] {
            if let Err(found) = result {
                for issue in &found {
                    let shown = format!("{issue} {issue:?}");
                    assert!(secrets.iter().all(|s| !shown.contains(s)), "{shown}");
                }
            }
        }
    };
    for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
        check(&text[..end]);
    }
    for (i, _) in text.char_indices().step_by(5) {
        for replacement in ["\"", ":", "\n", " ", "{", "$"] {
            let mut corrupted = text.clone();
            let len = corrupted[i..].chars().next().map_or(0, char::len_utf8);
            corrupted.replace_range(i..i + len, replacement);
            check(&corrupted);
        }
    }
}

#[test]
fn non_string_usernames_are_read_as_text() {
    let text =
        format!("users:\n  1234:\n    password_hash: \"{KAT}\"\n  true:\n    password_hash: \"{KAT}\"\n");
    match parse_password_file(&text) {
        Ok(file) => {
            assert!(file.verify("1234", b"password").is_some());
            assert!(file.verify("true", b"password").is_some());
        }
        // Refusing is acceptable too, as long as it says where.
        Err(found) => assert!(found.iter().all(|i| i.line > 0), "{found:?}"),
    }
}

#[test]
fn alias_bombs_are_refused_quickly() {
    // Unknown keys are skipped value by value, so the skipped values must be bounded too.
    let mut text = String::from("users: {}\nx0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for level in 1..10 {
        let list = vec![format!("*l{}", level - 1); 10].join(", ");
        text.push_str(&format!("x{level}: &l{level} [{list}]\n"));
    }
    let start = Instant::now();
    let found = issues(&text);
    // Bounded by the event budget: ~0.3 s optimised, seconds in a loaded debug build.
    assert!(start.elapsed() < Duration::from_secs(60), "took {:?}", start.elapsed());
    assert!(found.iter().any(|i| i.message.contains("limits")), "{found:?}");
}

#[test]
fn scram_credentials_load_and_bad_ones_name_line_and_key() {
    use crate::policy::authn::scram::{Mechanism, ScramCredential};
    let good256 = ScramCredential::derive(Mechanism::Sha256, b"pw", &[1u8; 16], 4096).encode();
    let good512 = ScramCredential::derive(Mechanism::Sha512, b"pw", &[2u8; 16], 4096).encode();
    let text = format!(
        "users:\n  alice:\n    password_hash: \"{KAT}\"\n    scram_sha256: \"{good256}\"\n    scram_sha512: \"{good512}\"\n"
    );
    let file = parse_password_file(&text).expect("loads");
    assert!(file.has_scram());
    let plain =
        parse_password_file(&format!("users:\n  bob:\n    password_hash: \"{KAT}\"\n")).expect("loads");
    assert!(!plain.has_scram());

    let low = ScramCredential::derive(Mechanism::Sha256, b"pw", &[1u8; 16], 4096)
        .encode()
        .replacen("4096:", "1000:", 1);
    let short_salt = format!("4096:AAAA:{}", good256.splitn(3, ':').nth(2).unwrap_or(""));
    let text = format!(
        "users:\n  alice:\n    password_hash: \"{KAT}\"\n    scram_sha256: \"{low}\"\n    scram_sha512: \"{good256}\"\n  bob:\n    password_hash: \"{KAT}\"\n    scram_sha256: \"{short_salt}\"\n    scram_sha256: \"{good256}\"\n"
    );
    let found = issues(&text);
    assert!(has_issue(&found, 4, "users.alice.scram_sha256", "out of range 4096"), "{found:?}");
    assert!(has_issue(&found, 5, "users.alice.scram_sha512", "64 bytes"), "{found:?}");
    assert!(has_issue(&found, 8, "users.bob.scram_sha256", "salt must be"), "{found:?}");
    assert!(has_issue(&found, 9, "users.bob.scram_sha256", "duplicate"), "{found:?}");
    let stored = good256.split(':').nth(2).unwrap_or("x");
    assert!(found.iter().all(|i| !i.message.contains(stored) && !i.key.contains(stored)));
}
