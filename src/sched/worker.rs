//! The worker's loop: take batches from the master, run them, send results back, and
//! prove it is alive while it works.
//!
//! Under MPI (`heartbeat_ms > 0`) items run on a thread of their own while this loop
//! keeps talking to the master: it sends a heartbeat whenever it has said nothing for
//! a period, so a long item never looks like a dead worker, and it gives up when the
//! master has been silent too long (rank 0 died), instead of waiting forever. In a
//! single process (`heartbeat_ms == 0`) batches run inline on the calling thread.
//!
//! Test hook: `IMGPROC_FAULT` holds comma-separated faults for one rank each:
//! `hang-rank:N:K` (rank N stops answering, heartbeats included, on its K-th batch),
//! `exit-rank:N:K` (rank N dies on its K-th batch, as with SIGKILL; K = 0: at start), and
//! `slow-rank:N:MS` (rank N sleeps MS ms before each item, heartbeats going on).

use super::{frame, split_payload, unframe, Done, Ending, Executor, Header, Setup, Task};
use crate::transport::{TransportError, WorkerLink};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a worker's run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerEnd {
    /// Stopped by the master with this exit code; `ending` says how to leave.
    Stopped {
        /// The exit code the master chose.
        exit: i32,
        /// How this process should end.
        ending: Ending,
    },
    /// The master was silent for longer than its timeout: it is presumed dead.
    Orphaned {
        /// How long it was silent.
        silent: Duration,
    },
}

/// A fault injected for the tests (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Hang { batch: usize },
    Exit { batch: usize },
    Slow { ms: u64 },
}

fn fault_for(rank: usize) -> Option<Fault> {
    let spec = std::env::var("IMGPROC_FAULT").ok()?;
    spec.split(',').find_map(|f| {
        let parts: Vec<&str> = f.trim().split(':').collect();
        let [kind, r, n] = parts[..] else {
            return None;
        };
        if r.parse::<usize>().ok()? != rank {
            return None;
        }
        let n: u64 = n.parse().ok()?;
        match kind {
            "hang-rank" => Some(Fault::Hang { batch: n as usize }),
            "exit-rank" => Some(Fault::Exit { batch: n as usize }),
            "slow-rank" => Some(Fault::Slow { ms: n }),
            _ => None,
        }
    })
}

/// Runs one batch and frames its results.
fn run_batch<E: Executor + ?Sized>(
    exec: &E,
    tasks: Vec<Task>,
    payload: Vec<u8>,
    shared_fs: bool,
    fault: Option<Fault>,
) -> Vec<u8> {
    let t = Instant::now();
    let ids: Vec<usize> = tasks.iter().map(|t| t.id).collect();
    let inputs = split_payload(payload, tasks.iter().map(|t| t.len));
    if let Some(Fault::Slow { ms }) = fault {
        std::thread::sleep(Duration::from_millis(ms * tasks.len() as u64));
    }
    let pairs = tasks
        .into_iter()
        .zip(inputs)
        .map(|(t, i)| (t, (!shared_fs).then_some(i)))
        .collect();
    let results = exec.execute_batch(pairs);
    let mut dones: Vec<Done> = Vec::with_capacity(results.len());
    let mut outs: Vec<Vec<u8>> = Vec::with_capacity(results.len());
    for ((mut done, out), id) in results.into_iter().zip(ids) {
        done.id = id;
        let out = out.unwrap_or_default();
        done.len = out.len() as u64;
        outs.push(out);
        done.preview_lens = done.previews.iter().map(|p| p.len() as u64).collect();
        outs.append(&mut done.previews);
        dones.push(done);
    }
    let busy_ms = t.elapsed().as_secs_f64() * 1e3;
    for d in &mut dones {
        d.ended_ago_ms = d.ended.map_or(0.0, |e| e.elapsed().as_secs_f64() * 1e3);
    }
    let payload = if outs.len() == 1 {
        outs.pop().unwrap_or_default()
    } else {
        outs.concat()
    };
    frame(&Header::Results { dones, busy_ms }, payload)
}

/// Waits for the master's setup (or an early stop), then runs batches with the
/// executor `make` builds from it until told to stop. `usage` (CPU seconds, peak
/// resident MB) is reported at the end.
pub fn run_worker<E: Executor + Send + Sync + 'static>(
    link: &mut dyn WorkerLink,
    make: impl FnOnce(&Setup) -> E + Send,
    usage: impl Fn() -> (f64, f64),
) -> Result<WorkerEnd, TransportError> {
    let fault = fault_for(link.id());
    if fault == Some(Fault::Exit { batch: 0 }) {
        // SAFETY: ends this process at once, as SIGKILL would.
        unsafe { libc::_exit(137) }
    }
    let setup = loop {
        let Some(f) = link.recv_timeout(Duration::from_secs(1))? else {
            continue;
        };
        match unframe(f)?.0 {
            Header::Setup(s) => break s,
            Header::Stop { exit, ending } => return Ok(WorkerEnd::Stopped { exit, ending }),
            _ => continue,
        }
    };
    let exec = Arc::new(build_executor(link, make, &setup)?);
    link.send(frame(&Header::Ready(exec.describe()), Vec::new()))?;
    let master_timeout =
        (setup.master_timeout_ms > 0).then(|| Duration::from_millis(setup.master_timeout_ms));
    link.set_patience(master_timeout);
    let bye = |link: &mut dyn WorkerLink| {
        let (cpu_seconds, peak_rss_mb) = usage();
        let b = Header::Bye {
            cpu_seconds,
            peak_rss_mb,
        };
        link.send(frame(&b, Vec::new()))
    };
    if setup.heartbeat_ms == 0 {
        serve_inline(link, &*exec, &setup, fault, &bye)
    } else {
        serve_with_heartbeat(link, exec, &setup, master_timeout, fault, &bye)
    }
}

/// Builds the executor (which may open a device and compile its kernels: a minute on a
/// loaded node with a cold cache) on a helper thread, while this one keeps sending the
/// master heartbeats: a worker that is busy getting ready is not a lost worker.
fn build_executor<E: Send>(
    link: &mut dyn WorkerLink,
    make: impl FnOnce(&Setup) -> E + Send,
    setup: &Setup,
) -> Result<E, TransportError> {
    let heartbeat = Duration::from_millis(setup.heartbeat_ms);
    if heartbeat.is_zero() {
        return Ok(make(setup));
    }
    std::thread::scope(|s| {
        let building = s.spawn(|| make(setup));
        let mut last_sent = Instant::now();
        let mut sent = Ok(());
        while !building.is_finished() {
            if sent.is_ok() && last_sent.elapsed() >= heartbeat {
                sent = link.send(frame(&Header::Alive, Vec::new()));
                last_sent = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let exec = building
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        sent.map(|()| exec)
    })
}

/// Says goodbye to the master (with this process's CPU time).
type Bye<'a> = dyn Fn(&mut dyn WorkerLink) -> Result<(), TransportError> + 'a;

/// Without heartbeats (in-process workers): each batch runs on this thread.
fn serve_inline<E: Executor>(
    link: &mut dyn WorkerLink,
    exec: &E,
    setup: &Setup,
    fault: Option<Fault>,
    bye: &Bye,
) -> Result<WorkerEnd, TransportError> {
    loop {
        let Some(f) = link.recv_timeout(Duration::from_secs(3600))? else {
            continue;
        };
        match unframe(f)? {
            (Header::Tasks(tasks), payload) => {
                let f = run_batch(exec, tasks, payload, setup.shared_fs, fault);
                link.send(f)?;
            }
            (Header::Stop { exit, ending }, _) => {
                bye(link)?;
                return Ok(WorkerEnd::Stopped { exit, ending });
            }
            _ => {}
        }
    }
}

/// With heartbeats (ranks): items run on their own thread, and this one talks to the
/// master, sending a beat whenever it has been quiet for a heartbeat. The item thread
/// is not joined: when the master says stop, an unfinished item is abandoned with the
/// process.
fn serve_with_heartbeat<E: Executor + Send + Sync + 'static>(
    link: &mut dyn WorkerLink,
    exec: Arc<E>,
    setup: &Setup,
    master_timeout: Option<Duration>,
    fault: Option<Fault>,
    bye: &Bye,
) -> Result<WorkerEnd, TransportError> {
    let heartbeat = Duration::from_millis(setup.heartbeat_ms);
    let (job_tx, job_rx) = mpsc::channel::<(Vec<Task>, Vec<u8>)>();
    let (res_tx, res_rx) = mpsc::channel::<Vec<u8>>();
    let shared = setup.shared_fs;
    std::thread::Builder::new()
        .name("imgproc-items".into())
        .spawn(move || {
            for (tasks, payload) in job_rx {
                if res_tx
                    .send(run_batch(&*exec, tasks, payload, shared, fault))
                    .is_err()
                {
                    break;
                }
            }
        })
        .map_err(|e| TransportError(format!("cannot start the item thread: {e}")))?;
    let mut last_sent = Instant::now();
    let mut heard = Instant::now();
    let mut batches = 0usize;
    loop {
        while let Ok(f) = res_rx.try_recv() {
            link.send(f)?;
            last_sent = Instant::now();
        }
        if last_sent.elapsed() >= heartbeat {
            link.send(frame(&Header::Alive, Vec::new()))?;
            last_sent = Instant::now();
        }
        let Some(f) = link.recv_timeout(Duration::from_millis(2))? else {
            if let Some(limit) = master_timeout {
                let silent = heard.elapsed();
                if silent > limit {
                    return Ok(WorkerEnd::Orphaned { silent });
                }
            }
            continue;
        };
        heard = Instant::now();
        match unframe(f)? {
            (Header::Tasks(tasks), payload) => {
                batches += 1;
                match fault {
                    Some(Fault::Hang { batch }) if batch == batches => loop {
                        std::thread::sleep(Duration::from_secs(3600));
                    },
                    Some(Fault::Exit { batch }) if batch == batches => {
                        // SAFETY: ends this process at once, as SIGKILL would.
                        unsafe { libc::_exit(137) }
                    }
                    _ => {}
                }
                if job_tx.send((tasks, payload)).is_err() {
                    return Err(TransportError("the item thread ended".into()));
                }
            }
            (Header::Stop { exit, ending }, _) => {
                bye(link)?;
                return Ok(WorkerEnd::Stopped { exit, ending });
            }
            _ => {}
        }
    }
}
