use super::super::{Ban, BanKind};
use super::{ban, ban_until};

#[test]
fn kind_spellings_match_the_file_format() {
    for (k, s) in
        BanKind::ALL.into_iter().zip(["clientid", "username", "ipaddr", "clientid_re", "username_re", "cidr"])
    {
        assert_eq!(k.as_str(), s);
        assert_eq!(BanKind::parse(s), Some(k));
        assert_eq!(serde_json::to_string(&k).expect("json"), format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<BanKind>(&format!("\"{s}\"")).expect("json"), k);
    }
    assert_eq!(BanKind::parse("ClientId"), None);
}

#[test]
fn is_active_until_the_expiry_instant() {
    assert!(ban(BanKind::ClientId, "a").is_active(u64::MAX));
    let b = ban_until(BanKind::ClientId, "a", 10);
    assert!(b.is_active(9));
    assert!(!b.is_active(10));
}

#[test]
fn normalized_canonicalizes_and_validates() {
    let n = |kind, who: &str| ban(kind, who).normalized().map(|b| b.who);
    assert_eq!(n(BanKind::IpAddress, "::FFFF:10.0.0.1").as_deref(), Ok("10.0.0.1"));
    assert_eq!(n(BanKind::IpAddress, "2001:DB8:0::1").as_deref(), Ok("2001:db8::1"));
    assert_eq!(n(BanKind::Cidr, "::ffff:10.0.0.0/104").as_deref(), Ok("10.0.0.0/8"));
    assert_eq!(n(BanKind::Cidr, "2001:db8::/32").as_deref(), Ok("2001:db8::/32"));
    assert!(n(BanKind::Cidr, "10.0.0.1/8").is_err_and(|e| e.contains("10.0.0.0/8")));
    assert!(n(BanKind::ClientId, "").is_err());
    assert!(n(BanKind::ClientId, &"x".repeat(65_536)).is_err());
    assert!(n(BanKind::UsernameRe, "a{99999}{99999}").is_err(), "regex size limit");
    let long_reason = Ban { reason: "r".repeat(5000), ..ban(BanKind::ClientId, "a") };
    assert!(long_reason.normalized().is_err());
    let backwards = Ban { created_at: 10, expires_at: Some(10), ..ban(BanKind::ClientId, "a") };
    assert!(backwards.normalized().is_err());
}
