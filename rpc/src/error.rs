use crate::api::ApiError;
use alloy_primitives::Bytes;
use jsonrpsee::types::ErrorObjectOwned;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An entry of `allowed_hosts` is not a valid host pattern.
    #[error("invalid allowed host {host:?}: {reason}")]
    InvalidHost {
        /// The entry.
        host: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An entry of `cors_origins` is not a valid origin.
    #[error("invalid CORS origin {0:?}")]
    InvalidCorsOrigin(String),
    /// A method name was registered twice (a bug in this crate).
    #[error("method registration failed: {0}")]
    Registration(String),
    /// A configuration value is out of range.
    #[error("invalid RPC configuration: {0}")]
    InvalidConfig(String),
}

/// JSON-RPC error codes as geth uses them.
pub(crate) mod code {
    /// Invalid method parameters.
    pub(crate) const INVALID_PARAMS: i32 = -32602;
    /// Internal error.
    pub(crate) const INTERNAL: i32 = -32603;
    /// geth's generic server error (state not found, pool errors, execution errors).
    pub(crate) const SERVER: i32 = -32000;
    /// EIP-1474 "limit exceeded": a query larger than the server's limits.
    pub(crate) const LIMIT_EXCEEDED: i32 = -32005;
    /// geth's code for a reverted call, with the revert data in `data`.
    pub(crate) const EXECUTION_REVERTED: i32 = 3;
    /// geth's code for an unknown subscription kind.
    pub(crate) const METHOD_NOT_FOUND: i32 = -32601;
}

/// An error answered to a JSON-RPC call: code, message and optional data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CallError {
    pub(crate) code: i32,
    pub(crate) message: String,
    pub(crate) data: Option<Bytes>,
}

impl CallError {
    pub(crate) fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// -32602 with a message.
    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(code::INVALID_PARAMS, message)
    }

    /// -32000 with a message.
    pub(crate) fn server(message: impl Into<String>) -> Self {
        Self::new(code::SERVER, message)
    }

    /// -32603 with a message.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(code::INTERNAL, message)
    }

    /// -32005 with a message.
    pub(crate) fn limit(message: impl Into<String>) -> Self {
        Self::new(code::LIMIT_EXCEEDED, message)
    }

    /// geth's "header not found" for a state or block query beyond the chain.
    pub(crate) fn header_not_found() -> Self {
        Self::server("header not found")
    }
}

impl From<ApiError> for CallError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::BlockNotFound => CallError::header_not_found(),
            ApiError::StatePruned(_) => CallError::server(error.to_string()),
            ApiError::Internal(_) => CallError::internal(error.to_string()),
        }
    }
}

impl From<CallError> for ErrorObjectOwned {
    fn from(error: CallError) -> Self {
        ErrorObjectOwned::owned(error.code, error.message, error.data)
    }
}

/// Result of a method body.
pub(crate) type CallResult<T> = Result<T, CallError>;
