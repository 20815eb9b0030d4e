//! The HTML report in a real browser: headless Chromium loads the page the binary
//! wrote (and the one `scripts/report_html.py` redraws from the JSON report), and the
//! tests check that the console stayed free of errors, that the DOM holds a timeline
//! bar per item run and a pair of loaded thumbnails per gallery item, and keep a
//! screenshot in `target/`. Chromium is driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: fd 3 in, fd 4 out, NUL-terminated JSON), so no port or
//! WebSocket is needed. These tests need Debian's `chromium`: without it they fail,
//! they do not skip (scripts/test.sh installs it).

use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one page may take to load and draw, and one DevTools answer to come.
const LIMIT: Duration = Duration::from_secs(60);

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("imgproc")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A headless Chromium and the one page it shows.
struct Browser {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    /// Console errors, uncaught exceptions and failed loads seen so far.
    errors: Vec<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let (cmd_read, cmd_write) = pipe();
        let (out_read, out_write) = pipe();
        let mut c = Command::new("chromium");
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let (r, w) = (fd(&cmd_read), fd(&out_write));
        // SAFETY: only async-signal-safe calls between fork and exec: the pipe ends
        // become fds 3 and 4, where Chromium's --remote-debugging-pipe looks.
        unsafe {
            c.pre_exec(move || {
                if libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = c.spawn().unwrap_or_else(|e| {
            panic!("cannot start chromium ({e}): scripts/test.sh installs Debian's chromium")
        });
        drop(cmd_read);
        drop(out_write);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(out_read);
            let mut buf = Vec::new();
            while r.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                buf.pop();
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                buf.clear();
            }
        });
        let mut b = Browser {
            child,
            to: cmd_write,
            from: rx,
            next_id: 0,
            session: String::new(),
            errors: Vec::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            b.call(domain, json!({}));
        }
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        b
    }

    /// Sends a command (to the page once attached) and waits for its answer, noting
    /// the errors among the events that come meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        let until = Instant::now() + LIMIT;
        loop {
            let v = self.next_message(until, method);
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    fn next_message(&mut self, until: Instant, waiting_for: &str) -> Value {
        let left = until.saturating_duration_since(Instant::now());
        let v = self
            .from
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("chromium said nothing for {LIMIT:?} ({waiting_for})"));
        self.note(&v);
        v
    }

    fn note(&mut self, v: &Value) {
        let p = &v["params"];
        match v["method"].as_str() {
            Some("Runtime.consoleAPICalled")
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                self.errors.push(format!(
                    "console.{}: {}",
                    p["type"].as_str().unwrap_or(""),
                    p["args"]
                ))
            }
            Some("Runtime.exceptionThrown") => self
                .errors
                .push(format!("exception: {}", p["exceptionDetails"])),
            Some("Log.entryAdded") if p["entry"]["level"] == "error" => self.errors.push(format!(
                "{}: {} {}",
                p["entry"]["source"], p["entry"]["text"], p["entry"]["url"]
            )),
            _ => {}
        }
    }

    /// Loads `page` and waits for its load event; returns the seconds it took.
    fn open(&mut self, page: &Path) -> f64 {
        let t = Instant::now();
        let url = format!("file://{}", page.canonicalize().unwrap().display());
        self.call("Page.navigate", json!({"url": url}));
        let until = Instant::now() + LIMIT;
        while self.next_message(until, "Page.loadEventFired")["method"] != "Page.loadEventFired" {}
        t.elapsed().as_secs_f64()
    }

    /// The value of a JavaScript expression (awaited if it is a promise).
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// A PNG of the page's top (`height` CSS pixels, at most the whole page).
    fn screenshot(&mut self, height: f64) -> Vec<u8> {
        let full = self
            .eval("document.documentElement.scrollHeight")
            .as_f64()
            .unwrap();
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": 1280, "height": height.min(full), "scale": 1}}),
        );
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into `fds`, which the Files then own.
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

fn fd(f: &std::fs::File) -> i32 {
    use std::os::fd::AsRawFd;
    f.as_raw_fd()
}

/// What a drawn report page holds, read from its DOM.
#[derive(Debug, PartialEq)]
struct Drawn {
    bars: u64,
    failed_bars: u64,
    lanes: u64,
    failure_rows: u64,
    figures: u64,
    /// Thumbnails that loaded and decoded (the gallery's are lazy: made eager first).
    loaded: u64,
    images: u64,
}

fn drawn(b: &mut Browser) -> Drawn {
    let v = b.eval(
        r##"(async () => {
            const imgs = [...document.querySelectorAll("#gallery img")];
            imgs.forEach(i => { i.loading = "eager"; });
            const ok = await Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth > 0, () => false)));
            const n = s => document.querySelectorAll(s).length;
            return { drawn: document.documentElement.dataset.drawn === "1",
                     bars: n("#timeline rect.bar"), failed_bars: n("#timeline rect.bar.failed"),
                     lanes: n("#timeline rect.lane"), failure_rows: n("#failures tr.failure"),
                     figures: n("#gallery figure"), images: imgs.length, loaded: ok.filter(x => x).length };
        })()"##,
    );
    assert_eq!(v["drawn"], true, "the page's script did not finish: {v}");
    let n = |k: &str| v[k].as_u64().unwrap();
    Drawn {
        bars: n("bars"),
        failed_bars: n("failed_bars"),
        lanes: n("lanes"),
        failure_rows: n("failure_rows"),
        figures: n("figures"),
        loaded: n("loaded"),
        images: n("images"),
    }
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some(),
        "imgproc died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn target_file(name: &str) -> PathBuf {
    let dir = repo().join("target");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Copies the example manifest and its images into a scratch folder.
fn example(dir: &Path) {
    let src = repo().join("examples");
    std::fs::copy(src.join("jobs.json"), dir.join("jobs.json")).unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    for e in std::fs::read_dir(src.join("images")).unwrap().flatten() {
        std::fs::copy(e.path(), dir.join("images").join(e.file_name())).unwrap();
    }
}

#[test]
fn the_example_manifests_html_report_draws_in_chromium_without_errors() {
    let ws = tempfile::tempdir().unwrap();
    example(ws.path());
    let out = run(
        ws.path(),
        &[
            "--manifest",
            "jobs.json",
            "-q",
            "--threads",
            "2",
            "--report",
            "out/run.html",
            "--report",
            "out/run.json",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_slice(&std::fs::read(ws.path().join("out/run.json")).unwrap()).unwrap();
    let items = report["items"].as_array().unwrap().len() as u64;
    assert_eq!(items, 10);

    let mut b = Browser::start();
    let seconds = b.open(&ws.path().join("out/run.html"));
    let d = drawn(&mut b);
    assert_eq!(
        d,
        Drawn {
            bars: items,
            failed_bars: 0,
            lanes: 2,
            failure_rows: 0,
            figures: items,
            loaded: 2 * items,
            images: 2 * items,
        }
    );
    // A bar's tooltip names its item (made when the pointer reaches the bar).
    let tip = b.eval(
        "(() => { const r = document.querySelector('#timeline rect.bar');
                  r.dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
                  return r.querySelector('title').textContent; })()",
    );
    let tip = tip.as_str().unwrap();
    assert!(
        tip.contains("images/") && tip.contains("rank ") && tip.contains("decode"),
        "{tip}"
    );
    let png = b.screenshot(1720.0);
    std::fs::write(target_file("report-example.png"), &png).unwrap();
    assert!(b.errors.is_empty(), "console errors: {:#?}", b.errors);
    eprintln!("example report: loaded in {seconds:.2} s; screenshot in target/report-example.png");
}

#[test]
fn a_lost_rank_is_marked_on_the_timeline_of_an_mpi_run() {
    let ws = tempfile::tempdir().unwrap();
    example(ws.path());
    // Rank 2 dies on its second batch; rank 1, slowed, outlasts the 2 s timeout.
    let child = super::faults::launch(
        ws.path(),
        3,
        &[
            "-m",
            "jobs.json",
            "-q",
            "--worker-timeout",
            "2",
            "--report",
            "run.html",
            "--report",
            "run.json",
        ],
        &[("IMGPROC_FAULT", "exit-rank:2:2,slow-rank:1:200")],
    );
    let out = super::faults::finish(child, Duration::from_secs(180));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut b = Browser::start();
    b.open(&ws.path().join("run.html"));
    let d = drawn(&mut b);
    // Every item on the timeline, two worker lanes, thumbnails from both ranks.
    assert_eq!((d.bars, d.lanes, d.failed_bars), (10, 2, 0));
    assert_eq!((d.figures, d.loaded), (10, 20));
    let lost = b.eval(
        "[document.querySelectorAll('#timeline .lost-mark').length,
          [...document.querySelectorAll('#timeline .lost-label')].map(t => t.textContent)]",
    );
    assert_eq!(lost[0], 1, "{lost}");
    assert!(lost[1][0].as_str().unwrap().starts_with("rank 2"), "{lost}");
    std::fs::write(target_file("report-lost-rank.png"), b.screenshot(700.0)).unwrap();
    assert!(b.errors.is_empty(), "console errors: {:#?}", b.errors);
}

/// Items a gallery shows at most (`runner::Gallery::MAX_ITEMS`).
const GALLERY_MAX: usize = 2000;

#[test]
fn failures_hostile_names_and_a_sampled_gallery_draw_and_redraw_from_json() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    // More items than a gallery holds, tiny so the run is quick; two broken inputs, one
    // of them named as markup that would run if the page ever wrote names as HTML.
    let png = std::fs::read(repo().join("tests/fixtures/tiny_rgb.png")).unwrap();
    // IMGPROC_REPORT_ITEMS=20000 measures a large run's page (the load times printed).
    let n = std::env::var("IMGPROC_REPORT_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(GALLERY_MAX + 100);
    let mut list = String::new();
    for i in 0..n {
        std::fs::write(dir.join(format!("{i:05}.png")), &png).unwrap();
        list += &format!("in/{i:05}.png\n");
    }
    let hostile = "<img src=x onerror=alert(1)>.png";
    let broken = b"\x89PNG\r\n\x1a\nnot really";
    std::fs::write(dir.join(hostile), broken).unwrap();
    std::fs::write(dir.join("broken.png"), broken).unwrap();
    list += &format!("in/{hostile}\nin/broken.png\n");
    std::fs::write(ws.path().join("list.txt"), list).unwrap();
    let out = run(
        ws.path(),
        &[
            "--op",
            "invert",
            "-o",
            "out",
            "-q",
            "--report",
            "r/run.html",
            "--report",
            "r/run.json",
            "--files-from",
            "list.txt",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let total = n as u64 + 2;
    let shown = GALLERY_MAX as u64;
    let thumbs = std::fs::read_dir(ws.path().join("r/run_thumbs"))
        .unwrap()
        .count() as u64;
    // Items that failed get no thumbnails, so the gallery may show one or two fewer.
    assert!(
        (2 * (shown - 2)..=2 * shown).contains(&thumbs) && thumbs.is_multiple_of(2),
        "{thumbs} thumbnails"
    );
    let html_size = std::fs::metadata(ws.path().join("r/run.html"))
        .unwrap()
        .len();

    // The page the binary wrote, and the one the script redraws from the JSON report.
    let redraw = ws.path().join("r/redrawn.html");
    let py = Command::new("python3")
        .arg(repo().join("scripts/report_html.py"))
        .arg(ws.path().join("r/run.json"))
        .arg(&redraw)
        .output()
        .expect("python3 runs scripts/report_html.py");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let mut seen = Vec::new();
    for page in [ws.path().join("r/run.html"), redraw] {
        let mut b = Browser::start();
        let seconds = b.open(&page);
        let d = drawn(&mut b);
        assert_eq!(d.bars, total, "a bar per item run, failed ones too");
        assert_eq!(d.failed_bars, 2);
        assert_eq!(d.failure_rows, 2);
        assert_eq!(d.figures * 2, thumbs);
        assert_eq!((d.images, d.loaded), (thumbs, thumbs));
        // The hostile name is text in the failures table, never an element.
        let failures = b.eval("document.getElementById('failures').innerText");
        let failures = failures.as_str().unwrap();
        assert!(
            failures.contains(hostile) && failures.contains("in/broken.png"),
            "{failures}"
        );
        assert_eq!(b.eval("document.querySelectorAll('img[src=x]').length"), 0);
        eprintln!(
            "{}: {} items, drawn in {seconds:.2} s",
            page.display(),
            total
        );
        seen.push(d);
        if seen.len() == 1 {
            std::fs::write(target_file("report-failures.png"), b.screenshot(1400.0)).unwrap();
        }
        assert!(
            b.errors.is_empty(),
            "{}: console errors: {:#?}",
            page.display(),
            b.errors
        );
    }
    assert_eq!(seen[0], seen[1], "the redrawn page differs");
    eprintln!("the page of {total} items is {html_size} bytes");
}
