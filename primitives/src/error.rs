/// Errors of the primitives crate.
#[derive(Debug, thiserror::Error)]
pub enum PrimitivesError {
    /// A state lookup in the in-memory state cannot fail; this variant exists so that the
    /// in-memory state has the same error shape as a real store.
    #[error("state unavailable: {0}")]
    StateUnavailable(String),
}
