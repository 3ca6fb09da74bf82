//! Issue 9, the high-availability deployments and the fleet message rate: moat replicas sharing
//! state through Redis Sentinel (bans survive a failover and follow the new master) and through
//! a Redis Cluster (bans and flapping across replicas), and a per-user PUBLISH rate that holds
//! across replicas. Real `redis-server` processes (master, replica, sentinel, three cluster
//! nodes), real moat binaries, one Mosquitto; all on loopback.

use std::time::{Duration, Instant};

use moat_e2e::fleet::{
    another, call, connect, connected, eventually, expect_kicked, metric, replica, PROPAGATION, WAIT,
};
use moat_e2e::http::request;
use moat_e2e::packets::{self, Version};
use moat_e2e::policy::{connect_with, password_yaml, PolicyDir, BCRYPT_HASH, BCRYPT_PASSWORD};
use moat_e2e::redis::{Cluster, Redis, SentinelSet};
use moat_e2e::{unique, Env, MoatOptions, RawClient, ANONYMOUS_AUTH};

async fn ban(admin: u16, id: &str) {
    let r =
        call(admin, "POST", "/api/v1/bans", Some(&format!(r#"{{"kind":"clientid","who":"{id}"}}"#))).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A ban made on A kicks the session on B within a second and B refuses the client before the
/// broker sees it.
async fn ban_propagates(env: &Env, a_admin: u16, b_port: u16, what: &str) {
    let id = unique("victim");
    let mut on_b = connected(env, b_port, Version::V5, &id).await;
    ban(a_admin, &id).await;
    let took = expect_kicked(&mut on_b, what).await;
    assert!(took < PROPAGATION, "{what}: kick took {took:?}");
    let (_c, code) = connect(env, b_port, Version::V5, &id).await;
    assert_eq!(code, Some(0x8A), "{what}: banned client admitted again");
    let sessions = env
        .tap
        .connections()
        .iter()
        .filter(|c| c.bytes.windows(id.len()).any(|w| w == id.as_bytes()))
        .count();
    assert_eq!(sessions, 1, "{what}: the refused CONNECT reached the broker");
}

#[tokio::test]
async fn sentinel_bans_follow_the_master_through_a_failover() {
    let set = SentinelSet::start().await;
    let dir = PolicyDir::new();
    let opts = replica(&dir, &set.config(), &unique("sentinel"), "    fail_mode: open\n", "");
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts).await;
    ban_propagates(&env, env.moat.admin_port, b.port, "before failover").await;

    // The master dies; the sentinel promotes the replica.
    let old = set.master.port;
    let mut master = set.master;
    master.stop();
    let promoted = eventually(Duration::from_secs(15), || async {
        set.sentinel.master_port(&set.master_name).await == Some(set.replica.port)
    })
    .await;
    assert!(promoted, "sentinel did not promote the replica (old master {old}):\n{}", set.sentinel.logs());

    // A new ban through A is stored on the new master and refused on B. A's first write may still
    // meet the dead master (it then asks the sentinel again), so retry a few times.
    let id = unique("after-failover");
    let mut on_b = connected(&env, b.port, Version::V5, &id).await;
    let stored = eventually(WAIT, || async {
        call(
            env.moat.admin_port,
            "POST",
            "/api/v1/bans",
            Some(&format!(r#"{{"kind":"clientid","who":"{id}"}}"#)),
        )
        .await
        .status
            == 201
    })
    .await;
    assert!(stored, "no ban could be made after the failover:\n{}", env.moat.logs());
    let closed = on_b.read_until_closed(Duration::from_secs(8)).await.expect("kicked on B after failover");
    assert_eq!(closed.disconnect_reason(), Some(0x98), "B did not kick after the failover:\n{}", b.logs());
    let (_c, code) = connect(&env, b.port, Version::V311, &id).await;
    assert_eq!(code, Some(5), "B admits a client banned after the failover");
    // The ban is on the new master, and the old bans survived there (replicated).
    let keys = moat_e2e::redis::cli(set.replica.port, &["ROLE"]).await;
    assert!(keys.starts_with("master"), "promoted node is not master: {keys}");
    // Once the failover settled, changes propagate within the usual second again.
    ban_propagates(&env, b.admin_port, env.moat.port, "after failover").await;
}

#[tokio::test]
async fn cluster_shares_bans_and_flapping_across_replicas() {
    let cluster = Cluster::start().await;
    let dir = PolicyDir::new();
    let flapping = "flapping:\n  max_count: 4\n  window: 60s\n  ban_time: 60s\n";
    let opts = replica(
        &dir,
        &cluster.config(),
        &unique("cluster"),
        "    max_connections_per_client_id: 1\n",
        flapping,
    );
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts).await;
    ban_propagates(&env, env.moat.admin_port, b.port, "cluster").await;

    // Flapping counted across replicas: four connects, two per replica, ban on the fourth.
    let id = unique("flapper");
    for port in [env.moat.port, b.port, env.moat.port] {
        let mut c = connected(&env, port, Version::V5, &id).await;
        c.send(&packets::disconnect(Version::V5)).await.expect("DISCONNECT");
        c.shutdown().await;
        // The per-client-id slot is given back in the background.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_x, code) = connect(&env, b.port, Version::V5, &id).await;
    assert_eq!(code, Some(0x8A), "the fourth connect crosses the fleet threshold");
    // B made the fleet ban; A learns it through the cluster's pub/sub.
    let listed = eventually(PROPAGATION, || async {
        let body = call(env.moat.admin_port, "GET", "/api/v1/bans?kind=clientid", None).await.body;
        body.contains(&id) && body.contains("flapping")
    })
    .await;
    assert!(listed, "replica A does not list the flapping ban made on B");
    let (_z, code) = connect(&env, env.moat.port, Version::V311, &id).await;
    assert_eq!(code, Some(5), "replica A admits the flapping client");

    // The fleet-wide cap per client id (a sorted set on its own slot) holds across replicas.
    let single = unique("single");
    let _first = connected(&env, env.moat.port, Version::V5, &single).await;
    let (_y, code) = connect(&env, b.port, Version::V5, &single).await;
    assert_eq!(code, Some(0x97), "second session of a capped client id admitted on B");
    let reached = env
        .tap
        .connections()
        .iter()
        .filter(|c| c.bytes.windows(single.len()).any(|w| w == single.as_bytes()))
        .count();
    assert_eq!(reached, 1, "the refused second session reached the broker");
}

/// Sends one QoS 0 PUBLISH on `topic` every `every` for `count` messages.
async fn paced(mut c: RawClient, topic: String, every: Duration, count: usize) -> RawClient {
    let mut tick = tokio::time::interval(every);
    for i in 0..count {
        tick.tick().await;
        c.send(&packets::publish(Version::V5, topic.as_bytes(), 0, false, 0, format!("{i}").as_bytes()))
            .await
            .expect("publish");
    }
    c
}

async fn alice(env: &Env, port: u16) -> RawClient {
    let mut c = RawClient::connect(port, env.tls()).await.expect("TLS connect");
    c.send(&connect_with(Version::V5, &unique("alice"), Some("alice"), Some(BCRYPT_PASSWORD.as_bytes())))
        .await
        .expect("CONNECT");
    let code = c.expect_packet(packets::CONNACK, WAIT).await.ok().and_then(|p| p.connack_code());
    assert_eq!(code, Some(0), "alice on {port}");
    c
}

fn received(env: &Env, prefix: &str) -> usize {
    env.sub.messages().iter().filter(|m| m.topic.starts_with(prefix)).count()
}

/// 10 messages/s with a burst of 5 for user alice across the fleet. Alone on one replica at
/// 9/s she is under it (everything arrives on time); on two replicas at 9/s each (18/s) she is
/// throttled: by the end of the 3 s of sending the broker has at most burst + 3 s × rate plus
/// the documented overshoot, and the rest arrives later (backpressure, not loss).
#[tokio::test]
async fn a_fleet_message_rate_per_user_holds_across_replicas() {
    const EVERY: Duration = Duration::from_millis(111);
    const COUNT: usize = 27;
    let redis = Redis::start().await;
    let dir = PolicyDir::new();
    let users = dir.write("users.yaml", &password_yaml(&[("alice", BCRYPT_HASH)]));
    let limits = "  fleet_limits:\n    messages_per_user: \"10/s, burst 5\"\n    flush_interval: 100ms\n";
    let mut opts = replica(&dir, &format!("    url: \"{}\"\n", redis.url()), &unique("rate"), "", "");
    opts.policy_yaml = opts.policy_yaml.map(|y| {
        format!(
            "{}{limits}",
            y.replace(
                ANONYMOUS_AUTH,
                &format!(
                    "authentication:\n  - name: users\n    type: password_file\n    path: \"{}\"\n",
                    users.display()
                )
            )
        )
    });
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts).await;

    // Alone: 27 messages at 9/s through replica A all reach the broker in time.
    let solo = unique("solo");
    let start = Instant::now();
    let a = paced(alice(&env, env.moat.port).await, format!("{solo}/a"), EVERY, COUNT).await;
    let all = eventually(Duration::from_millis(600), || async { received(&env, &solo) == COUNT }).await;
    assert!(
        all,
        "alone under the rate, only {} of {COUNT} arrived in {:?}",
        received(&env, &solo),
        start.elapsed()
    );
    drop(a);
    // Let the fleet bucket refill.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Both replicas at once: 54 messages in 3 s against 5 + 30 allowed.
    let both = unique("both");
    let (ca, cb) = (alice(&env, env.moat.port).await, alice(&env, b.port).await);
    let start = Instant::now();
    let (ta, tb) = (format!("{both}/a"), format!("{both}/b"));
    let (ca, cb) = tokio::join!(paced(ca, ta, EVERY, COUNT), paced(cb, tb, EVERY, COUNT));
    let sent_for = start.elapsed();
    let at_end = received(&env, &both);
    let allowed = 5.0 + 10.0 * sent_for.as_secs_f64();
    println!(
        "fleet rate: {at_end} of {} arrived while sending for {sent_for:?} (bucket allows {allowed:.0})",
        2 * COUNT
    );
    assert!(
        (at_end as f64) <= allowed + 8.0,
        "fleet rate not enforced: {at_end} arrived in {sent_for:?}, allowed {allowed:.0} (+8 overshoot)"
    );
    // Throttled, not dropped: everything arrives once the bucket refills.
    let all = eventually(WAIT, || async { received(&env, &both) == 2 * COUNT }).await;
    assert!(all, "throttled messages were lost: {} of {}", received(&env, &both), 2 * COUNT);
    drop((ca, cb));
}

/// Connection acceptance rate of the Sentinel and Cluster backends, the standalone Redis and the
/// embedded store: 200 sequential TLS connects each (CONNECT → CONNACK → DISCONNECT) with fleet
/// flapping counters and a per-client-id cap (four Redis round trips per connection).
#[tokio::test]
async fn acceptance_rate_sentinel_and_cluster_vs_standalone_and_embedded() {
    const N: usize = 200;
    let standalone = Redis::start().await;
    let set = SentinelSet::start().await;
    let cluster = Cluster::start().await;
    let dir = PolicyDir::new();
    let flapping = "flapping:\n  max_count: 100000\n  window: 60s\n  ban_time: 60s\n  ip_max_count: 100000\n";
    let cap = "    max_connections_per_client_id: 2\n";
    let single =
        replica(&dir, &format!("    url: \"{}\"\n", standalone.url()), &unique("bench"), cap, flapping);
    let env = Env::start_with(single.clone()).await;
    let sentinel = another(&env, replica(&dir, &set.config(), &unique("bench"), cap, flapping)).await;
    let clustered = another(&env, replica(&dir, &cluster.config(), &unique("bench"), cap, flapping)).await;
    let embedded = another(
        &env,
        MoatOptions { policy_yaml: Some(format!("{ANONYMOUS_AUTH}{flapping}")), ..single.clone() },
    )
    .await;
    let targets = [
        ("embedded", embedded.port),
        ("standalone", env.moat.port),
        ("sentinel", sentinel.port),
        ("cluster", clustered.port),
    ];
    let mut spent = [Duration::ZERO; 4];
    for i in 0..N {
        for (k, (name, port)) in targets.iter().enumerate() {
            let start = Instant::now();
            let mut c = connected(&env, *port, Version::V5, &format!("{name}-{i}")).await;
            c.send(&packets::disconnect(Version::V5)).await.expect("DISCONNECT");
            c.shutdown().await;
            spent[k] += start.elapsed();
        }
    }
    let rates: Vec<f64> = spent.iter().map(|d| N as f64 / d.as_secs_f64()).collect();
    for ((name, _), rate) in targets.iter().zip(&rates) {
        println!("{name}: {N} sequential TLS connects at {rate:.0}/s ({:.2} of embedded)", rate / rates[0]);
    }
    for (k, (name, _)) in targets.iter().enumerate().skip(1) {
        assert!(
            rates[k] / rates[0] > 0.3,
            "{name} cut connection acceptance to {:.2} of embedded",
            rates[k] / rates[0]
        );
    }
}

/// A cluster node killed: the cluster stops serving, moat keeps the last known bans, applies
/// fail_mode closed and says so (metric, readiness); the node back: moat recovers by itself and
/// bans propagate again.
#[tokio::test]
async fn cluster_outage_keeps_last_bans_and_recovers() {
    let mut cluster = Cluster::start().await;
    let dir = PolicyDir::new();
    let opts = replica(&dir, &cluster.config(), &unique("clout"), "    fail_mode: closed\n", "");
    let env = Env::start_with(opts.clone()).await;
    let b = another(&env, opts).await;
    let banned = unique("banned");
    ban(env.moat.admin_port, &banned).await;
    assert!(
        eventually(WAIT, || async {
            call(b.admin_port, "GET", "/api/v1/bans", None).await.body.contains(&banned)
        })
        .await
    );
    // Every node holds slots and there are no replicas: one node down stops the whole cluster.
    for n in &mut cluster.nodes {
        n.stop();
    }
    assert!(
        eventually(WAIT, || async {
            metric(b.admin_port, "moat_state_backend_up").await == Some(0.0)
                && request(b.admin_port, "GET", "/readyz", None, None).await.is_ok_and(|r| r.status == 503)
        })
        .await,
        "replica B did not notice the cluster outage"
    );
    let (_x, code) = connect(&env, b.port, Version::V5, &banned).await;
    assert_eq!(code, Some(0x8A), "last known ban not enforced during the outage");
    let (_y, code) = connect(&env, b.port, Version::V5, &unique("fresh")).await;
    assert_eq!(code, Some(0x88), "fail_mode closed admitted a client during the outage");
    // The nodes come back with their cluster configuration (but without data).
    for n in &mut cluster.nodes {
        n.restart().await;
    }
    assert!(
        eventually(Duration::from_secs(20), || async {
            request(b.admin_port, "GET", "/readyz", None, None).await.is_ok_and(|r| r.status == 200)
                && request(env.moat.admin_port, "GET", "/readyz", None, None)
                    .await
                    .is_ok_and(|r| r.status == 200)
        })
        .await,
        "replicas did not recover after the cluster came back:\n{}",
        b.logs()
    );
    // Bans propagate again (a new ban needs the cluster to accept writes).
    let again = eventually(WAIT, || async {
        let id = unique("after");
        let mut on_b = connected(&env, b.port, Version::V5, &id).await;
        if call(
            env.moat.admin_port,
            "POST",
            "/api/v1/bans",
            Some(&format!(r#"{{"kind":"clientid","who":"{id}"}}"#)),
        )
        .await
        .status
            != 201
        {
            return false;
        }
        on_b.read_until_closed(Duration::from_secs(2))
            .await
            .is_ok_and(|c| c.disconnect_reason() == Some(0x98))
    })
    .await;
    assert!(again, "bans do not propagate after the cluster recovered:\n{}", env.moat.logs());
}
