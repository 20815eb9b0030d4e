//! The scheduler: rank 0's master loop and the workers' loop, over any transport.
//!
//! The master deals work items largest first, several small items to one message
//! (a batch worth about one large item), so rank 0's cost per item stays small. Each
//! worker holds up to `prefetch` batches in flight so it never waits for the next, and
//! gets a new batch per result, so fast workers take more (dynamic balancing). Results
//! are handed to a [`Sink`] as they arrive; the master holds only in-flight inputs in
//! memory.
//!
//! Failures of workers are the master's business too. Workers send a heartbeat while
//! they work; one silent for longer than the timeout is *lost*: the master forgets it
//! (never waits on it again), re-deals every item it held to the living workers, and
//! discards anything it sends later. When nothing is left to deal and a worker is idle,
//! the master deals it a *backup copy* of the in-flight batch expected to finish last;
//! the first result for an item is committed and every other copy discarded, so each
//! output is written exactly once.
//!
//! The scheduler knows item ids, costs, paths and bytes, never pixels: workers run
//! items through an [`Executor`], the sink writes files. A frame on the wire is a
//! little-endian u32 header length, a JSON header, and the payload (input or output
//! bytes of every item of the batch, one after another).

mod worker;

pub use worker::run_worker;
#[cfg(any(test, feature = "mpi"))]
pub use worker::WorkerEnd;

use crate::error::Failure;
use crate::item::{BackendChoice, ItemStats};
use crate::transport::{MasterLink, TransportError};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the master knows of one item.
#[derive(Clone, Debug)]
pub struct Job {
    /// Item id (its index in the plan).
    pub id: usize,
    /// Relative cost, for largest-first dealing.
    pub cost: f64,
    /// The item's processing spec, opaque to the scheduler.
    pub spec: Arc<str>,
    /// Input path.
    pub input: PathBuf,
    /// Output path.
    pub output: PathBuf,
    /// Ask the worker for previews of this item (thumbnails for a report), which come
    /// back beside the output as bytes the scheduler does not read.
    pub preview: bool,
}

/// One task as a worker sees it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Task {
    /// Item id.
    pub id: usize,
    /// The spec, as given by the master.
    pub spec: String,
    /// Input path (read it yourself when no bytes came with the task).
    pub input: PathBuf,
    /// Output path (write it yourself when `write_output`).
    pub output: PathBuf,
    /// Whether the worker writes the output (shared filesystem) or returns the bytes.
    pub write_output: bool,
    /// Bytes of the frame's payload that are this task's input.
    #[serde(default)]
    pub len: u64,
    /// Return previews of the item with its result ([`Done::previews`]).
    #[serde(default)]
    pub preview: bool,
}

/// A worker's account of one task.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Done {
    /// Item id.
    pub id: usize,
    /// Why the item failed, if it did.
    pub error: Option<Failure>,
    /// Its statistics (size, timings, what ran it), as the report shows them.
    pub stats: ItemStats,
    /// Something to tell the user although the item succeeded.
    pub warning: Option<String>,
    /// CRC-32 of the output bytes (for the journal).
    pub out_crc: Option<u32>,
    /// Wall time the worker spent on the task.
    pub busy_ms: f64,
    /// How long before its batch's results were sent the task ended, so that rank 0
    /// can place the task on its own clock (no clocks are compared across hosts).
    #[serde(default)]
    pub ended_ago_ms: f64,
    /// When the task ended, on the worker (set by the executor; not sent).
    #[serde(skip)]
    pub ended: Option<std::time::Instant>,
    /// Bytes of the frame's payload that are this task's output.
    pub len: u64,
    /// Previews asked for by [`Task::preview`] (set by the executor; on the wire they
    /// follow the output in the payload).
    #[serde(skip)]
    pub previews: Vec<Vec<u8>>,
    /// Bytes of each preview, after the output in the payload.
    #[serde(default)]
    pub preview_lens: Vec<u64>,
}

/// Settings every worker receives before its first task.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Setup {
    /// The master's host, so workers there leave it a core's share.
    pub master_host: String,
    /// `--threads`, if given.
    pub threads: Option<usize>,
    /// Workers read inputs and write outputs themselves.
    pub shared_fs: bool,
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--device`, if given (else each worker takes its local rank modulo the devices).
    pub device: Option<usize>,
    /// Heartbeat period in ms while a worker works (0: none, items run inline).
    #[serde(default)]
    pub heartbeat_ms: u64,
    /// A worker whose master is silent this long gives up (0: never).
    #[serde(default)]
    pub master_timeout_ms: u64,
}

/// How a worker process ends once its work is over (under MPI).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum Ending {
    /// MPI_Finalize and return (every rank is alive).
    Finalize,
    /// Leave at once without MPI_Finalize (a run that survives lost ranks: Finalize
    /// would wait for them forever).
    Exit,
    /// Wait until rank 0 ends the job (it aborts it after a plain `mpirun` lost a rank).
    Linger,
}

#[derive(Debug, Serialize, Deserialize)]
enum Header {
    Setup(Setup),
    Tasks(Vec<Task>),
    Stop {
        exit: i32,
        ending: Ending,
    },
    Results {
        dones: Vec<Done>,
        busy_ms: f64,
    },
    Alive,
    /// The worker's executor is built: where it runs and with what.
    Ready(RankInfo),
    Bye {
        cpu_seconds: f64,
        peak_rss_mb: f64,
    },
}

/// A message: the payload as it is, then the JSON header, then the header's length
/// (u32, little-endian). The header goes last so that an image-sized payload is only
/// extended by a few bytes (in place when the allocator can), not copied behind it,
/// and taking it off is a truncation.
fn frame(h: &Header, mut payload: Vec<u8>) -> Vec<u8> {
    let head = serde_json::to_vec(h).unwrap_or_default();
    payload.reserve_exact(head.len() + 4);
    payload.extend_from_slice(&head);
    payload.extend_from_slice(&(head.len() as u32).to_le_bytes());
    payload
}

fn unframe(mut f: Vec<u8>) -> Result<(Header, Vec<u8>), TransportError> {
    let bad = || TransportError("malformed frame".into());
    let n = f.len();
    let tail: [u8; 4] = f
        .get(n.saturating_sub(4)..)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(bad)?;
    let len = u32::from_le_bytes(tail) as usize;
    let start = (n - 4).checked_sub(len).ok_or_else(bad)?;
    let h = serde_json::from_slice(&f[start..n - 4])
        .map_err(|e| TransportError(format!("malformed frame: {e}")))?;
    f.truncate(start);
    Ok((h, f))
}

/// Splits a batch payload into the pieces of the given lengths (missing bytes give
/// empty pieces; the frame was checked by the transport).
fn split_payload(mut payload: Vec<u8>, lens: impl Iterator<Item = u64>) -> Vec<Vec<u8>> {
    let lens: Vec<usize> = lens.map(|l| l as usize).collect();
    let mut out = Vec::with_capacity(lens.len());
    if lens.len() == 1 {
        payload.truncate(lens[0]);
        out.push(payload);
        return out;
    }
    let mut at = 0;
    for l in lens {
        let end = (at + l).min(payload.len());
        out.push(payload[at.min(end)..end].to_vec());
        at = end;
    }
    out
}

/// How a committed result came about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// The worker whose result is committed.
    pub worker: usize,
    /// Times the item was dealt (more than 1 after a re-deal or a backup copy).
    pub copies: usize,
    /// Whether the committed result came from the backup copy.
    pub backup_won: bool,
}

/// The master's side of the work: reading inputs and taking results.
pub trait Sink {
    /// Reads an input to send to a worker (not called with a shared filesystem).
    fn read_input(&mut self, job: &Job) -> std::io::Result<Vec<u8>>;
    /// Takes a result; `output` holds the bytes to write when the worker did not write them.
    fn result(&mut self, job: &Job, commit: Commit, done: Done, output: Option<Vec<u8>>);
    /// An input the master could not read: the item fails without reaching a worker.
    fn input_failed(&mut self, job: &Job, error: std::io::Error);
    /// An item that will not run, and why (`--fail-fast` stopped the batch, the run was
    /// interrupted, or every worker was lost).
    fn skipped(&mut self, job: &Job, why: Unrun);
    /// A batch holding `job` went to `worker` (`backup`: a backup copy of a slow
    /// worker's item).
    fn dealt(&mut self, job: &Job, worker: usize, backup: bool) {
        let _ = (job, worker, backup);
    }
    /// A worker was declared lost after `silent` without a word, or because its link
    /// failed (`why`); `redealt` are the items it held that go to others.
    fn worker_lost(
        &mut self,
        worker: usize,
        silent: Duration,
        why: Option<&str>,
        redealt: &[&Job],
    ) {
        let _ = (worker, silent, why, redealt);
    }
    /// Polled while the master waits: true stops dealing (SIGINT, SIGTERM).
    fn interrupted(&mut self) -> bool {
        false
    }
}

/// Why an item was not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrun {
    /// `--fail-fast` stopped the batch.
    FailFast,
    /// The run was interrupted by a signal.
    Interrupted,
    /// Every worker was lost.
    NoWorkers,
}

/// What workers do with a task: everything that touches pixels lives behind this.
pub trait Executor {
    /// Runs `task`; `input` holds the bytes when the master sent them. Returns the
    /// account and, unless the task says the worker writes it, the output bytes.
    fn execute(&self, task: &Task, input: Option<Vec<u8>>) -> (Done, Option<Vec<u8>>);

    /// Where this executor runs and with what (the default: nothing said).
    fn describe(&self) -> RankInfo {
        RankInfo::default()
    }

    /// Runs a batch of tasks; the default runs them one after another. Results are in
    /// the tasks' order.
    fn execute_batch(&self, tasks: Vec<(Task, Option<Vec<u8>>)>) -> Vec<(Done, Option<Vec<u8>>)> {
        tasks
            .into_iter()
            .map(|(t, i)| self.execute(&t, i))
            .collect()
    }
}

/// Master settings.
#[derive(Clone, Debug)]
pub struct MasterOptions {
    /// Batches in flight per worker (at least 1).
    pub prefetch: usize,
    /// Stop dealing after the first failure.
    pub fail_fast: bool,
    /// Sent to every worker first.
    pub setup: Setup,
    /// A worker silent this long is lost (`None`: never).
    pub worker_timeout: Option<Duration>,
    /// Small items are grouped until a batch costs this much (0: one item per batch).
    pub batch_cost: f64,
    /// At most this many items per batch.
    pub batch_items: usize,
    /// Deal backup copies of the slowest in-flight batches to idle workers at the end.
    pub backups: bool,
    /// The job survives lost ranks (`imgproc launch`): workers leave without Finalize.
    pub recovery: bool,
}

impl MasterOptions {
    /// Options with one item per batch, no timeout and no backups.
    #[cfg(test)]
    pub fn simple(prefetch: usize, fail_fast: bool, setup: Setup) -> MasterOptions {
        MasterOptions {
            prefetch,
            fail_fast,
            setup,
            worker_timeout: None,
            batch_cost: 0.0,
            batch_items: 1,
            backups: false,
            recovery: false,
        }
    }
}

/// A worker's state at the end of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum WorkerState {
    /// Worked to the end.
    #[default]
    Ok,
    /// Declared lost this many seconds into the run.
    Lost {
        /// Seconds after the master started.
        at_seconds: f64,
    },
}

/// Where a worker runs and with what, as it says once its executor is built.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RankInfo {
    /// Its host name.
    pub host: String,
    /// Threads it runs items on.
    pub threads: usize,
    /// Its backend: `cpu`, `auto`, or `opencl` with the device's name.
    pub backend: String,
}

/// Per-worker counters kept by the master.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStats {
    /// Items it finished whose result was committed.
    pub items: usize,
    /// Seconds it spent on batches.
    pub busy_seconds: f64,
    /// Bytes the master sent it.
    pub bytes_to: u64,
    /// Bytes it sent the master.
    pub bytes_from: u64,
    /// CPU seconds it reported at the end.
    pub cpu_seconds: f64,
    /// Its process's peak resident memory in MB, reported at the end.
    pub peak_rss_mb: f64,
    /// Where it runs and with what, once it said so.
    pub info: Option<RankInfo>,
    /// Its state at the end.
    pub state: WorkerState,
    /// Backup copies it was dealt.
    pub backups: usize,
    /// Results it sent that were discarded (another copy won, or it was lost).
    pub discarded: usize,
}

/// What the master loop ended with.
#[derive(Clone, Debug, Default)]
pub struct MasterOutcome {
    /// Per worker (index 0 is worker 1).
    pub stats: Vec<WorkerStats>,
    /// Workers declared lost, in increasing order.
    pub lost: Vec<usize>,
    /// A signal stopped the run.
    pub interrupted: bool,
    /// Every worker was lost with items left.
    pub no_workers: bool,
}

/// Tells every worker to stop with `exit` before any work (an invalid manifest, a dry
/// run), and how to end; waits a few seconds at most for the messages to leave.
pub fn stop_all(
    link: &mut dyn MasterLink,
    exit: i32,
    ending: Ending,
) -> Result<(), TransportError> {
    for w in 1..=link.workers() {
        link.send(w, frame(&Header::Stop { exit, ending }, Vec::new()))?;
    }
    link.flush(Duration::from_secs(5)).map(|_| ())
}

/// A batch in flight on one worker.
#[derive(Clone, Debug)]
struct Batch {
    /// Indexes into `jobs` not yet answered by this worker.
    jobs: Vec<usize>,
    cost: f64,
    dealt: Instant,
    /// A copy dealt as a backup.
    backup: bool,
    /// A backup of this batch has been dealt elsewhere.
    backed_up: bool,
}

#[derive(Clone, Debug)]
struct WorkerSlot {
    alive: bool,
    heard: Instant,
    inflight: VecDeque<Batch>,
    /// When it last finished a batch.
    last_finish: Option<Instant>,
    /// Cost finished and the seconds it took, for its speed.
    rate_cost: f64,
    rate_secs: f64,
}

impl WorkerSlot {
    fn rate(&self) -> Option<f64> {
        (self.rate_secs > 0.0 && self.rate_cost > 0.0).then(|| self.rate_cost / self.rate_secs)
    }
    fn load(&self) -> f64 {
        self.inflight.iter().map(|b| b.cost).sum()
    }
}

struct Master<'a> {
    link: &'a mut dyn MasterLink,
    sink: &'a mut dyn Sink,
    jobs: &'a [Job],
    opts: &'a MasterOptions,
    start: Instant,
    slots: Vec<WorkerSlot>,
    stats: Vec<WorkerStats>,
    /// Jobs to deal, front first, and their total cost.
    queue: VecDeque<usize>,
    queue_cost: f64,
    /// Item id to index in `jobs`.
    by_id: HashMap<usize, usize>,
    /// Per job: committed (or failed at the master), copies dealt, copies in flight,
    /// whether a copy is a backup.
    settled: Vec<bool>,
    copies: Vec<usize>,
    live_copies: Vec<usize>,
    unsettled: usize,
    stopped: bool,
}

impl Master<'_> {
    fn batch_target(&self) -> f64 {
        let left = self.queue_cost.max(0.0);
        let alive = self.slots.iter().filter(|s| s.alive).count().max(1);
        // Never so large that the remaining work is split into fewer than four
        // batches per worker, which would unbalance the end of the run.
        self.opts.batch_cost.min(left / (4 * alive) as f64).max(0.0)
    }

    /// Deals batches to worker `w` until it holds `prefetch` or nothing is left.
    fn fill(&mut self, w: usize) -> Result<(), TransportError> {
        self.fill_to(w, self.opts.prefetch.max(1))
    }

    /// Deals batches to worker `w` until it holds `limit` or nothing is left.
    fn fill_to(&mut self, w: usize, limit: usize) -> Result<(), TransportError> {
        while !self.stopped && self.slots[w - 1].alive && self.slots[w - 1].inflight.len() < limit {
            // Prefetch only hides a round trip, so a worker that is busy with much
            // more than an average item gets nothing queued behind it: an idle worker
            // should take that item.
            if self.queue.is_empty() {
                return Ok(());
            }
            let mean = self.queue_cost.max(0.0) / self.queue.len() as f64;
            let load = self.slots[w - 1].load();
            if !self.slots[w - 1].inflight.is_empty() && load > 2.0 * mean.max(self.batch_target())
            {
                return Ok(());
            }
            if !self.deal_batch(w)? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Takes jobs from the queue into one batch for `w` and sends it; false when the
    /// queue held nothing dealable.
    fn deal_batch(&mut self, w: usize) -> Result<bool, TransportError> {
        let target = self.batch_target();
        let max_items = self.opts.batch_items.max(1);
        let mut tasks = Vec::new();
        let mut payload = Vec::new();
        let mut ids = Vec::new();
        let mut cost = 0.0;
        while let Some(&j) = self.queue.front() {
            if !ids.is_empty() && (cost >= target || ids.len() >= max_items) {
                break;
            }
            self.queue.pop_front();
            self.queue_cost -= self.jobs[j].cost;
            if self.settled[j] {
                continue;
            }
            if let Err(e) = self.pack(j, &mut tasks, &mut payload) {
                self.sink.input_failed(&self.jobs[j], e);
                self.settle(j);
                continue;
            }
            ids.push(j);
            cost += self.jobs[j].cost;
        }
        if ids.is_empty() {
            return Ok(false);
        }
        self.send_batch(w, tasks, payload, ids, cost, false)?;
        Ok(true)
    }

    /// Adds job `j` to a batch being built: its task, and its input bytes unless the
    /// workers read inputs themselves.
    fn pack(
        &mut self,
        j: usize,
        tasks: &mut Vec<Task>,
        payload: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let jobs = self.jobs;
        let job = &jobs[j];
        let shared = self.opts.setup.shared_fs;
        let input = if shared {
            Vec::new()
        } else {
            self.sink.read_input(job)?
        };
        tasks.push(Task {
            id: job.id,
            spec: job.spec.to_string(),
            input: job.input.clone(),
            output: job.output.clone(),
            write_output: shared,
            len: input.len() as u64,
            preview: job.preview,
        });
        if payload.is_empty() {
            // The batch's first input: moved, not copied.
            *payload = input;
        } else {
            payload.extend_from_slice(&input);
        }
        Ok(())
    }

    fn send_batch(
        &mut self,
        w: usize,
        tasks: Vec<Task>,
        payload: Vec<u8>,
        ids: Vec<usize>,
        cost: f64,
        backup: bool,
    ) -> Result<(), TransportError> {
        self.stats[w - 1].bytes_to += payload.len() as u64;
        self.link.send(w, frame(&Header::Tasks(tasks), payload))?;
        for &j in &ids {
            self.copies[j] += 1;
            self.live_copies[j] += 1;
            self.sink.dealt(&self.jobs[j], w, backup);
        }
        self.slots[w - 1].inflight.push_back(Batch {
            jobs: ids,
            cost,
            dealt: Instant::now(),
            backup,
            backed_up: false,
        });
        Ok(())
    }

    fn settle(&mut self, j: usize) {
        if !self.settled[j] {
            self.settled[j] = true;
            self.unsettled -= 1;
        }
    }

    /// Handles one batch of results from worker `w`.
    fn results(
        &mut self,
        w: usize,
        dones: Vec<Done>,
        busy_ms: f64,
        payload: Vec<u8>,
    ) -> Result<(), TransportError> {
        let shared = self.opts.setup.shared_fs;
        self.stats[w - 1].bytes_from += payload.len() as u64;
        self.stats[w - 1].busy_seconds += busy_ms / 1e3;
        let outputs = split_payload(
            payload,
            dones
                .iter()
                .map(|d| d.len + d.preview_lens.iter().sum::<u64>()),
        );
        let now = Instant::now();
        for (mut done, mut out) in dones.into_iter().zip(outputs) {
            if !done.preview_lens.is_empty() {
                let lens = std::mem::take(&mut done.preview_lens);
                let previews = out.split_off((done.len as usize).min(out.len()));
                done.previews = split_payload(previews, lens.into_iter());
            }
            let Some(&j) = self.by_id.get(&done.id) else {
                return Err(TransportError(format!(
                    "worker {w} reported unknown item {}",
                    done.id
                )));
            };
            // Take the item out of the batch that held it.
            let slot = &mut self.slots[w - 1];
            let mut backup = false;
            if let Some(bi) = slot.inflight.iter().position(|b| b.jobs.contains(&j)) {
                let b = &mut slot.inflight[bi];
                backup = b.backup;
                b.jobs.retain(|&x| x != j);
                if b.jobs.is_empty() {
                    let b = slot.inflight.remove(bi).expect("batch exists");
                    let since = slot.last_finish.map_or(b.dealt, |t| t.max(b.dealt));
                    slot.rate_cost += b.cost;
                    slot.rate_secs += (now - since).as_secs_f64();
                    slot.last_finish = Some(now);
                }
                self.live_copies[j] = self.live_copies[j].saturating_sub(1);
            }
            if self.settled[j] {
                self.stats[w - 1].discarded += 1;
                continue;
            }
            self.stats[w - 1].items += 1;
            let failed = done.error.is_some();
            let commit = Commit {
                worker: w,
                copies: self.copies[j],
                backup_won: backup,
            };
            self.sink
                .result(&self.jobs[j], commit, done, (!shared).then_some(out));
            self.settle(j);
            if failed && self.opts.fail_fast {
                self.stopped = true;
            }
        }
        Ok(())
    }

    /// Declares worker `w` lost and puts back every item only it held.
    fn lose(&mut self, w: usize, silent: Duration, why: Option<&str>) {
        let slot = &mut self.slots[w - 1];
        slot.alive = false;
        self.link.forget(w);
        self.stats[w - 1].state = WorkerState::Lost {
            at_seconds: self.start.elapsed().as_secs_f64(),
        };
        let batches: Vec<Batch> = slot.inflight.drain(..).collect();
        let mut redealt = Vec::new();
        for b in batches {
            for j in b.jobs {
                self.live_copies[j] = self.live_copies[j].saturating_sub(1);
                if !self.settled[j] && self.live_copies[j] == 0 && !self.stopped {
                    redealt.push(j);
                }
            }
        }
        // The lost worker's items are the oldest: they go first.
        for &j in redealt.iter().rev() {
            self.queue.push_front(j);
            self.queue_cost += self.jobs[j].cost;
        }
        let jobs: Vec<&Job> = redealt.iter().map(|&j| &self.jobs[j]).collect();
        self.sink.worker_lost(w, silent, why, &jobs);
    }

    /// When nothing is left to deal, gives idle worker `w` a copy of the in-flight batch
    /// expected to finish last, if `w` would likely finish it sooner.
    fn backup(&mut self, w: usize) -> Result<(), TransportError> {
        if !self.opts.backups || self.stopped || !self.slots[w - 1].inflight.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let rates: Vec<f64> = self.slots.iter().filter_map(WorkerSlot::rate).collect();
        let best = rates.iter().copied().reduce(f64::max);
        let mut pick: Option<(Instant, usize, usize)> = None;
        for (v, slot) in self.slots.iter().enumerate() {
            if !slot.alive || v + 1 == w || slot.inflight.is_empty() {
                continue;
            }
            let start = slot.inflight[0]
                .dealt
                .max(slot.last_finish.unwrap_or(slot.inflight[0].dealt));
            let elapsed = (now - start).as_secs_f64();
            // Its own speed, else the best seen; but a worker still on a batch that
            // speed would have finished is slower: assume it is halfway through.
            let first = slot.inflight[0].cost;
            let rate = slot.rate().or(best).map(|r| {
                if elapsed * r > first {
                    first / (2.0 * elapsed)
                } else {
                    r
                }
            });
            let mut cum = 0.0;
            for (k, b) in slot.inflight.iter().enumerate() {
                cum += b.cost;
                if b.backup || b.backed_up || b.jobs.iter().all(|&j| self.settled[j]) {
                    continue;
                }
                let est = match rate {
                    Some(r) if r > 0.0 => start + Duration::from_secs_f64(cum / r),
                    _ => now + (now - b.dealt),
                };
                if pick.is_none_or(|(e, _, _)| est > e) {
                    pick = Some((est, v + 1, k));
                }
            }
        }
        let Some((est, v, k)) = pick else {
            return Ok(());
        };

        let batch = &self.slots[v - 1].inflight[k];
        let ids: Vec<usize> = batch
            .jobs
            .iter()
            .copied()
            .filter(|&j| !self.settled[j])
            .collect();
        let cost: f64 = ids.iter().map(|&j| self.jobs[j].cost).sum();
        if let Some(r) = self.slots[w - 1].rate().or(best) {
            if now + Duration::from_secs_f64(cost / r) >= est {
                return Ok(());
            }
        }
        self.slots[v - 1].inflight[k].backed_up = true;
        let mut tasks = Vec::new();
        let mut payload = Vec::new();
        let mut kept = Vec::new();
        for j in ids {
            // An unreadable input: the original copy will report it.
            if self.pack(j, &mut tasks, &mut payload).is_ok() {
                kept.push(j);
            }
        }
        if kept.is_empty() {
            return Ok(());
        }
        self.stats[w - 1].backups += kept.len();
        self.send_batch(w, tasks, payload, kept, cost, true)
    }

    fn run(&mut self) -> Result<MasterOutcome, TransportError> {
        let n = self.link.workers();
        self.start()?;
        let heartbeat = Duration::from_millis(self.opts.setup.heartbeat_ms);
        let tick = if heartbeat.is_zero() {
            Duration::from_millis(200)
        } else {
            (heartbeat / 4).clamp(Duration::from_millis(5), Duration::from_millis(200))
        };
        let mut last_beat = Instant::now();
        let mut interrupted = false;
        let mut no_workers = false;
        loop {
            let busy = self.slots.iter().any(|s| s.alive && !s.inflight.is_empty());
            if self.unsettled == 0 || (self.stopped && !busy) {
                break;
            }
            if self.sink.interrupted() {
                interrupted = true;
                self.stopped = true;
                break;
            }
            if !self.slots.iter().any(|s| s.alive) {
                no_workers = true;
                break;
            }
            self.receive(tick)?;
            let now = Instant::now();
            if !heartbeat.is_zero() && now - last_beat >= heartbeat {
                last_beat = now;
                for w in 1..=n {
                    if self.slots[w - 1].alive {
                        self.link.send(w, frame(&Header::Alive, Vec::new()))?;
                    }
                }
            }
            if let Some(limit) = self.opts.worker_timeout {
                for w in 1..=n {
                    let silent = now - self.slots[w - 1].heard;
                    if self.slots[w - 1].alive && silent > limit {
                        self.lose(w, silent, None);
                    }
                }
            }
            for w in 1..=n {
                self.fill(w)?;
            }
            if self.queue.is_empty() {
                for w in 1..=n {
                    if self.slots[w - 1].alive {
                        self.backup(w)?;
                    }
                }
            }
        }
        self.finish(interrupted, no_workers)
    }

    /// Sends every worker the setup, then deals the first items round robin, so the
    /// largest items spread over the workers.
    fn start(&mut self) -> Result<(), TransportError> {
        let n = self.link.workers();
        if let Some(t) = self.opts.worker_timeout {
            self.link.set_patience(t);
        }
        for w in 1..=n {
            self.link.send(
                w,
                frame(&Header::Setup(self.opts.setup.clone()), Vec::new()),
            )?;
        }
        for round in 1..=self.opts.prefetch.max(1) {
            for w in 1..=n {
                self.fill_to(w, round)?;
            }
        }
        Ok(())
    }

    /// Waits up to `tick` for one frame and handles it; notes workers whose link broke.
    fn receive(&mut self, tick: Duration) -> Result<(), TransportError> {
        let n = self.link.workers();
        let asked = Instant::now();
        let received = self.link.recv_timeout(tick)?;
        // A message that stopped arriving part-way (its sender died) keeps the
        // transport busy up to the timeout; the others' silence meanwhile is ours,
        // not theirs.
        let deaf = asked
            .elapsed()
            .saturating_sub(tick + Duration::from_millis(100));
        if !deaf.is_zero() {
            for slot in self.slots.iter_mut().filter(|s| s.alive) {
                slot.heard += deaf;
            }
        }
        for (w, why) in self.link.broken() {
            if (1..=n).contains(&w) && self.slots[w - 1].alive {
                let silent = self.slots[w - 1].heard.elapsed();
                self.lose(w, silent, Some(&why));
            }
        }
        let Some((w, f)) = received else {
            return Ok(());
        };
        if w == 0 || w > n {
            return Ok(());
        }
        if !self.slots[w - 1].alive {
            // A lost worker woke up: whatever it says is discarded.
            if let Ok((Header::Results { dones, .. }, _)) = unframe(f) {
                self.stats[w - 1].discarded += dones.len();
            }
            return Ok(());
        }
        self.slots[w - 1].heard = Instant::now();
        match unframe(f)? {
            (Header::Results { dones, busy_ms }, payload) => {
                self.results(w, dones, busy_ms, payload)?;
                self.fill(w)?;
            }
            (Header::Ready(info), _) => self.stats[w - 1].info = Some(info),
            _ => {}
        }
        Ok(())
    }

    /// Reports the items never done, stops the workers, and says how the run ended.
    fn finish(
        &mut self,
        interrupted: bool,
        no_workers: bool,
    ) -> Result<MasterOutcome, TransportError> {
        let n = self.link.workers();
        let why = if interrupted {
            Unrun::Interrupted
        } else if no_workers {
            Unrun::NoWorkers
        } else {
            Unrun::FailFast
        };
        for j in 0..self.jobs.len() {
            if !self.settled[j] {
                self.sink.skipped(&self.jobs[j], why);
                self.settle(j);
            }
        }
        let lost: Vec<usize> = (1..=n).filter(|&w| !self.slots[w - 1].alive).collect();
        self.stop_workers(&lost, interrupted)?;
        // A worker that went silent near the end (its items done by backups) and never
        // answered the stop is lost too.
        let lost: Vec<usize> = (1..=n).filter(|&w| !self.slots[w - 1].alive).collect();
        Ok(MasterOutcome {
            stats: std::mem::take(&mut self.stats),
            lost,
            interrupted,
            no_workers,
        })
    }

    /// Stops waiting for worker `w` at the end: lost if it has been silent past the
    /// timeout, else merely never waited on again.
    fn leave(&mut self, w: usize, interrupted: bool) {
        let silent = self.slots[w - 1].heard.elapsed();
        match self.opts.worker_timeout {
            Some(limit) if !interrupted && silent > limit => self.lose(w, silent, None),
            _ => self.link.forget(w),
        }
    }

    /// Tells the living workers to stop and collects their CPU time, waiting a bounded
    /// time: a worker that does not answer is left alone, never waited on.
    fn stop_workers(&mut self, lost: &[usize], interrupted: bool) -> Result<(), TransportError> {
        let n = self.link.workers();
        let ending = if self.opts.recovery {
            Ending::Exit
        } else if lost.is_empty() {
            Ending::Finalize
        } else {
            Ending::Linger
        };
        let living: Vec<usize> = (1..=n).filter(|w| !lost.contains(w)).collect();
        for &w in &living {
            let stop = Header::Stop { exit: 0, ending };
            self.link.send(w, frame(&stop, Vec::new()))?;
        }
        // Every output is written by now; the byes only bring CPU times for the report,
        // so a slow or stalled worker is not waited for long. After a signal, the
        // workers got it too. A worker still on a copy that lost the race is waited for
        // as briefly as the others: if its copy ends meanwhile, its result is taken (and
        // discarded) here, where otherwise its send would find rank 0 gone and fail the
        // job after the worker's patience (seen under mpirun with OpenCL in CI).
        let mut waiting = living;
        let limit = if interrupted {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(1)
        };
        let deadline = Instant::now() + limit;
        while !waiting.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let Some((w, f)) = self.link.recv_timeout(deadline - now)? else {
                break;
            };
            match unframe(f)? {
                (Header::Alive, _) if (1..=n).contains(&w) => {
                    self.slots[w - 1].heard = Instant::now();
                }
                (
                    Header::Bye {
                        cpu_seconds,
                        peak_rss_mb,
                    },
                    _,
                ) if waiting.contains(&w) => {
                    self.stats[w - 1].cpu_seconds = cpu_seconds;
                    self.stats[w - 1].peak_rss_mb = peak_rss_mb;
                    waiting.retain(|&x| x != w);
                }
                (Header::Results { dones, .. }, _) if (1..=n).contains(&w) => {
                    self.stats[w - 1].discarded += dones.len();
                }
                _ => {}
            }
        }
        for w in waiting {
            self.leave(w, interrupted);
        }
        let _ = self.link.flush(Duration::from_secs(5))?;
        Ok(())
    }
}

/// Runs every job on the workers behind `link`.
pub fn run_master(
    link: &mut dyn MasterLink,
    jobs: &[Job],
    opts: &MasterOptions,
    sink: &mut dyn Sink,
) -> Result<MasterOutcome, TransportError> {
    let n = link.workers();
    let now = Instant::now();
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| jobs[b].cost.total_cmp(&jobs[a].cost).then(a.cmp(&b)));
    let mut master = Master {
        link,
        sink,
        jobs,
        opts,
        start: now,
        slots: vec![
            WorkerSlot {
                alive: true,
                heard: now,
                inflight: VecDeque::new(),
                last_finish: None,
                rate_cost: 0.0,
                rate_secs: 0.0,
            };
            n
        ],
        stats: vec![WorkerStats::default(); n],
        queue: order.into_iter().collect(),
        queue_cost: jobs.iter().map(|j| j.cost).sum(),
        by_id: jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect(),
        settled: vec![false; jobs.len()],
        copies: vec![0; jobs.len()],
        live_copies: vec![0; jobs.len()],
        unsettled: jobs.len(),
        stopped: false,
    };
    master.run()
}

#[cfg(test)]
mod tests;
