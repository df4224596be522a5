use alloy_primitives::{B256, Bytes};
use revm::state::Bytecode;

/// Analysed committed contract code by hash, shared by every worker and kept across blocks.
///
/// Code is content-addressed and immutable, so an entry is never stale. Code deployed by the
/// block being executed is not put here (an eviction would lose it): executors keep it in a
/// block-local map until the block is committed.
pub struct CodeCache {
    cache: quick_cache::sync::Cache<B256, Bytecode>,
}

impl std::fmt::Debug for CodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeCache")
            .field("entries", &self.cache.len())
            .finish()
    }
}

impl Default for CodeCache {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl CodeCache {
    /// A cache holding up to `entries` contracts.
    pub fn new(entries: usize) -> Self {
        Self {
            cache: quick_cache::sync::Cache::new(entries.max(16)),
        }
    }

    /// The analysed code for `hash`, loading and analysing `load()` on a miss.
    pub fn get_or_load<E>(
        &self,
        hash: B256,
        load: impl FnOnce() -> Result<Option<Bytes>, E>,
    ) -> Result<Option<Bytecode>, E> {
        if let Some(code) = self.cache.get(&hash) {
            return Ok(Some(code));
        }
        let Some(bytes) = load()? else {
            return Ok(None);
        };
        let code = Bytecode::new_raw(bytes);
        self.cache.insert(hash, code.clone());
        Ok(Some(code))
    }

    /// Adds committed code (e.g. after a block that deployed it is committed).
    pub fn insert(&self, hash: B256, code: Bytecode) {
        self.cache.insert(hash, code);
    }
}
