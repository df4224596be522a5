//! Rebuilding the account trie from the flat accounts: after a crash left its top unwritten
//! (see [`StateConfig::top_write_interval`](crate::StateConfig::top_write_interval)), or when
//! the stored root node does not match the latest block's root.
//!
//! The trie is built from the accounts' leaves sorted by hashed address. Up to
//! [`MEMORY_LEAVES`] leaves are sorted in memory. A larger state is spread over 256 bucket
//! files by the first byte of the hashed address (in a directory inside the database's), and
//! each bucket is sorted and built on its own: memory holds one bucket (about 1/256 of the
//! state, twice while its file is parsed) per worker thread, and 16 MiB of write buffers. The
//! branches above the buckets join their subtries; where a branch would have fewer than two
//! children (a state of few accounts), the subtrie is built whole instead.

use crate::StateError;
use crate::codec::StoredAccount;
use crate::columns::StateColumn;
use crate::db::{Head, Inner, META_TOP_PENDING, trie_key};
use crate::trie::{
    self, EMPTY_ROOT_HASH, NodeRef, NodeSink, branch_over, build_root, build_subtrie,
};
use alloy_primitives::{B256, keccak256};
use parking_lot::Mutex;
use rayon::prelude::*;
use rocksdb::{WriteBatch, WriteOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Leaves a rebuild sorts in memory (~140 bytes each: ~140 MiB); a larger state goes through
/// bucket files, which took no longer for 1,000,000 accounts (1.8-1.9 s against 2.1-2.2 s).
pub(crate) const MEMORY_LEAVES: usize = 1 << 20;

/// The bucket files' directory, inside the database's.
pub(crate) const BUCKETS_DIR: &str = "account-trie-rebuild";

/// Bytes of node writes a rebuild collects per `WriteBatch`.
const REBUILD_BATCH_BYTES: usize = 8 << 20;

/// A hashed address and the account's leaf value (its RLP).
type Leaf = (B256, Vec<u8>);

/// Writes trie nodes into the account-trie column family as a builder produces them (from
/// several threads), in batches of about `batch_bytes`. Not atomic: callers make the result
/// visible with a last write of their own.
pub(crate) struct NodeWriter<'a> {
    inner: &'a Inner,
    batch_bytes: usize,
    /// The batch being filled, and the first write error (later nodes are then dropped).
    shared: Mutex<(WriteBatch, Option<StateError>)>,
}

impl<'a> NodeWriter<'a> {
    pub(crate) fn new(inner: &'a Inner, batch_bytes: usize) -> Self {
        Self {
            inner,
            batch_bytes,
            shared: Mutex::new((WriteBatch::default(), None)),
        }
    }

    /// Adds the node at nibble path `path`, writing the batch when it is full.
    pub(crate) fn put(&self, path: &[u8], node: &[u8]) {
        let mut guard = self.shared.lock();
        let (batch, error) = &mut *guard;
        if error.is_some() {
            return;
        }
        batch.put_cf(
            self.inner.cf(StateColumn::AccountTrie),
            trie_key(None, path),
            node,
        );
        if batch.size_in_bytes() > self.batch_bytes
            && let Err(e) = self.inner.db.write(std::mem::take(batch))
        {
            *error = Some(e.into());
        }
    }

    /// Writes what is left, or returns the first error.
    pub(crate) fn finish(self) -> Result<(), StateError> {
        let (batch, error) = self.shared.into_inner();
        if let Some(error) = error {
            return Err(error);
        }
        self.inner.db.write(batch)?;
        Ok(())
    }
}

/// Writes every node of the account trie of `leaves` (hashed address and account RLP,
/// sorted) into the account-trie column family, in batches of about `batch_bytes`, and
/// returns the root. Not atomic: callers make the result visible with a last write of their
/// own.
pub(crate) fn write_account_trie(
    inner: &Inner,
    leaves: &[Leaf],
    batch_bytes: usize,
) -> Result<B256, StateError> {
    let writer = NodeWriter::new(inner, batch_bytes);
    let sink = |path: &[u8], node: &[u8]| writer.put(path, node);
    let root = build_root(leaves, Some(&sink));
    writer.finish()?;
    Ok(root)
}

/// The flat accounts' leaves: in memory, or spread over bucket files.
enum Leaves {
    Memory(Vec<Leaf>),
    Buckets(Buckets),
}

/// What a rebuild did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rebuilt {
    /// Accounts in the rebuilt trie.
    pub(crate) accounts: usize,
    /// Whether the leaves went through bucket files.
    pub(crate) bucketed: bool,
}

/// Rebuilds the account trie from the flat accounts (`since`: the block that left its top
/// unwritten, if recorded): deletes every stored node, writes the trie of the flat accounts
/// and their stored storage roots, and clears the mark once the root equals the latest
/// block's. Interrupted, it starts over at the next open. More than `memory_leaves` accounts
/// go through bucket files.
pub(crate) fn rebuild_account_trie(
    inner: &Inner,
    head: Head,
    since: Option<u64>,
    memory_leaves: usize,
) -> Result<Rebuilt, StateError> {
    let started = std::time::Instant::now();
    let expected = head.latest.map_or(EMPTY_ROOT_HASH, |(_, root)| root);
    let buckets_dir = inner.db.path().join(BUCKETS_DIR);
    let (leaves, accounts) = read_leaves(inner, memory_leaves, &buckets_dir)?;

    let cf = inner.cf(StateColumn::AccountTrie);
    let mut wipe = WriteBatch::default();
    // Keys are a packed path (at most 32 bytes) and its length: all below 34 bytes of 0xff.
    wipe.delete_range_cf(cf, [].as_slice(), [0xffu8; 34].as_slice());
    inner.db.write(wipe)?;
    let bucketed = matches!(leaves, Leaves::Buckets(_));
    let root = match leaves {
        Leaves::Memory(mut leaves) => {
            leaves.par_sort_unstable_by_key(|leaf| leaf.0);
            write_account_trie(inner, &leaves, REBUILD_BATCH_BYTES)?
        }
        Leaves::Buckets(buckets) => write_from_buckets(inner, &buckets)?,
    };
    if root != expected {
        return Err(StateError::corruption(format!(
            "the account trie rebuilt from the flat accounts has root {root}, the latest \
             block {expected}"
        )));
    }
    let mut done = WriteBatch::default();
    done.delete_cf(inner.cf(StateColumn::Meta), META_TOP_PENDING);
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    inner.db.write_opt(done, &sync)?;
    if bucketed {
        remove_buckets(inner.db.path());
    }
    tracing::info!(
        accounts,
        bucketed,
        unwritten_since = since,
        latest = head.latest.map(|(number, _)| number),
        %root,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "rebuilt the account trie from the flat accounts"
    );
    Ok(Rebuilt { accounts, bucketed })
}

/// Reads every flat account into its leaf; past `memory_leaves` of them, moves them all to
/// bucket files in `buckets_dir`. Returns the leaves and their number.
fn read_leaves(
    inner: &Inner,
    memory_leaves: usize,
    buckets_dir: &Path,
) -> Result<(Leaves, usize), StateError> {
    let mut memory: Vec<Leaf> = Vec::new();
    let mut buckets: Option<Buckets> = None;
    let mut count = 0;
    let mut iter = inner.db.raw_iterator_cf(inner.cf(StateColumn::Accounts));
    iter.seek_to_first();
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        if key.len() != 20 {
            return Err(StateError::corruption("account key is not 20 bytes"));
        }
        let account = StoredAccount::decode(value)?;
        let leaf = (
            keccak256(key),
            trie::account_rlp(&account.info, account.storage_root),
        );
        count += 1;
        match &mut buckets {
            Some(buckets) => buckets.push(&leaf)?,
            None => {
                memory.push(leaf);
                if memory.len() > memory_leaves {
                    let mut spilled = Buckets::create(buckets_dir)?;
                    for leaf in std::mem::take(&mut memory) {
                        spilled.push(&leaf)?;
                    }
                    buckets = Some(spilled);
                }
            }
        }
        iter.next();
    }
    iter.status()?;
    let leaves = match buckets {
        Some(mut buckets) => {
            buckets.flush()?;
            Leaves::Buckets(buckets)
        }
        None => Leaves::Memory(memory),
    };
    Ok((leaves, count))
}

/// Writes the trie of the leaves in `buckets` and returns its root: bucket by bucket, joined
/// by the branches above them.
fn write_from_buckets(inner: &Inner, buckets: &Buckets) -> Result<B256, StateError> {
    let writer = NodeWriter::new(inner, REBUILD_BATCH_BYTES);
    let put = |path: &[u8], node: &[u8]| writer.put(path, node);
    let sink: NodeSink<'_> = &put;
    // Buckets holding leaves, by first nibble (the second nibble is the bucket's low half).
    let filled: Vec<Vec<u8>> = (0..16u8)
        .map(|high| {
            (0..16u8)
                .filter(|&low| buckets.bytes(high << 4 | low) > 0)
                .collect()
        })
        .collect();
    let root = if filled.iter().filter(|lows| !lows.is_empty()).count() < 2 {
        // Every hashed address starts with the same nibble: the root is not a branch. Only a
        // state of a few accounts gets here, so it is built whole.
        let mut leaves = Vec::new();
        for bucket in 0..=255u8 {
            leaves.extend(buckets.read(bucket)?);
        }
        leaves.sort_unstable_by_key(|leaf| leaf.0);
        build_root(&leaves, Some(sink))
    } else {
        let mut children: [Option<NodeRef>; 16] = [None; 16];
        for (high, lows) in filled.iter().enumerate() {
            let high = high as u8;
            children[usize::from(high)] = match lows.as_slice() {
                [] => None,
                // One bucket under this nibble: its subtrie hangs here directly.
                [low] => {
                    let leaves = buckets.read(high << 4 | low)?;
                    Some(build_subtrie(&leaves, 1, &mut vec![high], Some(sink)))
                }
                _ => {
                    let built: Vec<(u8, NodeRef)> = lows
                        .par_iter()
                        .map(|&low| {
                            let leaves = buckets.read(high << 4 | low)?;
                            let node = build_subtrie(&leaves, 2, &mut vec![high, low], Some(sink));
                            Ok((low, node))
                        })
                        .collect::<Result<_, StateError>>()?;
                    let mut grandchildren: [Option<NodeRef>; 16] = [None; 16];
                    for (low, node) in built {
                        grandchildren[usize::from(low)] = Some(node);
                    }
                    Some(branch_over(&grandchildren, &[high], Some(sink)))
                }
            };
        }
        branch_over(&children, &[], Some(sink)).root_hash()
    };
    writer.finish()?;
    Ok(root)
}

/// 256 files of leaves, one per first byte of the hashed address. A record is the 32-byte
/// hashed address, the value's length (2 bytes, little-endian) and the value. Records are
/// gathered per bucket in memory and appended to its file when [`BUCKET_BUFFER_BYTES`] are
/// waiting: one file is open at a time.
struct Buckets {
    dir: PathBuf,
    /// Records not yet appended, per bucket.
    buffers: Vec<Vec<u8>>,
    /// Bytes in each bucket (written or buffered).
    bytes: Vec<u64>,
}

/// Bytes of records a bucket gathers before they are appended to its file (256 of them: 16 MiB).
const BUCKET_BUFFER_BYTES: usize = 64 << 10;

impl Buckets {
    /// Creates an empty `dir` for bucket files, replacing what an interrupted rebuild left.
    fn create(dir: &Path) -> Result<Self, StateError> {
        // Appending to a leftover file would add its leaves twice: removal must succeed.
        remove_dir(dir)?;
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            buffers: vec![Vec::new(); 256],
            bytes: vec![0; 256],
        })
    }

    fn path(&self, bucket: u8) -> PathBuf {
        self.dir.join(bucket.to_string())
    }

    fn push(&mut self, (key, value): &Leaf) -> Result<(), StateError> {
        let bucket = key[0];
        let len = u16::try_from(value.len())
            .map_err(|_| StateError::corruption("an account leaf of 64 KiB or more"))?;
        let buffer = &mut self.buffers[usize::from(bucket)];
        buffer.extend_from_slice(key.as_slice());
        buffer.extend_from_slice(&len.to_le_bytes());
        buffer.extend_from_slice(value);
        self.bytes[usize::from(bucket)] += 34 + u64::from(len);
        if buffer.len() >= BUCKET_BUFFER_BYTES {
            self.append(bucket)?;
        }
        Ok(())
    }

    /// Appends bucket `bucket`'s buffered records to its file.
    fn append(&mut self, bucket: u8) -> Result<(), StateError> {
        if self.buffers[usize::from(bucket)].is_empty() {
            return Ok(());
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(bucket))?;
        let buffer = &mut self.buffers[usize::from(bucket)];
        file.write_all(buffer)?;
        buffer.clear();
        Ok(())
    }

    /// Appends every buffered record and frees the buffers.
    fn flush(&mut self) -> Result<(), StateError> {
        for bucket in 0..=255u8 {
            self.append(bucket)?;
            self.buffers[usize::from(bucket)] = Vec::new();
        }
        Ok(())
    }

    /// Bytes in bucket `bucket`.
    fn bytes(&self, bucket: u8) -> u64 {
        self.bytes[usize::from(bucket)]
    }

    /// The leaves of bucket `bucket` (flushed), sorted.
    fn read(&self, bucket: u8) -> Result<Vec<Leaf>, StateError> {
        if self.bytes(bucket) == 0 {
            return Ok(Vec::new());
        }
        let bytes = std::fs::read(self.path(bucket))?;
        let truncated = || StateError::corruption("truncated rebuild bucket file");
        let mut leaves = Vec::new();
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let (key, after) = rest.split_at_checked(32).ok_or_else(truncated)?;
            let (len, after) = after.split_at_checked(2).ok_or_else(truncated)?;
            let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
            let (value, after) = after.split_at_checked(len).ok_or_else(truncated)?;
            leaves.push((B256::from_slice(key), value.to_vec()));
            rest = after;
        }
        leaves.sort_unstable_by_key(|leaf| leaf.0);
        Ok(leaves)
    }
}

/// Deletes the bucket files a rebuild left in the database directory `db_dir` (after it
/// finished, or if it was interrupted). A failure is only logged: the files take space but do
/// not affect the database.
pub(crate) fn remove_buckets(db_dir: &Path) {
    let dir = db_dir.join(BUCKETS_DIR);
    if let Err(e) = remove_dir(&dir) {
        tracing::warn!(
            dir = %dir.display(),
            error = %e,
            "could not delete the account-trie rebuild's bucket files"
        );
    }
}

/// Deletes `dir` and what it holds; a missing `dir` is no error.
fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::tests::contents;
    use crate::{StateConfig, StateDb};
    use alloy_primitives::{Address, U256};
    use chain_primitives::{Account, AccountUpdate, StateDiff};

    /// `accounts` accounts, every third with two storage slots.
    fn accounts_diff(accounts: u64) -> StateDiff {
        let accounts = (0..accounts)
            .map(|i| {
                let update = AccountUpdate {
                    info: Some(Account::with_balance(U256::from(i + 1))),
                    storage_cleared: false,
                    storage: (0..if i % 3 == 0 { 2 } else { 0 })
                        .map(|slot| (U256::from(slot), U256::from(i + 7)))
                        .collect(),
                };
                (Address::left_padding_from(&(i + 1).to_be_bytes()), update)
            })
            .collect();
        StateDiff {
            accounts,
            ..StateDiff::default()
        }
    }

    /// Rebuilds through bucket files (from the first leaf on, or past half of them) write
    /// exactly the nodes the commits wrote, whether the root's children hold one bucket,
    /// several, or (one account) the root is a leaf; the bucket files are removed after.
    #[test]
    fn a_rebuild_through_buckets_writes_the_committed_trie() {
        for accounts in [1u64, 2, 20, 3000] {
            let diff = accounts_diff(accounts);
            // Which shapes above the buckets this state has.
            let mut buckets_under: [std::collections::BTreeSet<u8>; 16] = Default::default();
            for address in diff.accounts.keys() {
                let byte = keccak256(address)[0];
                buckets_under[usize::from(byte >> 4)].insert(byte);
            }
            let shapes: Vec<usize> = buckets_under.iter().map(|b| b.len()).collect();
            match accounts {
                1 => assert_eq!(shapes.iter().filter(|&&n| n > 0).count(), 1),
                20 => assert!(shapes.contains(&1) && shapes.iter().any(|&n| n >= 2)),
                _ => {}
            }

            let dir = tempfile::tempdir().unwrap();
            let config = StateConfig {
                top_write_interval: 1,
                ..StateConfig::for_tests()
            };
            let db = StateDb::open(dir.path(), config).unwrap();
            db.commit_block(0, &diff, &[]).unwrap();
            let committed = contents(&db);
            let head = *db.inner.head.read();
            for memory_leaves in [0, accounts as usize / 2] {
                let rebuilt = rebuild_account_trie(&db.inner, head, None, memory_leaves).unwrap();
                let expected = Rebuilt {
                    accounts: accounts as usize,
                    bucketed: accounts as usize > memory_leaves,
                };
                assert_eq!(rebuilt, expected);
                assert_eq!(
                    contents(&db),
                    committed,
                    "{accounts} accounts, {memory_leaves} in memory"
                );
                assert!(!dir.path().join(BUCKETS_DIR).exists());
            }
            // The rebuilt trie takes incremental commits.
            let root = db
                .commit_block(1, &accounts_diff(accounts + 5), &[])
                .unwrap();
            assert_eq!(db.recompute_root_from_flat().unwrap(), root);
        }
    }

    /// A bucket file cut short is a corruption error, not a panic.
    #[test]
    fn a_truncated_bucket_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut buckets = Buckets::create(&dir.path().join(BUCKETS_DIR)).unwrap();
        buckets
            .push(&(B256::repeat_byte(7), vec![1, 2, 3]))
            .unwrap();
        buckets.flush().unwrap();
        assert_eq!(
            buckets.read(7).unwrap(),
            vec![(B256::repeat_byte(7), vec![1, 2, 3])]
        );
        let path = buckets.path(7);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(buckets.read(7), Err(StateError::Corruption(_))));
        remove_buckets(dir.path());
        assert!(!dir.path().join(BUCKETS_DIR).exists());
    }
}
