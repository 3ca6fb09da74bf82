//! Throwaway PKI for a benchmark run: a CA and one ECDSA P-256 server certificate
//! (SANs localhost, 127.0.0.1, ::1) used by both HAProxy and moat.

use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub fn generate(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "moat-bench throwaway CA");
    ca.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut srv =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])?;
    srv.distinguished_name.push(DnType::CommonName, "localhost");
    srv.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv_key = KeyPair::generate()?;
    let srv_cert = srv.signed_by(&srv_key, &issuer)?;

    let write = |name: &str, data: &str| -> Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, data).with_context(|| format!("writing {}", p.display()))
    };
    write("ca.crt", &ca_cert.pem())?;
    write("server.crt", &srv_cert.pem())?;
    write("server.key", &srv_key.serialize_pem())?;
    // HAProxy's `crt` wants certificate chain and key in one file.
    write("combined.pem", &format!("{}{}", srv_cert.pem(), srv_key.serialize_pem()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for k in ["server.key", "combined.pem"] {
            std::fs::set_permissions(dir.join(k), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}
