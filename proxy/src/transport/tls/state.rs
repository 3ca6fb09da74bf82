//! The live TLS state of one listener: the rustls config every new handshake uses, swapped
//! atomically on reload. Connections already established keep the config they shook hands with,
//! so a reload never drops anyone.
//!
//! Reloading from elsewhere (SIGHUP, admin API): take the listener's state from
//! `Server::tls_states()` and call [`TlsState::reload`] on a blocking thread, e.g.
//! `tokio::task::spawn_blocking(move || state.reload())`. The outcome says whether anything
//! changed; on error the old material stays in force (logged and counted either way). After a
//! reload that changed CRLs, [`TlsState::check_client_chain`] tells which live sessions' client
//! chains are now revoked (kicking them is the session registry's job).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::{CertificateError, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::material::{Material, Paths};
use super::ocsp::client::ClientChecker;
use super::ocsp::staple::Stapler;
use super::{build, Settings, TlsSetupError};
use crate::config::TlsConfig;
use crate::metrics::tls::MaterialFacts;
use crate::metrics::Metrics;

/// The config in force, with what it was built from.
struct Active {
    config: Arc<ServerConfig>,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
    digest: [u8; 32],
    client_ca: Vec<CertificateDer<'static>>,
}

pub struct TlsState {
    listener: Arc<str>,
    settings: Settings,
    paths: Paths,
    active: ArcSwap<Active>,
    /// Bumped on every successful reload; lets callers tell whether a session predates it.
    generation: AtomicU64,
    /// One reload at a time (watcher and SIGHUP/admin may race).
    reload_lock: Mutex<()>,
    /// CRLs fetched from distribution points (last good copies), used alongside the files.
    fetched: Mutex<Vec<CertificateRevocationListDer<'static>>>,
    metrics: Arc<Metrics>,
    /// Bumped after every swap so live sessions re-check their client chain (revocation).
    sessions: std::sync::OnceLock<crate::policy::live::Generation>,
    /// OCSP stapling of the server certificate (`tls.ocsp_stapling`).
    stapler: Option<Arc<Stapler>>,
    /// OCSP check of client certificates (`tls.client_ocsp`).
    client_ocsp: Option<Arc<ClientChecker>>,
}

/// What a reload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// New material is in force for new handshakes; `generation` is its number.
    Reloaded { generation: u64 },
    /// The files are byte-identical to what is in force: nothing swapped (session cache kept).
    Unchanged,
}

/// A client chain checked against the material in force now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    /// Still verifies (trusted, not revoked, CRLs current).
    Good,
    /// A CRL in force revokes a certificate of the chain.
    Revoked,
    /// Fails for another reason (CA removed, CRL expired, certificate expired, chain too long).
    Rejected(String),
    /// The listener does not verify client certificates.
    NotChecked,
}

impl TlsState {
    /// Loads the listener's files and builds the first config. Fails (the listener does not
    /// start) on any problem, including a key that does not match its certificate.
    pub fn new(listener: &str, cfg: &TlsConfig, metrics: Arc<Metrics>) -> Result<Arc<Self>, TlsSetupError> {
        let settings = Settings::of(cfg);
        let paths = Paths::of(cfg);
        // At start an expired CRL is loaded and fails closed in the handshake (unless allowed);
        // refusing to start would take the listener down for everyone instead.
        let material = Material::load(&paths, false)?;
        let mut built = build(&settings, &material)?;
        let stapler =
            settings.options.ocsp_stapling.clone().map(|c| Stapler::new(listener, c, metrics.clone()));
        if let Some(s) = &stapler {
            s.install(&mut built.config, &material).map_err(TlsSetupError::Server)?;
        }
        let client_ocsp =
            settings.options.client_ocsp.clone().map(|c| ClientChecker::new(listener, c, metrics.clone()));
        metrics.tls.set_material(listener, facts(&material));
        let active = Active {
            config: built.config,
            verifier: built.verifier,
            digest: material.digest,
            client_ca: material.client_ca.clone(),
        };
        Ok(Arc::new(Self {
            listener: listener.into(),
            settings,
            paths,
            active: ArcSwap::from_pointee(active),
            generation: AtomicU64::new(0),
            reload_lock: Mutex::new(()),
            fetched: Mutex::new(Vec::new()),
            metrics,
            sessions: std::sync::OnceLock::new(),
            stapler,
            client_ocsp,
        }))
    }

    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// After each swap of material, bump `generation` so live sessions re-check themselves
    /// (their client chain against the new CRLs). Set once, when the server is assembled.
    pub fn notify_sessions(&self, generation: crate::policy::live::Generation) {
        let _ = self.sessions.set(generation);
    }

    /// Whether live sessions whose chain no longer verifies are closed.
    pub fn disconnects_revoked(&self) -> bool {
        self.settings.options.disconnect_revoked
    }

    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn watch_enabled(&self) -> bool {
        self.settings.options.watch
    }

    /// The acceptor for one new connection (one atomic load).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.active.load().config.clone())
    }

    /// Number of successful reloads so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Re-reads every file and, if all of it is valid and something changed, swaps in a new
    /// config (with a new session cache and ticket key: sessions from before cannot be resumed).
    /// A bad file (unparsable, key not matching the certificate, CRL past nextUpdate when
    /// `allow_expired_crl` is off, CA bundle rejected) keeps the old material in force.
    ///
    /// Blocking (file reads): call it from a blocking thread.
    pub fn reload(&self) -> Result<ReloadOutcome, TlsSetupError> {
        let _one = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.try_reload();
        match &result {
            Ok(ReloadOutcome::Reloaded { generation }) => {
                self.metrics.tls.reload(&self.listener, "success");
                info!(target: "moat::audit", listener = %self.listener, generation, "TLS material reloaded");
            }
            Ok(ReloadOutcome::Unchanged) => self.metrics.tls.reload(&self.listener, "unchanged"),
            Err(e) => {
                self.metrics.tls.reload(&self.listener, "failure");
                warn!(target: "moat::audit", listener = %self.listener, error = %e, "TLS reload refused, old material kept");
            }
        }
        result
    }

    /// Replaces the CRLs fetched from distribution points and rebuilds the config with them
    /// (blocking, like [`TlsState::reload`]).
    pub fn set_fetched_crls(
        &self,
        crls: Vec<CertificateRevocationListDer<'static>>,
    ) -> Result<ReloadOutcome, TlsSetupError> {
        *self.fetched.lock().unwrap_or_else(|p| p.into_inner()) = crls;
        self.reload()
    }

    /// The client CA bundle in force (its CRL distribution points are fetched).
    pub fn client_ca(&self) -> Vec<CertificateDer<'static>> {
        self.active.load().client_ca.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The listener's `crl_fetch` settings, if CRLs are fetched.
    pub fn crl_fetch(&self) -> Option<crate::config::CrlFetch> {
        self.settings.options.crl_fetch.clone()
    }

    /// The listener's OCSP stapler, if `ocsp_stapling` is on.
    pub fn stapler(&self) -> Option<Arc<Stapler>> {
        self.stapler.clone()
    }

    /// The listener's client certificate OCSP checker, if `client_ocsp` is on.
    pub fn client_ocsp(&self) -> Option<Arc<ClientChecker>> {
        self.client_ocsp.clone()
    }

    pub fn allow_expired_crl(&self) -> bool {
        self.settings.allow_expired_crl
    }

    fn try_reload(&self) -> Result<ReloadOutcome, TlsSetupError> {
        let mut material = Material::load(&self.paths, !self.settings.allow_expired_crl)?;
        let fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !fetched.is_empty() {
            material.add_crls(fetched);
        }
        if material.digest == self.active.load().digest {
            return Ok(ReloadOutcome::Unchanged);
        }
        let mut built = build(&self.settings, &material)?;
        if let Some(s) = &self.stapler {
            // A new certificate gets its own staple: the fetch loop is woken for it.
            s.install(&mut built.config, &material).map_err(TlsSetupError::Server)?;
        }
        self.active.store(Arc::new(Active {
            config: built.config,
            verifier: built.verifier,
            digest: material.digest,
            client_ca: material.client_ca.clone(),
        }));
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.metrics.tls.set_material(&self.listener, facts(&material));
        if let Some(g) = self.sessions.get() {
            g.bump();
        }
        Ok(ReloadOutcome::Reloaded { generation })
    }

    /// Checks a client chain (leaf first, as in `PeerInfo::client_certs`) against the CA bundle
    /// and CRLs in force now, exactly as a new handshake would. Use it after a reload to find
    /// live sessions whose certificate has since been revoked.
    pub fn check_client_chain(&self, chain: &[CertificateDer<'_>]) -> ChainStatus {
        let active = self.active.load();
        let Some(verifier) = &active.verifier else {
            return ChainStatus::NotChecked;
        };
        let Some((leaf, intermediates)) = chain.split_first() else {
            return ChainStatus::Rejected("no certificate".into());
        };
        match verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
            Ok(_) => ChainStatus::Good,
            Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => ChainStatus::Revoked,
            Err(e) => ChainStatus::Rejected(e.to_string()),
        }
    }
}

fn facts(m: &Material) -> MaterialFacts {
    let crl = m.crl_summary();
    MaterialFacts {
        server_not_after: m.server_expiry(),
        ca_not_after: m.ca_expiry(),
        crl_this_update: crl.map(|c| c.this_update),
        crl_next_update: crl.and_then(|c| c.next_update),
    }
}
