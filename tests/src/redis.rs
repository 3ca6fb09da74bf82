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

    pub fn binary() -> PathBuf {
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

pub const REDIS_CLI: &str = "/usr/bin/redis-cli";

/// Runs `redis-cli` against `port` (bounded) and returns its stdout.
pub async fn cli(port: u16, args: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new(REDIS_CLI);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args).kill_on_drop(true);
    match tokio::time::timeout(Duration::from_secs(10), cmd.output()).await {
        Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(Err(e)) => panic!("{REDIS_CLI}: {e}"),
        Err(_) => panic!("{REDIS_CLI} {args:?} did not finish within 10s"),
    }
}

/// A Redis Sentinel (`redis-server sentinel.conf --sentinel`) watching `master_name`.
pub struct Sentinel {
    pub port: u16,
    proc: Option<Proc>,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    /// Quorum 1, master declared down after 1 s, failover timeout 3 s: fast failovers on loopback.
    pub async fn start(master_name: &str, master_port: u16) -> Sentinel {
        let mut last = String::new();
        for _attempt in 0..4 {
            let dir = tempfile::Builder::new().prefix("moat-e2e-sentinel-").tempdir().unwrap();
            let port = net::free_port();
            let conf = dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {master_name} 127.0.0.1 {master_port} 1\n\
                     sentinel down-after-milliseconds {master_name} 1000\nsentinel failover-timeout {master_name} 3000\n\
                     sentinel parallel-syncs {master_name} 1\n",
                    dir.path().display()
                ),
            )
            .unwrap();
            let mut cmd = Command::new(Redis::binary());
            cmd.arg(&conf).arg("--sentinel");
            let mut proc = match Proc::spawn("sentinel", cmd, dir.path()) {
                Ok(p) => p,
                Err(e) => panic!("cannot start a sentinel: {e}"),
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if proc.try_exit().is_some() {
                    last = proc.logs();
                    break;
                }
                if proc.stdout().contains("+monitor master") && net::can_connect(port).await {
                    return Sentinel { port, proc: Some(proc), _dir: dir };
                }
                if tokio::time::Instant::now() >= deadline {
                    last = format!("not ready within 10s\n{}", proc.logs());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("sentinel failed to start:\n{last}");
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port of the master this sentinel currently names.
    pub async fn master_port(&self, master_name: &str) -> Option<u16> {
        let out = cli(self.port, &["SENTINEL", "get-master-addr-by-name", master_name]).await;
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }

    pub fn logs(&self) -> String {
        self.proc.as_ref().map(Proc::logs).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal(libc::SIGKILL);
        }
    }
}

/// A master with one replica and one sentinel, all on loopback.
pub struct SentinelSet {
    pub master_name: String,
    pub master: Redis,
    pub replica: Redis,
    pub sentinel: Sentinel,
}

impl SentinelSet {
    pub async fn start() -> SentinelSet {
        let master = Redis::start().await;
        let replica = Redis::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]).await;
        // The replica must be in sync before a failover can promote it.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cli(replica.port, &["INFO", "replication"]).await.contains("master_link_status:up") {
            assert!(tokio::time::Instant::now() < deadline, "replica did not sync within 10s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let master_name = "mymaster".to_string();
        let sentinel = Sentinel::start(&master_name, master.port).await;
        // Sentinel learns the replica from the master's INFO (every few seconds at first).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let out = cli(sentinel.port, &["SENTINEL", "replicas", &master_name]).await;
            if out.contains(&replica.port.to_string()) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "sentinel did not see the replica:\n{out}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        SentinelSet { master_name, master, replica, sentinel }
    }

    /// The `state.redis` lines that reach this set through its sentinel.
    pub fn config(&self) -> String {
        format!(
            "    sentinel:\n      master_name: {}\n      addresses: [\"{}\"]\n",
            self.master_name,
            self.sentinel.addr()
        )
    }
}

/// Three masters with `cluster-enabled yes`, joined with `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<Redis>,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(
                Redis::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes-{port}.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
                .await,
            );
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut args: Vec<&str> = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.push("--cluster-yes");
        let mut cmd = tokio::process::Command::new(REDIS_CLI);
        cmd.args(&args).kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(20), cmd.output())
            .await
            .expect("redis-cli --cluster create within 20s")
            .expect("redis-cli runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains("All 16384 slots covered"), "cluster create failed:\n{text}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        for n in &nodes {
            while !cli(n.port, &["CLUSTER", "INFO"]).await.contains("cluster_state:ok") {
                assert!(tokio::time::Instant::now() < deadline, "cluster not ok within 15s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Cluster { nodes }
    }

    /// The `state.redis` lines that reach this cluster through its nodes.
    pub fn config(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| format!("\"127.0.0.1:{}\"", n.port)).collect();
        format!("    cluster:\n      nodes: [{}]\n", nodes.join(", "))
    }
}
