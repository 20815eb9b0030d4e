//! Which threads' panics are item failures.
//!
//! A panic while an item is processed is caught and fails that item only. Anywhere
//! else a panic is a bug that, under MPI, must end the whole job at once (a rank that
//! unwinds blocks in MPI_Finalize while the others wait for it). The panic hook asks
//! [`in_item`] to tell the two apart.

use std::cell::Cell;

thread_local! {
    static ITEM_DEPTH: Cell<u32> = const { Cell::new(0) };
    static ITEM_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// True while this thread runs item work whose panics are caught.
#[cfg(feature = "mpi")]
pub fn in_item() -> bool {
    ITEM_THREAD.with(Cell::get) || ITEM_DEPTH.with(Cell::get) > 0
}

/// Marks the current thread as one that only ever runs item work (a worker pool thread).
pub fn mark_item_thread() {
    ITEM_THREAD.with(|t| t.set(true));
}

/// Runs `f` with this thread marked as processing an item.
pub fn item_scope<R>(f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ITEM_DEPTH.with(|d| d.set(d.get() - 1));
        }
    }
    ITEM_DEPTH.with(|d| d.set(d.get() + 1));
    let _reset = Reset;
    f()
}
