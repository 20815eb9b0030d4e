//! Key files for `--secret`: `imgproc keygen FILE` writes one, every rank reads its own.
//!
//! A key is 256 random bits, stored as one line of 64 hexadecimal digits so that it
//! survives being copied through a terminal or a configuration tool. The file must be
//! private to its owner (like an ssh key): a key that others on the host can read
//! protects nothing, so loading one refuses such a file and says how to fix it. The
//! sealing itself lives in [`crate::transport::sealed`], which knows nothing of files.

use std::io::{Read, Write};
use std::path::Path;

/// A 256-bit key shared by every rank of a run. Its bytes are wiped when it is dropped
/// and never printed.
pub struct Key([u8; 32]);

impl Key {
    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from its bytes (for tests).
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: writes a byte of an array this value owns.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Hex digits of a key, as the file holds them.
fn to_hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `imgproc keygen FILE`: writes a fresh random key to `path`, readable by its owner
/// only. Never overwrites: replacing a key is a decision to make by hand, as every host
/// must then get the new one.
pub fn keygen(path: &Path) -> Result<(), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("cannot get random bytes from the system: {e}"))?;
    let key = Key(bytes);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{}: a file is already there; keygen never replaces a key (remove it first if you mean to, and give every host the new one)",
                path.display()
            )
        } else {
            format!("{}: cannot create it: {e}", path.display())
        }
    })?;
    let mut line = to_hex(key.bytes());
    line.push('\n');
    let written = file
        .write_all(line.as_bytes())
        .and_then(|()| file.sync_all());
    // The digits are secret too: wipe the copy.
    // SAFETY: zeroes are valid UTF-8.
    unsafe { line.as_bytes_mut().fill(0) };
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(format!("{}: cannot write it: {e}", path.display()));
    }
    Ok(())
}

/// Reads the key at `path`, refusing a file that is not a regular file, that others
/// can read, or that does not hold exactly one key.
pub fn load(path: &Path) -> Result<Key, String> {
    let shown = path.display();
    let mut file = std::fs::File::open(path).map_err(|e| {
        format!("cannot read the key file {shown}: {e} (make one with `imgproc keygen {shown}` and copy it to every host)")
    })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read the key file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("the key file {shown} is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "the key file {shown} can be read by others (mode {:o}): run `chmod 600 {shown}`",
                mode & 0o777
            ));
        }
    }
    // A key file is 65 bytes; read a little more to tell a wrong file.
    let mut text = Vec::with_capacity(128);
    Read::by_ref(&mut file)
        .take(1024)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read the key file {shown}: {e}"))?;
    let parsed = parse(&text);
    text.fill(0);
    parsed.ok_or_else(|| {
        format!("{shown} holds no imgproc key (64 hexadecimal digits on one line, as `imgproc keygen` writes)")
    })
}

/// The key in a file's text: 64 hex digits, surrounding white space allowed.
fn parse(text: &[u8]) -> Option<Key> {
    let digits = text.trim_ascii();
    if digits.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (b, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *b = (hi * 16 + lo) as u8;
    }
    Some(Key(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_key_that_loads_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        keygen(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), 65);
        assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let key = load(&path).unwrap();
        assert_eq!(to_hex(key.bytes()), text.trim_end());
        let again = keygen(&path).unwrap_err();
        assert!(again.contains("never replaces"), "{again}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        // Two keys are not the same key.
        let other = dir.path().join("k2");
        keygen(&other).unwrap();
        assert_ne!(std::fs::read_to_string(&other).unwrap(), text);
    }

    #[test]
    fn load_refuses_missing_shared_and_malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load(&dir.path().join("none")).unwrap_err();
        assert!(missing.contains("imgproc keygen"), "{missing}");
        let path = dir.path().join("k");
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let shared = load(&path).unwrap_err();
            assert!(shared.contains("chmod 600"), "{shared}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(load(&path).unwrap().bytes(), &[0xab; 32]);
        for bad in ["", "ab", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        assert!(load(dir.path()).is_err());
    }
}
