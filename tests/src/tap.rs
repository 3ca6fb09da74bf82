//! A recording TCP relay between moat and the broker: moat's upstream points at the tap,
//! the tap forwards to mosquitto and records every byte moat sent upstream, per connection.
//! This catches forwarded bytes the broker itself would reject (and so never deliver).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::packets::{self, RawPacket};

#[derive(Default)]
struct Conn {
    to_broker: Vec<u8>,
    open: bool,
}

#[derive(Default)]
struct State {
    conns: Vec<Arc<Mutex<Conn>>>,
}

/// One upstream connection as seen by the tap.
#[derive(Clone, Debug)]
pub struct UpstreamConn {
    /// Bytes moat sent towards the broker.
    pub bytes: Vec<u8>,
    /// Whether moat still holds the connection open.
    pub open: bool,
}

impl UpstreamConn {
    pub fn packets(&self) -> Vec<RawPacket> {
        packets::parse_all(&self.bytes).0
    }

    pub fn packet_types(&self) -> Vec<&'static str> {
        self.packets().iter().map(|p| packets::type_name(p.packet_type())).collect()
    }
}

pub struct Tap {
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Tap {
    /// Listens on a free loopback port and relays each connection to 127.0.0.1:`broker_port`.
    pub async fn start(broker_port: u16) -> Tap {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let conn = Arc::new(Mutex::new(Conn { to_broker: Vec::new(), open: true }));
                st.lock().unwrap().conns.push(conn.clone());
                tokio::spawn(relay(inbound, broker_port, conn));
            }
        });
        Tap { port, state, task }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn connections(&self) -> Vec<UpstreamConn> {
        self.state
            .lock()
            .unwrap()
            .conns
            .iter()
            .map(|c| {
                let c = c.lock().unwrap();
                UpstreamConn { bytes: c.to_broker.clone(), open: c.open }
            })
            .collect()
    }

    /// All packets moat sent upstream, over all connections.
    pub fn all_packets(&self) -> Vec<RawPacket> {
        self.connections().iter().flat_map(|c| c.packets()).collect()
    }

    /// Waits (bounded) until moat closed every upstream connection; true if it did.
    pub async fn wait_all_closed(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.connections().iter().all(|c| !c.open) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until at least `n` upstream connections were closed by moat.
    pub async fn wait_closed_count(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.connections().iter().filter(|c| !c.open).count() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until at least `n` upstream connections were opened.
    pub async fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.connections().len() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Human-readable summary of what went upstream.
    pub fn summary(&self) -> Vec<String> {
        self.connections()
            .iter()
            .map(|c| {
                let (pkts, rest) = packets::parse_all(&c.bytes);
                format!(
                    "[{}] {:?}{}",
                    if c.open { "open" } else { "closed" },
                    pkts.iter().map(|p| p.describe()).collect::<Vec<_>>(),
                    if rest.is_empty() {
                        String::new()
                    } else {
                        format!(" + {} unparsed bytes {:02x?}", rest.len(), &rest[..rest.len().min(16)])
                    }
                )
            })
            .collect()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(inbound: TcpStream, broker_port: u16, conn: Arc<Mutex<Conn>>) {
    let outbound = match TcpStream::connect(("127.0.0.1", broker_port)).await {
        Ok(s) => s,
        Err(_) => {
            conn.lock().unwrap().open = false;
            return;
        }
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();
    let rec = conn.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match in_r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    rec.lock().unwrap().to_broker.extend_from_slice(&buf[..n]);
                    if out_w.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        rec.lock().unwrap().open = false;
        let _ = out_w.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
        let _ = in_w.shutdown().await;
    };
    tokio::join!(up, down);
    conn.lock().unwrap().open = false;
}
