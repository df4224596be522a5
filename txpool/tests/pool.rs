//! Pool behaviour: pending and queued sets, promotion, limits and eviction, the block
//! builder's order, block updates, re-injection, batch admission.

mod common;

use alloy_primitives::{Address, Bytes, TxHash, U256};
use chain_primitives::InMemoryState;
use chain_txpool::{PoolConfig, PoolError, PoolStatus, TxPool};
use common::*;
use std::sync::Arc;
use tokio::sync::broadcast::error::TryRecvError;

fn drain(rx: &mut tokio::sync::broadcast::Receiver<TxHash>) -> Vec<TxHash> {
    let mut hashes = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(hash) => hashes.push(hash),
            Err(TryRecvError::Empty) => return hashes,
            Err(err) => panic!("{err:?}"),
        }
    }
}

fn status(pending: usize, queued: usize) -> PoolStatus {
    PoolStatus { pending, queued }
}

#[test]
fn nonce_gap_queues_and_filling_it_promotes() {
    let key = Key::new(1);
    let state = funded(&[&key], ETH_100);
    let pool = pool();
    let mut rx = pool.subscribe();
    let h0 = pool
        .add_raw(key.transfer(0, 10 * GWEI, GWEI), &state)
        .unwrap();
    let h2 = pool
        .add_raw(key.transfer(2, 10 * GWEI, GWEI), &state)
        .unwrap();
    let h3 = pool
        .add_raw(key.transfer(3, 10 * GWEI, GWEI), &state)
        .unwrap();
    assert_eq!(pool.status(), status(1, 2));
    assert_eq!(pool.pending_nonce(&key.address), Some(1));
    assert_eq!(
        drain(&mut rx),
        vec![h0],
        "queued transactions are not announced"
    );
    let content = pool.content();
    assert_eq!(
        content.pending[&key.address]
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![0]
    );
    assert_eq!(
        content.queued[&key.address]
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![2, 3]
    );

    let h1 = pool
        .add_raw(key.transfer(1, 10 * GWEI, GWEI), &state)
        .unwrap();
    assert_eq!(pool.status(), status(4, 0));
    assert_eq!(pool.pending_nonce(&key.address), Some(4));
    assert_eq!(drain(&mut rx), vec![h1, h2, h3]);
    assert_eq!(best_order(&pool, GWEI as u64).len(), 4);
    pool.check_invariants().unwrap();
}

#[test]
fn per_sender_slots_and_queue() {
    let key = Key::new(1);
    let mut state = funded(&[&key], ETH_100);
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.account_slots = 4;
    config.account_queue = 2;
    let pool = pool_with(config);
    for nonce in 0..6 {
        pool.add_raw(key.transfer(nonce, 10 * GWEI, GWEI), &state)
            .unwrap();
    }
    // Four executable slots; the next two nonces wait although contiguous.
    assert_eq!(pool.status(), status(4, 2));
    assert_eq!(
        pool.add_raw(key.transfer(6, 10 * GWEI, GWEI), &state),
        Err(PoolError::AccountLimitExceeded { pooled: 6 })
    );
    assert_eq!(
        pool.add_raw(key.transfer(20, 10 * GWEI, GWEI), &state),
        Err(PoolError::AccountLimitExceeded { pooled: 6 })
    );
    // Replacing a queued transaction takes no new slot.
    pool.add_raw(key.transfer(5, 20 * GWEI, 2 * GWEI), &state)
        .unwrap();

    // A block includes nonces 0 and 1: the waiting two move up.
    let mut rx = pool.subscribe();
    set_account(&mut state, &key, 2, ETH_100);
    let update = pool.on_new_block(&[key.address], &state, GWEI as u64);
    assert_eq!((update.removed, update.promoted, update.evicted), (2, 2, 0));
    assert_eq!(drain(&mut rx).len(), 2);
    assert_eq!(pool.status(), status(4, 0));
    pool.add_raw(key.transfer(6, 10 * GWEI, GWEI), &state)
        .unwrap();
    assert_eq!(pool.status(), status(4, 1));
    pool.check_invariants().unwrap();
}

/// Config with room for three pending and two queued transactions in all.
fn small_pool() -> TxPool {
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.global_slots = 3;
    config.global_queue = 2;
    pool_with(config)
}

#[test]
fn full_pending_set_evicts_the_cheapest_and_never_for_a_cheaper_one() {
    let keys: Vec<Key> = (0..6).map(Key::new).collect();
    let state = funded(&keys.iter().collect::<Vec<_>>(), ETH_100);
    let pool = small_pool();
    let fee = 100 * GWEI;
    let a = pool
        .add_raw(keys[0].transfer(0, fee, GWEI), &state)
        .unwrap();
    let b = pool
        .add_raw(keys[1].transfer(0, fee, 2 * GWEI), &state)
        .unwrap();
    let c = pool
        .add_raw(keys[2].transfer(0, fee, 3 * GWEI), &state)
        .unwrap();
    assert_eq!(pool.status(), status(3, 0));

    // Equal to the cheapest, or below it: refused, nothing evicted.
    assert_eq!(
        pool.add_raw(keys[3].transfer(0, fee, GWEI), &state),
        Err(PoolError::Underpriced)
    );
    assert_eq!(
        pool.add_raw(keys[3].transfer(0, fee, GWEI / 2), &state),
        Err(PoolError::Underpriced)
    );
    assert!(pool.contains(&a) && pool.contains(&b) && pool.contains(&c));

    // Paying more than the cheapest evicts exactly the cheapest.
    let d = pool
        .add_raw(keys[3].transfer(0, fee, 5 * GWEI), &state)
        .unwrap();
    assert!(!pool.contains(&a));
    assert!(pool.contains(&b) && pool.contains(&c) && pool.contains(&d));
    assert_eq!(pool.status(), status(3, 0));

    // The sender's own next nonce competes with the other senders' tails.
    let d1 = pool
        .add_raw(keys[3].transfer(1, fee, 10 * GWEI), &state)
        .unwrap();
    assert!(!pool.contains(&b));
    assert!(pool.contains(&c) && pool.contains(&d) && pool.contains(&d1));
    pool.check_invariants().unwrap();
}

#[test]
fn full_queue_evicts_queued_transactions_and_leaves_pending_ones() {
    let keys: Vec<Key> = (0..6).map(Key::new).collect();
    let state = funded(&keys.iter().collect::<Vec<_>>(), ETH_100);
    let pool = small_pool();
    let fee = 100 * GWEI;
    // Three cheap pending transactions fill the pending set.
    let pending: Vec<TxHash> = (0..3)
        .map(|i| pool.add_raw(keys[i].transfer(0, fee, 1), &state).unwrap())
        .collect();
    // Two queued ones (nonce gaps) fill the queue.
    let e = pool
        .add_raw(keys[3].transfer(5, fee, GWEI), &state)
        .unwrap();
    let f = pool
        .add_raw(keys[4].transfer(5, fee, 2 * GWEI), &state)
        .unwrap();
    assert_eq!(pool.status(), status(3, 2));
    // A cheaper queued transaction is refused...
    assert_eq!(
        pool.add_raw(keys[5].transfer(5, fee, GWEI / 2), &state),
        Err(PoolError::Underpriced)
    );
    // ...a dearer one evicts the cheapest queued one, although pending ones pay less.
    let g = pool
        .add_raw(keys[5].transfer(5, fee, 3 * GWEI), &state)
        .unwrap();
    assert!(!pool.contains(&e));
    assert!(pool.contains(&f) && pool.contains(&g));
    assert!(pending.iter().all(|hash| pool.contains(hash)));
    assert_eq!(pool.status(), status(3, 2));
    pool.check_invariants().unwrap();
}

#[test]
fn full_set_holding_only_the_senders_own_transactions_is_full() {
    let key = Key::new(1);
    let state = funded(&[&key], ETH_100);
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.global_queue = 1;
    let pool = pool_with(config);
    pool.add_raw(key.transfer(5, 10 * GWEI, GWEI), &state)
        .unwrap();
    assert_eq!(
        pool.add_raw(key.transfer(7, 10 * GWEI, 5 * GWEI), &state),
        Err(PoolError::PoolFull)
    );
}

#[test]
fn eviction_ranks_by_effective_tip_at_the_current_base_fee() {
    let keys: Vec<Key> = (0..3).map(Key::new).collect();
    let state = funded(&keys.iter().collect::<Vec<_>>(), ETH_100);
    let run = |base_fee: u64| {
        let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
        config.global_slots = 2;
        let pool = TxPool::new(config);
        pool.set_base_fee(GWEI as u64);
        // p: low cap, high tip; q: high cap, lower tip; the newcomer tips 1.8 gwei.
        let p = pool
            .add_raw(keys[0].transfer(0, 3 * GWEI, 2 * GWEI), &state)
            .unwrap();
        let q = pool
            .add_raw(keys[1].transfer(0, 100 * GWEI, 3 * GWEI / 2), &state)
            .unwrap();
        pool.set_base_fee(base_fee);
        pool.add_raw(keys[2].transfer(0, 100 * GWEI, 18 * GWEI / 10), &state)
            .unwrap();
        (pool.contains(&p), pool.contains(&q))
    };
    // Base fee 1 gwei: p earns 2 gwei, q 1.5 gwei: q goes.
    assert_eq!(run(GWEI as u64), (true, false));
    // Base fee 2 gwei: p earns 1 gwei, q 1.5 gwei: p goes.
    assert_eq!(run(2 * GWEI as u64), (false, true));
}

#[test]
fn best_transactions_orders_by_tip_across_senders_and_by_nonce_within() {
    let [a, b, c] = [Key::new(1), Key::new(2), Key::new(3)];
    let state = funded(&[&a, &b, &c], ETH_100);
    let pool = pool();
    let fee = 100 * GWEI;
    for (key, nonce, tip) in [
        (&a, 0, 5),
        (&a, 1, 1),
        (&a, 2, 9),
        (&b, 0, 3),
        (&b, 1, 4),
        (&c, 0, 2),
    ] {
        pool.add_raw(key.transfer(nonce, fee, tip * GWEI), &state)
            .unwrap();
    }
    let expected = vec![
        (a.address, 0),
        (b.address, 0),
        (b.address, 1),
        (c.address, 0),
        (a.address, 1),
        (a.address, 2),
    ];
    assert_eq!(best_order(&pool, GWEI as u64), expected);

    // Equal tips: first come, first served.
    let [d, e] = [Key::new(4), Key::new(5)];
    let state = funded(&[&d, &e], ETH_100);
    let pool = self::pool();
    pool.add_raw(e.transfer(0, fee, GWEI), &state).unwrap();
    pool.add_raw(d.transfer(0, fee, GWEI), &state).unwrap();
    assert_eq!(
        best_order(&pool, GWEI as u64),
        vec![(e.address, 0), (d.address, 0)]
    );

    // Legacy transactions' tip is gas price minus base fee.
    let state = funded(&[&a, &b], ETH_100);
    let pool = self::pool();
    pool.add_raw(a.legacy(0, 3 * GWEI, Some(CHAIN_ID)), &state)
        .unwrap();
    pool.add_raw(b.transfer(0, fee, 3 * GWEI / 2), &state)
        .unwrap();
    // At base fee 1 gwei: legacy earns 2, the other 1.5. At 2 gwei: legacy 1, the other 1.5.
    assert_eq!(
        best_order(&pool, GWEI as u64),
        vec![(a.address, 0), (b.address, 0)]
    );
    assert_eq!(
        best_order(&pool, 2 * GWEI as u64),
        vec![(b.address, 0), (a.address, 0)]
    );
}

#[test]
fn best_transactions_skips_senders_below_the_base_fee_and_invalid_senders() {
    let [a, b] = [Key::new(1), Key::new(2)];
    let state = funded(&[&a, &b], ETH_100);
    let pool = pool();
    // a's first transaction caps at 2 gwei, its second pays well but must come after.
    pool.add_raw(a.transfer(0, 2 * GWEI, GWEI), &state).unwrap();
    pool.add_raw(a.transfer(1, 100 * GWEI, 50 * GWEI), &state)
        .unwrap();
    pool.add_raw(b.transfer(0, 100 * GWEI, 2 * GWEI), &state)
        .unwrap();
    pool.add_raw(b.transfer(1, 100 * GWEI, 2 * GWEI), &state)
        .unwrap();
    assert_eq!(
        best_order(&pool, 3 * GWEI as u64),
        vec![(b.address, 0), (b.address, 1)]
    );

    let mut best = pool.best_transactions(GWEI as u64);
    let first = best.next().unwrap();
    assert_eq!(first.sender(), b.address);
    best.mark_invalid(&b.address);
    let rest: Vec<(Address, u64)> = best.map(|tx| (tx.sender(), tx.nonce())).collect();
    assert_eq!(rest, vec![(a.address, 0), (a.address, 1)]);
}

#[test]
fn best_transactions_is_fast_for_many_transactions() {
    let keys: Vec<Key> = (0..200).map(Key::new).collect();
    let state = funded(&keys.iter().collect::<Vec<_>>(), ETH_100);
    let pool = TxPool::new(PoolConfig::load_test(CHAIN_ID, 30_000_000));
    let raws: Vec<Bytes> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, key)| {
            (0..60).map(move |nonce| key.transfer(nonce, 100 * GWEI, (i as u128 % 7 + 1) * GWEI))
        })
        .collect();
    assert!(pool.add_raw_batch(raws, &state).iter().all(Result::is_ok));
    assert_eq!(pool.status(), status(12_000, 0));
    let started = std::time::Instant::now();
    let order: Vec<_> = pool.best_transactions(0).collect();
    let elapsed = started.elapsed();
    assert_eq!(order.len(), 12_000);
    // Every sender's transactions come out in nonce order.
    let mut next_nonce = std::collections::HashMap::new();
    for tx in &order {
        let expected = next_nonce.entry(tx.sender()).or_insert(0u64);
        assert_eq!(tx.nonce(), *expected);
        *expected += 1;
    }
    // Generous even for an unoptimised test build on a shared machine.
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn new_block_removes_included_transactions_and_drops_unaffordable_ones() {
    let [a, b, c] = [Key::new(1), Key::new(2), Key::new(3)];
    let mut state = funded(&[&a, &b, &c], ETH_100);
    let pool = pool();
    let a_hashes: Vec<TxHash> = (0..4)
        .map(|n| {
            pool.add_raw(a.transfer(n, 10 * GWEI, GWEI), &state)
                .unwrap()
        })
        .collect();
    // b: a queued transaction worth 5 ETH.
    let five_eth = U256::from(5_000_000_000_000_000_000u128);
    let b_big = pool
        .add_raw(b.eip1559(TxSpec::new(3).value(five_eth)), &state)
        .unwrap();
    // c: capped at 2 gwei.
    let c_low = pool.add_raw(c.transfer(0, 2 * GWEI, GWEI), &state).unwrap();

    set_account(&mut state, &a, 2, ETH_100 / 2);
    set_account(&mut state, &b, 0, 1_000_000_000_000_000_000);
    let update = pool.on_new_block(
        &[a.address, b.address, Address::repeat_byte(9)],
        &state,
        5 * GWEI as u64,
    );
    assert_eq!(update.removed, 3);
    assert!(!pool.contains(&a_hashes[0]) && !pool.contains(&a_hashes[1]));
    assert!(pool.contains(&a_hashes[2]) && pool.contains(&a_hashes[3]));
    assert_eq!(pool.pending_nonce(&a.address), Some(4));
    assert!(!pool.contains(&b_big), "5 ETH from 1 ETH can never pay");
    // Below the new base fee: kept, but not offered at that base fee.
    assert!(pool.contains(&c_low));
    assert_eq!(pool.base_fee(), 5 * GWEI as u64);
    let senders: Vec<Address> = best_order(&pool, 5 * GWEI as u64)
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert!(!senders.contains(&c.address));
    assert!(best_order(&pool, GWEI as u64).contains(&(c.address, 0)));
    // New transactions below the base fee are refused.
    assert!(matches!(
        pool.add_raw(c.transfer(1, 4 * GWEI, GWEI), &state),
        Err(PoolError::FeeCapBelowBaseFee { .. })
    ));
    pool.check_invariants().unwrap();
}

#[test]
fn balance_drop_demotes_what_it_no_longer_covers() {
    let key = Key::new(1);
    let max_fee = 10 * GWEI;
    let cost = 21_000 * max_fee;
    let mut state = funded(&[&key], 3 * cost);
    let pool = pool();
    for nonce in 0..3 {
        pool.add_raw(key.transfer(nonce, max_fee, GWEI), &state)
            .unwrap();
    }
    assert_eq!(pool.status(), status(3, 0));
    set_account(&mut state, &key, 0, 2 * cost);
    pool.on_new_block(&[key.address], &state, GWEI as u64);
    // The third is affordable alone, so it stays, but waits.
    assert_eq!(pool.status(), status(2, 1));
    set_account(&mut state, &key, 0, 3 * cost);
    pool.on_new_block(&[key.address], &state, GWEI as u64);
    assert_eq!(pool.status(), status(3, 0));
    pool.check_invariants().unwrap();
}

#[test]
fn admission_reads_the_latest_state() {
    // A block included the sender's transaction but the node has not told the pool yet: the
    // reader passed with the next transaction is newer, and the pool takes it.
    let key = Key::new(1);
    let mut state = funded(&[&key], ETH_100);
    let pool = pool();
    let h0 = pool
        .add_raw(key.transfer(0, 10 * GWEI, GWEI), &state)
        .unwrap();
    set_account(&mut state, &key, 1, ETH_100);
    pool.add_raw(key.transfer(1, 10 * GWEI, GWEI), &state)
        .unwrap();
    assert!(!pool.contains(&h0));
    assert_eq!(pool.status(), status(1, 0));
    // An older reader does not move the nonce back.
    let old = funded(&[&key], ETH_100);
    pool.add_raw(key.transfer(2, 10 * GWEI, GWEI), &old)
        .unwrap();
    assert_eq!(pool.pending_nonce(&key.address), Some(3));
    pool.check_invariants().unwrap();
}

#[test]
fn reorg_reinjects_abandoned_transactions() {
    let key = Key::new(1);
    let mut state = funded(&[&key], ETH_100);
    let pool = pool();
    let hashes: Vec<TxHash> = (0..3)
        .map(|n| {
            pool.add_raw(key.transfer(n, 10 * GWEI, GWEI), &state)
                .unwrap()
        })
        .collect();
    let txs: Vec<_> = hashes.iter().map(|h| pool.get(h).unwrap()).collect();

    // A block includes nonces 0 and 1.
    set_account(&mut state, &key, 2, ETH_100);
    pool.on_new_block(&[key.address], &state, GWEI as u64);
    assert_eq!(pool.status(), status(1, 0));

    // It is reorged out; the new head includes only nonce 0.
    let mut rx = pool.subscribe();
    let update = pool.reinject(txs[..2].to_vec());
    assert_eq!(update.promoted, 2);
    assert_eq!(drain(&mut rx), hashes[..2].to_vec());
    assert_eq!(pool.status(), status(3, 0));
    assert_eq!(pool.pending_nonce(&key.address), Some(3));
    pool.check_invariants().unwrap();

    set_account(&mut state, &key, 1, ETH_100);
    let update = pool.on_new_block(&[], &state, GWEI as u64);
    assert_eq!(
        update.removed, 1,
        "the re-injected sender is re-read without being named"
    );
    assert!(!pool.contains(&hashes[0]));
    assert_eq!(pool.status(), status(2, 0));
    pool.check_invariants().unwrap();

    // Re-injecting what is pooled, or a nonce re-sent since, changes nothing.
    let resent = pool
        .add_raw(key.transfer(3, 10 * GWEI, GWEI), &state)
        .unwrap();
    let scratch = self::pool();
    let alternative = scratch
        .add_raw(key.transfer(3, 20 * GWEI, 2 * GWEI), &state)
        .unwrap();
    let alternative = scratch.get(&alternative).unwrap();
    let update = pool.reinject(vec![txs[1].clone(), alternative]);
    assert_eq!(update, Default::default());
    assert!(pool.contains(&resent));
    pool.check_invariants().unwrap();
}

#[test]
fn reinjection_into_an_unknown_sender() {
    let key = Key::new(1);
    let state = funded(&[&key], ETH_100);
    let source = pool();
    let txs: Vec<_> = (5..8)
        .map(|n| {
            let mut spec_state = InMemoryState::new();
            set_account(&mut spec_state, &key, 5, ETH_100);
            let hash = source
                .add_raw(key.transfer(n, 10 * GWEI, GWEI), &spec_state)
                .unwrap();
            source.get(&hash).unwrap()
        })
        .collect();
    let pool = pool();
    pool.reinject(txs.into_iter().rev().collect());
    assert_eq!(pool.status(), status(3, 0));
    assert_eq!(pool.pending_nonce(&key.address), Some(8));
    // The real account is at nonce 0: after the block update they wait for nonces 0..5.
    pool.on_new_block(&[], &state, GWEI as u64);
    assert_eq!(pool.status(), status(0, 3));
    pool.check_invariants().unwrap();
}

#[test]
fn remove_demotes_later_nonces() {
    let key = Key::new(1);
    let state = funded(&[&key], ETH_100);
    let pool = pool();
    let hashes: Vec<TxHash> = (0..3)
        .map(|n| {
            pool.add_raw(key.transfer(n, 10 * GWEI, GWEI), &state)
                .unwrap()
        })
        .collect();
    let removed = pool.remove(&hashes[1]).unwrap();
    assert_eq!(removed.nonce(), 1);
    assert_eq!(pool.status(), status(1, 1));
    assert_eq!(pool.pending_nonce(&key.address), Some(1));
    assert!(pool.remove(&hashes[1]).is_none());
    pool.check_invariants().unwrap();
}

#[test]
fn removal_that_overfills_the_queue_evicts_the_cheapest_queued() {
    // Found by the property test: removing a pending transaction demotes the later ones,
    // which can push the queue over its limit.
    let [a, b] = [Key::new(1), Key::new(2)];
    let state = funded(&[&a, &b], ETH_100);
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.global_queue = 1;
    let pool = pool_with(config);
    let a_hashes: Vec<TxHash> = (0..3)
        .map(|n| {
            pool.add_raw(a.transfer(n, 10 * GWEI, 5 * GWEI), &state)
                .unwrap()
        })
        .collect();
    let b_queued = pool
        .add_raw(b.transfer(5, 10 * GWEI, GWEI), &state)
        .unwrap();
    assert_eq!(pool.status(), status(3, 1));
    pool.remove(&a_hashes[1]).unwrap();
    assert_eq!(pool.status(), status(1, 1));
    assert!(
        !pool.contains(&b_queued),
        "the cheaper queued transaction goes"
    );
    assert!(pool.contains(&a_hashes[2]));
    pool.check_invariants().unwrap();
}

/// Transactions that exercise every path: several senders, shuffled nonces with gaps,
/// duplicates, replacements, refusals.
fn mixed_batch(keys: &[Key]) -> Vec<Bytes> {
    let mut raws = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        for nonce in [2u64, 0, 4, 1, 3, 7] {
            raws.push(key.transfer(
                nonce,
                100 * GWEI,
                ((nonce + i as u64) % 5 + 1) as u128 * GWEI,
            ));
        }
        raws.push(key.transfer(0, 100 * GWEI, GWEI)); // duplicate or replacement attempt
        raws.push(key.transfer(1, 200 * GWEI, 20 * GWEI)); // replacement
        raws.push(key.eip1559(TxSpec::new(5).chain(1))); // wrong chain
        raws.push(key.eip1559(TxSpec::new(5).gas(20_000))); // too little gas
    }
    raws.push(raws[0].clone());
    raws
}

#[test]
fn batch_admission_equals_sequential_admission() {
    let keys: Vec<Key> = (0..6).map(Key::new).collect();
    let state = funded(&keys.iter().collect::<Vec<_>>(), ETH_100);
    let raws = mixed_batch(&keys);
    let mut config = PoolConfig::new(CHAIN_ID, 30_000_000);
    config.account_slots = 3;
    config.account_queue = 2;
    config.global_slots = 10;
    config.global_queue = 5;
    let batched = pool_with(config.clone());
    let sequential = pool_with(config);
    let batch_results = batched.add_raw_batch(raws.clone(), &state);
    let sequential_results: Vec<_> = raws
        .into_iter()
        .map(|raw| sequential.add_raw(raw, &state))
        .collect();
    assert_eq!(batch_results, sequential_results);
    assert!(batch_results.iter().any(Result::is_ok));
    assert!(
        batch_results
            .iter()
            .any(|r| r == &Err(PoolError::Underpriced))
    );
    assert_eq!(batched.content(), sequential.content());
    assert_eq!(batched.status(), sequential.status());
    batched.check_invariants().unwrap();
}

#[test]
fn concurrent_admission_from_many_threads() {
    let keys: Vec<Key> = (0..8).map(Key::new).collect();
    let state = funded(&keys.iter().collect::<Vec<_>>(), ETH_100);
    let pool = Arc::new(TxPool::new(PoolConfig::load_test(CHAIN_ID, 30_000_000)));
    std::thread::scope(|scope| {
        for key in &keys {
            let (pool, state) = (&pool, &state);
            scope.spawn(move || {
                for nonce in (0..40).rev() {
                    pool.add_raw(key.transfer(nonce, 10 * GWEI, GWEI), state)
                        .unwrap();
                }
            });
        }
        scope.spawn(|| {
            for _ in 0..50 {
                let _ = pool.best_transactions(0).count();
                pool.check_invariants().unwrap();
            }
        });
    });
    assert_eq!(pool.status(), status(320, 0));
    pool.check_invariants().unwrap();
}

#[test]
fn load_test_profile_raises_the_limits() {
    let config = PoolConfig::load_test(CHAIN_ID, 30_000_000);
    assert!(config.account_slots >= 100_000 && config.global_slots >= 1_000_000);
    let defaults = PoolConfig::new(CHAIN_ID, 30_000_000);
    assert_eq!(
        (
            defaults.account_slots,
            defaults.account_queue,
            defaults.global_slots,
            defaults.global_queue
        ),
        (16, 64, 5120, 1024)
    );
    assert_eq!(defaults.price_bump_percent, 10);
}
