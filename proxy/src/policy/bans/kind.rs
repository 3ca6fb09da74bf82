//! What a ban is: its kind, its target and its lifetime.

use serde::{Deserialize, Serialize};

use super::who;

/// What a ban matches. The serde names are the YAML/JSON spellings (`clientid`, `ipaddr`, …),
/// chosen to read like EMQX's banned-client kinds so operators can carry lists across.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BanKind {
    #[serde(rename = "clientid")]
    ClientId,
    #[serde(rename = "username")]
    Username,
    #[serde(rename = "ipaddr")]
    IpAddress,
    #[serde(rename = "clientid_re")]
    ClientIdRe,
    #[serde(rename = "username_re")]
    UsernameRe,
    #[serde(rename = "cidr")]
    Cidr,
}

impl BanKind {
    /// Every kind, in the order the YAML error messages list them.
    pub const ALL: [BanKind; 6] = [
        BanKind::ClientId,
        BanKind::Username,
        BanKind::IpAddress,
        BanKind::ClientIdRe,
        BanKind::UsernameRe,
        BanKind::Cidr,
    ];

    /// The file spelling, also used in logs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            BanKind::ClientId => "clientid",
            BanKind::Username => "username",
            BanKind::IpAddress => "ipaddr",
            BanKind::ClientIdRe => "clientid_re",
            BanKind::UsernameRe => "username_re",
            BanKind::Cidr => "cidr",
        }
    }

    /// Inverse of [`BanKind::as_str`].
    pub fn parse(s: &str) -> Option<BanKind> {
        BanKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for BanKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One ban. `(kind, who)` identifies it: a second ban with the same pair replaces (store) or
/// merges with (set) the first, so there is never doubt about which reason or expiry applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    pub kind: BanKind,
    /// The client id, username, IP address, regex or CIDR, per `kind`. IPs and CIDRs are kept in
    /// canonical form (see [`Ban::normalized`]) so equal targets compare equal.
    pub who: String,
    pub reason: String,
    /// Who issued the ban (an operator, `file`, the admin API…), for the audit trail.
    pub by: String,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; `None` = never. The ban stops applying at this instant (`now >= expires_at`).
    pub expires_at: Option<u64>,
}

impl Ban {
    /// Whether the ban still applies at `now` (unix seconds).
    pub fn is_active(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }

    /// Validates the ban and rewrites `who` into canonical form (IPv4-mapped IPv6 as IPv4,
    /// compressed IPv6, CIDR as written by `ipnet`). Every entry point (file, store, set) goes
    /// through this, so an invalid target can never silently match nothing.
    pub fn normalized(mut self) -> Result<Ban, String> {
        self.who = who::normalize_who(self.kind, &self.who)?;
        who::check_text("reason", &self.reason)?;
        who::check_text("by", &self.by)?;
        if let Some(e) = self.expires_at {
            if e <= self.created_at {
                return Err(format!("expires_at ({e}) must be later than created_at ({})", self.created_at));
            }
        }
        Ok(self)
    }
}
