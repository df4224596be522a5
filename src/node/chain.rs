//! Blocks, receipts and indexes in RocksDB's chain column families, written in the same batch
//! as the state of the block, plus an in-memory cache of recent blocks for RPC.

use alloy_primitives::{Address, B256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use chain_primitives::{Block, StoredReceipt};
use chain_rpc::IndexedBlock;
use chain_state::{ChainColumn, ChainWrite, StateDb, StateError};
use std::sync::Arc;

/// A block body as stored: the block and the recovered sender of each transaction.
#[derive(Debug, RlpEncodable, RlpDecodable)]
struct StoredBlock {
    block: Block,
    senders: Vec<Address>,
}

/// Why chain data could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ChainStoreError {
    /// The database failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Stored bytes do not decode (corruption or a schema change).
    #[error("corrupt {what} at {key}: {error}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// Its key.
        key: String,
        /// The decoding error.
        error: String,
    },
}

const META_FINALIZED: &[u8] = b"finalized";
const META_GENESIS: &[u8] = b"genesis";

fn number_key(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

fn rlp<T: Encodable>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.length());
    value.encode(&mut out);
    out
}

/// The chain data of a node.
#[derive(Clone)]
pub struct ChainStore {
    db: StateDb,
    blocks: Arc<quick_cache::sync::Cache<u64, Arc<IndexedBlock>>>,
    receipts: Arc<quick_cache::sync::Cache<u64, Arc<Vec<StoredReceipt>>>>,
}

impl std::fmt::Debug for ChainStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainStore").finish_non_exhaustive()
    }
}

impl ChainStore {
    /// The chain data in `db`.
    pub fn new(db: StateDb) -> Self {
        Self {
            db,
            blocks: Arc::new(quick_cache::sync::Cache::new(512)),
            receipts: Arc::new(quick_cache::sync::Cache::new(512)),
        }
    }

    /// The database (state and chain data).
    pub fn db(&self) -> &StateDb {
        &self.db
    }

    /// The writes that store `block` with `receipts` as the canonical block of its number.
    pub fn block_writes(block: &IndexedBlock, receipts: &[StoredReceipt]) -> Vec<ChainWrite> {
        let number = block.block.number();
        let hash = block.block.hash();
        let stored = StoredBlock {
            block: block.block.block().clone(),
            senders: block.senders.clone(),
        };
        let mut writes = Vec::with_capacity(4 + block.tx_hashes.len());
        writes.push((
            ChainColumn::Bodies,
            number_key(number).to_vec(),
            Some(rlp(&stored)),
        ));
        writes.push((
            ChainColumn::Headers,
            hash.to_vec(),
            Some(number_key(number).to_vec()),
        ));
        writes.push((
            ChainColumn::BlockHashes,
            number_key(number).to_vec(),
            Some(hash.to_vec()),
        ));
        writes.push((
            ChainColumn::Receipts,
            number_key(number).to_vec(),
            Some(rlp(&receipts.to_vec())),
        ));
        for (index, tx_hash) in block.tx_hashes.iter().enumerate() {
            let mut location = number_key(number).to_vec();
            location.extend_from_slice(&(index as u32).to_be_bytes());
            writes.push((ChainColumn::TxIndex, tx_hash.to_vec(), Some(location)));
        }
        writes
    }

    /// The writes that remove block `block` from the canonical chain (a reorg).
    pub fn removal_writes(block: &IndexedBlock) -> Vec<ChainWrite> {
        let number = block.block.number();
        let mut writes = vec![
            (ChainColumn::Bodies, number_key(number).to_vec(), None),
            (ChainColumn::Headers, block.block.hash().to_vec(), None),
            (ChainColumn::BlockHashes, number_key(number).to_vec(), None),
            (ChainColumn::Receipts, number_key(number).to_vec(), None),
        ];
        for tx_hash in &block.tx_hashes {
            writes.push((ChainColumn::TxIndex, tx_hash.to_vec(), None));
        }
        writes
    }

    /// The write that records the finalized block number.
    pub fn finalized_write(number: u64) -> ChainWrite {
        (
            ChainColumn::Meta,
            META_FINALIZED.to_vec(),
            Some(number_key(number).to_vec()),
        )
    }

    /// The write that records the genesis file the chain was created from.
    pub fn genesis_write(genesis_json: &[u8]) -> ChainWrite {
        (
            ChainColumn::Meta,
            META_GENESIS.to_vec(),
            Some(genesis_json.to_vec()),
        )
    }

    /// The genesis file the chain was created from.
    pub fn genesis_json(&self) -> Result<Option<Vec<u8>>, ChainStoreError> {
        Ok(self.db.get_chain(ChainColumn::Meta, META_GENESIS)?)
    }

    /// The finalized block number recorded, if any.
    pub fn finalized(&self) -> Result<Option<u64>, ChainStoreError> {
        let Some(bytes) = self.db.get_chain(ChainColumn::Meta, META_FINALIZED)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ChainStoreError::Corrupt {
                what: "finalized number",
                key: "meta/finalized".into(),
                error: format!("{} bytes", bytes.len()),
            })?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// Remembers a block just committed, so that RPC reads of the head hit memory.
    pub fn cache(&self, block: Arc<IndexedBlock>, receipts: Arc<Vec<StoredReceipt>>) {
        let number = block.block.number();
        self.blocks.insert(number, block);
        self.receipts.insert(number, receipts);
    }

    /// Forgets cached blocks above `number` (after a reorg).
    pub fn forget_above(&self, number: u64, up_to: u64) {
        for n in number + 1..=up_to {
            self.blocks.remove(&n);
            self.receipts.remove(&n);
        }
    }

    /// The canonical block `number`.
    pub fn block(&self, number: u64) -> Result<Option<Arc<IndexedBlock>>, ChainStoreError> {
        if let Some(block) = self.blocks.get(&number) {
            return Ok(Some(block));
        }
        let Some(bytes) = self
            .db
            .get_chain(ChainColumn::Bodies, &number_key(number))?
        else {
            return Ok(None);
        };
        let stored =
            StoredBlock::decode(&mut bytes.as_slice()).map_err(|e| ChainStoreError::Corrupt {
                what: "block",
                key: number.to_string(),
                error: e.to_string(),
            })?;
        let size = stored.block.size();
        let tx_hashes = stored
            .block
            .transactions
            .iter()
            .map(|tx| *tx.tx_hash())
            .collect();
        let block = Arc::new(IndexedBlock {
            block: stored.block.seal_slow(),
            senders: stored.senders,
            tx_hashes,
            size,
        });
        self.blocks.insert(number, block.clone());
        Ok(Some(block))
    }

    /// The number of the canonical block with this hash.
    pub fn number_of(&self, hash: &B256) -> Result<Option<u64>, ChainStoreError> {
        let Some(bytes) = self.db.get_chain(ChainColumn::Headers, hash.as_slice())? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| ChainStoreError::Corrupt {
                what: "hash index",
                key: hash.to_string(),
                error: "not 8 bytes".into(),
            })?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// The receipts of canonical block `number`.
    pub fn receipts(
        &self,
        number: u64,
    ) -> Result<Option<Arc<Vec<StoredReceipt>>>, ChainStoreError> {
        if let Some(receipts) = self.receipts.get(&number) {
            return Ok(Some(receipts));
        }
        let Some(bytes) = self
            .db
            .get_chain(ChainColumn::Receipts, &number_key(number))?
        else {
            return Ok(None);
        };
        let receipts = Vec::<StoredReceipt>::decode(&mut bytes.as_slice()).map_err(|e| {
            ChainStoreError::Corrupt {
                what: "receipts",
                key: number.to_string(),
                error: e.to_string(),
            }
        })?;
        let receipts = Arc::new(receipts);
        self.receipts.insert(number, receipts.clone());
        Ok(Some(receipts))
    }

    /// Where a mined transaction is: (block number, index).
    pub fn transaction_location(
        &self,
        hash: &B256,
    ) -> Result<Option<(u64, usize)>, ChainStoreError> {
        let Some(bytes) = self.db.get_chain(ChainColumn::TxIndex, hash.as_slice())? else {
            return Ok(None);
        };
        if bytes.len() != 12 {
            return Err(ChainStoreError::Corrupt {
                what: "tx index",
                key: hash.to_string(),
                error: format!("{} bytes", bytes.len()),
            });
        }
        let number = u64::from_be_bytes(bytes[..8].try_into().expect("checked length"));
        let index = u32::from_be_bytes(bytes[8..].try_into().expect("checked length"));
        Ok(Some((number, index as usize)))
    }
}
