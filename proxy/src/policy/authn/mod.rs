//! Authentication: an ordered chain of authenticators per listener. Each one allows (with the
//! identity it verified), denies, or ignores (the next one decides). Nothing matched → deny.
//! Anonymous access exists only as an explicitly configured `anonymous` authenticator.
//!
//! This is the one async policy step: it runs between the global `on_connect` filters and
//! `start_session`, and nothing reaches the broker until it has decided (trap 2). Password hashes
//! are verified on a bounded blocking pool so an auth storm cannot stall relaying (trap 6).

pub mod http;
pub mod http_client;
pub mod jwt;
pub mod password;
pub mod scram;
mod x509;

use std::sync::Arc;

use tokio::sync::Semaphore;

pub use x509::{CertField, CertIdentity};

use super::Identity;
use crate::codec::ReasonCode;
use password::PasswordFile;

/// One configured authenticator.
pub enum Authenticator {
    PasswordFile(Arc<PasswordFile>),
    X509(X509Settings),
    /// The identity a TLS-PSK handshake proved becomes the username (`type: psk`).
    Psk {
        require_clientid_match: bool,
    },
    Anonymous,
    Jwt(Arc<jwt::JwtAuthenticator>),
    Http(Arc<http::HttpAuthenticator>),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind())
    }
}

#[derive(Clone, Copy, Debug)]
pub struct X509Settings {
    /// Certificate field that becomes the username (`peer_cert_as_username`).
    pub username_from: Option<CertField>,
    /// Certificate field that becomes the client id (`peer_cert_as_clientid`).
    pub clientid_from: Option<CertField>,
    /// The client id in CONNECT must equal the certificate CN.
    pub require_clientid_match: bool,
}

/// What the client presented. The password is wiped when dropped.
pub struct Credentials {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Vec<u8>>,
    pub cert: Option<CertIdentity>,
    /// Peer address, listener and certificate chain (for authenticators that pass them on).
    pub peer: Option<super::PeerInfo>,
}

impl Drop for Credentials {
    fn drop(&mut self) {
        if let Some(p) = self.password.as_mut() {
            p.iter_mut().for_each(|b| *b = 0);
            std::hint::black_box(&p);
        }
    }
}

/// The chain's decision.
#[derive(Debug)]
pub enum AuthDecision {
    Allow(Identity),
    /// `reason` goes to the client (its 3.1.1 form via `connack_v3`); `label` to metrics and logs.
    Deny {
        reason: ReasonCode,
        label: &'static str,
        authenticator: &'static str,
    },
}

enum Outcome {
    Allow(Identity),
    Deny(ReasonCode, &'static str),
    Ignore,
}

/// Authenticators of one listener, in order, sharing the verification pool.
#[derive(Clone)]
pub struct AuthChain {
    list: Vec<Arc<Authenticator>>,
    pool: Arc<Semaphore>,
}

impl AuthChain {
    pub fn new(list: Vec<Arc<Authenticator>>, pool: Arc<Semaphore>) -> Self {
        Self { list, pool }
    }

    /// A pool sized for password verification: CPU-bound work, one permit per core.
    pub fn verification_pool() -> Arc<Semaphore> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Semaphore::new(cores.max(1)))
    }

    /// The password file that answers SCRAM exchanges on this listener: the first password-file
    /// authenticator of the chain that holds SCRAM credentials. `None`: SCRAM is not offered.
    pub fn scram_file(&self) -> Option<Arc<PasswordFile>> {
        self.list.iter().find_map(|auth| match auth.as_ref() {
            Authenticator::PasswordFile(file) if file.has_scram() => Some(file.clone()),
            _ => None,
        })
    }

    pub async fn authenticate(&self, creds: Arc<Credentials>) -> AuthDecision {
        for auth in &self.list {
            let kind = auth.kind();
            match auth.check(&creds, &self.pool).await {
                Outcome::Allow(mut identity) => {
                    identity.authenticator = kind;
                    return AuthDecision::Allow(identity);
                }
                Outcome::Deny(reason, label) => {
                    return AuthDecision::Deny { reason, label, authenticator: kind }
                }
                Outcome::Ignore => {}
            }
        }
        AuthDecision::Deny {
            reason: ReasonCode::NotAuthorized,
            label: "no_authenticator",
            authenticator: "none",
        }
    }
}

impl Authenticator {
    /// The authenticator type, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Authenticator::PasswordFile(_) => "password_file",
            Authenticator::X509(_) => "x509",
            Authenticator::Psk { .. } => "psk",
            Authenticator::Anonymous => "anonymous",
            Authenticator::Jwt(_) => "jwt",
            Authenticator::Http(_) => "http",
        }
    }

    /// Whether an identity from this authenticator can carry ACL rules.
    pub fn may_carry_rules(&self) -> bool {
        match self {
            Authenticator::Jwt(j) => j.carries_rules(),
            Authenticator::Http(_) => true,
            _ => false,
        }
    }

    /// Starts background work (JWKS refresh) so keys are there before the first CONNECT.
    pub fn start(&self) {
        if let Authenticator::Jwt(j) = self {
            j.start();
        }
    }

    async fn check(&self, creds: &Arc<Credentials>, pool: &Arc<Semaphore>) -> Outcome {
        match self {
            Authenticator::Anonymous => Outcome::Allow(Identity {
                // A claimed username is not verified: it grants nothing (trap 5).
                username: None,
                client_id: creds.client_id.clone(),
                cert_cn: creds.cert.as_ref().and_then(|c| c.cn.clone()),
                ..Identity::default()
            }),
            Authenticator::X509(s) => x509_check(s, creds),
            Authenticator::Psk { require_clientid_match } => psk_check(*require_clientid_match, creds),
            Authenticator::PasswordFile(file) => password_check(file, creds, pool).await,
            Authenticator::Jwt(j) => j.check(creds).await,
            Authenticator::Http(h) => h.check(creds).await,
        }
    }
}

fn x509_check(s: &X509Settings, creds: &Credentials) -> Outcome {
    let Some(cert) = creds.cert.as_ref() else {
        return Outcome::Ignore;
    };
    if s.require_clientid_match && cert.cn.as_deref() != Some(creds.client_id.as_str()) {
        return Outcome::Deny(ReasonCode::ClientIdentifierNotValid, "clientid_cert_mismatch");
    }
    let username = match s.username_from {
        Some(f) => match cert.field(f) {
            Some(v) => Some(v.to_string()),
            None => return Outcome::Deny(ReasonCode::NotAuthorized, "cert_field_missing"),
        },
        None => None,
    };
    let client_id = match s.clientid_from {
        Some(f) => match cert.field(f) {
            Some(v) => v.to_string(),
            None => return Outcome::Deny(ReasonCode::NotAuthorized, "cert_field_missing"),
        },
        None => creds.client_id.clone(),
    };
    Outcome::Allow(Identity { username, client_id, cert_cn: cert.cn.clone(), ..Identity::default() })
}

/// The handshake already proved the client holds the identity's key, so the identity is the
/// credential (trap 5); it was checked for placeholder characters when the file was loaded.
/// Clients of certificate listeners have no PSK identity: the next authenticator decides.
fn psk_check(require_clientid_match: bool, creds: &Credentials) -> Outcome {
    let Some(identity) = creds.peer.as_ref().and_then(|p| p.psk_identity.as_deref()) else {
        return Outcome::Ignore;
    };
    if require_clientid_match && identity != creds.client_id {
        return Outcome::Deny(ReasonCode::ClientIdentifierNotValid, "clientid_psk_mismatch");
    }
    Outcome::Allow(Identity {
        username: Some(identity.to_string()),
        client_id: creds.client_id.clone(),
        ..Identity::default()
    })
}

async fn password_check(
    file: &Arc<PasswordFile>,
    creds: &Arc<Credentials>,
    pool: &Arc<Semaphore>,
) -> Outcome {
    let Some(username) = creds.username.clone() else {
        return Outcome::Ignore;
    };
    let Ok(_permit) = pool.clone().acquire_owned().await else {
        return Outcome::Deny(ReasonCode::ServerUnavailable, "auth_pool_closed");
    };
    let file = file.clone();
    let creds_for_check = creds.clone();
    let verified = tokio::task::spawn_blocking(move || {
        let password = creds_for_check.password.as_deref().unwrap_or_default();
        file.verify(&username, password)
            .map(|entry| (entry.superuser, entry.groups.clone(), entry.attributes.clone()))
    })
    .await;
    match verified {
        Ok(Some((superuser, groups, attributes))) => Outcome::Allow(Identity {
            username: creds.username.clone(),
            client_id: creds.client_id.clone(),
            cert_cn: creds.cert.as_ref().and_then(|c| c.cn.clone()),
            groups,
            attributes,
            superuser,
            authenticator: "password_file",
            ..Identity::default()
        }),
        // Unknown user and wrong password are the same answer (trap 6).
        Ok(None) => Outcome::Deny(ReasonCode::BadUserNameOrPassword, "bad_credentials"),
        Err(_) => Outcome::Deny(ReasonCode::ServerUnavailable, "auth_task_failed"),
    }
}
