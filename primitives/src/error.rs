/// Errors of the primitives crate.
#[derive(Debug, thiserror::Error)]
pub enum PrimitivesError {
    /// A genesis file is invalid; `field` is the JSON path of the offending field.
    #[error("genesis field `{field}`: {message}")]
    Genesis {
        /// JSON path of the field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
}
