//! Why one work item failed, grouped by who can fix it.
//!
//! Every variant carries a sentence for people; the runner prints it with the file it
//! is about. A failed item never stops the batch (unless `--fail-fast`).

/// The failure of one work item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The input or output file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The input is corrupt or truncated.
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The input format (or a feature of it) is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The input is larger than the configured limits.
    #[error("too large: {0}")]
    Limits(String),
    /// An operation cannot run on this image (for example a crop outside it).
    #[error("operation {op}: {message}")]
    Op {
        /// The op's name.
        op: String,
        /// What went wrong.
        message: String,
    },
    /// The output could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A bug: code panicked while processing this item.
    #[error("internal error (please report it): {0}")]
    Panic(String),
}

impl ItemError {
    /// A short machine-readable kind for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            ItemError::Io(_) => "io",
            ItemError::Decode(_) => "decode",
            ItemError::Unsupported(_) => "unsupported",
            ItemError::Limits(_) => "limits",
            ItemError::Op { .. } => "operation",
            ItemError::Encode(_) => "encode",
            ItemError::Panic(_) => "panic",
        }
    }
}
