//! Throwaway PKI generated at test time with rcgen: a trusted CA, a server certificate for
//! `localhost`/`127.0.0.1`, client certificates with a chosen CN, and an untrusted CA with its
//! own client certificate. Everything is written as PEM into a private temp dir.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

/// A certificate + key pair on disk.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Serial number, unique within its CA (for CRLs).
    pub serial: u64,
}

impl CertFiles {
    /// The certificate chain as DER (for rustls).
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(&self.cert)
            .expect("open cert pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("parse cert pem")
    }

    /// The private key as DER (for rustls).
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_file(&self.key).expect("parse key pem")
    }
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    next_serial: std::sync::atomic::AtomicU64,
    cert_pem: String,
    cert_path: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("moat-e2e {name}"));
        dn.push(DnType::OrganizationName, "moat e2e throwaway");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        let cert_path = dir.join(format!("{name}.crt"));
        std::fs::write(&cert_path, &cert_pem)?;
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem())?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            next_serial: std::sync::atomic::AtomicU64::new(1000),
            cert_pem,
            cert_path,
        })
    }

    /// A CA certificate signed by `parent` (an intermediate).
    fn intermediate(dir: &Path, name: &str, parent: &Ca) -> Result<Ca> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("moat-e2e {name}"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let serial = parent.next_serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let cert = params.signed_by(&key, &parent.issuer)?;
        let cert_pem = cert.pem();
        let cert_path = dir.join(format!("{name}.crt"));
        std::fs::write(&cert_path, &cert_pem)?;
        Ok(Ca {
            issuer: Issuer::new(params, key),
            next_serial: std::sync::atomic::AtomicU64::new(1000),
            cert_pem,
            cert_path,
        })
    }

    fn issue(
        &self,
        dir: &Path,
        file_stem: &str,
        cn: &str,
        sans: Vec<String>,
        eku: ExtendedKeyUsagePurpose,
    ) -> Result<CertFiles> {
        self.issue_with(dir, file_stem, cn, sans, eku, Vec::new())
    }

    fn issue_with(
        &self,
        dir: &Path,
        file_stem: &str,
        cn: &str,
        sans: Vec<String>,
        eku: ExtendedKeyUsagePurpose,
        extensions: Vec<rcgen::CustomExtension>,
    ) -> Result<CertFiles> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![eku];
        params.use_authority_key_identifier_extension = true;
        params.custom_extensions = extensions;
        let serial = self.next_serial.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        let cert = params.signed_by(&key, &self.issuer)?;
        let files = CertFiles {
            cert: dir.join(format!("{file_stem}.crt")),
            key: dir.join(format!("{file_stem}.key")),
            serial,
        };
        std::fs::write(&files.cert, cert.pem())?;
        std::fs::write(&files.key, key.serialize_pem())?;
        Ok(files)
    }
}

/// The complete throwaway PKI of one test.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    untrusted_ca: Ca,
    /// Server certificate for `localhost`, `127.0.0.1` and `::1`, issued by the trusted CA.
    pub server: CertFiles,
    /// Client certificate (CN `e2e-client`) issued by the trusted CA.
    pub client: CertFiles,
    /// Client certificate (CN `e2e-client`) issued by a CA the proxy does not trust.
    pub untrusted_client: CertFiles,
}

impl Pki {
    pub fn new() -> Pki {
        Self::try_new().expect("generate test PKI")
    }

    fn try_new() -> Result<Pki> {
        let dir = tempfile::Builder::new().prefix("moat-e2e-pki-").tempdir()?;
        // mosquitto (self-tests) drops privileges when started as root: keep files readable.
        make_world_readable(dir.path())?;
        let ca = Ca::new(dir.path(), "ca").context("trusted CA")?;
        let untrusted_ca = Ca::new(dir.path(), "untrusted-ca").context("untrusted CA")?;
        let server = ca.issue(
            dir.path(),
            "server",
            "localhost",
            vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let client =
            ca.issue(dir.path(), "client", "e2e-client", vec![], ExtendedKeyUsagePurpose::ClientAuth)?;
        let untrusted_client = untrusted_ca.issue(
            dir.path(),
            "untrusted-client",
            "e2e-client",
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;
        let pki = Pki { dir, ca, untrusted_ca, server, client, untrusted_client };
        for entry in std::fs::read_dir(pki.dir.path())? {
            make_world_readable(&entry?.path())?;
        }
        Ok(pki)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// PEM file of the trusted CA.
    pub fn ca_cert(&self) -> &Path {
        &self.ca.cert_path
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// PEM file of the untrusted CA.
    pub fn untrusted_ca_cert(&self) -> &Path {
        &self.untrusted_ca.cert_path
    }

    /// Writes a CRL signed by the trusted CA revoking `revoked` (serials); `expired` makes its
    /// nextUpdate lie in the past. Returns the PEM file's path.
    pub fn write_crl(&self, name: &str, revoked: &[u64], expired: bool) -> PathBuf {
        let (this_update, next_update) = if expired {
            (rcgen::date_time_ymd(2020, 1, 1), rcgen::date_time_ymd(2021, 1, 1))
        } else {
            (rcgen::date_time_ymd(2020, 1, 1), rcgen::date_time_ymd(2099, 1, 1))
        };
        let params = rcgen::CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|&serial| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(serial),
                    revocation_time: rcgen::date_time_ymd(2020, 6, 1),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.ca.issuer).expect("sign CRL");
        let path = self.dir.path().join(format!("{name}.crl.pem"));
        std::fs::write(&path, crl.pem().expect("CRL PEM")).expect("write CRL");
        make_world_readable(&path).expect("CRL readable");
        path
    }

    /// Issues another client certificate from the trusted CA with the given CN.
    pub fn client_cert(&self, cn: &str) -> CertFiles {
        let stem: String = cn.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let files = self
            .ca
            .issue(
                self.dir.path(),
                &format!("client-{stem}"),
                cn,
                vec![],
                ExtendedKeyUsagePurpose::ClientAuth,
            )
            .expect("issue client cert");
        make_world_readable(&files.cert).unwrap();
        make_world_readable(&files.key).unwrap();
        files
    }

    /// Issues another server certificate (same names as `server`) from the trusted CA.
    pub fn server_cert(&self, stem: &str) -> CertFiles {
        let files = self
            .ca
            .issue(
                self.dir.path(),
                stem,
                "localhost",
                vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
                ExtendedKeyUsagePurpose::ServerAuth,
            )
            .expect("issue server cert");
        make_world_readable(&files.cert).unwrap();
        make_world_readable(&files.key).unwrap();
        files
    }

    /// A client certificate issued through `levels` intermediate CAs under the trusted CA; its
    /// cert file holds the leaf followed by the intermediates (nearest first).
    pub fn chained_client_cert(&self, cn: &str, levels: usize) -> CertFiles {
        let mut chain_pems = Vec::new();
        let mut cas: Vec<Ca> = Vec::new();
        for i in 0..levels {
            let stem = format!("intermediate-{cn}-{i}");
            let parent = cas.last().unwrap_or(&self.ca);
            let ca = Ca::intermediate(self.dir.path(), &stem, parent).expect("intermediate CA");
            chain_pems.push(ca.cert_pem.clone());
            cas.push(ca);
        }
        let issuer = cas.last().unwrap_or(&self.ca);
        let files = issuer
            .issue(self.dir.path(), &format!("chained-{cn}"), cn, vec![], ExtendedKeyUsagePurpose::ClientAuth)
            .expect("issue chained client");
        let mut pem = std::fs::read_to_string(&files.cert).expect("leaf pem");
        for p in chain_pems.iter().rev() {
            pem.push_str(p);
        }
        std::fs::write(&files.cert, pem).expect("write chain");
        make_world_readable(&files.cert).unwrap();
        make_world_readable(&files.key).unwrap();
        files
    }

    /// A certificate from the trusted CA whose Authority Information Access names `ocsp_url` as
    /// its OCSP responder. `server`: for `localhost` with serverAuth, else a client (clientAuth).
    /// The cert file holds the leaf followed by the CA (a stapling server needs its issuer).
    pub fn ocsp_cert(&self, stem: &str, server: bool, ocsp_url: &str) -> CertFiles {
        // AuthorityInfoAccessSyntax ::= SEQUENCE OF SEQUENCE { id-ad-ocsp, [6] IA5String URI }
        let der = |tag: u8, body: &[u8]| {
            let mut out = vec![tag, u8::try_from(body.len()).expect("short DER")];
            out.extend_from_slice(body);
            out
        };
        let mut desc = der(0x06, &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01]);
        desc.extend(der(0x86, ocsp_url.as_bytes()));
        let aia = der(0x30, &der(0x30, &desc));
        let ext = rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 1], aia);
        let (cn, sans, eku) = if server {
            ("localhost", vec!["localhost".into(), "127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth)
        } else {
            (stem, vec![], ExtendedKeyUsagePurpose::ClientAuth)
        };
        let files =
            self.ca.issue_with(self.dir.path(), stem, cn, sans, eku, vec![ext]).expect("issue OCSP cert");
        let mut pem = std::fs::read_to_string(&files.cert).expect("leaf pem");
        pem.push_str(&self.ca.cert_pem);
        std::fs::write(&files.cert, pem).expect("write chain");
        make_world_readable(&files.cert).unwrap();
        make_world_readable(&files.key).unwrap();
        files
    }

    /// PEM file of the trusted CA's private key (for a test OCSP responder).
    pub fn ca_key(&self) -> PathBuf {
        self.dir.path().join("ca.key")
    }

    /// Like [`Pki::write_crl`], written to `path` atomically (temp file + rename), as a
    /// deployment tool would, so a watcher never sees half a file.
    pub fn replace_crl(&self, path: &Path, revoked: &[u64]) {
        let tmp = self.write_crl("replacement-tmp", revoked, false);
        std::fs::rename(tmp, path).expect("rename CRL into place");
    }

    /// rustls client config trusting the test CA, without a client certificate.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        crate::tls::client_config(&[self.ca_cert()], None)
    }

    /// rustls client config trusting the test CA, presenting `client` as client certificate.
    pub fn mtls_client_config(&self) -> Arc<rustls::ClientConfig> {
        crate::tls::client_config(&[self.ca_cert()], Some(&self.client))
    }

    /// rustls client config trusting the test CA, presenting a cert from the untrusted CA.
    pub fn untrusted_client_config(&self) -> Arc<rustls::ClientConfig> {
        crate::tls::client_config(&[self.ca_cert()], Some(&self.untrusted_client))
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

fn make_world_readable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if path.is_dir() { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
