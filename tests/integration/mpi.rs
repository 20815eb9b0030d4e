//! The real binary under mpirun (Open MPI) with 1, 2 and 4 ranks, oversubscribed and
//! always under a timeout: identical outputs across rank and thread counts and to a run
//! without MPI, exit codes on every rank, and a panicking rank ending the job.
//! These tests need `mpirun`; without it they fail, they do not skip.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(180);

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("imgproc")
}

fn mpirun(np: usize, dir: &Path) -> Command {
    let which = std::process::Command::new("sh")
        .args(["-c", "command -v mpirun"])
        .output()
        .unwrap();
    assert!(
        which.status.success(),
        "mpirun is not installed: scripts/test.sh installs openmpi-bin"
    );
    let mut c = Command::new("mpirun");
    c.current_dir(dir)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .args(["-np", &np.to_string(), "--oversubscribe"])
        .arg(bin())
        .timeout(LIMIT);
    c
}

fn plain(dir: &Path) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(dir).timeout(LIMIT);
    c
}

/// A folder with a manifest over real images: the fixtures, the examples and two corpus photos.
fn workspace() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let images = d.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    for src in [
        root.join("tests/fixtures/photo_rgb.png"),
        root.join("tests/fixtures/graphic_rgba.png"),
        root.join("tests/fixtures/gray_odd.png"),
        root.join("examples/images/LadyBird.jpg"),
        root.join("examples/images/Garden.jpg"),
        root.join("../shared/corpus/photos/Aqua.jpg"),
        root.join("../shared/corpus/photos/FreshFlower.jpg"),
    ] {
        std::fs::copy(&src, images.join(src.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        d.path().join("jobs.json"),
        r#"{"version": 1, "jobs": [
            {"input": "images/*.png", "ops": ["edge_detection"], "output": "edges/{stem}.png"},
            {"input": "images/*.jpg", "ops": ["custom_processing", "resize:width=300"], "output": "hsv/{stem}.jpg"},
            {"input": "images/*", "ops": ["blur", "invert"], "output": "blur/{name}.png"}
        ]}"#,
    )
    .unwrap();
    d
}

/// Every file under `dir` but the run journal, with its bytes, sorted by path.
pub(crate) fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if e.file_name() != ".imgproc-journal" {
                out.push((
                    path.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn outputs_are_identical_across_ranks_threads_and_without_mpi() {
    let ws = workspace();
    plain(ws.path())
        .args(["-m", "jobs.json", "-o", "ref", "-q", "--threads", "2"])
        .assert()
        .success();
    let reference = tree(&ws.path().join("ref"));
    assert_eq!(reference.len(), 14);
    plain(ws.path())
        .args(["-m", "jobs.json", "-o", "t1", "-q", "--threads", "1"])
        .assert()
        .success();
    assert!(
        tree(&ws.path().join("t1")) == reference,
        "--threads 1 differs from --threads 2"
    );
    for np in [1, 2, 4] {
        let out = format!("np{np}");
        mpirun(np, ws.path())
            .args(["-m", "jobs.json", "-o", &out, "-q"])
            .assert()
            .success();
        assert!(
            tree(&ws.path().join(&out)) == reference,
            "mpirun -np {np} differs from the run without MPI"
        );
    }
    mpirun(3, ws.path())
        .args([
            "-m",
            "jobs.json",
            "-o",
            "shared",
            "-q",
            "--shared-fs",
            "--threads",
            "1",
        ])
        .assert()
        .success();
    assert!(
        tree(&ws.path().join("shared")) == reference,
        "--shared-fs differs"
    );
}

#[test]
fn the_report_shows_ranks_load_balance_and_who_did_what() {
    let ws = workspace();
    let out = mpirun(3, ws.path())
        .args(["-m", "jobs.json", "-o", "o", "-q", "--report", "-"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&out).expect("a JSON report on stdout");
    assert_eq!(r["ranks"], 3);
    let detail = r["ranks_detail"].as_array().unwrap();
    assert_eq!(detail.len(), 3);
    assert_eq!(detail[0]["items"], 0, "rank 0 deals, it does not process");
    assert_eq!(
        detail[1]["items"].as_u64().unwrap() + detail[2]["items"].as_u64().unwrap(),
        14
    );
    for d in detail {
        for key in [
            "busy_seconds",
            "idle_seconds",
            "bytes_received",
            "bytes_sent",
            "cpu_seconds",
        ] {
            assert!(d[key].is_number(), "{key} missing in {d}");
        }
        // Each rank's own process: at least its binary and libraries, far below 4 GB.
        let rss = d["peak_rss_mb"].as_f64().expect("peak_rss_mb");
        assert!(rss > 2.0 && rss < 4000.0, "peak_rss_mb {rss} in {d}");
        assert!(!d["host"].as_str().expect("host").is_empty(), "{d}");
    }
    // Each worker says where it runs and with what.
    for d in &detail[1..] {
        assert!(d["threads"].as_u64().expect("threads") >= 1, "{d}");
        assert_eq!(d["backend"], "auto", "{d}");
    }
    let lb = r["totals"]["load_balance"].as_f64().unwrap();
    assert!(lb > 0.0 && lb <= 1.0, "load_balance {lb}");
    let wall = r["wall_seconds"].as_f64().unwrap();
    for item in r["items"].as_array().unwrap() {
        let rank = item["rank"].as_u64().unwrap();
        assert!(rank == 1 || rank == 2, "{item}");
        // Placed on rank 0's clock from the workers' own durations.
        let s = item["started_seconds"].as_f64().expect("started_seconds");
        let e = item["ended_seconds"].as_f64().expect("ended_seconds");
        assert!(0.0 <= s && s <= e && e <= wall, "{s} {e} {wall}: {item}");
    }
}

#[test]
fn an_invalid_manifest_ends_every_rank_with_exit_2() {
    let ws = workspace();
    std::fs::write(
        ws.path().join("bad.json"),
        r#"{"version": 1, "jobs": [{"input": "images/*.png", "ops": ["blurr"]}]}"#,
    )
    .unwrap();
    mpirun(3, ws.path())
        .args(["-m", "bad.json", "-o", "o"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("did you mean \"blur\""));
    assert!(!ws.path().join("o").exists());
}

#[test]
fn files_from_standard_input_reach_rank_0_alone_and_run() {
    // mpirun gives standard input to rank 0 only; the workers must not need it.
    let ws = workspace();
    mpirun(2, ws.path())
        .args(["--files-from", "-", "--op", "invert", "-o", "o", "-q"])
        .write_stdin("images/Aqua.jpg\nimages/Garden.jpg\n")
        .assert()
        .code(0);
    assert!(ws.path().join("o/Aqua.jpg").is_file());
    assert!(ws.path().join("o/Garden.jpg").is_file());
}

#[test]
fn a_failing_item_fails_alone_with_exit_1() {
    let ws = workspace();
    std::fs::write(ws.path().join("images/broken.jpg"), b"not a jpeg").unwrap();
    let out = mpirun(2, ws.path())
        .args([
            "--op",
            "invert",
            "-o",
            "o",
            "-q",
            "--report",
            "-",
            "images/broken.jpg",
            "images/Aqua.jpg",
        ])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["totals"]["failed"], 1);
    assert_eq!(r["totals"]["ok"], 1);
    assert!(ws.path().join("o/Aqua.jpg").is_file());
}

#[test]
fn a_rank_that_panics_ends_the_whole_job_promptly() {
    let ws = workspace();
    let t = std::time::Instant::now();
    // Ranks on this host inherit mpirun's environment.
    let out = mpirun(3, ws.path())
        .env("IMGPROC_FAULT", "panic-rank:1")
        .args(["-m", "jobs.json", "-o", "o", "-q"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the job should fail");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "the job took {:?} to end",
        t.elapsed()
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("injected fault"));
}
