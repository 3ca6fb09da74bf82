use std::io::Write as _;

use super::super::{load_ban_file, parse_ban_file, BanKind, LoadIssue, DEFAULT_BY, MAX_BAN_FILE_BYTES};

fn issues(text: &str) -> Vec<LoadIssue> {
    match parse_ban_file(text, 1000) {
        Ok(b) => panic!("expected errors, got {b:?}"),
        Err(i) => i,
    }
}

fn has(list: &[LoadIssue], line: u64, key: &str) -> bool {
    list.iter().any(|i| i.line == line && i.key == key)
}

#[test]
fn parses_every_kind_with_defaults_and_fields() {
    let text = r#"
bans:
  - {kind: clientid, who: sensor-17}
  - {kind: username, who: mallory, reason: "flooding", by: ops}
  - {kind: ipaddr, who: "::ffff:10.0.0.1"}
  - {kind: clientid_re, who: "dev-[0-9]+", created_at: 50, expires_at: 2000}
  - {kind: username_re, who: "bot.*", expires_at: null}
  - {kind: cidr, who: "2001:db8::/32"}
"#;
    let bans = parse_ban_file(text, 1000).expect("valid");
    assert_eq!(bans.len(), 6);
    let kinds: Vec<BanKind> = bans.iter().map(|b| b.kind).collect();
    assert_eq!(kinds, BanKind::ALL.to_vec());
    assert_eq!(bans[0].created_at, 1000, "created_at defaults to now");
    assert_eq!(bans[0].by, DEFAULT_BY);
    assert_eq!(bans[0].expires_at, None);
    assert_eq!(bans[1].reason, "flooding");
    assert_eq!(bans[1].by, "ops");
    assert_eq!(bans[2].who, "10.0.0.1", "mapped IPv6 is stored as IPv4");
    assert_eq!((bans[3].created_at, bans[3].expires_at), (50, Some(2000)));
    assert_eq!(bans[4].expires_at, None);
}

#[test]
fn empty_list_and_null_list_are_valid() {
    assert_eq!(parse_ban_file("bans: []", 0).expect("ok").len(), 0);
    assert_eq!(parse_ban_file("bans:", 0).expect("ok").len(), 0);
}

#[test]
fn missing_bans_key_is_an_error() {
    let i = issues("{}");
    assert!(i.iter().any(|i| i.key == "bans"), "{i:?}");
    assert!(!issues("").is_empty());
}

#[test]
fn unknown_keys_are_errors_at_both_levels() {
    let text = "bans:\n  - kind: clientid\n    who: a\n    reson: typo\nextra: 1\n";
    let i = issues(text);
    assert!(has(&i, 4, "bans[0].reson"), "{i:?}");
    assert!(has(&i, 5, "extra"), "{i:?}");
}

#[test]
fn invalid_inputs_are_reported_with_line_and_key() {
    let text = r#"bans:
  - kind: ipaddr
    who: "10.0.0.300"
  - kind: cidr
    who: "10.0.0.0/33"
  - kind: clientid_re
    who: "dev-("
  - kind: nonsense
    who: x
  - kind: clientid
    who: ""
  - kind: cidr
    who: "10.0.0.1/8"
  - kind: cidr
    who: "10.0.0.1"
  - kind: username
  - kind: clientid
    who: a
    expires_at: -5
  - kind: clientid
    who: b
    created_at: 10
    expires_at: 10
"#;
    let i = issues(text);
    assert!(has(&i, 3, "bans[0].who"), "{i:?}");
    assert!(has(&i, 5, "bans[1].who"), "{i:?}");
    assert!(has(&i, 7, "bans[2].who"), "{i:?}");
    assert!(has(&i, 8, "bans[3].kind"), "{i:?}");
    assert!(has(&i, 11, "bans[4].who"), "{i:?}");
    assert!(i.iter().any(|x| x.key == "bans[5].who" && x.message.contains("10.0.0.0/8")), "{i:?}");
    assert!(has(&i, 15, "bans[6].who"), "{i:?}");
    assert!(has(&i, 16, "bans[7].who"), "missing who: {i:?}");
    assert!(has(&i, 19, "bans[8].expires_at"), "{i:?}");
    assert!(has(&i, 23, "bans[9].expires_at"), "{i:?}");
}

#[test]
fn all_errors_are_collected_not_just_the_first() {
    let mut text = String::from("bans:\n");
    for n in 0..25 {
        text.push_str(&format!("  - {{kind: ipaddr, who: \"bad-{n}\"}}\n"));
    }
    assert_eq!(issues(&text).len(), 25);
}

#[test]
fn wrong_types_are_reported() {
    let i = issues(
        "bans:\n  - {kind: clientid, who: 42, reason: [x], created_at: \"soon\"}\n  - just-a-string\n",
    );
    assert!(i.iter().any(|x| x.key == "bans[0].who"), "{i:?}");
    assert!(i.iter().any(|x| x.key == "bans[0].reason"), "{i:?}");
    assert!(i.iter().any(|x| x.key == "bans[0].created_at"), "{i:?}");
    assert!(has(&i, 3, "bans[1]"), "{i:?}");
}

#[test]
fn duplicate_bans_and_keys_are_errors() {
    let i =
        issues("bans:\n  - {kind: ipaddr, who: 10.0.0.1}\n  - {kind: ipaddr, who: \"::ffff:10.0.0.1\"}\n");
    assert!(i.iter().any(|x| x.line == 3 && x.message.contains("line 2")), "{i:?}");
    // serde-saphyr itself rejects duplicate mapping keys.
    assert!(!issues("bans:\n  - {kind: ipaddr, kind: cidr, who: 10.0.0.1}\n").is_empty());
}

#[test]
fn invalid_yaml_reports_a_line() {
    let i = issues("bans:\n  - {kind: clientid, who: a\n  - x: [\n");
    assert_eq!(i.len(), 1);
    assert!(i[0].line > 0, "{i:?}");
}

#[test]
fn already_expired_bans_still_load() {
    let bans = parse_ban_file("bans:\n  - {kind: clientid, who: a, expires_at: 5}\n", 1_000_000).expect("ok");
    assert_eq!(bans[0].expires_at, Some(5));
}

#[test]
fn load_reads_a_file_and_rejects_missing_and_oversized() {
    let mut f = tempfile::NamedTempFile::new().expect("tmp");
    f.write_all(b"bans:\n  - {kind: username, who: eve}\n").expect("write");
    assert_eq!(load_ban_file(f.path(), 1).expect("ok").len(), 1);

    let missing = load_ban_file(std::path::Path::new("/nonexistent/bans.yaml"), 1).expect_err("missing");
    assert_eq!(missing[0].key, "(file)");

    let big = tempfile::NamedTempFile::new().expect("tmp");
    big.as_file().set_len(MAX_BAN_FILE_BYTES + 1).expect("grow");
    let e = load_ban_file(big.path(), 1).expect_err("too big");
    assert!(e[0].message.contains("larger"), "{e:?}");
}

#[test]
fn oversized_lists_hit_the_parser_budget_cleanly() {
    let mut text = String::from("bans:\n");
    for n in 0..60_000 {
        text.push_str(&format!("  - {{kind: clientid, who: c{n}}}\n"));
    }
    let i = issues(&text);
    assert_eq!(i.len(), 1, "{i:?}");
    assert_eq!(i[0].key, "(document)");
    assert!(i[0].message.contains("ban store"), "{i:?}");
}
