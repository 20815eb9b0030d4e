//! The MPI transport (Open MPI through the `mpi` crate): the only module that imports `mpi`.
//!
//! Rank 0 never blocks on a worker: its sends are immediate (the frames are kept until
//! MPI reports them delivered), and it waits for messages by probing and sleeping with
//! a short back-off instead of Open MPI's blocking receive, which busy-polls a core.

use super::{MasterLink, TransportError, WorkerLink};
use crate::error::RunFailure;
use ::mpi::request::{Request, StaticScope};
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::*;
use std::time::{Duration, Instant};

/// An initialised MPI environment; finalised when dropped.
pub struct Session {
    _universe: ::mpi::environment::Universe,
    world: SimpleCommunicator,
}

impl Session {
    /// Initialises MPI (only the main thread calls MPI).
    pub fn init() -> Result<Session, RunFailure> {
        let (universe, _) = ::mpi::initialize_with_threading(::mpi::Threading::Funneled)
            .ok_or_else(|| {
                RunFailure::Mpi("MPI could not be initialised (was it already?)".into())
            })?;
        let world = universe.world();
        Ok(Session {
            _universe: universe,
            world,
        })
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    /// Number of ranks.
    pub fn size(&self) -> usize {
        self.world.size() as usize
    }

    /// The host name MPI knows this rank by.
    pub fn host(&self) -> String {
        ::mpi::environment::processor_name().unwrap_or_default()
    }

    /// Rank 0's end of the transport.
    pub fn master(&self) -> MpiMaster<'_> {
        MpiMaster {
            world: &self.world,
            pending: Vec::new(),
            forgotten: Vec::new(),
            broken: Vec::new(),
            patience: Duration::from_secs(60),
        }
    }

    /// A worker's end of the transport.
    pub fn worker(&self) -> MpiWorker<'_> {
        MpiWorker {
            world: &self.world,
            patience: None,
        }
    }

    /// Ends every rank of the job with `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// Makes any panic outside item processing end the whole job promptly (exit 70,
/// [`crate::exit::Exit::Panic`])
/// instead of leaving this rank blocked in MPI_Finalize while the others wait.
pub fn abort_job_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if !crate::guard::in_item() {
            eprintln!("imgproc: a rank panicked outside item processing; ending the whole job");
            // SAFETY: MPI is initialised (the hook is installed after Session::init) and
            // MPI_Abort may be called from any thread; it does not return.
            unsafe {
                ::mpi::ffi::MPI_Abort(
                    ::mpi::ffi::RSMPI_COMM_WORLD,
                    crate::exit::Exit::Panic.code(),
                );
            }
        }
    }));
}

/// Polls `probe` with a sleep that grows from 20 us to 2 ms while nothing arrives;
/// `None` once `timeout` has passed.
fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut nap = Duration::from_micros(20);
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(2));
    }
}

type Pending = (usize, Request<'static, [u8], StaticScope>, *mut [u8]);

/// Receives a probed message without blocking past `patience`: a sender that dies in
/// the middle of a large message would otherwise leave MPI_Mrecv waiting forever (seen
/// under `--enable-recovery`). `None` when the message did not arrive in time; its
/// buffer is then leaked, since MPI may still write into it.
fn receive(
    msg: ::mpi::point_to_point::Message,
    status: ::mpi::point_to_point::Status,
    patience: Duration,
    mut meanwhile: impl FnMut(),
) -> Option<Vec<u8>> {
    let count = status.count(u8::equivalent_datatype()).max(0) as usize;
    let ptr = Box::into_raw(vec![0u8; count].into_boxed_slice());
    // SAFETY: the buffer stays allocated until the request completes, or forever.
    let buf: &'static mut [u8] = unsafe { &mut *ptr };
    let mut req = Some(msg.immediate_matched_receive_into(StaticScope, buf));
    let done = poll(patience, || {
        meanwhile();
        match req.take()?.test() {
            Ok(_) => Some(()),
            Err(r) => {
                req = Some(r);
                None
            }
        }
    });
    match done {
        // SAFETY: the receive has completed; the box came from Box::into_raw above.
        Some(()) => Some(unsafe { Box::from_raw(ptr) }.into_vec()),
        None => {
            std::mem::forget(req);
            None
        }
    }
}

/// Rank 0's end.
pub struct MpiMaster<'a> {
    world: &'a SimpleCommunicator,
    pending: Vec<Pending>,
    forgotten: Vec<usize>,
    broken: Vec<(usize, String)>,
    patience: Duration,
}

impl MpiMaster<'_> {
    /// Frees the frames whose sends have completed.
    fn reap(&mut self) {
        let mut still = Vec::with_capacity(self.pending.len());
        for (to, req, ptr) in self.pending.drain(..) {
            match req.test() {
                // SAFETY: `ptr` came from Box::into_raw in `send`, and MPI is done with it.
                Ok(_) => drop(unsafe { Box::from_raw(ptr) }),
                Err(req) => still.push((to, req, ptr)),
            }
        }
        self.pending = still;
    }
}

impl MasterLink for MpiMaster<'_> {
    fn workers(&self) -> usize {
        self.world.size() as usize - 1
    }

    fn send(&mut self, to: usize, frame: Vec<u8>) -> Result<(), TransportError> {
        if self.forgotten.contains(&to) {
            return Ok(());
        }
        let ptr = Box::into_raw(frame.into_boxed_slice());
        // SAFETY: the frame stays allocated until `reap` sees its request completed.
        let buf: &'static [u8] = unsafe { &*ptr };
        let req = self
            .world
            .process_at_rank(to as i32)
            .immediate_send(StaticScope, buf);
        self.pending.push((to, req, ptr));
        self.reap();
        Ok(())
    }

    fn recv_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(usize, Vec<u8>)>, TransportError> {
        let world = self.world;
        let probed = poll(timeout, || {
            self.reap();
            world.any_process().immediate_matched_probe()
        });
        let Some((msg, status)) = probed else {
            return Ok(None);
        };
        let from = status.source_rank() as usize;
        match receive(msg, status, self.patience, || self.reap()) {
            Some(data) => Ok(Some((from, data))),
            None => {
                self.broken.push((
                    from,
                    format!(
                        "a message from it stopped arriving part-way (nothing for {} s)",
                        self.patience.as_secs()
                    ),
                ));
                Ok(None)
            }
        }
    }

    fn broken(&mut self) -> Vec<(usize, String)> {
        std::mem::take(&mut self.broken)
    }

    fn set_patience(&mut self, patience: Duration) {
        self.patience = patience;
    }

    fn forget(&mut self, to: usize) {
        self.forgotten.push(to);
        let (lost, kept): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|(t, _, _)| *t == to);
        self.pending = kept;
        // A send to a dead rank may never complete: its request and buffer are leaked
        // rather than waited for (dropping an incomplete request would panic).
        for (_, req, _) in lost {
            std::mem::forget(req);
        }
    }

    fn flush(&mut self, timeout: Duration) -> Result<bool, TransportError> {
        Ok(poll(timeout, || {
            self.reap();
            self.pending.is_empty().then_some(())
        })
        .is_some())
    }
}

impl Drop for MpiMaster<'_> {
    fn drop(&mut self) {
        if !self.flush(Duration::from_secs(10)).unwrap_or(false) {
            // Never wait on a rank that stopped listening; leak what it did not take.
            for (_, req, _) in self.pending.drain(..) {
                std::mem::forget(req);
            }
        }
    }
}

/// A worker's end.
pub struct MpiWorker<'a> {
    world: &'a SimpleCommunicator,
    patience: Option<Duration>,
}

impl WorkerLink for MpiWorker<'_> {
    fn id(&self) -> usize {
        self.world.rank() as usize
    }

    fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        let Some(patience) = self.patience else {
            self.world.process_at_rank(0).send(&frame[..]);
            return Ok(());
        };
        // A send to a dead master can block forever over TCP: send without blocking and
        // give up (leaking the frame) once the master has been silent too long.
        let ptr = Box::into_raw(frame.into_boxed_slice());
        // SAFETY: the frame is freed only once MPI reports the send complete.
        let buf: &'static [u8] = unsafe { &*ptr };
        let mut req = Some(
            self.world
                .process_at_rank(0)
                .immediate_send(StaticScope, buf),
        );
        let done = poll(patience, || match req.take()?.test() {
            Ok(_) => Some(()),
            Err(r) => {
                req = Some(r);
                None
            }
        });
        match done {
            // SAFETY: as above; the request has completed.
            Some(()) => {
                drop(unsafe { Box::from_raw(ptr) });
                Ok(())
            }
            None => {
                std::mem::forget(req);
                Err(TransportError(format!(
                    "rank 0 took no message for {} s",
                    patience.as_secs()
                )))
            }
        }
    }

    fn set_patience(&mut self, patience: Option<Duration>) {
        self.patience = patience;
    }

    fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, TransportError> {
        let master = self.world.process_at_rank(0);
        let Some((msg, status)) = poll(timeout, || master.immediate_matched_probe()) else {
            return Ok(None);
        };
        let patience = self
            .patience
            .unwrap_or(Duration::from_secs(u32::MAX as u64));
        receive(msg, status, patience, || {})
            .map(Some)
            .ok_or_else(|| {
                TransportError(format!(
                    "a message from rank 0 did not arrive within {} s",
                    patience.as_secs()
                ))
            })
    }
}
