//! Real faults against the real binary: a worker killed with SIGKILL, stopped with
//! SIGSTOP, cut off from the network (../shared/netns), throttled, or dying through the
//! fault hook; rank 0 killed and the run resumed; `--resume` against changed ops and
//! damaged outputs; SIGINT and SIGTERM. Every run is compared byte for byte with a
//! clean run without MPI, and checked for its exit code, stray temporary files and
//! stray processes. These tests need mpirun (and root for the network namespaces);
//! without them they fail, they do not skip.

use super::mpi::tree;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(super) fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("imgproc")
}

pub(super) fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

/// A folder with 30 corpus photos (each photo twice) and a manifest that blurs and
/// traces edges into PNGs: a few seconds of work on two cores.
pub(super) fn workspace() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let images = d.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let photos = shared().join("corpus/photos");
    let mut n = 0;
    for e in std::fs::read_dir(&photos).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".jpg") {
            for copy in ["a", "b"] {
                std::fs::copy(e.path(), images.join(format!("{stem}_{copy}.jpg"))).unwrap();
                n += 1;
            }
        }
    }
    assert!(n >= 20, "the corpus has too few photos ({n})");
    write_manifest(d.path(), "jobs.json", &["blur", "edge_detection"], false);
    d
}

fn write_manifest(dir: &Path, name: &str, ops: &[&str], broken: bool) {
    let ops: Vec<String> = ops.iter().map(|o| format!("{o:?}")).collect();
    let mut jobs = vec![format!(
        r#"{{"input": "images/*.jpg", "ops": [{}], "output": "{{stem}}.png"}}"#,
        ops.join(", ")
    )];
    if broken {
        std::fs::write(dir.join("broken.jpg"), b"not an image").unwrap();
        jobs.push(r#"{"input": "broken.jpg", "ops": ["invert"], "output": "broken.png"}"#.into());
    }
    std::fs::write(
        dir.join(name),
        format!(r#"{{"version": 1, "jobs": [{}]}}"#, jobs.join(",\n")),
    )
    .unwrap();
}

fn names(t: &[(String, Vec<u8>)]) -> Vec<&str> {
    t.iter().map(|(n, _)| n.as_str()).collect()
}

/// Asserts that `dir` holds exactly the clean run's outputs, byte for byte.
pub(super) fn assert_same(dir: &Path, reference: &[(String, Vec<u8>)], what: &str) {
    let got = tree(dir);
    assert_eq!(names(&got), names(reference), "{what}: other files");
    for ((n, a), (_, b)) in got.iter().zip(reference) {
        assert!(a == b, "{what}: {n} differs from the clean run");
    }
}

pub(super) fn assert_no_temporaries(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            assert!(
                !name.ends_with(".imgproc-tmp"),
                "temporary file left: {name}"
            );
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// The clean run without MPI.
pub(super) fn reference(ws: &Path, manifest: &str) -> Vec<(String, Vec<u8>)> {
    let out = Command::new(bin())
        .current_dir(ws)
        .args(["-m", manifest, "-o", "ref", "-q"])
        .output()
        .unwrap();
    assert!(out.status.code().unwrap_or(-1) <= 1, "{out:?}");
    tree(&ws.join("ref"))
}

pub(super) fn ompi(c: &mut Command) -> &mut Command {
    c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
}

/// `imgproc launch --oversubscribe -np N -- ARGS`, started.
pub(super) fn launch(ws: &Path, np: usize, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut c = Command::new(bin());
    ompi(&mut c)
        .current_dir(ws)
        .args(["launch", "--oversubscribe", "-np", &np.to_string(), "--"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().expect("imgproc launch starts")
}

/// Waits for `child` at most `limit`; kills it and fails past that.
pub(super) fn finish(mut child: Child, limit: Duration) -> Output {
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of the imgproc ranks whose command line contains `marker`, with their rank.
fn ranks(marker: &str) -> Vec<(i32, usize)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if !cmd.contains(marker)
            || cmd.contains(" launch ")
            || !cmd.starts_with(&*bin().to_string_lossy())
        {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let rank = String::from_utf8_lossy(&env)
            .split('\0')
            .find_map(|v| v.strip_prefix("OMPI_COMM_WORLD_RANK=")?.parse().ok());
        if let Some(rank) = rank {
            out.push((pid, rank));
        }
    }
    out
}

/// Waits until the rank `rank` of the job marked `marker` runs and an output exists.
fn wait_for_work(marker: &str, rank: usize, out_dir: &Path) -> i32 {
    let t = Instant::now();
    loop {
        let pid = ranks(marker).into_iter().find(|r| r.1 == rank).map(|r| r.0);
        let started = std::fs::read_dir(out_dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".png"))
            })
            .unwrap_or(false);
        if let (Some(pid), true) = (pid, started) {
            return pid;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the job never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill sends a signal; nothing else.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill {pid}");
}

/// No rank of the job marked `marker` is left (a few seconds' grace for exiting ones).
pub(super) fn assert_no_strays(marker: &str) {
    let t = Instant::now();
    loop {
        let left: Vec<(i32, usize)> = ranks(marker)
            .into_iter()
            .filter(|(pid, _)| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // Zombies are gone already; only their parent has not reaped them.
                !stat.contains(") Z ")
            })
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "ranks left running: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Lines in the journal of the output folder `dir`.
fn journal_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join(".imgproc-journal"))
        .map(|j| j.lines().filter(|l| !l.is_empty()).count())
        .unwrap_or(0)
}

pub(super) fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).expect("a JSON report")
}

pub(super) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub(super) const LIMIT: Duration = Duration::from_secs(240);

#[test]
fn launch_survives_a_worker_killed_with_sigkill() {
    let ws = workspace();
    let reference = reference(ws.path(), "jobs.json");
    let child = launch(
        ws.path(),
        3,
        &[
            "-m",
            "jobs.json",
            "-o",
            "killed",
            "--worker-timeout",
            "3",
            "--report",
            "killed.json",
            "--events",
            "killed.jsonl",
        ],
        // The survivor slowed down, so that the run outlasts the timeout after the kill.
        &[("IMGPROC_FAULT", "slow-rank:2:200")],
    );
    let pid = wait_for_work("-o killed", 1, &ws.path().join("killed"));
    signal(pid, libc::SIGKILL);
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&ws.path().join("killed"), &reference, "after kill -9");
    let r = report(&ws.path().join("killed.json"));
    assert_eq!(r["lost_ranks"], serde_json::json!([1]));
    assert_eq!(r["ranks_detail"][1]["state"], "lost");
    assert_eq!(r["ranks_detail"][2]["state"], "ok");
    assert_eq!(r["totals"]["ok"], reference.len());
    assert!(stderr(&out).contains("rank 1 lost at"), "{}", stderr(&out));
    // The live events told the same story as it happened.
    let events = std::fs::read_to_string(ws.path().join("killed.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let lost: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "rank_lost")
        .collect();
    assert_eq!(lost.len(), 1, "{events:?}");
    assert_eq!(lost[0]["rank"], 1);
    let last = events.last().unwrap();
    assert_eq!(
        (&last["event"], &last["exit_code"]),
        (&"run_finished".into(), &0.into())
    );
    let done = events.iter().filter(|e| e["event"] == "item_done").count();
    assert_eq!(done, reference.len());
    assert_no_temporaries(&ws.path().join("killed"));
    assert_no_strays("-o killed");
}

#[test]
fn a_stopped_worker_is_lost_and_its_late_results_are_discarded() {
    let ws = workspace();
    let reference = reference(ws.path(), "jobs.json");
    let child = launch(
        ws.path(),
        3,
        &[
            "-m",
            "jobs.json",
            "-o",
            "stopped",
            "--worker-timeout",
            "2",
            "--report",
            "stopped.json",
        ],
        // The survivor slowed down, so that the run outlasts the timeout.
        &[("IMGPROC_FAULT", "slow-rank:1:200")],
    );
    let pid = wait_for_work("-o stopped", 2, &ws.path().join("stopped"));
    signal(pid, libc::SIGSTOP);
    // Wake it once it has been declared lost (2 s), while the other still works.
    std::thread::sleep(Duration::from_secs(4));
    signal(pid, libc::SIGCONT);
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&ws.path().join("stopped"), &reference, "after kill -STOP");
    let r = report(&ws.path().join("stopped.json"));
    assert_eq!(r["lost_ranks"], serde_json::json!([2]));
    // Every output was committed once: the journal has one line per item.
    assert_eq!(journal_lines(&ws.path().join("stopped")), reference.len());
    assert_no_temporaries(&ws.path().join("stopped"));
    assert_no_strays("-o stopped");
}

#[test]
fn a_hung_worker_is_lost_through_the_fault_hook() {
    let ws = workspace();
    let reference = reference(ws.path(), "jobs.json");
    let child = launch(
        ws.path(),
        3,
        &[
            "-m",
            "jobs.json",
            "-o",
            "hung",
            "-q",
            "--worker-timeout",
            "2",
            "--report",
            "hung.json",
        ],
        &[("IMGPROC_FAULT", "hang-rank:1:2,slow-rank:2:200")],
    );
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&ws.path().join("hung"), &reference, "after a hang");
    assert_eq!(
        report(&ws.path().join("hung.json"))["lost_ranks"],
        serde_json::json!([1])
    );
    assert_no_strays("-o hung");
}

#[test]
fn launch_exits_with_rank_0s_code_when_a_rank_is_lost() {
    let ws = workspace();
    write_manifest(ws.path(), "broken.json", &["blur", "edge_detection"], true);
    let reference = reference(ws.path(), "broken.json");
    // Exit 1: one broken input, one worker dying on its second batch.
    let child = launch(
        ws.path(),
        3,
        &[
            "-m",
            "broken.json",
            "-o",
            "one",
            "-q",
            "--worker-timeout",
            "2",
            "--report",
            "one.json",
        ],
        &[("IMGPROC_FAULT", "exit-rank:2:2,slow-rank:1:200")],
    );
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("broken.jpg"), "{}", stderr(&out));
    assert_same(
        &ws.path().join("one"),
        &reference,
        "exit 1 with a lost rank",
    );
    let r = report(&ws.path().join("one.json"));
    assert_eq!(r["lost_ranks"], serde_json::json!([2]));
    assert_eq!(r["totals"]["failed"], 1);
    // Exit 2: an invalid manifest, a worker dead from the start.
    std::fs::write(
        ws.path().join("bad.json"),
        r#"{"version": 1, "jobs": [{"input": "images/*.jpg", "ops": ["blurr"]}]}"#,
    )
    .unwrap();
    let child = launch(
        ws.path(),
        3,
        &["-m", "bad.json", "-o", "two", "--worker-timeout", "2"],
        &[("IMGPROC_FAULT", "exit-rank:1:0")],
    );
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("did you mean \"blur\""));
    assert!(!ws.path().join("two").exists());
    assert_no_strays("-o one");
    assert_no_strays("-o two");
}

#[test]
fn a_slow_worker_gets_backup_copies_and_each_output_is_written_once() {
    let ws = workspace();
    let reference = reference(ws.path(), "jobs.json");
    // Rank 1 takes 20 s per item: without backups the run would wait for it.
    let t = Instant::now();
    let child = launch(
        ws.path(),
        3,
        &[
            "-m",
            "jobs.json",
            "-o",
            "slow",
            "-q",
            "--report",
            "slow.json",
        ],
        &[("IMGPROC_FAULT", "slow-rank:1:20000")],
    );
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(200));
    assert_same(&ws.path().join("slow"), &reference, "with a slow worker");
    let r = report(&ws.path().join("slow.json"));
    assert!(
        r["lost_ranks"].as_array().unwrap().is_empty(),
        "{}",
        r["lost_ranks"]
    );
    let backups = r["totals"]["backup_copies"].as_u64().unwrap();
    let wins = r["totals"]["backup_wins"].as_u64().unwrap();
    assert!(backups >= 1 && wins >= 1, "backups {backups}, wins {wins}");
    let won: Vec<&serde_json::Value> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["backup_won"] == true)
        .collect();
    assert!(won.iter().all(|i| i["rank"] == 2 && i["copies"] == 2));
    assert_eq!(journal_lines(&ws.path().join("slow")), reference.len());
    assert_no_strays("-o slow");
}

#[test]
fn rank_0_killed_then_resume_finishes_with_identical_outputs() {
    let ws = workspace();
    let reference = reference(ws.path(), "jobs.json");
    let child = launch(
        ws.path(),
        3,
        &["-m", "jobs.json", "-o", "r0", "-q", "--worker-timeout", "2"],
        &[],
    );
    let pid = wait_for_work("-o r0", 0, &ws.path().join("r0"));
    // Rank 0 journals its outputs about once a second: wait for the first lines.
    let r0 = ws.path().join("r0");
    let t = Instant::now();
    while journal_lines(&r0) == 0 {
        assert!(t.elapsed() < Duration::from_secs(60), "nothing journaled");
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(pid, libc::SIGKILL);
    let journaled = journal_lines(&r0);
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    assert_no_strays("-o r0");
    let done_before = tree(&ws.path().join("r0")).len();
    assert!(done_before < reference.len());
    let out = Command::new(bin())
        .current_dir(ws.path())
        .args([
            "-m",
            "jobs.json",
            "-o",
            "r0",
            "--resume",
            "--report",
            "r0.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(
        &ws.path().join("r0"),
        &reference,
        "after rank 0 was killed and --resume",
    );
    let r = report(&ws.path().join("r0.json"));
    let skipped = r["totals"]["skipped"].as_u64().unwrap() as usize;
    // Every journaled output is trusted; one written but not yet journaled when rank 0
    // died is redone.
    assert!(
        skipped >= journaled.max(1) && skipped <= done_before,
        "skipped {skipped}, journaled {journaled}, done {done_before}"
    );
    assert!(
        stderr(&out).contains("already done, skipped"),
        "{}",
        stderr(&out)
    );
    assert_no_temporaries(&ws.path().join("r0"));
}

#[test]
fn resume_redoes_changed_ops_changed_inputs_and_damaged_outputs_only() {
    let ws = workspace();
    let run = |manifest: &str, extra: &[&str]| {
        Command::new(bin())
            .current_dir(ws.path())
            .args(["-m", manifest, "-o", "out", "--report", "r.json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run("jobs.json", &[]);
    assert_eq!(out.status.code(), Some(0));
    let reference = tree(&ws.path().join("out"));
    let n = reference.len();
    // Nothing changed: everything is skipped, and no rate is claimed for it.
    let out = run("jobs.json", &["--resume"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!stderr(&out).contains("MP/s"), "{}", stderr(&out));
    assert_eq!(report(&ws.path().join("r.json"))["totals"]["skipped"], n);
    // A truncated output, one with a flipped byte, a missing one, and a touched input.
    let outs: Vec<PathBuf> = reference
        .iter()
        .map(|(p, _)| ws.path().join("out").join(p))
        .collect();
    let b = std::fs::read(&outs[0]).unwrap();
    std::fs::write(&outs[0], &b[..b.len() / 2]).unwrap();
    let mut b = std::fs::read(&outs[1]).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&outs[1], &b).unwrap();
    std::fs::remove_file(&outs[2]).unwrap();
    let stem = reference[3].0.strip_suffix(".png").unwrap();
    let input = ws.path().join(format!("images/{stem}.jpg"));
    let bytes = std::fs::read(&input).unwrap();
    std::fs::write(&input, bytes).unwrap();
    let out = run("jobs.json", &["--resume"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{} of {n} items already done, skipped; 4 to do",
            n - 4
        )),
        "{err}"
    );
    assert!(
        err.contains("3 output missing or changed") && err.contains("1 input changed"),
        "{err}"
    );
    assert_eq!(
        report(&ws.path().join("r.json"))["totals"]["skipped"],
        n - 4
    );
    assert_same(
        &ws.path().join("out"),
        &reference,
        "after resuming damaged outputs",
    );
    // Other ops for the same outputs: everything is redone, and equals a clean run.
    write_manifest(ws.path(), "other.json", &["blur", "invert"], false);
    let out = run("other.json", &["--resume"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains(&format!("{n} ops or settings changed")),
        "{}",
        stderr(&out)
    );
    let out = Command::new(bin())
        .current_dir(ws.path())
        .args(["-m", "other.json", "-o", "clean", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_same(
        &ws.path().join("out"),
        &tree(&ws.path().join("clean")),
        "changed ops",
    );
    // --skip-existing trusts any file and says how many it skipped.
    let out = run("jobs.json", &["--skip-existing"]);
    assert!(stderr(&out).contains(&format!("--skip-existing: {n} of {n} items skipped")));
}

#[test]
fn sigint_and_sigterm_keep_what_was_committed_and_resume_finishes() {
    let ws = workspace();
    let reference = reference(ws.path(), "jobs.json");
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let dir = format!("sig{sig}");
        let rep = format!("sig{sig}.json");
        let child = Command::new(bin())
            .current_dir(ws.path())
            .args(["-m", "jobs.json", "-o", &dir, "--report", &rep])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while !ws.path().join(&dir).is_dir() || tree(&ws.path().join(&dir)).is_empty() {
            assert!(t.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(child.id() as i32, sig);
        let out = finish(child, LIMIT);
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("interrupted by SIG"),
            "{}",
            stderr(&out)
        );
        assert!(stderr(&out).contains("--resume"));
        assert_no_temporaries(&ws.path().join(&dir));
        let r = report(&ws.path().join(&rep));
        assert!(r["interrupted_by"].as_str().unwrap().starts_with("SIG"));
        // What is there is complete and equal to the clean run's.
        for (name, bytes) in tree(&ws.path().join(&dir)) {
            let want = &reference.iter().find(|r| r.0 == name).unwrap().1;
            assert!(&bytes == want, "{name} differs after {sig}");
        }
        let out = Command::new(bin())
            .current_dir(ws.path())
            .args(["-m", "jobs.json", "-o", &dir, "-q", "--resume"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert_same(
            &ws.path().join(&dir),
            &reference,
            "after a signal and --resume",
        );
    }
    // The same through the launcher: it passes the signal on, rank 0 saves its report.
    let child = launch(
        ws.path(),
        3,
        &["-m", "jobs.json", "-o", "lsig", "--report", "lsig.json"],
        &[],
    );
    wait_for_work("-o lsig", 1, &ws.path().join("lsig"));
    signal(child.id() as i32, libc::SIGINT);
    let out = finish(child, LIMIT);
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(
        report(&ws.path().join("lsig.json"))["interrupted_by"],
        "SIGINT"
    );
    assert_no_temporaries(&ws.path().join("lsig"));
    assert_no_strays("-o lsig");
}

/// The simulated cluster (three network namespaces); torn down even if the test fails.
/// One test at a time has it: the others wait.
pub(super) struct Cluster {
    _only: std::sync::MutexGuard<'static, ()>,
}

static CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Cluster {
    pub(super) fn up() -> Cluster {
        let only = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let script = shared().join("netns/cluster");
        let _ = Command::new(&script).arg("down").status();
        let st = Command::new(&script).args(["up", "3"]).status().unwrap();
        assert!(
            st.success(),
            "../shared/netns/cluster up 3 failed (needs root and iproute2)"
        );
        Cluster { _only: only }
    }
    fn link(&self, host: &str, state: &str) {
        let st = Command::new(shared().join("netns/cluster"))
            .args(["link", host, state])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // An Open MPI daemon on a host whose link was cut never hears that the job
        // ended: end it with the cluster.
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.starts_with("orted") && cmd.contains("10.77.0.") {
                // SAFETY: sends a signal; the process may have gone already.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new(shared().join("netns/cluster"))
            .arg("down")
            .status();
    }
}

#[test]
fn launch_survives_a_cut_network_link_between_hosts() {
    let ws = workspace();
    let reference = reference(ws.path(), "jobs.json");
    let cluster = Cluster::up();
    let child = launch_netns(
        ws.path(),
        &[
            "-m",
            "jobs.json",
            "-o",
            "cut",
            "--worker-timeout",
            "5",
            "--report",
            "cut.json",
        ],
        // Rank 1 slowed down, so that the run outlasts the timeout after the cut.
        &[("IMGPROC_FAULT", "slow-rank:1:300")],
    );
    // Rank 2 runs on h3.
    wait_for_work("-o cut", 2, &ws.path().join("cut"));
    cluster.link("h3", "down");
    let out = finish(child, LIMIT);
    cluster.link("h3", "up");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_same(&ws.path().join("cut"), &reference, "after a cut link");
    assert!(stderr(&out).contains("rank 2 lost"), "{}", stderr(&out));
    assert_eq!(
        report(&ws.path().join("cut.json"))["lost_ranks"],
        serde_json::json!([2])
    );
    assert_no_strays("-o cut");
}

/// `imgproc launch` over the simulated cluster, rank i on host h(i+1).
pub(super) fn launch_netns(ws: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let net = shared().join("netns");
    let mut c = Command::new(bin());
    ompi(&mut c)
        .current_dir(ws)
        .env("IMGPROC_MPIRUN", net.join("mpirun"))
        .args(["launch", "--hostfile"])
        .arg(net.join("hostfile"))
        .args(["-np", "3"])
        // Remote ranks see only what mpirun exports.
        .args(env.iter().flat_map(|(k, _)| ["-x", k]))
        .arg("--")
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().expect("imgproc launch starts")
}
