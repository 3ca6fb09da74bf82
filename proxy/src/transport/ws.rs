//! MQTT over WebSocket (ws and wss): the HTTP upgrade on the configured path, the `mqtt`
//! subprotocol echoed, bounded frame/message/buffer sizes, and an adapter that turns binary
//! WebSocket messages back into the byte stream the session reads. MQTT over WebSocket carries
//! binary frames only (MQTT 5 §6): a text frame closes the connection.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Subprotocols moat accepts, in order of preference ("mqttv3.1" is what old 3.1 clients send).
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Performs the WebSocket upgrade. Refuses another path (404) and a request that offers none of
/// the MQTT subprotocols (400): a client that does not speak MQTT gets an HTTP answer, not a session.
pub async fn accept<S>(stream: S, path: &str, max_packet_size: usize) -> io::Result<WsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut config = WebSocketConfig::default();
    // One MQTT packet per message at most, plus framing slack; frames no larger than that.
    config.max_message_size = Some(max_packet_size.saturating_add(1024));
    config.max_frame_size = Some(max_packet_size.saturating_add(1024));
    config.write_buffer_size = 16 * 1024;
    config.max_write_buffer_size = max_packet_size.saturating_add(64 * 1024);
    let path = path.to_string();
    // The error type is tungstenite's Callback contract; it is built at most once per connection.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != path {
            return Err(refusal(StatusCode::NOT_FOUND, "no MQTT endpoint at this path"));
        }
        let offered = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(str::trim))
            .find(|p| SUBPROTOCOLS.contains(p))
            .map(str::to_string);
        match offered {
            Some(p) => {
                if let Ok(v) = HeaderValue::from_str(&p) {
                    resp.headers_mut().insert("sec-websocket-protocol", v);
                }
                Ok(resp)
            }
            None => Err(refusal(StatusCode::BAD_REQUEST, "the `mqtt` subprotocol is required")),
        }
    };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
        .await
        .map_err(io::Error::other)?;
    Ok(WsStream { ws, pending: Bytes::new(), unflushed: false })
}

fn refusal(status: StatusCode, why: &str) -> ErrorResponse {
    let mut r = ErrorResponse::new(Some(why.to_string()));
    *r.status_mut() = status;
    r
}

/// A WebSocket connection seen as a byte stream.
pub struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last binary message.
    pending: Bytes,
    /// A message was queued but its flush had to wait.
    unflushed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.unflushed {
            // Progress a pending flush from the read side too; its readiness wakes this task.
            if let Poll::Ready(r) = Pin::new(&mut this.ws).poll_flush(cx) {
                this.unflushed = false;
                r.map_err(io::Error::other)?;
            }
        }
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(b))) => this.pending = b,
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Text(_))) => {
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "text frame on MQTT")))
                }
                Some(Err(e)) => return Poll::Ready(Err(io::Error::other(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(io::Error::other)?;
        // One copy per write: a WebSocket message owns its payload.
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io::Error::other)?;
        match Pin::new(&mut this.ws).poll_flush(cx) {
            Poll::Ready(r) => r.map_err(io::Error::other)?,
            Poll::Pending => this.unflushed = true,
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = ready!(Pin::new(&mut self.ws).poll_flush(cx)).map_err(io::Error::other);
        self.unflushed = false;
        Poll::Ready(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(io::Error::other)
    }
}
