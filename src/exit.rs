//! The process's exit codes, in one place: what `main` returns, what rank 0 reports to
//! `imgproc launch`, what the master tells worker ranks to exit with, and what a rank
//! that panics outside an item aborts the job with. Scripts branch on these; the README
//! lists them.

/// Process exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Every item succeeded (or was skipped on purpose).
    Ok = 0,
    /// Some items failed; the others were done.
    ItemsFailed = 1,
    /// Usage or manifest error; nothing was done.
    Usage = 2,
    /// A fatal runtime error (for example the report could not be written, or rank 0
    /// vanished without saying how the run went).
    Fatal = 3,
    /// A rank panicked outside item processing and aborted the MPI job.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    Panic = 70,
    /// Interrupted by SIGINT: what was committed is kept; `--resume` finishes the run.
    Interrupted = 130,
    /// Ended by SIGTERM: as for SIGINT.
    Terminated = 143,
}

impl Exit {
    /// The exit for a run stopped by signal `sig`.
    pub fn for_signal(sig: i32) -> Exit {
        if sig == libc::SIGTERM {
            Exit::Terminated
        } else {
            Exit::Interrupted
        }
    }

    /// The number the process exits with.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The exit a code stands for (as it travels between ranks); an unknown code is
    /// [`Exit::Fatal`].
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub fn from_code(code: i32) -> Exit {
        [
            Exit::Ok,
            Exit::ItemsFailed,
            Exit::Usage,
            Exit::Fatal,
            Exit::Panic,
            Exit::Interrupted,
            Exit::Terminated,
        ]
        .into_iter()
        .find(|e| e.code() == code)
        .unwrap_or(Exit::Fatal)
    }
}

#[cfg(test)]
mod tests {
    use super::Exit;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_fatal() {
        for e in [
            Exit::Ok,
            Exit::ItemsFailed,
            Exit::Usage,
            Exit::Fatal,
            Exit::Panic,
        ] {
            assert_eq!(Exit::from_code(e.code()), e);
        }
        assert_eq!(Exit::from_code(130), Exit::Interrupted);
        assert_eq!(Exit::from_code(42), Exit::Fatal);
        assert_eq!(Exit::for_signal(libc::SIGTERM).code(), 143);
    }
}
