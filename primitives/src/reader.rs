use crate::Account;
use alloy_primitives::{Address, B256, Bytes, U256};

/// Read-only access to committed state at one block.
///
/// Methods take `&self` and implementations are `Sync`, so that the parallel executor's worker
/// threads share one reader. Reads must be cheap: the executor calls them on its hot path.
pub trait StateReader: Send + Sync {
    /// Why a read failed (I/O, corruption). Absent data is not an error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The account at `address`, `None` if it does not exist.
    fn account(&self, address: &Address) -> Result<Option<Account>, Self::Error>;

    /// The value of storage `slot` of `address`; zero if unset.
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, Self::Error>;

    /// The code whose keccak256 is `code_hash`, `None` if unknown.
    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, Self::Error>;

    /// The hash of block `number`, zero if unknown (BLOCKHASH semantics apply above this).
    fn block_hash(&self, number: u64) -> Result<B256, Self::Error>;
}

impl<T: StateReader + ?Sized> StateReader for &T {
    type Error = T::Error;
    fn account(&self, address: &Address) -> Result<Option<Account>, Self::Error> {
        (**self).account(address)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, Self::Error> {
        (**self).storage(address, slot)
    }
    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, Self::Error> {
        (**self).code(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<B256, Self::Error> {
        (**self).block_hash(number)
    }
}

impl<T: StateReader + ?Sized> StateReader for std::sync::Arc<T> {
    type Error = T::Error;
    fn account(&self, address: &Address) -> Result<Option<Account>, Self::Error> {
        (**self).account(address)
    }
    fn storage(&self, address: &Address, slot: &U256) -> Result<U256, Self::Error> {
        (**self).storage(address, slot)
    }
    fn code(&self, code_hash: &B256) -> Result<Option<Bytes>, Self::Error> {
        (**self).code(code_hash)
    }
    fn block_hash(&self, number: u64) -> Result<B256, Self::Error> {
        (**self).block_hash(number)
    }
}
