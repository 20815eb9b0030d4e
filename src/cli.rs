//! Command-line flags (clap) turned into a plain [`Config`] once, and the exit codes.

use crate::codec::{DecodeOptions, OutputFormat};
use crate::manifest::PlanOptions;
use crate::pipeline::BackendChoice;
use crate::progress::Mode;
use crate::runner::RunOptions;
use clap::Parser;
use std::path::PathBuf;

pub use crate::exit::Exit;

const AFTER_HELP: &str = "\
Examples:
  imgproc --op resize:width=512,filter=area --format jpeg -o thumbs/ photos/*.jpg
  find shots -name '*.png' -print0 | imgproc --files-from - -0 --op grayscale -o gray/
  mpirun -np 9 --hostfile hosts imgproc --manifest jobs.json --report report.json
  imgproc launch -np 9 --hostfile hosts -- --manifest jobs.json   (survives lost workers)
  imgproc --list-ops;  imgproc completions bash|zsh|fish;  imgproc man
  imgproc keygen ~/.imgproc.key   (then every rank: --secret ~/.imgproc.key)

Exit codes: 0 all items ok; 1 some items failed (the rest were done);
2 usage or manifest error (nothing done); 3 fatal runtime error;
130/143 interrupted by SIGINT/SIGTERM (--resume finishes the run).";

/// imgproc: batch image processing on every core (and, under mpirun, every node).
#[derive(Parser, Debug)]
#[command(name = "imgproc", version, about, after_help = AFTER_HELP)]
pub struct Args {
    /// Manifest (JSON) describing the jobs; `-` reads it from stdin.
    #[arg(long, short = 'm', value_name = "FILE")]
    pub manifest: Option<String>,

    /// Quick mode: an operation to apply, repeatable and applied in order
    /// (e.g. `--op grayscale --op blur:sigma=2`). See --list-ops.
    #[arg(long = "op", value_name = "OP")]
    pub ops: Vec<String>,

    /// Quick mode: input files or globs.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,

    /// Quick mode: read input file names from FILE (`-`: standard input), one per
    /// line, taken as they are (never as globs); with -0 separated by NUL bytes, as
    /// `find -print0` writes them.
    #[arg(long, value_name = "FILE")]
    pub files_from: Option<String>,

    /// With --files-from: names are separated by NUL bytes instead of newlines.
    #[arg(short = '0', long = "null", requires = "files_from")]
    pub null: bool,

    /// Output folder (quick mode: required; with a manifest: overrides its output_dir).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Output format where the manifest does not set one (jpeg, png, webp, tiff, bmp, gif, qoi).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,

    /// JPEG quality where the manifest does not set one.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,

    /// Worker threads [default: all cores].
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,

    /// Validate, read image headers and print the plan without processing.
    #[arg(long)]
    pub dry_run: bool,

    /// List the operations with their parameters, defaults and ranges.
    #[arg(long)]
    pub list_ops: bool,

    /// With --list-ops: print JSON.
    #[arg(long, requires = "list_ops")]
    pub json: bool,

    /// Stop starting new items after the first failure.
    #[arg(long)]
    pub fail_fast: bool,

    /// Skip items whose output file already exists (the cheap check; see --resume).
    #[arg(long, conflicts_with = "resume")]
    pub skip_existing: bool,

    /// Resume an earlier run: skip items that its journal shows done from the same
    /// input with the same ops and settings, whose output is still intact.
    #[arg(long)]
    pub resume: bool,

    /// Under MPI: a worker silent this many seconds is lost and its items go to the
    /// others (0: wait forever).
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub worker_timeout: f64,

    /// Never deal backup copies of slow workers' items to idle workers.
    #[arg(long)]
    pub no_backups: bool,

    /// Largest image accepted, in pixels (checked from the header before decoding).
    #[arg(long, value_name = "N", default_value_t = 1 << 28)]
    pub max_pixels: u64,

    /// Most memory one item may use, in MiB: its input, decoder, ops and encoder
    /// together, estimated from the header before anything is allocated; an item
    /// above it fails alone and says how much it needs.
    #[arg(long, value_name = "MIB", default_value_t = 4096)]
    pub max_memory_mb: u64,

    /// Keep pixels as stored instead of applying EXIF orientation.
    #[arg(long)]
    pub no_auto_orient: bool,

    /// Decode JPEGs at full size even when the first op is a resize that shrinks them
    /// 2x or more. By default such a JPEG is decoded at 1/2, 1/4 or 1/8 scale inside
    /// libjpeg-turbo and resized the rest of the way: several times faster, within
    /// 1 dB PSNR. With this flag outputs equal cv2.imread + cv2.resize.
    #[arg(long)]
    pub no_shrink_on_load: bool,

    /// Write live events to FILE (`-` for stdout) as the run goes: one JSON object per
    /// line, flushed per line (run_started, item_started, item_done, item_failed,
    /// item_skipped, rank_lost, run_finished; see the README).
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,

    /// Write a report to FILE, in the format its extension names: `.html` (a page with
    /// a per-rank timeline, throughput, failures and a gallery of thumbnails, written
    /// into a folder beside it), `.csv` (one row per item), anything else JSON (`-`
    /// for stdout). Give it more than once for several.
    #[arg(long, value_name = "FILE")]
    pub report: Vec<String>,

    /// No progress output (failures are still reported).
    #[arg(long, short = 'q')]
    pub quiet: bool,

    /// Print progress as plain lines even on a terminal.
    #[arg(long)]
    pub progress_lines: bool,

    /// Items in flight per worker, so that none waits for its next item.
    #[arg(long, value_name = "K", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub prefetch: u32,

    /// Under MPI: workers read inputs and write outputs themselves (every host sees the
    /// same paths), so rank 0 stops being the I/O path.
    #[arg(long)]
    pub shared_fs: bool,

    /// Under MPI: seal every message between ranks (images, paths, parameters, results)
    /// with AES-256-GCM under the key in FILE (made by `imgproc keygen FILE`). Every
    /// host needs the same key file at this path; never put a key on the command line.
    #[arg(long, value_name = "FILE")]
    pub secret: Option<PathBuf>,

    /// Where ops run: cpu (rayon threads), opencl (the device, exit 2 if none), or auto
    /// (a GPU for images of 2 MP or more whose pipeline has a filter, canny, resize or
    /// hsv; point ops and copies alone stay on the CPU).
    #[arg(long, value_name = "BACKEND", default_value = "auto", value_parser = ["cpu", "opencl", "auto"])]
    pub backend: String,

    /// OpenCL device index (see --list-devices) [default: 0; under MPI the local rank
    /// modulo the device count].
    #[arg(long, value_name = "N")]
    pub device: Option<usize>,

    /// List OpenCL platforms and devices.
    #[arg(long)]
    pub list_devices: bool,
}

/// Where the work comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A manifest file, or `-`.
    Manifest(String),
    /// `--op` and input files.
    Quick {
        /// Op strings.
        ops: Vec<String>,
        /// Inputs or globs.
        inputs: Vec<String>,
        /// Input files named by --files-from, taken literally.
        listed: Vec<PathBuf>,
        /// Output folder.
        output_dir: PathBuf,
    },
}

/// What the user asked for, after checking the flags fit together.
// Built once per process: boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Config {
    /// Print the op catalog.
    ListOps {
        /// As JSON.
        json: bool,
    },
    /// Print the OpenCL devices.
    ListDevices,
    /// One image through standard input or output (`-`).
    Stream {
        /// Op strings.
        ops: Vec<String>,
        /// The input file (`None`: standard input).
        input: Option<PathBuf>,
        /// The output file (`None`: standard output).
        output: Option<PathBuf>,
        /// Output format.
        format: OutputFormat,
        /// Decoding limits and quality.
        plan: PlanOptions,
        /// `--backend`.
        backend: BackendChoice,
        /// `--device`.
        device: Option<usize>,
    },
    /// Plan (and unless `dry_run`, run) a batch.
    Run {
        /// Where the work comes from.
        source: Source,
        /// Plan settings.
        plan: PlanOptions,
        /// Run settings.
        run: RunOptions,
        /// Only print the plan.
        dry_run: bool,
        /// Report destinations.
        reports: Vec<String>,
        /// Live events destination.
        events: Option<String>,
    },
}

impl Args {
    /// The [`Config::Stream`] for `-` as the output folder or an input, or the usage
    /// error that says what works.
    fn stream(
        &self,
        to_stdout: bool,
        from_stdin: bool,
        output_dir: PathBuf,
        format: Option<OutputFormat>,
    ) -> Result<Config, String> {
        const WORKS: &str = "what works: imgproc --op blur --format png -o - photo.jpg (to standard output), imgproc --op blur --format png -o - - (standard input to standard output), imgproc --op blur --format png -o out/ - (standard input to out/stdin.png)";
        if !self.report.is_empty() || self.dry_run || self.resume || self.skip_existing {
            return Err(format!(
                "--report, --dry-run, --resume and --skip-existing apply to batches, not to one image through - ; {WORKS}"
            ));
        }
        if self.inputs.len() != 1 {
            return Err(format!(
                "{} takes exactly one image, {} given; {WORKS}",
                if to_stdout {
                    "-o -"
                } else {
                    "- (standard input)"
                },
                self.inputs.len()
            ));
        }
        let Some(format) = format else {
            return Err(format!(
                "{} needs --format: there is no file name to take it from; {WORKS}",
                if to_stdout {
                    "-o -"
                } else {
                    "- (standard input)"
                }
            ));
        };
        Ok(Config::Stream {
            ops: self.ops.clone(),
            input: (!from_stdin).then(|| PathBuf::from(&self.inputs[0])),
            output: (!to_stdout).then(|| output_dir.join(format!("stdin.{}", format.extension()))),
            format,
            plan: self.plan_options(Some(format)),
            backend: BackendChoice::from_name(&self.backend).unwrap_or(BackendChoice::Auto),
            device: self.device,
        })
    }

    /// The files `--files-from` names (none without it): lines, or with `-0` NUL-separated
    /// names, empty ones skipped; bytes as they are (Unix file names need not be UTF-8).
    fn listed_files(&self) -> Result<Vec<PathBuf>, String> {
        let Some(from) = &self.files_from else {
            return Ok(Vec::new());
        };
        if self.manifest.is_some() {
            return Err(
                "--files-from is for quick mode (--op): a manifest lists its own inputs".into(),
            );
        }
        let bytes = if from == "-" {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)
                .map_err(|e| format!("--files-from -: cannot read standard input: {e}"))?;
            b
        } else {
            std::fs::read(from).map_err(|e| format!("--files-from {from}: cannot read it: {e}"))?
        };
        let sep = if self.null { b'\0' } else { b'\n' };
        Ok(bytes
            .split(|&b| b == sep)
            .filter(|name| !name.is_empty())
            .map(path_from_bytes)
            .collect())
    }

    /// Plan settings from the flags.
    fn plan_options(&self, format: Option<OutputFormat>) -> PlanOptions {
        PlanOptions {
            output_dir: self.output_dir.clone(),
            decode: DecodeOptions {
                max_pixels: self.max_pixels,
                max_alloc: self.max_memory_mb.saturating_mul(1 << 20),
                auto_orient: !self.no_auto_orient,
                shrink_on_load: !self.no_shrink_on_load,
            },
            quality: self.quality,
            format,
        }
    }

    /// Checks the flags and builds the [`Config`]; the error says what to type instead.
    pub fn into_config(self) -> Result<Config, String> {
        if self.list_ops {
            return Ok(Config::ListOps { json: self.json });
        }
        if self.list_devices {
            return Ok(Config::ListDevices);
        }
        let format = match &self.format {
            Some(f) => Some(OutputFormat::from_name(f).ok_or_else(|| {
                format!(
                    "--format {f}: unknown format; use one of jpeg, png, webp, tiff, bmp, gif, qoi"
                )
            })?),
            None => None,
        };
        let source = match (self.manifest.clone(), self.ops.is_empty()) {
            (Some(_), false) => {
                return Err("--manifest and --op cannot be combined: put the ops in the manifest, or drop --manifest".into())
            }
            (Some(m), true) => {
                if self.output_dir.as_ref().is_some_and(|d| d.as_os_str() == "-") {
                    return Err("-o - (standard output) takes one image in quick mode: imgproc --op blur --format png -o - photo.jpg".into());
                }
                if !self.inputs.is_empty() {
                    return Err(format!(
                        "unexpected input {:?} with --manifest: inputs belong in the manifest's jobs",
                        self.inputs[0]
                    ));
                }
                Source::Manifest(m)
            }
            (None, false) => {
                // Only rank 0 plans: under mpirun the other ranks get no standard input
                // (and a list file may exist on rank 0's host alone), so they read none.
                let planner = crate::transport::launcher_rank() == 0;
                let listed = if planner { self.listed_files()? } else { Vec::new() };
                if planner && self.inputs.is_empty() && listed.is_empty() {
                    return Err(match &self.files_from {
                        Some(f) => format!("--files-from {f} names no file: nothing to do"),
                        None => "--op needs input files: imgproc --op grayscale -o out/ photo.jpg".into(),
                    });
                }
                let Some(output_dir) = self.output_dir.clone() else {
                    return Err("quick mode needs an output folder: add -o DIR, e.g. imgproc --op grayscale -o out/ photo.jpg".into());
                };
                let to_stdout = output_dir.as_os_str() == "-";
                let from_stdin = self.inputs.iter().any(|i| i == "-");
                if (to_stdout || from_stdin) && self.files_from.is_some() {
                    return Err("--files-from runs a batch into a folder: it cannot be combined with an input or output `-`".into());
                }
                if (to_stdout || from_stdin) && self.events.is_some() {
                    return Err("--events follows a batch: it cannot be combined with an input or output `-` (one image)".into());
                }
                if to_stdout || from_stdin {
                    return self.stream(to_stdout, from_stdin, output_dir, format);
                }
                Source::Quick { ops: self.ops.clone(), inputs: self.inputs.clone(), listed, output_dir }
            }
            (None, true) => {
                return Err("nothing to do: give --manifest FILE, or --op OP -o DIR INPUT... (see imgproc --help)".into())
            }
        };
        let to_stdout = self.report.iter().filter(|r| *r == "-").count()
            + usize::from(self.events.as_deref() == Some("-"));
        if to_stdout > 1 {
            return Err("--events - and --report - cannot both write to standard output (nor two reports): send all but one of them to files".into());
        }
        let gallery = self
            .report
            .iter()
            .find(|r| crate::report::is_html(r))
            .map(|r| crate::runner::Gallery {
                dir: crate::report::thumbnail_dir(std::path::Path::new(r)),
                max_items: crate::runner::Gallery::MAX_ITEMS,
            });
        if !(self.worker_timeout.is_finite() && (0.0..=1e6).contains(&self.worker_timeout)) {
            return Err(format!(
                "--worker-timeout {}: use a number of seconds from 0 (never) to 1000000",
                self.worker_timeout
            ));
        }
        let threads = self.threads.map(|t| t as usize).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let progress = if self.quiet {
            Mode::Quiet
        } else if self.progress_lines {
            Mode::Lines
        } else {
            Mode::Auto
        };
        Ok(Config::Run {
            source,
            plan: self.plan_options(format),
            run: RunOptions {
                threads,
                threads_given: self.threads.is_some(),
                fail_fast: self.fail_fast,
                skip_existing: self.skip_existing,
                progress,
                prefetch: self.prefetch as usize,
                shared_fs: self.shared_fs,
                // clap admits only the three names.
                backend: BackendChoice::from_name(&self.backend).unwrap_or(BackendChoice::Auto),
                device: self.device,
                resume: self.resume,
                worker_timeout: (self.worker_timeout > 0.0)
                    .then(|| std::time::Duration::from_secs_f64(self.worker_timeout)),
                backups: !self.no_backups,
                recovery: std::env::var_os(crate::launch::LAUNCHED).is_some(),
                gallery,
                secret: self.secret.clone(),
            },
            dry_run: self.dry_run,
            reports: self.report,
            events: self.events,
        })
    }
}

/// A file name as bytes, as `find` writes it.
#[cfg(unix)]
fn path_from_bytes(name: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(name))
}

/// A file name as bytes (not Unix: taken as UTF-8, invalid bytes replaced).
#[cfg(not(unix))]
fn path_from_bytes(name: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(name).into_owned())
}
