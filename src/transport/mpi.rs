//! The MPI transport (Open MPI through the `mpi` crate): the only module that imports `mpi`.
//!
//! Rank 0 never blocks on a worker: its sends are immediate (the frames are kept until
//! MPI reports them delivered), and it waits for messages by probing and sleeping with
//! a short back-off instead of Open MPI's blocking receive, which busy-polls a core.

use super::{MasterLink, TransportError, WorkerLink};
use ::mpi::request::{Request, StaticScope};
use ::mpi::topology::SimpleCommunicator;
use ::mpi::traits::*;
use std::time::Duration;

/// True when this process was started by an MPI launcher (mpirun, mpiexec, srun with PMI).
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Ranks on this host, as the launcher exported it (Open MPI, MPICH, Slurm).
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
pub fn local_rank() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// An initialised MPI environment; finalised when dropped.
pub struct Session {
    _universe: ::mpi::environment::Universe,
    world: SimpleCommunicator,
}

impl Session {
    /// Initialises MPI (only the main thread calls MPI).
    pub fn init() -> Result<Session, String> {
        let (universe, _) = ::mpi::initialize_with_threading(::mpi::Threading::Funneled)
            .ok_or_else(|| "MPI could not be initialised (was it already?)".to_string())?;
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
        }
    }

    /// A worker's end of the transport.
    pub fn worker(&self) -> MpiWorker<'_> {
        MpiWorker { world: &self.world }
    }

    /// Ends every rank of the job with `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// Makes any panic outside item processing end the whole job promptly (exit 70)
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
                ::mpi::ffi::MPI_Abort(::mpi::ffi::RSMPI_COMM_WORLD, 70);
            }
        }
    }));
}

/// Polls `probe` with a sleep that grows from 20 us to 2 ms while nothing arrives.
fn poll<T>(mut probe: impl FnMut() -> Option<T>) -> T {
    let mut nap = Duration::from_micros(20);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(2));
    }
}

type Pending = (Request<'static, [u8], StaticScope>, *mut [u8]);

/// Rank 0's end.
pub struct MpiMaster<'a> {
    world: &'a SimpleCommunicator,
    pending: Vec<Pending>,
}

impl MpiMaster<'_> {
    /// Frees the frames whose sends have completed.
    fn reap(&mut self) {
        let mut still = Vec::with_capacity(self.pending.len());
        for (req, ptr) in self.pending.drain(..) {
            match req.test() {
                // SAFETY: `ptr` came from Box::into_raw in `send`, and MPI is done with it.
                Ok(_) => drop(unsafe { Box::from_raw(ptr) }),
                Err(req) => still.push((req, ptr)),
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
        let ptr = Box::into_raw(frame.into_boxed_slice());
        // SAFETY: the frame stays allocated until `reap` sees its request completed.
        let buf: &'static [u8] = unsafe { &*ptr };
        let req = self
            .world
            .process_at_rank(to as i32)
            .immediate_send(StaticScope, buf);
        self.pending.push((req, ptr));
        self.reap();
        Ok(())
    }

    fn recv(&mut self) -> Result<(usize, Vec<u8>), TransportError> {
        let world = self.world;
        let probed = poll(|| {
            self.reap();
            world.any_process().immediate_matched_probe()
        });
        let (data, status) = probed.matched_receive_vec::<u8>();
        Ok((status.source_rank() as usize, data))
    }

    fn flush(&mut self) -> Result<(), TransportError> {
        poll(|| {
            self.reap();
            self.pending.is_empty().then_some(())
        });
        Ok(())
    }
}

impl Drop for MpiMaster<'_> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A worker's end.
pub struct MpiWorker<'a> {
    world: &'a SimpleCommunicator,
}

impl WorkerLink for MpiWorker<'_> {
    fn id(&self) -> usize {
        self.world.rank() as usize
    }

    fn send(&mut self, frame: Vec<u8>) -> Result<(), TransportError> {
        self.world.process_at_rank(0).send(&frame[..]);
        Ok(())
    }

    fn recv(&mut self) -> Result<Vec<u8>, TransportError> {
        let master = self.world.process_at_rank(0);
        let probed = poll(|| master.immediate_matched_probe());
        Ok(probed.matched_receive_vec::<u8>().0)
    }
}
