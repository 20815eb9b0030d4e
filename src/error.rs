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

/// A user-supplied string cut for messages (a name or path from a manifest can be any
/// length): at most 200 characters, then how long it was.
pub fn shorten(s: &str) -> String {
    const MAX: usize = 200;
    let n = s.chars().count();
    if n <= MAX {
        return s.to_string();
    }
    let head: String = s.chars().take(MAX).collect();
    format!("{head}... ({n} characters)")
}

/// What to do about a failed write, from its OS error: disk full, read-only
/// filesystem, permission denied, or the generic advice.
pub fn write_advice(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "the disk is full (or the quota reached): free space on the output's filesystem, then run again with --resume"
        }
        Some(libc::EROFS) => "the filesystem is read-only: choose another output folder",
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "permission denied: check the output folder's owner and mode, or choose another"
        }
        _ => "check that the output folder exists and is writable",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_strings_are_cut_and_say_how_long_they_were() {
        assert_eq!(super::shorten("blur"), "blur");
        let long = "x".repeat(1_000_000);
        let s = super::shorten(&long);
        assert!(s.len() < 300 && s.ends_with("(1000000 characters)"), "{s}");
    }

    #[test]
    fn write_advice_names_the_cause() {
        let e = |c| std::io::Error::from_raw_os_error(c);
        assert!(super::write_advice(&e(libc::ENOSPC)).contains("disk is full"));
        assert!(super::write_advice(&e(libc::EROFS)).contains("read-only"));
        assert!(super::write_advice(&e(libc::EACCES)).contains("permission denied"));
    }
}
