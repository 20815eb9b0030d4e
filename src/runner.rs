//! Runs a plan on the cores of one machine.
//!
//! Items are weighed from their headers (pixels times the pipeline's cost), dealt
//! largest first to `threads` workers that each pull the next item when free (dynamic
//! balancing), and each output is written atomically as soon as it is ready, so a late
//! failure or a kill loses nothing already done. All work, including the parallel
//! loops inside one op, runs on one rayon pool of `threads` threads: the machine is
//! never oversubscribed. The runner handles bytes and paths, never pixels.

use crate::error::ItemError;
use crate::manifest::{Plan, WorkItem};
use crate::pipeline;
use crate::progress::{Mode, Progress};
use crate::report::{ItemRecord, Report, Status};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Worker threads (default: all cores).
    pub threads: usize,
    /// Stop starting items after the first failure.
    pub fail_fast: bool,
    /// Leave items whose output already exists (status "skipped").
    pub skip_existing: bool,
    /// Progress display.
    pub progress: Mode,
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
        Some(self.width? as f64 * self.height? as f64 / 1e6)
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

/// Relative cost of an item: megapixels times (1 for decode and encode + its ops' weights).
pub fn cost(item: &WorkItem, header: &Header) -> f64 {
    let ops: f64 = item.spec.ops.iter().map(|o| o.cost_weight()).sum();
    header.megapixels().unwrap_or(1.0) * (1.0 + ops)
}

/// The record of an item before it runs (status ok, no timings).
pub fn base_record(item: &WorkItem, header: &Header) -> ItemRecord {
    ItemRecord {
        input: item.input.display().to_string(),
        output: item.output.display().to_string(),
        ops: item.op_names.clone(),
        status: Status::Ok,
        error: None,
        error_kind: None,
        width: header.width,
        height: header.height,
        megapixels: header.megapixels(),
        bytes_in: 0,
        bytes_out: 0,
        decode_ms: 0.0,
        process_ms: 0.0,
        encode_ms: 0.0,
        rank: 0,
        backend: "cpu".into(),
    }
}

/// Processes one item from its input file to its written output.
pub fn run_item(item: &WorkItem, header: &Header, skip_existing: bool) -> ItemRecord {
    let mut rec = base_record(item, header);
    if skip_existing && item.output.exists() {
        rec.status = Status::Skipped;
        rec.error = Some("output exists (--skip-existing)".into());
        return rec;
    }
    let result = std::fs::read(&item.input)
        .map_err(|e| ItemError::Io(format!("cannot read the input: {e}")))
        .and_then(|bytes| {
            rec.bytes_in = bytes.len() as u64;
            pipeline::process_item_guarded(&item.spec, &bytes)
        })
        .and_then(|out| {
            crate::output::write_atomic(&item.output, &out.bytes).map_err(|e| {
                ItemError::Io(format!(
                    "cannot write {}: {e}; check that the folder is writable",
                    item.output.display()
                ))
            })?;
            Ok(out)
        });
    match result {
        Ok(out) => {
            rec.width = Some(out.width);
            rec.height = Some(out.height);
            rec.megapixels = Some(out.width as f64 * out.height as f64 / 1e6);
            rec.bytes_out = out.bytes.len() as u64;
            rec.decode_ms = out.timings.decode_ms;
            rec.process_ms = out.timings.process_ms;
            rec.encode_ms = out.timings.encode_ms;
            rec.backend = out.backend.into();
        }
        Err(e) => {
            rec.status = Status::Failed;
            rec.error_kind = Some(e.kind().into());
            rec.error = Some(e.to_string());
        }
    }
    rec
}

/// Runs every item of `plan` and returns the report.
pub fn run_local(plan: &Plan, opts: &RunOptions) -> Result<Report, String> {
    let start = Instant::now();
    let threads = opts.threads.max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("imgproc-{i}"))
        .build()
        .map_err(|e| format!("cannot start {threads} threads: {e}"))?;
    let headers = pool.install(|| probe_all(plan));
    let mut order: Vec<usize> = (0..plan.items.len()).collect();
    let costs: Vec<f64> = plan
        .items
        .iter()
        .zip(&headers)
        .map(|(i, h)| cost(i, h))
        .collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let total_mp: f64 = headers.iter().map(|h| h.megapixels().unwrap_or(0.0)).sum();
    let progress = Progress::new(opts.progress, plan.items.len(), total_mp);

    let records: Mutex<Vec<Option<ItemRecord>>> = Mutex::new(vec![None; plan.items.len()]);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    pool.scope(|s| {
        for _ in 0..threads {
            s.spawn(|_| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&i) = order.get(k) else { break };
                let item = &plan.items[i];
                let rec = if stop.load(Ordering::Relaxed) {
                    let mut r = base_record(item, &headers[i]);
                    r.status = Status::Skipped;
                    r.error =
                        Some("not started: --fail-fast stopped the batch after a failure".into());
                    r
                } else {
                    run_item(item, &headers[i], opts.skip_existing)
                };
                if rec.status == Status::Failed {
                    progress.println(&format!(
                        "imgproc: {}: {}",
                        rec.input,
                        rec.error.as_deref().unwrap_or("failed")
                    ));
                    if opts.fail_fast {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
                progress.item_done(
                    headers[i].megapixels().unwrap_or(0.0),
                    rec.status != Status::Failed,
                );
                records.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(rec);
            });
        }
    });
    progress.finish();
    let records: Vec<ItemRecord> = records
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Ok(Report::new(records, start.elapsed().as_secs_f64(), threads))
}
