//! Scheduler tests: a scripted transport for exact dealing order, lost and late
//! workers, and real threads over the local transport for backups and shutdown.

use super::*;
use crate::error::{ErrorKind, Failure};
use crate::transport::local;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

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
            preview: i % 3 == 0,
        })
        .collect()
}

/// A master link whose workers are simulated: each answers its batches in order, and
/// `recv_timeout` picks the worker named by the script (or the next one with work).
/// Workers in `silent` never answer.
struct ScriptedLink {
    workers: usize,
    queues: Vec<VecDeque<Vec<Task>>>,
    sent: Vec<(usize, String)>,
    script: VecDeque<usize>,
    fail: Vec<usize>,
    stopping: VecDeque<usize>,
    silent: Vec<usize>,
    forgotten: Vec<usize>,
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
            silent: vec![],
            forgotten: vec![],
        }
    }
    fn tasks(&self) -> Vec<(usize, String)> {
        self.sent
            .iter()
            .filter(|(_, s)| s.starts_with("task"))
            .cloned()
            .collect()
    }
}

impl MasterLink for ScriptedLink {
    fn workers(&self) -> usize {
        self.workers
    }
    fn send(&mut self, to: usize, f: Vec<u8>) -> Result<(), TransportError> {
        assert!(
            !self.forgotten.contains(&to),
            "sent to forgotten worker {to}"
        );
        match unframe(f)?.0 {
            Header::Tasks(ts) => {
                let ids: Vec<String> = ts.iter().map(|t| t.id.to_string()).collect();
                self.sent.push((to, format!("task {}", ids.join("+"))));
                self.queues[to - 1].push_back(ts);
            }
            Header::Stop { exit, .. } => {
                self.sent.push((to, format!("stop {exit}")));
                self.stopping.push_back(to);
            }
            Header::Setup(_) => self.sent.push((to, "setup".into())),
            _ => {}
        }
        Ok(())
    }
    fn recv_timeout(&mut self, _: Duration) -> Result<Option<(usize, Vec<u8>)>, TransportError> {
        let silent = self.silent.clone();
        let busy =
            |q: &Vec<VecDeque<Vec<Task>>>, w: usize| !q[w - 1].is_empty() && !silent.contains(&w);
        let w = match self.script.pop_front() {
            Some(w) if busy(&self.queues, w) => w,
            _ => match (1..=self.workers).find(|&w| busy(&self.queues, w)) {
                Some(w) => w,
                None => {
                    if let Some(w) = self.stopping.pop_front() {
                        return Ok(Some((
                            w,
                            frame(
                                &Header::Bye {
                                    cpu_seconds: 0.5,
                                    peak_rss_mb: 64.0,
                                },
                                Vec::new(),
                            ),
                        )));
                    }
                    // Idle workers that are not silent send heartbeats.
                    std::thread::sleep(Duration::from_millis(5));
                    return Ok((1..=self.workers)
                        .find(|w| !silent.contains(w))
                        .map(|w| (w, frame(&Header::Alive, Vec::new()))));
                }
            },
        };
        let ts = self.queues[w - 1].pop_front().expect("queued batch");
        let dones: Vec<Done> = ts
            .iter()
            .map(|t| Done {
                id: t.id,
                error: self.fail.contains(&t.id).then(|| Failure {
                    kind: ErrorKind::Decode,
                    message: "bad".to_string(),
                }),
                busy_ms: 10.0,
                len: 3,
                ..Done::default()
            })
            .collect();
        let payload = b"out".repeat(dones.len());
        let h = Header::Results {
            dones,
            busy_ms: 10.0,
        };
        Ok(Some((w, frame(&h, payload))))
    }
    fn forget(&mut self, to: usize) {
        self.forgotten.push(to);
    }
    fn flush(&mut self, _: Duration) -> Result<bool, TransportError> {
        Ok(true)
    }
}

#[derive(Default)]
struct RecordingSink {
    results: Vec<(usize, usize, bool)>,
    commits: Vec<(usize, Commit)>,
    skipped: Vec<(usize, Unrun)>,
    unreadable: Vec<usize>,
    bad_inputs: Vec<usize>,
    lost: Vec<(usize, Vec<usize>)>,
}

impl Sink for RecordingSink {
    fn read_input(&mut self, job: &Job) -> std::io::Result<Vec<u8>> {
        if self.unreadable.contains(&job.id) {
            return Err(std::io::Error::other("gone"));
        }
        Ok(vec![0; 3])
    }
    fn result(&mut self, job: &Job, commit: Commit, done: Done, output: Option<Vec<u8>>) {
        assert_eq!(output.as_deref(), Some(&b"out"[..]));
        self.results
            .push((job.id, commit.worker, done.error.is_none()));
        self.commits.push((job.id, commit));
    }
    fn input_failed(&mut self, job: &Job, _: std::io::Error) {
        self.bad_inputs.push(job.id);
    }
    fn skipped(&mut self, job: &Job, why: Unrun) {
        self.skipped.push((job.id, why));
    }
    fn worker_lost(&mut self, worker: usize, _: Duration, _: Option<&str>, redealt: &[&Job]) {
        self.lost
            .push((worker, redealt.iter().map(|j| j.id).collect()));
    }
}

fn opts(prefetch: usize, fail_fast: bool) -> MasterOptions {
    MasterOptions::simple(prefetch, fail_fast, Setup::default())
}

#[test]
fn deals_largest_first_with_prefetch_round_robin_then_refills() {
    // Similar costs, so prefetch applies everywhere.
    let j = jobs(&[1.0, 1.5, 1.2, 1.4, 1.1, 1.3]);
    let mut link = ScriptedLink::new(2, &[2, 2, 1], &[]);
    let mut sink = RecordingSink::default();
    let out = run_master(&mut link, &j, &opts(2, false), &mut sink).unwrap();
    let tasks = link.tasks();
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
    // Worker 2 answers first, so it is refilled first; then again.
    assert_eq!(tasks[4..], [(2, "task 4".into()), (2, "task 0".into())]);
    assert_eq!(sink.results.len(), 6);
    assert_eq!(out.stats.iter().map(|s| s.items).sum::<usize>(), 6);
    assert_eq!(out.stats[0].cpu_seconds, 0.5);
    assert_eq!(out.stats[0].peak_rss_mb, 64.0);
    assert!(out.lost.is_empty());
    assert_eq!(link.sent.iter().filter(|(_, s)| s == "stop 0").count(), 2);
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
    let to_w1: Vec<String> = link
        .tasks()
        .into_iter()
        .filter(|(w, _)| *w == 1)
        .map(|(_, s)| s)
        .collect();
    assert_eq!(to_w1, ["task 0"], "worker 1 holds only the huge item");
    assert_eq!(sink.results.len(), 6);
}

#[test]
fn small_items_travel_in_batches_worth_the_target_cost() {
    let j = jobs(&[1.0; 40]);
    let mut link = ScriptedLink::new(2, &[], &[]);
    let mut sink = RecordingSink::default();
    let o = MasterOptions {
        batch_cost: 4.0,
        batch_items: 3,
        ..opts(2, false)
    };
    run_master(&mut link, &j, &o, &mut sink).unwrap();
    let tasks = link.tasks();
    // Three items a batch (the item cap), until few are left: then smaller batches
    // keep at least four per worker.
    assert_eq!(tasks[0].1, "task 0+1+2");
    assert!(tasks.len() < 40, "{tasks:?}");
    assert!(tasks.last().unwrap().1.split('+').count() < 3);
    let mut ids: Vec<usize> = sink.results.iter().map(|r| r.0).collect();
    ids.sort();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
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
    let skipped: Vec<usize> = sink.skipped.iter().map(|s| s.0).collect();
    assert_eq!(skipped, vec![2, 3, 4]);
    assert!(sink.skipped.iter().all(|s| s.1 == Unrun::FailFast));
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
fn a_silent_worker_is_lost_and_its_items_go_to_the_others() {
    let j = jobs(&[5.0, 4.0, 3.0, 2.0, 1.0]);
    let mut link = ScriptedLink::new(2, &[], &[]);
    link.silent = vec![1];
    let mut sink = RecordingSink::default();
    let o = MasterOptions {
        worker_timeout: Some(Duration::from_millis(50)),
        ..opts(2, false)
    };
    let out = run_master(&mut link, &j, &o, &mut sink).unwrap();
    assert_eq!(out.lost, vec![1]);
    assert!(matches!(out.stats[0].state, WorkerState::Lost { .. }));
    // Worker 1 held item 0 (too large for anything to be queued behind it); it was
    // re-dealt and done by worker 2.
    assert_eq!(sink.lost, vec![(1, vec![0])]);
    let mut done: Vec<(usize, usize)> = sink.results.iter().map(|r| (r.0, r.1)).collect();
    done.sort();
    assert_eq!(done, (0..5).map(|i| (i, 2)).collect::<Vec<_>>());
    // Never a stop (or anything) sent to the lost worker.
    assert!(!link
        .sent
        .iter()
        .any(|(w, s)| *w == 1 && s.starts_with("stop")));
    assert_eq!(link.forgotten, vec![1]);
}

#[test]
fn every_worker_lost_skips_what_is_left() {
    let j = jobs(&[2.0, 1.0]);
    let mut link = ScriptedLink::new(1, &[], &[]);
    link.silent = vec![1];
    let mut sink = RecordingSink::default();
    let o = MasterOptions {
        worker_timeout: Some(Duration::from_millis(20)),
        ..opts(1, false)
    };
    let out = run_master(&mut link, &j, &o, &mut sink).unwrap();
    assert!(out.no_workers);
    assert_eq!(sink.skipped.len(), 2);
    assert!(sink.skipped.iter().all(|s| s.1 == Unrun::NoWorkers));
}

#[test]
fn frames_round_trip_with_payload() {
    let f = frame(
        &Header::Stop {
            exit: 2,
            ending: Ending::Exit,
        },
        b"abc".to_vec(),
    );
    let (h, p) = unframe(f).unwrap();
    assert!(matches!(h, Header::Stop { exit: 2, .. }));
    assert_eq!(p, b"abc");
    assert!(unframe(vec![1, 2]).is_err());
    // A header length longer than the frame, and one that is not JSON.
    assert!(unframe(vec![b'{', 200, 0, 0, 0]).is_err());
    assert!(unframe(vec![b'x', 1, 0, 0, 0]).is_err());
    assert_eq!(
        split_payload(b"abcdef".to_vec(), [1u64, 0, 5].into_iter()),
        vec![b"a".to_vec(), vec![], b"bcdef".to_vec()]
    );
}

struct Upper;
impl Executor for Upper {
    fn execute(&self, task: &Task, input: Option<Vec<u8>>) -> (Done, Option<Vec<u8>>) {
        let bytes = input.unwrap_or_default();
        let error = (task.id == 2).then(|| Failure {
            kind: ErrorKind::Operation,
            message: "no".to_string(),
        });
        // Previews of a task that asks, of different lengths, one of them empty.
        let previews = if task.preview {
            vec![format!("before{}", task.id).into_bytes(), Vec::new()]
        } else {
            Vec::new()
        };
        (
            Done {
                error,
                previews,
                ..Done::default()
            },
            Some(bytes.to_ascii_uppercase()),
        )
    }
}

#[derive(Default)]
struct Echo(Vec<u8>, Vec<(usize, Commit)>, Vec<(usize, Vec<Vec<u8>>)>);
impl Sink for Echo {
    fn read_input(&mut self, _: &Job) -> std::io::Result<Vec<u8>> {
        Ok(b"abc".to_vec())
    }
    fn result(&mut self, job: &Job, commit: Commit, done: Done, output: Option<Vec<u8>>) {
        assert_eq!(done.id, job.id);
        self.1.push((job.id, commit));
        if !done.previews.is_empty() {
            self.2.push((job.id, done.previews.clone()));
        }
        if done.error.is_none() {
            self.0.extend(output.unwrap());
        }
    }
    fn input_failed(&mut self, _: &Job, _: std::io::Error) {}
    fn skipped(&mut self, _: &Job, _: Unrun) {}
}

fn spawn_workers<E: Executor + Send + Sync + 'static>(
    workers: Vec<local::LocalWorker>,
    make: impl Fn(usize) -> E + Send + Sync + Clone + 'static,
) -> Vec<std::thread::JoinHandle<WorkerEnd>> {
    workers
        .into_iter()
        .enumerate()
        .map(|(i, mut w)| {
            let make = make.clone();
            std::thread::spawn(move || run_worker(&mut w, |_| make(i + 1), || (0.0, 0.0)).unwrap())
        })
        .collect()
}

#[test]
fn master_and_workers_over_real_threads_finish_and_shut_down() {
    for heartbeat_ms in [0, 5] {
        let (mut master, workers) = local::links(3);
        let handles = spawn_workers(workers, |_| Upper);
        let j = jobs(&[1.0; 10]);
        let mut sink = Echo::default();
        let mut o = opts(2, false);
        o.setup.heartbeat_ms = heartbeat_ms;
        o.batch_cost = 2.0;
        o.batch_items = 4;
        let out = run_master(&mut master, &j, &o, &mut sink).unwrap();
        for h in handles {
            assert_eq!(
                h.join().unwrap(),
                WorkerEnd::Stopped {
                    exit: 0,
                    ending: Ending::Finalize
                }
            );
        }
        assert_eq!(sink.0, b"ABC".repeat(9));
        // The previews asked for came back with their items, the outputs unchanged.
        sink.2.sort();
        let want: Vec<(usize, Vec<Vec<u8>>)> = [0, 3, 6, 9]
            .into_iter()
            .map(|i| (i, vec![format!("before{i}").into_bytes(), Vec::new()]))
            .collect();
        assert_eq!(sink.2, want);
        assert_eq!(out.stats.iter().map(|s| s.items).sum::<usize>(), 10);
        assert_eq!(out.stats.iter().map(|s| s.bytes_to).sum::<u64>(), 30);
    }
}

/// Worker `slow` takes 400 ms per item, the others 5 ms.
#[derive(Clone)]
struct Sleepy {
    me: usize,
    slow: usize,
    runs: Arc<AtomicUsize>,
}
impl Executor for Sleepy {
    fn execute(&self, _: &Task, input: Option<Vec<u8>>) -> (Done, Option<Vec<u8>>) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let ms = if self.me == self.slow { 400 } else { 5 };
        std::thread::sleep(Duration::from_millis(ms));
        (Done::default(), Some(input.unwrap_or_default()))
    }
}

#[test]
fn an_idle_worker_takes_a_backup_of_the_slowest_batch_and_the_first_result_wins() {
    let (mut master, workers) = local::links(2);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let handles = spawn_workers(workers, move |me| Sleepy {
        me,
        slow: 1,
        runs: r.clone(),
    });
    let j = jobs(&[1.0; 6]);
    let mut sink = Echo::default();
    let mut o = opts(1, false);
    o.setup.heartbeat_ms = 5;
    o.backups = true;
    let t = Instant::now();
    let out = run_master(&mut master, &j, &o, &mut sink).unwrap();
    // Without a backup, worker 1's item would end the run after 400 ms.
    assert!(
        t.elapsed() < Duration::from_millis(390),
        "{:?}",
        t.elapsed()
    );
    // Every item committed exactly once; item 0 (dealt to the slow worker) by its backup.
    let mut ids: Vec<usize> = sink.1.iter().map(|c| c.0).collect();
    ids.sort();
    assert_eq!(ids, (0..6).collect::<Vec<_>>());
    let c0 = sink.1.iter().find(|c| c.0 == 0).unwrap().1;
    assert_eq!((c0.worker, c0.copies, c0.backup_won), (2, 2, true));
    assert_eq!(out.stats[1].backups, 1);
    assert!(runs.load(Ordering::Relaxed) >= 7);
    drop(master);
    for h in handles {
        let _ = h.join();
    }
}

#[test]
fn an_early_stop_ends_workers_with_its_exit_code() {
    let (mut master, workers) = local::links(2);
    let handles = spawn_workers(workers, |_| Upper);
    stop_all(&mut master, 2, Ending::Finalize).unwrap();
    for h in handles {
        assert_eq!(
            h.join().unwrap(),
            WorkerEnd::Stopped {
                exit: 2,
                ending: Ending::Finalize
            }
        );
    }
}

/// A worker that takes longer to get ready than --worker-timeout (a device compiling
/// its kernels with a cold cache) keeps sending heartbeats meanwhile: it is not lost.
#[test]
fn a_worker_slow_to_get_ready_is_not_lost() {
    let (mut master, workers) = local::links(2);
    let handles = spawn_workers(workers, |me| {
        if me == 1 {
            std::thread::sleep(Duration::from_millis(300));
        }
        Upper
    });
    let j = jobs(&[1.0; 4]);
    let mut sink = Echo::default();
    let mut o = MasterOptions {
        worker_timeout: Some(Duration::from_millis(100)),
        ..opts(1, false)
    };
    o.setup.heartbeat_ms = 10;
    let out = run_master(&mut master, &j, &o, &mut sink).unwrap();
    assert!(out.lost.is_empty(), "lost: {:?}", out.lost);
    assert!(matches!(out.stats[0].state, WorkerState::Ok));
    assert_eq!(sink.1.len(), 4);
    for h in handles {
        assert!(matches!(h.join().unwrap(), WorkerEnd::Stopped { .. }));
    }
}
