//! A real `redis-server` (Debian package) on a private loopback port, without persistence, that a
//! test can stop and start again on the same port to simulate an outage.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::net;
use crate::procs::Proc;

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

pub struct Redis {
    pub port: u16,
    /// Extra `redis-server` arguments (e.g. `--requirepass`), kept for restarts.
    args: Vec<String>,
    proc: Option<Proc>,
    dir: tempfile::TempDir,
}

impl Redis {
    pub async fn start() -> Redis {
        Self::start_with(&[]).await
    }

    pub async fn start_with(args: &[&str]) -> Redis {
        let mut dir = tempfile::Builder::new().prefix("moat-e2e-redis-").tempdir().unwrap();
        let mut last = String::new();
        for _attempt in 0..4 {
            let port = net::free_port();
            let mut r = Redis { port, args: args.iter().map(|a| a.to_string()).collect(), proc: None, dir };
            match r.spawn().await {
                Ok(()) => return r,
                Err(e) => {
                    last = e;
                    dir = r.take_dir();
                }
            }
        }
        panic!("redis-server failed to start:\n{last}");
    }

    fn take_dir(self) -> tempfile::TempDir {
        self.dir
    }

    fn binary() -> PathBuf {
        let p = PathBuf::from(REDIS_SERVER);
        assert!(
            p.exists(),
            "{REDIS_SERVER} missing: install the Debian package redis-server (tests/run.sh does)"
        );
        p
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let mut cmd = Command::new(Self::binary());
        cmd.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--dir", &self.dir.path().display().to_string(), "--protected-mode", "yes"])
        .args(self.args.iter().map(|a| a.replace("{port}", &self.port.to_string())));
        let mut proc = Proc::spawn("redis", cmd, self.dir.path()).map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if proc.try_exit().is_some() {
                return Err(proc.logs());
            }
            if proc.stdout().contains("Ready to accept connections") && net::can_connect(self.port).await {
                self.proc = Some(proc);
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("not ready within 10s\n{}", proc.logs()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (an outage: no clean shutdown, no data kept).
    pub fn stop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal(libc::SIGKILL);
            drop(p);
        }
    }

    /// Starts it again on the same port (empty).
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await.unwrap_or_else(|e| panic!("redis-server did not restart: {e}"));
    }

    /// Readiness is checked by TCP connect, so with TLS pass `--port 0 --tls-port {port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}
