//! Runs a plan: single-process over in-process workers, or as rank 0 / a worker under MPI.
//!
//! This is where files meet the scheduler. Rank 0 reads headers to weigh items
//! (pixels times the pipeline's cost), hands the scheduler its jobs, and through the
//! [`Sink`] reads inputs, writes each output atomically as it arrives, records it and
//! updates progress, so a late failure or a kill loses nothing already done. Workers
//! run each task through [`PipelineExecutor`] on a rayon pool of their own. Without
//! MPI the workers are `threads` threads sharing one pool of `threads` threads, so the
//! machine is never oversubscribed.

use crate::codec;
use crate::error::{ItemError, RunFailure};
use crate::item::ItemStats;
use crate::journal::{self, Entry, InputId, Journal, Redo};
use crate::manifest::{Plan, WorkItem};
use crate::memory::Layout;
use crate::ops::opencl::{self, Gpu};
use crate::pipeline::{self, AutoDevice, Backend, BackendChoice, ItemSpec};
use crate::progress::{Mode, Progress};
use crate::report::{ItemRecord, RankRecord, Report, Status, Thumbnails};
use crate::sched::{self, Commit, Done, Executor, Job, MasterOptions, Setup, Sink, Task, Unrun};
#[cfg(feature = "mpi")]
use crate::transport::WorkerLink;
use crate::transport::{local, MasterLink};
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads (default: all cores); under MPI, threads per worker rank if given.
    pub threads: usize,
    /// Whether `threads` was given explicitly.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub threads_given: bool,
    /// Stop starting items after the first failure.
    pub fail_fast: bool,
    /// Leave items whose output already exists (status "skipped").
    pub skip_existing: bool,
    /// Progress display.
    pub progress: Mode,
    /// Items in flight per worker.
    pub prefetch: usize,
    /// Under MPI: workers read inputs and write outputs themselves.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))]
    pub shared_fs: bool,
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--device`, if given.
    pub device: Option<usize>,
    /// `--resume`: skip items the journal shows done with the same input and settings.
    pub resume: bool,
    /// `--worker-timeout`: a worker silent this long is lost (`None`: never). MPI only.
    pub worker_timeout: Option<Duration>,
    /// Deal backup copies of the slowest items to idle workers at the end.
    pub backups: bool,
    /// Started by `imgproc launch`: the job survives lost ranks.
    pub recovery: bool,
    /// Thumbnails for an HTML report's gallery, if one is asked for.
    pub gallery: Option<Gallery>,
    /// `--secret`: the key file that seals messages between ranks.
    pub secret: Option<std::path::PathBuf>,
}

/// The gallery of an HTML report: thumbnails of some items before and after, made by
/// the workers while the pixels are in memory and written by rank 0 into `dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gallery {
    /// The folder for the thumbnails (beside the report).
    pub dir: std::path::PathBuf,
    /// At most this many items get thumbnails, spread evenly over the plan; the report
    /// counts the others.
    pub max_items: usize,
}

impl Gallery {
    /// Items in a gallery at most: enough to browse, few enough that the folder stays
    /// tens of MB and the page stays quick (about 5 KB per thumbnail, two per item).
    pub const MAX_ITEMS: usize = 2000;

    /// Whether the `i`-th of `n` items to run gets thumbnails: all when `n` is at
    /// most `max_items`, else `max_items` of them spread evenly.
    pub fn picks(&self, i: usize, n: usize) -> bool {
        let m = self.max_items;
        n <= m || (i + 1) * m / n > i * m / n
    }

    /// The thumbnail file of item `id`; `after` for the result, else the input.
    pub fn file(&self, id: usize, after: bool) -> std::path::PathBuf {
        let which = if after { "after" } else { "before" };
        self.dir.join(format!("{id}-{which}.jpg"))
    }

    /// Makes the folder and removes the thumbnails an earlier run left in it (only
    /// names as [`Gallery::file`] makes them, links included: a link planted there is
    /// never written through). A folder that is itself a link is refused.
    fn prepare(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        if std::fs::symlink_metadata(&self.dir)?
            .file_type()
            .is_symlink()
        {
            return Err(std::io::Error::other(
                "it is a symbolic link; thumbnails are never written through links",
            ));
        }
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let ours = name
                .strip_suffix("-before.jpg")
                .or_else(|| name.strip_suffix("-after.jpg"))
                .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
            if ours && e.file_type().is_ok_and(|t| !t.is_dir()) {
                std::fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }

    /// Writes a thumbnail as a new file (never over one, nor through a link).
    fn write(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?
            .write_all(bytes)
    }
}

/// Heartbeat period of MPI workers.
#[cfg(feature = "mpi")]
const HEARTBEAT: Duration = Duration::from_millis(500);

/// A batch of small items costs about this much (megapixels times the pipeline's
/// weight): about one 2-megapixel photo, a few ms of work.
const BATCH_COST: f64 = 2.0;

/// At most this many items travel in one batch.
const BATCH_ITEMS: usize = 256;

/// Opens the OpenCL device a choice needs now: only an explicit `opencl` does (an
/// error if it cannot); `auto` looks for a GPU when an item would use one
/// ([`AutoDevice`]), and `cpu` never.
pub fn open_device(choice: BackendChoice, device: usize) -> Result<Option<Arc<Gpu>>, RunFailure> {
    match choice {
        BackendChoice::OpenCl => Ok(Some(opencl::shared(device)?)),
        BackendChoice::Cpu | BackendChoice::Auto => Ok(None),
    }
}

/// Header facts of one input, read before processing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Header {
    /// Width, if the header could be read.
    pub width: Option<u32>,
    /// Height, if the header could be read.
    pub height: Option<u32>,
}

impl Header {
    /// Megapixels, if known.
    pub fn megapixels(&self) -> Option<f64> {
        Some(crate::item::megapixels(self.width?, self.height?))
    }
}

/// Reads the header of every input (in parallel on the current pool).
pub fn probe_all(plan: &Plan) -> Vec<Header> {
    plan.items
        .par_iter()
        .map(|it| {
            let dims = image::ImageReader::open(&it.input)
                .ok()
                .and_then(|r| r.with_guessed_format().ok())
                .and_then(|r| r.into_dimensions().ok());
            match dims {
                Some((w, h)) => Header {
                    width: Some(w),
                    height: Some(h),
                },
                None => Header::default(),
            }
        })
        .collect()
}

/// What `--dry-run` needs to know of an input to estimate its memory: its layout from
/// the header and its size in bytes.
pub fn probe_layout(path: &std::path::Path, auto_orient: bool) -> Option<(Layout, u64)> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    // The markers before a JPEG's first scan (EXIF and ICC included) fit in this.
    let mut head = Vec::new();
    (&mut file).take(256 << 10).read_to_end(&mut head).ok()?;
    file.rewind().ok()?;
    let layout = codec::probe(std::io::BufReader::new(file), &head, auto_orient).ok()?;
    Some((layout, len))
}

/// [`probe_layout`] for every item of `plan` (in parallel on the current pool).
pub fn probe_layouts(plan: &Plan) -> Vec<Option<(Layout, u64)>> {
    plan.items
        .par_iter()
        .map(|it| probe_layout(&it.input, it.spec.decode.auto_orient))
        .collect()
}

/// Relative cost of an item: megapixels times (1 for decode and encode + its ops' weights).
pub fn cost(item: &WorkItem, header: &Header) -> f64 {
    let ops: f64 = item.spec.ops.iter().map(|o| o.cost_weight()).sum();
    header.megapixels().unwrap_or(1.0) * (1.0 + ops)
}

/// The record of an item before it runs.
pub fn base_record(item: &WorkItem, header: &Header) -> ItemRecord {
    ItemRecord {
        input: item.input.display().to_string(),
        output: item.output.display().to_string(),
        ops: item.op_names.clone(),
        status: Status::Ok,
        error: None,
        error_kind: None,
        stats: ItemStats {
            width: header.width,
            height: header.height,
            ..ItemStats::default()
        },
        megapixels: header.megapixels(),
        rank: 0,
        copies: 0,
        backup_won: false,
        started_seconds: None,
        ended_seconds: None,
        thumbnails: None,
    }
}

/// Runs tasks through the item pipeline on a rayon pool; reads and writes files itself
/// when the task says so (a shared filesystem, or in-process workers).
pub struct PipelineExecutor {
    pool: Arc<rayon::ThreadPool>,
    specs: Mutex<HashMap<String, Arc<ItemSpec>>>,
    gpu: Option<Arc<Gpu>>,
    auto: Arc<AutoDevice>,
    choice: BackendChoice,
    device_error: Option<String>,
    /// The host it runs on, for the report.
    host: String,
    /// Flush each output written here to disk before it takes its name. Off in a
    /// single process, where rank 0's journal thread flushes the output folders in
    /// groups (`journal::Flusher`); on for MPI workers, whose disk that cannot reach.
    sync_each: bool,
}

impl PipelineExecutor {
    /// An executor running items on `pool`, and on `gpu` (opened for `opencl`) or
    /// `auto`'s GPU as `choice` says.
    pub fn new(
        pool: Arc<rayon::ThreadPool>,
        gpu: Option<Arc<Gpu>>,
        auto: Arc<AutoDevice>,
        choice: BackendChoice,
    ) -> PipelineExecutor {
        PipelineExecutor {
            pool,
            specs: Mutex::new(HashMap::new()),
            gpu,
            auto,
            choice,
            device_error: None,
            sync_each: true,
            host: this_host(),
        }
    }

    /// Says `host` is where it runs (the name MPI gives, rather than the kernel's).
    #[cfg(feature = "mpi")]
    pub fn on_host(mut self, host: &str) -> PipelineExecutor {
        self.host = host.to_string();
        self
    }

    /// Leaves flushing the outputs it writes to rank 0's journal thread, on the same
    /// machine (see the `sync_each` field).
    pub fn flushed_by_master(mut self) -> PipelineExecutor {
        self.sync_each = false;
        self
    }

    fn backend(&self) -> Result<Backend<'_>, ItemError> {
        match (self.choice, &self.gpu) {
            (BackendChoice::Cpu, _) => Ok(Backend::Cpu),
            (BackendChoice::OpenCl, Some(g)) => Ok(Backend::OpenCl(g)),
            (BackendChoice::Auto, _) => Ok(Backend::Auto(&self.auto)),
            (BackendChoice::OpenCl, None) => Err(ItemError::Unsupported(format!(
                "--backend opencl, but this rank has no usable OpenCL device: {}",
                self.device_error.as_deref().unwrap_or("none found")
            ))),
        }
    }

    fn spec(&self, text: &str) -> Result<Arc<ItemSpec>, ItemError> {
        let mut cache = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = cache.get(text) {
            return Ok(s.clone());
        }
        let spec = Arc::new(ItemSpec::from_wire(text).map_err(ItemError::Panic)?);
        cache.insert(text.to_string(), spec.clone());
        Ok(spec)
    }
}

/// Builds a worker pool whose threads count as item threads for the panic guard.
pub fn worker_pool(threads: usize) -> Result<rayon::ThreadPool, RunFailure> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("imgproc-{i}"))
        .start_handler(|_| crate::guard::mark_item_thread())
        .build()
        .map_err(|source| RunFailure::Threads { threads, source })
}

/// This machine's host name, as `hostname` prints it (empty if unknown).
pub fn this_host() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return String::new();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl Executor for PipelineExecutor {
    fn describe(&self) -> sched::RankInfo {
        let backend = match (self.choice, &self.gpu) {
            (BackendChoice::OpenCl, Some(g)) => format!("opencl: {}", g.info().name),
            (choice, _) => choice.name().to_string(),
        };
        sched::RankInfo {
            host: self.host.clone(),
            threads: self.pool.current_num_threads(),
            backend,
        }
    }

    fn execute(&self, task: &Task, input: Option<Vec<u8>>) -> (Done, Option<Vec<u8>>) {
        let start = Instant::now();
        let mut done = Done {
            id: task.id,
            ..Done::default()
        };
        let result = (|| {
            let spec = self.spec(&task.spec)?;
            let bytes = match input {
                Some(b) => b,
                None => std::fs::read(&task.input)
                    .map_err(|e| ItemError::Io(format!("cannot read the input: {e}")))?,
            };
            done.stats.bytes_in = bytes.len() as u64;
            let backend = self.backend()?;
            let out = self
                .pool
                .install(|| pipeline::process_item_guarded(&spec, &bytes, backend, task.preview))?;
            if task.write_output {
                crate::output::write_atomic_with(&task.output, &out.bytes, self.sync_each)
                    .map_err(|e| write_error(&task.output, e))?;
            }
            Ok::<_, ItemError>(out)
        })();
        done.busy_ms = start.elapsed().as_secs_f64() * 1e3;
        done.ended = Some(Instant::now());
        match result {
            Ok(out) => {
                done.out_crc = Some(journal::crc(&out.bytes));
                done.stats = out.stats;
                done.warning = out.warning;
                if let Some(p) = out.previews {
                    done.previews = vec![p.before, p.after];
                }
                let bytes = (!task.write_output).then_some(out.bytes);
                (done, bytes)
            }
            Err(e) => {
                done.error = Some(e.failure());
                (done, None)
            }
        }
    }

    /// Items of a batch run side by side on the pool (each may split its own work
    /// across the pool too), so a batch of small items keeps every thread busy.
    fn execute_batch(&self, tasks: Vec<(Task, Option<Vec<u8>>)>) -> Vec<(Done, Option<Vec<u8>>)> {
        if tasks.len() < 2 {
            return tasks
                .into_iter()
                .map(|(t, i)| self.execute(&t, i))
                .collect();
        }
        self.pool.install(|| {
            tasks
                .into_par_iter()
                .map(|(t, i)| self.execute(&t, i))
                .collect()
        })
    }
}

fn write_error(path: &std::path::Path, e: std::io::Error) -> ItemError {
    ItemError::Io(format!(
        "cannot write {}: {e}; {}",
        path.display(),
        crate::error::write_advice(&e)
    ))
}

/// Rank 0's side: inputs out, outputs in, records, the journal and progress.
struct RunnerSink<'a> {
    plan: &'a Plan,
    headers: &'a [Header],
    records: Vec<Option<ItemRecord>>,
    progress: &'a Progress,
    io_seconds: f64,
    /// Flushes outputs and appends their journal lines off the main thread.
    flusher: Option<journal::Flusher>,
    /// Input identities read when the run started, per item.
    inputs: Vec<Option<InputId>>,
    /// Seconds from the start, for messages.
    start: Instant,
    /// When the run started, to tell earlier runs' temporary files from ours.
    started: std::time::SystemTime,
    /// Where thumbnails go, if the report has a gallery.
    gallery: Option<Gallery>,
}

impl RunnerSink<'_> {
    fn finish(&mut self, id: usize, rec: ItemRecord) {
        let kind = match rec.status {
            Status::Ok => "item_done",
            Status::Failed => "item_failed",
            Status::Skipped => "item_skipped",
        };
        crate::events::emit(kind, || serde_json::to_value(&rec).unwrap_or_default());
        if rec.status == Status::Failed {
            self.progress.println(&format!(
                "imgproc: {}: {}",
                rec.input,
                rec.error.as_deref().unwrap_or("failed")
            ));
        }
        self.progress.item_done(
            self.headers[id].megapixels().unwrap_or(0.0),
            rec.status != Status::Failed,
        );
        self.records[id] = Some(rec);
    }

    /// Queues the committed output of `job` for the journal.
    fn journal(&mut self, job: &Job, size: u64, crc: Option<u32>) {
        let (Some(f), Some(input_id), Some(crc)) =
            (self.flusher.as_ref(), self.inputs[job.id], crc)
        else {
            return;
        };
        let item = &self.plan.items[job.id];
        let e = Entry {
            output: journal::key(&self.plan.output_dir, &item.output),
            input: item.input.display().to_string(),
            input_id,
            // The job carries the spec already in its wire form.
            spec: job.spec.to_string(),
            version: env!("CARGO_PKG_VERSION").into(),
            output_size: size,
            output_crc: crc,
        };
        let dir = item.output.parent().map_or_else(
            || std::path::PathBuf::from("."),
            std::path::Path::to_path_buf,
        );
        f.add(e, dir);
    }
}

impl Sink for RunnerSink<'_> {
    fn read_input(&mut self, job: &Job) -> std::io::Result<Vec<u8>> {
        let t = Instant::now();
        let r = std::fs::read(&job.input);
        self.io_seconds += t.elapsed().as_secs_f64();
        r
    }

    fn result(&mut self, job: &Job, commit: Commit, done: Done, output: Option<Vec<u8>>) {
        let item = &self.plan.items[job.id];
        let mut rec = base_record(item, &self.headers[job.id]);
        rec.rank = commit.worker;
        rec.copies = commit.copies;
        // On rank 0's clock: the results arrived now, `ended_ago_ms` after the item
        // ended on its worker (the time in transit is not subtracted).
        let ended = (self.start.elapsed().as_secs_f64() - done.ended_ago_ms / 1e3).max(0.0);
        rec.ended_seconds = Some(ended);
        rec.started_seconds = Some((ended - done.busy_ms / 1e3).max(0.0));
        rec.backup_won = commit.backup_won;
        rec.stats.backend = done.stats.backend;
        rec.stats.bytes_in = done.stats.bytes_in;
        if let Some(w) = &done.warning {
            self.progress
                .println(&format!("imgproc: {}: warning: {w}", item.input.display()));
        }
        let mut error = done.error;
        if error.is_none() {
            if let Some(bytes) = output {
                let t = Instant::now();
                // Flushed to disk in groups, before their journal lines (see `journal`).
                if let Err(e) = crate::output::write_atomic_with(&item.output, &bytes, false) {
                    let e = write_error(&item.output, e);
                    error = Some(e.failure());
                }
                self.io_seconds += t.elapsed().as_secs_f64();
            }
        }
        if let (None, Some(g), [before, after]) = (&error, &self.gallery, &done.previews[..]) {
            let (b, a) = (g.file(job.id, false), g.file(job.id, true));
            match Gallery::write(&b, before).and_then(|()| Gallery::write(&a, after)) {
                Ok(()) => {
                    rec.thumbnails = Some(Thumbnails {
                        before: b.display().to_string(),
                        after: a.display().to_string(),
                    })
                }
                Err(e) => {
                    self.progress.println(&format!(
                        "imgproc: cannot write thumbnails into {}: {e}; the report's gallery is left without them",
                        g.dir.display()
                    ));
                    self.gallery = None;
                }
            }
        }
        match error {
            None => {
                self.journal(job, done.stats.bytes_out, done.out_crc);
                rec.megapixels = done.stats.megapixels();
                rec.stats = done.stats;
            }
            Some(failure) => {
                rec.status = Status::Failed;
                rec.error_kind = Some(failure.kind);
                rec.error = Some(failure.message);
            }
        }
        self.finish(job.id, rec);
    }

    fn input_failed(&mut self, job: &Job, error: std::io::Error) {
        let mut rec = base_record(&self.plan.items[job.id], &self.headers[job.id]);
        let e = ItemError::Io(format!("cannot read the input: {error}"));
        rec.status = Status::Failed;
        rec.error_kind = Some(e.kind());
        rec.error = Some(e.to_string());
        self.finish(job.id, rec);
    }

    fn skipped(&mut self, job: &Job, why: Unrun) {
        let mut rec = base_record(&self.plan.items[job.id], &self.headers[job.id]);
        rec.status = Status::Skipped;
        rec.error = Some(
            match why {
                Unrun::FailFast => "not started: --fail-fast stopped the batch after a failure",
                Unrun::Interrupted => "not done: the run was interrupted; --resume finishes it",
                Unrun::NoWorkers => "not done: every worker was lost; --resume finishes it",
            }
            .into(),
        );
        self.records[job.id] = Some(rec);
    }

    fn dealt(&mut self, job: &Job, worker: usize, backup: bool) {
        crate::events::emit("item_started", || {
            serde_json::json!({
                "input": self.plan.items[job.id].input.display().to_string(),
                "rank": worker,
                "backup": backup,
            })
        });
    }

    fn worker_lost(
        &mut self,
        worker: usize,
        silent: Duration,
        why: Option<&str>,
        redealt: &[&Job],
    ) {
        crate::events::emit("rank_lost", || {
            serde_json::json!({
                "rank": worker,
                "silent_seconds": silent.as_secs_f64(),
                "reason": why,
                "redealt": redealt.iter().map(|j| j.input.display().to_string()).collect::<Vec<_>>(),
            })
        });
        let because = match why {
            Some(why) => why.to_string(),
            None => format!("silent for {:.1}s", silent.as_secs_f64()),
        };
        let lost = format!(
            "imgproc: rank {worker} lost at {:.1}s ({because})",
            self.start.elapsed().as_secs_f64(),
        );
        if redealt.is_empty() {
            self.progress
                .println(&format!("{lost}; it held no unfinished item"));
            return;
        }
        let names: Vec<String> = redealt
            .iter()
            .take(10)
            .map(|j| j.input.display().to_string())
            .collect();
        let more = redealt.len() - names.len();
        self.progress.println(&format!(
            "{lost}; re-dealing its {} item{}: {}{}",
            redealt.len(),
            if redealt.len() == 1 { "" } else { "s" },
            names.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }

    fn interrupted(&mut self) -> bool {
        crate::signals::received().is_some()
    }
}

impl RunnerSink<'_> {
    /// Records item `i` as skipped before the run, for `why`.
    fn skip(&mut self, i: usize, why: &str) {
        let mut rec = base_record(&self.plan.items[i], &self.headers[i]);
        rec.status = Status::Skipped;
        rec.error = Some(why.into());
        self.records[i] = Some(rec);
        self.progress
            .item_skipped(self.headers[i].megapixels().unwrap_or(0.0));
    }
}

/// Marks items as skipped before the run: `--resume` with the journal's evidence,
/// `--skip-existing` with the output's existence. Returns the ids left to run.
fn skip_done(
    plan: &Plan,
    opts: &RunOptions,
    sink: &mut RunnerSink<'_>,
) -> Result<Vec<usize>, RunFailure> {
    let all: Vec<usize> = (0..plan.items.len()).collect();
    if opts.resume || opts.skip_existing {
        let dirs: std::collections::BTreeSet<&std::path::Path> = plan
            .items
            .iter()
            .filter_map(|it| it.output.parent())
            .collect();
        let removed = crate::output::remove_stale_temporaries(dirs, sink.started);
        if removed > 0 {
            sink.progress.println(&format!(
                "imgproc: removed {removed} temporary file{} left by an earlier run",
                if removed == 1 { "" } else { "s" }
            ));
        }
    }
    if opts.resume {
        let entries =
            journal::read(&plan.output_dir).map_err(|source| RunFailure::JournalRead {
                path: plan.output_dir.join(journal::FILE_NAME),
                source,
            })?;
        let verdicts: Vec<Option<Redo>> = plan
            .items
            .par_iter()
            .map(|it| {
                let key = journal::key(&plan.output_dir, &it.output);
                journal::check(entries.get(&key), &it.input, &it.spec.to_wire(), &it.output)
            })
            .collect();
        let mut left = Vec::new();
        let mut redo: std::collections::BTreeMap<Redo, usize> = Default::default();
        for (i, v) in verdicts.into_iter().enumerate() {
            match v {
                None => sink.skip(
                    i,
                    "done in an earlier run (--resume: journal and output checked)",
                ),
                Some(r) => {
                    *redo.entry(r).or_default() += 1;
                    left.push(i);
                }
            }
        }
        let why: Vec<String> = redo
            .iter()
            .map(|(r, n)| format!("{n} {}", r.describe()))
            .collect();
        sink.progress.println(&format!(
            "imgproc: resume: {} of {} items already done, skipped; {} to do{}",
            plan.items.len() - left.len(),
            plan.items.len(),
            left.len(),
            if why.is_empty() {
                String::new()
            } else {
                format!(" ({})", why.join(", "))
            }
        ));
        return Ok(left);
    }
    if opts.skip_existing {
        let mut left = Vec::new();
        for i in all {
            if plan.items[i].output.exists() {
                sink.skip(i, "output exists (--skip-existing)");
            } else {
                left.push(i);
            }
        }
        sink.progress.println(&format!(
            "imgproc: --skip-existing: {} of {} items skipped (their output exists; --resume also checks it is complete and current)",
            plan.items.len() - left.len(),
            plan.items.len()
        ));
        return Ok(left);
    }
    Ok(all)
}

/// CPU seconds this process has used (user + system), and its peak resident memory
/// in MB (10^6 bytes).
pub fn process_usage() -> (f64, f64) {
    // SAFETY: getrusage only writes the struct it is given.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return (0.0, 0.0);
        }
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        // Linux counts ru_maxrss in KiB.
        let mb = u.ru_maxrss as f64 * 1024.0 / 1e6;
        (t(u.ru_utime) + t(u.ru_stime), mb)
    }
}

/// Everything rank 0 does around the scheduler: headers, resume, progress, the
/// journal, the master loop over `link`, and the report.
fn run_as_master(
    plan: &Plan,
    headers: Vec<Header>,
    opts: &RunOptions,
    link: &mut dyn MasterLink,
    setup: Setup,
    ranks: usize,
) -> Result<Report, RunFailure> {
    // From here on a signal ends the run cleanly (before, there is nothing to save and
    // the default action ends the process at once).
    crate::signals::install();
    let start = Instant::now();
    let total_mp: f64 = headers.iter().map(|h| h.megapixels().unwrap_or(0.0)).sum();
    let progress = Progress::new(opts.progress, plan.items.len(), total_mp);
    let journal = Journal::open(&plan.output_dir).map_err(|source| RunFailure::JournalOpen {
        path: plan.output_dir.join(journal::FILE_NAME),
        source,
    })?;
    let mut sink = RunnerSink {
        plan,
        headers: &headers,
        records: vec![None; plan.items.len()],
        progress: &progress,
        io_seconds: 0.0,
        flusher: Some(journal::Flusher::start(journal)),
        inputs: plan
            .items
            .par_iter()
            .map(|it| InputId::of(&it.input))
            .collect(),
        start,
        started: std::time::SystemTime::now(),
        gallery: None,
    };
    if let Some(g) = &opts.gallery {
        match g.prepare() {
            Ok(()) => sink.gallery = Some(g.clone()),
            Err(e) => progress.println(&format!(
                "imgproc: cannot prepare the thumbnail folder {}: {e}; the report will have no gallery",
                g.dir.display()
            )),
        }
    }
    let todo = skip_done(plan, opts, &mut sink)?;
    let n = todo.len();
    let jobs: Vec<Job> = todo
        .into_iter()
        .enumerate()
        .map(|(k, i)| {
            let item = &plan.items[i];
            Job {
                id: i,
                cost: cost(item, &headers[i]),
                spec: Arc::from(item.spec.to_wire()),
                input: item.input.clone(),
                output: item.output.clone(),
                preview: sink.gallery.as_ref().is_some_and(|g| g.picks(k, n)),
            }
        })
        .collect();
    let master_host = if setup.master_host.is_empty() {
        this_host()
    } else {
        setup.master_host.clone()
    };
    crate::events::emit("run_started", || {
        serde_json::json!({
            "imgproc_version": env!("CARGO_PKG_VERSION"),
            "items": plan.items.len(),
            "to_run": jobs.len(),
            "megapixels": total_mp,
            "ranks": ranks,
            "threads": opts.threads,
        })
    });
    let mopts = master_options(opts, setup);
    let outcome = sched::run_master(link, &jobs, &mopts, &mut sink)?;
    if let Some(Err(e)) = sink.flusher.take().map(journal::Flusher::finish) {
        progress.println(&format!(
            "imgproc: {e}; the outputs are written, but --resume will redo some of them"
        ));
    }
    progress.finish();
    let wall = start.elapsed().as_secs_f64();
    let records: Vec<ItemRecord> = sink.records.into_iter().flatten().collect();
    let mut report = Report::new(records, wall, opts.threads);
    let (master, workers) = rank_records(&outcome, wall, ranks, sink.io_seconds, master_host);
    report.set_ranks(ranks, master, workers);
    report.lost_ranks = outcome.lost.clone();
    report.no_workers = outcome.no_workers;
    if outcome.interrupted {
        report.signal = crate::signals::received();
        report.interrupted_by = report.signal.map(|s| crate::signals::name(s).to_string());
    }
    Ok(report)
}

/// What the scheduler needs from the run's options.
fn master_options(opts: &RunOptions, setup: Setup) -> MasterOptions {
    let distributed = setup.heartbeat_ms > 0;
    MasterOptions {
        prefetch: opts.prefetch,
        fail_fast: opts.fail_fast,
        worker_timeout: if distributed {
            opts.worker_timeout
        } else {
            None
        },
        setup,
        batch_cost: BATCH_COST,
        batch_items: BATCH_ITEMS,
        // Backups only across ranks. In one process every worker thread shares the
        // same cores and memory: a copy of a slow item would double its memory (two
        // decoded images where --max-memory-mb promised one) and only compete with it.
        backups: opts.backups && distributed,
        recovery: opts.recovery,
    }
}

/// The report's records of rank 0 (its file I/O) and of every worker.
fn rank_records(
    outcome: &sched::MasterOutcome,
    wall: f64,
    ranks: usize,
    io_seconds: f64,
    master_host: String,
) -> (RankRecord, Vec<RankRecord>) {
    let (cpu, rss) = process_usage();
    let master = RankRecord {
        rank: 0,
        items: 0,
        busy_seconds: io_seconds,
        idle_seconds: (wall - io_seconds).max(0.0),
        bytes_received: outcome.stats.iter().map(|s| s.bytes_from).sum(),
        bytes_sent: outcome.stats.iter().map(|s| s.bytes_to).sum(),
        cpu_seconds: Some(cpu),
        peak_rss_mb: Some(rss),
        host: Some(master_host),
        threads: None,
        backend: None,
        state: "ok".into(),
        lost_at_seconds: None,
        backup_copies: 0,
        discarded_results: 0,
    };
    let workers = outcome
        .stats
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let lost_at = match s.state {
                sched::WorkerState::Ok => None,
                sched::WorkerState::Lost { at_seconds } => Some(at_seconds),
            };
            RankRecord {
                rank: i + 1,
                items: s.items,
                busy_seconds: s.busy_seconds,
                idle_seconds: (wall - s.busy_seconds).max(0.0),
                bytes_received: s.bytes_to,
                bytes_sent: s.bytes_from,
                cpu_seconds: (ranks > 1 && lost_at.is_none()).then_some(s.cpu_seconds),
                peak_rss_mb: (ranks > 1 && lost_at.is_none()).then_some(s.peak_rss_mb),
                host: s.info.as_ref().map(|i| i.host.clone()),
                threads: s.info.as_ref().map(|i| i.threads),
                backend: s.info.as_ref().map(|i| i.backend.clone()),
                state: if lost_at.is_some() { "lost" } else { "ok" }.into(),
                lost_at_seconds: lost_at,
                backup_copies: s.backups,
                discarded_results: s.discarded,
            }
        })
        .collect();
    (master, workers)
}

/// Runs every item of `plan` in this process: the scheduler over `threads` in-process
/// workers sharing one pool of `threads` threads.
pub fn run_local(plan: &Plan, opts: &RunOptions) -> Result<Report, RunFailure> {
    let threads = opts.threads.max(1);
    let pool = Arc::new(worker_pool(threads)?);
    let gpu = open_device(opts.backend, opts.device.unwrap_or(0))?;
    let auto = Arc::new(AutoDevice::new(opts.device, 0));
    let (mut master, workers) = local::links(threads);
    let handles: Vec<_> = workers
        .into_iter()
        .map(|mut w| {
            let (pool, gpu, auto) = (pool.clone(), gpu.clone(), auto.clone());
            let choice = opts.backend;
            std::thread::spawn(move || {
                sched::run_worker(
                    &mut w,
                    |_| PipelineExecutor::new(pool, gpu, auto, choice).flushed_by_master(),
                    || (0.0, 0.0),
                )
            })
        })
        .collect();
    let setup = Setup {
        master_host: String::new(),
        threads: Some(threads),
        shared_fs: true,
        backend: opts.backend,
        device: opts.device,
        heartbeat_ms: 0,
        master_timeout_ms: 0,
    };
    let headers = pool.install(|| probe_all(plan));
    let result = run_as_master(plan, headers, opts, &mut master, setup, 1);
    if result.is_err() {
        let _ = sched::stop_all(&mut master, 3, sched::Ending::Finalize);
    }
    drop(master);
    // An interrupted run does not wait for the items still running.
    if crate::signals::received().is_none() {
        for h in handles {
            let _ = h.join();
        }
    }
    result
}

/// Rank 0 under MPI: runs the plan on the worker ranks behind `link`.
#[cfg(feature = "mpi")]
pub fn run_mpi_master(
    plan: &Plan,
    opts: &RunOptions,
    link: &mut dyn MasterLink,
    host: String,
    ranks: usize,
) -> Result<Report, RunFailure> {
    let timeout = opts.worker_timeout.unwrap_or(Duration::ZERO);
    let setup = Setup {
        master_host: host,
        threads: opts.threads_given.then_some(opts.threads),
        shared_fs: opts.shared_fs,
        backend: opts.backend,
        device: opts.device,
        heartbeat_ms: HEARTBEAT.as_millis() as u64,
        // Workers wait for a silent master longer than it waits for them.
        master_timeout_ms: if timeout.is_zero() {
            0
        } else {
            (timeout * 2).as_millis() as u64
        },
    };
    run_as_master(plan, probe_all(plan), opts, link, setup, ranks)
}

/// Threads for a worker rank: `--threads` if given, else the host's cores divided by the
/// worker ranks on it (a host that also runs rank 0 counts one rank fewer), at least 1.
#[cfg(feature = "mpi")]
pub fn worker_threads(setup: &Setup, my_host: &str, local_size: Option<usize>) -> usize {
    if let Some(t) = setup.threads {
        return t.max(1);
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let ranks_here = local_size.unwrap_or(1).max(1);
    let workers_here = if my_host == setup.master_host && ranks_here > 1 {
        ranks_here - 1
    } else {
        ranks_here
    };
    (cores / workers_here).max(1)
}

/// A worker rank under MPI: runs tasks until the master says stop; returns how it ended.
#[cfg(feature = "mpi")]
pub fn run_mpi_worker(
    link: &mut dyn WorkerLink,
    my_host: String,
    local_size: Option<usize>,
    local_rank: Option<usize>,
) -> Result<sched::WorkerEnd, RunFailure> {
    let mut pool_error = None;
    let end = sched::run_worker(
        link,
        |setup| {
            let threads = worker_threads(setup, &my_host, local_size);
            let pool = worker_pool(threads).unwrap_or_else(|e| {
                pool_error = Some(e);
                // A pool of one thread is the fallback; building it does not fail in practice.
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .build()
                    .expect("a one-thread pool")
            });
            let choice = setup.backend;
            // Each worker takes its own device: two ranks on a two-GPU node use both.
            let auto = Arc::new(AutoDevice::new(setup.device, local_rank.unwrap_or(0)));
            let (gpu, device_error) = if choice != BackendChoice::OpenCl {
                (None, None)
            } else {
                let count = opencl::list_devices().map(|d| d.len()).unwrap_or(0).max(1);
                let index = setup.device.unwrap_or(local_rank.unwrap_or(0) % count);
                match open_device(choice, index) {
                    Ok(g) => (g, None),
                    Err(e) => (None, Some(e.to_string())),
                }
            };
            let mut exec =
                PipelineExecutor::new(Arc::new(pool), gpu, auto, choice).on_host(&my_host);
            exec.device_error = device_error;
            exec
        },
        process_usage,
    )?;
    if let Some(e) = pool_error {
        eprintln!("imgproc: rank {}: {e}; ran with one thread", link.id());
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::Gallery;

    #[test]
    fn a_gallery_picks_its_items_evenly_and_all_of_a_small_run() {
        let g = Gallery {
            dir: "t".into(),
            max_items: 4,
        };
        let picked = |n| (0..n).filter(|&i| g.picks(i, n)).collect::<Vec<_>>();
        assert_eq!(picked(3), vec![0, 1, 2]);
        assert_eq!(picked(4), vec![0, 1, 2, 3]);
        assert_eq!(picked(10), vec![2, 4, 7, 9]);
        assert_eq!(picked(1000).len(), 4);
    }

    #[test]
    fn a_gallery_folder_loses_only_old_thumbnails_and_links_and_is_never_a_link() {
        let ws = tempfile::tempdir().unwrap();
        let g = Gallery {
            dir: ws.path().join("run_thumbs"),
            max_items: 10,
        };
        g.prepare().unwrap();
        let victim = ws.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::fs::write(g.file(3, false), b"old").unwrap();
        std::fs::write(g.dir.join("notes.txt"), b"theirs").unwrap();
        std::os::unix::fs::symlink(&victim, g.file(7, true)).unwrap();
        g.prepare().unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&g.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec!["notes.txt"]);
        // A link planted during the run is not written through.
        std::os::unix::fs::symlink(&victim, g.file(7, true)).unwrap();
        assert!(Gallery::write(&g.file(7, true), b"thumb").is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        Gallery::write(&g.file(8, true), b"thumb").unwrap();
        // A folder that is a link is refused.
        let linked = Gallery {
            dir: ws.path().join("linked"),
            max_items: 10,
        };
        std::os::unix::fs::symlink(ws.path(), &linked.dir).unwrap();
        assert!(linked.prepare().is_err());
    }
}
