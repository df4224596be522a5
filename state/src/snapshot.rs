//! Snapshots of the latest state: a versioned, chunked binary stream of accounts, storage and
//! code, and its import into an empty database with the trie rebuilt and checked against the
//! root in the snapshot's header.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! header   magic "CHDSNAP\0" (8) | version u16 = 1 | block u64 | state root (32)
//! chunks   length u32 (1..=16 MiB) | records...        (repeated)
//! end      length u32 = 0 | accounts u64 | slots u64 | codes u64
//! records  0x01 account: address (20) nonce u64 balance (32) code hash (32)
//!          0x02 slot of the last account: slot (32) value (32, non-zero)
//!          0x03 code: hash (32) length u32 bytes
//! ```
//!
//! Accounts come in ascending address order, each followed by its slots in ascending order;
//! codes (those the accounts reference) in ascending hash order after all accounts. Records
//! never straddle chunks, so chunks can be fetched and checked one by one (state sync).

use crate::codec::{Reader, StoredAccount, decode_value, storage_key};
use crate::columns::StateColumn;
use crate::commit::storage_trie;
use crate::db::{
    META_FIRST_CHANGESET, META_LATEST, META_VERSION, SCHEMA_VERSION, StateDb, latest_record,
    root_key, trie_key,
};
use crate::rebuild::write_account_trie;
use crate::trie::{EMPTY_ROOT_HASH, account_rlp, storage_value_rlp};
use crate::{StateConfig, StateError};
use alloy_primitives::{Address, B256, U256, keccak256};
use chain_primitives::{Account, KECCAK_EMPTY};
use rocksdb::{ColumnFamily, DB, ReadOptions, WriteBatch};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"CHDSNAP\0";
const VERSION: u16 = 1;
/// Chunks are cut once they reach this size.
const CHUNK_TARGET: usize = 1 << 20;
/// Larger chunks are rejected (bounds what a hostile stream can make the importer allocate).
const MAX_CHUNK: usize = 16 << 20;
const TAG_ACCOUNT: u8 = 1;
const TAG_SLOT: u8 = 2;
const TAG_CODE: u8 = 3;
/// Database writes during import are flushed at this batch size.
const IMPORT_BATCH_BYTES: usize = 8 << 20;

/// What a snapshot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The block whose state it is.
    pub block: u64,
    /// That block's state root.
    pub root: B256,
    /// Number of accounts.
    pub accounts: u64,
    /// Number of non-zero storage slots.
    pub storage_slots: u64,
    /// Number of contract codes.
    pub codes: u64,
    /// Size of the stream in bytes.
    pub bytes: u64,
}

/// Buffers records and writes them out as length-prefixed chunks.
struct ChunkWriter<W: Write> {
    out: W,
    chunk: Vec<u8>,
    written: u64,
}

impl<W: Write> ChunkWriter<W> {
    fn record(&mut self, record: &[u8]) -> Result<(), StateError> {
        if !self.chunk.is_empty() && self.chunk.len() + record.len() > CHUNK_TARGET {
            self.flush_chunk()?;
        }
        self.chunk.extend_from_slice(record);
        Ok(())
    }

    fn flush_chunk(&mut self) -> Result<(), StateError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.raw(&(self.chunk.len() as u32).to_be_bytes())?;
        let chunk = std::mem::take(&mut self.chunk);
        self.raw(&chunk)?;
        self.chunk = chunk;
        self.chunk.clear();
        Ok(())
    }

    fn raw(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }
}

impl StateDb {
    /// Writes the latest state as a snapshot to `writer` (from a consistent RocksDB snapshot:
    /// commits may continue meanwhile).
    pub fn export_snapshot(&self, writer: impl Write) -> Result<SnapshotInfo, StateError> {
        let inner = &*self.inner;
        let db = &inner.db;
        let snapshot = db.snapshot();
        let latest = snapshot
            .get_cf(inner.cf(StateColumn::Meta), META_LATEST)?
            .ok_or(StateError::UnknownBlock {
                number: 0,
                latest: None,
            })?;
        if latest.len() != 40 {
            return Err(StateError::corruption("bad latest-block record"));
        }
        let block = u64::from_be_bytes(latest[..8].try_into().expect("8 bytes"));
        let root = B256::from_slice(&latest[8..]);

        let mut out = ChunkWriter {
            out: writer,
            chunk: Vec::with_capacity(CHUNK_TARGET + 4096),
            written: 0,
        };
        let mut header = Vec::with_capacity(50);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_be_bytes());
        header.extend_from_slice(&block.to_be_bytes());
        header.extend_from_slice(root.as_slice());
        out.raw(&header)?;

        let mut info = SnapshotInfo {
            block,
            root,
            accounts: 0,
            storage_slots: 0,
            codes: 0,
            bytes: 0,
        };
        let mut code_hashes = BTreeSet::new();
        let mut options = ReadOptions::default();
        options.set_snapshot(&snapshot);
        let mut accounts = db.raw_iterator_cf_opt(inner.cf(StateColumn::Accounts), options);
        accounts.seek_to_first();
        let mut record = Vec::with_capacity(128);
        while let (Some(key), Some(value)) = (accounts.key(), accounts.value()) {
            let address =
                Address::try_from(key).map_err(|_| StateError::corruption("account key length"))?;
            let account = StoredAccount::decode(value)?;
            record.clear();
            record.push(TAG_ACCOUNT);
            record.extend_from_slice(address.as_slice());
            record.extend_from_slice(&account.info.nonce.to_be_bytes());
            record.extend_from_slice(&account.info.balance.to_be_bytes::<32>());
            record.extend_from_slice(account.info.code_hash.as_slice());
            out.record(&record)?;
            info.accounts += 1;
            if account.info.code_hash != KECCAK_EMPTY {
                code_hashes.insert(account.info.code_hash);
            }
            if account.storage_root != EMPTY_ROOT_HASH {
                let mut options = ReadOptions::default();
                options.set_snapshot(&snapshot);
                options.set_prefix_same_as_start(true);
                let mut slots = db.raw_iterator_cf_opt(inner.cf(StateColumn::Storage), options);
                slots.seek(address.as_slice());
                while let (Some(key), Some(value)) = (slots.key(), slots.value()) {
                    if !key.starts_with(address.as_slice()) {
                        break;
                    }
                    let slot = U256::from_be_slice(&key[20..]);
                    record.clear();
                    record.push(TAG_SLOT);
                    record.extend_from_slice(&slot.to_be_bytes::<32>());
                    record.extend_from_slice(&decode_value(value)?.to_be_bytes::<32>());
                    out.record(&record)?;
                    info.storage_slots += 1;
                    slots.next();
                }
                slots.status()?;
            }
            accounts.next();
        }
        accounts.status()?;

        let code_cf = inner.cf(StateColumn::Code);
        for hash in code_hashes {
            let code = snapshot
                .get_cf(code_cf, hash)?
                .ok_or_else(|| StateError::corruption(format!("code {hash} missing")))?;
            record.clear();
            record.push(TAG_CODE);
            record.extend_from_slice(hash.as_slice());
            record.extend_from_slice(&(code.len() as u32).to_be_bytes());
            record.extend_from_slice(&code);
            out.record(&record)?;
            info.codes += 1;
        }
        out.flush_chunk()?;
        let mut trailer = Vec::with_capacity(28);
        trailer.extend_from_slice(&0u32.to_be_bytes());
        trailer.extend_from_slice(&info.accounts.to_be_bytes());
        trailer.extend_from_slice(&info.storage_slots.to_be_bytes());
        trailer.extend_from_slice(&info.codes.to_be_bytes());
        out.raw(&trailer)?;
        out.out.flush()?;
        info.bytes = out.written;
        Ok(info)
    }

    /// Imports a snapshot into an empty database at `path` (created if missing): writes the
    /// flat state, rebuilds every trie and accepts the import only if the rebuilt root equals
    /// the snapshot's. On any failure the database at `path` is destroyed again. Returns the
    /// database, the snapshot's block and root.
    pub fn import_snapshot(
        path: impl AsRef<Path>,
        config: StateConfig,
        reader: impl Read,
    ) -> Result<(StateDb, u64, B256), StateError> {
        let path = path.as_ref();
        {
            let db = StateDb::open(path, config.clone())?;
            if db.latest().is_some() {
                return Err(StateError::NotEmpty);
            }
        }
        // Nothing was committed here; clear what an interrupted import may have left.
        DB::destroy(&rocksdb::Options::default(), path)?;
        let db = StateDb::open(path, config.clone())?;
        let result = import_into(&db, reader);
        drop(db);
        match result {
            Ok((block, root)) => Ok((StateDb::open(path, config)?, block, root)),
            Err(error) => {
                if let Err(destroy_error) = DB::destroy(&rocksdb::Options::default(), path) {
                    tracing::warn!(%destroy_error, "could not remove a rejected snapshot import");
                }
                Err(error)
            }
        }
    }
}

fn bad(message: impl Into<String>) -> StateError {
    StateError::BadSnapshot(message.into())
}

/// Reads exactly `buf.len()` bytes; a short stream is a bad snapshot, not an I/O error.
fn read_exact(reader: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), StateError> {
    reader.read_exact(buf).map_err(|error| match error.kind() {
        std::io::ErrorKind::UnexpectedEof => bad(format!("truncated in {what}")),
        _ => StateError::Io(error),
    })
}

/// Database writes of an import, flushed in bounded batches.
struct ImportWriter<'a> {
    db: &'a DB,
    batch: WriteBatch,
}

impl ImportWriter<'_> {
    fn put(
        &mut self,
        cf: &ColumnFamily,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<(), StateError> {
        self.batch.put_cf(cf, key, value);
        if self.batch.size_in_bytes() > IMPORT_BATCH_BYTES {
            self.db.write(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), StateError> {
        self.db.write(std::mem::take(&mut self.batch))?;
        Ok(())
    }
}

/// The account being read, with its slots (hashed key, leaf value) for its storage root.
struct PendingAccount {
    address: Address,
    info: Account,
    slots: Vec<(B256, Vec<u8>)>,
    last_slot: Option<U256>,
}

fn import_into(state: &StateDb, mut reader: impl Read) -> Result<(u64, B256), StateError> {
    let inner = &*state.inner;
    let db = &inner.db;
    let mut header = [0u8; 50];
    read_exact(&mut reader, &mut header, "header")?;
    if &header[..8] != MAGIC {
        return Err(bad("not a chaind state snapshot (bad magic)"));
    }
    let version = u16::from_be_bytes([header[8], header[9]]);
    if version != VERSION {
        return Err(bad(format!("unsupported snapshot version {version}")));
    }
    let block = u64::from_be_bytes(header[10..18].try_into().expect("8 bytes"));
    let expected_root = B256::from_slice(&header[18..50]);

    let accounts_cf = inner.cf(StateColumn::Accounts);
    let storage_cf = inner.cf(StateColumn::Storage);
    let storage_trie_cf = inner.cf(StateColumn::StorageTrie);
    let code_cf = inner.cf(StateColumn::Code);
    let mut writer = ImportWriter {
        db,
        batch: WriteBatch::default(),
    };

    let mut account_leaves: Vec<(B256, Vec<u8>)> = Vec::new();
    let mut referenced_codes: BTreeSet<B256> = BTreeSet::new();
    let mut last_code: Option<B256> = None;
    let mut pending: Option<PendingAccount> = None;
    let mut last_address: Option<Address> = None;
    let (mut accounts, mut slots, mut codes) = (0u64, 0u64, 0u64);
    let mut chunk = Vec::new();

    let finish_account = |account: PendingAccount,
                          writer: &mut ImportWriter<'_>,
                          leaves: &mut Vec<(B256, Vec<u8>)>|
     -> Result<(), StateError> {
        let mut slots = account.slots;
        slots.sort_unstable_by_key(|slot| slot.0);
        let (storage_root, trie) = storage_trie(&slots, inner.small_storage_max_slots);
        for (path, node) in trie.writes {
            writer.put(
                storage_trie_cf,
                trie_key(Some(&account.address), &path),
                node,
            )?;
        }
        let stored = StoredAccount {
            info: account.info,
            storage_root,
        };
        writer.put(accounts_cf, account.address, stored.encode())?;
        leaves.push((
            keccak256(account.address),
            account_rlp(&account.info, storage_root),
        ));
        Ok(())
    };

    loop {
        let mut length = [0u8; 4];
        read_exact(&mut reader, &mut length, "chunk length")?;
        let length = u32::from_be_bytes(length) as usize;
        if length == 0 {
            break;
        }
        if length > MAX_CHUNK {
            return Err(bad(format!(
                "chunk of {length} bytes exceeds the {MAX_CHUNK}-byte limit"
            )));
        }
        chunk.resize(length, 0);
        read_exact(&mut reader, &mut chunk, "chunk")?;
        let mut records = Reader(&chunk);
        while let Some(tag) = records.byte() {
            match tag {
                TAG_ACCOUNT => {
                    let body = records
                        .take(92)
                        .ok_or_else(|| bad("truncated account record"))?;
                    if last_code.is_some() {
                        return Err(bad("account after code records"));
                    }
                    let address = Address::from_slice(&body[..20]);
                    if last_address.is_some_and(|last| last >= address) {
                        return Err(bad(format!("account {address} out of order")));
                    }
                    last_address = Some(address);
                    let info = Account {
                        nonce: u64::from_be_bytes(body[20..28].try_into().expect("8 bytes")),
                        balance: U256::from_be_slice(&body[28..60]),
                        code_hash: B256::from_slice(&body[60..92]),
                    };
                    if info.code_hash != KECCAK_EMPTY {
                        referenced_codes.insert(info.code_hash);
                    }
                    if let Some(previous) = pending.take() {
                        finish_account(previous, &mut writer, &mut account_leaves)?;
                    }
                    pending = Some(PendingAccount {
                        address,
                        info,
                        slots: Vec::new(),
                        last_slot: None,
                    });
                    accounts += 1;
                }
                TAG_SLOT => {
                    let body = records
                        .take(64)
                        .ok_or_else(|| bad("truncated slot record"))?;
                    let account = pending
                        .as_mut()
                        .ok_or_else(|| bad("slot before any account"))?;
                    let slot = U256::from_be_slice(&body[..32]);
                    let value = U256::from_be_slice(&body[32..]);
                    if account.last_slot.is_some_and(|last| last >= slot) {
                        return Err(bad(format!(
                            "slot {slot} of {} out of order",
                            account.address
                        )));
                    }
                    if value.is_zero() {
                        return Err(bad("zero-valued slot"));
                    }
                    account.last_slot = Some(slot);
                    writer.put(
                        storage_cf,
                        storage_key(&account.address, &slot),
                        crate::codec::encode_value(value),
                    )?;
                    account
                        .slots
                        .push((keccak256(&body[..32]), storage_value_rlp(value)));
                    slots += 1;
                }
                TAG_CODE => {
                    let hash = B256::from_slice(
                        records
                            .take(32)
                            .ok_or_else(|| bad("truncated code record"))?,
                    );
                    let len = records.u32().ok_or_else(|| bad("truncated code record"))? as usize;
                    let code = records.take(len).ok_or_else(|| bad("truncated code"))?;
                    if keccak256(code) != hash {
                        return Err(bad(format!("code does not hash to {hash}")));
                    }
                    if last_code.is_some_and(|last| last >= hash) {
                        return Err(bad("code records out of order"));
                    }
                    last_code = Some(hash);
                    if let Some(previous) = pending.take() {
                        finish_account(previous, &mut writer, &mut account_leaves)?;
                    }
                    writer.put(code_cf, hash, code)?;
                    referenced_codes.remove(&hash);
                    codes += 1;
                }
                other => return Err(bad(format!("unknown record tag {other}"))),
            }
        }
    }
    if let Some(previous) = pending.take() {
        finish_account(previous, &mut writer, &mut account_leaves)?;
    }
    let mut trailer = [0u8; 24];
    read_exact(&mut reader, &mut trailer, "trailer")?;
    let mut trailer = Reader(&trailer);
    let counts = (trailer.u64(), trailer.u64(), trailer.u64());
    if counts != (Some(accounts), Some(slots), Some(codes)) {
        return Err(bad("record counts in the trailer do not match the records"));
    }
    if reader.read(&mut [0u8; 1])? != 0 {
        return Err(bad("trailing data after the snapshot"));
    }
    if let Some(missing) = referenced_codes.first() {
        return Err(bad(format!(
            "code {missing} is referenced but not included"
        )));
    }

    // The account trie, written in bounded batches from the builder's threads.
    account_leaves.sort_unstable_by_key(|leaf| leaf.0);
    writer.finish()?;
    let root = write_account_trie(inner, &account_leaves, IMPORT_BATCH_BYTES)?;
    if root != expected_root {
        return Err(StateError::SnapshotRootMismatch {
            expected: expected_root,
            computed: root,
        });
    }

    // Accepted: publish the head in one last write.
    let meta = inner.cf(StateColumn::Meta);
    let mut batch = WriteBatch::default();
    batch.put_cf(meta, META_VERSION, SCHEMA_VERSION.to_be_bytes());
    batch.put_cf(meta, root_key(block), root);
    batch.put_cf(
        meta,
        META_FIRST_CHANGESET,
        block.saturating_add(1).to_be_bytes(),
    );
    batch.put_cf(meta, META_LATEST, latest_record(block, root));
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    db.write_opt(batch, &sync)?;
    tracing::info!(block, %root, accounts, slots, codes, "imported state snapshot");
    Ok((block, root))
}
