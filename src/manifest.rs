//! The manifest: JSON in, a validated [`Plan`] of work items out.
//!
//! Validation is complete before any image is touched and reports every problem at
//! once, each with its location (`jobs[2].ops[1].sigma`), what is wrong, and what would
//! be right. Quick mode (`--op ... -o DIR files...`) builds the same plan without JSON.

use crate::codec::{DecodeOptions, EncodeOptions, OutputFormat};
use crate::error::shorten;
use crate::ops::{self, Op};
use crate::pipeline::ItemSpec;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// One unit of work: one input file, one pipeline, one output path.
#[derive(Clone, Debug)]
pub struct WorkItem {
    /// Position in the plan (and in the report).
    pub index: usize,
    /// Index of the manifest job it came from.
    pub job: usize,
    /// Input file.
    pub input: PathBuf,
    /// Output file.
    pub output: PathBuf,
    /// What to do with it.
    pub spec: Arc<ItemSpec>,
    /// The ops as the user wrote them, for reports.
    pub op_names: Vec<String>,
}

/// A validated manifest: the items to run.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Every work item, in manifest order.
    pub items: Vec<WorkItem>,
    /// The output folder the items write under (where the run's journal lives).
    pub output_dir: PathBuf,
}

/// One problem found in a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where: a JSON path such as `jobs[2].ops[1].sigma`, or `line 3, column 15`.
    pub location: String,
    /// What is wrong and what would be right.
    pub message: String,
}

/// Everything wrong with a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The manifest's name as the user gave it (`-` for stdin).
    pub source: String,
    /// The problems, in document order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{}: {} problem{} found, nothing was processed:",
            self.source,
            n,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  {}: {}", p.location, p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// Settings from the command line that shape a plan.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    /// `--output-dir`: overrides the manifest's `output_dir`.
    pub output_dir: Option<PathBuf>,
    /// Decoding limits.
    pub decode: DecodeOptions,
    /// `--quality`: used where the manifest gives none. Default 90.
    pub quality: u8,
    /// `--format`: used where the manifest gives none.
    pub format: Option<OutputFormat>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            output_dir: None,
            decode: DecodeOptions::default(),
            quality: 90,
            format: None,
        }
    }
}

struct Ctx {
    problems: Vec<Problem>,
}

impl Ctx {
    fn add(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            location: location.into(),
            message: message.into(),
        });
    }
}

fn check_fields(ctx: &mut Ctx, obj: &Map<String, Value>, path: &str, known: &[&str]) {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            let hint = match crate::error::nearest(key, known.iter().copied()) {
                Some(k) => format!("did you mean \"{k}\"?"),
                None => format!("known fields are {}", known.join(", ")),
            };
            ctx.add(join(path, key), format!("unknown field: {hint}"));
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn quality_of(ctx: &mut Ctx, v: Option<&Value>, path: &str) -> Option<u8> {
    let v = v?;
    match v.as_u64() {
        Some(q) if (1..=100).contains(&q) => Some(q as u8),
        _ => {
            ctx.add(
                path,
                format!("{v} is not a quality: use an integer from 1 to 100"),
            );
            None
        }
    }
}

fn format_of(ctx: &mut Ctx, v: Option<&Value>, path: &str) -> Option<OutputFormat> {
    let v = v?;
    let names: Vec<&str> = OutputFormat::ALL.iter().map(|(n, _)| *n).collect();
    match v.as_str().and_then(OutputFormat::from_name) {
        Some(f) => Some(f),
        None => {
            ctx.add(
                path,
                format!(
                    "{v} is not an output format: use one of {}",
                    names.join(", ")
                ),
            );
            None
        }
    }
}

/// Parses and validates manifest text. `base` is the folder relative paths resolve
/// against (the manifest's folder, or the current folder for stdin).
pub fn parse(
    text: &str,
    source: &str,
    base: &Path,
    opts: &PlanOptions,
) -> Result<Plan, ManifestError> {
    let err = |problems| ManifestError {
        source: source.to_string(),
        problems,
    };
    let root: Value = serde_json::from_str(text).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        err(vec![Problem {
            location: format!("line {}, column {}", e.line(), e.column()),
            message: format!("invalid JSON: {msg}"),
        }])
    })?;
    let mut ctx = Ctx {
        problems: Vec::new(),
    };
    let Some(top) = root.as_object() else {
        return Err(err(vec![Problem {
            location: "(top level)".into(),
            message: "a manifest is a JSON object with \"version\": 1 and \"jobs\": [...]".into(),
        }]));
    };
    check_fields(
        &mut ctx,
        top,
        "",
        &["version", "output_dir", "defaults", "jobs"],
    );
    match top.get("version") {
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) => ctx.add(
            "version",
            format!("{v} is not supported: this imgproc reads version 1"),
        ),
        None => ctx.add("version", "missing: add \"version\": 1"),
    }
    let (out_dir, defaults) = top_level(&mut ctx, top, base, opts);
    let mut items = Vec::new();
    for (j, job) in jobs_of(&mut ctx, top).iter().enumerate() {
        if let Some(job) = parse_job(&mut ctx, j, job, &defaults, base, opts) {
            add_items(&mut ctx, &mut items, job, &out_dir, base, opts);
        }
    }
    finish_plan(ctx, items, &out_dir).map_err(err)
}

/// The manifest-wide settings: `output_dir` (or `-o`) and `defaults`.
struct Defaults {
    quality: Option<u8>,
    format: Option<OutputFormat>,
}

fn top_level(
    ctx: &mut Ctx,
    top: &Map<String, Value>,
    base: &Path,
    opts: &PlanOptions,
) -> (PathBuf, Defaults) {
    let out_dir = match (&opts.output_dir, top.get("output_dir")) {
        (Some(d), _) => d.clone(),
        (None, Some(Value::String(s))) => base.join(s),
        (None, Some(v)) => {
            ctx.add(
                "output_dir",
                format!("{v} is not a path: use a string such as \"out\""),
            );
            base.join("out")
        }
        (None, None) => base.join("out"),
    };
    let mut defaults = Defaults {
        quality: None,
        format: None,
    };
    match top.get("defaults") {
        Some(Value::Object(d)) => {
            check_fields(ctx, d, "defaults", &["quality", "format"]);
            defaults.quality = quality_of(ctx, d.get("quality"), "defaults.quality");
            defaults.format = format_of(ctx, d.get("format"), "defaults.format");
        }
        Some(_) => ctx.add("defaults", "must be an object such as {\"quality\": 90}"),
        None => {}
    }
    (out_dir, defaults)
}

fn jobs_of<'a>(ctx: &mut Ctx, top: &'a Map<String, Value>) -> &'a [Value] {
    match top.get("jobs") {
        Some(Value::Array(a)) if !a.is_empty() => a.as_slice(),
        Some(Value::Array(_)) => {
            ctx.add("jobs", "is empty: add at least one job such as {\"input\": \"a.jpg\", \"ops\": [\"blur\"]}");
            &[]
        }
        Some(_) => {
            ctx.add("jobs", "must be an array of jobs");
            &[]
        }
        None => {
            ctx.add(
                "jobs",
                "missing: add \"jobs\": [{\"input\": \"a.jpg\", \"ops\": [\"blur\"]}]",
            );
            &[]
        }
    }
}

/// One job of the manifest, validated: what `add_items` turns into work items.
struct Job {
    index: usize,
    inputs: Vec<PathBuf>,
    template: Option<String>,
    format: Option<OutputFormat>,
    quality: u8,
    ops: Vec<Op>,
    op_names: Vec<String>,
}

fn parse_job(
    ctx: &mut Ctx,
    j: usize,
    job: &Value,
    defaults: &Defaults,
    base: &Path,
    opts: &PlanOptions,
) -> Option<Job> {
    let path = format!("jobs[{j}]");
    let Some(job) = job.as_object() else {
        ctx.add(&path, "must be an object with \"input\" and \"ops\"");
        return None;
    };
    check_fields(
        ctx,
        job,
        &path,
        &["input", "ops", "output", "quality", "format"],
    );
    let quality = quality_of(ctx, job.get("quality"), &format!("{path}.quality"))
        .or(defaults.quality)
        .unwrap_or(opts.quality);
    let format = format_of(ctx, job.get("format"), &format!("{path}.format"))
        .or(defaults.format)
        .or(opts.format);
    let ops = parse_ops(ctx, job.get("ops"), &path);
    let inputs = match job.get("input") {
        Some(Value::String(s)) => resolve_inputs(ctx, s, base, &format!("{path}.input")),
        Some(_) => {
            ctx.add(format!("{path}.input"), "must be a path or glob string");
            vec![]
        }
        None => {
            ctx.add(
                format!("{path}.input"),
                "missing: give a path or a glob such as \"photos/*.jpg\"",
            );
            vec![]
        }
    };
    let template = match job.get("output") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            ctx.add(format!("{path}.output"), "must be a path string");
            None
        }
        None => None,
    };
    let (ops, op_names) = ops?;
    Some(Job {
        index: j,
        inputs,
        template,
        format,
        quality,
        ops,
        op_names,
    })
}

/// The plan, after the checks across items (links, collisions), or every problem found.
fn finish_plan(mut ctx: Ctx, items: Vec<WorkItem>, out_dir: &Path) -> Result<Plan, Vec<Problem>> {
    check_links(&mut ctx, &items, out_dir);
    check_collisions(&mut ctx, &items);
    if ctx.problems.is_empty() {
        Ok(Plan {
            items,
            output_dir: out_dir.to_path_buf(),
        })
    } else {
        Err(ctx.problems)
    }
}

fn parse_ops(ctx: &mut Ctx, v: Option<&Value>, path: &str) -> Option<(Vec<Op>, Vec<String>)> {
    let Some(list) = v else {
        ctx.add(
            format!("{path}.ops"),
            "missing: give a list such as [\"grayscale\", \"blur:sigma=2\"]",
        );
        return None;
    };
    let Some(list) = list.as_array() else {
        ctx.add(
            format!("{path}.ops"),
            "must be a list such as [\"grayscale\", \"blur:sigma=2\"]",
        );
        return None;
    };
    let mut ops = Vec::new();
    let mut names = Vec::new();
    let mut ok = true;
    for (i, op) in list.iter().enumerate() {
        let at = format!("{path}.ops[{i}]");
        let parsed = match op {
            Value::String(s) => {
                names.push(s.clone());
                ops::parse_op_str(s)
            }
            Value::Object(m) => {
                names.push(op.to_string());
                ops::parse_op_object(m)
            }
            _ => {
                ctx.add(&at, "must be a string (\"blur:sigma=2\") or an object ({\"op\": \"blur\", \"sigma\": 2})");
                ok = false;
                continue;
            }
        };
        match parsed {
            Ok(op) => ops.push(op),
            Err(problems) => {
                ok = false;
                for p in problems {
                    let loc = match p.field {
                        Some(f) => format!("{at}.{f}"),
                        None => at.clone(),
                    };
                    ctx.add(loc, p.message);
                }
            }
        }
    }
    ok.then_some((ops, names))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn resolve_inputs(ctx: &mut Ctx, pattern: &str, base: &Path, at: &str) -> Vec<PathBuf> {
    let full = base.join(pattern);
    if has_glob(pattern) {
        let text = full.to_string_lossy().to_string();
        let paths = match glob::glob(&text) {
            Ok(p) => p,
            Err(e) => {
                ctx.add(at, format!("\"{pattern}\" is not a valid glob: {e}"));
                return vec![];
            }
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for p in paths.filter_map(Result::ok) {
            match special(&p) {
                // Folders matched by a glob are passed over, as before.
                None if p.is_file() => files.push(p),
                None => {}
                Some(what) => ctx.add(
                    at,
                    format!(
                        "\"{pattern}\" matches {}, {what}: imgproc reads regular files only (it never opens pipes, devices or sockets); narrow the glob",
                        shorten(&p.display().to_string())
                    ),
                ),
            }
        }
        files.sort();
        if files.is_empty() {
            ctx.add(
                at,
                format!("\"{pattern}\" matches no file (looked for {text})"),
            );
        }
        files
    } else {
        resolve_file(ctx, &full, pattern, at)
    }
}

/// One input named as it is (`full`, written `pattern` by the user): the file, or a
/// problem that says what it is instead.
fn resolve_file(ctx: &mut Ctx, full: &Path, pattern: &str, at: &str) -> Vec<PathBuf> {
    if let Some(what) = special(full) {
        ctx.add(
            at,
            format!(
                "\"{}\" is {what}: imgproc reads regular files only (it never opens pipes, devices or sockets)",
                shorten(pattern)
            ),
        );
        vec![]
    } else if full.is_file() {
        vec![full.to_path_buf()]
    } else if full.exists() {
        ctx.add(
            at,
            format!(
                "\"{pattern}\" is a folder, not a file: use a glob such as \"{pattern}/*.jpg\""
            ),
        );
        vec![]
    } else {
        ctx.add(
            at,
            format!(
                "\"{pattern}\" does not exist (looked for {})",
                full.display()
            ),
        );
        vec![]
    }
}

/// What `path` is when it is neither a regular file nor a folder (links followed).
fn special(path: &Path) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = std::fs::metadata(path).ok()?.file_type();
    if t.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        None
    }
}

/// `path` with `.` and `..` resolved lexically, made absolute.
fn normalize(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Canonical form of a path that may not exist yet: its deepest existing ancestor
/// canonicalized, the rest appended.
fn canonical_future(path: &Path) -> PathBuf {
    let path = normalize(path);
    let mut existing = path.as_path();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.parent(), existing.file_name()) {
            (Some(p), Some(n)) => {
                rest.push(n.to_owned());
                existing = p;
            }
            _ => break,
        }
    }
    let mut out = existing
        .canonicalize()
        .unwrap_or_else(|_| existing.to_path_buf());
    for n in rest.iter().rev() {
        out.push(n);
    }
    out
}

/// [`canonical_future`] of many paths in few folders: each folder is resolved once
/// (a resolution is a `readlink` per component), each file with one `lstat` (to follow
/// it if it is a link itself).
#[derive(Default)]
struct Canonical {
    folders: HashMap<PathBuf, PathBuf>,
}

impl Canonical {
    fn of(&mut self, path: &Path) -> PathBuf {
        // Absolute first, so that a bare file name has a folder to resolve.
        let path = normalize(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()));
        let is_link = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        match (path.parent(), path.file_name()) {
            (Some(folder), Some(name)) if !is_link => self
                .folders
                .entry(folder.to_path_buf())
                .or_insert_with(|| canonical_future(folder))
                .join(name),
            _ => canonical_future(&path),
        }
    }
}

/// The default output of an input: `job<J>/<input path below the manifest folder>`
/// (an input outside that folder keeps its whole path without the root).
fn default_relative(input: &Path, base: &Path, job: usize) -> PathBuf {
    let input = canonical_future(input);
    let base = canonical_future(base);
    let rel: PathBuf = match input.strip_prefix(&base) {
        Ok(r) => r.to_path_buf(),
        Err(_) => input
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect(),
    };
    Path::new(&format!("job{job}")).join(rel)
}

fn expand(template: &str, input: &Path, index: usize) -> Result<String, String> {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let name = input
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let ext = input
        .extension()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("has an unclosed \"{\"".into());
        };
        match &after[..close] {
            "stem" => out.push_str(&stem),
            "name" => out.push_str(&name),
            "ext" => out.push_str(&ext),
            "index" => out.push_str(&index.to_string()),
            other => {
                return Err(format!("has an unknown placeholder {{{other}}}: use {{stem}}, {{name}}, {{ext}} or {{index}}"))
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn add_items(
    ctx: &mut Ctx,
    items: &mut Vec<WorkItem>,
    job: Job,
    out_dir: &Path,
    base: &Path,
    opts: &PlanOptions,
) {
    let at = format!("jobs[{}].output", job.index);
    let mut specs: HashMap<OutputFormat, Arc<ItemSpec>> = HashMap::new();
    for (i, input) in job.inputs.iter().enumerate() {
        let Some((output, fmt)) = output_of(ctx, &job, &at, i, input, out_dir, base) else {
            return;
        };
        let spec = specs
            .entry(fmt)
            .or_insert_with(|| {
                Arc::new(ItemSpec {
                    ops: job.ops.clone(),
                    decode: opts.decode,
                    encode: EncodeOptions {
                        format: fmt,
                        quality: job.quality,
                    },
                })
            })
            .clone();
        items.push(WorkItem {
            index: items.len(),
            job: job.index,
            input: input.clone(),
            output,
            spec,
            op_names: job.op_names.clone(),
        });
    }
}

/// The output path of the `i`-th input of `job` and its format; `None` (with the
/// problem added at `at`) where the template is bad, the path leaves output_dir, or
/// the format cannot be told or contradicts the extension.
fn output_of(
    ctx: &mut Ctx,
    job: &Job,
    at: &str,
    i: usize,
    input: &Path,
    out_dir: &Path,
    base: &Path,
) -> Option<(PathBuf, OutputFormat)> {
    let (template, format) = (job.template.as_deref(), job.format);
    let rel = match template {
        Some(t) => match expand(t, input, i + 1) {
            Ok(s) => PathBuf::from(s),
            Err(msg) => {
                ctx.add(at, format!("\"{t}\" {msg}"));
                return None;
            }
        },
        None => {
            let mut p = default_relative(input, base, job.index);
            if let Some(f) = format {
                p.set_extension(f.extension());
            }
            p
        }
    };
    if let Some(why) = escapes(&rel) {
        ctx.add(
            at,
            format!(
                "{} resolves to {}, outside output_dir {}: {why}; outputs must stay inside output_dir",
                shorten(&rel.display().to_string()),
                shorten(&normalize(&out_dir.join(&rel)).display().to_string()),
                out_dir.display()
            ),
        );
        return None;
    }
    let output = out_dir.join(rel);
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_string())
        .unwrap_or_default();
    let from_ext = OutputFormat::from_extension(&ext);
    let fmt = match (format, from_ext) {
        (Some(f), Some(e)) if f != e => {
            ctx.add(
                at,
                format!(
                    "{} ends in .{ext} but the format is {:?}: make them agree",
                    output.display(),
                    f
                ),
            );
            return None;
        }
        (Some(f), _) => f,
        (None, Some(e)) => e,
        (None, None) => {
            let exts: Vec<&str> = OutputFormat::ALL
                .iter()
                .map(|(_, f)| f.extension())
                .collect();
            let what = if template.is_some() {
                "the output"
            } else {
                "the input (the default output keeps its extension)"
            };
            ctx.add(
            at,
                format!(
                    "cannot tell the output format of {}: {what} has no writable extension; use .{} or set \"format\"",
                    output.display(),
                    exts.join(", .")
                ),
            );
            return None;
        }
    };
    Some((output, fmt))
}

/// Why an output path (relative to output_dir, after templates) would leave output_dir,
/// read lexically: an absolute path, or more `..` than folders before them.
fn escapes(rel: &Path) -> Option<&'static str> {
    let mut depth = 0usize;
    for c in rel.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return Some("its \"..\" climbs above output_dir"),
            },
            Component::RootDir | Component::Prefix(_) => return Some("it is an absolute path"),
        }
    }
    None
}

/// Refuses outputs whose existing folders lead outside output_dir through a symbolic
/// link: a link planted inside output_dir (by another user of a shared folder) must
/// not redirect imgproc's writes elsewhere. output_dir itself may be a link.
fn check_links(ctx: &mut Ctx, items: &[WorkItem], out_dir: &Path) {
    let Ok(root) = std::fs::canonicalize(out_dir) else {
        // Nothing exists below a folder that does not exist.
        return;
    };
    let mut seen: HashMap<PathBuf, bool> = HashMap::new();
    let mut reported = std::collections::HashSet::new();
    for it in items {
        // The deepest folder of the output's path that exists.
        let mut dir = it.output.parent().map(Path::to_path_buf);
        while let Some(d) = &dir {
            if d.exists() || d.as_os_str().is_empty() {
                break;
            }
            dir = d.parent().map(Path::to_path_buf);
        }
        let Some(dir) = dir else { continue };
        let inside = *seen.entry(dir.clone()).or_insert_with(|| {
            std::fs::canonicalize(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &dir
            })
            .map(|c| c.starts_with(&root))
            .unwrap_or(false)
        });
        if !inside && reported.insert(it.job) {
            let real = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
            ctx.add(
                format!("jobs[{}].output", it.job),
                format!(
                    "{} is in {}, which leads outside output_dir {} (to {}) through a symbolic link: outputs are never written through links; write to a real folder inside output_dir",
                    shorten(&it.output.display().to_string()),
                    dir.display(),
                    out_dir.display(),
                    real.display()
                ),
            );
        }
    }
}

fn check_collisions(ctx: &mut Ctx, items: &[WorkItem]) {
    let mut canonical = Canonical::default();
    let inputs: HashMap<PathBuf, usize> = items
        .iter()
        .map(|it| (canonical.of(&it.input), it.job))
        .collect();
    let mut outputs: HashMap<PathBuf, &WorkItem> = HashMap::new();
    for it in items {
        let out = canonical.of(&it.output);
        if let Some(job) = inputs.get(&out) {
            ctx.add(
                format!("jobs[{}].output", it.job),
                format!(
                    "{} is also an input (of jobs[{job}]): write outputs to another folder or name",
                    it.output.display()
                ),
            );
        }
        if let Some(first) = outputs.get(&out) {
            let hint = if first.job == it.job {
                "add {stem} or {index} to the output template"
            } else {
                "give one of the jobs a different output"
            };
            ctx.add(
                format!("jobs[{}].output", it.job),
                format!(
                    "{} is written by {} and by {}: {hint}",
                    it.output.display(),
                    first.input.display(),
                    it.input.display()
                ),
            );
        } else {
            outputs.insert(out, it);
        }
    }
}

/// Reads a manifest file (or stdin for `-`) and validates it.
pub fn load(path: &str, opts: &PlanOptions) -> Result<Plan, ManifestError> {
    let fail = |msg: String| ManifestError {
        source: path.to_string(),
        problems: vec![Problem {
            location: "(file)".into(),
            message: msg,
        }],
    };
    if path == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| fail(format!("cannot read standard input: {e}")))?;
        let base = std::env::current_dir().unwrap_or_default();
        parse(&text, "<stdin>", &base, opts)
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(format!("cannot read the manifest: {e}")))?;
        let base = Path::new(path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let base = if base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base
        };
        parse(&text, path, &base, opts)
    }
}

/// Builds the plan of quick mode: the same ops for every input, outputs in `out_dir`
/// under the input's file name (with the extension of `opts.format` if given).
/// `listed` are files named by `--files-from`: taken as they are, never as globs.
pub fn quick(
    op_texts: &[String],
    inputs: &[String],
    listed: &[PathBuf],
    out_dir: &Path,
    opts: &PlanOptions,
) -> Result<Plan, ManifestError> {
    let mut ctx = Ctx {
        problems: Vec::new(),
    };
    let values: Vec<Value> = op_texts.iter().map(|s| Value::String(s.clone())).collect();
    let ops = parse_ops(&mut ctx, Some(&Value::Array(values)), "--op");
    let cwd = PathBuf::from(".");
    let mut files = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        files.extend(resolve_inputs(
            &mut ctx,
            input,
            &cwd,
            &format!("input {}", i + 1),
        ));
    }
    for (i, name) in listed.iter().enumerate() {
        let at = format!("--files-from name {}", i + 1);
        files.extend(resolve_file(
            &mut ctx,
            &cwd.join(name),
            &name.to_string_lossy(),
            &at,
        ));
    }
    let template = match opts.format {
        Some(f) => format!("{{stem}}.{}", f.extension()),
        None => "{name}".to_string(),
    };
    let mut items = Vec::new();
    if let Some((ops, names)) = ops {
        let local = PlanOptions {
            output_dir: Some(out_dir.to_path_buf()),
            ..opts.clone()
        };
        let job = Job {
            index: 0,
            inputs: files,
            template: Some(template),
            format: opts.format,
            quality: opts.quality,
            ops,
            op_names: names,
        };
        add_items(&mut ctx, &mut items, job, out_dir, &cwd, &local);
    }
    finish_plan(ctx, items, out_dir).map_err(command_line_error)
}

/// Problems found on the command line, their locations without the manifest's job prefix.
fn command_line_error(mut problems: Vec<Problem>) -> ManifestError {
    for p in &mut problems {
        if p.location == "jobs[0].output" {
            p.location = "output".into();
        }
        if let Some(rest) = p.location.strip_prefix("--op.ops") {
            p.location = format!("--op{rest}");
        }
    }
    ManifestError {
        source: "command line".into(),
        problems,
    }
}

/// The spec of a single streamed item (`-` as input or output): the `--op` strings,
/// validated as in quick mode, and the given output format.
pub fn stream_spec(
    op_texts: &[String],
    format: OutputFormat,
    opts: &PlanOptions,
) -> Result<ItemSpec, ManifestError> {
    let mut ctx = Ctx {
        problems: Vec::new(),
    };
    let values: Vec<Value> = op_texts.iter().map(|s| Value::String(s.clone())).collect();
    match parse_ops(&mut ctx, Some(&Value::Array(values)), "--op") {
        Some((ops, _)) if ctx.problems.is_empty() => Ok(ItemSpec {
            ops,
            decode: opts.decode,
            encode: EncodeOptions {
                format,
                quality: opts.quality,
            },
        }),
        _ => Err(command_line_error(ctx.problems)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for n in ["a.jpg", "b.jpg", "c.png"] {
            std::fs::write(d.path().join(n), b"x").unwrap();
        }
        d
    }

    #[test]
    fn reports_every_problem_with_its_location() {
        let d = fixture_dir();
        let text = r#"{"version": 1, "jobs": [
            {"input": "a.jpg", "ops": ["blur", {"op": "blur", "sigma": -3}]},
            {"input": "missing.jpg", "ops": ["grayscal"]},
            {"input": "*.jpg", "ops": [], "output": "same.png", "colour": 1}
        ]}"#;
        let e = parse(text, "m.json", d.path(), &PlanOptions::default()).unwrap_err();
        let locs: Vec<&str> = e.problems.iter().map(|p| p.location.as_str()).collect();
        assert!(locs.contains(&"jobs[0].ops[1].sigma"), "{locs:?}");
        assert!(locs.contains(&"jobs[1].input"), "{locs:?}");
        assert!(locs.contains(&"jobs[1].ops[0]"), "{locs:?}");
        assert!(locs.contains(&"jobs[2].colour"), "{locs:?}");
        assert!(locs.contains(&"jobs[2].output"), "{locs:?}");
        assert!(e.to_string().contains("did you mean \"grayscale\""), "{e}");
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let e = parse(
            "{\n  \"version\": 1,\n  \"jobs\": [,]\n}",
            "m.json",
            Path::new("."),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.problems[0].location, "line 3, column 12");
    }

    #[test]
    fn templates_and_defaults_resolve() {
        let d = fixture_dir();
        let text = r#"{"version": 1, "output_dir": "o", "jobs": [
            {"input": "*.jpg", "ops": ["invert"], "output": "x/{stem}_{index}.png"},
            {"input": "a.jpg", "ops": ["invert"]}
        ]}"#;
        let plan = parse(text, "m.json", d.path(), &PlanOptions::default()).unwrap();
        let outs: Vec<PathBuf> = plan
            .items
            .iter()
            .map(|i| i.output.strip_prefix(d.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            outs,
            vec![
                PathBuf::from("o/x/a_1.png"),
                PathBuf::from("o/x/b_2.png"),
                PathBuf::from("o/job1/a.jpg")
            ]
        );
        assert_eq!(plan.items[0].spec.encode.format, OutputFormat::Png);
        assert_eq!(plan.items[2].spec.encode.format, OutputFormat::Jpeg);
    }

    #[test]
    fn output_onto_an_input_is_refused() {
        let d = fixture_dir();
        let text = r#"{"version": 1, "output_dir": ".", "jobs": [{"input": "c.png", "ops": ["invert"], "output": "c.png"}]}"#;
        let e = parse(text, "m.json", d.path(), &PlanOptions::default()).unwrap_err();
        assert!(e.problems[0].message.contains("is also an input"), "{e}");
    }
}
