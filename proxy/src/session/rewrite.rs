//! The few packets moat must rewrite to stay transparent while enforcing its own limits.
//!
//! `limits.max_packet_size` applies in both directions. MQTT 5 lets each side announce the largest
//! packet it accepts, so moat announces its limit instead of silently cutting off peers that were
//! never told: the broker learns it from CONNECT (and then drops larger messages for this client,
//! as the spec requires, instead of sending them), the client learns it from CONNACK. The same
//! packets carry each side's Topic Alias Maximum, which moat lowers to what its alias maps hold.

use bytes::{Bytes, BytesMut};

use super::alias::MAX_ALIASES;
use crate::config::BrokerIdentity;
use crate::policy::Identity;

use crate::codec::{
    encode_connack, encode_connect, Connack, Connect, Properties, PropertiesBuilder, Property,
    ProtocolVersion, ReasonCode,
};

/// The property block with Maximum Packet Size lowered to `limit` and Topic Alias Maximum lowered
/// to `alias_cap` (at most [`MAX_ALIASES`]) (and an Assigned Client Identifier added when given), or `None` when the
/// peer's announced values already fit and nothing is added.
fn clamp_limits(
    props: &Properties<'_>,
    limit: u32,
    alias_cap: u16,
    assigned: Option<&str>,
) -> Option<PropertiesBuilder> {
    let size_fits = props.maximum_packet_size().is_some_and(|m| m <= limit);
    let aliases_fit = props.topic_alias_maximum().is_none_or(|m| m <= alias_cap);
    // Enhanced authentication is moat's alone (trap 13): its properties never pass through.
    let no_auth = props.authentication_method().is_none();
    if size_fits && aliases_fit && assigned.is_none() && no_auth {
        return None;
    }
    let mut out = PropertiesBuilder::new();
    for p in props.iter() {
        match p {
            Property::MaximumPacketSize(_)
            | Property::AssignedClientIdentifier(_)
            | Property::AuthenticationMethod(_)
            | Property::AuthenticationData(_) => {}
            Property::TopicAliasMaximum(m) => {
                out.push(Property::TopicAliasMaximum(m.min(alias_cap)));
            }
            other => {
                out.push(other);
            }
        }
    }
    let size = props.maximum_packet_size().map_or(limit, |m| m.min(limit));
    out.push(Property::MaximumPacketSize(size));
    if let Some(id) = assigned {
        out.push(Property::AssignedClientIdentifier(id));
    }
    Some(out)
}

fn limit_u32(max_packet_size: usize) -> u32 {
    u32::try_from(max_packet_size).unwrap_or(u32::MAX)
}

/// What the broker should see in CONNECT (trap 5): the verified identity by default.
pub(crate) struct BrokerView<'a> {
    client_id: &'a str,
    username: Option<&'a str>,
    password: Option<&'a [u8]>,
}

impl<'a> BrokerView<'a> {
    pub(crate) fn new(c: &Connect<'a>, identity: &'a Identity, policy: BrokerIdentity) -> Self {
        let username = if policy.verified_username { identity.username.as_deref() } else { c.username };
        // 3.1.1 forbids a password without a username.
        let password = if policy.keep_password && (username.is_some() || c.version == ProtocolVersion::V5) {
            c.password
        } else {
            None
        };
        Self { client_id: &identity.client_id, username, password }
    }

    fn differs_from(&self, c: &Connect<'_>) -> bool {
        self.client_id != c.client_id || self.username != c.username || self.password != c.password
    }
}

/// The CONNECT to forward, re-encoded when the identity shown to the broker or (v5) the
/// announced limits must change; `None` means the client's bytes go through unchanged.
/// `alias_cap` is how many topic aliases the broker may use toward the client.
/// `keep_alive` is the value the session runs with (a v5 client's keep-alive clamped to the
/// listener's bounds; the broker must enforce the same one).
pub(crate) fn connect_for_broker(
    c: &Connect<'_>,
    view: &BrokerView<'_>,
    max_packet_size: usize,
    alias_cap: u16,
    keep_alive: u16,
) -> Option<Bytes> {
    let props = if c.version == ProtocolVersion::V5 {
        clamp_limits(&c.properties, limit_u32(max_packet_size), alias_cap, None)
    } else {
        None
    };
    if props.is_none() && !view.differs_from(c) && keep_alive == c.keep_alive {
        return None;
    }
    let properties = match &props {
        Some(p) => Properties::from_raw(p.as_bytes()).ok()?,
        None => c.properties,
    };
    let rewritten = Connect {
        properties,
        client_id: view.client_id,
        username: view.username,
        password: view.password,
        keep_alive,
        ..c.clone()
    };
    let mut out = BytesMut::new();
    encode_connect(&mut out, &rewritten);
    Some(out.freeze())
}

/// A v5 CONNACK re-encoded with moat's limits and the client id moat assigned, when it must
/// change. `None` also when the broker's reason code is unknown (the caller then forwards the
/// original, which the client will judge).
pub(crate) fn connack_for_client(
    c: &Connack<'_>,
    max_packet_size: usize,
    assigned: Option<&str>,
    quotas: &ConnackQuotas,
) -> Option<BytesMut> {
    let props = clamp_limits(&c.properties, limit_u32(max_packet_size), MAX_ALIASES, assigned);
    let props = quota_properties(&c.properties, props, quotas)?;
    let code = ReasonCode::from_u8(c.code)?;
    let mut out = BytesMut::new();
    encode_connack(&mut out, ProtocolVersion::V5, c.session_present, code, props.as_bytes());
    Some(out)
}

/// [`connack_for_client`] plus moat's Authentication Method and Authentication Data (the SCRAM
/// server-final message), always re-encoded. `None` only for a reason code moat does not know.
pub(crate) fn connack_with_auth(
    c: &Connack<'_>,
    max_packet_size: usize,
    assigned: Option<&str>,
    quotas: &ConnackQuotas,
    method: &str,
    data: &[u8],
) -> Option<BytesMut> {
    let props = clamp_limits(&c.properties, limit_u32(max_packet_size), MAX_ALIASES, assigned);
    let props = quota_properties(&c.properties, props, quotas);
    let base = props.as_ref().and_then(|b| Properties::from_raw(b.as_bytes()).ok()).unwrap_or(c.properties);
    let mut out = PropertiesBuilder::new();
    for p in base.iter() {
        if !matches!(p, Property::AuthenticationMethod(_) | Property::AuthenticationData(_)) {
            out.push(p);
        }
    }
    out.push(Property::AuthenticationMethod(method));
    out.push(Property::AuthenticationData(data));
    let code = ReasonCode::from_u8(c.code)?;
    let mut bytes = BytesMut::new();
    encode_connack(&mut bytes, ProtocolVersion::V5, c.session_present, code, out.as_bytes());
    Some(bytes)
}

/// What a v5 client is told in CONNACK about the quotas moat enforces on it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnackQuotas {
    /// The clamped keep-alive; sent as Server Keep Alive unless the broker already sent one
    /// (the broker, which enforces keep-alive too, has the last word).
    pub(crate) server_keep_alive: Option<u16>,
    /// `max_inflight`: Receive Maximum is lowered to it (MQTT 5 3.2.2.3.3), so exceeding it is
    /// the client's protocol error 0x93.
    pub(crate) receive_maximum: Option<u16>,
    /// `shared_subscriptions: false` → Shared Subscription Available 0.
    pub(crate) no_shared_subscriptions: bool,
}

/// Applies [`ConnackQuotas`] on top of `clamped` (the result of [`clamp_limits`], `None` when that
/// changed nothing); `None` when nothing changes at all.
fn quota_properties(
    props: &Properties<'_>,
    clamped: Option<PropertiesBuilder>,
    quotas: &ConnackQuotas,
) -> Option<PropertiesBuilder> {
    let add_keep_alive = quotas.server_keep_alive.filter(|_| props.server_keep_alive().is_none());
    let receive_maximum =
        quotas.receive_maximum.filter(|&m| props.receive_maximum().is_none_or(|broker| broker > m));
    let shared_off = quotas.no_shared_subscriptions
        && !props.iter().any(|p| matches!(p, Property::SharedSubscriptionAvailable(0)));
    if add_keep_alive.is_none() && receive_maximum.is_none() && !shared_off {
        return clamped;
    }
    // Rebuild from the clamped block (or the original) minus the properties replaced here.
    let base = clamped.as_ref().and_then(|b| Properties::from_raw(b.as_bytes()).ok()).unwrap_or(*props);
    let mut out = PropertiesBuilder::new();
    for p in base.iter() {
        match p {
            Property::ReceiveMaximum(_) if receive_maximum.is_some() => {}
            Property::SharedSubscriptionAvailable(_) if shared_off => {}
            other => {
                out.push(other);
            }
        }
    }
    if let Some(ka) = add_keep_alive {
        out.push(Property::ServerKeepAlive(ka));
    }
    if let Some(m) = receive_maximum {
        out.push(Property::ReceiveMaximum(m));
    }
    if shared_off {
        out.push(Property::SharedSubscriptionAvailable(0));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{split_frame, Packet, Split};

    const TRANSPARENT: BrokerIdentity = BrokerIdentity { verified_username: false, keep_password: true };

    fn same_identity(c: &Connect<'_>) -> Identity {
        Identity {
            client_id: c.client_id.to_string(),
            username: c.username.map(str::to_string),
            ..Identity::default()
        }
    }

    fn decode_one(bytes: &[u8], v: ProtocolVersion, f: impl FnOnce(Packet<'_>)) {
        let mut buf = BytesMut::from(bytes);
        let Ok(Split::Frame(frame)) = split_frame(&mut buf, 1 << 20) else { panic!("frame") };
        f(frame.decode(v).expect("valid"));
    }

    #[test]
    fn v5_connect_without_maximum_gets_moats_limit_and_keeps_the_rest() {
        // CONNECT v5, clean start, keep-alive 30, props: session expiry 60, receive maximum 10; id "c1".
        let connect = [
            0x10, 23, 0x00, 0x04, b'M', b'Q', b'T', b'T', 5, 0x02, 0x00, 30, 8, 0x11, 0, 0, 0, 60, 0x21, 0,
            10, 0x00, 0x02, b'c', b'1',
        ];
        let mut rewritten = None;
        decode_one(&connect[..connect[1] as usize + 2], ProtocolVersion::V5, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            let id = same_identity(&c);
            rewritten = connect_for_broker(
                &c,
                &BrokerView::new(&c, &id, TRANSPARENT),
                4096,
                MAX_ALIASES,
                c.keep_alive,
            );
        });
        let rewritten = rewritten.expect("rewritten");
        decode_one(&rewritten, ProtocolVersion::V5, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            assert_eq!(c.properties.maximum_packet_size(), Some(4096));
            assert_eq!(c.properties.session_expiry_interval(), Some(60));
            assert_eq!(c.properties.receive_maximum(), Some(10));
            assert_eq!(c.client_id, "c1");
            assert_eq!(c.keep_alive, 30);
            assert!(c.clean_start);
        });
    }

    #[test]
    fn connect_with_a_smaller_maximum_is_forwarded_unchanged() {
        // props: maximum packet size 1000.
        let connect = [
            0x10, 20, 0x00, 0x04, b'M', b'Q', b'T', b'T', 5, 0x02, 0x00, 30, 5, 0x27, 0, 0, 0x03, 0xE8, 0x00,
            0x02, b'c', b'1',
        ];
        decode_one(&connect, ProtocolVersion::V5, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            let id = same_identity(&c);
            assert!(connect_for_broker(
                &c,
                &BrokerView::new(&c, &id, TRANSPARENT),
                4096,
                MAX_ALIASES,
                c.keep_alive
            )
            .is_none());
        });
    }

    #[test]
    fn v311_connect_is_never_rewritten() {
        let connect =
            [0x10, 14, 0x00, 0x04, b'M', b'Q', b'T', b'T', 4, 0x02, 0x00, 30, 0x00, 0x02, b'c', b'1'];
        decode_one(&connect, ProtocolVersion::V311, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            let id = same_identity(&c);
            assert!(connect_for_broker(
                &c,
                &BrokerView::new(&c, &id, TRANSPARENT),
                64,
                MAX_ALIASES,
                c.keep_alive
            )
            .is_none());
        });
    }

    #[test]
    fn connack_announces_moats_limit_when_the_broker_allows_more() {
        // CONNACK v5: session present, success, props: maximum packet size 268435455, topic alias max 10.
        let connack = [0x20, 11, 0x01, 0x00, 8, 0x27, 0x0F, 0xFF, 0xFF, 0xFF, 0x22, 0x00, 0x0A];
        let mut rewritten = None;
        decode_one(&connack, ProtocolVersion::V5, |p| {
            let Packet::Connack(c) = p else { panic!("connack") };
            rewritten = connack_for_client(&c, 1 << 20, None, &ConnackQuotas::default());
        });
        decode_one(&rewritten.expect("rewritten"), ProtocolVersion::V5, |p| {
            let Packet::Connack(c) = p else { panic!("connack") };
            assert!(c.session_present);
            assert_eq!(c.code, 0);
            assert_eq!(c.properties.maximum_packet_size(), Some(1 << 20));
            assert_eq!(c.properties.topic_alias_maximum(), Some(10));
        });
    }

    #[test]
    fn topic_alias_maximum_is_lowered_to_what_moat_tracks() {
        // CONNACK v5: success, props: maximum packet size 1000, topic alias maximum 65535.
        let connack = [0x20, 11, 0x00, 0x00, 8, 0x27, 0, 0, 0x03, 0xE8, 0x22, 0xFF, 0xFF];
        let mut rewritten = None;
        decode_one(&connack, ProtocolVersion::V5, |p| {
            let Packet::Connack(c) = p else { panic!("connack") };
            rewritten = connack_for_client(&c, 1 << 20, None, &ConnackQuotas::default());
        });
        decode_one(&rewritten.expect("rewritten"), ProtocolVersion::V5, |p| {
            let Packet::Connack(c) = p else { panic!("connack") };
            assert_eq!(c.properties.topic_alias_maximum(), Some(MAX_ALIASES));
            // The broker's smaller packet limit stands.
            assert_eq!(c.properties.maximum_packet_size(), Some(1000));
        });
    }

    #[test]
    fn broker_sees_the_verified_username_and_no_password() {
        // CONNECT 3.1.1, username "claimed", password "secret", client id "c1".
        let connect = [
            0x10, 31, 0x00, 0x04, b'M', b'Q', b'T', b'T', 4, 0xC2, 0x00, 30, 0x00, 0x02, b'c', b'1', 0x00,
            0x07, b'c', b'l', b'a', b'i', b'm', b'e', b'd', 0x00, 0x06, b's', b'e', b'c', b'r', b'e', b't',
        ];
        let verified = Identity {
            client_id: "c1".to_string(),
            username: Some("alice".to_string()),
            ..Identity::default()
        };
        let mut rewritten = None;
        decode_one(&connect, ProtocolVersion::V311, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            let view = BrokerView::new(&c, &verified, BrokerIdentity::default());
            rewritten = connect_for_broker(&c, &view, 1 << 20, MAX_ALIASES, c.keep_alive);
        });
        decode_one(&rewritten.expect("rewritten"), ProtocolVersion::V311, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            assert_eq!(c.username, Some("alice"));
            assert_eq!(c.password, None);
            assert_eq!(c.client_id, "c1");
        });
    }

    #[test]
    fn anonymous_identity_reaches_the_broker_without_credentials() {
        let connect = [
            0x10, 31, 0x00, 0x04, b'M', b'Q', b'T', b'T', 4, 0xC2, 0x00, 30, 0x00, 0x02, b'c', b'1', 0x00,
            0x07, b'c', b'l', b'a', b'i', b'm', b'e', b'd', 0x00, 0x06, b's', b'e', b'c', b'r', b'e', b't',
        ];
        let anonymous = Identity { client_id: "c1".to_string(), ..Identity::default() };
        let mut rewritten = None;
        decode_one(&connect, ProtocolVersion::V311, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            // Even with `password: keep`, 3.1.1 cannot carry a password without a username.
            let policy = BrokerIdentity { verified_username: true, keep_password: true };
            rewritten = connect_for_broker(
                &c,
                &BrokerView::new(&c, &anonymous, policy),
                1 << 20,
                MAX_ALIASES,
                c.keep_alive,
            );
        });
        decode_one(&rewritten.expect("rewritten"), ProtocolVersion::V311, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            assert_eq!(c.username, None);
            assert_eq!(c.password, None);
        });
    }

    #[test]
    fn connack_carries_the_client_id_moat_assigned() {
        let connack = [0x20, 3, 0x00, 0x00, 0];
        let mut rewritten = None;
        decode_one(&connack, ProtocolVersion::V5, |p| {
            let Packet::Connack(c) = p else { panic!("connack") };
            rewritten = connack_for_client(&c, 1 << 20, Some("moat-0123"), &ConnackQuotas::default());
        });
        decode_one(&rewritten.expect("rewritten"), ProtocolVersion::V5, |p| {
            let Packet::Connack(c) = p else { panic!("connack") };
            assert_eq!(c.properties.assigned_client_identifier(), Some("moat-0123"));
        });
    }

    #[test]
    fn checked_deliveries_forbid_broker_aliases() {
        // CONNECT v5 with Topic Alias Maximum 10 and Maximum Packet Size 100.
        let connect = [
            0x10, 23, 0x00, 0x04, b'M', b'Q', b'T', b'T', 5, 0x02, 0x00, 30, 8, 0x22, 0, 10, 0x27, 0, 0, 0,
            100, 0x00, 0x02, b'c', b'1',
        ];
        let mut rewritten = None;
        decode_one(&connect, ProtocolVersion::V5, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            let id = same_identity(&c);
            rewritten =
                connect_for_broker(&c, &BrokerView::new(&c, &id, TRANSPARENT), 1 << 20, 0, c.keep_alive);
        });
        decode_one(&rewritten.expect("rewritten"), ProtocolVersion::V5, |p| {
            let Packet::Connect(c) = p else { panic!("connect") };
            assert_eq!(c.properties.topic_alias_maximum(), Some(0));
            assert_eq!(c.properties.maximum_packet_size(), Some(100));
        });
    }
}

#[cfg(test)]
mod quota_tests {
    use super::*;
    use crate::codec::{split_frame, Packet, Split};

    #[test]
    fn connack_tells_the_client_its_quotas() {
        // CONNACK v5: success, props: maximum packet size 1000, receive maximum 100.
        let connack = [0x20, 11, 0x00, 0x00, 8, 0x27, 0, 0, 0x03, 0xE8, 0x21, 0, 100];
        let mut buf = BytesMut::from(&connack[..]);
        let Ok(Split::Frame(frame)) = split_frame(&mut buf, 1 << 20) else { panic!("frame") };
        let Ok(Packet::Connack(c)) = frame.decode(ProtocolVersion::V5) else { panic!("connack") };
        let quotas = ConnackQuotas {
            server_keep_alive: Some(30),
            receive_maximum: Some(5),
            no_shared_subscriptions: true,
        };
        let out = connack_for_client(&c, 1 << 20, None, &quotas).expect("rewritten");
        let mut buf = out;
        let Ok(Split::Frame(frame)) = split_frame(&mut buf, 1 << 20) else { panic!("frame") };
        let Ok(Packet::Connack(c)) = frame.decode(ProtocolVersion::V5) else { panic!("connack") };
        assert_eq!(c.properties.server_keep_alive(), Some(30));
        assert_eq!(c.properties.receive_maximum(), Some(5));
        assert_eq!(c.properties.maximum_packet_size(), Some(1000));
        assert!(c.properties.iter().any(|p| matches!(p, Property::SharedSubscriptionAvailable(0))));
    }
}
