//! TLS material read from disk: server chain and key, client CA bundle, CRLs. One loader for
//! start-up and reload, so a file that would be refused at start is refused on reload too.
//! Errors name the file and what is wrong with it, never its contents (a key file is secret).

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::TlsConfig;

/// Largest TLS file read: CRLs of big CAs run to megabytes, anything past this is a mistake.
const MAX_TLS_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// The files one listener's TLS material comes from.
#[derive(Clone, Debug)]
pub struct Paths {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub crls: Vec<PathBuf>,
}

impl Paths {
    pub fn of(cfg: &TlsConfig) -> Self {
        Self {
            cert: cfg.cert_path.clone(),
            key: cfg.key_path.clone(),
            client_ca: cfg.client_ca_path.clone(),
            crls: cfg.crl_paths.clone(),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Path> {
        [self.cert.as_path(), self.key.as_path()]
            .into_iter()
            .chain(self.client_ca.as_deref())
            .chain(self.crls.iter().map(PathBuf::as_path))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: larger than {MAX_TLS_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: no certificate found")]
    NoCertificate { path: PathBuf },
    #[error("{path}: invalid PEM")]
    BadPem { path: PathBuf },
    #[error("{path}: no private key found")]
    NoKey { path: PathBuf },
    #[error("{path}: no CRL found")]
    NoCrl { path: PathBuf },
    #[error("{path}: CRL cannot be parsed")]
    BadCrl { path: PathBuf },
    #[error("{path}: CRL expired (nextUpdate {next_update} is in the past) and allow_expired_crl is off")]
    ExpiredCrl { path: PathBuf, next_update: i64 },
}

/// Parsed material plus a digest of every file's bytes (a reload that changes nothing is skipped,
/// so it does not throw away the session cache).
pub struct Material {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub client_ca: Vec<CertificateDer<'static>>,
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    pub digest: [u8; 32],
}

/// Validity facts used for metrics and reload checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrlTimes {
    pub this_update: i64,
    /// `None` when the CRL has no nextUpdate (it never goes stale by our rule).
    pub next_update: Option<i64>,
}

fn read(path: &Path) -> Result<Vec<u8>, MaterialError> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).map_err(|source| MaterialError::Read { path: path.into(), source })?;
    let mut bytes = Vec::new();
    file.take(MAX_TLS_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| MaterialError::Read { path: path.into(), source })?;
    if bytes.len() as u64 > MAX_TLS_FILE_BYTES {
        return Err(MaterialError::TooLarge { path: path.into() });
    }
    Ok(bytes)
}

fn certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, MaterialError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| MaterialError::BadPem { path: path.into() })?;
    if certs.is_empty() {
        return Err(MaterialError::NoCertificate { path: path.into() });
    }
    Ok(certs)
}

/// CRLs from one file: PEM (one or more `X509 CRL` blocks) or a single DER CRL.
pub fn parse_crls(bytes: &[u8]) -> Option<Vec<CertificateRevocationListDer<'static>>> {
    let pem: Result<Vec<_>, _> = CertificateRevocationListDer::pem_slice_iter(bytes).collect();
    match pem {
        Ok(list) if !list.is_empty() => Some(list),
        _ if bytes.first() == Some(&0x30) => Some(vec![CertificateRevocationListDer::from(bytes.to_vec())]),
        _ => None,
    }
}

/// thisUpdate / nextUpdate of a CRL, as Unix seconds.
pub fn crl_times(crl: &CertificateRevocationListDer<'_>) -> Option<CrlTimes> {
    use x509_parser::prelude::FromDer as _;
    let (_, parsed) = x509_parser::revocation_list::CertificateRevocationList::from_der(crl.as_ref()).ok()?;
    Some(CrlTimes {
        this_update: parsed.last_update().timestamp(),
        next_update: parsed.next_update().map(|t| t.timestamp()),
    })
}

/// notAfter of a certificate, as Unix seconds.
pub fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Material {
    /// Reads and parses every file. `reject_expired_crl`: a CRL past its nextUpdate is an error
    /// (used on reload, so a stale CRL never replaces a current one).
    pub fn load(paths: &Paths, reject_expired_crl: bool) -> Result<Material, MaterialError> {
        let mut hash = Sha256::new();
        let mut digest_file = |path: &Path, bytes: &[u8]| {
            hash.update(path.as_os_str().as_encoded_bytes());
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        };
        let bytes = read(&paths.cert)?;
        digest_file(&paths.cert, &bytes);
        let cert_chain = certs(&paths.cert, &bytes)?;
        let bytes = read(&paths.key)?;
        digest_file(&paths.key, &bytes);
        let key = PrivateKeyDer::from_pem_slice(&bytes)
            .map_err(|_| MaterialError::NoKey { path: paths.key.clone() })?;
        let client_ca = match &paths.client_ca {
            Some(p) => {
                let bytes = read(p)?;
                digest_file(p, &bytes);
                certs(p, &bytes)?
            }
            None => Vec::new(),
        };
        let mut crls = Vec::new();
        let now = unix_now();
        for p in &paths.crls {
            let bytes = read(p)?;
            digest_file(p, &bytes);
            let list = parse_crls(&bytes).ok_or_else(|| MaterialError::NoCrl { path: p.clone() })?;
            for crl in &list {
                let times = crl_times(crl).ok_or_else(|| MaterialError::BadCrl { path: p.clone() })?;
                if let Some(next_update) = times.next_update.filter(|&n| reject_expired_crl && n < now) {
                    return Err(MaterialError::ExpiredCrl { path: p.clone(), next_update });
                }
            }
            crls.extend(list);
        }
        Ok(Material { cert_chain, key, client_ca, crls, digest: hash.finalize().into() })
    }

    /// The material `moat check` validated (no digest: used only to build a config once).
    pub fn from_config(cfg: &TlsConfig) -> Material {
        Material {
            cert_chain: cfg.cert_chain.clone(),
            key: cfg.key.clone_key(),
            client_ca: cfg.client_ca.clone(),
            crls: cfg.crls.clone(),
            digest: [0; 32],
        }
    }

    /// Adds CRLs from elsewhere (distribution points), folding them into the digest.
    pub fn add_crls(&mut self, crls: Vec<CertificateRevocationListDer<'static>>) {
        let mut hash = Sha256::new();
        hash.update(self.digest);
        for c in &crls {
            hash.update((c.as_ref().len() as u64).to_be_bytes());
            hash.update(c.as_ref());
        }
        self.digest = hash.finalize().into();
        self.crls.extend(crls);
    }

    /// Earliest notAfter of the server chain's leaf and of the CA bundle (for expiry gauges).
    pub fn server_expiry(&self) -> Option<i64> {
        self.cert_chain.first().and_then(not_after)
    }

    pub fn ca_expiry(&self) -> Option<i64> {
        self.client_ca.iter().filter_map(not_after).min()
    }

    /// Newest thisUpdate is not what matters: the oldest CRL and the soonest nextUpdate are the
    /// ones that go stale first.
    pub fn crl_summary(&self) -> Option<CrlTimes> {
        let times: Vec<CrlTimes> = self.crls.iter().filter_map(crl_times).collect();
        let this_update = times.iter().map(|t| t.this_update).min()?;
        let next_update = times.iter().filter_map(|t| t.next_update).min();
        Some(CrlTimes { this_update, next_update })
    }
}
