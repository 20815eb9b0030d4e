//! Moving opaque frames between rank 0 (the master) and the workers.
//!
//! The scheduler talks to workers only through these two traits, so the same master
//! and worker loops run over MPI ([`mpi`], the only module that imports the `mpi`
//! crate) and over threads and channels ([`local`], for single-process runs and for
//! deterministic tests). A frame is a byte vector; the transport knows nothing of what
//! is inside.

pub mod local;
pub mod mpi;

use std::time::Duration;

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
    /// Workers whose message could not be received (it stopped arriving part-way, as
    /// when the sender dies): they should be treated as lost. Empties the list.
    fn broken(&mut self) -> Vec<usize> {
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
