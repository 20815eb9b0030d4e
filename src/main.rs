//! The `imgproc` binary: parse flags, run, map the outcome to an exit code.

use clap::Parser;
use imgproc::cli::{Args, Config, Exit, Source};
use imgproc::manifest::{self, Plan};
use imgproc::ops::{ParamKind, CATALOG};
use imgproc::runner;
use std::process::ExitCode;

fn main() -> ExitCode {
    let code = match Args::parse().into_config() {
        Ok(config) => run(config),
        Err(msg) => {
            eprintln!("imgproc: {msg}");
            Exit::Usage
        }
    };
    ExitCode::from(code as u8)
}

fn run(config: Config) -> Exit {
    match config {
        Config::ListOps { json } => {
            list_ops(json);
            Exit::Ok
        }
        Config::Run {
            source,
            plan,
            run,
            dry_run,
            report,
        } => {
            let planned = match &source {
                Source::Manifest(path) => manifest::load(path, &plan),
                Source::Quick {
                    ops,
                    inputs,
                    output_dir,
                } => manifest::quick(ops, inputs, output_dir, &plan),
            };
            let plan = match planned {
                Ok(p) => p,
                Err(e) => {
                    eprint!("imgproc: {e}");
                    return Exit::Usage;
                }
            };
            if dry_run {
                print_plan(&plan);
                return Exit::Ok;
            }
            let report_data = match runner::run_local(&plan, &run) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("imgproc: {e}");
                    return Exit::Fatal;
                }
            };
            if let Some(path) = report {
                if let Err(e) = report_data.write(&path) {
                    eprintln!("imgproc: cannot write the report to {path}: {e}");
                    return Exit::Fatal;
                }
            }
            if report_data.totals.failed > 0
                || (run.fail_fast && report_data.totals.skipped > 0 && !run.skip_existing)
            {
                Exit::ItemsFailed
            } else {
                Exit::Ok
            }
        }
    }
}

fn print_plan(plan: &Plan) {
    let headers = runner::probe_all(plan);
    let mut total = 0.0;
    for (item, h) in plan.items.iter().zip(&headers) {
        let size = match (h.width, h.height) {
            (Some(w), Some(hh)) => {
                let mp = w as f64 * hh as f64 / 1e6;
                total += mp;
                format!("{w}x{hh} {mp:.2} MP")
            }
            _ => "unreadable header".to_string(),
        };
        println!(
            "{} -> {} [{}] ({size})",
            item.input.display(),
            item.output.display(),
            item.op_names.join(", ")
        );
    }
    println!(
        "{} items, {total:.2} megapixels in total (dry run: nothing written)",
        plan.items.len()
    );
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

/// mimalloc keeps freed pages for reuse: without it every multi-megabyte buffer is
/// mmapped, faulted in page by page and unmapped again (measured: 2-5x slower ops).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
