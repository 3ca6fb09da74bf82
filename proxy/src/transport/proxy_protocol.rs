//! PROXY protocol v1 and v2 (HAProxy's spec), for listeners behind a TCP load balancer: the
//! client's real address arrives in a header before the TLS handshake, and every policy that
//! looks at addresses (IP bans, ACL `ipaddr`, `${peerhost}`) must see it. Only enable it on a
//! listener that a trusted balancer alone can reach: the header is believed as sent.
//!
//! The header is read without reading past it (v1 byte by byte up to its 107-byte maximum, v2 by
//! its declared length, capped), so the TLS bytes that follow stay in the socket.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

const V2_SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
const V1_MAX: usize = 107;
/// Largest v2 address block accepted (addresses plus TLVs); real balancers send far less.
const V2_MAX_BODY: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("connection closed before the PROXY header")]
    Closed,
    #[error("not a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY header: {0}")]
    Malformed(&'static str),
}

/// Reads one PROXY header. `Ok(Some(addr))` is the client's address; `Ok(None)` means the header
/// says the connection is the balancer's own (v2 LOCAL, v1 UNKNOWN): keep the socket's peer.
pub async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut first = [0u8; 12];
    read_exact(r, &mut first[..5]).await?;
    if &first[..5] == b"PROXY" {
        let mut line = Vec::with_capacity(V1_MAX);
        line.extend_from_slice(&first[..5]);
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(ProxyHeaderError::Malformed("v1 line too long"));
            }
            let mut b = [0u8; 1];
            read_exact(r, &mut b).await?;
            line.push(b[0]);
        }
        return parse_v1(&line);
    }
    read_exact(r, &mut first[5..]).await?;
    if first != V2_SIGNATURE {
        return Err(ProxyHeaderError::Missing);
    }
    let mut head = [0u8; 4];
    read_exact(r, &mut head).await?;
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    if len > V2_MAX_BODY {
        return Err(ProxyHeaderError::Malformed("v2 header too long"));
    }
    let mut body = vec![0u8; len];
    read_exact(r, &mut body).await?;
    parse_v2(head[0], head[1], &body)
}

async fn read_exact<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<(), ProxyHeaderError> {
    r.read_exact(buf).await.map(|_| ()).map_err(|_| ProxyHeaderError::Closed)
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n` or `PROXY UNKNOWN…\r\n`.
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let text = std::str::from_utf8(line).map_err(|_| ProxyHeaderError::Malformed("v1 not ASCII"))?;
    let text = text.strip_suffix("\r\n").ok_or(ProxyHeaderError::Malformed("v1 without CRLF"))?;
    let mut parts = text.split(' ');
    if parts.next() != Some("PROXY") {
        return Err(ProxyHeaderError::Missing);
    }
    let family = parts.next().ok_or(ProxyHeaderError::Malformed("v1 without family"))?;
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let fields: Vec<&str> = parts.collect();
    let [src, _dst, sport, _dport] = fields.as_slice() else {
        return Err(ProxyHeaderError::Malformed("v1 field count"));
    };
    let ip: IpAddr = src.parse().map_err(|_| ProxyHeaderError::Malformed("v1 source address"))?;
    match (family, ip) {
        ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => {}
        _ => return Err(ProxyHeaderError::Malformed("v1 family does not match the address")),
    }
    // Ports are decimal without sign or leading zeros beyond "0".
    if sport.is_empty() || sport.len() > 5 || !sport.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProxyHeaderError::Malformed("v1 source port"));
    }
    let port: u16 = sport.parse().map_err(|_| ProxyHeaderError::Malformed("v1 source port"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// v2 after the signature: version/command byte, family/transport byte and the address block.
pub fn parse_v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::Malformed("v2 version"));
    }
    match ver_cmd & 0x0F {
        0 => return Ok(None), // LOCAL: the balancer's own connection (health checks)
        1 => {}
        _ => return Err(ProxyHeaderError::Malformed("v2 command")),
    }
    match fam {
        // TCP over IPv4: src(4) dst(4) sport(2) dport(2)
        0x11 => {
            let a = body.get(..12).ok_or(ProxyHeaderError::Malformed("v2 IPv4 block short"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        // TCP over IPv6: src(16) dst(16) sport(2) dport(2)
        0x21 => {
            let a = body.get(..36).ok_or(ProxyHeaderError::Malformed("v2 IPv6 block short"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Ok(Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port)))
        }
        // UNSPEC: no address information.
        0x00 => Ok(None),
        _ => Err(ProxyHeaderError::Malformed("v2 family not TCP over IPv4/IPv6")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        let r = read_header(&mut cursor).await;
        let pos = cursor.position() as usize;
        (r, bytes[pos..].to_vec())
    }

    #[tokio::test]
    async fn v1_tcp4_is_read_without_consuming_what_follows() {
        let (r, rest) = read(b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 8883\r\n\x16\x03\x01").await;
        assert_eq!(r, Ok(Some("203.0.113.7:40000".parse().expect("addr"))));
        assert_eq!(rest, b"\x16\x03\x01");
    }

    #[tokio::test]
    async fn v1_tcp6_and_unknown() {
        let (r, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 8883\r\n").await;
        assert_eq!(r, Ok(Some("[2001:db8::7]:4000".parse().expect("addr"))));
        let (r, _) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(r, Ok(None));
    }

    #[tokio::test]
    async fn v2_tcp4_and_local() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11, 0x00, 0x0C, 198, 51, 100, 9, 10, 0, 0, 1, 0x9C, 0x40, 0x22, 0xB3]);
        h.extend_from_slice(b"TLS");
        let (r, rest) = read(&h).await;
        assert_eq!(r, Ok(Some("198.51.100.9:40000".parse().expect("addr"))));
        assert_eq!(rest, b"TLS");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(read(&local).await.0, Ok(None));
    }

    #[tokio::test]
    async fn rejects_missing_and_malformed_headers() {
        assert_eq!(
            read(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00").await.0,
            Err(ProxyHeaderError::Missing)
        );
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 1\r\n"[..],
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP9 1.2.3.4 5.6.7.8 1 1\r\n",
        ] {
            assert!(matches!(read(bad).await.0, Err(ProxyHeaderError::Malformed(_))), "{bad:?}");
        }
        let long = [b"PROXY ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(read(&long).await.0, Err(ProxyHeaderError::Malformed("v1 line too long")));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xFF, 0xFF]);
        assert_eq!(read(&big).await.0, Err(ProxyHeaderError::Malformed("v2 header too long")));
        assert_eq!(read(b"PRO").await.0, Err(ProxyHeaderError::Closed));
    }
}
