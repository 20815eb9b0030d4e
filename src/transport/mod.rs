//! Moving opaque frames between rank 0 (the master) and the workers.
//!
//! The scheduler talks to workers only through these two traits, so the same master
//! and worker loops run over MPI ([`mpi`], the only module that imports the `mpi`
//! crate) and over threads and channels ([`local`], for single-process runs and for
//! deterministic tests). A frame is a byte vector; the transport knows nothing of what
//! is inside.

pub mod local;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(any(test, feature = "mpi"))]
pub mod sealed;

use std::time::Duration;

/// True when this process was started by an MPI launcher (mpirun, mpiexec, srun with PMI).
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Ranks on this host, as the launcher exported it (Open MPI, MPICH, Slurm).
#[cfg(feature = "mpi")]
pub fn local_size() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS",
        "SLURM_NTASKS_PER_NODE",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// This rank's index among the ranks on its host.
#[cfg(feature = "mpi")]
pub fn local_rank() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// This process's rank as the MPI launcher exported it (0 without MPI), read before
/// MPI is initialised so that only rank 0 prints usage errors and listings.
pub fn launcher_rank() -> usize {
    ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
        .unwrap_or(0)
}

/// A transport failure (a peer vanished, an MPI error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport: {0}")]
pub struct TransportError(pub String);

/// The master's end: one link to every worker, numbered `1..=workers()`.
pub trait MasterLink {
    /// Number of workers.
    fn workers(&self) -> usize;
    /// Queues `frame` for worker `to`; never waits for the worker to receive it.
    fn send(&mut self, to: usize, frame: Vec<u8>) -> Result<(), TransportError>;
    /// Waits up to `timeout`, without spinning a core, for the next frame from any
    /// worker; `None` when nothing came in time.
    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(usize, Vec<u8>)>, TransportError>;
    /// Workers whose link failed, with why in words: a message stopped arriving
    /// part-way (as when the sender dies), or failed its check under `--secret`. They
    /// should be treated as lost. Empties the list.
    fn broken(&mut self) -> Vec<(usize, String)> {
        Vec::new()
    }
    /// How long receiving one message may take once it has started to arrive.
    fn set_patience(&mut self, _patience: Duration) {}
    /// Gives up on worker `to` (lost): frames still queued for it are dropped without
    /// waiting, and nothing is ever sent to it again.
    fn forget(&mut self, to: usize);
    /// Waits up to `timeout` until every queued frame (to workers not forgotten) has
    /// been delivered; false when some were still pending.
    fn flush(&mut self, timeout: Duration) -> Result<bool, TransportError>;
}

/// A worker's end: its link to the master.
pub trait WorkerLink {
    /// This worker's number (its rank under MPI).
    fn id(&self) -> usize;
    /// Sends `frame` to the master.
    fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError>;
    /// Waits up to `timeout`, without spinning a core, for the next frame from the
    /// master; `None` when nothing came in time.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, TransportError>;
    /// How long a send may wait for the master to take a frame before it fails
    /// (`None`: as long as it takes). Transports that never block ignore it.
    fn set_patience(&mut self, _patience: Option<Duration>) {}
}
