//! moat-bench: the same Mosquitto broker measured (a) directly, (b) through HAProxy
//! terminating TLS, (c) through moat, in one run. `run.sh` next to this crate starts the
//! broker and proxies; this binary only drives load and reads /proc of the given PIDs.

mod mqtt;
mod net;
mod pki;
mod procfs;
mod report;
mod work;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use report::{Kind, Report, Row};
use tokio::time::Instant;

#[derive(Parser)]
#[command(name = "moat-bench", about = "Direct broker vs HAProxy TLS vs moat TLS, one run, one broker")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a throwaway CA + server cert/key (and HAProxy's combined.pem) into DIR.
    GenPki { dir: PathBuf },
    /// Print N distinct free TCP ports on 127.0.0.1, one per line.
    FreePorts { n: usize },
    /// Run the workloads against the targets given.
    Run(Box<RunArgs>),
}

#[derive(clap::Args)]
struct RunArgs {
    /// (a) the broker itself, plaintext.
    #[arg(long)]
    direct: Option<SocketAddr>,
    /// Broker PID: memory/CPU of (a).
    #[arg(long)]
    broker_pid: Option<u32>,
    /// (b) HAProxy TLS listener.
    #[arg(long)]
    haproxy: Option<SocketAddr>,
    #[arg(long)]
    haproxy_pid: Option<u32>,
    /// (c) moat TLS listener.
    #[arg(long)]
    moat: Option<SocketAddr>,
    #[arg(long)]
    moat_pid: Option<u32>,
    /// CA that signed the proxies' server certificate.
    #[arg(long)]
    ca: Option<PathBuf>,
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Client key exchange groups: x25519 (same for both proxies) | default (rustls' own).
    #[arg(long, default_value = "x25519")]
    kx: String,
    /// 1 s per workload (0.25 s warm-up), 500 idle connections.
    #[arg(long)]
    quick: bool,
    /// Seconds measured per workload and target [5; quick 1].
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of warm-up before each measurement [1; quick 0.25].
    #[arg(long)]
    warmup: Option<f64>,
    /// Rounds of the handshake / throughput / latency workloads, targets interleaved in each;
    /// the report shows medians [3; quick 1]. The idle workload runs once.
    #[arg(long)]
    rounds: Option<usize>,
    /// Idle connections held per target [8000; quick 500].
    #[arg(long)]
    idle_conns: Option<usize>,
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Messages/s of the latency workload.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    #[arg(long, default_value_t = 64)]
    latency_payload: usize,
    /// Concurrent handshake loops.
    #[arg(long, default_value_t = 16)]
    hs_concurrency: usize,
    /// Concurrent opens while building the idle set.
    #[arg(long, default_value_t = 64)]
    idle_open_concurrency: usize,
    /// End-to-end window of unreceived messages in the throughput workload (0 = auto by size).
    #[arg(long, default_value_t = 0)]
    window: usize,
    /// Per-publisher un-PUBACKed QoS 1 messages.
    #[arg(long, default_value_t = 100)]
    inflight: usize,
    /// Seconds allowed for any single connect / handshake / read / write.
    #[arg(long, default_value_t = 10.0)]
    io_timeout: f64,
    /// Clock ticks per second of /proc/PID/stat (getconf CLK_TCK).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
    /// Comma-separated subset of: idle,handshake,resumed,throughput,latency.
    #[arg(long, value_delimiter = ',', default_value = "idle,handshake,resumed,throughput,latency")]
    workloads: Vec<String>,
    /// Also write the markdown report here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Markdown to put above the tables (environment description written by run.sh).
    #[arg(long)]
    preamble: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::GenPki { dir } => pki::generate(&dir),
        Cmd::FreePorts { n } => {
            let ls: Vec<_> =
                (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
            for l in &ls {
                println!("{}", l.local_addr()?.port());
            }
            Ok(())
        }
        Cmd::Run(a) => tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(run(*a)),
    }
}

fn row(name: impl Into<String>, kind: Kind) -> Row {
    Row { name: name.into(), kind, vals: Default::default() }
}

fn idx(t: &net::Target) -> usize {
    match t.key {
        "a" => 0,
        "b" => 1,
        _ => 2,
    }
}

/// Runs one workload on one target under a hard time limit.
async fn bounded<T>(limit: Duration, f: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => bail!("workload exceeded its {:?} limit", limit),
    }
}

/// 1-minute load average: the machine is shared, so say how busy it was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn err_string(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

async fn run(a: RunArgs) -> Result<()> {
    let quick = a.quick;
    let duration = Duration::from_secs_f64(a.duration.unwrap_or(if quick { 1.0 } else { 5.0 }));
    let warmup = Duration::from_secs_f64(a.warmup.unwrap_or(if quick { 0.25 } else { 1.0 }));
    let idle_conns = a.idle_conns.unwrap_or(if quick { 500 } else { 8000 });
    let rounds = a.rounds.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let run_id = format!("mb{}", std::process::id());
    let cfg = work::Cfg {
        run_id,
        duration,
        warmup,
        publishers: a.publishers.max(1),
        rate: a.rate,
        latency_payload: a.latency_payload,
        hs_concurrency: a.hs_concurrency,
        idle_conns,
        idle_open_concurrency: a.idle_open_concurrency,
        idle_settle: Duration::from_millis(if quick { 300 } else { 1000 }),
        idle_open_timeout: Duration::from_secs(if quick { 30 } else { 180 }),
        window: a.window,
        inflight: a.inflight,
        io_timeout: Duration::from_secs_f64(a.io_timeout),
        clk_tck: a.clk_tck.max(1),
        epoch: Instant::now(),
        broker_pid: a.broker_pid,
    };

    let mut targets = Vec::new();
    if let Some(addr) = a.direct {
        targets.push(net::Target { key: "a", label: "direct", addr, tls: None, pid: a.broker_pid });
    }
    let tls = match (&a.ca, a.haproxy.is_some() || a.moat.is_some()) {
        (Some(ca), true) => Some(net::client_tls(ca, &a.server_name, &a.kx)?),
        (None, true) => bail!("--ca is required for the TLS targets"),
        _ => None,
    };
    if let Some(addr) = a.haproxy {
        targets.push(net::Target { key: "b", label: "HAProxy", addr, tls: tls.clone(), pid: a.haproxy_pid });
    }
    if let Some(addr) = a.moat {
        targets.push(net::Target { key: "c", label: "moat", addr, tls: tls.clone(), pid: a.moat_pid });
    }
    if targets.is_empty() {
        bail!("no target: give at least one of --direct, --haproxy, --moat");
    }
    let wl = |w: &str| a.workloads.iter().any(|x| x == w);
    let slack = Duration::from_secs(40);
    let mut rep = Report { headline: Vec::new(), detail: Vec::new(), notes: Vec::new() };
    let started = Instant::now();
    let load_start = loadavg();
    for t in targets.iter().filter(|t| t.tls.is_some()) {
        match net::probe_tls(t, cfg.io_timeout).await {
            Ok(p) => rep.notes.push(format!("TLS negotiated with {}: {p}", t.label)),
            Err(e) => rep.notes.push(format!("TLS probe of {} failed: {}", t.label, err_string(&e))),
        }
    }

    // Idle memory first: later workloads leave freed heap behind that new connections
    // would reuse, hiding their true cost. It runs once; the others run `rounds` times,
    // targets interleaved within each round, and the tables show medians.
    if wl("idle") {
        let mut h = row(
            format!("Idle TLS connection memory, KiB/conn ({idle_conns} held; (a): broker RSS, plaintext)"),
            Kind::Cost,
        );
        let mut opened = row("Idle: connections opened and held", Kind::Cost);
        let mut held = row("Idle: RSS while held, MiB", Kind::Cost);
        let mut after = row("Idle: RSS 1 s after closing them all, MiB", Kind::Cost);
        let mut orate = row("Idle: opening rate while building the set, conn/s", Kind::Rate);
        for t in &targets {
            eprintln!(
                "[{:>5.1}s] idle connections: {} ({} conns)",
                started.elapsed().as_secs_f64(),
                t.label,
                idle_conns
            );
            let limit = cfg.idle_open_timeout + Duration::from_secs(30);
            let i = idx(t);
            match bounded(limit, work::idle(t, &cfg)).await {
                Ok(r) => {
                    eprintln!(
                        "         {} opened, {} failed, RSS {} -> {} KiB, {:.1} KiB/conn",
                        r.opened, r.failed, r.rss_before_kib, r.rss_held_kib, r.kib_per_conn
                    );
                    h.vals[i].push(Some(r.kib_per_conn));
                    opened.vals[i].push(Some(r.opened as f64));
                    held.vals[i].push(Some(r.rss_held_kib as f64 / 1024.0));
                    after.vals[i].push(r.rss_after_close_kib.map(|k| k as f64 / 1024.0));
                    orate.vals[i].push(Some(r.opened as f64 / r.open_secs));
                    if r.failed > 0 {
                        rep.notes.push(format!(
                            "idle ({}): {} of {} connections failed to open; last error: {}",
                            t.label,
                            r.failed,
                            idle_conns,
                            r.last_error.unwrap_or_default()
                        ));
                    }
                }
                Err(e) => {
                    eprintln!("         FAILED: {}", err_string(&e));
                    h.vals[i].error = Some(err_string(&e));
                }
            }
        }
        rep.headline.push(h);
        rep.detail.extend([opened, held, after, orate]);
    }

    let round_tag = |r: usize| {
        if rounds > 1 {
            format!(" (round {}/{rounds})", r + 1)
        } else {
            String::new()
        }
    };

    for (workload, resumed) in [("handshake", false), ("resumed", true)] {
        if !wl(workload) {
            continue;
        }
        let (title, cost) = if resumed {
            (
                "Resumed handshakes/s (as above, TLS session resumed; (a): no TLS)",
                "CPU µs per resumed handshake",
            )
        } else {
            (
                "Full handshakes/s (TCP + TLS + CONNECT/CONNACK + close; (a): no TLS)",
                "CPU µs per handshake (measured process)",
            )
        };
        let mut h = row(title, Kind::Rate);
        let mut c = row(cost, Kind::Cost);
        if resumed {
            for t in targets.iter().filter(|t| t.tls.is_some()) {
                match net::probe_resumption(t, cfg.io_timeout).await {
                    Ok(true) => {}
                    Ok(false) => {
                        rep.notes.push(format!("resumed handshakes ({}): the server did not resume", t.label))
                    }
                    Err(e) => {
                        rep.notes.push(format!("resumed handshakes ({}): probe failed: {e:#}", t.label))
                    }
                }
            }
        }
        for round in 0..rounds {
            for t in &targets {
                eprintln!(
                    "[{:>5.1}s] {}: {}{}",
                    started.elapsed().as_secs_f64(),
                    workload,
                    t.label,
                    round_tag(round)
                );
                let i = idx(t);
                match bounded(duration + warmup + slack, work::handshakes(t, &cfg, resumed)).await {
                    Ok(r) => {
                        eprintln!("         {:.0}/s ({} ok, {} errors)", r.per_s, r.ok, r.errors);
                        h.vals[i].push(Some(r.per_s));
                        c.vals[i].push(r.cpu_us_per_hs);
                        if r.no_close > 0 {
                            rep.notes.push(format!(
                                "{workload} ({}): after {} of {} DISCONNECTs the server had not closed the connection within 500 ms",
                                t.label, r.no_close, r.ok
                            ));
                        }
                        if r.errors > 0 {
                            rep.notes.push(format!(
                                "{workload} ({}): {} errors besides {} successes; last: {}",
                                t.label,
                                r.errors,
                                r.ok,
                                r.last_error.unwrap_or_default()
                            ));
                        }
                    }
                    Err(e) => {
                        eprintln!("         FAILED: {}", err_string(&e));
                        h.vals[i].error = Some(err_string(&e));
                    }
                }
            }
        }
        rep.headline.push(h);
        rep.detail.push(c);
    }

    if wl("throughput") {
        for (qos, size) in [(0u8, 64usize), (0, 4096), (1, 64), (1, 4096)] {
            let sz = if size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{size} B") };
            let mut h = row(format!("Throughput QoS {qos}, {sz}, {}→1, msg/s", cfg.publishers), Kind::Rate);
            let mut c = row(format!("CPU µs per message, QoS {qos}, {sz}"), Kind::Cost);
            let mut bc = row(format!("Broker CPU µs per message, QoS {qos}, {sz}"), Kind::Cost);
            let mut cc = row(format!("Client (moat-bench) CPU µs per message, QoS {qos}, {sz}"), Kind::Cost);
            for round in 0..rounds {
                for t in &targets {
                    eprintln!(
                        "[{:>5.1}s] throughput QoS {qos} {sz}: {}{}",
                        started.elapsed().as_secs_f64(),
                        t.label,
                        round_tag(round)
                    );
                    let i = idx(t);
                    match bounded(duration + warmup + slack, work::throughput(t, &cfg, qos, size)).await {
                        Ok(r) => {
                            let extra = if r.notes.is_empty() {
                                String::new()
                            } else {
                                format!("; {}", r.notes.join("; "))
                            };
                            eprintln!(
                                "         {:.0} msg/s ({} sent, {} acked, {} received{})",
                                r.msgs_per_s, r.sent, r.acked, r.received, extra
                            );
                            h.vals[i].push(Some(r.msgs_per_s));
                            c.vals[i].push(r.cpu_us_per_msg);
                            bc.vals[i].push(r.broker_cpu_us_per_msg);
                            cc.vals[i].push(r.client_cpu_us_per_msg);
                            if r.received < r.sent || r.bad > 0 || !r.notes.is_empty() {
                                rep.notes.push(format!(
                                    "throughput QoS {qos} {sz} ({}): sent {}, PUBACKed {}, received {}, malformed {}{}",
                                    t.label, r.sent, r.acked, r.received, r.bad, extra
                                ));
                            }
                        }
                        Err(e) => {
                            eprintln!("         FAILED: {}", err_string(&e));
                            h.vals[i].error = Some(err_string(&e));
                        }
                    }
                }
            }
            rep.headline.push(h);
            rep.detail.extend([c, bc, cc]);
        }
    }

    if wl("latency") {
        for qos in [0u8, 1] {
            let mut p50 = row(format!("Latency QoS {qos} p50 at {}/s, µs", cfg.rate), Kind::Latency);
            let mut p99 = row(format!("Latency QoS {qos} p99 at {}/s, µs", cfg.rate), Kind::Latency);
            let mut p999 = row(format!("Latency QoS {qos} p99.9, µs"), Kind::Latency);
            let mut max = row(format!("Latency QoS {qos} max, µs"), Kind::Latency);
            for round in 0..rounds {
                for t in &targets {
                    eprintln!(
                        "[{:>5.1}s] latency QoS {qos}: {}{}",
                        started.elapsed().as_secs_f64(),
                        t.label,
                        round_tag(round)
                    );
                    let i = idx(t);
                    match bounded(duration + warmup + slack, work::latency(t, &cfg, qos)).await {
                        Ok(r) => {
                            eprintln!(
                                "         p50 {:.0} µs, p99 {:.0} µs ({} samples, {} sent, {} received)",
                                r.p50_us, r.p99_us, r.samples, r.sent, r.received
                            );
                            p50.vals[i].push(Some(r.p50_us));
                            p99.vals[i].push(Some(r.p99_us));
                            p999.vals[i].push(Some(r.p999_us));
                            max.vals[i].push(Some(r.max_us));
                            if r.received < r.sent {
                                rep.notes.push(format!(
                                    "latency QoS {qos} ({}): sent {}, received {}",
                                    t.label, r.sent, r.received
                                ));
                            }
                        }
                        Err(e) => {
                            eprintln!("         FAILED: {}", err_string(&e));
                            p50.vals[i].error = Some(err_string(&e));
                        }
                    }
                }
            }
            rep.headline.extend([p50, p99]);
            rep.detail.extend([p999, max]);
        }
    }

    let mut preamble = String::new();
    if let Some(p) = &a.preamble {
        preamble = std::fs::read_to_string(p).unwrap_or_default();
    }
    preamble.push_str(&format!(
        "\nParameters: {} s measured + {} s warm-up per workload and target, {} round(s), medians shown; {} publishers; latency {} msg/s of {} B; \
         {} handshake loops; {} idle connections; client TLS kx {}; wall time {:.0} s; load average {} at start, {} at end.\n",
        duration.as_secs_f64(),
        warmup.as_secs_f64(),
        rounds,
        cfg.publishers,
        cfg.rate,
        cfg.latency_payload.max(16),
        cfg.hs_concurrency,
        idle_conns,
        a.kx,
        started.elapsed().as_secs_f64(),
        load_start,
        loadavg(),
    ));
    let md = rep.markdown(&preamble);
    println!("{md}");
    if let Some(out) = &a.out {
        std::fs::write(out, &md)?;
    }
    Ok(())
}
