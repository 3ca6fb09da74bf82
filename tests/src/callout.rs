//! A local HTTP server standing in for a JWKS endpoint or an HTTP auth backend. The test sets
//! what it answers (status, body, delay) and can read every request body it received; dropping
//! it (or [`Stub::stop`]) takes the endpoint down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;

/// What the stub answers to a request body.
pub type Responder = Box<dyn Fn(&[u8]) -> Reply + Send + Sync>;

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply { status: 200, body: body.into(), delay: Duration::ZERO }
    }

    pub fn status(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, body: body.into(), delay: Duration::ZERO }
    }

    pub fn delayed(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }
}

struct State {
    responder: Mutex<Responder>,
    requests: Mutex<Vec<Vec<u8>>>,
}

pub struct Stub {
    pub port: u16,
    state: Arc<State>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Stub {
    pub async fn start(responder: Responder) -> Stub {
        let state = Arc::new(State { responder: Mutex::new(responder), requests: Mutex::new(Vec::new()) });
        let s = state.clone();
        let app = Router::new().fallback(move |body: Bytes| {
            let s = s.clone();
            async move {
                let reply = {
                    s.requests.lock().expect("lock").push(body.to_vec());
                    (s.responder.lock().expect("lock"))(&body)
                };
                tokio::time::sleep(reply.delay).await;
                let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, [("content-type", "application/json")], reply.body).into_response()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind stub");
        let port = listener.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Stub { port, state, task: Some(task) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, responder: Responder) {
        *self.state.responder.lock().expect("lock") = responder;
    }

    /// Request bodies received so far.
    pub fn requests(&self) -> Vec<Vec<u8>> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// Takes the endpoint down: new connections are refused.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop();
    }
}
