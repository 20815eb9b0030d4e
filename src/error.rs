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
    /// The kind, for reports and the wire.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ItemError::Io(_) => ErrorKind::Io,
            ItemError::Decode(_) => ErrorKind::Decode,
            ItemError::Unsupported(_) => ErrorKind::Unsupported,
            ItemError::Limits(_) => ErrorKind::Limits,
            ItemError::Op { .. } => ErrorKind::Operation,
            ItemError::Encode(_) => ErrorKind::Encode,
            ItemError::Panic(_) => ErrorKind::Panic,
        }
    }

    /// The kind and the sentence, as a failure travels and is reported.
    pub fn failure(&self) -> Failure {
        Failure {
            kind: self.kind(),
            message: self.to_string(),
        }
    }
}

/// The kind of an item's failure, written in reports as its lowercase name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    /// Reading the input or writing the output.
    Io,
    /// A corrupt or truncated input.
    Decode,
    /// A format or feature imgproc does not read.
    Unsupported,
    /// Over `--max-pixels` or `--max-memory-mb`.
    Limits,
    /// An op refused the image.
    Operation,
    /// The encoder failed.
    Encode,
    /// A bug: code panicked.
    Panic,
}

impl ErrorKind {
    /// The name reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Decode => "decode",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Limits => "limits",
            ErrorKind::Operation => "operation",
            ErrorKind::Encode => "encode",
            ErrorKind::Panic => "panic",
        }
    }
}

impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An item's failure as it travels from a worker and into the report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    /// Who can fix it.
    pub kind: ErrorKind,
    /// The sentence for people.
    pub message: String,
}

/// Why a whole run stopped before it could finish (one item failing is an
/// [`ItemError`] and never stops the run).
#[derive(Debug, thiserror::Error)]
pub enum RunFailure {
    /// The OpenCL device that `--backend opencl` asks for cannot be used.
    #[error(transparent)]
    Device(#[from] crate::ops::opencl::DeviceError),
    /// The worker threads could not be started.
    #[error("cannot start {threads} threads: {source}")]
    Threads {
        /// How many were asked for.
        threads: usize,
        /// What rayon said.
        source: rayon::ThreadPoolBuildError,
    },
    /// The journal of an earlier run could not be read (`--resume`).
    #[error("cannot read the journal {}: {source}", path.display())]
    JournalRead {
        /// The journal's path.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The journal could not be opened for writing.
    #[error("cannot open the journal {}: {source}; {}", path.display(), write_advice(source))]
    JournalOpen {
        /// The journal's path.
        path: std::path::PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Talking to the other ranks failed.
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    /// MPI could not be started.
    #[error("{0}")]
    Mpi(String),
}

/// The candidate closest to `word` (Damerau-Levenshtein), if close enough to be what
/// the user meant: at most 2 edits, or a third of the candidate's length for long
/// names. The one rule behind every "did you mean" (op names, manifest fields).
pub fn nearest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
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
