//! One error type for the whole crate. The C ABI maps each variant onto a stable status code
//! (`status_of`, beside the codes).

use std::path::PathBuf;

/// Everything that can go wrong in electra. Each variant carries enough context
/// (file, tensor, shape, argument) for a message a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Caller mistakes ===
    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A required pointer was NULL.
    #[error("null pointer: {0}")]
    NullPointer(&'static str),
    /// A handle is NULL, freed, or of the wrong kind; or a session, trainer or fine-tuner made
    /// before `fork()` is used in the child.
    #[error("invalid handle: {0}")]
    InvalidHandle(&'static str),
    /// Two shapes that must agree do not.
    #[error("shape mismatch: {what}: expected {expected:?}, got {got:?}")]
    Shape {
        /// What was being checked.
        what: String,
        /// The shape required.
        expected: Vec<usize>,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A caller-provided output buffer is too small.
    #[error("buffer too small: need {needed} elements, got {got}")]
    BufferTooSmall {
        /// Elements required.
        needed: usize,
        /// Elements provided.
        got: usize,
    },
    /// The model lacks the part (generator or discriminator) the call needs.
    #[error("unsupported: {0}")]
    Unsupported(String),

    // === Files ===
    /// Reading or writing a file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file exists but its contents are wrong (corrupt, truncated, missing tensor, bad JSON).
    #[error("bad format in {path}: {msg}")]
    Format {
        /// The file involved.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A config is syntactically fine but describes an invalid model.
    #[error("invalid config: {0}")]
    Config(String),

    // === Run time ===
    /// A numeric result was NaN or infinite; nothing was updated.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// The operation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// An allocation failed.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// Another rank of a data-parallel run failed, the collective failed or timed out, or the
    /// ranks disagree (world size, weights); the step changed nothing on any rank.
    #[error("distributed: {0}")]
    Distributed(String),
    /// The CUDA backend failed or was not compiled in.
    #[error("cuda: {0}")]
    Cuda(String),
    /// A bug: a broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Crate-wide result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Builds an [`Error::Format`] for `path`.
    pub fn format(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Format { path: path.into(), msg: msg.into() }
    }

    /// Builds an [`Error::InvalidArgument`].
    pub fn arg(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

/// What a JSON value is, for messages: scalars as themselves, strings, arrays and objects by
/// kind (their text may be long).
pub(crate) fn json_kind(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "null".into(),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(_) => "a string".into(),
        serde_json::Value::Array(_) => "an array".into(),
        serde_json::Value::Object(_) => "an object".into(),
    }
}
