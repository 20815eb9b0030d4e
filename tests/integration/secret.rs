//! `--secret` end to end: what crosses the simulated cluster's bridge (captured with
//! tcpdump) with and without it, ranks with another key or none, and messages altered
//! or replayed on the way (the transport's test hook). Every run's outputs are compared
//! byte for byte with a clean run without MPI. These tests need mpirun, root and
//! tcpdump (scripts/lib.sh installs it); without them they fail, they do not skip.

use super::faults::{
    assert_no_strays, assert_no_temporaries, assert_same, bin, finish, launch, launch_netns, ompi,
    reference, report, stderr, workspace, Cluster, LIMIT,
};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// `imgproc keygen DIR/NAME`.
fn keygen(dir: &Path, name: &str) {
    let st = Command::new(bin())
        .arg("keygen")
        .arg(dir.join(name))
        .status()
        .unwrap();
    assert!(st.success());
}

/// Runs `run` while tcpdump records every packet on the cluster's bridge; returns the
/// capture's bytes.
fn capture(file: &Path, run: impl FnOnce()) -> Vec<u8> {
    let mut dump = Command::new("ip")
        .args([
            "netns",
            "exec",
            "imgproc-br",
            "tcpdump",
            "-i",
            "br0",
            "-s",
            "0",
        ])
        // Stay root, so that it can write into the test's private folder.
        .args(["-Z", "root", "-U", "-w"])
        .arg(file)
        // 128 MB of kernel buffer: with the default 2 MB it drops a fifth of the packets
        // while the ranks keep both cores busy (measured).
        .args(["-B", "131072"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump starts (apt install tcpdump)");
    // It says so once it listens.
    let mut line = String::new();
    let mut err = BufReader::new(dump.stderr.take().unwrap());
    while !line.contains("listening on") {
        line.clear();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "tcpdump ended before it listened"
        );
    }
    run();
    // SAFETY: sends a signal to our own child.
    unsafe { libc::kill(dump.id() as i32, libc::SIGINT) };
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    dump.wait().unwrap();
    // A capture with holes proves nothing about what it missed.
    assert!(
        rest.lines()
            .any(|l| l.trim() == "0 packets dropped by kernel"),
        "tcpdump missed packets: {rest}"
    );
    std::fs::read(file).unwrap()
}

/// How many of `needles` occur in `hay`.
fn found(hay: &[u8], needles: &[Vec<u8>]) -> usize {
    needles
        .iter()
        .filter(|n| hay.windows(n.len()).any(|w| w == &n[..]))
        .count()
}

/// The first 32 bytes of every file in `dir` (for a JPEG: its start-of-image marker and
/// header; 32 bytes so that no ciphertext matches by chance, as the 3-byte marker
/// alone does about once in 16 MB).
fn heads(dir: &Path) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap()[..32].to_vec())
        .collect();
    v.sort();
    v
}

#[test]
fn sealed_traffic_between_hosts_hides_images_names_and_results() {
    let ws = workspace();
    let dir = ws.path();
    let reference = reference(dir, "jobs.json");
    keygen(dir, "key");
    let inputs = heads(&dir.join("images"));
    assert!(inputs.iter().all(|h| h.starts_with(b"\xff\xd8\xff")));
    let names: Vec<Vec<u8>> = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_encoded_bytes())
        .collect();
    let input_bytes: u64 = std::fs::read_dir(dir.join("images"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let _cluster = Cluster::up();
    let run = |out: &str, extra: &[&str]| {
        let mut args = vec!["-m", "jobs.json", "-o", out, "-q"];
        args.extend_from_slice(extra);
        let o = finish(launch_netns(dir, &args, &[]), LIMIT);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    };
    let plain = capture(&dir.join("plain.pcap"), || run("plain", &[]));
    let sealed = capture(&dir.join("sealed.pcap"), || {
        run("sealed", &["--secret", "key"])
    });
    assert_same(&dir.join("plain"), &reference, "without --secret");
    assert_same(&dir.join("sealed"), &reference, "with --secret");
    let outputs = heads(&dir.join("sealed"));
    // Without --secret the images and their names cross the bridge as they are (so
    // this test can fail)...
    for (what, needles) in [
        ("inputs", &inputs),
        ("names", &names),
        ("outputs", &outputs),
    ] {
        let n = found(&plain, needles);
        assert!(
            n * 2 >= needles.len(),
            "without --secret only {n} of {} {what} were seen on the wire",
            needles.len()
        );
    }
    // ... with it, every image went through the bridge, and none of it can be read.
    assert!(
        sealed.len() as u64 > input_bytes,
        "the sealed run's capture ({} bytes) is smaller than its inputs ({input_bytes})",
        sealed.len()
    );
    for (what, needles) in [
        ("inputs", &inputs),
        ("names", &names),
        ("outputs", &outputs),
    ] {
        assert_eq!(
            found(&sealed, needles),
            0,
            "{what} seen on the wire with --secret"
        );
    }
}

/// `mpirun -np 2 imgproc ARGS --secret A : -np 1 imgproc ARGS --secret B`: rank 2 gets
/// another key.
fn two_keys(dir: &Path, out: &str, a: &str, b: &str) -> std::process::Output {
    let mut c = Command::new("mpirun");
    ompi(&mut c).current_dir(dir).arg("--oversubscribe");
    for (np, key) in [("2", a), ("1", b)] {
        if np == "1" {
            c.arg(":");
        }
        c.args(["-np", np]).arg(bin());
        c.args(["-m", "jobs.json", "-o", out, "-q", "--secret", key]);
    }
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    finish(child, LIMIT)
}

#[test]
fn a_rank_with_another_key_or_none_is_refused_and_nothing_is_done() {
    let ws = workspace();
    let dir = ws.path();
    keygen(dir, "k1");
    keygen(dir, "k2");
    let o = two_keys(dir, "mixed", "k1", "k2");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refused rank 2") && err.contains("its key differs from rank 0's"),
        "{err}"
    );
    assert!(!dir.join("mixed").exists(), "a refused run wrote outputs");
    // A worker whose host lacks the key file says so through rank 0.
    let o = two_keys(dir, "missing", "k1", "nowhere");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refused rank 2") && err.contains("cannot read the key file nowhere"),
        "{err}"
    );
    // Rank 0 without its key, and a key others can read, stop every rank.
    let o = two_keys(dir, "none", "nowhere", "nowhere");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("imgproc keygen nowhere"),
        "{}",
        stderr(&o)
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("k2"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = two_keys(dir, "open", "k2", "k2");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600 k2"), "{}", stderr(&o));
    for out in ["missing", "none", "open"] {
        assert!(
            !dir.join(out).exists(),
            "{out}: a refused run wrote outputs"
        );
    }
    assert_no_strays("-o mixed");
}

#[test]
fn an_altered_or_replayed_message_is_refused_and_its_worker_lost() {
    let ws = workspace();
    let dir = ws.path();
    let reference = reference(dir, "jobs.json");
    keygen(dir, "key");
    let cases = [
        // A result from rank 2 altered on the wire: rank 0 refuses it.
        ("flip:2:3", 2, "a message from rank 2 failed authentication"),
        // A message of rank 1's sent twice: the copy is out of sequence.
        (
            "replay:1:2",
            1,
            "a message from rank 1 arrived out of sequence",
        ),
        // Tasks from rank 0 altered: their worker refuses them and stops.
        ("flip:0:4", 0, "a message from rank 0 failed authentication"),
    ];
    for (hook, lost, why) in cases {
        let out = format!("t{}", hook.replace(':', "_"));
        let report_file = format!("{out}.json");
        let args = [
            "-m",
            "jobs.json",
            "-o",
            &out,
            "--secret",
            "key",
            "--worker-timeout",
            "3",
            "--report",
            &report_file,
        ];
        let o = finish(
            launch(dir, 3, &args, &[("IMGPROC_TEST_TAMPER", hook)]),
            LIMIT,
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{hook}: {err}");
        assert!(err.contains(why), "{hook}: {err}");
        // Nothing derived from the refused message was written: the outputs are the
        // clean run's, each once.
        assert_same(&dir.join(&out), &reference, hook);
        assert_no_temporaries(&dir.join(&out));
        let lost_ranks = &report(&dir.join(&report_file))["lost_ranks"];
        let n_lost = lost_ranks.as_array().map_or(0, Vec::len);
        if lost == 0 {
            // The worker that refused rank 0's message left; its batch went to the
            // other as a backup, which may end the run before its silence counts.
            assert!(n_lost <= 1, "{hook}: {err}");
        } else {
            assert_eq!(n_lost, 1, "{hook}: {err}");
            assert_eq!(lost_ranks[0], lost, "{hook}: {err}");
            assert!(err.contains(&format!("rank {lost} lost")), "{hook}: {err}");
        }
        assert_no_strays(&format!("-o {out}"));
    }
}
