//! The in-memory existence filter for accounts: a bloom filter over every address in the flat
//! state, so that reads of absent accounts are answered without touching RocksDB.

use alloy_primitives::Address;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bits per expected element; with [`HASHES`] probes this gives about a 1% false-positive rate.
const BITS_PER_ACCOUNT: usize = 10;
/// Probes per element.
const HASHES: u64 = 7;

/// A bloom filter with atomic bits: inserts and lookups take `&self`, lookups are lock-free.
/// Deleted accounts stay in the filter (a false positive costs one disk read, nothing more).
pub(crate) struct ExistenceFilter {
    words: Box<[AtomicU64]>,
    /// Number of bits minus one (the bit count is a power of two).
    bit_mask: u64,
    /// Per-process random seed, so that nobody can craft addresses that collide on purpose.
    seed: u64,
    inserted: AtomicUsize,
    capacity: usize,
}

impl ExistenceFilter {
    /// An empty filter sized for `capacity` accounts.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1024);
        let bits = (capacity * BITS_PER_ACCOUNT).next_power_of_two();
        let words = (0..bits / 64).map(|_| AtomicU64::new(0)).collect();
        let seed = {
            // RandomState is randomly keyed per process; hashing nothing draws from that key.
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        Self {
            words,
            bit_mask: bits as u64 - 1,
            seed,
            inserted: AtomicUsize::new(0),
            capacity,
        }
    }

    /// Two independent 64-bit hashes of the address (double hashing derives the probes).
    fn hashes(&self, address: &Address) -> (u64, u64) {
        let bytes = address.as_slice();
        let a = u64::from_le_bytes(bytes[0..8].try_into().expect("8 bytes"));
        let b = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        let c = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")) as u64;
        let h1 = mix(a ^ self.seed, b ^ c.rotate_left(32));
        let h2 = mix(h1 ^ c, b) | 1;
        (h1, h2)
    }

    /// Adds an address.
    pub(crate) fn insert(&self, address: &Address) {
        let (h1, h2) = self.hashes(address);
        for i in 0..HASHES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.bit_mask;
            self.words[(bit / 64) as usize].fetch_or(1 << (bit % 64), Ordering::Relaxed);
        }
        self.inserted.fetch_add(1, Ordering::Relaxed);
    }

    /// `false` if the address was certainly never inserted.
    pub(crate) fn may_contain(&self, address: &Address) -> bool {
        let (h1, h2) = self.hashes(address);
        (0..HASHES).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.bit_mask;
            self.words[(bit / 64) as usize].load(Ordering::Relaxed) & (1 << (bit % 64)) != 0
        })
    }

    /// Whether so many addresses were inserted that the false-positive rate degrades.
    pub(crate) fn is_overfull(&self) -> bool {
        self.inserted.load(Ordering::Relaxed) > self.capacity
    }

    /// Number of insertions the filter is sized for.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of insertions so far.
    pub(crate) fn inserted(&self) -> usize {
        self.inserted.load(Ordering::Relaxed)
    }
}

/// A 64-bit multiply-xorshift mixer (from wyhash's core step).
#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let product = (a as u128).wrapping_mul((b ^ 0xe703_7ed1_a0b4_28db) as u128);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_false_negatives_and_few_false_positives() {
        let filter = ExistenceFilter::with_capacity(20_000);
        let present: Vec<Address> = (0u64..20_000)
            .map(|i| Address::left_padding_from(&i.to_be_bytes()))
            .collect();
        for address in &present {
            filter.insert(address);
        }
        assert!(present.iter().all(|a| filter.may_contain(a)));
        let false_positives = (1_000_000u64..1_100_000)
            .filter(|i| filter.may_contain(&Address::left_padding_from(&i.to_be_bytes())))
            .count();
        assert!(
            false_positives < 3_000,
            "{false_positives} false positives in 100k"
        );
        assert!(!filter.is_overfull());
    }
}
