//! Live events (`--events FILE`, `-` for standard output): one JSON object per line as
//! the run goes, each line flushed as it is written, so that a dashboard or
//! `imgproc ... --events - | jq` follows a run that nobody watches.
//!
//! Every object has `event` (its kind), `v` (the schema's version, [`VERSION`]) and `t`
//! (seconds since the events started, on rank 0's clock). The kinds and their fields
//! are listed in the README. Only rank 0 writes events. A write that fails (a reader
//! that went away) stops the events with one warning; it never fails the run.

use serde_json::{json, Value};
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// The version of the event schema; it grows when a field changes meaning or goes.
pub const VERSION: u32 = 1;

struct Events {
    out: Box<dyn Write + Send>,
    start: Instant,
}

/// The open event stream of this process, if any.
static EVENTS: Mutex<Option<Events>> = Mutex::new(None);

fn events() -> std::sync::MutexGuard<'static, Option<Events>> {
    EVENTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts writing events to `target` (a file, created or truncated; `-`: standard
/// output).
pub fn open(target: &str) -> std::io::Result<()> {
    let out: Box<dyn Write + Send> = if target == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::File::create(target)?)
    };
    *events() = Some(Events {
        out,
        start: Instant::now(),
    });
    Ok(())
}

/// Whether events are being written.
#[cfg(test)]
fn on() -> bool {
    events().is_some()
}

/// Writes one event of kind `event` with the fields `fields` makes (an object) and
/// flushes it; without events, `fields` is never called.
pub fn emit(event: &str, fields: impl FnOnce() -> Value) {
    let mut guard = events();
    let Some(ev) = guard.as_mut() else {
        return;
    };
    let fields = fields();
    let mut line = json!({
        "event": event,
        "v": VERSION,
        "t": (ev.start.elapsed().as_secs_f64() * 1e3).round() / 1e3,
    });
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    let written = serde_json::to_writer(&mut ev.out, &line)
        .map_err(std::io::Error::from)
        .and_then(|()| ev.out.write_all(b"\n"))
        .and_then(|()| ev.out.flush());
    if let Err(e) = written {
        eprintln!(
            "imgproc: --events: cannot write ({e}); no more events are written, the run goes on"
        );
        *guard = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_event_is_one_flushed_line_with_kind_version_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        open(path.to_str().unwrap()).unwrap();
        assert!(on());
        emit("run_started", || json!({"items": 3}));
        // Flushed at once: readable before anything else happens.
        let text = std::fs::read_to_string(&path).unwrap();
        let line: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["event"], "run_started");
        assert_eq!(line["v"], VERSION);
        assert_eq!(line["items"], 3);
        assert!(line["t"].as_f64().unwrap() >= 0.0);
        emit("item_done", || json!({"input": "a \"quoted\"\nname.png"}));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        *events() = None;
        assert!(!on());
    }
}
