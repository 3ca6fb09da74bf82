//! The PROXY protocol v2 header moat sends the broker (`upstream.proxy_protocol: v2`), so a broker
//! that logs, bans or authorises by address sees the device's address instead of moat's, and can
//! read the verified certificate CN from the SSL TLV (HAProxy's `PP2_TYPE_SSL` / `PP2_SUBTYPE_SSL_CN`).
//!
//! The header is built once per broker connection into a small stack-sized buffer; it is bounded
//! because every part is: two addresses and a CN capped at [`MAX_CN`].

use std::net::{IpAddr, SocketAddr};

const SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
/// Version 2, command PROXY.
const VERSION_PROXY: u8 = 0x21;
const TCP_OVER_IPV4: u8 = 0x11;
const TCP_OVER_IPV6: u8 = 0x21;
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_SUBTYPE_SSL_CN: u8 = 0x22;
/// `client` field bits of the SSL TLV.
const PP2_CLIENT_SSL: u8 = 0x01;
const PP2_CLIENT_CERT_CONN: u8 = 0x02;
/// A longer CN is not sent (X.509's upper bound for a CN is 64 characters).
pub const MAX_CN: usize = 256;

/// What the header says about the client connection.
pub struct ProxiedClient<'a> {
    /// The device's address (after any inbound PROXY header).
    pub source: SocketAddr,
    /// The address the device connected to.
    pub destination: SocketAddr,
    /// The connection came over TLS.
    pub tls: bool,
    /// The verified client certificate's CN, when there was one.
    pub cert_cn: Option<&'a str>,
}

/// Encodes the header. Mixed address families (an IPv4 client on an IPv6 listener) are sent as
/// IPv6, with the IPv4 address mapped, since the format carries one family for both.
pub fn encode(c: &ProxiedClient<'_>) -> Vec<u8> {
    let (src, dst) = (canonical(c.source.ip()), canonical(c.destination.ip()));
    let mut addresses = Vec::with_capacity(36);
    let family = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            addresses.extend_from_slice(&s.octets());
            addresses.extend_from_slice(&d.octets());
            TCP_OVER_IPV4
        }
        (s, d) => {
            addresses.extend_from_slice(&v6(s).octets());
            addresses.extend_from_slice(&v6(d).octets());
            TCP_OVER_IPV6
        }
    };
    addresses.extend_from_slice(&c.source.port().to_be_bytes());
    addresses.extend_from_slice(&c.destination.port().to_be_bytes());

    let mut tlvs = Vec::new();
    if c.tls {
        let cn = c.cert_cn.filter(|cn| cn.len() <= MAX_CN);
        let mut value = Vec::with_capacity(5 + cn.map_or(0, |cn| 3 + cn.len()));
        let client = PP2_CLIENT_SSL | if c.cert_cn.is_some() { PP2_CLIENT_CERT_CONN } else { 0 };
        value.push(client);
        // `verify` 0: the client certificate (if any) was verified. moat never admits one that
        // was not.
        value.extend_from_slice(&0u32.to_be_bytes());
        if let Some(cn) = cn {
            push_tlv(&mut value, PP2_SUBTYPE_SSL_CN, cn.as_bytes());
        }
        push_tlv(&mut tlvs, PP2_TYPE_SSL, &value);
    }

    let len = addresses.len() + tlvs.len();
    let mut out = Vec::with_capacity(16 + len);
    out.extend_from_slice(&SIGNATURE);
    out.push(VERSION_PROXY);
    out.push(family);
    // At most 36 + 3 + 5 + 3 + MAX_CN bytes: always fits in the u16 length.
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&addresses);
    out.extend_from_slice(&tlvs);
    out
}

fn push_tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_without_tls_is_the_bare_address_block() {
        let h = encode(&ProxiedClient {
            source: addr("203.0.113.7:51000"),
            destination: addr("10.0.0.1:8883"),
            tls: false,
            cert_cn: None,
        });
        let mut want = SIGNATURE.to_vec();
        want.extend_from_slice(&[0x21, 0x11, 0, 12, 203, 0, 113, 7, 10, 0, 0, 1, 0xC7, 0x38, 0x22, 0xB3]);
        assert_eq!(h, want);
    }

    #[test]
    fn tls_with_a_certificate_carries_the_cn() {
        let h = encode(&ProxiedClient {
            source: addr("203.0.113.7:1"),
            destination: addr("10.0.0.1:2"),
            tls: true,
            cert_cn: Some("dev-1"),
        });
        let tlv = &h[16 + 12..];
        // SSL TLV: type, length 13 = client(1) + verify(4) + CN sub-TLV (3 + 5).
        assert_eq!(&tlv[..3], &[0x20, 0, 13]);
        assert_eq!(tlv[3], PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN);
        assert_eq!(&tlv[4..8], &[0, 0, 0, 0]);
        assert_eq!(&tlv[8..], &[0x22, 0, 5, b'd', b'e', b'v', b'-', b'1']);
        assert_eq!(u16::from_be_bytes([h[14], h[15]]) as usize, h.len() - 16);
    }

    #[test]
    fn mixed_families_are_sent_as_ipv6_and_mapped_v4_as_v4() {
        let h = encode(&ProxiedClient {
            source: addr("192.0.2.1:1"),
            destination: addr("[2001:db8::1]:2"),
            tls: false,
            cert_cn: None,
        });
        assert_eq!(h[13], TCP_OVER_IPV6);
        assert_eq!(h.len(), 16 + 36);
        let h = encode(&ProxiedClient {
            source: addr("[::ffff:192.0.2.1]:1"),
            destination: addr("[::ffff:10.0.0.1]:2"),
            tls: false,
            cert_cn: None,
        });
        assert_eq!(h[13], TCP_OVER_IPV4);
    }

    #[test]
    fn an_oversized_cn_is_left_out() {
        let cn = "x".repeat(MAX_CN + 1);
        let h = encode(&ProxiedClient {
            source: addr("192.0.2.1:1"),
            destination: addr("192.0.2.2:2"),
            tls: true,
            cert_cn: Some(&cn),
        });
        assert_eq!(h.len(), 16 + 12 + 3 + 5);
    }

    /// moat's own inbound parser (listeners[].proxy_protocol) reads what moat sends.
    #[tokio::test]
    async fn moat_reads_its_own_header() {
        let h = encode(&ProxiedClient {
            source: addr("[2001:db8::7]:4242"),
            destination: addr("[2001:db8::1]:8883"),
            tls: true,
            cert_cn: Some("dev-1"),
        });
        let mut r = &h[..];
        let got = crate::transport::proxy_protocol::read_header(&mut r).await.unwrap();
        assert_eq!(got, Some(addr("[2001:db8::7]:4242")));
        assert!(r.is_empty());
    }
}
