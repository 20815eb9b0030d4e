//! The report (`--report FILE` or `-`): one record per item, per rank and the totals,
//! written as JSON, CSV (one row per item) or an HTML page ([`html`]), by the file's
//! extension.

mod html;

use crate::error::ErrorKind;
use crate::item::ItemStats;
use serde::Serialize;

/// Outcome of one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Output written.
    Ok,
    /// Failed; see `error`.
    Failed,
    /// Not processed: output existed with `--skip-existing`, or `--fail-fast` stopped the batch.
    Skipped,
}

/// One item of the report.
#[derive(Clone, Debug, Serialize)]
pub struct ItemRecord {
    /// Input file.
    pub input: String,
    /// Output file.
    pub output: String,
    /// Ops as written in the manifest.
    pub ops: Vec<String>,
    /// Outcome.
    pub status: Status,
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// Failure kind: io, decode, unsupported, limits, operation, encode, panic.
    pub error_kind: Option<ErrorKind>,
    /// Size (from the header, or as decoded), file sizes, stage timings and what ran
    /// the ops, as fields of this record.
    #[serde(flatten)]
    pub stats: ItemStats,
    /// Input megapixels, if known.
    pub megapixels: Option<f64>,
    /// Rank that processed it (0 in a single process).
    pub rank: usize,
    /// Times the item was dealt: 1, or more when a lost worker's item was re-dealt or a
    /// backup copy ran (0 if never dealt).
    pub copies: usize,
    /// Whether the committed result came from the backup copy.
    pub backup_won: bool,
    /// When its worker started it, in seconds from the start of the run, on rank 0's
    /// clock (for a timeline); none for an item never run.
    pub started_seconds: Option<f64>,
    /// When its worker finished it, likewise.
    pub ended_seconds: Option<f64>,
    /// Its gallery thumbnails, when an HTML report asked for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnails: Option<Thumbnails>,
}

/// Where an item's gallery thumbnails were written (JPEG files, paths as the report's
/// own path was given).
#[derive(Clone, Debug, Serialize)]
pub struct Thumbnails {
    /// The input as decoded.
    pub before: String,
    /// The output before encoding.
    pub after: String,
}

/// What one rank did. Rank 0 deals items and does the file I/O; the others process.
#[derive(Clone, Debug, Serialize)]
pub struct RankRecord {
    /// The rank (0 is the master).
    pub rank: usize,
    /// Items it processed.
    pub items: usize,
    /// Seconds spent on items (rank 0: reading inputs and writing outputs).
    pub busy_seconds: f64,
    /// Wall time minus busy time.
    pub idle_seconds: f64,
    /// Bytes it received (rank 0: encoded outputs; workers: inputs).
    pub bytes_received: u64,
    /// Bytes it sent (rank 0: inputs; workers: encoded outputs).
    pub bytes_sent: u64,
    /// CPU seconds the rank's process used (rank 0 always; workers under MPI).
    pub cpu_seconds: Option<f64>,
    /// Peak resident memory of the rank's process in MB (10^6 bytes), as the kernel
    /// counts it (`ru_maxrss`: libraries and every thread included; rank 0 always,
    /// workers under MPI).
    pub peak_rss_mb: Option<f64>,
    /// Its host (rank 0 always; a worker once it said so after starting).
    pub host: Option<String>,
    /// Threads it ran items on (workers; in one process, the pool they share).
    pub threads: Option<usize>,
    /// Its backend: `cpu`, `auto`, or `opencl: DEVICE` (workers).
    pub backend: Option<String>,
    /// "ok", or "lost" (killed, cut off or silent past `--worker-timeout`).
    pub state: String,
    /// When it was declared lost, in seconds from the start of dealing.
    pub lost_at_seconds: Option<f64>,
    /// Backup copies of other workers' items it was dealt.
    pub backup_copies: usize,
    /// Results it sent that were discarded (another copy was committed first, or it
    /// had been declared lost).
    pub discarded_results: usize,
}

/// Totals over all items.
#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    /// Items in the plan.
    pub items: usize,
    /// Items written.
    pub ok: usize,
    /// Items failed.
    pub failed: usize,
    /// Items skipped.
    pub skipped: usize,
    /// Megapixels of the items written.
    pub megapixels: f64,
    /// `megapixels / wall_seconds`.
    pub megapixels_per_second: f64,
    /// Workers' busy time / (workers x wall time): 1 is perfect balance.
    pub load_balance: f64,
    /// Backup copies dealt (slow workers' items given to idle ones at the end).
    pub backup_copies: usize,
    /// Items whose committed result came from a backup copy.
    pub backup_wins: usize,
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// imgproc's version.
    pub imgproc_version: &'static str,
    /// When the run started (rank 0's clock, UTC, RFC 3339).
    pub started_at: String,
    /// The exit status the run ended with (as `imgproc` exits, unless a report could
    /// not be written: then 3).
    pub exit_code: i32,
    /// Wall-clock time of the run.
    pub wall_seconds: f64,
    /// Threads used (per worker rank under MPI).
    pub threads: usize,
    /// Ranks in the job (1 without MPI).
    pub ranks: usize,
    /// Per rank: rank 0 first, then the workers (without MPI, one entry per worker thread,
    /// numbered from 1, all within rank 0's process).
    pub ranks_detail: Vec<RankRecord>,
    /// Worker ranks lost during the run, in increasing order.
    pub lost_ranks: Vec<usize>,
    /// The signal that interrupted the run ("SIGINT", "SIGTERM"), if one did.
    pub interrupted_by: Option<String>,
    /// Per item, in plan order.
    pub items: Vec<ItemRecord>,
    /// Totals.
    pub totals: Totals,
    /// The signal number that interrupted the run.
    #[serde(skip)]
    pub signal: Option<i32>,
    /// Every worker was lost before the work was done.
    #[serde(skip)]
    pub no_workers: bool,
}

impl Report {
    /// Builds the report from item records.
    pub fn new(items: Vec<ItemRecord>, wall_seconds: f64, threads: usize) -> Report {
        let count = |s| items.iter().filter(|i| i.status == s).count();
        // A fold from +0.0: f64's `sum` starts from -0.0, which an empty run printed.
        let megapixels = items
            .iter()
            .filter(|i| i.status == Status::Ok)
            .filter_map(|i| i.megapixels)
            .fold(0.0, |a, m| a + m);
        let totals = Totals {
            items: items.len(),
            ok: count(Status::Ok),
            failed: count(Status::Failed),
            skipped: count(Status::Skipped),
            megapixels,
            megapixels_per_second: if wall_seconds > 0.0 {
                megapixels / wall_seconds
            } else {
                0.0
            },
            load_balance: 0.0,
            backup_copies: 0,
            backup_wins: items.iter().filter(|i| i.backup_won).count(),
        };
        let started = std::time::SystemTime::now()
            .checked_sub(std::time::Duration::from_secs_f64(wall_seconds.max(0.0)))
            .unwrap_or(std::time::UNIX_EPOCH);
        Report {
            imgproc_version: env!("CARGO_PKG_VERSION"),
            started_at: rfc3339(started),
            exit_code: 0,
            wall_seconds,
            threads,
            ranks: 1,
            ranks_detail: Vec::new(),
            lost_ranks: Vec::new(),
            interrupted_by: None,
            items,
            totals,
            signal: None,
            no_workers: false,
        }
    }

    /// Adds the per-rank records and the load balance over the workers.
    pub fn set_ranks(&mut self, ranks: usize, master: RankRecord, workers: Vec<RankRecord>) {
        let busy: f64 = workers.iter().map(|w| w.busy_seconds).sum();
        let denom = workers.len() as f64 * self.wall_seconds;
        self.totals.load_balance = if denom > 0.0 { busy / denom } else { 0.0 };
        self.totals.backup_copies = workers.iter().map(|w| w.backup_copies).sum();
        self.ranks = ranks;
        self.ranks_detail = std::iter::once(master).chain(workers).collect();
    }

    /// Writes the report to `path` (stdout for `-`): an HTML page for `.html` or
    /// `.htm`, CSV for `.csv`, else pretty JSON.
    pub fn write(&self, path: &str) -> std::io::Result<()> {
        let text = if is_html(path) {
            html::page(self, std::path::Path::new(path))?
        } else if has_extension(path, &["csv"]) {
            self.csv()
        } else {
            serde_json::to_string_pretty(self).map_err(std::io::Error::other)? + "\n"
        };
        if path == "-" {
            use std::io::Write;
            std::io::stdout().write_all(text.as_bytes())
        } else {
            crate::output::write_atomic(std::path::Path::new(path), text.as_bytes())
        }
    }
}

fn has_extension(path: &str, extensions: &[&str]) -> bool {
    std::path::Path::new(path)
        .extension()
        .is_some_and(|e| extensions.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Whether `--report path` asks for an HTML page (`.html`, `.htm`).
pub fn is_html(path: &str) -> bool {
    has_extension(path, &["html", "htm"])
}

/// The folder of an HTML report's thumbnails: beside it, named after it
/// (`out/run.html` -> `out/run_thumbs`).
pub fn thumbnail_dir(report: &std::path::Path) -> std::path::PathBuf {
    let stem = report.file_stem().unwrap_or_default().to_string_lossy();
    report.with_file_name(format!("{stem}_thumbs"))
}

/// `t` as `2026-12-01T03:37:47Z` (UTC, whole seconds).
fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), by eras of 400 years.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The columns of the CSV report, in order: an item record's fields.
const CSV_COLUMNS: [&str; 20] = [
    "input",
    "output",
    "ops",
    "status",
    "error_kind",
    "error",
    "width",
    "height",
    "megapixels",
    "bytes_in",
    "bytes_out",
    "decode_ms",
    "process_ms",
    "encode_ms",
    "started_seconds",
    "ended_seconds",
    "rank",
    "backend",
    "copies",
    "backup_won",
];

impl Report {
    /// One row per item (RFC 4180: a header row, fields quoted where needed, CRLF).
    /// A text cell that a spreadsheet would take for a formula (starting with `=`,
    /// `+`, `-`, `@`, tab or CR: a hostile file name) gets a leading `'`.
    fn csv(&self) -> String {
        let mut out = CSV_COLUMNS.join(",") + "\r\n";
        for item in &self.items {
            let v = serde_json::to_value(item).unwrap_or_default();
            let cells: Vec<String> = CSV_COLUMNS
                .iter()
                .map(|&c| match &v[c] {
                    serde_json::Value::Null => String::new(),
                    serde_json::Value::String(s) => csv_text(s),
                    serde_json::Value::Array(a) => csv_text(
                        &a.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    other => other.to_string(),
                })
                .collect();
            out += &cells.join(",");
            out += "\r\n";
        }
        out
    }
}

/// A text cell: defused if it starts like a formula, quoted if it holds a comma, a
/// quote or a line break.
fn csv_text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(super::csv_text("plain.png"), "plain.png");
        assert_eq!(super::csv_text("a,b \"c\".png"), "\"a,b \"\"c\"\".png\"");
        assert_eq!(super::csv_text("=HYPERLINK(x)"), "'=HYPERLINK(x)");
        assert_eq!(super::csv_text("line\nbreak"), "\"line\nbreak\"");
    }

    #[test]
    fn times_are_written_as_rfc3339() {
        let at = |s| super::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400` and `@4102444799`: a leap day, the last second of 2099.
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(at(1_764_560_267), "2025-12-01T03:37:47Z");
    }

    #[test]
    fn html_is_chosen_by_extension_and_thumbnails_go_beside_it() {
        assert!(super::is_html("out/Run.HTML") && super::is_html("r.htm"));
        assert!(!super::is_html("r.json") && !super::is_html("-") && !super::is_html("html"));
        assert_eq!(
            super::thumbnail_dir(std::path::Path::new("out/run.html")),
            std::path::Path::new("out/run_thumbs")
        );
    }

    #[test]
    fn an_empty_run_totals_plus_zero_megapixels() {
        let r = super::Report::new(Vec::new(), 0.5, 1);
        let json = serde_json::to_string(&r.totals).unwrap();
        assert!(json.contains("\"megapixels\":0.0"), "{json}");
    }
}
