//! LiveBans over a shared store: writes go through the store and the local mirror; a resync that
//! brings nothing new does not make sessions re-check; a failed write changes nothing.

use std::sync::{Arc, Mutex};

use super::ban;
use crate::policy::bans::{Ban, BanKind, BoxFuture, LiveBanError, LiveBans, SharedBanError, SharedBanStore};
use crate::policy::live::Generation;

#[derive(Default)]
struct Fake {
    bans: Mutex<Vec<Ban>>,
    down: Mutex<bool>,
}

impl SharedBanStore for Arc<Fake> {
    fn put(&self, b: Ban) -> BoxFuture<Result<(), SharedBanError>> {
        let me = self.clone();
        Box::pin(async move {
            if *me.down.lock().unwrap() {
                return Err(SharedBanError("down".into()));
            }
            let mut l = me.bans.lock().unwrap();
            l.retain(|x| !(x.kind == b.kind && x.who == b.who));
            l.push(b);
            Ok(())
        })
    }
    fn delete(&self, kind: BanKind, who: String) -> BoxFuture<Result<bool, SharedBanError>> {
        let me = self.clone();
        Box::pin(async move {
            let mut l = me.bans.lock().unwrap();
            let n = l.len();
            l.retain(|x| !(x.kind == kind && x.who == who));
            Ok(l.len() != n)
        })
    }
    fn clear(&self) -> BoxFuture<Result<usize, SharedBanError>> {
        let me = self.clone();
        Box::pin(async move { Ok(std::mem::take(&mut *me.bans.lock().unwrap()).len()) })
    }
}

fn setup() -> (Arc<Fake>, LiveBans, Generation) {
    let fake = Arc::new(Fake::default());
    let generation = Generation::default();
    let live = LiveBans::new_shared(
        vec![ban(BanKind::Username, "from-file")],
        Arc::new(fake.clone()),
        generation.clone(),
    )
    .expect("build");
    (fake, live, generation)
}

#[tokio::test]
async fn writes_go_through_the_store_and_apply_at_once() {
    let (fake, live, generation) = setup();
    assert!(live.has_store() && live.is_shared());
    let g0 = generation.current();
    live.add_any(ban(BanKind::ClientId, "evil")).await.expect("add");
    assert_eq!(fake.bans.lock().unwrap().len(), 1);
    assert!(live.current().check_client("evil", None, 0).is_some());
    assert!(generation.current() > g0, "live sessions were not told");
    assert_eq!(live.list().len(), 2);
    assert!(live.remove_any(BanKind::ClientId, "evil").await.expect("remove"));
    assert!(live.current().check_client("evil", None, 0).is_none());
    assert!(!live.remove_any(BanKind::ClientId, "evil").await.expect("remove"));
    // The file ban is untouched by a clear.
    live.add_any(ban(BanKind::ClientId, "x")).await.expect("add");
    assert_eq!(live.clear_any().await.expect("clear"), 1);
    assert!(live.current().check_client("", Some("from-file"), 0).is_some());
}

#[tokio::test]
async fn a_failed_write_changes_nothing() {
    let (fake, live, generation) = setup();
    *fake.down.lock().unwrap() = true;
    let g0 = generation.current();
    let err = live.add_any(ban(BanKind::ClientId, "evil")).await.expect_err("store down");
    assert!(matches!(err, LiveBanError::Shared(_)), "{err}");
    assert!(live.current().check_client("evil", None, 0).is_none());
    assert_eq!(generation.current(), g0);
    // Invalid bans are refused before the store is asked.
    *fake.down.lock().unwrap() = false;
    assert!(live.add_any(ban(BanKind::IpAddress, "not-an-ip")).await.is_err());
    assert!(fake.bans.lock().unwrap().is_empty());
}

#[test]
fn resync_bumps_only_on_change_and_keeps_the_last_list_on_error() {
    let (_fake, live, generation) = setup();
    let list = vec![ban(BanKind::ClientId, "b"), ban(BanKind::ClientId, "a")];
    assert!(live.replace_shared(list.clone()).expect("replace"));
    let g = generation.current();
    // Same bans in another order: nothing to do, sessions are not disturbed.
    let mut reordered = list.clone();
    reordered.reverse();
    assert!(!live.replace_shared(reordered).expect("replace"));
    assert_eq!(generation.current(), g);
    // A list the set cannot take keeps the last known one in force.
    let bad = vec![ban(BanKind::ClientIdRe, "(")];
    assert!(live.replace_shared(bad).is_err());
    assert!(live.current().check_client("a", None, 0).is_some());
    assert!(live.replace_shared(Vec::new()).expect("replace"));
    assert!(live.current().check_client("a", None, 0).is_none());
}
