//! The scheduler: rank 0's master loop and the workers' loop, over any transport.
//!
//! The master deals work items largest first. Each worker holds up to `prefetch` items
//! in flight so it never waits for the next, and gets one new item per result, so
//! fast workers take more (dynamic balancing). Results are handed to a [`Sink`] as
//! they arrive; the master holds only in-flight inputs in memory. The scheduler knows
//! item ids, costs, paths and bytes, never pixels: workers run items through an
//! [`Executor`], the sink writes files.
//!
//! A frame on the wire is a little-endian u32 header length, a JSON header, and the
//! payload (input or output bytes).

use crate::transport::{MasterLink, TransportError, WorkerLink};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

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
}

/// A worker's account of one task.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Done {
    /// Item id.
    pub id: usize,
    /// `(kind, message)` when the item failed.
    pub error: Option<(String, String)>,
    /// Input width, if known.
    pub width: Option<u32>,
    /// Input height, if known.
    pub height: Option<u32>,
    /// Input size.
    pub bytes_in: u64,
    /// Output size.
    pub bytes_out: u64,
    /// Decoding time.
    pub decode_ms: f64,
    /// Processing time.
    pub process_ms: f64,
    /// Encoding time.
    pub encode_ms: f64,
    /// Wall time the worker spent on the task.
    pub busy_ms: f64,
    /// What ran the ops.
    pub backend: String,
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
    /// `--backend`: cpu, opencl or auto.
    pub backend: String,
    /// `--device`, if given (else each worker takes its local rank modulo the devices).
    pub device: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize)]
enum Header {
    Setup(Setup),
    Task(Task),
    Stop { exit: i32 },
    Done(Done),
    Bye { cpu_seconds: f64 },
}

fn frame(h: &Header, payload: &[u8]) -> Vec<u8> {
    let head = serde_json::to_vec(h).unwrap_or_default();
    let mut f = Vec::with_capacity(4 + head.len() + payload.len());
    f.extend_from_slice(&(head.len() as u32).to_le_bytes());
    f.extend_from_slice(&head);
    f.extend_from_slice(payload);
    f
}

fn unframe(mut f: Vec<u8>) -> Result<(Header, Vec<u8>), TransportError> {
    let bad = || TransportError("malformed frame".into());
    let len =
        u32::from_le_bytes(f.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
    if f.len() < 4 + len {
        return Err(bad());
    }
    let payload = f.split_off(4 + len);
    let h = serde_json::from_slice(&f[4..])
        .map_err(|e| TransportError(format!("malformed frame: {e}")))?;
    Ok((h, payload))
}

/// The master's side of the work: reading inputs and taking results.
pub trait Sink {
    /// Reads an input to send to a worker (not called with a shared filesystem).
    fn read_input(&mut self, job: &Job) -> std::io::Result<Vec<u8>>;
    /// Takes a result; `output` holds the bytes to write when the worker did not write them.
    fn result(&mut self, job: &Job, worker: usize, done: Done, output: Option<Vec<u8>>);
    /// An input the master could not read: the item fails without reaching a worker.
    fn input_failed(&mut self, job: &Job, error: std::io::Error);
    /// An item that will not run (`--fail-fast` stopped the batch).
    fn skipped(&mut self, job: &Job);
}

/// What workers do with a task: everything that touches pixels lives behind this.
pub trait Executor {
    /// Runs `task`; `input` holds the bytes when the master sent them. Returns the
    /// account and, unless the task says the worker writes it, the output bytes.
    fn execute(&self, task: &Task, input: Option<Vec<u8>>) -> (Done, Option<Vec<u8>>);
}

/// Master settings.
#[derive(Clone, Debug)]
pub struct MasterOptions {
    /// Items in flight per worker (at least 1).
    pub prefetch: usize,
    /// Stop dealing after the first failure.
    pub fail_fast: bool,
    /// Sent to every worker first.
    pub setup: Setup,
}

/// Per-worker counters kept by the master.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkerStats {
    /// Items it finished.
    pub items: usize,
    /// Seconds it spent on items.
    pub busy_seconds: f64,
    /// Bytes the master sent it.
    pub bytes_to: u64,
    /// Bytes it sent the master.
    pub bytes_from: u64,
    /// CPU seconds it reported at the end.
    pub cpu_seconds: f64,
}

/// Tells every worker to stop with `exit` before any work (an invalid manifest, a dry run).
pub fn stop_all(link: &mut dyn MasterLink, exit: i32) -> Result<(), TransportError> {
    for w in 1..=link.workers() {
        link.send(w, frame(&Header::Stop { exit }, &[]))?;
    }
    link.flush()
}

/// Runs every job on the workers behind `link`; returns per-worker counters (index 0 is worker 1).
pub fn run_master(
    link: &mut dyn MasterLink,
    jobs: &[Job],
    opts: &MasterOptions,
    sink: &mut dyn Sink,
) -> Result<Vec<WorkerStats>, TransportError> {
    let n = link.workers();
    let mut stats = vec![WorkerStats::default(); n];
    for w in 1..=n {
        link.send(w, frame(&Header::Setup(opts.setup.clone()), &[]))?;
    }
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| jobs[b].cost.total_cmp(&jobs[a].cost).then(a.cmp(&b)));
    let by_id: std::collections::HashMap<usize, usize> =
        jobs.iter().enumerate().map(|(i, j)| (j.id, i)).collect();
    let mut next = 0;
    let mut outstanding = 0;
    let mut stopped = false;
    let shared = opts.setup.shared_fs;

    // Cost of the jobs from position i of `order` on, for the mean of what is left.
    let mut suffix = vec![0.0; order.len() + 1];
    for i in (0..order.len()).rev() {
        suffix[i] = suffix[i + 1] + jobs[order[i]].cost;
    }
    // Per worker: items in flight and their cost.
    let mut load = vec![(0usize, 0.0f64); n];

    // Deals the next job to worker `w`; false when there is nothing (more) to deal to it.
    // Prefetch only hides a round trip, so a worker that is busy with much more than an
    // average job gets nothing queued behind it: an idle worker should take that job.
    let deal = |w: usize,
                link: &mut dyn MasterLink,
                sink: &mut dyn Sink,
                stats: &mut [WorkerStats],
                load: &mut [(usize, f64)],
                next: &mut usize,
                stopped: bool|
     -> Result<bool, TransportError> {
        while !stopped && *next < order.len() {
            let (count, busy) = load[w - 1];
            let mean = suffix[*next] / (order.len() - *next) as f64;
            if count > 0 && busy > 2.0 * mean {
                return Ok(false);
            }
            let job = &jobs[order[*next]];
            *next += 1;
            let task = Task {
                id: job.id,
                spec: job.spec.to_string(),
                input: job.input.clone(),
                output: job.output.clone(),
                write_output: shared,
            };
            let payload = if shared {
                Vec::new()
            } else {
                match sink.read_input(job) {
                    Ok(b) => b,
                    Err(e) => {
                        sink.input_failed(job, e);
                        continue;
                    }
                }
            };
            stats[w - 1].bytes_to += payload.len() as u64;
            link.send(w, frame(&Header::Task(task), &payload))?;
            load[w - 1] = (count + 1, busy + job.cost);
            return Ok(true);
        }
        Ok(false)
    };

    let prefetch = opts.prefetch.max(1);
    for _ in 0..prefetch {
        for w in 1..=n {
            if deal(w, link, sink, &mut stats, &mut load, &mut next, stopped)? {
                outstanding += 1;
            }
        }
    }
    while outstanding > 0 {
        let (w, f) = link.recv()?;
        let (h, payload) = unframe(f)?;
        let Header::Done(done) = h else { continue };
        outstanding -= 1;
        let Some(&j) = by_id.get(&done.id) else {
            return Err(TransportError(format!(
                "worker {w} reported unknown item {}",
                done.id
            )));
        };
        let st = &mut stats[w - 1];
        st.items += 1;
        st.busy_seconds += done.busy_ms / 1e3;
        st.bytes_from += payload.len() as u64;
        let failed = done.error.is_some();
        sink.result(&jobs[j], w, done, (!shared).then_some(payload));
        if failed && opts.fail_fast {
            stopped = true;
        }
        let (count, busy) = load[w - 1];
        load[w - 1] = (count.saturating_sub(1), (busy - jobs[j].cost).max(0.0));
        while load[w - 1].0 < prefetch
            && deal(w, link, sink, &mut stats, &mut load, &mut next, stopped)?
        {
            outstanding += 1;
        }
    }
    for &j in &order[next..] {
        sink.skipped(&jobs[j]);
    }
    for w in 1..=n {
        link.send(w, frame(&Header::Stop { exit: 0 }, &[]))?;
    }
    let mut byes = 0;
    while byes < n {
        let (w, f) = link.recv()?;
        if let (Header::Bye { cpu_seconds }, _) = unframe(f)? {
            stats[w - 1].cpu_seconds = cpu_seconds;
            byes += 1;
        }
    }
    link.flush()?;
    Ok(stats)
}

/// How a worker's run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkerEnd {
    /// Stopped by the master with this exit code.
    Stopped(i32),
}

/// Waits for the master's setup (or an early stop), then runs tasks with the executor
/// `make` builds from it until told to stop. `cpu_seconds` is reported at the end.
pub fn run_worker<E: Executor>(
    link: &mut dyn WorkerLink,
    make: impl FnOnce(&Setup) -> E,
    cpu_seconds: impl Fn() -> f64,
) -> Result<WorkerEnd, TransportError> {
    let setup = loop {
        match unframe(link.recv()?)?.0 {
            Header::Setup(s) => break s,
            Header::Stop { exit } => return Ok(WorkerEnd::Stopped(exit)),
            _ => continue,
        }
    };
    let exec = make(&setup);
    loop {
        let (h, payload) = unframe(link.recv()?)?;
        match h {
            Header::Task(task) => {
                let t = Instant::now();
                let input = (!setup.shared_fs).then_some(payload);
                let (mut done, out) = exec.execute(&task, input);
                done.id = task.id;
                done.busy_ms = t.elapsed().as_secs_f64() * 1e3;
                link.send(frame(&Header::Done(done), out.as_deref().unwrap_or(&[])))?;
            }
            Header::Stop { exit } => {
                link.send(frame(
                    &Header::Bye {
                        cpu_seconds: cpu_seconds(),
                    },
                    &[],
                ))?;
                return Ok(WorkerEnd::Stopped(exit));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn jobs(costs: &[f64]) -> Vec<Job> {
        costs
            .iter()
            .enumerate()
            .map(|(i, &c)| Job {
                id: i,
                cost: c,
                spec: Arc::from("spec"),
                input: PathBuf::from(format!("in{i}")),
                output: PathBuf::from(format!("out{i}")),
            })
            .collect()
    }

    /// A master link whose workers are simulated: each answers its tasks in order,
    /// and `recv` picks the worker named by the script (or the next one with work).
    struct ScriptedLink {
        workers: usize,
        queues: Vec<VecDeque<Task>>,
        sent: Vec<(usize, String)>,
        script: VecDeque<usize>,
        fail: Vec<usize>,
        stopping: VecDeque<usize>,
    }

    impl ScriptedLink {
        fn new(workers: usize, script: &[usize], fail: &[usize]) -> Self {
            ScriptedLink {
                workers,
                queues: vec![VecDeque::new(); workers],
                sent: vec![],
                script: script.iter().copied().collect(),
                fail: fail.to_vec(),
                stopping: VecDeque::new(),
            }
        }
    }

    impl MasterLink for ScriptedLink {
        fn workers(&self) -> usize {
            self.workers
        }
        fn send(&mut self, to: usize, f: Vec<u8>) -> Result<(), TransportError> {
            match unframe(f)?.0 {
                Header::Task(t) => {
                    self.sent.push((to, format!("task {}", t.id)));
                    self.queues[to - 1].push_back(t);
                }
                Header::Stop { exit } => {
                    self.sent.push((to, format!("stop {exit}")));
                    self.stopping.push_back(to);
                }
                Header::Setup(_) => self.sent.push((to, "setup".into())),
                _ => {}
            }
            Ok(())
        }
        fn recv(&mut self) -> Result<(usize, Vec<u8>), TransportError> {
            let busy = |q: &Vec<VecDeque<Task>>, w: usize| !q[w - 1].is_empty();
            let w = match self.script.pop_front() {
                Some(w) if busy(&self.queues, w) => w,
                _ => match (1..=self.workers).find(|&w| busy(&self.queues, w)) {
                    Some(w) => w,
                    None => {
                        let w = self
                            .stopping
                            .pop_front()
                            .ok_or_else(|| TransportError("nothing to receive".into()))?;
                        return Ok((w, frame(&Header::Bye { cpu_seconds: 0.5 }, &[])));
                    }
                },
            };
            let t = self.queues[w - 1].pop_front().expect("queued task");
            let error = self
                .fail
                .contains(&t.id)
                .then(|| ("decode".to_string(), "bad".to_string()));
            let done = Done {
                id: t.id,
                error,
                busy_ms: 10.0,
                ..Done::default()
            };
            Ok((w, frame(&Header::Done(done), b"out")))
        }
        fn flush(&mut self) -> Result<(), TransportError> {
            Ok(())
        }
    }

    #[derive(Default)]
    struct RecordingSink {
        results: Vec<(usize, usize, bool)>,
        skipped: Vec<usize>,
        unreadable: Vec<usize>,
        bad_inputs: Vec<usize>,
    }

    impl Sink for RecordingSink {
        fn read_input(&mut self, job: &Job) -> std::io::Result<Vec<u8>> {
            if self.unreadable.contains(&job.id) {
                return Err(std::io::Error::other("gone"));
            }
            Ok(vec![0; 3])
        }
        fn result(&mut self, job: &Job, worker: usize, done: Done, output: Option<Vec<u8>>) {
            assert_eq!(output.as_deref(), Some(&b"out"[..]));
            self.results.push((job.id, worker, done.error.is_none()));
        }
        fn input_failed(&mut self, job: &Job, _: std::io::Error) {
            self.bad_inputs.push(job.id);
        }
        fn skipped(&mut self, job: &Job) {
            self.skipped.push(job.id);
        }
    }

    fn opts(prefetch: usize, fail_fast: bool) -> MasterOptions {
        MasterOptions {
            prefetch,
            fail_fast,
            setup: Setup::default(),
        }
    }

    #[test]
    fn deals_largest_first_with_prefetch_round_robin_then_refills() {
        // Similar costs, so prefetch applies everywhere.
        let j = jobs(&[1.0, 1.5, 1.2, 1.4, 1.1, 1.3]);
        let mut link = ScriptedLink::new(2, &[2, 2, 1], &[]);
        let mut sink = RecordingSink::default();
        let stats = run_master(&mut link, &j, &opts(2, false), &mut sink).unwrap();
        let tasks: Vec<(usize, String)> = link
            .sent
            .iter()
            .filter(|(_, s)| s.starts_with("task"))
            .cloned()
            .collect();
        // Costs order the ids 1, 3, 5, 2, 4, 0. Two rounds of prefetch: w1, w2, w1, w2.
        assert_eq!(
            tasks[..4],
            [
                (1, "task 1".into()),
                (2, "task 3".into()),
                (1, "task 5".into()),
                (2, "task 2".into())
            ]
        );
        // Worker 2 answers first, so it is refilled first; then again; then worker 1.
        assert_eq!(tasks[4..], [(2, "task 4".into()), (2, "task 0".into())]);
        assert_eq!(sink.results.len(), 6);
        assert_eq!(stats.iter().map(|s| s.items).sum::<usize>(), 6);
        assert_eq!(stats[0].cpu_seconds, 0.5);
        assert!(link.sent.iter().filter(|(_, s)| s == "stop 0").count() == 2);
        assert_eq!(link.sent.iter().filter(|(_, s)| s == "setup").count(), 2);
    }

    #[test]
    fn nothing_is_queued_behind_an_item_much_larger_than_the_rest() {
        // One huge item and small ones: the worker with the huge one gets no prefetch,
        // so every small item goes to the other worker as it asks.
        let j = jobs(&[100.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let mut link = ScriptedLink::new(2, &[2, 2, 2, 2, 2], &[]);
        let mut sink = RecordingSink::default();
        run_master(&mut link, &j, &opts(2, false), &mut sink).unwrap();
        let to_w1: Vec<&String> = link
            .sent
            .iter()
            .filter(|(w, s)| *w == 1 && s.starts_with("task"))
            .map(|(_, s)| s)
            .collect();
        assert_eq!(to_w1, ["task 0"], "worker 1 holds only the huge item");
        assert_eq!(sink.results.len(), 6);
    }

    #[test]
    fn a_failed_item_is_reported_and_the_rest_completes() {
        let j = jobs(&[3.0, 2.0, 1.0]);
        let mut link = ScriptedLink::new(1, &[], &[1]);
        let mut sink = RecordingSink::default();
        run_master(&mut link, &j, &opts(1, false), &mut sink).unwrap();
        assert_eq!(
            sink.results,
            vec![(0, 1, true), (1, 1, false), (2, 1, true)]
        );
        assert!(sink.skipped.is_empty());
    }

    #[test]
    fn fail_fast_stops_dealing_and_skips_the_rest() {
        let j = jobs(&[5.0, 4.0, 3.0, 2.0, 1.0]);
        let mut link = ScriptedLink::new(1, &[], &[0]);
        let mut sink = RecordingSink::default();
        run_master(&mut link, &j, &opts(2, true), &mut sink).unwrap();
        // Items 0 and 1 were in flight; 0 failed, 1 completed, 2..4 never dealt.
        assert_eq!(sink.results, vec![(0, 1, false), (1, 1, true)]);
        assert_eq!(sink.skipped, vec![2, 3, 4]);
    }

    #[test]
    fn an_unreadable_input_fails_at_the_master_without_stalling() {
        let j = jobs(&[2.0, 1.0]);
        let mut link = ScriptedLink::new(1, &[], &[]);
        let mut sink = RecordingSink {
            unreadable: vec![0],
            ..Default::default()
        };
        run_master(&mut link, &j, &opts(1, false), &mut sink).unwrap();
        assert_eq!(sink.bad_inputs, vec![0]);
        assert_eq!(sink.results, vec![(1, 1, true)]);
    }

    #[test]
    fn frames_round_trip_with_payload() {
        let f = frame(&Header::Stop { exit: 2 }, b"abc");
        let (h, p) = unframe(f).unwrap();
        assert!(matches!(h, Header::Stop { exit: 2 }));
        assert_eq!(p, b"abc");
        assert!(unframe(vec![1, 2]).is_err());
    }

    struct Upper;
    impl Executor for Upper {
        fn execute(&self, task: &Task, input: Option<Vec<u8>>) -> (Done, Option<Vec<u8>>) {
            let bytes = input.unwrap_or_default();
            let error = (task.id == 2).then(|| ("operation".to_string(), "no".to_string()));
            (
                Done {
                    error,
                    ..Done::default()
                },
                Some(bytes.to_ascii_uppercase()),
            )
        }
    }

    struct Echo(Vec<u8>);
    impl Sink for Echo {
        fn read_input(&mut self, _: &Job) -> std::io::Result<Vec<u8>> {
            Ok(b"abc".to_vec())
        }
        fn result(&mut self, job: &Job, _: usize, done: Done, output: Option<Vec<u8>>) {
            assert_eq!(done.id, job.id);
            if done.error.is_none() {
                self.0.extend(output.unwrap());
            }
        }
        fn input_failed(&mut self, _: &Job, _: std::io::Error) {}
        fn skipped(&mut self, _: &Job) {}
    }

    #[test]
    fn master_and_workers_over_real_threads_finish_and_shut_down() {
        let (mut master, workers) = crate::transport::local::links(3);
        let handles: Vec<_> = workers
            .into_iter()
            .map(|mut w| std::thread::spawn(move || run_worker(&mut w, |_| Upper, || 0.0).unwrap()))
            .collect();
        let j = jobs(&[1.0; 10]);
        let mut sink = Echo(vec![]);
        let stats = run_master(&mut master, &j, &opts(2, false), &mut sink).unwrap();
        for h in handles {
            assert_eq!(h.join().unwrap(), WorkerEnd::Stopped(0));
        }
        assert_eq!(sink.0, b"ABC".repeat(9));
        assert_eq!(stats.iter().map(|s| s.items).sum::<usize>(), 10);
        assert_eq!(stats.iter().map(|s| s.bytes_to).sum::<u64>(), 30);
    }

    #[test]
    fn an_early_stop_ends_workers_with_its_exit_code() {
        let (mut master, workers) = crate::transport::local::links(2);
        let handles: Vec<_> = workers
            .into_iter()
            .map(|mut w| std::thread::spawn(move || run_worker(&mut w, |_| Upper, || 0.0).unwrap()))
            .collect();
        stop_all(&mut master, 2).unwrap();
        for h in handles {
            assert_eq!(h.join().unwrap(), WorkerEnd::Stopped(2));
        }
    }
}
