//! SHA-256 of executables, computed once per (device, inode, mtime, size) and cached, so an
//! exec storm of one binary hashes it once.

use std::{collections::HashMap, io::Read, os::unix::fs::MetadataExt, path::Path};

use sha2::{Digest, Sha256};

/// Files larger than this are not hashed (counted as skipped): a hash IOC for a 1 GiB binary
/// would stall the pipeline.
pub const MAX_HASH_BYTES: u64 = 256 << 20;
const MAX_CACHED: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    size: u64,
}

#[derive(Default)]
pub struct HashCache {
    cache: HashMap<FileId, [u8; 32]>,
    pub computed: u64,
    pub hits: u64,
    pub skipped: u64,
}

/// Lowercase hex of any bytes (hashes, keys, signatures).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Strict: exactly `2 * N` lowercase hex digits, so every byte of a signed or hashed
/// field has one spelling.
pub fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// SHA-256 and length of a whole file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher.finalize().into(), len))
}

impl HashCache {
    /// Hash the file at `path` (for a running process, `/proc/<pid>/exe` reaches the exact
    /// inode even when the path was replaced or deleted).
    pub fn sha256(&mut self, path: &Path) -> Option<[u8; 32]> {
        let meta = std::fs::metadata(path).ok()?;
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            size: meta.size(),
        };
        if let Some(h) = self.cache.get(&id) {
            self.hits += 1;
            return Some(*h);
        }
        if meta.size() > MAX_HASH_BYTES {
            self.skipped += 1;
            return None;
        }
        let (h, _) = sha256_file(path).ok()?;
        if self.cache.len() >= MAX_CACHED {
            self.cache.clear();
        }
        self.cache.insert(id, h);
        self.computed += 1;
        Some(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_once_per_file_version() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"").unwrap();
        let mut c = HashCache::default();
        let h = c.sha256(&p).unwrap();
        assert_eq!(
            hex(&h),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        c.sha256(&p).unwrap();
        assert_eq!((c.computed, c.hits), (1, 1));
        std::fs::write(&p, b"changed").unwrap();
        let h2 = c.sha256(&p).unwrap();
        assert_ne!(h, h2);
        assert_eq!(c.computed, 2);
        assert!(c.sha256(&d.path().join("missing")).is_none());
    }

    #[test]
    fn hex_round_trip_is_strict() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(unhex::<3>(b"00abff"), Some([0x00, 0xab, 0xff]));
        assert_eq!(unhex::<3>(b"00ABFF"), None);
        assert_eq!(unhex::<3>(b"00abf"), None);
        assert_eq!(unhex::<1>(b"0g"), None);
    }
}
