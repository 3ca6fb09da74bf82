//! MQTT 5 enhanced authentication with SCRAM (trap 13): the whole exchange runs between the
//! client and moat. The broker never sees an Authentication Method, Authentication Data or an
//! AUTH packet: the forwarded CONNECT is stripped of them (`rewrite::clamp_limits`), and the
//! server-final message is added to the broker's CONNACK on its way to the client
//! (`rewrite::connack_with_auth`).
//!
//! Why inject into the broker's CONNACK instead of moat building its own: the broker's CONNACK
//! carries what only the broker knows (session present, its limits, its assigned values), and the
//! relay already rewrites that CONNACK for moat's limits; adding two properties there keeps one
//! CONNACK path for every authenticator. A broker refusal is relayed as it is (without
//! server-final: the client has not been admitted, so there is nothing to prove).
//!
//! Re-authentication (AUTH 0x19) is answered by the relay ([`Relay::client_auth`]). Other packets
//! from the client during a re-authentication are processed normally, as MQTT 5 4.12.1 allows.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tracing::info;

use super::io::{reserve_read, write_within};
use super::relay::{Queues, Relay, Step};
use super::Context;
use crate::codec::{
    encode_auth, split_frame, Auth, Packet, PacketType, Properties, PropertiesBuilder, Property,
    ProtocolVersion, ReasonCode, Split,
};
use crate::metrics::Direction;
use crate::policy::authn::password::PasswordFile;
use crate::policy::authn::scram::{
    parse_client_final, parse_client_first, Mechanism, ScramError, ServerFirst,
};
use crate::policy::authn::{AuthChain, AuthDecision};
use crate::policy::Identity;
use crate::util::escape;

/// The metric/audit name of this authenticator.
pub(super) const AUTHENTICATOR: &str = "scram";

/// A client that proved its password: what the session needs to answer it and re-authenticate.
pub(super) struct ScramLogin {
    pub(super) identity: Identity,
    pub(super) mechanism: Mechanism,
    /// `v=...`, sent as Authentication Data in the CONNACK.
    pub(super) server_final: String,
}

/// The SCRAM state a session keeps for re-authentication.
pub(crate) struct ScramSession {
    mechanism: Mechanism,
    username: String,
    /// Between AUTH 0x19 (server-first sent) and the client-final AUTH 0x18.
    pending: Option<ServerFirst>,
}

impl ScramSession {
    pub(super) fn new(login: &ScramLogin) -> Self {
        ScramSession {
            mechanism: login.mechanism,
            username: login.identity.username.clone().unwrap_or_default(),
            pending: None,
        }
    }
}

fn deny(reason: ReasonCode, label: &'static str) -> AuthDecision {
    AuthDecision::Deny { reason, label, authenticator: AUTHENTICATOR }
}

fn deny_scram(e: ScramError) -> AuthDecision {
    deny(ReasonCode::NotAuthorized, e.label())
}

/// The Authentication Data property of an AUTH or CONNECT.
pub(super) fn authentication_data<'a>(props: &Properties<'a>) -> Option<&'a [u8]> {
    props.iter().find_map(|p| match p {
        Property::AuthenticationData(d) => Some(d),
        _ => None,
    })
}

fn auth_properties(method: &str, data: &str) -> PropertiesBuilder {
    let mut props = PropertiesBuilder::new();
    props.push(Property::AuthenticationMethod(method));
    props.push(Property::AuthenticationData(data.as_bytes()));
    props
}

/// Runs the connect-phase exchange: `method`/`data` come from CONNECT; moat answers AUTH 0x18
/// with server-first and reads the client-final AUTH 0x18 within `deadline`. Every failure is a
/// [`AuthDecision::Deny`] for the caller's usual refusal path (audit, metrics, flapping).
pub(super) async fn connect_exchange<S>(
    client: &mut S,
    buf: &mut BytesMut,
    ctx: &Context,
    chain: &AuthChain,
    method: &str,
    data: Option<&[u8]>,
    deadline: Duration,
) -> Result<(ScramLogin, Arc<PasswordFile>), AuthDecision>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (Some(mechanism), Some(file)) = (Mechanism::from_method(method), chain.scram_file()) else {
        return Err(deny(ReasonCode::BadAuthenticationMethod, "bad_method"));
    };
    let first = parse_client_first(data.unwrap_or_default()).map_err(deny_scram)?;
    let state = file.scram_start(mechanism, first).map_err(deny_scram)?;
    let mut out = BytesMut::new();
    encode_auth(
        &mut out,
        ReasonCode::ContinueAuthentication,
        auth_properties(method, state.message()).as_bytes(),
    );
    ctx.metrics.traffic.packet(Direction::Outbound, PacketType::Auth, out.len());
    let exchange = async {
        write_within(client, &out, deadline).await;
        read_client_final(client, buf, ctx, method).await
    };
    let client_final = match tokio::time::timeout(deadline, exchange).await {
        Err(_) => return Err(deny(ReasonCode::NotAuthorized, "scram_timeout")),
        Ok(result) => result?,
    };
    let username = state.username().to_string();
    let server_final = state.finish(&client_final).map_err(deny_scram)?;
    let entry = file.scram_entry(&username);
    let identity = Identity {
        username: Some(username),
        groups: entry.map(|e| e.groups.clone()).unwrap_or_default(),
        attributes: entry.map(|e| e.attributes.clone()).unwrap_or_default(),
        superuser: entry.is_some_and(|e| e.superuser),
        authenticator: AUTHENTICATOR,
        ..Identity::default()
    };
    Ok((ScramLogin { identity, mechanism, server_final }, file))
}

/// Reads the next frame, which must be AUTH 0x18 with the same method, and parses its data.
async fn read_client_final<S: AsyncRead + Unpin>(
    client: &mut S,
    buf: &mut BytesMut,
    ctx: &Context,
    method: &str,
) -> Result<crate::policy::authn::scram::ClientFinal, AuthDecision> {
    let frame = loop {
        match split_frame(buf, ctx.limits.max_packet_size) {
            Ok(Split::Frame(f)) => break f,
            Ok(Split::Incomplete) => {}
            Err(e) => {
                ctx.metrics.protocol_error(e.kind());
                return Err(deny(ReasonCode::ProtocolError, "scram_protocol"));
            }
        }
        reserve_read(buf);
        match client.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(deny(ReasonCode::NotAuthorized, "scram_closed")),
            Ok(_) => {}
        }
    };
    ctx.metrics.traffic.packet(Direction::Inbound, frame.packet_type(), frame.len());
    let auth = match frame.decode(ProtocolVersion::V5) {
        Ok(Packet::Auth(a)) => a,
        _ => {
            ctx.metrics.protocol_error("scram_expected_auth");
            return Err(deny(ReasonCode::ProtocolError, "scram_protocol"));
        }
    };
    if auth.reason != ReasonCode::ContinueAuthentication.as_u8() {
        ctx.metrics.protocol_error("scram_auth_reason");
        return Err(deny(ReasonCode::ProtocolError, "scram_protocol"));
    }
    if auth.properties.authentication_method() != Some(method) {
        return Err(deny(ReasonCode::BadAuthenticationMethod, "bad_method"));
    }
    parse_client_final(authentication_data(&auth.properties).unwrap_or_default()).map_err(deny_scram)
}

impl Relay {
    /// An AUTH packet from the client (trap 13): re-authentication of a SCRAM session, answered by
    /// moat; never forwarded. Anything else is a protocol error.
    pub(super) fn client_auth(&mut self, a: &Auth<'_>, q: &mut Queues) -> Step {
        let Some(scram) = self.scram.as_mut() else {
            return Step::Close(self.protocol_error("auth_packet", ReasonCode::ProtocolError));
        };
        // MQTT 5 4.12.1: re-authentication must use the original method. 0x8C is not a
        // DISCONNECT reason code (3.14.2.1), so this is answered as the protocol error it is.
        if a.properties.authentication_method() != Some(scram.mechanism.name()) {
            return self.reauth_failed("bad_method", ReasonCode::ProtocolError);
        }
        let data = authentication_data(&a.properties).unwrap_or_default();
        let reauth = ReasonCode::ReAuthenticate.as_u8();
        let cont = ReasonCode::ContinueAuthentication.as_u8();
        match (a.reason, scram.pending.take()) {
            (r, None) if r == reauth => {
                let first = match parse_client_first(data) {
                    Ok(first) => first,
                    Err(e) => return self.reauth_failed(e.label(), ReasonCode::NotAuthorized),
                };
                // Re-authentication confirms the identity: it cannot switch to another user.
                if first.username != scram.username {
                    return self.reauth_failed("scram_user_changed", ReasonCode::NotAuthorized);
                }
                let mechanism = scram.mechanism;
                let chain = self.ctx.policy.snapshot().auth_for(&self.session.peer.listener);
                // SCRAM was withdrawn from the listener by a reload: the session cannot prove
                // itself any more.
                let Some(file) = chain.scram_file() else {
                    return self.reauth_failed("scram_withdrawn", ReasonCode::NotAuthorized);
                };
                match file.scram_start(mechanism, first) {
                    Ok(state) => {
                        self.queue_auth(q, ReasonCode::ContinueAuthentication, mechanism, state.message());
                        if let Some(scram) = self.scram.as_mut() {
                            scram.pending = Some(state);
                        }
                        Step::Replaced
                    }
                    Err(e) => self.reauth_failed(e.label(), ReasonCode::NotAuthorized),
                }
            }
            (r, Some(state)) if r == cont => {
                let mechanism = state.mechanism();
                let result = parse_client_final(data).and_then(|last| state.finish(&last));
                match result {
                    Ok(server_final) => {
                        self.ctx.metrics.authentication(AUTHENTICATOR, "allow");
                        info!(
                            target: "moat::audit",
                            authenticator = AUTHENTICATOR,
                            username = %escape(self.session.identity.username.as_deref().unwrap_or("")),
                            "re-authenticated"
                        );
                        self.queue_auth(q, ReasonCode::Success, mechanism, &server_final);
                        Step::Replaced
                    }
                    Err(e) => self.reauth_failed(e.label(), ReasonCode::NotAuthorized),
                }
            }
            _ => Step::Close(self.protocol_error("auth_packet", ReasonCode::ProtocolError)),
        }
    }

    fn queue_auth(&self, q: &mut Queues, reason: ReasonCode, mechanism: Mechanism, data: &str) {
        let before = q.to_client.len();
        encode_auth(&mut q.to_client, reason, auth_properties(mechanism.name(), data).as_bytes());
        self.count_answer(PacketType::Auth, q.to_client.len() - before);
    }

    /// A failed re-authentication ends the session (DISCONNECT with `reason`), audited and
    /// counted like a failed login (flapping counts logins only: it needs the CONNECT).
    fn reauth_failed(&mut self, label: &'static str, reason: ReasonCode) -> Step {
        info!(
            target: "moat::audit",
            authenticator = AUTHENTICATOR,
            reason = label,
            username = %escape(self.session.identity.username.as_deref().unwrap_or("")),
            "re-authentication failed"
        );
        self.ctx.metrics.authentication(AUTHENTICATOR, label);
        Step::Close(Some(reason))
    }
}
