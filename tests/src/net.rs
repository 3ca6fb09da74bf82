//! Loopback ports and TCP readiness.

use std::time::Duration;

/// A currently free loopback port (bound then released; callers retry on a lost race).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A loopback port that refuses connections for as long as this value lives: the socket is
/// bound but never listens, so no other test process can take the port meanwhile.
pub struct ClosedPort {
    pub port: u16,
    socket: tokio::net::TcpSocket,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind("127.0.0.1:0".parse().unwrap()).expect("bind 127.0.0.1:0");
        let port = socket.local_addr().unwrap().port();
        ClosedPort { port, socket }
    }

    /// Starts listening on the reserved port (the "broker comes back" case).
    pub fn listen(self) -> tokio::net::TcpListener {
        self.socket.listen(64).expect("listen on reserved port")
    }
}

impl Default for ClosedPort {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether a TCP connection to 127.0.0.1:`port` succeeds within 1 s.
pub async fn can_connect(port: u16) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(("127.0.0.1", port)))
            .await,
        Ok(Ok(_))
    )
}
