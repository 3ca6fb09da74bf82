use super::helpers::*;
use crate::policy::acl::*;

const EMQX: &str = r##"
%%--------------------------------------------------------------------
%% -type(ipaddr() :: {ipaddr, string()}).
%% -type(who() :: ipaddr() | username() | clientid() | all).
%%--------------------------------------------------------------------

{allow, {username, {re, "^dashboard$"}}, subscribe, ["$SYS/#"]}.

{allow, {ipaddr, "127.0.0.1"}, all, ["$SYS/#", "#"]}.

{allow, {'and', [{user, "sensor"}, {ipaddrs, ["10.0.0.0/8", "192.168.0.0/16"]}]},
    {publish, [{qos, [0, 1]}, {retain, false}]}, ["sensors/%c/#", "${username}/up"]}.

{allow, {clientid, "svc-1"}, pubsub, [<<"jobs/#">>]}.

{deny, all, subscribe, ["$SYS/#", {eq, "#"}]}.

{allow, all}.

{deny, all, publish, ["never/reached"]}.
"##;

#[test]
fn emqx_import_real_file() {
    let y = import_emqx(EMQX).expect("imports");
    let s = set(&y);
    assert_eq!(s.len(), 5, "{y}");
    assert_eq!(s.no_match(), Permission::Allow);
    assert!(y.contains("unreachable"), "{y}");
    assert_eq!(s.rules()[0].id(), "emqx-L7");
    assert!(s.uses_placeholder("clientid") && s.uses_placeholder("username"));

    let mut dash = client("d");
    dash.username = Some("dashboard".into());
    assert!(sub_ok(&s.compile_for(&dash, &[]), "$SYS/brokers/#"));

    let mut sensor = client("s1");
    sensor.username = Some("sensor".into());
    sensor.peer = "10.2.3.4".parse().ok();
    let a = s.compile_for(&sensor, &[]);
    assert!(a.check_publish("sensors/s1/t", 1, false).allowed());
    assert!(a.check_publish("sensor/up", 0, false).allowed());
    // Falls through to {deny, all, subscribe, [{eq, "#"}]}.
    assert!(!sub_ok(&a, "#"));
    // ... and everything else hits the catch-all allow.
    assert!(sub_ok(&a, "x/#"));
    assert!(a.check_publish("never/reached", 0, false).allowed());

    let mut svc = client("svc-1");
    svc.username = None;
    assert!(sub_ok(&s.compile_for(&svc, &[]), "jobs/+"));
}

#[test]
fn emqx_regex_keeps_search_semantics() {
    let y = import_emqx("{allow, {clientid, {re, \"dev\"}}, publish, [\"t\"]}.\n").expect("imports");
    let s = set(&y);
    assert!(pub_ok(&s.compile_for(&client("my-dev-1"), &[]), "t"));
    assert!(!pub_ok(&s.compile_for(&client("x"), &[]), "t"));
}

#[test]
fn emqx_import_errors_name_line() {
    let e = import_emqx("{allow, all, publish, [\"a\"]}.\n{allow, {weird, \"x\"}, publish, [\"a\"]}.\n")
        .expect_err("rejects");
    assert!(e.starts_with("line 2:"), "{e}");
    assert!(import_emqx("{allow, all, publish, [\"a/#/b\"]}.\n").is_err());
    assert!(import_emqx("{allow, all, publish, [\"a\"]}").is_err());
    assert!(import_emqx("{allow, all, subscribe, [\"a\"], extra}.").is_err());
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    assert!(import_emqx(&deep).is_err());
}

const MOSQ: &str = "# mosquitto acl_file\n\
topic read $SYS/#\n\
\n\
user alice\n\
topic readwrite alice/#\n\
topic deny alice/secret\n\
topic home/+/temp\n\
\n\
user bob\n\
topic write bob/out\n\
topic read shared/news\n\
\n\
pattern write devices/%c/#\n\
pattern read users/%u/inbox\n\
pattern deny admin/#\n";

#[test]
fn mosquitto_import_real_file() {
    let y = import_mosquitto(MOSQ).expect("imports");
    let s = set(&y);
    assert!(y.contains("not imported (anonymous clients): topic read $SYS/#"), "{y}");
    assert_eq!(s.len(), 8, "{y}");
    let mut alice = client("a1");
    alice.username = Some("alice".into());
    let a = s.compile_for(&alice, &[]);
    assert!(!pub_ok(&a, "alice/secret"), "deny lines come first, as in mosquitto");
    assert!(pub_ok(&a, "alice/x"));
    assert!(sub_ok(&a, "home/kitchen/temp"));
    assert!(pub_ok(&a, "devices/a1/state"));
    assert!(sub_ok(&a, "users/alice/inbox"));
    assert!(!pub_ok(&a, "users/alice/inbox"));
    assert!(!sub_ok(&a, "admin/x"));

    let mut bob = client("b1");
    bob.username = Some("bob".into());
    let b = s.compile_for(&bob, &[]);
    assert!(pub_ok(&b, "bob/out") && !sub_ok(&b, "bob/out"));
    assert!(sub_ok(&b, "shared/news"));
    assert!(!pub_ok(&b, "alice/x"));

    let mut anon = client("anon");
    anon.username = None;
    assert!(!sub_ok(&s.compile_for(&anon, &[]), "$SYS/#"));
}

#[test]
fn mosquitto_import_errors_name_line() {
    let e = import_mosquitto("user a\nfoo bar\n").expect_err("rejects");
    assert!(e.starts_with("line 2:"), "{e}");
    assert!(import_mosquitto("user a\ntopic read\n").is_err());
    assert!(import_mosquitto("user a\ntopic read a/#/b\n").is_err());
}
