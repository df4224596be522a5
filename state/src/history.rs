//! Per-block changesets (the values every block overwrote), stored in chunks, and the
//! in-memory key filters that let historical reads skip blocks that did not touch a key.
//!
//! A block's changeset is a sorted list of (key, old value) entries, where the key is
//! `address ++ 0` for the account record and `address ++ 1 ++ slot` for a storage slot. It is
//! stored as chunks of at most [`CHUNK_ENTRIES`] entries under `block ++ chunk index`, plus a
//! header under `block ++ ffff` holding the first key of every chunk. A commit thus writes a
//! few hundred database entries for its history however many keys it changed, and pruning a
//! block deletes as many: no per-key index to maintain. A historical read of one key walks the
//! retained blocks after the requested one, asks each block's in-memory filter, and reads the
//! header and one chunk of the (rare) blocks whose filter says yes.

use crate::StateError;
use crate::codec::{Reader, StoredAccount, decode_value, encode_value};
use alloy_primitives::{Address, U256};

/// Entries per stored chunk.
pub(crate) const CHUNK_ENTRIES: usize = 256;
/// Chunk index of the header.
const HEADER_INDEX: u16 = u16::MAX;
const ACCOUNT_TAG: u8 = 0;
const SLOT_TAG: u8 = 1;

/// A stored piece of a changeset: its database key and bytes.
pub(crate) type StoredChunk = ([u8; 10], Vec<u8>);

/// What one block changed, with the values from before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Changeset {
    /// Changed accounts and their records before the block (`None`: absent).
    pub(crate) accounts: Vec<(Address, Option<StoredAccount>)>,
    /// Changed slots and their values before the block (zero: unset).
    pub(crate) storage: Vec<(Address, U256, U256)>,
}

/// The changeset key of an account record.
pub(crate) fn account_key(address: &Address) -> [u8; 21] {
    let mut key = [ACCOUNT_TAG; 21];
    key[..20].copy_from_slice(address.as_slice());
    key
}

/// The changeset key of a storage slot.
pub(crate) fn slot_key(address: &Address, slot: &U256) -> [u8; 53] {
    let mut key = [SLOT_TAG; 53];
    key[..20].copy_from_slice(address.as_slice());
    key[21..].copy_from_slice(&slot.to_be_bytes::<32>());
    key
}

/// Database key of chunk `index` of block `block`'s changeset.
fn chunk_db_key(block: u64, index: u16) -> [u8; 10] {
    let mut key = [0u8; 10];
    key[..8].copy_from_slice(&block.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Database key of block `block`'s changeset header.
pub(crate) fn header_db_key(block: u64) -> [u8; 10] {
    chunk_db_key(block, HEADER_INDEX)
}

impl Changeset {
    /// The entries sorted by key.
    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> =
            Vec::with_capacity(self.accounts.len() + self.storage.len());
        for (address, old) in &self.accounts {
            let value = old.map(|account| account.encode()).unwrap_or_default();
            entries.push((account_key(address).to_vec(), value));
        }
        for (address, slot, old) in &self.storage {
            entries.push((slot_key(address, slot).to_vec(), encode_value(*old)));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    /// The database entries storing this changeset as block `block`'s, with the filter of
    /// its keys.
    pub(crate) fn encode(&self, block: u64) -> (Vec<StoredChunk>, KeyFilter) {
        let entries = self.entries();
        let filter = KeyFilter::new(entries.len());
        let chunks: Vec<&[(Vec<u8>, Vec<u8>)]> = entries.chunks(CHUNK_ENTRIES).collect();
        let mut header = Vec::with_capacity(6 + chunks.len() * 54);
        header.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        header.extend_from_slice(&(chunks.len() as u16).to_be_bytes());
        let mut out = Vec::with_capacity(chunks.len() + 1);
        for (index, chunk) in chunks.iter().enumerate() {
            let first = &chunk[0].0;
            header.push(first.len() as u8);
            header.extend_from_slice(first);
            let mut bytes = Vec::with_capacity(chunk.len() * 64);
            for (key, value) in *chunk {
                filter.insert(key);
                bytes.push(key.len() as u8);
                bytes.extend_from_slice(key);
                bytes.push(value.len() as u8);
                bytes.extend_from_slice(value);
            }
            out.push((chunk_db_key(block, index as u16), bytes));
        }
        out.push((header_db_key(block), header));
        (out, filter)
    }
}

/// A decoded changeset header: entry count and the first key of each chunk.
pub(crate) struct Header {
    pub(crate) entries: u32,
    pub(crate) first_keys: Vec<Vec<u8>>,
}

impl Header {
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let bad = || StateError::corruption("malformed changeset header");
        let mut reader = Reader(bytes);
        let entries = reader.u32().ok_or_else(bad)?;
        let chunks = u16::from_be_bytes(
            reader
                .take(2)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        );
        let mut first_keys = Vec::with_capacity(chunks as usize);
        for _ in 0..chunks {
            let len = reader.byte().ok_or_else(bad)? as usize;
            first_keys.push(reader.take(len).ok_or_else(bad)?.to_vec());
        }
        if !reader.0.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            entries,
            first_keys,
        })
    }

    /// Database keys of the chunks and the header of block `block`.
    pub(crate) fn db_keys(&self, block: u64) -> impl Iterator<Item = [u8; 10]> {
        (0..self.first_keys.len() as u16)
            .map(move |index| chunk_db_key(block, index))
            .chain(std::iter::once(header_db_key(block)))
    }

    /// The index of the chunk that would hold `key`.
    pub(crate) fn chunk_for(&self, key: &[u8]) -> Option<u16> {
        let after = self
            .first_keys
            .partition_point(|first| first.as_slice() <= key);
        after.checked_sub(1).map(|index| index as u16)
    }

    /// Database key of chunk `index` of block `block`.
    pub(crate) fn chunk_db_key(block: u64, index: u16) -> [u8; 10] {
        chunk_db_key(block, index)
    }
}

/// Iterates the (key, value) entries of a stored chunk.
pub(crate) fn chunk_entries(
    bytes: &[u8],
) -> impl Iterator<Item = Result<(&[u8], &[u8]), StateError>> {
    let mut reader = Reader(bytes);
    std::iter::from_fn(move || {
        if reader.0.is_empty() {
            return None;
        }
        let bad = || StateError::corruption("malformed changeset chunk");
        let mut entry = || -> Option<(&[u8], &[u8])> {
            let key_len = reader.byte()? as usize;
            let key = reader.take(key_len)?;
            let value_len = reader.byte()? as usize;
            Some((key, reader.take(value_len)?))
        };
        Some(match entry() {
            Some(entry) => Ok(entry),
            None => {
                reader.0 = &[];
                Err(bad())
            }
        })
    })
}

/// Adds a decoded chunk entry to a changeset.
pub(crate) fn add_entry(
    changeset: &mut Changeset,
    key: &[u8],
    value: &[u8],
) -> Result<(), StateError> {
    match (key.len(), key.get(20)) {
        (21, Some(&ACCOUNT_TAG)) => {
            let old = if value.is_empty() {
                None
            } else {
                Some(StoredAccount::decode(value)?)
            };
            changeset
                .accounts
                .push((Address::from_slice(&key[..20]), old));
        }
        (53, Some(&SLOT_TAG)) => {
            let slot = U256::from_be_slice(&key[21..]);
            changeset
                .storage
                .push((Address::from_slice(&key[..20]), slot, decode_value(value)?));
        }
        _ => return Err(StateError::corruption("malformed changeset key")),
    }
    Ok(())
}

/// A bloom filter over one block's changeset keys (about 1% false positives).
pub(crate) struct KeyFilter {
    words: Box<[std::sync::atomic::AtomicU64]>,
    mask: u64,
}

const FILTER_PROBES: u64 = 6;

impl KeyFilter {
    pub(crate) fn new(keys: usize) -> Self {
        let bits = (keys * 10).max(64).next_power_of_two();
        let words = (0..bits / 64)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect();
        Self {
            words,
            mask: bits as u64 - 1,
        }
    }

    fn hashes(key: &[u8]) -> (u64, u64) {
        // Keys start with an address (uniformly distributed in practice); fold all of it.
        let mut h1 = 0x243f_6a88_85a3_08d3u64;
        for chunk in key.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            h1 = mix(h1 ^ u64::from_le_bytes(word), 0x9e37_79b9_7f4a_7c15);
        }
        (h1, mix(h1, key.len() as u64) | 1)
    }

    pub(crate) fn insert(&self, key: &[u8]) {
        let (h1, h2) = Self::hashes(key);
        for i in 0..FILTER_PROBES {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            self.words[(bit / 64) as usize]
                .fetch_or(1 << (bit % 64), std::sync::atomic::Ordering::Relaxed);
        }
    }

    pub(crate) fn may_contain(&self, key: &[u8]) -> bool {
        let (h1, h2) = Self::hashes(key);
        (0..FILTER_PROBES).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) & self.mask;
            self.words[(bit / 64) as usize].load(std::sync::atomic::Ordering::Relaxed)
                & (1 << (bit % 64))
                != 0
        })
    }
}

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let product = (a as u128).wrapping_mul((b ^ 0xe703_7ed1_a0b4_28db) as u128);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trie::EMPTY_ROOT_HASH;
    use chain_primitives::Account;

    fn sample(accounts: u64, slots: u64) -> Changeset {
        let mut changeset = Changeset::default();
        for i in 0..accounts {
            let address = Address::left_padding_from(&(i * 7919).to_be_bytes());
            let old = (i % 3 != 0).then(|| StoredAccount {
                info: Account::with_balance(U256::from(i)),
                storage_root: EMPTY_ROOT_HASH,
            });
            changeset.accounts.push((address, old));
            for s in 0..slots {
                changeset
                    .storage
                    .push((address, U256::from(s * 31), U256::from(i * s)));
            }
        }
        changeset
    }

    /// Decodes what `encode` produced, through the header, like a revert does.
    fn decode(entries: &[StoredChunk], block: u64) -> Changeset {
        let (header_key, header) = entries.last().unwrap();
        assert_eq!(*header_key, header_db_key(block));
        let header = Header::decode(header).unwrap();
        let mut changeset = Changeset::default();
        for (key, chunk) in &entries[..entries.len() - 1] {
            assert!(header.db_keys(block).any(|k| k == *key));
            for entry in chunk_entries(chunk) {
                let (key, value) = entry.unwrap();
                add_entry(&mut changeset, key, value).unwrap();
            }
        }
        assert_eq!(
            header.entries as usize,
            changeset.accounts.len() + changeset.storage.len()
        );
        changeset
    }

    #[test]
    fn changesets_round_trip_through_chunks() {
        for (accounts, slots) in [(0, 0), (1, 0), (3, 2), (300, 3)] {
            let changeset = sample(accounts, slots);
            let (entries, filter) = changeset.encode(42);
            assert_eq!(
                entries.len(),
                (accounts as usize * (1 + slots as usize)).div_ceil(CHUNK_ENTRIES) + 1
            );
            let mut decoded = decode(&entries, 42);
            let mut expected = changeset.clone();
            for set in [&mut decoded, &mut expected] {
                set.accounts.sort_by_key(|(a, _)| *a);
                set.storage.sort();
            }
            assert_eq!(decoded, expected);
            for (address, _) in &changeset.accounts {
                assert!(filter.may_contain(&account_key(address)));
            }
            // Lookups find every key in the chunk the header points to.
            let header = Header::decode(&entries.last().unwrap().1).unwrap();
            for (address, slot, old) in &changeset.storage {
                let key = slot_key(address, slot);
                let chunk = &entries[header.chunk_for(&key).unwrap() as usize].1;
                let found = chunk_entries(chunk)
                    .map(Result::unwrap)
                    .find(|(k, _)| *k == key);
                assert_eq!(decode_value(found.unwrap().1).unwrap(), *old);
            }
        }
    }

    #[test]
    fn malformed_chunks_and_headers_are_errors() {
        let (entries, _) = sample(5, 2).encode(1);
        let chunk = &entries[0].1;
        let mut boundaries = Vec::new();
        let mut offset = 0;
        for entry in chunk_entries(chunk) {
            let (key, value) = entry.unwrap();
            offset += 2 + key.len() + value.len();
            boundaries.push(offset);
        }
        for cut in 1..chunk.len() {
            let results: Vec<_> = chunk_entries(&chunk[..cut]).collect();
            if boundaries.contains(&cut) {
                assert!(
                    results.iter().all(Result::is_ok),
                    "cut at an entry boundary {cut}"
                );
            } else {
                assert!(
                    results.last().unwrap().is_err(),
                    "cut inside an entry {cut}"
                );
            }
        }
        let header = &entries.last().unwrap().1;
        for cut in 0..header.len() {
            assert!(Header::decode(&header[..cut]).is_err());
        }
    }
}
