//! The RocksDB-backed state database: opening, column family options, the published head,
//! caches, and chain-data access.

use crate::codec::{StoredAccount, decode_value, storage_key};
use crate::columns::{ChainColumn, StateColumn};
use crate::config::{MAX_SMALL_STORAGE_SLOTS, StateConfig};
use crate::filter::ExistenceFilter;
use crate::history::{Header, KeyFilter, chunk_entries};
use crate::reader::{HistoricalReader, LatestReader};
use crate::rebuild::{MEMORY_LEAVES, rebuild_account_trie, remove_buckets};
use crate::trie::{EMPTY_ROOT_HASH, Node, NodeSource, build_root, pack_path};
use crate::{StateError, trie};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use parking_lot::{Mutex, RwLock};
use rayon::prelude::*;
use rocksdb::{
    BlockBasedOptions, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options,
    ReadOptions, SliceTransform, WriteOptions,
};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// One write of chain data committed with a block: (column, key, `Some(value)` to put or
/// `None` to delete).
pub type ChainWrite = (ChainColumn, Vec<u8>, Option<Vec<u8>>);

pub(crate) const META_LATEST: &[u8] = b"latest";
pub(crate) const META_FIRST_CHANGESET: &[u8] = b"first_changeset";
pub(crate) const META_VERSION: &[u8] = b"version";
/// The database's [`StateConfig::small_storage_max_slots`], fixed at creation.
pub(crate) const META_SMALL_STORAGE: &[u8] = b"small_storage_max_slots";
const META_ROOT_TAG: u8 = b'r';
/// Present while the account trie's top in the database lags the flat state (its newest
/// nodes are in memory, see [`StateConfig::top_write_interval`]); the value is the first
/// block whose top was not written. Opening a database that has it rebuilds the account trie.
pub(crate) const META_TOP_PENDING: &[u8] = b"account_trie_top_pending";
/// Layout version of the state column families, written with a database's first block and
/// by every commit that leaves the account trie's top unwritten. 3: the account trie's top
/// may lag the flat state while [`META_TOP_PENDING`] is set. 2: storage of at most the
/// database's small-storage bound has no trie nodes. 1: every non-empty storage trie has its
/// nodes (read by this build as the bound 0). Builds that read only older versions refuse
/// newer ones instead of misreading them.
pub(crate) const SCHEMA_VERSION: u32 = 3;
/// The oldest layout this build reads.
const OLDEST_SCHEMA_VERSION: u32 = 1;

/// Meta key of the state root of block `number`.
pub(crate) fn root_key(number: u64) -> [u8; 9] {
    let mut key = [META_ROOT_TAG; 9];
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

/// Key of a trie node: the owning account's address for storage tries, then the packed path.
pub(crate) fn trie_key(owner: Option<&Address>, path: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(20 + path.len() / 2 + 2);
    if let Some(owner) = owner {
        key.extend_from_slice(owner.as_slice());
    }
    pack_path(path, &mut key);
    key
}

/// The account trie's top levels kept decoded in memory between commits.
pub(crate) struct ResidentTrie {
    /// The root hash the nodes belong to.
    pub(crate) root: B256,
    pub(crate) node: Node,
}

/// What has been committed: the latest block and root, and the oldest kept changeset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Latest committed block and its state root; `None` for an empty database.
    pub(crate) latest: Option<(u64, B256)>,
    /// The lowest block whose changeset is stored; changesets are stored for every block from
    /// here to the latest, so the oldest readable state is the block before it.
    pub(crate) first_changeset: u64,
}

impl Head {
    /// The oldest block whose state can be read or reverted to.
    pub(crate) fn oldest_readable(&self) -> u64 {
        self.first_changeset.saturating_sub(1)
    }

    /// Checks that the state of block `number` is retained.
    pub(crate) fn check_readable(&self, number: u64) -> Result<(), StateError> {
        match self.latest {
            Some((latest, _)) if number <= latest => {
                if number < self.oldest_readable() {
                    Err(StateError::PrunedBlock {
                        number,
                        oldest: self.oldest_readable(),
                    })
                } else {
                    Ok(())
                }
            }
            latest => Err(StateError::UnknownBlock {
                number,
                latest: latest.map(|l| l.0),
            }),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) db: DB,
    pub(crate) config: StateConfig,
    /// Accounts by address; `None` caches an absence the filter could not rule out.
    pub(crate) account_cache: quick_cache::sync::Cache<Address, Option<StoredAccount>>,
    pub(crate) storage_cache: quick_cache::sync::Cache<(Address, U256), U256>,
    pub(crate) code_cache: quick_cache::sync::Cache<B256, Bytes>,
    /// The top of the account trie as of the latest commit (taken by a commit or revert
    /// while it runs; `None` when unknown, e.g. after a failed write).
    pub(crate) resident: Mutex<Option<ResidentTrie>>,
    /// Account-trie top nodes changed since the top was last written.
    pub(crate) pending_top: Mutex<PendingTop>,
    pub(crate) filter: RwLock<ExistenceFilter>,
    pub(crate) head: RwLock<Head>,
    /// Serialises commits and reverts.
    pub(crate) commit_lock: Mutex<()>,
    /// Key filters of the stored changesets, by block (rebuilt at open).
    pub(crate) history_filters: RwLock<BTreeMap<u64, KeyFilter>>,
    /// Readers hold it shared while they read the database and fill a cache; publishing a
    /// commit holds it exclusively while it writes the batch and updates the caches, so that
    /// a reader can never put a value from before a commit into a cache after it.
    pub(crate) publish_lock: RwLock<()>,
    pub(crate) write_options: WriteOptions,
    /// Storage of at most this many slots has no stored trie nodes (see
    /// [`StateConfig::small_storage_max_slots`]); the database's own value, not the config's.
    pub(crate) small_storage_max_slots: usize,
    /// Makes the next commit's write fail (tests of what a failed write leaves behind).
    #[cfg(test)]
    pub(crate) fail_next_write: std::sync::atomic::AtomicBool,
    _block_cache: rocksdb::Cache,
}

impl Inner {
    pub(crate) fn cf(&self, column: StateColumn) -> &ColumnFamily {
        self.db
            .cf_handle(column.name())
            .expect("every state column family is opened")
    }

    pub(crate) fn chain_cf(&self, column: ChainColumn) -> &ColumnFamily {
        self.db
            .cf_handle(column.name())
            .expect("every chain column family is opened")
    }

    /// An account straight from the database (no cache).
    pub(crate) fn db_account(
        &self,
        address: &Address,
    ) -> Result<Option<StoredAccount>, StateError> {
        match self
            .db
            .get_pinned_cf(self.cf(StateColumn::Accounts), address)?
        {
            Some(bytes) => Ok(Some(StoredAccount::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// A slot straight from the database (no cache).
    pub(crate) fn db_storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        match self
            .db
            .get_pinned_cf(self.cf(StateColumn::Storage), storage_key(address, slot))?
        {
            Some(bytes) => decode_value(&bytes),
            None => Ok(U256::ZERO),
        }
    }

    /// The latest account, through the filter and the cache, filling the cache on a miss.
    pub(crate) fn latest_account(
        &self,
        address: &Address,
    ) -> Result<Option<StoredAccount>, StateError> {
        if !self.filter.read().may_contain(address) {
            return Ok(None);
        }
        if let Some(cached) = self.account_cache.get(address) {
            return Ok(cached);
        }
        let _published = self.publish_lock.read();
        self.fill_account(address)
    }

    /// Reads an account from the database into the cache. The caller holds `publish_lock`
    /// shared (so that no commit publishes between the read and the cache insert).
    pub(crate) fn fill_account(
        &self,
        address: &Address,
    ) -> Result<Option<StoredAccount>, StateError> {
        let account = self.db_account(address)?;
        self.account_cache.insert(*address, account);
        Ok(account)
    }

    /// The latest slot value, through the cache, filling the cache on a miss.
    pub(crate) fn latest_storage(
        &self,
        address: &Address,
        slot: &U256,
    ) -> Result<U256, StateError> {
        if let Some(value) = self.storage_cache.get(&(*address, *slot)) {
            return Ok(value);
        }
        let _published = self.publish_lock.read();
        self.fill_storage(address, slot)
    }

    /// Reads a slot from the database into the cache; the caller holds `publish_lock` shared.
    pub(crate) fn fill_storage(&self, address: &Address, slot: &U256) -> Result<U256, StateError> {
        let value = self.db_storage(address, slot)?;
        self.storage_cache.insert((*address, *slot), value);
        Ok(value)
    }

    pub(crate) fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, StateError> {
        if *code_hash == chain_primitives::KECCAK_EMPTY {
            return Ok(Some(Bytes::new()));
        }
        if let Some(code) = self.code_cache.get(code_hash) {
            return Ok(Some(code));
        }
        // Code is content-addressed and never rewritten, so no publish lock is needed.
        match self
            .db
            .get_pinned_cf(self.cf(StateColumn::Code), code_hash)?
        {
            Some(bytes) => {
                let code = Bytes::copy_from_slice(&bytes);
                self.code_cache.insert(*code_hash, code.clone());
                Ok(Some(code))
            }
            None => Ok(None),
        }
    }

    pub(crate) fn block_hash(&self, number: u64) -> Result<B256, StateError> {
        let cf = self.chain_cf(ChainColumn::BlockHashes);
        match self.db.get_pinned_cf(cf, number.to_be_bytes())? {
            Some(bytes) if bytes.len() == 32 => Ok(B256::from_slice(&bytes)),
            Some(_) => Err(StateError::corruption(format!(
                "block hash of {number} is not 32 bytes"
            ))),
            None => Ok(B256::ZERO),
        }
    }

    /// The key filter of block `block`'s stored changeset, if there is one.
    fn changeset_filter(&self, block: u64) -> Result<Option<KeyFilter>, StateError> {
        let Some(header) = self.changeset_header(block)? else {
            return Ok(None);
        };
        let filter = KeyFilter::new(header.entries as usize);
        let cf = self.cf(StateColumn::Changesets);
        for index in 0..header.first_keys.len() as u16 {
            let chunk = self
                .db
                .get_pinned_cf(cf, Header::chunk_db_key(block, index))?
                .ok_or_else(|| {
                    StateError::corruption(format!(
                        "changeset chunk {index} of block {block} missing"
                    ))
                })?;
            for entry in chunk_entries(&chunk) {
                filter.insert(entry?.0);
            }
        }
        Ok(Some(filter))
    }

    /// The value block `block`'s changeset recorded for `key` (the value before the block),
    /// `None` if the block did not change the key.
    pub(crate) fn changeset_lookup(
        &self,
        block: u64,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        let Some(header) = self.changeset_header(block)? else {
            return Ok(None);
        };
        let Some(index) = header.chunk_for(key) else {
            return Ok(None);
        };
        let cf = self.cf(StateColumn::Changesets);
        let chunk = self
            .db
            .get_pinned_cf(cf, Header::chunk_db_key(block, index))?
            .ok_or_else(|| {
                StateError::corruption(format!("changeset chunk {index} of block {block} missing"))
            })?;
        for entry in chunk_entries(&chunk) {
            let (entry_key, value) = entry?;
            if entry_key == key {
                return Ok(Some(value.to_vec()));
            }
        }
        Ok(None)
    }

    /// Every address in the flat state, for (re)building the existence filter.
    pub(crate) fn build_filter(&self, capacity: usize) -> Result<ExistenceFilter, StateError> {
        let filter = ExistenceFilter::with_capacity(capacity);
        let mut iter = self.db.raw_iterator_cf(self.cf(StateColumn::Accounts));
        iter.seek_to_first();
        while let Some(key) = iter.key() {
            if key.len() != 20 {
                return Err(StateError::corruption("account key is not 20 bytes"));
            }
            filter.insert(&Address::from_slice(key));
            iter.next();
        }
        iter.status()?;
        Ok(filter)
    }
}

/// Account-trie node changes by database key (`None`: deleted).
pub(crate) type NodeChanges = alloy_primitives::map::HashMap<Vec<u8>, Option<Vec<u8>>>;

/// The account trie's top nodes that commits changed and did not write yet (see
/// [`StateConfig::top_write_interval`]): together with the column family they are the trie
/// of the latest block.
#[derive(Default)]
pub(crate) struct PendingTop {
    pub(crate) nodes: NodeChanges,
    /// Commits since the top was last written.
    pub(crate) commits: u64,
    /// A commit's publication was interrupted (a panic between its write and the update of
    /// `nodes`): the nodes may be older than the database's deep nodes. Nothing commits or
    /// writes them any more; the mark stays, so that the next open rebuilds the trie.
    pub(crate) interrupted: bool,
}

/// Reads trie nodes of one trie from its column family.
pub(crate) struct CfNodes<'a> {
    pub(crate) db: &'a DB,
    pub(crate) cf: &'a ColumnFamily,
    /// The account owning the storage trie; `None` for the account trie.
    pub(crate) owner: Option<Address>,
    /// Newer nodes than the column family's for paths shorter than the given length, read
    /// first (the account trie's pending top).
    pub(crate) newer: Option<(&'a NodeChanges, usize)>,
}

impl NodeSource for CfNodes<'_> {
    fn load(&self, path: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let key = trie_key(self.owner.as_ref(), path);
        if let Some((newer, below)) = self.newer
            && path.len() < below
            && let Some(node) = newer.get(&key)
        {
            return Ok(node.clone());
        }
        Ok(self
            .db
            .get_pinned_cf(self.cf, key)?
            .map(|node| node.to_vec()))
    }
}

/// The state database: flat state, tries, history and chain data in one RocksDB, with
/// in-memory caches in front. Cloning is cheap (shared handle); all methods take `&self`.
#[derive(Clone)]
pub struct StateDb {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for StateDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateDb")
            .field("head", &*self.inner.head.read())
            .finish_non_exhaustive()
    }
}

/// Counts of stored entries, for monitoring and tests. Counting walks the column families.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateStats {
    /// Accounts in the flat state.
    pub accounts: u64,
    /// Non-zero storage slots in the flat state.
    pub storage_slots: u64,
    /// Nodes of the latest account trie (stored, or still in memory while its top is pending).
    pub account_trie_nodes: u64,
    /// Stored storage-trie nodes (all accounts).
    pub storage_trie_nodes: u64,
    /// Stored per-block changesets.
    pub changesets: u64,
    /// Account and slot entries in the stored changesets.
    pub history_entries: u64,
}

fn table_options(cache: &rocksdb::Cache, bloom: bool) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_block_size(16 * 1024);
    table.set_format_version(5);
    if bloom {
        table.set_bloom_filter(10.0, false);
        table.set_optimize_filters_for_memory(true);
    }
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table
}

fn column_options(
    config: &StateConfig,
    cache: &rocksdb::Cache,
    bloom: bool,
    prefix_len: Option<usize>,
) -> Options {
    let mut options = Options::default();
    options.set_block_based_table_factory(&table_options(cache, bloom));
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_bottommost_compression_type(DBCompressionType::Zstd);
    options.set_write_buffer_size(config.write_buffer_bytes);
    options.set_level_compaction_dynamic_level_bytes(true);
    // No bloom filter in the memtables: adding every key of a commit to one took about a
    // fifth of RocksDB's write (cache misses in a filter of megabytes). Reads of absent keys
    // pay a skip-list search instead; with a filter kept for flat storage alone, where such
    // reads are common, commits were still ~10 ms slower overall.
    if let Some(len) = prefix_len {
        options.set_prefix_extractor(SliceTransform::create_fixed_prefix(len));
    }
    options
}

impl StateDb {
    /// Opens the database at `path`, creating it (and any missing column family) if needed.
    /// A `config` that [`StateConfig::validate`] rejects opens nothing.
    pub fn open(path: impl AsRef<Path>, config: StateConfig) -> Result<StateDb, StateError> {
        config.validate()?;
        let path = path.as_ref();
        let block_cache = rocksdb::Cache::new_lru_cache(config.block_cache_bytes);
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.increase_parallelism(config.background_jobs);
        db_options.set_max_background_jobs(config.background_jobs);
        db_options.set_bytes_per_sync(1 << 20);
        db_options.set_keep_log_file_num(4);
        db_options.set_max_total_wal_size(4 * config.write_buffer_bytes as u64);

        let mut descriptors: Vec<ColumnFamilyDescriptor> = StateColumn::ALL
            .iter()
            .map(|column| {
                let options = column_options(
                    &config,
                    &block_cache,
                    column.point_lookups(),
                    column.prefix_len(),
                );
                ColumnFamilyDescriptor::new(column.name(), options)
            })
            .collect();
        descriptors.extend(ChainColumn::ALL.iter().map(|column| {
            ColumnFamilyDescriptor::new(
                column.name(),
                column_options(&config, &block_cache, true, None),
            )
        }));
        // Column families this version no longer knows must still be opened.
        let known: Vec<&str> = descriptors.iter().map(|d| d.name()).collect::<Vec<_>>();
        let existing = DB::list_cf(&db_options, path).unwrap_or_default();
        let unknown: Vec<String> = existing
            .into_iter()
            .filter(|name| name != "default" && !known.contains(&name.as_str()))
            .collect();
        for name in unknown {
            descriptors.push(ColumnFamilyDescriptor::new(name, Options::default()));
        }

        let db = DB::open_cf_descriptors(&db_options, path, descriptors)?;
        let mut write_options = WriteOptions::default();
        write_options.set_sync(config.sync_writes);

        let mut inner = Inner {
            account_cache: quick_cache::sync::Cache::new(config.account_cache_entries.max(16)),
            storage_cache: quick_cache::sync::Cache::new(config.storage_cache_entries.max(16)),
            code_cache: quick_cache::sync::Cache::new(config.code_cache_entries.max(16)),
            resident: Mutex::new(None),
            pending_top: Mutex::new(PendingTop::default()),
            history_filters: RwLock::new(BTreeMap::new()),
            filter: RwLock::new(ExistenceFilter::with_capacity(0)),
            head: RwLock::new(Head {
                latest: None,
                first_changeset: 1,
            }),
            commit_lock: Mutex::new(()),
            publish_lock: RwLock::new(()),
            write_options,
            small_storage_max_slots: 0,
            #[cfg(test)]
            fail_next_write: Default::default(),
            _block_cache: block_cache,
            db,
            config,
        };
        let head = read_head(&inner)?;
        *inner.head.write() = head;
        inner.small_storage_max_slots = small_storage_max_slots(&inner, &head)?;
        let meta = inner.cf(StateColumn::Meta);
        if let Some(pending) = inner.db.get_pinned_cf(meta, META_TOP_PENDING)? {
            let since = <[u8; 8]>::try_from(&pending[..])
                .map(u64::from_be_bytes)
                .ok();
            drop(pending);
            rebuild_account_trie(&inner, head, since, MEMORY_LEAVES)?;
        } else if let Some((number, root)) = head.latest
            && root != EMPTY_ROOT_HASH
        {
            // Without the mark the stored top must be the latest block's: one read checks
            // its root node, so that a top left stale without a mark (which would give wrong
            // roots, as nodes are read by path) is rebuilt instead of used.
            let stored = inner
                .db
                .get_pinned_cf(inner.cf(StateColumn::AccountTrie), trie_key(None, &[]))?
                .map(|node| keccak256(&node[..]));
            if stored != Some(root) {
                tracing::warn!(
                    number,
                    %root,
                    ?stored,
                    "the stored account trie does not match the latest root: rebuilding it"
                );
                rebuild_account_trie(&inner, head, None, MEMORY_LEAVES)?;
            }
        }
        // A rebuild killed after it finished, or one started without the mark, may have left
        // its bucket files.
        remove_buckets(path);
        if let Some((latest, _)) = head.latest {
            let mut filters = inner.history_filters.write();
            for block in head.first_changeset..=latest {
                if let Some(filter) = inner.changeset_filter(block)? {
                    filters.insert(block, filter);
                }
            }
        }
        let filter = inner.build_filter(inner.config.filter_expected_accounts)?;
        if filter.is_overfull() {
            let count = filter.inserted();
            *inner.filter.write() = inner.build_filter(count * 2)?;
        } else {
            *inner.filter.write() = filter;
        }
        tracing::debug!(path = %path.display(), ?head, "opened state database");
        Ok(StateDb {
            inner: Arc::new(inner),
        })
    }

    /// The latest committed block and its state root; `None` for an empty database.
    pub fn latest(&self) -> Option<(u64, B256)> {
        self.inner.head.read().latest
    }

    /// The oldest block whose state is still readable (and revertible to), `None` if empty.
    pub fn oldest_readable(&self) -> Option<u64> {
        let head = *self.inner.head.read();
        head.latest.map(|_| head.oldest_readable())
    }

    /// The state root after block `number`, for retained blocks.
    pub fn root_at(&self, number: u64) -> Result<B256, StateError> {
        let head = *self.inner.head.read();
        head.check_readable(number)?;
        if let Some((latest, root)) = head.latest
            && latest == number
        {
            return Ok(root);
        }
        let cf = self.inner.cf(StateColumn::Meta);
        match self.inner.db.get_pinned_cf(cf, root_key(number))? {
            Some(bytes) if bytes.len() == 32 => Ok(B256::from_slice(&bytes)),
            _ => Err(StateError::corruption(format!(
                "root of retained block {number} missing"
            ))),
        }
    }

    /// A reader of the latest state (it follows later commits), for the executor and RPC.
    pub fn reader(&self) -> LatestReader {
        LatestReader {
            inner: Arc::clone(&self.inner),
        }
    }

    /// A reader of the state after block `number`, which must be retained.
    pub fn reader_at(&self, number: u64) -> Result<HistoricalReader, StateError> {
        self.inner.head.read().check_readable(number)?;
        Ok(HistoricalReader {
            inner: Arc::clone(&self.inner),
            number,
        })
    }

    /// The configuration the database was opened with.
    pub fn config(&self) -> &StateConfig {
        &self.inner.config
    }

    /// The small-storage bound in force: the one recorded when the database was created,
    /// whatever [`StateConfig::small_storage_max_slots`] says now (0 for databases from
    /// builds before the bound).
    pub fn small_storage_max_slots(&self) -> usize {
        self.inner.small_storage_max_slots
    }

    /// A value of the node's chain data.
    pub fn get_chain(
        &self,
        column: ChainColumn,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        let cf = self.inner.chain_cf(column);
        Ok(self
            .inner
            .db
            .get_pinned_cf(cf, key)?
            .map(|bytes| bytes.to_vec()))
    }

    /// Chain-data entries whose key starts with `prefix`, in key order.
    pub fn scan_chain_prefix<'a>(
        &'a self,
        column: ChainColumn,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StateError>> + use<'a> {
        let iter = self.scan_chain_from(column, prefix);
        let prefix = prefix.to_vec();
        iter.take_while(move |entry| match entry {
            Ok((key, _)) => key.starts_with(&prefix),
            Err(_) => true,
        })
    }

    /// Chain-data entries from key `start` (inclusive) to the end of the column, in key order.
    pub fn scan_chain_from<'a>(
        &'a self,
        column: ChainColumn,
        start: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StateError>> + use<'a> {
        let cf = self.inner.chain_cf(column);
        let mode = rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward);
        self.inner.db.iterator_cf(cf, mode).map(|entry| {
            entry
                .map(|(key, value)| (key.into_vec(), value.into_vec()))
                .map_err(StateError::from)
        })
    }

    /// Recomputes the latest state root from the flat accounts and storage alone, ignoring the
    /// stored trie nodes and the storage roots recorded with the accounts. A verification tool:
    /// it reads the whole state.
    pub fn recompute_root_from_flat(&self) -> Result<B256, StateError> {
        let inner = &self.inner;
        let _commits = inner.commit_lock.lock();
        let snapshot = inner.db.snapshot();
        let mut read_options = ReadOptions::default();
        read_options.set_snapshot(&snapshot);

        // Storage, grouped by account (keys are address ++ slot, in order).
        let mut storage: Vec<(Address, Vec<(U256, U256)>)> = Vec::new();
        let mut iter = inner
            .db
            .raw_iterator_cf_opt(inner.cf(StateColumn::Storage), read_options);
        iter.seek_to_first();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if key.len() != 52 {
                return Err(StateError::corruption("storage key is not 52 bytes"));
            }
            let address = Address::from_slice(&key[..20]);
            let slot = U256::from_be_slice(&key[20..]);
            let value = decode_value(value)?;
            match storage.last_mut() {
                Some((last, slots)) if *last == address => slots.push((slot, value)),
                _ => storage.push((address, vec![(slot, value)])),
            }
            iter.next();
        }
        iter.status()?;
        let storage_roots: std::collections::HashMap<Address, B256> = storage
            .par_iter()
            .map(|(address, slots)| (*address, trie::storage_root(slots.iter().copied())))
            .collect();

        let mut read_options = ReadOptions::default();
        read_options.set_snapshot(&snapshot);
        let mut leaves: Vec<(B256, Vec<u8>)> = Vec::new();
        let mut iter = inner
            .db
            .raw_iterator_cf_opt(inner.cf(StateColumn::Accounts), read_options);
        iter.seek_to_first();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            let address = Address::from_slice(key);
            let account = StoredAccount::decode(value)?;
            let storage_root = storage_roots
                .get(&address)
                .copied()
                .unwrap_or(EMPTY_ROOT_HASH);
            leaves.push((
                keccak256(address),
                trie::account_rlp(&account.info, storage_root),
            ));
            iter.next();
        }
        iter.status()?;
        leaves.sort_unstable_by_key(|leaf| leaf.0);
        if storage_roots.keys().any(|address| {
            leaves
                .binary_search_by(|(k, _)| k.cmp(&keccak256(address)))
                .is_err()
        }) {
            return Err(StateError::corruption(
                "storage of an account that does not exist",
            ));
        }
        Ok(build_root(&leaves, None))
    }

    /// Nodes of the latest account trie: those stored, with the changes of the pending top
    /// applied (both taken under the commit lock, which is released before counting).
    fn account_trie_nodes(&self) -> Result<u64, StateError> {
        let inner = &*self.inner;
        let cf = inner.cf(StateColumn::AccountTrie);
        let (snapshot, pending) = {
            let _commit = inner.commit_lock.lock();
            let pending: Vec<(Vec<u8>, bool)> = inner
                .pending_top
                .lock()
                .nodes
                .iter()
                .map(|(key, node)| (key.clone(), node.is_some()))
                .collect();
            (inner.db.snapshot(), pending)
        };
        let options = || {
            let mut options = ReadOptions::default();
            options.set_snapshot(&snapshot);
            options
        };
        let mut iter = inner.db.raw_iterator_cf_opt(cf, options());
        iter.seek_to_first();
        let mut nodes = 0u64;
        while iter.valid() {
            nodes += 1;
            iter.next();
        }
        iter.status()?;
        let read = options();
        for (key, written) in pending {
            match (
                inner.db.get_pinned_cf_opt(cf, &key, &read)?.is_some(),
                written,
            ) {
                (false, true) => nodes += 1,
                (true, false) => nodes -= 1,
                _ => {}
            }
        }
        Ok(nodes)
    }

    /// Counts what is stored (walks the column families; for tests and monitoring). The
    /// account-trie count includes the unwritten top's changes.
    pub fn stats(&self) -> Result<StateStats, StateError> {
        let mut changesets = 0;
        let mut history_entries = 0;
        let mut iter = self
            .inner
            .db
            .raw_iterator_cf(self.inner.cf(StateColumn::Changesets));
        iter.seek_to_first();
        while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
            if key.ends_with(&[0xff, 0xff]) {
                changesets += 1;
                history_entries += u64::from(Header::decode(value)?.entries);
            }
            iter.next();
        }
        iter.status()?;
        let count = |column: StateColumn| -> Result<u64, StateError> {
            let mut iter = self.inner.db.raw_iterator_cf(self.inner.cf(column));
            iter.seek_to_first();
            let mut n = 0;
            while iter.valid() {
                n += 1;
                iter.next();
            }
            iter.status()?;
            Ok(n)
        };
        Ok(StateStats {
            accounts: count(StateColumn::Accounts)?,
            storage_slots: count(StateColumn::Storage)?,
            account_trie_nodes: self.account_trie_nodes()?,
            storage_trie_nodes: count(StateColumn::StorageTrie)?,
            changesets,
            history_entries,
        })
    }

    /// Writes the account trie's pending top (see [`StateConfig::top_write_interval`]) and
    /// flushes all memtables to SST files: at shutdown, so that the next open needs no
    /// rebuild, or before measuring the size on disk.
    pub fn flush(&self) -> Result<(), StateError> {
        {
            let _commit = self.inner.commit_lock.lock();
            write_pending_top(&self.inner)?;
        }
        let db = &self.inner.db;
        let families: Vec<&ColumnFamily> = StateColumn::ALL
            .iter()
            .map(|c| self.inner.cf(*c))
            .chain(ChainColumn::ALL.iter().map(|c| self.inner.chain_cf(*c)))
            .collect();
        db.flush_cfs_opt(&families, &rocksdb::FlushOptions::default())?;
        Ok(())
    }

    /// Compacts every column family fully (reclaims space of deleted entries).
    pub fn compact(&self) -> Result<(), StateError> {
        for column in StateColumn::ALL {
            self.inner
                .db
                .compact_range_cf(self.inner.cf(column), None::<&[u8]>, None::<&[u8]>);
        }
        for column in ChainColumn::ALL {
            self.inner.db.compact_range_cf(
                self.inner.chain_cf(column),
                None::<&[u8]>,
                None::<&[u8]>,
            );
        }
        Ok(())
    }

    /// Bytes of live SST files plus memtables, over all column families.
    pub fn disk_usage(&self) -> Result<u64, StateError> {
        let db = &self.inner.db;
        let mut total = 0;
        let families = StateColumn::ALL
            .iter()
            .map(|c| self.inner.cf(*c))
            .chain(ChainColumn::ALL.iter().map(|c| self.inner.chain_cf(*c)));
        for cf in families {
            total += db
                .property_int_value_cf(cf, "rocksdb.total-sst-files-size")?
                .unwrap_or(0);
            total += db
                .property_int_value_cf(cf, "rocksdb.cur-size-all-mem-tables")?
                .unwrap_or(0);
        }
        Ok(total)
    }
}

/// Reads the committed head from the meta column family.
fn read_head(inner: &Inner) -> Result<Head, StateError> {
    let meta = inner.cf(StateColumn::Meta);
    if let Some(version) = inner.db.get_pinned_cf(meta, META_VERSION)? {
        let version: [u8; 4] = version[..]
            .try_into()
            .map_err(|_| StateError::corruption("bad schema version record"))?;
        let version = u32::from_be_bytes(version);
        if !(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION).contains(&version) {
            return Err(StateError::corruption(format!(
                "schema version {version} (this build reads {OLDEST_SCHEMA_VERSION} to \
                 {SCHEMA_VERSION})"
            )));
        }
    }
    let latest = match inner.db.get_pinned_cf(meta, META_LATEST)? {
        Some(bytes) if bytes.len() == 40 => {
            let number = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
            Some((number, B256::from_slice(&bytes[8..])))
        }
        Some(_) => return Err(StateError::corruption("bad latest-block record")),
        None => None,
    };
    let first_changeset = match inner.db.get_pinned_cf(meta, META_FIRST_CHANGESET)? {
        Some(bytes) if bytes.len() == 8 => {
            u64::from_be_bytes(bytes[..].try_into().expect("8 bytes"))
        }
        Some(_) => return Err(StateError::corruption("bad first-changeset record")),
        None => 1,
    };
    Ok(Head {
        latest,
        first_changeset,
    })
}

/// Writes the account trie's pending top, if any, and clears the mark (a clean close).
fn write_pending_top(inner: &Inner) -> Result<(), StateError> {
    let mut pending = inner.pending_top.lock();
    // A commit that changed no top node still marked the top as pending.
    if pending.interrupted || (pending.nodes.is_empty() && pending.commits == 0) {
        return Ok(());
    }
    let mut batch = rocksdb::WriteBatch::default();
    stage_node_changes(
        &mut batch,
        inner.cf(StateColumn::AccountTrie),
        &pending.nodes,
    );
    batch.delete_cf(inner.cf(StateColumn::Meta), META_TOP_PENDING);
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    inner.db.write_opt(batch, &sync)?;
    pending.nodes.clear();
    pending.commits = 0;
    Ok(())
}

/// Adds `changes` to `batch`, in key order (RocksDB inserts keys into a memtable faster in
/// order).
pub(crate) fn stage_node_changes(
    batch: &mut rocksdb::WriteBatch,
    cf: &ColumnFamily,
    changes: &NodeChanges,
) {
    let mut sorted: Vec<(&Vec<u8>, &Option<Vec<u8>>)> = changes.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
    stage_nodes(batch, cf, sorted);
}

/// Adds trie-node puts (`Some`) and deletions (`None`) to `batch`.
pub(crate) fn stage_nodes<'a>(
    batch: &mut rocksdb::WriteBatch,
    cf: &ColumnFamily,
    nodes: impl IntoIterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
) {
    for (key, node) in nodes {
        match node {
            Some(node) => batch.put_cf(cf, key, node),
            None => batch.delete_cf(cf, key),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(error) = write_pending_top(self) {
            tracing::warn!(
                %error,
                "could not write the account trie's top at close: the next open rebuilds it"
            );
        }
    }
}

/// The database's small-storage bound: stored at creation, so that every commit of a
/// database agrees on which storage tries have stored nodes whatever later configurations say.
fn small_storage_max_slots(inner: &Inner, head: &Head) -> Result<usize, StateError> {
    let meta = inner.cf(StateColumn::Meta);
    if let Some(bytes) = inner.db.get_pinned_cf(meta, META_SMALL_STORAGE)? {
        let bytes: [u8; 4] = bytes[..]
            .try_into()
            .map_err(|_| StateError::corruption("bad small-storage record"))?;
        return Ok(u32::from_be_bytes(bytes) as usize);
    }
    if head.latest.is_some() {
        // Created before the bound existed: every non-empty storage trie has its nodes.
        return Ok(0);
    }
    let bound = inner
        .config
        .small_storage_max_slots
        .min(MAX_SMALL_STORAGE_SLOTS);
    inner.db.put_cf_opt(
        meta,
        META_SMALL_STORAGE,
        bound.to_be_bytes(),
        &inner.write_options,
    )?;
    Ok(bound as usize)
}

/// Encodes the latest-block record.
pub(crate) fn latest_record(number: u64, root: B256) -> [u8; 40] {
    let mut record = [0u8; 40];
    record[..8].copy_from_slice(&number.to_be_bytes());
    record[8..].copy_from_slice(root.as_slice());
    record
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chain_primitives::{Account, AccountUpdate, StateDiff};

    /// A diff giving `address` the slots `0..slots` with values from `first`.
    fn with_slots(address: Address, slots: u64, first: u64) -> StateDiff {
        let update = AccountUpdate {
            info: Some(Account::with_balance(U256::from(first))),
            storage_cleared: false,
            storage: (0..slots)
                .map(|slot| (U256::from(slot), U256::from(first + slot)))
                .collect(),
        };
        StateDiff {
            accounts: [(address, update)].into_iter().collect(),
            ..StateDiff::default()
        }
    }

    /// Blocks of `accounts` funded accounts (addresses from `seed`), for a trie several levels
    /// deep.
    fn funded(seed: u64, accounts: u64) -> StateDiff {
        StateDiff {
            accounts: (0..accounts)
                .map(|i| {
                    let address = Address::from_slice(
                        &keccak256([seed.to_be_bytes(), i.to_be_bytes()].concat())[..20],
                    );
                    let update = AccountUpdate {
                        info: Some(Account::with_balance(U256::from(seed * 1000 + i + 1))),
                        storage_cleared: false,
                        storage: BTreeMap::new(),
                    };
                    (address, update)
                })
                .collect(),
            ..StateDiff::default()
        }
    }

    /// Whether the closed database at `path` marks its account trie's top as unwritten.
    fn top_pending_on_disk(path: &Path) -> bool {
        let names = DB::list_cf(&Options::default(), path).unwrap();
        let raw = DB::open_cf_for_read_only(&Options::default(), path, &names, false).unwrap();
        let meta = raw.cf_handle(StateColumn::Meta.name()).unwrap();
        raw.get_cf(meta, META_TOP_PENDING).unwrap().is_some()
    }

    /// Whether the open database marks its account trie's top as unwritten.
    fn marked(db: &StateDb) -> bool {
        let meta = db.inner.cf(StateColumn::Meta);
        db.inner
            .db
            .get_cf(meta, META_TOP_PENDING)
            .unwrap()
            .is_some()
    }

    /// A database writing its top every 4th commit (three resident levels), its directory,
    /// and a reference database writing every commit (with its directory).
    fn deferred_and_reference() -> (
        StateConfig,
        tempfile::TempDir,
        StateDb,
        tempfile::TempDir,
        StateDb,
    ) {
        let deferred = StateConfig {
            top_write_interval: 4,
            resident_trie_depth: 3,
            ..StateConfig::for_tests()
        };
        let every_commit = StateConfig {
            top_write_interval: 1,
            ..StateConfig::for_tests()
        };
        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), deferred.clone()).unwrap();
        let reference_dir = tempfile::tempdir().unwrap();
        let reference = StateDb::open(reference_dir.path(), every_commit).unwrap();
        (deferred, dir, db, reference_dir, reference)
    }

    /// Commits block `number` to `db` and to `reference`, checking that the roots agree.
    fn commit_both(db: &StateDb, reference: &StateDb, number: u64, diff: &StateDiff) {
        assert_eq!(
            db.commit_block(number, diff, &[]).unwrap(),
            reference.commit_block(number, diff, &[]).unwrap(),
            "block {number}"
        );
    }

    /// A process that dies with the account trie's top unwritten leaves a database whose next
    /// open rebuilds the trie: the same root, exactly the nodes of a database that wrote every
    /// commit, and later commits giving the roots that database gives.
    #[test]
    fn an_unwritten_top_is_rebuilt_at_open() {
        let (deferred, dir, db, _reference_dir, reference) = deferred_and_reference();
        for number in 0..6 {
            let diff = funded(number, 300);
            commit_both(&db, &reference, number, &diff);
        }
        // Block 3 wrote the top; blocks 4 and 5 left their changes in memory.
        assert!(!db.inner.pending_top.lock().nodes.is_empty());
        assert!(marked(&db));
        assert_eq!(db.stats().unwrap(), reference.stats().unwrap());
        // What an imported block's check sees goes through the pending top too.
        let next = funded(6, 50);
        assert_eq!(
            db.state_root_after(&next).unwrap(),
            reference.state_root_after(&next).unwrap()
        );
        // The process dies: nothing writes the pending nodes or clears the mark.
        *db.inner.pending_top.lock() = PendingTop::default();
        drop(db);
        assert!(top_pending_on_disk(dir.path()));

        let db = StateDb::open(dir.path(), deferred.clone()).unwrap();
        assert!(!marked(&db));
        assert_eq!(db.latest(), reference.latest());
        assert_eq!(contents(&db), contents(&reference));
        for number in 6..14 {
            let diff = funded(number, 200);
            commit_both(&db, &reference, number, &diff);
        }
        // Block 13 wrote the top; an empty block changes no top node but marks it pending.
        let empty = StateDiff::default();
        commit_both(&db, &reference, 14, &empty);
        assert!(db.inner.pending_top.lock().nodes.is_empty());
        // A clean close writes the pending top and clears the mark: the next open needs no
        // rebuild.
        drop(db);
        assert!(!top_pending_on_disk(dir.path()));
        let db = StateDb::open(dir.path(), deferred).unwrap();
        assert!(!marked(&db));
        assert_eq!(contents(&db), contents(&reference));
        assert_eq!(
            db.recompute_root_from_flat().unwrap(),
            db.latest().unwrap().1
        );
        let diff = funded(15, 100);
        commit_both(&db, &reference, 15, &diff);
    }

    /// A stored key and value.
    pub(crate) type Entry = (Box<[u8]>, Box<[u8]>);

    /// The account-trie column family's entries, in key order.
    pub(crate) fn contents(db: &StateDb) -> Vec<Entry> {
        db.inner
            .db
            .iterator_cf(
                db.inner.cf(StateColumn::AccountTrie),
                rocksdb::IteratorMode::Start,
            )
            .map(Result::unwrap)
            .collect()
    }

    /// Deletes accounts `keep..accounts` of [`funded`]`(seed, accounts)`.
    fn deleted(seed: u64, accounts: u64, keep: u64) -> StateDiff {
        let mut diff = funded(seed, accounts);
        diff.accounts = diff
            .accounts
            .into_iter()
            .skip(keep as usize)
            .map(|(address, _)| {
                let update = AccountUpdate {
                    info: None,
                    storage_cleared: true,
                    storage: BTreeMap::new(),
                };
                (address, update)
            })
            .collect();
        diff
    }

    /// Deletions that collapse top branches while the top is pending, a revert, `flush`, and a
    /// commit interrupted while it was published: the stored account trie ends up exactly
    /// like that of a database that wrote every commit, and the roots agree throughout.
    #[test]
    fn a_pending_top_survives_deletions_reverts_flushes_and_interruptions() {
        let (deferred, dir, db, _reference_dir, reference) = deferred_and_reference();
        let both =
            |number: u64, diff: &StateDiff, db: &StateDb| commit_both(db, &reference, number, diff);
        both(0, &funded(0, 300), &db);
        both(1, &funded(1, 300), &db);
        // Down to 10 of the first 300: branches of the top collapse into leaves.
        both(2, &deleted(0, 300, 10), &db);
        assert!(marked(&db));
        assert_eq!(db.stats().unwrap(), reference.stats().unwrap());
        let next = deleted(1, 300, 3);
        assert_eq!(
            db.state_root_after(&next).unwrap(),
            reference.state_root_after(&next).unwrap()
        );
        both(3, &next, &db);
        // A revert writes the whole top.
        db.revert_to(1).unwrap();
        reference.revert_to(1).unwrap();
        assert_eq!(db.latest(), reference.latest());
        assert!(!marked(&db));
        assert_eq!(contents(&db), contents(&reference));
        both(2, &deleted(1, 300, 100), &db);
        both(3, &funded(3, 40), &db);
        assert!(marked(&db));
        // What the node does at shutdown.
        db.flush().unwrap();
        assert!(!marked(&db));
        assert_eq!(contents(&db), contents(&reference));
        both(4, &deleted(3, 40, 1), &db);
        assert!(marked(&db));
        // A publication interrupted by a panic: nothing commits any more, and closing leaves
        // the mark so that the next open rebuilds.
        db.inner.pending_top.lock().interrupted = true;
        assert!(matches!(
            db.commit_block(5, &funded(5, 10), &[]),
            Err(StateError::Interrupted)
        ));
        drop(db);
        assert!(top_pending_on_disk(dir.path()));
        let db = StateDb::open(dir.path(), deferred).unwrap();
        assert!(!marked(&db));
        assert_eq!(db.latest(), reference.latest());
        assert_eq!(contents(&db), contents(&reference));
        both(5, &funded(5, 10), &db);
        // A stale top whose mark was lost is found by the root check at open.
        both(6, &deleted(5, 10, 2), &db);
        *db.inner.pending_top.lock() = PendingTop::default();
        let meta = db.inner.cf(StateColumn::Meta);
        db.inner.db.delete_cf(meta, META_TOP_PENDING).unwrap();
        drop(db);
        assert!(!top_pending_on_disk(dir.path()));
        let db = StateDb::open(dir.path(), StateConfig::for_tests()).unwrap();
        assert_eq!(contents(&db), contents(&reference));
        both(7, &funded(7, 10), &db);
    }

    /// `funded(seed, accounts)`'s accounts with another balance and slot 1 set.
    fn changed(seed: u64, accounts: u64, balance: u64) -> StateDiff {
        let mut diff = funded(seed, accounts);
        for update in diff.accounts.values_mut() {
            update.info = Some(Account::with_balance(U256::from(balance)));
            update.storage = [(U256::from(1), U256::from(balance))].into_iter().collect();
        }
        diff
    }

    /// A commit whose write fails (RocksDB refuses it) leaves the database, the caches and the
    /// pending top as they were: reads give the values from before, retrying the block gives
    /// the root a database without the failure gives, and a crash after a failed top-writing
    /// commit still rebuilds the same trie.
    #[test]
    fn a_failed_write_changes_nothing() {
        use chain_primitives::StateReader;
        use std::sync::atomic::Ordering;
        let (deferred, dir, db, _reference_dir, reference) = deferred_and_reference();
        let both =
            |number: u64, diff: &StateDiff, db: &StateDb| commit_both(db, &reference, number, diff);
        for number in 0..5 {
            both(number, &funded(number, 200), &db);
        }
        let before = db.latest();
        let probe = *funded(0, 1).accounts.keys().next().unwrap();
        // Cached before the failed commit changes it.
        let old_account = db.reader().account(&probe).unwrap();
        assert_eq!(
            db.reader().storage(&probe, &U256::from(1)).unwrap(),
            U256::ZERO
        );
        let pending_before = db.inner.pending_top.lock().nodes.clone();
        assert!(!pending_before.is_empty());

        let diff = changed(0, 100, 777);
        db.inner.fail_next_write.store(true, Ordering::Relaxed);
        assert!(matches!(
            db.commit_block(5, &diff, &[]),
            Err(StateError::Rocksdb(_))
        ));
        assert_eq!(db.latest(), before);
        assert_eq!(db.reader().account(&probe).unwrap(), old_account);
        assert_eq!(
            db.reader().storage(&probe, &U256::from(1)).unwrap(),
            U256::ZERO
        );
        assert_eq!(db.inner.pending_top.lock().nodes, pending_before);
        assert!(marked(&db));
        both(5, &diff, &db);
        assert_eq!(
            db.reader().storage(&probe, &U256::from(1)).unwrap(),
            U256::from(777)
        );
        both(6, &funded(6, 50), &db);

        // Block 7 writes the top: its failure must keep the pending nodes pending.
        let diff = changed(6, 30, 888);
        db.inner.fail_next_write.store(true, Ordering::Relaxed);
        assert!(db.commit_block(7, &diff, &[]).is_err());
        assert!(marked(&db));
        both(7, &diff, &db);
        assert!(!marked(&db));
        assert_eq!(contents(&db), contents(&reference));
        both(8, &changed(0, 20, 999), &db);
        db.inner.fail_next_write.store(true, Ordering::Relaxed);
        assert!(db.commit_block(9, &funded(9, 10), &[]).is_err());
        // The process dies with block 8's top unwritten.
        *db.inner.pending_top.lock() = PendingTop::default();
        drop(db);
        let db = StateDb::open(dir.path(), deferred).unwrap();
        assert_eq!(db.latest(), reference.latest());
        assert_eq!(contents(&db), contents(&reference));
        both(9, &funded(9, 10), &db);
    }

    /// A rebuild interrupted after it deleted the stored account trie and wrote part of the
    /// new one (the mark still set) is done again at the next open, from the start.
    #[test]
    fn an_interrupted_rebuild_starts_over() {
        let (deferred, dir, db, _reference_dir, reference) = deferred_and_reference();
        for number in 0..6 {
            let diff = funded(number, 300);
            commit_both(&db, &reference, number, &diff);
        }
        *db.inner.pending_top.lock() = PendingTop::default();
        drop(db);
        {
            // What a rebuild killed midway leaves: the old trie deleted, every other node
            // of the new one written (the root among them), the mark still there.
            let names = DB::list_cf(&Options::default(), dir.path()).unwrap();
            let raw = DB::open_cf(&Options::default(), dir.path(), &names).unwrap();
            let cf = raw.cf_handle(StateColumn::AccountTrie.name()).unwrap();
            let mut batch = rocksdb::WriteBatch::default();
            batch.delete_range_cf(cf, [].as_slice(), [0xffu8; 34].as_slice());
            let expected = contents(&reference);
            let root_key = trie_key(None, &[]);
            for (key, value) in expected.iter().step_by(2) {
                batch.put_cf(cf, key, value);
            }
            let root = expected.iter().find(|(key, _)| **key == *root_key).unwrap();
            batch.put_cf(cf, &root.0, &root.1);
            raw.write(batch).unwrap();
            let meta = raw.cf_handle(StateColumn::Meta.name()).unwrap();
            assert!(raw.get_cf(meta, META_TOP_PENDING).unwrap().is_some());
        }
        // And the bucket files of a larger state's rebuild.
        let buckets = dir.path().join(crate::rebuild::BUCKETS_DIR);
        std::fs::create_dir_all(&buckets).unwrap();
        std::fs::write(buckets.join("7"), [1u8; 40]).unwrap();
        let db = StateDb::open(dir.path(), deferred).unwrap();
        assert!(!buckets.exists());
        assert!(!marked(&db));
        assert_eq!(db.latest(), reference.latest());
        assert_eq!(contents(&db), contents(&reference));
        for number in 6..10 {
            let diff = funded(number, 100);
            commit_both(&db, &reference, number, &diff);
        }
    }

    /// A database that got blocks from a build without the small-storage bound (schema 1, no
    /// bound record) keeps storing every storage trie whatever the configuration says; a new
    /// database takes the configured bound.
    #[test]
    fn databases_from_before_the_bound_keep_every_storage_trie() {
        let owner = Address::repeat_byte(1);
        let dir = tempfile::tempdir().unwrap();
        let unbounded = StateConfig {
            small_storage_max_slots: 0,
            ..StateConfig::for_tests()
        };
        let db = StateDb::open(dir.path(), unbounded).unwrap();
        db.commit_block(0, &with_slots(owner, 2, 1), &[]).unwrap();
        let meta = db.inner.cf(StateColumn::Meta);
        db.inner.db.delete_cf(meta, META_SMALL_STORAGE).unwrap();
        db.inner
            .db
            .put_cf(meta, META_VERSION, 1u32.to_be_bytes())
            .unwrap();
        assert!(db.stats().unwrap().storage_trie_nodes > 0);
        drop(db);

        // The test configuration's bound is 4: three slots would be small storage.
        let db = StateDb::open(dir.path(), StateConfig::for_tests()).unwrap();
        assert_eq!(db.inner.small_storage_max_slots, 0);
        db.commit_block(1, &with_slots(owner, 3, 10), &[]).unwrap();
        assert!(db.stats().unwrap().storage_trie_nodes > 0);
        assert_eq!(
            db.recompute_root_from_flat().unwrap(),
            db.latest().unwrap().1
        );
        drop(db);

        let dir = tempfile::tempdir().unwrap();
        let db = StateDb::open(dir.path(), StateConfig::for_tests()).unwrap();
        assert_eq!(db.inner.small_storage_max_slots, 4);
        db.commit_block(0, &with_slots(owner, 3, 1), &[]).unwrap();
        assert_eq!(db.stats().unwrap().storage_trie_nodes, 0);
        drop(db);
        // Later opens keep the stored bound, not the configured one (16).
        let reopened = StateDb::open(dir.path(), StateConfig::default()).unwrap();
        assert_eq!(reopened.inner.small_storage_max_slots, 4);
    }
}
