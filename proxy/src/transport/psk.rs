//! TLS-PSK listeners. rustls has no PSK key exchange, so these use OpenSSL (feature `tls-psk`,
//! on by default). Only TLS 1.2 with AEAD PSK suites is offered; no renegotiation, no
//! compression, no session resumption (every connection proves possession of its key). TLS 1.3
//! external PSKs are not offered: OpenSSL's 1.3 PSK path needs a different callback and session
//! objects, and PSK clients in the field (EMQX, Mosquitto, embedded stacks) speak 1.2 PSK.
//!
//! The accept path (bans, caps, PROXY protocol, handshake deadline, metrics) is the listener's
//! own; this module only turns a TCP stream into an authenticated stream and an identity.

use std::sync::Arc;

use crate::config::PskConfig;

/// The only suites offered (OpenSSL names): PSK with AES-GCM or ChaCha20-Poly1305, plain or
/// with ECDHE for forward secrecy. No CBC, no SHA-1 MACs, no NULL suites.
pub const SUITES: &str =
    "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES256-GCM-SHA384:PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256";

#[derive(Debug, thiserror::Error)]
pub enum PskSetupError {
    #[error("TLS-PSK setup: {0}")]
    OpenSsl(String),
    #[error("this moat was built without the `tls-psk` feature")]
    NotBuilt,
}

/// A failed handshake: a fixed label for `moat_tls_handshake_failures_total` and detail for the
/// debug log (OpenSSL's reason strings; never key material).
#[derive(Debug)]
pub struct HandshakeFailure {
    pub label: &'static str,
    pub detail: String,
}

#[cfg(feature = "tls-psk")]
pub use imp::{PskServer, PskStream};

#[cfg(not(feature = "tls-psk"))]
pub use stub::{PskServer, PskStream};

#[cfg(feature = "tls-psk")]
mod imp {
    use std::pin::Pin;
    use std::sync::{Arc, OnceLock};

    use openssl::error::ErrorStack;
    use openssl::ssl::{
        self, AlpnError, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslRef,
        SslSessionCacheMode, SslVersion,
    };
    use tokio::net::TcpStream;

    use super::{HandshakeFailure, PskSetupError, SUITES};
    use crate::config::{PskConfig, PskIdentities};

    pub type PskStream = tokio_openssl::SslStream<TcpStream>;

    /// What the PSK callback found for the client's identity.
    enum Lookup {
        Known(Arc<str>),
        Unknown,
    }

    /// One ex-data slot per process (OpenSSL never frees these indexes).
    fn lookup_index() -> Option<openssl::ex_data::Index<Ssl, Lookup>> {
        static INDEX: OnceLock<Option<openssl::ex_data::Index<Ssl, Lookup>>> = OnceLock::new();
        *INDEX.get_or_init(|| Ssl::new_ex_index().ok())
    }

    pub struct PskServer {
        context: SslContext,
    }

    impl PskServer {
        pub fn new(cfg: &PskConfig) -> Result<Arc<Self>, PskSetupError> {
            let err = |e: ErrorStack| PskSetupError::OpenSsl(e.to_string());
            let index = lookup_index().ok_or(PskSetupError::OpenSsl("no ex-data index".into()))?;
            let mut b = SslContextBuilder::new(SslMethod::tls_server()).map_err(err)?;
            b.set_min_proto_version(Some(SslVersion::TLS1_2)).map_err(err)?;
            b.set_max_proto_version(Some(SslVersion::TLS1_2)).map_err(err)?;
            b.set_cipher_list(SUITES).map_err(err)?;
            b.set_options(
                SslOptions::NO_COMPRESSION
                    | SslOptions::NO_RENEGOTIATION
                    | SslOptions::CIPHER_SERVER_PREFERENCE
                    | SslOptions::NO_TICKET,
            );
            b.set_session_cache_mode(SslSessionCacheMode::OFF);
            // MQTT's IANA ALPN id when the client offers ALPN; clients that offer none connect too.
            b.set_alpn_select_callback(|_, client| {
                ssl::select_next_proto(b"\x04mqtt", client).ok_or(AlpnError::NOACK)
            });
            let identities: Arc<PskIdentities> = cfg.identities.clone();
            b.set_psk_server_callback(move |ssl: &mut SslRef, identity, out: &mut [u8]| {
                Ok(psk_for(&identities, ssl, index, identity, out))
            });
            Ok(Arc::new(PskServer { context: b.build() }))
        }

        /// The handshake; the caller bounds it with the listener's deadline.
        pub async fn accept(&self, tcp: TcpStream) -> Result<(PskStream, Arc<str>), HandshakeFailure> {
            let fail = |label, detail: String| HandshakeFailure { label, detail };
            let ssl = Ssl::new(&self.context).map_err(|e| fail("other", e.to_string()))?;
            let mut stream = PskStream::new(ssl, tcp).map_err(|e| fail("other", e.to_string()))?;
            let result = Pin::new(&mut stream).accept().await;
            let lookup = lookup_index().and_then(|i| stream.ssl().ex_data(i));
            match (result, lookup) {
                (Ok(()), Some(Lookup::Known(id))) => {
                    let id = id.clone();
                    Ok((stream, id))
                }
                // A handshake that completed without our callback choosing a key cannot happen
                // with PSK-only suites; refuse it rather than admit a client with no identity.
                (Ok(()), _) => Err(fail("other", "handshake completed without a PSK identity".into())),
                (Err(e), Some(Lookup::Unknown)) => Err(fail("unknown_psk_identity", e.to_string())),
                (Err(e), _) => Err(fail(failure_reason(&e), e.to_string())),
            }
        }
    }

    /// Copies the identity's key into OpenSSL's buffer; 0 (no key) fails the handshake.
    fn psk_for(
        identities: &PskIdentities,
        ssl: &mut SslRef,
        index: openssl::ex_data::Index<Ssl, Lookup>,
        identity: Option<&[u8]>,
        out: &mut [u8],
    ) -> usize {
        let found = identity.and_then(|i| std::str::from_utf8(i).ok()).and_then(|i| identities.get(i));
        match found {
            Some((name, key)) if key.bytes().len() <= out.len() => {
                let n = key.bytes().len();
                if let Some(dst) = out.get_mut(..n) {
                    dst.copy_from_slice(key.bytes());
                    ssl.set_ex_data(index, Lookup::Known(Arc::from(name)));
                    return n;
                }
                ssl.set_ex_data(index, Lookup::Unknown);
                0
            }
            _ => {
                ssl.set_ex_data(index, Lookup::Unknown);
                0
            }
        }
    }

    /// Fixed labels from OpenSSL's reason strings (stable across 1.1 and 3.x).
    fn failure_reason(e: &ssl::Error) -> &'static str {
        if let Some(stack) = e.ssl_error() {
            for err in stack.errors() {
                let reason = err.reason().unwrap_or_default().to_ascii_lowercase();
                if reason.contains("no shared cipher")
                    || reason.contains("version")
                    || reason.contains("protocol")
                {
                    return "incompatible";
                }
                if reason.contains("bad record mac")
                    || reason.contains("digest check failed")
                    || reason.contains("decrypt")
                {
                    return "psk_mismatch";
                }
                if reason.contains("alert") {
                    return "alert_received";
                }
            }
            return "protocol";
        }
        match e.io_error() {
            Some(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => "eof",
            Some(_) => "io",
            None if e.code() == ssl::ErrorCode::ZERO_RETURN || e.code() == ssl::ErrorCode::SYSCALL => "eof",
            None => "other",
        }
    }
}

#[cfg(not(feature = "tls-psk"))]
mod stub {
    use std::convert::Infallible;
    use std::sync::Arc;

    use tokio::net::TcpStream;

    use super::{HandshakeFailure, PskSetupError};
    use crate::config::PskConfig;

    /// Never built: the config check refuses `tls_psk` without the feature.
    pub type PskStream = TcpStream;

    pub struct PskServer {
        never: Infallible,
    }

    impl PskServer {
        pub fn new(_cfg: &PskConfig) -> Result<Arc<Self>, PskSetupError> {
            Err(PskSetupError::NotBuilt)
        }

        pub async fn accept(&self, _tcp: TcpStream) -> Result<(PskStream, Arc<str>), HandshakeFailure> {
            match self.never {}
        }
    }
}

/// Builds the listener's PSK server when the listener has `tls_psk`.
pub fn server(cfg: Option<&PskConfig>) -> Result<Option<Arc<PskServer>>, PskSetupError> {
    cfg.map(PskServer::new).transpose()
}
