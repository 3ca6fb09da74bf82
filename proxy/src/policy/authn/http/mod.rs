//! HTTP backend authentication (`type: http`): moat POSTs what the client presented to a
//! configured URL and the answer allows, denies or ignores (EMQX's HTTP authentication response
//! shape: `{"result": "allow"|"deny"|"ignore", "is_superuser": bool, "acl": [...]}`). A backend that
//! does not answer in time, answers non-2xx or garbage is a failure: deny by default, or pass to
//! the next authenticator with `on_failure: ignore`. Answers are cached for `cache_ttl`, keyed by
//! a keyed hash of every input (the password is never stored).

mod cache;
mod wire;

use std::time::Duration;

use reqwest::Url;
use tracing::warn;

use super::{http_client, Credentials, Outcome};
use crate::codec::ReasonCode;
use crate::policy::Identity;
use cache::Cache;
use wire::{Answer, Request};

/// Largest backend response body read.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFailure {
    Deny,
    Ignore,
}

pub struct HttpSettings {
    pub url: Url,
    pub timeout: Duration,
    pub on_failure: OnFailure,
    /// Zero: no caching.
    pub cache_ttl: Duration,
    pub cache_size: usize,
}

pub struct HttpAuthenticator {
    s: HttpSettings,
    client: reqwest::Client,
    cache: Option<Cache>,
}

impl HttpAuthenticator {
    pub fn new(s: HttpSettings) -> Result<Self, String> {
        let client = http_client::client(s.timeout)?;
        let cache = (!s.cache_ttl.is_zero()).then(|| Cache::new(s.cache_ttl, s.cache_size));
        Ok(Self { s, client, cache })
    }

    pub(super) async fn check(&self, creds: &Credentials) -> Outcome {
        let Ok(req) = Request::from_credentials(creds) else {
            // A password that is not UTF-8 cannot be sent as JSON without changing it.
            return Outcome::Deny(ReasonCode::BadUserNameOrPassword, "bad_credentials");
        };
        let key = self.cache.as_ref().map(|c| c.key(&req));
        if let (Some(cache), Some(key)) = (&self.cache, &key) {
            if let Some(answer) = cache.get(key) {
                return outcome(&answer, creds);
            }
        }
        match self.call(&req).await {
            Ok(answer) => {
                if let (Some(cache), Some(key)) = (&self.cache, key) {
                    cache.put(key, answer.clone());
                }
                outcome(&answer, creds)
            }
            Err(error) => {
                // `error` never contains the request body (no password in logs).
                warn!(target: "moat::audit", %error, "HTTP auth backend failed");
                match self.s.on_failure {
                    OnFailure::Deny => Outcome::Deny(ReasonCode::NotAuthorized, "backend_failure"),
                    OnFailure::Ignore => Outcome::Ignore,
                }
            }
        }
    }

    async fn call(&self, req: &Request<'_>) -> Result<Answer, String> {
        let body = serde_json::to_vec(req).map_err(|e| format!("encode request: {e}"))?;
        let call = async {
            let resp = self
                .client
                .post(self.s.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| e.without_url().to_string())?;
            let status = resp.status();
            if !status.is_success() {
                return Err(format!("HTTP status {}", status.as_u16()));
            }
            let bytes = http_client::read_body(resp, MAX_RESPONSE_BYTES).await?;
            Answer::parse(&bytes)
        };
        tokio::time::timeout(self.s.timeout, call).await.map_err(|_| "timed out".to_string())?
    }
}

fn outcome(answer: &Answer, creds: &Credentials) -> Outcome {
    match answer {
        Answer::Ignore => Outcome::Ignore,
        Answer::Deny => Outcome::Deny(ReasonCode::BadUserNameOrPassword, "bad_credentials"),
        Answer::InvalidRules => Outcome::Deny(ReasonCode::NotAuthorized, "acl_rules_invalid"),
        Answer::Allow { superuser, username, rules } => Outcome::Allow(Identity {
            // The backend checked this username with the password (or named another).
            username: username.clone().or_else(|| creds.username.clone()),
            client_id: creds.client_id.clone(),
            cert_cn: creds.cert.as_ref().and_then(|c| c.cn.clone()),
            superuser: *superuser,
            acl_rules: rules.clone(),
            ..Identity::default()
        }),
    }
}
