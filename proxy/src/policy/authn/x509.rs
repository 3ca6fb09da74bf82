//! Identity from the client certificate the TLS layer already verified (trap 5: the credential
//! decides who the client is, not what it claims in CONNECT).

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Which part of the certificate becomes the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertField {
    /// Subject common name.
    Cn,
    /// The full subject DN in RFC 4514 form.
    Dn,
    /// First DNS subject alternative name.
    SanDns,
    /// First URI subject alternative name.
    SanUri,
    /// First e-mail (rfc822Name) subject alternative name.
    SanEmail,
    /// First subject organisational unit.
    Ou,
}

impl CertField {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cn" => Self::Cn,
            "dn" => Self::Dn,
            "san_dns" => Self::SanDns,
            "san_uri" => Self::SanUri,
            "san_email" => Self::SanEmail,
            "ou" => Self::Ou,
            _ => return None,
        })
    }
}

/// The parts of a certificate moat uses for identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertIdentity {
    pub cn: Option<String>,
    pub dn: String,
    pub ou: Option<String>,
    pub san_dns: Option<String>,
    pub san_uri: Option<String>,
    pub san_email: Option<String>,
}

impl CertIdentity {
    /// Parses a DER certificate; `None` when it does not parse (it was verified by rustls, so this
    /// means a parser disagreement, and the caller fails closed).
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let subject = cert.subject();
        let cn = subject.iter_common_name().next().and_then(|a| a.as_str().ok()).map(str::to_string);
        let ou = subject.iter_organizational_unit().next().and_then(|a| a.as_str().ok()).map(str::to_string);
        let mut id = CertIdentity { cn, ou, dn: subject.to_string(), ..Default::default() };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) if id.san_dns.is_none() => id.san_dns = Some(d.to_string()),
                    GeneralName::URI(u) if id.san_uri.is_none() => id.san_uri = Some(u.to_string()),
                    GeneralName::RFC822Name(e) if id.san_email.is_none() => {
                        id.san_email = Some(e.to_string())
                    }
                    _ => {}
                }
            }
        }
        Some(id)
    }

    pub fn field(&self, f: CertField) -> Option<&str> {
        match f {
            CertField::Cn => self.cn.as_deref(),
            CertField::Dn => Some(self.dn.as_str()).filter(|d| !d.is_empty()),
            CertField::SanDns => self.san_dns.as_deref(),
            CertField::SanUri => self.san_uri.as_deref(),
            CertField::SanEmail => self.san_email.as_deref(),
            CertField::Ou => self.ou.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    #[test]
    fn reads_cn_ou_dn_and_sans() {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["device-7.example".to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, "device-7");
        params.distinguished_name.push(DnType::OrganizationalUnitName, "sensors");
        params.subject_alt_names.push(SanType::URI("spiffe://moat/device-7".try_into().expect("uri")));
        params.subject_alt_names.push(SanType::Rfc822Name("ops@example.com".try_into().expect("mail")));
        let cert = params.self_signed(&key).expect("cert");
        let id = CertIdentity::from_der(cert.der()).expect("parses");
        assert_eq!(id.field(CertField::Cn), Some("device-7"));
        assert_eq!(id.field(CertField::Ou), Some("sensors"));
        assert_eq!(id.field(CertField::SanDns), Some("device-7.example"));
        assert_eq!(id.field(CertField::SanUri), Some("spiffe://moat/device-7"));
        assert_eq!(id.field(CertField::SanEmail), Some("ops@example.com"));
        let dn = id.field(CertField::Dn).expect("dn");
        assert!(dn.contains("CN=device-7") && dn.contains("OU=sensors"), "{dn}");
    }

    #[test]
    fn garbage_does_not_parse() {
        assert_eq!(CertIdentity::from_der(b"not a certificate"), None);
        assert_eq!(CertField::parse("serial"), None);
    }
}
