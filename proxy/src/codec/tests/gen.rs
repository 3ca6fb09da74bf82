//! proptest generators: owned descriptions of valid packets of every type and version, their
//! encoding through the public encoders, and a field-by-field comparison with the decoded view.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use crate::codec::*;

/// An owned v5 property (the generator's side of `Property`).
#[derive(Debug, Clone)]
pub enum OProp {
    Byte(u8, u8),
    U16(u8, u16),
    U32(u8, u32),
    Varint(u8, u32),
    Str(u8, String),
    Bin(u8, Vec<u8>),
    Pair(String, String),
}

impl OProp {
    pub fn id(&self) -> u8 {
        match self {
            OProp::Byte(id, _)
            | OProp::U16(id, _)
            | OProp::U32(id, _)
            | OProp::Varint(id, _)
            | OProp::Str(id, _)
            | OProp::Bin(id, _) => *id,
            OProp::Pair(..) => 0x26,
        }
    }

    pub fn as_property(&self) -> Property<'_> {
        use Property::*;
        match self {
            OProp::Byte(0x01, v) => PayloadFormatIndicator(*v),
            OProp::Byte(0x17, v) => RequestProblemInformation(*v),
            OProp::Byte(0x19, v) => RequestResponseInformation(*v),
            OProp::Byte(0x24, v) => MaximumQos(*v),
            OProp::Byte(0x25, v) => RetainAvailable(*v),
            OProp::Byte(0x28, v) => WildcardSubscriptionAvailable(*v),
            OProp::Byte(0x29, v) => SubscriptionIdentifierAvailable(*v),
            OProp::Byte(_, v) => SharedSubscriptionAvailable(*v),
            OProp::U16(0x13, v) => ServerKeepAlive(*v),
            OProp::U16(0x21, v) => ReceiveMaximum(*v),
            OProp::U16(0x22, v) => TopicAliasMaximum(*v),
            OProp::U16(_, v) => TopicAlias(*v),
            OProp::U32(0x02, v) => MessageExpiryInterval(*v),
            OProp::U32(0x11, v) => SessionExpiryInterval(*v),
            OProp::U32(0x18, v) => WillDelayInterval(*v),
            OProp::U32(_, v) => MaximumPacketSize(*v),
            OProp::Varint(_, v) => SubscriptionIdentifier(*v),
            OProp::Str(0x03, v) => ContentType(v),
            OProp::Str(0x08, v) => ResponseTopic(v),
            OProp::Str(0x12, v) => AssignedClientIdentifier(v),
            OProp::Str(0x15, v) => AuthenticationMethod(v),
            OProp::Str(0x1A, v) => ResponseInformation(v),
            OProp::Str(0x1C, v) => ServerReference(v),
            OProp::Str(_, v) => ReasonString(v),
            OProp::Bin(0x09, v) => CorrelationData(v),
            OProp::Bin(_, v) => AuthenticationData(v),
            OProp::Pair(k, v) => UserProperty(k, v),
        }
    }
}

/// Where a generated property block goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    Connect,
    Will,
    Connack,
    Publish,
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

pub fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.é€\u{1F600}-]{0,10}"
}

pub fn topic_name() -> impl Strategy<Value = String> {
    "[a-z0-9é$_-]{1,6}(/[a-zA-Z0-9 é_-]{0,6}){0,3}"
}

pub fn topic_filter() -> impl Strategy<Value = String> {
    let level = prop_oneof![
        3 => "[a-z0-9é_-]{0,5}".boxed(),
        1 => Just("+".to_string()).boxed(),
    ];
    (prop::collection::vec(level, 1..4), any::<bool>(), prop::option::of("[a-z0-9]{1,5}")).prop_map(
        |(levels, hash, share)| {
            let mut f = levels.join("/");
            if f.is_empty() {
                // A single empty level is the empty filter, which is invalid.
                f.push('e');
            }
            if hash {
                f.push_str("/#");
            }
            match share {
                Some(g) => format!("$share/{g}/{f}"),
                None => f,
            }
        },
    )
}

fn one_prop(id: u8) -> BoxedStrategy<OProp> {
    match id {
        0x01 | 0x17 | 0x19 | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => {
            (0u8..=1).prop_map(move |v| OProp::Byte(id, v)).boxed()
        }
        0x13 | 0x22 => any::<u16>().prop_map(move |v| OProp::U16(id, v)).boxed(),
        0x21 | 0x23 => (1u16..).prop_map(move |v| OProp::U16(id, v)).boxed(),
        0x02 | 0x11 | 0x18 => any::<u32>().prop_map(move |v| OProp::U32(id, v)).boxed(),
        0x27 => (1u32..).prop_map(move |v| OProp::U32(id, v)).boxed(),
        0x0B => (1u32..=VARINT_MAX).prop_map(move |v| OProp::Varint(id, v)).boxed(),
        0x08 => topic_name().prop_map(move |v| OProp::Str(id, v)).boxed(),
        0x03 | 0x12 | 0x15 | 0x1A | 0x1C | 0x1F => text().prop_map(move |v| OProp::Str(id, v)).boxed(),
        0x09 | 0x16 => prop::collection::vec(any::<u8>(), 0..8).prop_map(move |v| OProp::Bin(id, v)).boxed(),
        _ => (text(), text()).prop_map(|(k, v)| OProp::Pair(k, v)).boxed(),
    }
}

fn ids(ctx: Ctx) -> &'static [u8] {
    match ctx {
        Ctx::Connect => &[0x11, 0x21, 0x22, 0x27, 0x17, 0x19, 0x26, 0x15],
        Ctx::Will => &[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26],
        Ctx::Connack => {
            &[0x11, 0x12, 0x13, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x1A, 0x1C, 0x15]
        }
        Ctx::Publish => &[0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26],
        Ctx::Ack => &[0x1F, 0x26],
        Ctx::Subscribe => &[0x0B, 0x26],
        Ctx::Unsubscribe => &[0x26],
        Ctx::Disconnect => &[0x11, 0x1F, 0x1C, 0x26],
        Ctx::Auth => &[0x15, 0x16, 0x1F, 0x26],
    }
}

/// A valid property block for `ctx` (single-use properties de-duplicated; Authentication Data
/// added only after a method).
pub fn props(ctx: Ctx) -> BoxedStrategy<Vec<OProp>> {
    let list = ids(ctx);
    prop::collection::vec(prop::sample::select(list).prop_flat_map(one_prop), 0..5)
        .prop_flat_map(move |mut v| {
            let mut seen = 0u64;
            v.retain(|p| {
                let id = p.id();
                let repeat = id == 0x26 || (id == 0x0B && ctx == Ctx::Publish);
                let dup = seen & (1 << id) != 0;
                seen |= 1 << id;
                repeat || !dup
            });
            let has_method = v.iter().any(|p| p.id() == 0x15);
            let data = prop::collection::vec(any::<u8>(), 0..6);
            (Just(v), data, any::<bool>()).prop_map(move |(mut v, d, add)| {
                if has_method && add && matches!(ctx, Ctx::Connect | Ctx::Connack) {
                    v.push(OProp::Bin(0x16, d));
                }
                v
            })
        })
        .boxed()
}

pub fn build(props: &[OProp]) -> Vec<u8> {
    let mut b = PropertiesBuilder::new();
    for p in props {
        b.push(p.as_property());
    }
    assert!(b.is_valid());
    b.into_vec()
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

pub fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(ProtocolVersion::V31), Just(ProtocolVersion::V311), Just(ProtocolVersion::V5)]
}

fn codes_for(kind: PacketType) -> Vec<ReasonCode> {
    (0u8..=255).filter_map(ReasonCode::from_u8).filter(|c| c.allowed_in(kind)).collect()
}

fn reason(kind: PacketType) -> BoxedStrategy<ReasonCode> {
    prop::sample::select(codes_for(kind)).boxed()
}

/// Will: (properties, topic, payload, QoS, retain).
pub type GenWill = (Vec<u8>, String, Vec<u8>, QoS, bool);

/// An owned, valid packet.
#[derive(Debug, Clone)]
pub enum Gen {
    Connect {
        version: ProtocolVersion,
        clean: bool,
        keep_alive: u16,
        props: Vec<u8>,
        client_id: String,
        will: Option<GenWill>,
        username: Option<String>,
        password: Option<Vec<u8>>,
    },
    Connack {
        sp: bool,
        code: ReasonCode,
        props: Vec<u8>,
    },
    Publish {
        dup: bool,
        qos: QoS,
        retain: bool,
        topic: String,
        pid: u16,
        props: Vec<u8>,
        payload: Vec<u8>,
    },
    Ack {
        kind: PacketType,
        pid: u16,
        reason: ReasonCode,
        props: Vec<u8>,
    },
    Subscribe {
        pid: u16,
        props: Vec<u8>,
        filters: Vec<(String, SubscriptionOptions)>,
    },
    Suback {
        kind: PacketType,
        pid: u16,
        codes: Vec<u8>,
        props: Vec<u8>,
    },
    Unsubscribe {
        pid: u16,
        props: Vec<u8>,
        filters: Vec<String>,
    },
    Pingreq,
    Pingresp,
    Disconnect {
        reason: ReasonCode,
        props: Vec<u8>,
    },
    Auth {
        reason: ReasonCode,
        props: Vec<u8>,
    },
}

fn sub_options(v5: bool) -> impl Strategy<Value = SubscriptionOptions> {
    (qos(), any::<bool>(), any::<bool>(), 0u8..=2).prop_map(move |(qos, nl, rap, rh)| {
        if v5 {
            SubscriptionOptions { qos, no_local: nl, retain_as_published: rap, retain_handling: rh }
        } else {
            SubscriptionOptions::with_qos(qos)
        }
    })
}

fn maybe_props(v: ProtocolVersion, ctx: Ctx) -> BoxedStrategy<Vec<u8>> {
    if v.is_v5() {
        props(ctx).prop_map(|p| build(&p)).boxed()
    } else {
        Just(Vec::new()).boxed()
    }
}

fn connect(v: ProtocolVersion) -> BoxedStrategy<Gen> {
    let client_id = match v {
        ProtocolVersion::V31 => "[a-zA-Z0-9]{1,23}".boxed(),
        _ => "[a-zA-Z0-9é_-]{0,30}".boxed(),
    };
    let will = prop::option::of((
        maybe_props(v, Ctx::Will),
        topic_name(),
        prop::collection::vec(any::<u8>(), 0..16),
        qos(),
        any::<bool>(),
    ));
    (
        any::<bool>(),
        any::<u16>(),
        maybe_props(v, Ctx::Connect),
        client_id,
        will,
        prop::option::of(text()),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..10)),
    )
        .prop_map(move |(clean, keep_alive, props, client_id, will, username, password)| {
            let mut clean = clean;
            if client_id.is_empty() {
                clean = true;
            }
            let password = if username.is_none() && !v.is_v5() { None } else { password };
            Gen::Connect { version: v, clean, keep_alive, props, client_id, will, username, password }
        })
        .boxed()
}

/// A valid packet of any type for version `v` (CONNECT carries `v` itself).
pub fn packet(v: ProtocolVersion) -> BoxedStrategy<Gen> {
    let v5 = v.is_v5();
    let ack_kind = prop_oneof![
        Just(PacketType::Puback),
        Just(PacketType::Pubrec),
        Just(PacketType::Pubrel),
        Just(PacketType::Pubcomp)
    ];
    let connack_code = if v5 {
        reason(PacketType::Connack)
    } else {
        prop::sample::select(vec![
            ReasonCode::Success,
            ReasonCode::UnsupportedProtocolVersion,
            ReasonCode::ClientIdentifierNotValid,
            ReasonCode::ServerUnavailable,
            ReasonCode::BadUserNameOrPassword,
            ReasonCode::NotAuthorized,
        ])
        .boxed()
    };
    let suback_codes = if v5 {
        prop::collection::vec(reason(PacketType::Suback).prop_map(|c| c.as_u8()), 1..5).boxed()
    } else {
        prop::collection::vec(prop::sample::select(vec![0u8, 1, 2, 0x80]), 1..5).boxed()
    };
    let unsuback_codes = if v5 {
        prop::collection::vec(reason(PacketType::Unsuback).prop_map(|c| c.as_u8()), 1..5).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    prop_oneof![
        connect(v),
        (any::<bool>(), connack_code, maybe_props(v, Ctx::Connack))
            .prop_map(|(sp, code, props)| Gen::Connack { sp, code, props }),
        (
            any::<bool>(),
            qos(),
            any::<bool>(),
            topic_name(),
            1u16..,
            maybe_props(v, Ctx::Publish),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(dup, qos, retain, topic, pid, props, payload)| Gen::Publish {
                dup: dup && qos != QoS::AtMostOnce,
                qos,
                retain,
                topic,
                pid,
                props,
                payload
            }),
        (ack_kind, 1u16.., maybe_props(v, Ctx::Ack), any::<prop::sample::Index>()).prop_map(
            move |(kind, pid, props, i)| {
                let reason = if v5 {
                    let c = codes_for(kind);
                    c[i.index(c.len())]
                } else {
                    ReasonCode::Success
                };
                Gen::Ack { kind, pid, reason, props }
            }
        ),
        (
            1u16..,
            maybe_props(v, Ctx::Subscribe),
            prop::collection::vec((topic_filter(), sub_options(v5)), 1..5)
        )
            .prop_map(|(pid, props, mut filters)| {
                for (f, o) in filters.iter_mut() {
                    if split_shared(f).is_some() {
                        o.no_local = false;
                    }
                }
                Gen::Subscribe { pid, props, filters }
            }),
        (1u16.., suback_codes, maybe_props(v, Ctx::Ack))
            .prop_map(|(pid, codes, props)| { Gen::Suback { kind: PacketType::Suback, pid, codes, props } }),
        (1u16.., unsuback_codes, maybe_props(v, Ctx::Ack)).prop_map(|(pid, codes, props)| {
            Gen::Suback { kind: PacketType::Unsuback, pid, codes, props }
        }),
        (1u16.., maybe_props(v, Ctx::Unsubscribe), prop::collection::vec(topic_filter(), 1..5))
            .prop_map(|(pid, props, filters)| Gen::Unsubscribe { pid, props, filters }),
        Just(Gen::Pingreq),
        Just(Gen::Pingresp),
        (reason(PacketType::Disconnect), maybe_props(v, Ctx::Disconnect)).prop_map(move |(reason, props)| {
            if v5 {
                Gen::Disconnect { reason, props }
            } else {
                Gen::Disconnect { reason: ReasonCode::Success, props: Vec::new() }
            }
        }),
        (reason(PacketType::Auth), text(), props(Ctx::Auth), any::<bool>()).prop_map(
            move |(reason, method, rest, empty)| {
                if !v5 {
                    return Gen::Pingreq;
                }
                if empty && reason == ReasonCode::Success {
                    return Gen::Auth { reason, props: Vec::new() };
                }
                let mut p = vec![OProp::Str(0x15, method)];
                p.extend(rest.into_iter().filter(|p| p.id() != 0x15));
                Gen::Auth { reason, props: build(&p) }
            }
        ),
    ]
    .boxed()
}

/// Encode with the public encoders.
pub fn encode(g: &Gen, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    match g {
        Gen::Connect { version, clean, keep_alive, props, client_id, will, username, password } => {
            let c = Connect {
                version: *version,
                clean_start: *clean,
                keep_alive: *keep_alive,
                properties: raw_props(props),
                client_id,
                will: will.as_ref().map(|(p, t, m, q, r)| Will {
                    properties: raw_props(p),
                    topic: t,
                    payload: m,
                    qos: *q,
                    retain: *r,
                }),
                username: username.as_deref(),
                password: password.as_deref(),
            };
            encode_connect(&mut out, &c);
        }
        Gen::Connack { sp, code, props } => encode_connack(&mut out, v, *sp, *code, props),
        Gen::Publish { dup, qos, retain, topic, pid, props, payload } => {
            let p = Publish {
                dup: *dup,
                qos: *qos,
                retain: *retain,
                topic,
                packet_id: (*qos != QoS::AtMostOnce).then_some(*pid),
                properties: Properties::default(),
                payload: Bytes::copy_from_slice(payload),
            };
            encode_publish(&mut out, v, &p, props);
        }
        Gen::Ack { kind, pid, reason, props } => encode_ack(&mut out, v, *kind, *pid, *reason, props),
        Gen::Subscribe { pid, props, filters } => {
            let f: Vec<(&str, SubscriptionOptions)> = filters.iter().map(|(f, o)| (f.as_str(), *o)).collect();
            encode_subscribe(&mut out, v, *pid, props, &f);
        }
        Gen::Suback { kind, pid, codes, props } => encode_suback(&mut out, v, *kind, *pid, codes, props),
        Gen::Unsubscribe { pid, props, filters } => {
            let f: Vec<&str> = filters.iter().map(String::as_str).collect();
            encode_unsubscribe(&mut out, v, *pid, props, &f);
        }
        Gen::Pingreq => encode_pingreq(&mut out),
        Gen::Pingresp => encode_pingresp(&mut out),
        Gen::Disconnect { reason, props } => encode_disconnect(&mut out, v, *reason, props),
        Gen::Auth { reason, props } => encode_auth(&mut out, *reason, props),
    }
    out.to_vec()
}

/// A `Properties` view over bytes known to be valid (test-only constructor via a decode).
pub fn raw_props(raw: &[u8]) -> Properties<'_> {
    Properties::from_raw(raw).unwrap()
}

/// Check that `p` (decoded from `encode(g, v)`) carries exactly the generated fields.
pub fn check(g: &Gen, v: ProtocolVersion, p: &Packet<'_>) {
    let v5 = v.is_v5();
    let props_of = |raw: &[u8]| if v5 { raw.to_vec() } else { Vec::new() };
    match (g, p) {
        (
            Gen::Connect { version, clean, keep_alive, props, client_id, will, username, password },
            Packet::Connect(c),
        ) => {
            let cv5 = version.is_v5();
            assert_eq!(c.version, *version);
            assert_eq!(c.clean_start, *clean);
            assert_eq!(c.keep_alive, *keep_alive);
            assert_eq!(c.properties.raw(), if cv5 { &props[..] } else { &[] });
            assert_eq!(c.client_id, client_id);
            match (will, &c.will) {
                (None, None) => {}
                (Some((p, t, m, q, r)), Some(w)) => {
                    assert_eq!(w.properties.raw(), if cv5 { &p[..] } else { &[] });
                    assert_eq!(w.topic, t);
                    assert_eq!(w.payload, &m[..]);
                    assert_eq!(w.qos, *q);
                    assert_eq!(w.retain, *r);
                }
                other => panic!("will mismatch {other:?}"),
            }
            assert_eq!(c.username, username.as_deref());
            assert_eq!(c.password, password.as_deref());
        }
        (Gen::Connack { sp, code, props }, Packet::Connack(c)) => {
            let expect = if v5 { code.as_u8() } else { code.connack_v3() };
            assert_eq!(c.code, expect);
            assert_eq!(c.session_present, *sp && expect == 0);
            assert_eq!(c.properties.raw(), &props_of(props)[..]);
        }
        (Gen::Publish { dup, qos, retain, topic, pid, props, payload }, Packet::Publish(p)) => {
            assert_eq!(p.dup, *dup);
            assert_eq!(p.qos, *qos);
            assert_eq!(p.retain, *retain);
            assert_eq!(p.topic, topic);
            assert_eq!(p.packet_id, (*qos != QoS::AtMostOnce).then_some(*pid));
            assert_eq!(p.properties.raw(), &props_of(props)[..]);
            assert_eq!(&p.payload[..], &payload[..]);
        }
        (
            Gen::Ack { kind, pid, reason, props },
            Packet::Puback(a) | Packet::Pubrec(a) | Packet::Pubrel(a) | Packet::Pubcomp(a),
        ) => {
            assert_eq!(p.packet_type(), *kind);
            assert_eq!(a.packet_id, *pid);
            assert_eq!(a.reason, reason.as_u8());
            assert_eq!(a.properties.raw(), &props_of(props)[..]);
        }
        (Gen::Subscribe { pid, props, filters }, Packet::Subscribe(s)) => {
            assert_eq!(s.packet_id, *pid);
            assert_eq!(s.properties.raw(), &props_of(props)[..]);
            let got: Vec<(String, SubscriptionOptions)> =
                s.filters().map(|(f, o)| (f.to_string(), o)).collect();
            assert_eq!(&got, filters);
            assert_eq!(s.len(), filters.len());
        }
        (Gen::Suback { kind, pid, codes, props }, Packet::Suback(s) | Packet::Unsuback(s)) => {
            assert_eq!(p.packet_type(), *kind);
            assert_eq!(s.packet_id, *pid);
            assert_eq!(s.codes, &codes[..]);
            assert_eq!(s.properties.raw(), &props_of(props)[..]);
        }
        (Gen::Unsubscribe { pid, props, filters }, Packet::Unsubscribe(u)) => {
            assert_eq!(u.packet_id, *pid);
            assert_eq!(u.properties.raw(), &props_of(props)[..]);
            assert_eq!(u.filters().collect::<Vec<_>>(), *filters);
        }
        (Gen::Pingreq, Packet::Pingreq) | (Gen::Pingresp, Packet::Pingresp) => {}
        (Gen::Disconnect { reason, props }, Packet::Disconnect(d)) => {
            assert_eq!(d.reason, if v5 { reason.as_u8() } else { 0 });
            assert_eq!(d.properties.raw(), &props_of(props)[..]);
        }
        (Gen::Auth { reason, props }, Packet::Auth(a)) => {
            assert_eq!(a.reason, reason.as_u8());
            assert_eq!(a.properties.raw(), &props[..]);
        }
        (g, p) => panic!("type mismatch: generated {g:?}, decoded {p:?}"),
    }
}
