//! The forward path does not allocate per packet in steady state: a client streams QoS 0 PUBLISH
//! packets through an in-process moat (with an ACL) to a real Mosquitto, and a counting global allocator shows
//! how many heap allocations the whole process (moat, tokio) made per forwarded packet.
//!
//! The client runs on a plain thread with pre-encoded bytes so it allocates nothing itself. The
//! listener is plaintext (loopback) to measure moat's own code: rustls allocates a buffer per TLS
//! record it writes, which is the TLS library's cost, not the relay's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mosquitto(dir: &Path, port: u16) -> KillOnDrop {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(&conf, format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"))
        .expect("write mosquitto.conf");
    let bin = if Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto must be installed (tests/run.sh installs it)");
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    KillOnDrop(child)
}

/// A v3.1.1 QoS 0 PUBLISH of `payload_len` bytes to `t/x`.
fn publish_bytes(payload_len: usize) -> Vec<u8> {
    let remaining = 2 + 3 + payload_len;
    assert!(remaining < 128 * 128);
    let mut p = vec![0x30];
    if remaining < 128 {
        p.push(remaining as u8);
    } else {
        p.push((remaining % 128) as u8 | 0x80);
        p.push((remaining / 128) as u8);
    }
    p.extend_from_slice(&[0x00, 0x03, b't', b'/', b'x']);
    p.extend(std::iter::repeat_n(0xAB, payload_len));
    p
}

/// Sends `batch` (many PUBLISH packets) then a PINGREQ, and waits for the PINGRESP: the broker
/// answers in order, so every PUBLISH has gone through moat by then.
fn send_and_sync(stream: &mut TcpStream, batch: &[u8]) {
    stream.write_all(batch).expect("write publishes");
    stream.write_all(&[0xC0, 0x00]).expect("write pingreq");
    let mut resp = [0u8; 2];
    stream.read_exact(&mut resp).expect("read pingresp");
    assert_eq!(resp, [0xD0, 0x00], "expected PINGRESP");
}

#[test]
fn forward_path_does_not_allocate_per_publish() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker_port = free_port();
    let _broker = start_mosquitto(dir.path(), broker_port);
    let listen_port = free_port();
    let admin_port = free_port();
    let yaml = format!(
        "listeners:\n  - name: plain\n    bind: \"127.0.0.1:{listen_port}\"\n    plaintext: true\n\
         upstream:\n  address: \"127.0.0.1:{broker_port}\"\nadmin:\n  bind: \"127.0.0.1:{admin_port}\"\n\
         authentication:\n  - name: anon\n    type: anonymous\nauthorization:\n  acl: acl.yaml\n"
    );
    // The ACL runs on every PUBLISH: its check must not allocate either.
    std::fs::write(
        dir.path().join("acl.yaml"),
        "rules:\n  - permission: deny\n    who: all\n    action: publish\n    topics: [\"secret/#\"]\n\
         \x20 - permission: allow\n    who: all\n    action: all\n    topics: [\"t/${clientid}/#\", \"t/#\"]\n",
    )
    .expect("write acl");
    let config = moat::config::from_str(&yaml, &dir.path().join("moat.yaml")).expect("config");

    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("rt");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.block_on(moat::server::Server::bind(config)).expect("bind");
    let handle = runtime.spawn(server.serve(async {
        let _ = stop_rx.await;
    }));

    let mut client = TcpStream::connect(("127.0.0.1", listen_port)).expect("connect to moat");
    client.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    client.set_nodelay(true).expect("nodelay");
    // CONNECT v3.1.1, clean session, keep-alive 60, client id "alloc".
    client
        .write_all(&[
            0x10, 17, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x05, b'a', b'l',
            b'l', b'o', b'c',
        ])
        .expect("write connect");
    let mut connack = [0u8; 4];
    client.read_exact(&mut connack).expect("read connack");
    assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");

    const PER_BATCH: usize = 2_000;
    for payload_len in [64usize, 4096] {
        let one = publish_bytes(payload_len);
        let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * PER_BATCH).collect();
        // Warm-up: buffers reach their working size, lazily created metrics handles exist.
        for _ in 0..3 {
            send_and_sync(&mut client, &batch);
        }
        let rounds = 10;
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..rounds {
            send_and_sync(&mut client, &batch);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        let packets = (rounds * (PER_BATCH + 1)) as f64;
        let per_packet = allocations as f64 / packets;
        eprintln!("{payload_len} B payload: {allocations} allocations for {packets} forwarded packets ({per_packet:.4}/packet)");
        // Per-batch costs (a wake-up, a timer) may allocate a little; per-packet costs may not.
        assert!(
            per_packet < 0.01,
            "{payload_len} B: {allocations} allocations for {packets} packets ({per_packet:.4} per packet)"
        );
    }
    let _ = stop_tx.send(());
    let _ = runtime.block_on(handle);
}
