//! SIGINT and SIGTERM: an interrupted run ends cleanly, a second signal ends it at once.
//!
//! The handler only records the signal. Rank 0 (or the single process) polls
//! [`received`] while it waits for results: it stops dealing, writes what was
//! committed to the journal and the report, removes its temporary files and exits
//! 130 (SIGINT) or 143 (SIGTERM). A worker rank has nothing to save: a watcher thread
//! removes its temporary files and exits with the same code. A second signal exits
//! from the handler itself.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicI32 = AtomicI32::new(0);
static EXIT_ON_SECOND: AtomicBool = AtomicBool::new(true);

extern "C" fn on_signal(sig: libc::c_int) {
    // Under `imgproc launch`, mpirun forwards SIGUSR2 and SIGALRM as they are (it
    // would turn SIGINT into SIGTERM followed by SIGKILL a second later): they stand
    // for SIGINT and SIGTERM.
    let sig = match sig {
        libc::SIGUSR2 => libc::SIGINT,
        libc::SIGALRM => libc::SIGTERM,
        s => s,
    };
    let _ = SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    if COUNT.fetch_add(1, Ordering::SeqCst) > 0 && EXIT_ON_SECOND.load(Ordering::SeqCst) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + sig) }
    }
}

/// How many signals have arrived.
pub fn count() -> i32 {
    COUNT.load(Ordering::SeqCst)
}

/// The launcher counts signals instead of leaving on the second (it must end mpirun).
pub fn keep_running_on_second_signal() {
    EXIT_ON_SECOND.store(false, Ordering::SeqCst);
}

/// Installs the handler for SIGINT and SIGTERM (and, in a launched job, SIGUSR2 and
/// SIGALRM, which the launcher sends in their place).
pub fn install() {
    let mut sigs = vec![libc::SIGINT, libc::SIGTERM];
    if std::env::var_os(crate::launch::LAUNCHED).is_some() {
        sigs.extend([libc::SIGUSR2, libc::SIGALRM]);
    }
    for sig in sigs {
        // SAFETY: the handler only touches an atomic and calls _exit; the struct is
        // fully initialised before use.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as *const () as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(sig, &act, std::ptr::null_mut());
        }
    }
}

/// The first signal received, if any.
pub fn received() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code for signal `sig` (128 + its number: 130 for SIGINT, 143 for SIGTERM).
pub fn exit_code(sig: i32) -> i32 {
    128 + sig
}

/// The signal's name for messages.
pub fn name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// For worker ranks: a thread that, once a signal arrives, removes this process's
/// temporary files and exits with the signal's code.
#[cfg(feature = "mpi")]
pub fn exit_on_signal() {
    let _ = std::thread::Builder::new()
        .name("imgproc-signals".into())
        .spawn(|| loop {
            if let Some(sig) = received() {
                crate::output::abandon_temporaries();
                // SAFETY: ends the process without running MPI_Finalize, which could
                // wait forever for ranks that are gone.
                unsafe { libc::_exit(exit_code(sig)) }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        });
}
