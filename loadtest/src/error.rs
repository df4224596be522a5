//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while generating load or writing its results.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    /// The connection failed, timed out or returned something that is not JSON-RPC.
    #[error("RPC transport error in {method}: {message}")]
    Transport {
        /// The JSON-RPC method being called.
        method: &'static str,
        /// What the client reported.
        message: String,
    },
    /// The node answered with a JSON-RPC error object.
    #[error("RPC {method} failed: {message}")]
    Rpc {
        /// The JSON-RPC method being called.
        method: &'static str,
        /// The error object's message.
        message: String,
    },
    /// The node answered with a value of the wrong shape or length.
    #[error("unexpected answer to {method}: {message}")]
    BadResponse {
        /// The JSON-RPC method being called.
        method: &'static str,
        /// What was wrong with it.
        message: String,
    },
    /// Command-line options that contradict each other or are out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A secret key that secp256k1 does not accept.
    #[error("invalid secret key ({0})")]
    Key(String),
    /// The setup phase (funding, deployments, mints, approvals) did not complete.
    #[error("setup failed: {0}")]
    Setup(String),
    /// A report or plot file could not be written.
    #[error("cannot write {path}: {message}")]
    Output {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}
