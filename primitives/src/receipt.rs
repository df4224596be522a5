use alloy_consensus::{Eip658Value, Receipt, ReceiptEnvelope, ReceiptWithBloom};
use alloy_primitives::{Address, Bloom, Log};
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// A receipt as chaind stores it: the consensus receipt plus what RPC serves beside it.
#[derive(Clone, Debug, PartialEq, Eq, RlpEncodable, RlpDecodable)]
pub struct StoredReceipt {
    /// EIP-2718 type of the transaction.
    pub tx_type: u8,
    /// EIP-658 status: whether the transaction succeeded.
    pub success: bool,
    /// Gas used by the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Gas this transaction used.
    pub gas_used: u64,
    /// Price per gas the sender paid.
    pub effective_gas_price: u128,
    /// Address of the created contract, zero if none.
    pub contract_address: Address,
    /// Logs emitted.
    pub logs: Vec<Log>,
}

impl StoredReceipt {
    /// The created contract, if any.
    pub fn created(&self) -> Option<Address> {
        (self.contract_address != Address::ZERO).then_some(self.contract_address)
    }

    /// Bloom filter of the logs.
    pub fn bloom(&self) -> Bloom {
        let mut bloom = Bloom::ZERO;
        for log in &self.logs {
            bloom.accrue_log(log);
        }
        bloom
    }

    /// The consensus receipt (what the receipts root commits to).
    pub fn envelope(&self) -> ReceiptEnvelope {
        let receipt = ReceiptWithBloom {
            receipt: Receipt {
                status: Eip658Value::Eip658(self.success),
                cumulative_gas_used: self.cumulative_gas_used,
                logs: self.logs.clone(),
            },
            logs_bloom: self.bloom(),
        };
        match self.tx_type {
            1 => ReceiptEnvelope::Eip2930(receipt),
            2 => ReceiptEnvelope::Eip1559(receipt),
            3 => ReceiptEnvelope::Eip4844(receipt),
            4 => ReceiptEnvelope::Eip7702(receipt),
            _ => ReceiptEnvelope::Legacy(receipt),
        }
    }
}

/// The receipts root of a block: Ethereum's ordered trie of EIP-2718 encoded receipts.
pub fn receipts_root(receipts: &[StoredReceipt]) -> alloy_primitives::B256 {
    let envelopes: Vec<ReceiptEnvelope> = receipts.iter().map(StoredReceipt::envelope).collect();
    alloy_consensus::proofs::calculate_receipt_root(&envelopes)
}

/// The transactions root of a block: Ethereum's ordered trie of EIP-2718 encoded transactions.
pub fn transactions_root(txs: &[alloy_consensus::TxEnvelope]) -> alloy_primitives::B256 {
    alloy_consensus::proofs::calculate_transaction_root(txs)
}
