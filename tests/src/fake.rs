//! A scripted fake broker for upstream-misbehaviour tests: for each connection it reads the
//! CONNECT, then writes the scripted bytes (e.g. a CONNACK followed by a broken packet),
//! then records whatever else moat sends until either side closes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::packets::{self, RawPacket};

/// What the fake broker does after reading CONNECT.
#[derive(Clone, Debug)]
pub struct Script {
    /// Written right after the CONNECT was read.
    pub reply: Vec<u8>,
    /// Close the connection right after writing `reply`.
    pub close_after_reply: bool,
}

pub struct FakeBroker {
    pub port: u16,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl FakeBroker {
    pub async fn start(script: Script) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                let idx = {
                    let mut r = rec.lock().unwrap();
                    r.push(Vec::new());
                    r.len() - 1
                };
                let rec = rec.clone();
                let script = script.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut replied = false;
                    loop {
                        let n = match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => n,
                            _ => return,
                        };
                        let have = {
                            let mut r = rec.lock().unwrap();
                            r[idx].extend_from_slice(&buf[..n]);
                            r[idx].clone()
                        };
                        if !replied && matches!(packets::parse_one(&have), Ok(Some(_))) {
                            replied = true;
                            if s.write_all(&script.reply).await.is_err() {
                                return;
                            }
                            if script.close_after_reply {
                                let _ = s.shutdown().await;
                                return;
                            }
                        }
                    }
                });
            }
        });
        FakeBroker { port, received, task }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Packets moat sent, per connection.
    pub fn received(&self) -> Vec<Vec<RawPacket>> {
        self.received.lock().unwrap().iter().map(|b| packets::parse_all(b).0).collect()
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}
