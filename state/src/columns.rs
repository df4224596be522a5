//! Column families: the state's own, and the chain-data ones the node writes through
//! [`ChainColumn`].

/// Column families for the node's chain data, written together with the state in
/// [`StateDb::commit_block`](crate::StateDb::commit_block) and read with
/// [`StateDb::get_chain`](crate::StateDb::get_chain). To add one, add a variant, its name in
/// [`ChainColumn::name`] and the variant to [`ChainColumn::ALL`]; the family is created on the
/// next open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChainColumn {
    /// Block headers (key chosen by the node, e.g. block hash).
    Headers,
    /// Block bodies (transactions).
    Bodies,
    /// Receipts per block.
    Receipts,
    /// Transaction hash to its block and position.
    TxIndex,
    /// Log indexes for `eth_getLogs`.
    Logs,
    /// Canonical block hashes: key block number (8 bytes big-endian), value the 32-byte hash.
    /// [`StateReader::block_hash`](chain_primitives::StateReader::block_hash) reads these.
    BlockHashes,
    /// The node's own metadata (head, finalized block, ...).
    Meta,
    /// Consensus data: votes, validator sets, evidence.
    Consensus,
}

impl ChainColumn {
    /// Every chain column, in a fixed order.
    pub const ALL: [ChainColumn; 8] = [
        ChainColumn::Headers,
        ChainColumn::Bodies,
        ChainColumn::Receipts,
        ChainColumn::TxIndex,
        ChainColumn::Logs,
        ChainColumn::BlockHashes,
        ChainColumn::Meta,
        ChainColumn::Consensus,
    ];

    /// The RocksDB column family's name.
    pub const fn name(self) -> &'static str {
        match self {
            ChainColumn::Headers => "chain_headers",
            ChainColumn::Bodies => "chain_bodies",
            ChainColumn::Receipts => "chain_receipts",
            ChainColumn::TxIndex => "chain_tx_index",
            ChainColumn::Logs => "chain_logs",
            ChainColumn::BlockHashes => "chain_block_hashes",
            ChainColumn::Meta => "chain_meta",
            ChainColumn::Consensus => "chain_consensus",
        }
    }
}

/// The state's column families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StateColumn {
    /// address (20) -> encoded [`StoredAccount`](crate::codec::StoredAccount).
    Accounts,
    /// address (20) ++ slot (32, big-endian) -> value, big-endian without leading zeros.
    Storage,
    /// code hash (32) -> code.
    Code,
    /// packed nibble path -> node RLP, for the account trie. The nodes above the resident
    /// depth may lag (their newer versions in memory) while the meta family marks them so.
    AccountTrie,
    /// address (20) ++ packed nibble path -> node RLP, for every storage trie of more slots
    /// than the database's small-storage bound.
    StorageTrie,
    /// block (8) ++ chunk (2) -> part of the block's changeset: what it changed and the
    /// values before (see the `history` module).
    Changesets,
    /// latest block and root, roots of retained blocks, the oldest retained changeset, the
    /// schema version, the small-storage bound, and the mark of an unwritten account-trie top.
    Meta,
}

impl StateColumn {
    pub(crate) const ALL: [StateColumn; 7] = [
        StateColumn::Accounts,
        StateColumn::Storage,
        StateColumn::Code,
        StateColumn::AccountTrie,
        StateColumn::StorageTrie,
        StateColumn::Changesets,
        StateColumn::Meta,
    ];

    pub(crate) const fn name(self) -> &'static str {
        match self {
            StateColumn::Accounts => "accounts",
            StateColumn::Storage => "storage",
            StateColumn::Code => "code",
            StateColumn::AccountTrie => "account_trie",
            StateColumn::StorageTrie => "storage_trie",
            StateColumn::Changesets => "changesets",
            StateColumn::Meta => "state_meta",
        }
    }

    /// Length of the key prefix that iterations stay within (enables prefix bloom filters).
    pub(crate) const fn prefix_len(self) -> Option<usize> {
        match self {
            StateColumn::Storage | StateColumn::StorageTrie => Some(20),
            _ => None,
        }
    }

    /// Whether reads are point lookups worth a bloom filter.
    pub(crate) const fn point_lookups(self) -> bool {
        !matches!(self, StateColumn::Changesets | StateColumn::Meta)
    }
}
