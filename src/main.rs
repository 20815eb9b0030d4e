//! The `imgproc` binary: the allocator, then the library's [`imgproc::app::main`], which
//! parses the flags, runs, and maps the outcome to an exit code.

use std::process::ExitCode;

/// mimalloc keeps freed pages for reuse: without it every multi-megabyte buffer is
/// mmapped, faulted in page by page and unmapped again (measured: 2-5x slower ops).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: std::os::raw::c_int) -> std::os::raw::c_long;
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

/// `mi_option_purge_delay` in the mimalloc v3 that `libmimalloc-sys` 0.1.49 bundles
/// (its Rust bindings do not name it); `purge_delay_is_the_option_we_think` checks it.
const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;

/// Makes mimalloc return freed pages to the system after 50 ms instead of its default
/// second. Items free image-sized buffers at every stage, and a freed image rarely
/// fits the next stage's buffer: with the default delay, a 12 MP sharpen peaked 1.9
/// times above what it had allocated, beyond what `--max-memory-mb` can account for.
/// With no delay at all (issue 10's choice) a batch of small photos faulted every
/// buffer in afresh, item after item: 1,000 photos of 640x480 took 2.2 s instead of
/// 1.8 s, a third of it in the kernel. 50 ms keeps the buffers of back-to-back small
/// items and adds 6-15 MB to the peak of an 8-18 MP item (measured side by side on
/// the corpus, see issue 12's closing note). An explicit `MIMALLOC_PURGE_DELAY` in
/// the environment wins.
fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets an entry of the allocator's option table by a valid index.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// See [`return_freed_memory_promptly`].
const PURGE_DELAY_MS: std::os::raw::c_long = 50;

fn main() -> ExitCode {
    return_freed_memory_promptly();
    imgproc::app::main()
}

#[cfg(test)]
mod allocator_tests {
    use super::*;

    #[test]
    fn purge_delay_is_the_option_we_think() {
        // v3's default purge delay is 1000 ms, and no other option defaults to 1000: a
        // mimalloc upgrade that renumbers the options fails here.
        // SAFETY: reads an entry of the option table by a valid index.
        let before = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(before, 1000);
        }
        std::env::remove_var("MIMALLOC_PURGE_DELAY");
        return_freed_memory_promptly();
        // SAFETY: as above.
        assert_eq!(
            unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) },
            PURGE_DELAY_MS
        );
    }
}
