//! SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.
//!
//! The filter list is validated in one pass at decode and kept as the raw section; the
//! iterators re-read it lazily, so decoding never collects into a Vec.

use super::ack::packet_id;
use super::error::{malformed, protocol, CodecError};
use super::properties::{read_properties, PropCtx, Properties};
use super::reader::Reader;
use super::reason::valid_v5;
use super::topic::{split_shared, validate_topic_filter};
use super::types::{PacketType, ProtocolVersion, QoS};

/// Subscription options byte (v5 layout; 3.1.x uses only the QoS bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0, 1 or 2.
    pub retain_handling: u8,
}

impl SubscriptionOptions {
    /// Options with only a QoS (what a 3.1.x client can express).
    pub fn with_qos(qos: QoS) -> Self {
        SubscriptionOptions { qos, no_local: false, retain_as_published: false, retain_handling: 0 }
    }

    /// Wire byte (v5 layout).
    pub fn to_byte(self) -> u8 {
        self.qos.as_u8()
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling & 0x03) << 4)
    }

    /// Parse and validate an options byte for `version`.
    pub fn from_byte(b: u8, version: ProtocolVersion) -> Result<Self, CodecError> {
        let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
        if b & reserved != 0 {
            return malformed("subscription options reserved bits set");
        }
        let Some(qos) = QoS::from_u8(b & 0x03) else {
            return malformed("subscription QoS 3");
        };
        let retain_handling = (b >> 4) & 0x03;
        if retain_handling == 3 {
            return malformed("retain handling 3");
        }
        Ok(SubscriptionOptions {
            qos,
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling,
        })
    }

    /// Parse an already-validated byte (cannot fail; falls back to QoS 0 defensively).
    fn from_valid(b: u8) -> Self {
        SubscriptionOptions {
            qos: QoS::from_u8(b & 0x03).unwrap_or(QoS::AtMostOnce),
            no_local: b & 0x04 != 0,
            retain_as_published: b & 0x08 != 0,
            retain_handling: (b >> 4) & 0x03,
        }
    }
}

/// A decoded SUBSCRIBE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    raw_filters: &'a [u8],
    count: usize,
}

impl<'a> Subscribe<'a> {
    /// The (filter, options) pairs in wire order.
    pub fn filters(&self) -> SubscribeFilters<'a> {
        SubscribeFilters { r: Reader::new(self.raw_filters) }
    }

    /// Number of filters (at least 1).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true for a decoded SUBSCRIBE (an empty payload is refused).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The raw payload section (filters + options), for forwarding.
    pub fn raw_filters(&self) -> &'a [u8] {
        self.raw_filters
    }
}

/// Iterator over a validated SUBSCRIBE payload.
#[derive(Clone, Debug)]
pub struct SubscribeFilters<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for SubscribeFilters<'a> {
    type Item = (&'a str, SubscriptionOptions);
    fn next(&mut self) -> Option<Self::Item> {
        let filter = self.r.utf8().ok()?;
        let opts = self.r.u8().ok()?;
        Some((filter, SubscriptionOptions::from_valid(opts)))
    }
}

/// A decoded UNSUBSCRIBE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    raw_filters: &'a [u8],
    count: usize,
}

impl<'a> Unsubscribe<'a> {
    /// The filters in wire order.
    pub fn filters(&self) -> UnsubscribeFilters<'a> {
        UnsubscribeFilters { r: Reader::new(self.raw_filters) }
    }

    /// Number of filters (at least 1).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true for a decoded UNSUBSCRIBE.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The raw payload section, for forwarding.
    pub fn raw_filters(&self) -> &'a [u8] {
        self.raw_filters
    }
}

/// Iterator over a validated UNSUBSCRIBE payload.
#[derive(Clone, Debug)]
pub struct UnsubscribeFilters<'a> {
    r: Reader<'a>,
}

impl<'a> Iterator for UnsubscribeFilters<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        self.r.utf8().ok()
    }
}

/// A decoded SUBACK or UNSUBACK (3.1.x UNSUBACK has no codes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suback<'a> {
    pub packet_id: u16,
    pub properties: Properties<'a>,
    pub codes: &'a [u8],
}

pub(crate) fn decode_subscribe(body: &[u8], version: ProtocolVersion) -> Result<Subscribe<'_>, CodecError> {
    let mut r = Reader::new(body);
    let packet_id = packet_id(&mut r)?;
    let properties =
        if version.is_v5() { read_properties(&mut r, PropCtx::Subscribe)? } else { Properties::default() };
    let raw_filters = r.rest();
    let mut count = 0usize;
    while !r.is_empty() {
        let filter = r.utf8()?;
        validate_topic_filter(filter)?;
        let opts = SubscriptionOptions::from_byte(r.u8()?, version)?;
        if opts.no_local && split_shared(filter).is_some() {
            // MQTT-3.8.3-4.
            return protocol("no local on a shared subscription");
        }
        count = count.saturating_add(1);
    }
    if count == 0 {
        return protocol("SUBSCRIBE without topic filters");
    }
    Ok(Subscribe { packet_id, properties, raw_filters, count })
}

pub(crate) fn decode_unsubscribe(
    body: &[u8],
    version: ProtocolVersion,
) -> Result<Unsubscribe<'_>, CodecError> {
    let mut r = Reader::new(body);
    let packet_id = packet_id(&mut r)?;
    let properties =
        if version.is_v5() { read_properties(&mut r, PropCtx::Unsubscribe)? } else { Properties::default() };
    let raw_filters = r.rest();
    let mut count = 0usize;
    while !r.is_empty() {
        validate_topic_filter(r.utf8()?)?;
        count = count.saturating_add(1);
    }
    if count == 0 {
        return protocol("UNSUBSCRIBE without topic filters");
    }
    Ok(Unsubscribe { packet_id, properties, raw_filters, count })
}

pub(crate) fn decode_suback(body: &[u8], version: ProtocolVersion) -> Result<Suback<'_>, CodecError> {
    let mut r = Reader::new(body);
    let packet_id = packet_id(&mut r)?;
    let properties =
        if version.is_v5() { read_properties(&mut r, PropCtx::Suback)? } else { Properties::default() };
    let codes = r.rest();
    if codes.is_empty() {
        return protocol("SUBACK without reason codes");
    }
    let ok = |c: u8| {
        if version.is_v5() {
            valid_v5(PacketType::Suback, c)
        } else {
            matches!(c, 0 | 1 | 2 | 0x80)
        }
    };
    if !codes.iter().all(|&c| ok(c)) {
        return protocol("invalid SUBACK return code");
    }
    Ok(Suback { packet_id, properties, codes })
}

pub(crate) fn decode_unsuback(body: &[u8], version: ProtocolVersion) -> Result<Suback<'_>, CodecError> {
    let mut r = Reader::new(body);
    let packet_id = packet_id(&mut r)?;
    if !version.is_v5() {
        r.finish()?;
        return Ok(Suback { packet_id, properties: Properties::default(), codes: &[] });
    }
    let properties = read_properties(&mut r, PropCtx::Unsuback)?;
    let codes = r.rest();
    if codes.is_empty() {
        return protocol("UNSUBACK without reason codes");
    }
    if !codes.iter().all(|&c| valid_v5(PacketType::Unsuback, c)) {
        return protocol("invalid UNSUBACK reason code");
    }
    Ok(Suback { packet_id, properties, codes })
}
