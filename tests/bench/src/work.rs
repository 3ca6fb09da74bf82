//! The four workloads. Every loop is bounded by a deadline and every I/O wait by a timeout;
//! I/O errors end a connection's loop and are counted, never panicked on.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, timeout, timeout_at, Instant};

use crate::mqtt::{self, Reader};
use crate::net::{self, Stream, Target};
use crate::procfs;

pub struct Cfg {
    pub run_id: String,
    pub duration: Duration,
    pub warmup: Duration,
    pub publishers: usize,
    pub rate: u32,
    pub latency_payload: usize,
    pub hs_concurrency: usize,
    pub idle_conns: usize,
    pub idle_open_concurrency: usize,
    pub idle_settle: Duration,
    pub idle_open_timeout: Duration,
    pub window: usize,
    pub inflight: usize,
    pub io_timeout: Duration,
    pub clk_tck: u64,
    pub epoch: Instant,
    /// The broker, whose CPU per message is reported for every target.
    pub broker_pid: Option<u32>,
}

impl Cfg {
    fn ns_since_epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }
    fn cpu_us(&self, ticks: u64) -> f64 {
        ticks as f64 * 1e6 / self.clk_tck as f64
    }
}

fn cpu(t: &Target) -> Option<u64> {
    t.pid.and_then(procfs::cpu_ticks)
}

fn cpu_per_op(cfg: &Cfg, before: Option<u64>, after: Option<u64>, ops: u64) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if ops > 0 => Some(cfg.cpu_us(a.saturating_sub(b)) / ops as f64),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// Subscriber (shared by throughput and latency)

#[derive(Default)]
struct SubOut {
    received: u64,
    bad: u64,
    hist: Option<Histogram<u64>>,
    error: Option<String>,
}

struct SubSpec {
    expect_len: usize,
    count: Arc<AtomicU64>,
    /// Throughput: each received message returns one permit of the end-to-end window.
    window: Option<Arc<Semaphore>>,
    /// Latency: record (now - stamp in payload) for stamps at or after this many ns since epoch.
    record_from_ns: Option<u64>,
    epoch: Instant,
    io_timeout: Duration,
    hard_deadline: Instant,
}

async fn run_subscriber(
    mut s: Stream,
    mut rd: Reader,
    spec: SubSpec,
    mut stop: watch::Receiver<bool>,
) -> SubOut {
    let mut out = SubOut::default();
    let mut hist = spec
        .record_from_ns
        .map(|_| Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds"));
    let mut acks = Vec::with_capacity(4096);
    'outer: loop {
        let mut n = 0u64;
        loop {
            match rd.next_frame() {
                Ok(Some((h, body))) => {
                    if h & 0xF0 != mqtt::PUBLISH {
                        continue;
                    }
                    match mqtt::parse_publish(h, &body) {
                        Ok(p) => {
                            n += 1;
                            if p.payload.len() != spec.expect_len {
                                out.bad += 1;
                            }
                            if p.qos == 1 {
                                mqtt::puback(&mut acks, p.packet_id);
                            }
                            if let (Some(from), Some(hist)) = (spec.record_from_ns, hist.as_mut()) {
                                if p.payload.len() >= 8 {
                                    let stamp =
                                        u64::from_le_bytes(p.payload[..8].try_into().expect("8 bytes"));
                                    if stamp >= from {
                                        let now = spec.epoch.elapsed().as_nanos() as u64;
                                        hist.saturating_record(now.saturating_sub(stamp).max(1));
                                    }
                                }
                            }
                        }
                        Err(_) => out.bad += 1,
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(format!("subscriber: {e}"));
                    break 'outer;
                }
            }
        }
        if n > 0 {
            out.received += n;
            spec.count.fetch_add(n, Relaxed);
            if let Some(w) = &spec.window {
                w.add_permits(n as usize);
            }
        }
        if !acks.is_empty() {
            if let Err(e) = net::write_all(&mut s, &acks, spec.io_timeout).await {
                out.error = Some(format!("subscriber PUBACK write: {e}"));
                break;
            }
            acks.clear();
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            r = rd.fill(&mut s) => match r {
                Ok(0) => { out.error = Some("subscriber: connection closed by server".into()); break }
                Err(e) => { out.error = Some(format!("subscriber read: {e}")); break }
                Ok(_) => {}
            },
            _ = stop.changed() => break,
            _ = sleep_until(spec.hard_deadline) => break,
        }
    }
    net::close(s).await;
    out.hist = hist;
    out
}

// ---------------------------------------------------------------------------------------
// Workload 1: throughput

pub struct TpOut {
    pub msgs_per_s: f64,
    pub cpu_us_per_msg: Option<f64>,
    pub broker_cpu_us_per_msg: Option<f64>,
    /// This process (all publishers + the subscriber).
    pub client_cpu_us_per_msg: Option<f64>,
    pub sent: u64,
    /// QoS 1: PUBACKs the publishers got.
    pub acked: u64,
    pub received: u64,
    pub bad: u64,
    pub notes: Vec<String>,
}

#[allow(clippy::too_many_arguments)]
async fn run_publisher(
    s: Stream,
    topic: String,
    qos: u8,
    payload: usize,
    window: Arc<Semaphore>,
    inflight_max: usize,
    sent: Arc<AtomicU64>,
    acked: Arc<AtomicU64>,
    end: Instant,
    io_timeout: Duration,
) -> Option<String> {
    let (mut r, mut w) = tokio::io::split(s);
    let inflight = Arc::new(Semaphore::new(inflight_max.max(1)));
    let max_batch = (64 * 1024 / (payload + 64)).clamp(1, 64);
    let writer = async {
        let mut buf = Vec::with_capacity(80 * 1024);
        let mut pid: u16 = 0;
        let mut err = None;
        'send: loop {
            let p = tokio::select! {
                p = window.acquire() => p,
                _ = sleep_until(end) => break,
            };
            let Ok(p) = p else { break };
            p.forget();
            if qos > 0 {
                let q = tokio::select! {
                    q = inflight.acquire() => q,
                    _ = sleep_until(end) => break,
                };
                let Ok(q) = q else { break };
                q.forget();
            }
            let mut n = 1;
            while n < max_batch {
                let Ok(p) = window.try_acquire() else { break };
                if qos > 0 {
                    match inflight.try_acquire() {
                        Ok(q) => q.forget(),
                        Err(_) => break, // `p` drops: the window permit goes back
                    }
                }
                p.forget();
                n += 1;
            }
            buf.clear();
            for _ in 0..n {
                pid = pid.wrapping_add(1).max(1);
                mqtt::publish(&mut buf, &topic, qos, pid, &[], payload);
            }
            if let Err(e) = net::write_all(&mut w, &buf, io_timeout).await {
                err = Some(format!("publisher write: {e}"));
                break 'send;
            }
            sent.fetch_add(n as u64, Relaxed);
            if Instant::now() >= end {
                break;
            }
        }
        // A well-behaved QoS 1 client: wait (bounded) for the outstanding PUBACKs before
        // DISCONNECT, so that `sent` vs `received` measures loss, not abandonment.
        if qos > 0 && err.is_none() {
            let limit = Instant::now() + Duration::from_secs(3);
            while inflight.available_permits() < inflight_max.max(1) && Instant::now() < limit {
                sleep(Duration::from_millis(5)).await;
            }
        }
        let _ = net::write_all(&mut w, &mqtt::DISCONNECT, Duration::from_secs(1)).await;
        let _ = timeout(Duration::from_secs(1), w.shutdown()).await;
        err
    };
    let reader = async {
        let mut rd = Reader::default();
        let hard = end + Duration::from_secs(6);
        loop {
            loop {
                match rd.next_frame() {
                    Ok(Some((h, _))) if h & 0xF0 == mqtt::PUBACK => {
                        inflight.add_permits(1);
                        acked.fetch_add(1, Relaxed);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            match timeout_at(hard, rd.fill(&mut r)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
    };
    let (err, ()) = tokio::join!(writer, reader);
    err
}

/// Deep enough that the pipeline is not round-trip bound through a proxy (16 MiB, at most
/// 50,000 messages: within the broker's max_queued_messages of 100,000).
fn auto_window(payload: usize) -> usize {
    (16 * 1024 * 1024 / (payload + 32)).clamp(256, 50_000)
}

pub async fn throughput(t: &Target, cfg: &Cfg, qos: u8, payload: usize) -> Result<TpOut> {
    let to = cfg.io_timeout;
    let tag = format!("{}-{}-tp{}q{}", cfg.run_id, t.key, payload, qos);
    let topic = format!("moat-bench/{tag}");
    let window_n = if cfg.window > 0 { cfg.window } else { auto_window(payload) };

    let (ss, srd) =
        net::open_subscriber(t, &format!("{tag}-sub"), &topic, qos, to).await.context("subscriber")?;
    let mut pubs = Vec::with_capacity(cfg.publishers);
    for i in 0..cfg.publishers {
        let (s, _rd) =
            net::open(t, &format!("{tag}-pub{i}"), to).await.with_context(|| format!("publisher {i}"))?;
        pubs.push(s);
    }

    let t0 = Instant::now();
    let measure_from = t0 + cfg.warmup;
    let end = measure_from + cfg.duration;
    let window = Arc::new(Semaphore::new(window_n));
    let count = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut sub_set = JoinSet::new();
    sub_set.spawn(run_subscriber(
        ss,
        srd,
        SubSpec {
            expect_len: payload,
            count: count.clone(),
            window: Some(window.clone()),
            record_from_ns: None,
            epoch: cfg.epoch,
            io_timeout: to,
            hard_deadline: end + Duration::from_secs(10),
        },
        stop_rx,
    ));
    let mut pub_set = JoinSet::new();
    for s in pubs {
        pub_set.spawn(run_publisher(
            s,
            topic.clone(),
            qos,
            payload,
            window.clone(),
            cfg.inflight,
            sent.clone(),
            acked.clone(),
            end,
            to,
        ));
    }

    sleep_until(measure_from).await;
    let bcpu = || cfg.broker_pid.and_then(procfs::cpu_ticks);
    let me = || procfs::cpu_ticks(std::process::id());
    let (c1, cpu1, b1, m1, w1) = (count.load(Relaxed), cpu(t), bcpu(), me(), Instant::now());
    sleep_until(end).await;
    let (c2, cpu2, b2, m2, w2) = (count.load(Relaxed), cpu(t), bcpu(), me(), Instant::now());

    let mut notes = Vec::new();
    let _ = timeout(to + Duration::from_secs(5), async {
        while let Some(r) = pub_set.join_next().await {
            if let Ok(Some(e)) = r {
                notes.push(e);
            }
        }
    })
    .await;
    pub_set.abort_all();
    // Let in-flight messages arrive so that `received` vs `sent` shows loss, not lag.
    let total_sent = sent.load(Relaxed);
    let drain = Instant::now() + Duration::from_secs(6);
    while count.load(Relaxed) < total_sent && Instant::now() < drain {
        sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_tx.send(true);
    let sub = timeout(Duration::from_secs(5), sub_set.join_next())
        .await
        .ok()
        .flatten()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    if let Some(e) = sub.error {
        notes.push(e);
    }
    let msgs = c2.saturating_sub(c1);
    let secs = (w2 - w1).as_secs_f64();
    if msgs == 0 {
        bail!("no message received in the measurement window ({})", notes.join("; "));
    }
    Ok(TpOut {
        msgs_per_s: msgs as f64 / secs,
        cpu_us_per_msg: cpu_per_op(cfg, cpu1, cpu2, msgs),
        broker_cpu_us_per_msg: cpu_per_op(cfg, b1, b2, msgs),
        client_cpu_us_per_msg: cpu_per_op(cfg, m1, m2, msgs),
        sent: total_sent,
        acked: acked.load(Relaxed),
        received: sub.received,
        bad: sub.bad,
        notes,
    })
}

// ---------------------------------------------------------------------------------------
// Workload 2: latency at a fixed rate

pub struct LatOut {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub samples: u64,
    pub sent: u64,
    pub received: u64,
}

pub async fn latency(t: &Target, cfg: &Cfg, qos: u8) -> Result<LatOut> {
    let to = cfg.io_timeout;
    let tag = format!("{}-{}-lat-q{}", cfg.run_id, t.key, qos);
    let topic = format!("moat-bench/{tag}");
    let payload = cfg.latency_payload.max(16);

    let (ss, srd) =
        net::open_subscriber(t, &format!("{tag}-sub"), &topic, qos, to).await.context("subscriber")?;
    let (ps, _) = net::open(t, &format!("{tag}-pub"), to).await.context("publisher")?;

    let t0 = Instant::now() + Duration::from_millis(20);
    let measure_from = t0 + cfg.warmup;
    let end = measure_from + cfg.duration;
    let count = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sub_set = JoinSet::new();
    sub_set.spawn(run_subscriber(
        ss,
        srd,
        SubSpec {
            expect_len: payload,
            count: count.clone(),
            window: None,
            record_from_ns: Some(cfg.ns_since_epoch(measure_from)),
            epoch: cfg.epoch,
            io_timeout: to,
            hard_deadline: end + Duration::from_secs(10),
        },
        stop_rx,
    ));

    let period = Duration::from_secs_f64(1.0 / cfg.rate.max(1) as f64);
    let (mut r, mut w) = tokio::io::split(ps);
    let mut sent = 0u64;
    let acked = AtomicU64::new(0);
    let writer = async {
        let mut buf = Vec::with_capacity(256);
        let mut i: u64 = 0;
        loop {
            let next = t0 + period.mul_f64(i as f64);
            if next >= end {
                break;
            }
            sleep_until(next).await;
            let stamp = cfg.epoch.elapsed().as_nanos() as u64;
            let mut head = [0u8; 16];
            head[..8].copy_from_slice(&stamp.to_le_bytes());
            head[8..].copy_from_slice(&i.to_le_bytes());
            buf.clear();
            mqtt::publish(&mut buf, &topic, qos, (i % 65535 + 1) as u16, &head, payload);
            if net::write_all(&mut w, &buf, to).await.is_err() {
                break;
            }
            sent += 1;
            i += 1;
        }
        if qos > 0 {
            // Bounded wait for the last PUBACKs: DISCONNECT only once nothing is in flight.
            let limit = Instant::now() + Duration::from_secs(2);
            while acked.load(Relaxed) < sent && Instant::now() < limit {
                sleep(Duration::from_millis(2)).await;
            }
        }
        let _ = net::write_all(&mut w, &mqtt::DISCONNECT, Duration::from_secs(1)).await;
    };
    let reader = async {
        let mut rd = Reader::default();
        let hard = end + Duration::from_secs(3);
        loop {
            while let Ok(Some((h, _))) = rd.next_frame() {
                if h & 0xF0 == mqtt::PUBACK {
                    acked.fetch_add(1, Relaxed);
                }
            }
            match timeout_at(hard, rd.fill(&mut r)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
    };
    tokio::join!(writer, reader);

    let drain = Instant::now() + Duration::from_secs(3);
    while count.load(Relaxed) < sent && Instant::now() < drain {
        sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let sub = timeout(Duration::from_secs(5), sub_set.join_next())
        .await
        .ok()
        .flatten()
        .and_then(|r| r.ok())
        .ok_or_else(|| anyhow!("subscriber did not finish"))?;
    let hist = sub.hist.ok_or_else(|| anyhow!("no histogram"))?;
    if hist.is_empty() {
        bail!("no latency sample ({})", sub.error.unwrap_or_default());
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(LatOut {
        p50_us: us(hist.value_at_quantile(0.50)),
        p99_us: us(hist.value_at_quantile(0.99)),
        p999_us: us(hist.value_at_quantile(0.999)),
        max_us: us(hist.max()),
        samples: hist.len(),
        sent,
        received: sub.received,
    })
}

// ---------------------------------------------------------------------------------------
// Workload 3: full handshakes per second

pub struct HsOut {
    /// Handshakes after which the server had not closed the connection 500 ms after DISCONNECT.
    pub no_close: u64,
    pub per_s: f64,
    pub cpu_us_per_hs: Option<f64>,
    pub ok: u64,
    pub errors: u64,
    pub last_error: Option<String>,
}

/// Ok(true): the server closed after DISCONNECT, Ok(false): it had not within 500 ms.
async fn one_handshake(t: &Target, client_id: &str, to: Duration) -> Result<bool> {
    let (mut s, mut rd) = net::open(t, client_id, to).await?;
    net::write_all(&mut s, &mqtt::DISCONNECT, to).await?;
    // Let the server side close first (DISCONNECT makes the broker close): the TIME_WAIT
    // then lands on the listening side instead of eating client ephemeral ports. Bounded.
    let closed = timeout(Duration::from_millis(500), async {
        loop {
            match rd.fill(&mut s).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok();
    Ok(closed)
}

/// Handshake loops; `resumed`: with the resuming TLS client, so every handshake but each
/// loop's first resumes a session.
pub async fn handshakes(t: &Target, cfg: &Cfg, resumed: bool) -> Result<HsOut> {
    let mut t = t.clone();
    if resumed {
        if let Some(tls) = t.tls.as_mut() {
            tls.connector = tls.resuming.clone();
        }
    }
    let t = &t;
    let to = cfg.io_timeout;
    let t0 = Instant::now();
    let measure_from = t0 + cfg.warmup;
    let end = measure_from + cfg.duration;
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let no_close = Arc::new(AtomicU64::new(0));
    let last_error: Arc<Mutex<Option<String>>> = Arc::default();
    let mut set = JoinSet::new();
    for wk in 0..cfg.hs_concurrency.max(1) {
        let (t, ok, errors, no_close, last_error) =
            (t.clone(), ok.clone(), errors.clone(), no_close.clone(), last_error.clone());
        let prefix = format!("{}-{}-hs{}", cfg.run_id, t.key, wk);
        set.spawn(async move {
            let mut i = 0u64;
            while Instant::now() < end {
                i += 1;
                match timeout(to + Duration::from_secs(2), one_handshake(&t, &format!("{prefix}-{i}"), to))
                    .await
                {
                    Ok(Ok(closed)) => {
                        ok.fetch_add(1, Relaxed);
                        if !closed {
                            no_close.fetch_add(1, Relaxed);
                        }
                    }
                    r => {
                        errors.fetch_add(1, Relaxed);
                        let msg = match r {
                            Ok(Err(e)) => format!("{e:#}"),
                            _ => "timed out".to_string(),
                        };
                        *last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
                        sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
    sleep_until(measure_from).await;
    let (c1, cpu1, w1) = (ok.load(Relaxed), cpu(t), Instant::now());
    sleep_until(end).await;
    let (c2, cpu2, w2) = (ok.load(Relaxed), cpu(t), Instant::now());
    let _ = timeout(to + Duration::from_secs(4), async { while set.join_next().await.is_some() {} }).await;
    set.abort_all();
    let n = c2.saturating_sub(c1);
    let last_error = last_error.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if n == 0 {
        bail!("no handshake completed ({})", last_error.unwrap_or_default());
    }
    Ok(HsOut {
        per_s: n as f64 / (w2 - w1).as_secs_f64(),
        cpu_us_per_hs: cpu_per_op(cfg, cpu1, cpu2, n),
        ok: ok.load(Relaxed),
        errors: errors.load(Relaxed),
        no_close: no_close.load(Relaxed),
        last_error,
    })
}

// ---------------------------------------------------------------------------------------
// Workload 4: resident memory per idle connection

pub struct IdleOut {
    pub opened: usize,
    pub failed: usize,
    pub rss_before_kib: u64,
    pub rss_held_kib: u64,
    pub rss_after_close_kib: Option<u64>,
    pub kib_per_conn: f64,
    pub open_secs: f64,
    pub last_error: Option<String>,
}

pub async fn idle(t: &Target, cfg: &Cfg) -> Result<IdleOut> {
    let pid = t.pid.ok_or_else(|| anyhow!("no pid given for {}: cannot read its RSS", t.label))?;
    let to = cfg.io_timeout;
    sleep(cfg.idle_settle).await;
    let rss0 = procfs::rss_kib(pid).ok_or_else(|| anyhow!("cannot read /proc/{pid}/status"))?;

    let started = Instant::now();
    let open_deadline = started + cfg.idle_open_timeout;
    let sem = Arc::new(Semaphore::new(cfg.idle_open_concurrency.max(1)));
    let mut set: JoinSet<Result<Stream>> = JoinSet::new();
    let mut held: Vec<Stream> = Vec::with_capacity(cfg.idle_conns);
    let mut failed = 0usize;
    let mut last_error = None;
    let mut absorb = |r: Result<Result<Stream>, tokio::task::JoinError>, held: &mut Vec<Stream>| match r {
        Ok(Ok(s)) => held.push(s),
        Ok(Err(e)) => {
            failed += 1;
            last_error = Some(format!("{e:#}"));
        }
        Err(e) => {
            failed += 1;
            last_error = Some(e.to_string());
        }
    };
    let opening = async {
        for i in 0..cfg.idle_conns {
            let permit = sem.clone().acquire_owned().await.expect("semaphore never closed");
            let t = t.clone();
            let id = format!("{}-{}-idle{}", cfg.run_id, t.key, i);
            set.spawn(async move {
                let r = net::open(&t, &id, to).await.map(|(s, _)| s);
                drop(permit);
                r
            });
            while let Some(r) = set.try_join_next() {
                absorb(r, &mut held);
            }
        }
        while let Some(r) = set.join_next().await {
            absorb(r, &mut held);
        }
    };
    let timed_out = timeout_at(open_deadline, opening).await.is_err();
    set.abort_all();
    let open_secs = started.elapsed().as_secs_f64();
    if timed_out {
        last_error = Some(format!("opening stopped by the {:?} limit", cfg.idle_open_timeout));
    }
    if held.is_empty() {
        bail!("no connection opened ({})", last_error.unwrap_or_default());
    }
    sleep(cfg.idle_settle).await;
    let rss1 = procfs::rss_kib(pid).ok_or_else(|| anyhow!("cannot read /proc/{pid}/status"))?;
    let opened = held.len();
    drop(held);
    sleep(cfg.idle_settle.max(Duration::from_millis(500))).await;
    let rss2 = procfs::rss_kib(pid);
    Ok(IdleOut {
        opened,
        failed,
        rss_before_kib: rss0,
        rss_held_kib: rss1,
        rss_after_close_kib: rss2,
        kib_per_conn: (rss1 as f64 - rss0 as f64) / opened as f64,
        open_secs,
        last_error,
    })
}
