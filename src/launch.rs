//! `imgproc launch [MPIRUN ARGS] -- [IMGPROC ARGS]`: an MPI job that survives lost ranks.
//!
//! A plain `mpirun` ends the whole job when one rank dies. The launcher runs
//! `${IMGPROC_MPIRUN:-mpirun}` with what the detected MPI needs to keep the other ranks
//! running (Open MPI: `--enable-recovery`), and this same executable on every rank.
//! Rank 0 then re-deals a lost worker's items ([`crate::sched`]).
//!
//! Under recovery mpirun's own exit status says nothing (Open MPI 4.1 exits 0 even
//! after `MPI_Abort(2)`), so rank 0 reports its exit code to the launcher twice: in a
//! status file (when it shares the launcher's filesystem) and in a line on its stderr
//! carrying a per-run random token, which mpirun forwards from any host. The launcher
//! drops that line, forwards the rest of stderr, and exits with rank 0's code. If mpirun
//! lingers after rank 0 has reported (a stopped worker that never woke), the launcher
//! ends it. SIGINT and SIGTERM reach the ranks as SIGUSR2 and SIGALRM, which mpirun
//! forwards unchanged (it turns SIGINT into SIGTERM and SIGKILL one second later, too
//! soon for rank 0 to save its report); a second signal is passed on as SIGTERM.

use crate::exit::Exit;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Set (to the run's token) on every rank started by the launcher.
pub const LAUNCHED: &str = "IMGPROC_LAUNCHED";
/// The status file rank 0 writes its exit code to.
pub const STATUS_FILE: &str = "IMGPROC_LAUNCH_STATUS";
const MARKER: &str = "imgproc-launch-status";

/// Which MPI the launcher drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// Open MPI (`mpirun --version` says "Open MPI"), with its major version.
    OpenMpi(u32),
    /// MPICH or Intel MPI (Hydra).
    Hydra,
}

/// Recognises the MPI from `mpirun --version`'s output.
pub fn detect(version_text: &str) -> Option<Flavour> {
    if let Some(at) = version_text.find("(Open MPI)") {
        let major = version_text[at + 10..]
            .trim()
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(4);
        return Some(Flavour::OpenMpi(major));
    }
    if version_text.contains("Open MPI") || version_text.contains("OpenRTE") {
        return Some(Flavour::OpenMpi(4));
    }
    if version_text.contains("HYDRA") || version_text.contains("Intel(R) MPI") {
        return Some(Flavour::Hydra);
    }
    None
}

/// The arguments the launcher puts before the user's mpirun arguments.
pub fn mpirun_args(
    flavour: Flavour,
    user: &[OsString],
    token: &str,
    status: &str,
) -> Vec<OsString> {
    let has = |flag: &str| user.iter().any(|a| a == flag);
    let mut args: Vec<OsString> = Vec::new();
    match flavour {
        Flavour::OpenMpi(major) => {
            // Open MPI 5 (PRRTE) keeps a job alive through ULFM's `--with-ft ulfm`
            // (docs.open-mpi.org, v5.0, "User-Level Fault Mitigation"); 4.x through
            // `--enable-recovery` (measured here with 4.1.4).
            if major >= 5 {
                if !has("--with-ft") {
                    args.extend(["--with-ft".into(), "ulfm".into()]);
                }
            } else {
                if !has("--enable-recovery") {
                    args.push("--enable-recovery".into());
                }
                // Once rank 0 has reported, a straggler is ended at once (SIGKILL right
                // after SIGTERM, instead of a second later: a throttled or stopped rank
                // would otherwise hold the command up). Graceful stops use SIGUSR2 and
                // SIGALRM, not mpirun's SIGTERM.
                if !user
                    .iter()
                    .any(|a| a.to_string_lossy().contains("sigkill_timeout"))
                {
                    args.extend(["--mca", "odls_base_sigkill_timeout", "0"].map(OsString::from));
                }
            }
            for var in [LAUNCHED, STATUS_FILE] {
                args.push("-x".into());
                args.push(var.into());
            }
        }
        Flavour::Hydra => {
            if !has("-disable-auto-cleanup") {
                args.push("-disable-auto-cleanup".into());
            }
            for (var, value) in [(LAUNCHED, token), (STATUS_FILE, status)] {
                args.push("-genv".into());
                args.push(var.into());
                args.push(value.into());
            }
        }
    }
    args
}

fn token() -> String {
    let mut bytes = [0u8; 12];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !ok {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes[..8].copy_from_slice(&(t as u64 ^ std::process::id() as u64).to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const USAGE: &str = "usage: imgproc launch [MPIRUN ARGS] -- [IMGPROC ARGS]\n  e.g. imgproc launch -np 4 --hostfile hosts -- --manifest jobs.json --report report.json";

/// Runs the launcher; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    match launch(args) {
        Ok(code) => code,
        Err(exit) => exit.code(),
    }
}

/// The launcher, with every early failure (printed where it happens) as an `Err`.
fn launch(args: Vec<OsString>) -> Result<i32, Exit> {
    if args.first().is_some_and(|a| a == "--help" || a == "-h") {
        println!("{USAGE}\n\nRuns ${{IMGPROC_MPIRUN:-mpirun}} so that the job survives lost ranks (see the README's \"Failures and resume\"), and exits with rank 0's exit code.");
        return Ok(Exit::Ok.code());
    }
    let Some(split) = args.iter().position(|a| a == "--") else {
        eprintln!("imgproc launch: missing `--` between mpirun's arguments and imgproc's\n{USAGE}");
        return Err(Exit::Usage);
    };
    let (mpi_user, rest) = args.split_at(split);
    let imgproc_args = &rest[1..];
    if imgproc_args.is_empty() {
        eprintln!("imgproc launch: no imgproc arguments after `--`\n{USAGE}");
        return Err(Exit::Usage);
    }
    let mpirun = std::env::var_os("IMGPROC_MPIRUN").unwrap_or_else(|| "mpirun".into());
    let flavour = flavour_of(&mpirun)?;
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("imgproc launch: cannot find this executable: {e}");
        Exit::Fatal
    })?;
    let token = token();
    let status = tempfile::Builder::new()
        .prefix(".imgproc-launch-")
        .tempfile()
        .map_err(|e| {
            eprintln!("imgproc launch: cannot create a status file: {e}");
            Exit::Fatal
        })?
        .into_temp_path();
    let status_path = status.to_string_lossy().to_string();
    let mut cmd = Command::new(&mpirun);
    cmd.args(mpirun_args(flavour, mpi_user, &token, &status_path))
        .args(mpi_user)
        .arg(&exe)
        .args(imgproc_args)
        .env(LAUNCHED, &token)
        .env(STATUS_FILE, &status_path)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    crate::signals::keep_running_on_second_signal();
    crate::signals::install();
    let mut child = cmd.spawn().map_err(|e| {
        eprintln!(
            "imgproc launch: cannot start {}: {e}",
            mpirun.to_string_lossy()
        );
        Exit::Fatal
    })?;
    let reported: Arc<Mutex<Option<i32>>> = Arc::new(Mutex::new(None));
    let forwarder = forward_stderr(child.stderr.take(), &token, reported.clone());
    let read_status = || -> Option<i32> {
        if let Some(c) = *reported.lock().unwrap_or_else(|e| e.into_inner()) {
            return Some(c);
        }
        std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    let exit = supervise(&mut child, &read_status)?;
    let _ = forwarder.join();
    // mpirun passes any signal on to the ranks as SIGTERM: the user's signal decides.
    if let Some(sig) = crate::signals::received() {
        return Ok(crate::signals::exit_code(sig));
    }
    if let Some(code) = read_status() {
        return Ok(code);
    }
    match exit.code() {
        Some(c) if c != 0 => Ok(c),
        _ => {
            eprintln!(
                "imgproc launch: rank 0 ended without reporting how the run went (was it killed?); what was written is complete: run the same command with --resume to finish"
            );
            Err(Exit::Fatal)
        }
    }
}

/// Which MPI `mpirun` is, from its `--version`.
fn flavour_of(mpirun: &std::ffi::OsStr) -> Result<Flavour, Exit> {
    let version = match Command::new(mpirun).arg("--version").output() {
        Ok(o) => format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            eprintln!(
                "imgproc launch: cannot run {}: {e}; install Open MPI (openmpi-bin) or set IMGPROC_MPIRUN",
                mpirun.to_string_lossy()
            );
            return Err(Exit::Usage);
        }
    };
    detect(&version).ok_or_else(|| {
        eprintln!(
            "imgproc launch: {} --version names no MPI this launcher knows (Open MPI, MPICH, Intel MPI); run plain mpirun instead (a lost rank then ends the job; --resume continues it)",
            mpirun.to_string_lossy()
        );
        Exit::Usage
    })
}

/// Forwards mpirun's stderr to ours, keeping rank 0's status line (into `reported`)
/// and dropping Open MPI's noise under recovery.
fn forward_stderr(
    stderr: Option<std::process::ChildStderr>,
    token: &str,
    reported: Arc<Mutex<Option<i32>>>,
) -> std::thread::JoinHandle<()> {
    let prefix = format!("{MARKER}:{token}:");
    std::thread::spawn(move || {
        let Some(stderr) = stderr else { return };
        let mut out = std::io::stderr();
        for line in std::io::BufReader::new(stderr).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line);
            if let Some(code) = text.trim().strip_prefix(&prefix) {
                if let Ok(c) = code.parse() {
                    *reported.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
                }
                continue;
            }
            // Open MPI 4.1 prints this for every rank that leaves under recovery,
            // and the other for the signals the launcher passes on.
            if text.contains("PMIX ERROR: BAD-PARAM")
                || text.starts_with("mpirun: Forwarding signal")
            {
                continue;
            }
            let _ = out.write_all(&line);
            let _ = out.write_all(b"\n");
        }
    })
}

/// Waits for mpirun, passing our signals on to the ranks, and ending stragglers once
/// rank 0 has reported (`read_status`).
fn supervise(
    child: &mut std::process::Child,
    read_status: &dyn Fn() -> Option<i32>,
) -> Result<std::process::ExitStatus, Exit> {
    let mut forwarded = 0;
    let mut status_seen: Option<Instant> = None;
    let mut terminated = false;
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Ok(st),
            Ok(None) => {}
            Err(e) => {
                eprintln!("imgproc launch: waiting for mpirun: {e}");
                return Err(Exit::Fatal);
            }
        }
        let signals = crate::signals::count();
        if let (Some(sig), true) = (crate::signals::received(), signals > forwarded) {
            forwarded = signals;
            // The first signal reaches every rank as SIGUSR2 (SIGINT) or SIGALRM
            // (SIGTERM), which mpirun forwards as they are (Open MPI 4.1.4 does not
            // forward SIGUSR1), so rank 0 can save the journal and report; a second
            // one is mpirun's to end the job at once.
            let to_send = match (signals, sig) {
                (1, libc::SIGINT) => libc::SIGUSR2,
                (1, _) => libc::SIGALRM,
                _ => libc::SIGTERM,
            };
            // SAFETY: kill only sends a signal to our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, to_send) };
        }
        if read_status().is_some() {
            let since = *status_seen.get_or_insert_with(Instant::now);
            // Rank 0 is done and every output written; a worker that has not left
            // soon after (stopped, throttled, cut off) is ended by mpirun.
            if since.elapsed() > Duration::from_millis(300) && !terminated {
                terminated = true;
                // SAFETY: as above.
                unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            } else if since.elapsed() > Duration::from_secs(12) {
                let _ = child.kill();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// On rank 0 of a launched job: tells the launcher the run's exit code.
#[cfg(feature = "mpi")]
pub fn report_status(exit: Exit) {
    let code = exit.code();
    let Some(token) = std::env::var_os(LAUNCHED) else {
        return;
    };
    if let Some(path) = std::env::var_os(STATUS_FILE) {
        let _ = std::fs::write(path, format!("{code}\n"));
    }
    let mut err = std::io::stderr();
    let _ = writeln!(err, "{MARKER}:{}:{code}", token.to_string_lossy());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_open_mpi_and_hydra() {
        assert_eq!(
            detect("mpirun (Open MPI) 4.1.4\n\nReport bugs to"),
            Some(Flavour::OpenMpi(4))
        );
        assert_eq!(
            detect("mpirun (Open MPI) 5.0.3\n"),
            Some(Flavour::OpenMpi(5))
        );
        assert_eq!(
            detect("HYDRA build details:\n    Version: 4.1"),
            Some(Flavour::Hydra)
        );
        assert_eq!(detect("something else"), None);
    }

    #[test]
    fn adds_recovery_once_and_exports_the_status_variables() {
        let user: Vec<OsString> = vec!["-np".into(), "3".into()];
        let a = mpirun_args(Flavour::OpenMpi(4), &user, "t", "/s");
        assert_eq!(
            a,
            [
                "--enable-recovery",
                "--mca",
                "odls_base_sigkill_timeout",
                "0",
                "-x",
                LAUNCHED,
                "-x",
                STATUS_FILE
            ]
            .map(OsString::from)
        );
        let user: Vec<OsString> = vec!["--enable-recovery".into()];
        assert_eq!(mpirun_args(Flavour::OpenMpi(4), &user, "t", "/s").len(), 7);
        let five = mpirun_args(Flavour::OpenMpi(5), &[], "t", "/s");
        assert_eq!(five[..2], ["--with-ft", "ulfm"].map(OsString::from));
        let h = mpirun_args(Flavour::Hydra, &[], "t", "/s");
        assert_eq!(h[0], "-disable-auto-cleanup");
        assert!(h.contains(&OsString::from("t")));
    }
}
