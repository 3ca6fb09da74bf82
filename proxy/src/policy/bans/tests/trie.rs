use super::super::trie::PrefixTrie;

fn v4(a: u8, b: u8, c: u8, d: u8) -> u128 {
    u128::from(u32::from_be_bytes([a, b, c, d])) << 96
}

#[test]
fn longest_prefix_wins_and_filter_falls_back_to_shorter() {
    let mut t = PrefixTrie::new(32);
    assert_eq!(t.insert(v4(10, 0, 0, 0), 8, 1).expect("ok"), None);
    assert_eq!(t.insert(v4(10, 1, 0, 0), 16, 2).expect("ok"), None);
    assert_eq!(t.insert(v4(10, 1, 2, 0), 24, 3).expect("ok"), None);
    assert_eq!(t.longest_match(v4(10, 1, 2, 3), |_| true), Some(3));
    assert_eq!(t.longest_match(v4(10, 1, 9, 3), |_| true), Some(2));
    assert_eq!(t.longest_match(v4(10, 9, 9, 9), |_| true), Some(1));
    assert_eq!(t.longest_match(v4(11, 0, 0, 0), |_| true), None);
    assert_eq!(t.longest_match(v4(10, 1, 2, 3), |v| v != 3), Some(2));
    assert_eq!(t.longest_match(v4(10, 1, 2, 3), |v| v == 1), Some(1));
}

#[test]
fn insert_order_does_not_matter_and_splits_work() {
    let mut t = PrefixTrie::new(32);
    t.insert(v4(10, 1, 2, 0), 24, 3).expect("ok");
    t.insert(v4(10, 1, 3, 0), 24, 4).expect("ok");
    t.insert(v4(10, 0, 0, 0), 8, 1).expect("ok");
    t.insert(v4(10, 1, 0, 0), 16, 2).expect("ok");
    t.insert(v4(0, 0, 0, 0), 0, 0).expect("ok");
    assert_eq!(t.longest_match(v4(10, 1, 3, 1), |_| true), Some(4));
    assert_eq!(t.longest_match(v4(10, 1, 2, 1), |_| true), Some(3));
    assert_eq!(t.longest_match(v4(10, 1, 4, 1), |_| true), Some(2));
    assert_eq!(t.longest_match(v4(192, 168, 0, 1), |_| true), Some(0));
}

#[test]
fn reinsert_returns_previous_value_and_bounds_are_checked() {
    let mut t = PrefixTrie::new(32);
    t.insert(v4(10, 0, 0, 0), 8, 1).expect("ok");
    assert_eq!(t.insert(v4(10, 0, 0, 0), 8, 7).expect("ok"), Some(1));
    assert!(t.insert(0, 33, 1).is_err());
    let mut t6 = PrefixTrie::new(128);
    assert!(t6.insert(u128::MAX, 128, 5).is_ok());
    assert_eq!(t6.longest_match(u128::MAX, |_| true), Some(5));
    assert_eq!(t6.longest_match(u128::MAX - 1, |_| true), None);
}
