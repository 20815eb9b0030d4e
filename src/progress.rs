//! Progress on stderr: a redrawn bar on a terminal, plain periodic lines otherwise.
//!
//! Progress is measured in pixels, not items, so the ETA holds for batches that mix
//! thumbnails with 100-megapixel scans.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Nothing (`--quiet`).
    Quiet,
    /// A bar when stderr is a terminal, else a line every few seconds.
    Auto,
    /// A line every few seconds, whatever stderr is.
    Lines,
}

/// Shared progress state; safe to update from any thread.
pub struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    quiet: bool,
    total_items: usize,
    total_kpx: u64,
    done_items: AtomicUsize,
    failed: AtomicUsize,
    done_kpx: AtomicU64,
    /// Kilopixels skipped (done before): they count toward the end, not the rate.
    skipped_kpx: AtomicU64,
    /// Kilopixels of items that failed (not counted in the rate).
    failed_kpx: AtomicU64,
    start: Instant,
    last_line: Mutex<Instant>,
    interval: Duration,
}

impl Progress {
    /// Starts progress for `total_items` items of `total_mp` megapixels in all.
    pub fn new(mode: Mode, total_items: usize, total_mp: f64) -> Progress {
        let total_kpx = (total_mp * 1000.0).ceil().max(1.0) as u64;
        let terminal = std::io::stderr().is_terminal();
        let bar = (mode == Mode::Auto && terminal).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total_kpx), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let interval = std::env::var("IMGPROC_PROGRESS_INTERVAL")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(3));
        let p = Progress {
            bar,
            lines: mode != Mode::Quiet && !(mode == Mode::Auto && terminal),
            quiet: mode == Mode::Quiet,
            total_items,
            total_kpx,
            done_items: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            done_kpx: AtomicU64::new(0),
            skipped_kpx: AtomicU64::new(0),
            failed_kpx: AtomicU64::new(0),
            start: Instant::now(),
            last_line: Mutex::new(Instant::now()),
            interval,
        };
        p.refresh_message();
        p
    }

    fn summary(&self) -> String {
        let done = self.done_items.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        // The rate counts what was processed: not skipped items, and not failed ones
        // (most fail at the header, and would make the rate a fiction).
        let processed = self.done_kpx.load(Ordering::Relaxed)
            - self.skipped_kpx.load(Ordering::Relaxed)
            - self.failed_kpx.load(Ordering::Relaxed);
        let mp = processed as f64 / 1000.0;
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let mut s = format!("{done}/{} items", self.total_items);
        if processed > 0 {
            s.push_str(&format!(", {:.1} MP/s", mp / secs));
        }
        if failed > 0 {
            s.push_str(&format!(", {failed} failed"));
        }
        s
    }

    fn refresh_message(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message(self.summary());
        }
    }

    /// Records an item skipped because it was done before (`--resume`,
    /// `--skip-existing`): it counts toward the end but not toward the rate.
    pub fn item_skipped(&self, megapixels: f64) {
        let kpx = (megapixels * 1000.0).round() as u64;
        self.skipped_kpx.fetch_add(kpx, Ordering::Relaxed);
        self.item_done(megapixels, true);
    }

    /// Records a finished item of `megapixels`.
    pub fn item_done(&self, megapixels: f64, ok: bool) {
        self.done_items.fetch_add(1, Ordering::Relaxed);
        let kpx = (megapixels * 1000.0).round() as u64;
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
            self.failed_kpx.fetch_add(kpx, Ordering::Relaxed);
        }
        let done = self.done_kpx.fetch_add(kpx, Ordering::Relaxed) + kpx;
        if let Some(bar) = &self.bar {
            bar.set_position(done.min(self.total_kpx));
            self.refresh_message();
        } else if self.lines {
            let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= self.interval {
                *last = Instant::now();
                eprintln!("imgproc: {}", self.line());
            }
        }
    }

    fn line(&self) -> String {
        let done = self.done_kpx.load(Ordering::Relaxed) as f64;
        let frac = (done / self.total_kpx as f64).min(1.0);
        let secs = self.start.elapsed().as_secs_f64();
        let eta = if frac > 0.0 {
            secs * (1.0 - frac) / frac
        } else {
            f64::NAN
        };
        format!(
            "{}, {:.1}/{:.1} MP ({:.0}%), ETA {}",
            self.summary(),
            done / 1000.0,
            self.total_kpx as f64 / 1000.0,
            frac * 100.0,
            if eta.is_finite() {
                format!("{eta:.0}s")
            } else {
                "unknown".into()
            }
        )
    }

    /// Prints a line (an item failure, say) without tearing the bar; shown even when quiet.
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Ends the bar and prints the final summary line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if !self.quiet {
            eprintln!(
                "imgproc: done: {} in {:.2}s",
                self.summary(),
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}
