//! The run journal: what `--resume` may trust.
//!
//! Every run appends one JSON line per committed output to a hidden file in the output
//! folder ([`FILE_NAME`]), as it commits it, so any run, however it ended, can be
//! resumed. A line records the output (its path below the output folder, size and
//! CRC-32), the input it was made from (path, size, modification time in ns) and
//! everything that decides the output's bytes: the item's spec (ops with every
//! parameter, format, quality, decoding limits and orientation) and imgproc's version.
//! An item is skipped on resume only when all of that still matches and the output file
//! still has the recorded size and checksum. Lines are appended with one write each and
//! read back tolerantly: a line cut short by a crash is ignored, and the last line for
//! an output wins.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// The journal's file name inside the output folder.
pub const FILE_NAME: &str = ".imgproc-journal";

/// Size and modification time of an input, to notice that it changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputId {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i128,
}

impl InputId {
    /// Reads the identity of the file at `path`.
    pub fn of(path: &Path) -> Option<InputId> {
        let m = std::fs::metadata(path).ok()?;
        let t = m.modified().ok()?;
        let ns = match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        Some(InputId {
            size: m.len(),
            mtime_ns: ns,
        })
    }
}

/// One committed output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Output path below the output folder.
    pub output: String,
    /// Input path as planned.
    pub input: String,
    /// The input when it was read.
    pub input_id: InputId,
    /// The item's spec (ops, format, quality, decoding settings).
    pub spec: String,
    /// imgproc's version.
    pub version: String,
    /// Output size.
    pub output_size: u64,
    /// CRC-32 of the output.
    pub output_crc: u32,
}

/// Why an item is redone on resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Redo {
    /// No journal line for its output.
    NotRecorded,
    /// The input's path, size or modification time changed.
    InputChanged,
    /// Ops, format, quality, decoding settings or imgproc's version changed.
    SettingsChanged,
    /// The output file is gone, or its size or checksum changed.
    OutputChanged,
}

impl Redo {
    /// A few words for the summary.
    pub fn describe(self) -> &'static str {
        match self {
            Redo::NotRecorded => "not done before",
            Redo::InputChanged => "input changed",
            Redo::SettingsChanged => "ops or settings changed",
            Redo::OutputChanged => "output missing or changed",
        }
    }
}

/// The key of an output in the journal: its path below `dir` when it is there.
pub fn key(dir: &Path, output: &Path) -> String {
    output
        .strip_prefix(dir)
        .unwrap_or(output)
        .display()
        .to_string()
}

/// Reads the journal in `dir`: the last entry per output. A missing journal is empty.
pub fn read(dir: &Path) -> std::io::Result<HashMap<String, Entry>> {
    let file = match File::open(dir.join(FILE_NAME)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut map = HashMap::new();
    for line in std::io::BufReader::new(file).split(b'\n') {
        let line = line?;
        // A torn or foreign line is not evidence of anything.
        if let Ok(e) = serde_json::from_slice::<Entry>(&line) {
            map.insert(e.output.clone(), e);
        }
    }
    Ok(map)
}

/// CRC-32 and size of the file at `path`.
pub fn crc_file(path: &Path) -> std::io::Result<(u64, u32)> {
    let mut f = File::open(path)?;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((size, h.finalize()))
}

/// CRC-32 of `bytes`.
pub fn crc(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Checks an item against its journal entry: `None` when its output can be trusted.
pub fn check(entry: Option<&Entry>, input: &Path, spec: &str, output: &Path) -> Option<Redo> {
    let Some(e) = entry else {
        return Some(Redo::NotRecorded);
    };
    if e.spec != spec || e.version != env!("CARGO_PKG_VERSION") {
        return Some(Redo::SettingsChanged);
    }
    if e.input != input.display().to_string() || InputId::of(input) != Some(e.input_id) {
        return Some(Redo::InputChanged);
    }
    // The size first: a truncated output is caught without reading it.
    match std::fs::symlink_metadata(output) {
        Ok(m) if m.is_file() && m.len() == e.output_size => {}
        _ => return Some(Redo::OutputChanged),
    }
    match crc_file(output) {
        Ok((size, crc)) if size == e.output_size && crc == e.output_crc => None,
        _ => Some(Redo::OutputChanged),
    }
}

/// The journal being appended to.
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Opens (creating) the journal in `dir` for appending.
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(FILE_NAME);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(Journal { file, path })
    }

    /// Appends one entry with a single write, so a crash leaves at most one torn line.
    pub fn record(&mut self, e: &Entry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(e).map_err(std::io::Error::other)?;
        // A line torn by an earlier crash must not swallow this one.
        line.insert(0, b'\n');
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Flushes the journal to disk.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Where the journal is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes committed outputs durable and journals them on a thread of its own, so that
/// rank 0 keeps taking results while the disk catches up (`syncfs` on a busy shared
/// filesystem can take many seconds, and a rank 0 that stopped reading would stall
/// every worker's send).
///
/// Outputs arrive already renamed into place; about once a second (or every 512) the
/// thread runs one `syncfs` per output folder, then appends their lines: the journal
/// never names an output that a power loss could take back.
pub struct Flusher {
    tx: Option<std::sync::mpsc::Sender<(Entry, PathBuf)>>,
    handle: Option<std::thread::JoinHandle<Result<(), String>>>,
}

impl Flusher {
    /// Starts the thread that owns `journal`.
    pub fn start(mut journal: Journal) -> Flusher {
        let (tx, rx) = std::sync::mpsc::channel::<(Entry, PathBuf)>();
        let handle = std::thread::Builder::new()
            .name("imgproc-journal".into())
            .spawn(move || {
                use std::sync::mpsc::RecvTimeoutError;
                let mut batch: Vec<(Entry, PathBuf)> = Vec::new();
                let mut last = std::time::Instant::now();
                loop {
                    let msg = rx.recv_timeout(std::time::Duration::from_millis(200));
                    let closed = matches!(msg, Err(RecvTimeoutError::Disconnected));
                    if let Ok(m) = msg {
                        batch.push(m);
                    }
                    let due = closed
                        || batch.len() >= 512
                        || last.elapsed() >= std::time::Duration::from_secs(1);
                    if due && !batch.is_empty() {
                        let dirs: std::collections::BTreeSet<&Path> =
                            batch.iter().map(|b| b.1.as_path()).collect();
                        crate::output::sync_dirs(dirs)
                            .map_err(|e| format!("cannot flush the outputs to disk: {e}"))?;
                        for (e, _) in batch.drain(..) {
                            journal.record(&e).map_err(|err| {
                                format!(
                                    "cannot append to the journal {}: {err}",
                                    journal.path().display()
                                )
                            })?;
                        }
                        last = std::time::Instant::now();
                    }
                    if closed {
                        return journal.sync().map_err(|e| {
                            format!("cannot flush the journal {}: {e}", journal.path().display())
                        });
                    }
                }
            })
            .ok();
        Flusher {
            tx: Some(tx),
            handle,
        }
    }

    /// Queues the line of an output written under `dir`.
    pub fn add(&self, entry: Entry, dir: PathBuf) {
        if let Some(tx) = &self.tx {
            // After a failure the thread is gone; the failure is reported by `finish`.
            let _ = tx.send((entry, dir));
        }
    }

    /// Flushes what is queued and stops the thread; the first failure, if any.
    pub fn finish(mut self) -> Result<(), String> {
        drop(self.tx.take());
        match self.handle.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err("the journal thread panicked".into())),
            None => Err("the journal thread could not be started".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(out: &str, dir: &Path) -> Entry {
        let input = dir.join("in.png");
        Entry {
            output: out.into(),
            input: input.display().to_string(),
            input_id: InputId::of(&input).unwrap(),
            spec: "S".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            output_size: 5,
            output_crc: crc(b"hello"),
        }
    }

    #[test]
    fn records_read_back_last_wins_and_torn_lines_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("in.png"), b"x").unwrap();
        let mut j = Journal::open(d.path()).unwrap();
        let mut a = entry("a.png", d.path());
        j.record(&a).unwrap();
        a.output_size = 9;
        j.record(&a).unwrap();
        j.record(&entry("b.png", d.path())).unwrap();
        drop(j);
        // A crash in the middle of a line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(FILE_NAME))
            .unwrap();
        f.write_all(b"{\"output\":\"c.png\",\"inp").unwrap();
        drop(f);
        let mut j = Journal::open(d.path()).unwrap();
        j.record(&entry("d.png", d.path())).unwrap();
        let m = read(d.path()).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m["a.png"].output_size, 9);
        assert!(m.contains_key("d.png"));
    }

    #[test]
    fn check_trusts_only_an_unchanged_input_spec_and_output() {
        let d = tempfile::tempdir().unwrap();
        let input = d.path().join("in.png");
        std::fs::write(&input, b"x").unwrap();
        let out = d.path().join("a.png");
        std::fs::write(&out, b"hello").unwrap();
        let e = entry("a.png", d.path());
        assert_eq!(check(Some(&e), &input, "S", &out), None);
        assert_eq!(check(None, &input, "S", &out), Some(Redo::NotRecorded));
        assert_eq!(
            check(Some(&e), &input, "T", &out),
            Some(Redo::SettingsChanged)
        );
        std::fs::write(&out, b"hellO").unwrap();
        assert_eq!(
            check(Some(&e), &input, "S", &out),
            Some(Redo::OutputChanged)
        );
        std::fs::write(&out, b"hell").unwrap();
        assert_eq!(
            check(Some(&e), &input, "S", &out),
            Some(Redo::OutputChanged)
        );
        std::fs::write(&out, b"hello").unwrap();
        std::fs::write(&input, b"xy").unwrap();
        assert_eq!(check(Some(&e), &input, "S", &out), Some(Redo::InputChanged));
    }
}
