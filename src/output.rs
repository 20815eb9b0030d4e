//! Atomic output files.
//!
//! An output path holds nothing, the old file, or the complete new file, never a
//! partial one: bytes go to a hidden temporary file in the same folder (created
//! exclusively under an unpredictable name, never through an existing link), are
//! flushed to disk, and the temporary file is renamed over the target.
//!
//! Every temporary file is registered while it exists, so that an interrupted run
//! ([`abandon_temporaries`]) removes its own and starts no new one.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written, and whether the run has been abandoned.
static TEMPORARIES: Mutex<(bool, Option<HashSet<PathBuf>>)> = Mutex::new((false, None));

/// The suffix of every temporary file imgproc creates.
pub const TEMP_SUFFIX: &str = ".imgproc-tmp";

fn registry() -> std::sync::MutexGuard<'static, (bool, Option<HashSet<PathBuf>>)> {
    TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `bytes` to `path` atomically, creating parent folders as needed, and flushes
/// the file to disk before it takes the name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, bytes, true)
}

/// As [`write_atomic`]; with `sync` false the file is renamed without waiting for the
/// disk (atomic for every reader and against a killed process, not against a power
/// loss): the caller makes a group of such files durable at once with [`sync_dirs`].
pub fn write_atomic_with(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "out".into());
    let tmp = {
        let mut reg = registry();
        if reg.0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the run was interrupted",
            ));
        }
        let mut builder = tempfile::Builder::new();
        // Outputs get the usual mode (0666 less the umask), not tempfile's private 0600.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = builder
            .prefix(&format!(".{name}."))
            .suffix(TEMP_SUFFIX)
            .rand_bytes(10)
            .tempfile_in(dir)?;
        reg.1
            .get_or_insert_with(HashSet::new)
            .insert(tmp.path().to_path_buf());
        tmp
    };
    let tmp_path = tmp.path().to_path_buf();
    let result = (|| {
        let mut f = tmp.as_file();
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    })();
    if let Some(set) = registry().1.as_mut() {
        set.remove(&tmp_path);
    }
    result
}

/// Makes everything written to the filesystems holding `dirs` durable: one `syncfs`
/// per folder (a cheap no-op for a filesystem already flushed).
pub fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> std::io::Result<()> {
    for d in dirs {
        let f = std::fs::File::open(d)?;
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: syncfs only reads the descriptor, which stays open for the call.
            if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        #[cfg(not(target_os = "linux"))]
        f.sync_all()?;
    }
    Ok(())
}

/// Removes temporary files of imgproc's own pattern (`.NAME.RANDOM.imgproc-tmp`,
/// regular files only) last modified before `before` from each of `dirs`: what an
/// interrupted or killed run left. Returns how many were removed.
pub fn remove_stale_temporaries<'a>(
    dirs: impl IntoIterator<Item = &'a Path>,
    before: std::time::SystemTime,
) -> usize {
    let mut removed = 0;
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with('.') && name.ends_with(TEMP_SUFFIX)) {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_file()
                && m.modified().is_ok_and(|t| t < before)
                && std::fs::remove_file(e.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Removes every temporary file still being written and makes later writes fail:
/// called once when a run is interrupted, just before the process exits.
pub fn abandon_temporaries() {
    let mut reg = registry();
    reg.0 = true;
    for p in reg.1.take().unwrap_or_default() {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_replaces_and_leaves_no_temporary_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/dir/x.bin");
        super::write_atomic(&p, b"first").unwrap();
        super::write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[cfg(unix)]
    #[test]
    fn outputs_get_the_mode_a_plain_file_would_get() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.bin");
        super::write_atomic(&p, b"x").unwrap();
        let plain = d.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode(&p), mode(&plain));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_the_target_is_replaced_not_written_through() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let p = d.path().join("out.bin");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        super::write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&p).unwrap().file_type().is_file());
    }
}
