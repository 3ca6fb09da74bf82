//! The few DER primitives OCSP needs: reading one TLV (bounded, never panicking on any input)
//! and writing one. OCSP uses only single-byte tags, definite lengths.

/// One element: its tag byte, its contents, and its whole encoding (tag + length + contents).
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub body: &'a [u8],
    pub raw: &'a [u8],
}

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const ENUMERATED: u8 = 0x0a;
pub const GENERALIZED_TIME: u8 = 0x18;

/// Reads the element at the start of `input`; `None` on anything malformed or truncated.
pub fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = input.split_first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags never occur in OCSP
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None; // indefinite length, or longer than anything we accept
        }
        let (bytes, after) = (rest.get(..n)?, rest.get(n..)?);
        rest = after;
        bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let body = rest.get(..len)?;
    let after = rest.get(len..)?;
    let header = input.len() - rest.len();
    let raw = input.get(..header + len)?;
    Some((Tlv { tag, body, raw }, after))
}

/// Reads an element that must have `tag`.
pub fn expect(input: &[u8], tag: u8) -> Option<(Tlv<'_>, &[u8])> {
    read(input).filter(|(t, _)| t.tag == tag)
}

/// Reads an element only if it has `tag` (an OPTIONAL field).
pub fn optional(input: &[u8], tag: u8) -> (Option<Tlv<'_>>, &[u8]) {
    match read(input) {
        Some((t, rest)) if t.tag == tag => (Some(t), rest),
        _ => (None, input),
    }
}

/// Encodes one element.
pub fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(tag);
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// GeneralizedTime (`YYYYMMDDHHMMSS[.fff]Z`) as Unix seconds.
pub fn generalized_time(body: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(body).ok()?;
    let text = text.strip_suffix('Z')?;
    let main = text.split('.').next()?;
    if main.len() != 14 || !main.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| main.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, s) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let long = vec![7u8; 300];
        let enc = tlv(OCTET_STRING, &long);
        let (t, rest) = read(&enc).expect("read");
        assert_eq!((t.tag, t.body.len(), t.raw.len(), rest.len()), (OCTET_STRING, 300, enc.len(), 0));
        for cut in 0..enc.len() {
            assert!(read(&enc[..cut]).is_none(), "truncated at {cut} accepted");
        }
        assert!(read(&[0x30, 0x80, 0, 0]).is_none(), "indefinite length");
        assert!(read(&[0x30, 0x85, 1, 1, 1, 1, 1]).is_none(), "5-byte length");
    }

    #[test]
    fn generalized_times() {
        assert_eq!(generalized_time(b"19700101000000Z"), Some(0));
        assert_eq!(generalized_time(b"20240229120000Z"), Some(1_709_208_000));
        assert_eq!(generalized_time(b"20240229120000.123Z"), Some(1_709_208_000));
        assert_eq!(generalized_time(b"2024022912000Z"), None);
        assert_eq!(generalized_time(b"20241329120000Z"), None);
    }
}
