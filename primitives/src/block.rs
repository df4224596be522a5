use alloy_consensus::{Header, TxEnvelope};
use alloy_primitives::{Address, B256, Bytes, keccak256};
use alloy_rlp::{Decodable, Encodable, RlpDecodable, RlpEncodable};
use serde::{Deserialize, Serialize};

/// Consensus data that travels beside an Ethereum-shaped header instead of inside it, so that
/// the header hashes and decodes exactly as Ethereum tooling expects.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, RlpEncodable, RlpDecodable, Serialize, Deserialize,
)]
pub struct ConsensusSeal {
    /// The consensus slot the block was proposed in.
    pub slot: u64,
    /// The validator that proposed it.
    pub proposer: Address,
    /// The proposer's signature over the proposal (65 bytes: r, s, v), empty in genesis.
    pub signature: Bytes,
    /// The proposer's randomness reveal for the slot (a signature over the slot).
    pub randao_reveal: Bytes,
    /// Consensus payload the engine adds (votes, evidence, staking operations), encoded by
    /// the consensus crate.
    pub payload: Bytes,
}

/// A block: Ethereum header, transactions, and the consensus seal.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct Block {
    /// The header; its hash is the block hash.
    pub header: Header,
    /// The transactions, in execution order.
    pub transactions: Vec<TxEnvelope>,
    /// Consensus data.
    pub seal: ConsensusSeal,
}

impl Block {
    /// keccak256 of the RLP header: the block hash.
    pub fn hash_slow(&self) -> B256 {
        self.header.hash_slow()
    }

    /// Seals the block with its hash computed once.
    pub fn seal_slow(self) -> SealedBlock {
        let hash = self.hash_slow();
        SealedBlock { block: self, hash }
    }

    /// RLP encoding of the whole block (header, transactions, seal).
    pub fn encoded(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.length());
        self.encode(&mut out);
        out
    }

    /// Decodes a block from its RLP encoding; trailing bytes are an error.
    pub fn decode_exact(mut bytes: &[u8]) -> alloy_rlp::Result<Self> {
        let block = Self::decode(&mut bytes)?;
        if !bytes.is_empty() {
            return Err(alloy_rlp::Error::UnexpectedLength);
        }
        Ok(block)
    }

    /// Size of the RLP-encoded block in bytes (the `size` field of RPC block objects).
    pub fn size(&self) -> usize {
        self.length()
    }
}

/// A block with its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedBlock {
    block: Block,
    hash: B256,
}

impl SealedBlock {
    /// The block hash.
    pub fn hash(&self) -> B256 {
        self.hash
    }

    /// The block.
    pub fn block(&self) -> &Block {
        &self.block
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.block.header
    }

    /// The block number.
    pub fn number(&self) -> u64 {
        self.block.header.number
    }

    /// Unwraps the block.
    pub fn into_block(self) -> Block {
        self.block
    }
}

/// The hash of a transaction as Ethereum defines it (keccak256 of its EIP-2718 encoding).
pub fn tx_hash(tx: &TxEnvelope) -> B256 {
    *tx.tx_hash()
}

/// keccak256 of arbitrary bytes (re-exported for callers that hash encodings).
pub fn hash_bytes(bytes: &[u8]) -> B256 {
    keccak256(bytes)
}
