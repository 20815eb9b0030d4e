//! What the `imgproc` command does: turn the parsed flags into a run (in this process,
//! or as one rank of an MPI job), list ops or devices, or stream one image, and map the
//! outcome to an [`Exit`]. The binary (src/main.rs) only sets up the allocator and
//! calls [`main`].

use crate::cli::{Args, Config, Exit, Source};
use crate::error::RunFailure;
use crate::manifest::{self, Plan, PlanOptions};
use crate::memory;
use crate::ops::{opencl, ParamKind, CATALOG};
use crate::pipeline::{self, BackendChoice};
use crate::report::Report;
use crate::runner::{self, RunOptions};
#[cfg(feature = "mpi")]
use crate::sched;
#[cfg(feature = "mpi")]
use crate::transport::mpi as mpi_transport;
#[cfg(feature = "mpi")]
use crate::transport::sealed::{self, SealedMaster, SealedWorker, WorkerRefusal};
#[cfg(feature = "mpi")]
use crate::transport::MasterLink;
use crate::transport::{launched_by_mpi, launcher_rank};
#[cfg(feature = "mpi")]
use crate::transport::{local_rank, local_size};
use crate::{launch, output, signals};
use clap::Parser;
use std::process::ExitCode;

/// Runs the command line of this process (`imgproc ...`, or the subcommands `launch`,
/// `keygen`, `completions` and `man`) and returns its exit code.
pub fn main() -> ExitCode {
    let mut argv = std::env::args_os();
    let first = argv.nth(1);
    match first.as_ref().and_then(|a| a.to_str()) {
        Some("launch") => return ExitCode::from(launch::main(argv.collect()) as u8),
        Some("completions") => return ExitCode::from(completions(argv.collect()) as u8),
        Some("man") => return ExitCode::from(man_page() as u8),
        Some("keygen") => return ExitCode::from(keygen(argv.collect()) as u8),
        _ => {}
    }
    // Before anything starts a thread (see its doc).
    opencl::pin_cpu_device_threads();
    let code = match Args::parse().into_config() {
        Ok(config) => run(config),
        Err(msg) => {
            if launcher_rank() == 0 {
                eprintln!("imgproc: {msg}");
            }
            Exit::Usage
        }
    };
    ExitCode::from(code as u8)
}

/// `imgproc completions SHELL`: the shell's completion script on standard output.
fn completions(args: Vec<std::ffi::OsString>) -> Exit {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let shells = "bash, zsh, fish, elvish or powershell";
    let shell = match args.as_slice() {
        [one] => one.to_str().and_then(|s| s.parse::<Shell>().ok()),
        _ => None,
    };
    let Some(shell) = shell else {
        eprintln!(
            "imgproc: completions takes one shell: {shells}, e.g. `imgproc completions bash > ~/.local/share/bash-completion/completions/imgproc`"
        );
        return Exit::Usage;
    };
    // Into memory first: the generator panics on a write error (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "imgproc", &mut script);
    write_out("completions", &script)
}

/// `imgproc keygen FILE`: a fresh key for `--secret`, readable by its owner only.
fn keygen(args: Vec<std::ffi::OsString>) -> Exit {
    let [path] = args.as_slice() else {
        eprintln!("imgproc: keygen takes one file to create, e.g. `imgproc keygen ~/.imgproc.key`; then copy it to every host (scp -p keeps it private) and run with --secret ~/.imgproc.key");
        return Exit::Usage;
    };
    match crate::secret::keygen(std::path::Path::new(path)) {
        Ok(()) => Exit::Ok,
        Err(e) => {
            eprintln!("imgproc: keygen: {e}");
            Exit::Usage
        }
    }
}

/// `imgproc man`: the manual page (roff) on standard output.
fn man_page() -> Exit {
    use clap::CommandFactory;
    let mut page = Vec::new();
    match clap_mangen::Man::new(Args::command()).render(&mut page) {
        Ok(()) => write_out("man", &page),
        Err(e) => {
            eprintln!("imgproc: man: cannot render the page: {e}");
            Exit::Fatal
        }
    }
}

/// Writes `text` to standard output; a reader that closed the pipe early (`| head`)
/// is not an error.
fn write_out(what: &str, text: &[u8]) -> Exit {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => Exit::Ok,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Exit::Ok,
        Err(e) => {
            eprintln!("imgproc: {what}: cannot write to standard output: {e}");
            Exit::Fatal
        }
    }
}

fn run(config: Config) -> Exit {
    match config {
        Config::ListOps { json } => {
            if launcher_rank() == 0 {
                list_ops(json);
            }
            Exit::Ok
        }
        Config::Stream {
            ops,
            input,
            output,
            format,
            plan,
            backend,
            device,
        } => stream(&ops, input, output, format, &plan, backend, device),
        Config::ListDevices => {
            if launcher_rank() == 0 {
                list_devices();
            }
            Exit::Ok
        }
        Config::Run {
            source,
            plan,
            run,
            dry_run,
            reports,
            events,
        } => {
            if let (Some(target), false, 0) = (&events, dry_run, launcher_rank()) {
                if let Err(e) = crate::events::open(target) {
                    eprintln!("imgproc: --events {target}: cannot write it: {e}");
                    return Exit::Usage;
                }
            }
            if run.backend == BackendChoice::OpenCl && launcher_rank() == 0 {
                // Checked before any work: an explicit OpenCL run without a device is a usage error.
                if let Err(e) = runner::open_device(run.backend, run.device.unwrap_or(0)) {
                    eprintln!("imgproc: --backend opencl: {e}; use --backend cpu or auto, or see imgproc --list-devices");
                    return Exit::Usage;
                }
            }
            if launched_by_mpi() {
                run_mpi(&source, &plan, &run, dry_run, &reports)
            } else {
                run_here(&source, &plan, &run, dry_run, &reports)
            }
        }
    }
}

/// One image through standard input or output: validate the ops, read the input (a
/// regular file, or standard input up to the memory limit), process, and write the
/// output to standard output or atomically to its file.
fn stream(
    ops: &[String],
    input: Option<std::path::PathBuf>,
    output: Option<std::path::PathBuf>,
    format: crate::codec::OutputFormat,
    plan: &PlanOptions,
    backend: BackendChoice,
    device: Option<usize>,
) -> Exit {
    use std::io::{Read, Write};
    let spec = match manifest::stream_spec(ops, format, plan) {
        Ok(s) => s,
        Err(e) => {
            eprint!("imgproc: {e}");
            return Exit::Usage;
        }
    };
    let name = input
        .as_ref()
        .map_or("standard input".to_string(), |p| p.display().to_string());
    let limit = plan.decode.max_alloc;
    let bytes = match &input {
        Some(p) => {
            if !std::fs::metadata(p).is_ok_and(|m| m.is_file()) {
                eprintln!("imgproc: {name}: not a regular file (pipes, devices and folders are not read; use - for standard input)");
                return Exit::Usage;
            }
            std::fs::read(p)
        }
        None => {
            let mut b = Vec::new();
            std::io::stdin()
                .take(limit.saturating_add(1))
                .read_to_end(&mut b)
                .map(|_| b)
        }
    };
    let bytes = match bytes {
        Ok(b) if b.len() as u64 > limit => {
            eprintln!(
                "imgproc: {name}: more than --max-memory-mb ({} MiB) on standard input",
                limit >> 20
            );
            return Exit::ItemsFailed;
        }
        Ok(b) => b,
        Err(e) => {
            eprintln!("imgproc: {name}: cannot read: {e}");
            return Exit::ItemsFailed;
        }
    };
    let gpu = match runner::open_device(backend, device.unwrap_or(0)) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("imgproc: --backend opencl: {e}");
            return Exit::Usage;
        }
    };
    let auto = crate::pipeline::AutoDevice::new(device, 0);
    let backend = match (&gpu, backend) {
        (Some(g), BackendChoice::OpenCl) => crate::pipeline::Backend::OpenCl(g),
        (_, BackendChoice::Auto) => crate::pipeline::Backend::Auto(&auto),
        _ => crate::pipeline::Backend::Cpu,
    };
    let out = match crate::pipeline::process_item_guarded(&spec, &bytes, backend, false) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("imgproc: {name}: {e}");
            return Exit::ItemsFailed;
        }
    };
    if let Some(w) = &out.warning {
        eprintln!("imgproc: {name}: warning: {w}");
    }
    let written = match &output {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out.bytes).and_then(|_| stdout.flush())
        }
        Some(p) => output::write_atomic(p, &out.bytes),
    };
    match written {
        Ok(()) => Exit::Ok,
        Err(e) => {
            let to = output
                .as_ref()
                .map_or("standard output".to_string(), |p| p.display().to_string());
            eprintln!("imgproc: cannot write {to}: {e}");
            Exit::Fatal
        }
    }
}

fn make_plan(source: &Source, opts: &PlanOptions) -> Result<Plan, Exit> {
    let planned = match source {
        Source::Manifest(path) => manifest::load(path, opts),
        Source::Quick {
            ops,
            inputs,
            listed,
            output_dir,
        } => manifest::quick(ops, inputs, listed, output_dir, opts),
    };
    planned.map_err(|e| {
        eprint!("imgproc: {e}");
        Exit::Usage
    })
}

/// Plans the run and, unless `dry_run` (which prints the plan), runs it in this process.
fn run_here(
    source: &Source,
    opts: &PlanOptions,
    run: &RunOptions,
    dry_run: bool,
    reports: &[String],
) -> Exit {
    if let Some(path) = &run.secret {
        // Nothing travels between ranks here; the key is still checked, so that a
        // script's mistake shows before it goes to the cluster.
        if let Err(e) = crate::secret::load(path) {
            eprintln!("imgproc: --secret: {e}");
            return Exit::Usage;
        }
    }
    match make_plan(source, opts) {
        Ok(p) if dry_run => print_plan(&p),
        Ok(p) => finish(runner::run_local(&p, run), reports),
        Err(code) => code,
    }
}

/// Started by an MPI launcher, but built without the `mpi` feature: say so rather than
/// run the whole manifest once per rank.
#[cfg(not(feature = "mpi"))]
fn run_mpi(_: &Source, _: &PlanOptions, _: &RunOptions, _: bool, _: &[String]) -> Exit {
    eprintln!("imgproc: started by an MPI launcher, but this imgproc was built without MPI (cargo feature `mpi`): rebuild it with default features, or run it without mpirun");
    Exit::Usage
}

/// One rank of an MPI job. Rank 0 validates and deals; every other rank works. With one
/// rank, the job runs as a single process would.
#[cfg(feature = "mpi")]
fn run_mpi(
    source: &Source,
    opts: &PlanOptions,
    run: &RunOptions,
    dry_run: bool,
    reports: &[String],
) -> Exit {
    let session = match mpi_transport::Session::init() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("imgproc: {e}");
            return Exit::Fatal;
        }
    };
    mpi_transport::abort_job_on_panic();
    let (rank, size) = (session.rank(), session.size());
    // Fault injection for the tests: IMGPROC_FAULT=panic-rank:N makes rank N panic
    // outside item processing, which must end the whole job promptly.
    if std::env::var("IMGPROC_FAULT").ok().as_deref() == Some(&format!("panic-rank:{rank}")) {
        panic!("injected fault (IMGPROC_FAULT) on rank {rank}");
    }
    if rank != 0 {
        signals::install();
        signals::exit_on_signal();
        let link = session.worker();
        let Some(path) = &run.secret else {
            let mut link = link;
            let end = runner::run_mpi_worker(&mut link, session.host(), local_size(), local_rank());
            return worker_exit(rank, end, run.recovery);
        };
        let key = crate::secret::load(path);
        let host = session.host();
        return match SealedWorker::establish(link, key.as_ref().map_err(Clone::clone), &host) {
            Ok(mut sealed) => {
                let end = runner::run_mpi_worker(&mut sealed, host, local_size(), local_rank());
                worker_exit(rank, end, run.recovery)
            }
            // Rank 0 says why; every rank leaves with the same code.
            Err(WorkerRefusal::Refused) if run.recovery => exit_now(Exit::Usage.code()),
            Err(WorkerRefusal::Refused) => Exit::Usage,
            Err(WorkerRefusal::Failed(e)) => worker_exit(rank, Err(e.into()), run.recovery),
        };
    }
    if size == 1 {
        let code = run_here(source, opts, run, dry_run, reports);
        if run.recovery {
            launch::report_status(code);
        }
        return code;
    }
    // Under recovery a stopped worker leaves without MPI_Finalize, which could wait for
    // a rank that is gone.
    let ending = if run.recovery {
        sched::Ending::Exit
    } else {
        sched::Ending::Finalize
    };
    let plain = session.master();
    let (mut link, early): (Box<dyn MasterLink + '_>, Option<Exit>) = match &run.secret {
        None => (Box::new(plain), None),
        Some(path) => match crate::secret::load(path) {
            Err(e) => {
                eprintln!("imgproc: --secret: {e}");
                let mut plain = plain;
                let _ = sealed::refuse_all(&mut plain, &e);
                (Box::new(plain), Some(Exit::Usage))
            }
            Ok(key) => {
                let stop = &mut || signals::received().is_some();
                match SealedMaster::establish(plain, &key, run.worker_timeout, stop) {
                    Err(e) => {
                        eprintln!("imgproc: --secret: the key check failed: {e}");
                        return Exit::Fatal;
                    }
                    Ok((mut link, refused)) => {
                        for r in &refused {
                            eprintln!("imgproc: --secret: refused {r}");
                        }
                        let early = (!refused.is_empty()).then(|| {
                            let _ = sched::stop_all(&mut link, Exit::Usage.code(), ending);
                            Exit::Usage
                        });
                        (Box::new(link), early)
                    }
                }
            }
        },
    };
    let (code, lost) = match early {
        Some(code) => (code, false),
        None => lead(
            source, opts, run, dry_run, reports, &mut *link, ending, &session,
        ),
    };
    // Every frame is delivered (or given up on) before the job ends.
    drop(link);
    if run.recovery {
        // MPI_Finalize would wait for lost ranks forever, and mpirun's own status
        // means nothing under recovery: tell the launcher, then leave.
        launch::report_status(code);
        exit_now(code.code());
    }
    if lost {
        // Plain mpirun: only an abort ends a job that lost a rank; it exits with this code.
        session.abort(code.code());
    }
    code
}

/// Rank 0 of a job with workers: plans, deals the work over `link`, and writes the
/// reports; returns the exit code and whether a rank was lost (or a signal came).
#[cfg(feature = "mpi")]
#[allow(clippy::too_many_arguments)]
fn lead(
    source: &Source,
    opts: &PlanOptions,
    run: &RunOptions,
    dry_run: bool,
    reports: &[String],
    link: &mut dyn MasterLink,
    ending: sched::Ending,
    session: &mpi_transport::Session,
) -> (Exit, bool) {
    match make_plan(source, opts) {
        Err(code) => {
            // Every rank ends with the same code; none is left waiting.
            let _ = sched::stop_all(link, code.code(), ending);
            (code, false)
        }
        Ok(plan) if dry_run => {
            let code = print_plan(&plan);
            let _ = sched::stop_all(link, 0, ending);
            (code, false)
        }
        Ok(plan) => {
            let result = runner::run_mpi_master(&plan, run, link, session.host(), session.size());
            if result.is_err() {
                let _ = sched::stop_all(link, Exit::Fatal.code(), ending);
            }
            let lost = result
                .as_ref()
                .is_ok_and(|r| !r.lost_ranks.is_empty() || r.signal.is_some());
            (finish(result, reports), lost)
        }
    }
}

/// Ends this process at once, without MPI_Finalize.
#[cfg(feature = "mpi")]
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: _exit ends the process; nothing after it runs.
    unsafe { libc::_exit(code) }
}

/// How a worker rank ends, as the master asked (or on its own if the master is gone).
#[cfg(feature = "mpi")]
fn worker_exit(rank: usize, end: Result<sched::WorkerEnd, RunFailure>, recovery: bool) -> Exit {
    match end {
        Ok(sched::WorkerEnd::Stopped { exit, ending }) => match ending {
            sched::Ending::Finalize => Exit::from_code(exit),
            sched::Ending::Exit => exit_now(exit),
            sched::Ending::Linger => {
                // Rank 0 aborts the job once its report is written; leave anyway if it
                // never does.
                std::thread::sleep(std::time::Duration::from_secs(600));
                exit_now(exit)
            }
        },
        Ok(sched::WorkerEnd::Orphaned { silent }) => {
            eprintln!(
                "imgproc: rank {rank}: rank 0 has been silent for {:.0}s and is presumed dead; this rank gives up (outputs written so far are complete: run again with --resume)",
                silent.as_secs_f64()
            );
            exit_now(Exit::Fatal.code())
        }
        Err(e) => {
            eprintln!("imgproc: rank {rank}: {e}");
            if recovery {
                exit_now(Exit::Fatal.code())
            }
            Exit::Fatal
        }
    }
}

/// Writes the reports, says how the run ended, and the exit code (also the last event).
fn finish(result: Result<Report, RunFailure>, reports: &[String]) -> Exit {
    let ended = result.as_ref().ok().map(|r| {
        (
            r.totals.clone(),
            r.wall_seconds,
            r.lost_ranks.clone(),
            r.interrupted_by.clone(),
        )
    });
    let exit = finish_report(result, reports);
    crate::events::emit("run_finished", || {
        let mut fields = serde_json::json!({ "exit_code": exit.code() });
        if let Some((totals, wall, lost, interrupted)) = ended {
            fields["totals"] = serde_json::json!(totals);
            fields["wall_seconds"] = serde_json::json!(wall);
            fields["lost_ranks"] = serde_json::json!(lost);
            fields["interrupted_by"] = serde_json::json!(interrupted);
        }
        fields
    });
    exit
}

/// How a run that produced `report` exits, its reports written.
fn run_exit(report: &Report) -> Exit {
    if let Some(sig) = report.signal {
        Exit::for_signal(sig)
    } else if report.no_workers {
        Exit::Fatal
    } else if report.totals.failed > 0 {
        // --fail-fast only stops a batch after a failure, which `failed` counts.
        Exit::ItemsFailed
    } else {
        Exit::Ok
    }
}

fn finish_report(result: Result<Report, RunFailure>, reports: &[String]) -> Exit {
    let mut report_data = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("imgproc: {e}");
            return Exit::Fatal;
        }
    };
    let exit = run_exit(&report_data);
    report_data.exit_code = exit.code();
    let mut written = true;
    for path in reports {
        if let Err(e) = report_data.write(path) {
            eprintln!("imgproc: cannot write the report to {path}: {e}");
            written = false;
        }
    }
    if let Some(sig) = report_data.signal {
        // The report is written; nothing else may be.
        output::abandon_temporaries();
        let t = &report_data.totals;
        eprintln!(
            "imgproc: interrupted by {}: {} of {} items done, every output written is complete; run the same command with --resume to do the rest",
            signals::name(sig),
            t.ok + t.failed,
            t.items
        );
        return exit;
    }
    if !written {
        return Exit::Fatal;
    }
    if report_data.no_workers {
        eprintln!(
            "imgproc: every worker rank was lost ({:?}) before the batch was done; outputs written so far are complete: run again with --resume",
            report_data.lost_ranks
        );
    }
    exit
}

/// Prints every item with its size from the header and the memory it needs, and what
/// would fail before any pixel is decoded (an unreadable header, more pixels than
/// `--max-pixels`, more memory than `--max-memory-mb`); exit 1 when anything would.
fn print_plan(plan: &Plan) -> Exit {
    let layouts = runner::probe_layouts(plan);
    let mut total = 0.0;
    let mut failing = 0;
    for (item, layout) in plan.items.iter().zip(&layouts) {
        let size = match layout {
            Some((layout, len)) => {
                let (w, hh) = layout.stored_size();
                let mp = crate::item::megapixels(w, hh);
                total += mp;
                let max = item.spec.decode.max_pixels;
                let need = pipeline::memory_need(&item.spec, *len, layout).peak();
                let limit = item.spec.decode.max_alloc;
                let memory = format!(", needs about {} MiB", memory::mib(need));
                if w as u64 * hh as u64 > max {
                    failing += 1;
                    format!(
                        "{w}x{hh} {mp:.2} MP; WOULD FAIL: above --max-pixels {max} ({:.1} MP)",
                        max as f64 / 1e6
                    )
                } else if need > limit {
                    failing += 1;
                    format!(
                        "{w}x{hh} {mp:.2} MP{memory}; WOULD FAIL: above --max-memory-mb {}",
                        memory::mib(limit)
                    )
                } else {
                    format!("{w}x{hh} {mp:.2} MP{memory}")
                }
            }
            None => {
                failing += 1;
                "WOULD FAIL: the header cannot be read (not an image, or a format imgproc does not read)".to_string()
            }
        };
        println!(
            "{} -> {} [{}] ({size})",
            item.input.display(),
            item.output.display(),
            item.op_names.join(", ")
        );
    }
    println!(
        "{} items, {total:.2} megapixels in total (dry run: nothing written){}",
        plan.items.len(),
        if failing > 0 {
            format!("; {failing} would fail")
        } else {
            String::new()
        }
    );
    if failing > 0 {
        Exit::ItemsFailed
    } else {
        Exit::Ok
    }
}

fn list_devices() {
    match opencl::list_devices() {
        Ok(devices) if devices.is_empty() => println!("OpenCL platforms found, but no device"),
        Ok(devices) => {
            for d in devices {
                let kind = if d.gpu { "GPU" } else { "CPU/other" };
                println!(
                    "{}: {} [{}] on {} (driver {})",
                    d.index, d.name, kind, d.platform, d.driver
                );
            }
        }
        Err(e) => println!("no OpenCL device: {e}"),
    }
}

fn list_ops(json: bool) {
    if json {
        match serde_json::to_string_pretty(CATALOG) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("imgproc: {e}"),
        }
        return;
    }
    for op in CATALOG {
        let aliases: Vec<String> = op
            .aliases
            .iter()
            .map(|(a, p)| {
                if p.is_empty() {
                    a.to_string()
                } else {
                    format!("{a} (= {}:{p})", op.name)
                }
            })
            .collect();
        print!("{}", op.name);
        if !aliases.is_empty() {
            print!("  (alias: {})", aliases.join(", "));
        }
        println!("\n    {}", op.summary);
        for p in op.params {
            let range = match p.kind {
                ParamKind::Int { min, max } => format!("integer {min}..{max}"),
                ParamKind::Float { min, max } => format!("number {min}..{max}"),
                ParamKind::Choice { values } => values.join("|"),
            };
            let default = p
                .default
                .map(|d| format!(", default {d}"))
                .unwrap_or_default();
            println!("    {:<11} {range}{default}: {}", p.name, p.help);
        }
        println!(
            "    16-bit: {}; reference: {}; tolerance: {}",
            if op.keeps_16bit {
                "kept"
            } else {
                "reduced to 8-bit"
            },
            op.reference,
            op.tolerance
        );
    }
}
