//! Quarantine: a file moves under `<state>/quarantine/<id>/` with its hash, metadata and
//! original path, permissions removed; release puts back the same bytes, mode, owner and
//! times at the same path.

use std::{
    io::Write,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("quarantine {0} does not exist")]
    Unknown(String),
    #[error(
        "quarantine {id}: the stored file changed (sha256 {found}, recorded {recorded}); not restored"
    )]
    Tampered {
        id: String,
        recorded: String,
        found: String,
    },
    #[error("{0} exists again; move it away before restoring (nothing is overwritten)")]
    Occupied(String),
    #[error("quarantine {id}: bad metadata: {reason}")]
    Meta { id: String, reason: String },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> QuarantineError + '_ {
    move |source| QuarantineError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What was quarantined, from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub id: String,
    pub original_path: String,
    pub sha256: String,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime_ns: i128,
    pub mtime_ns: i128,
    /// Device and inode the file had (the deny list keys on them).
    pub dev: u64,
    pub ino: u64,
    pub quarantined_at: String,
}

/// Hex SHA-256 and length of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64), QuarantineError> {
    let (h, n) = crate::ioc::hashes::sha256_file(path).map_err(io(path))?;
    Ok((crate::ioc::hashes::hex(&h), n))
}

fn ns(secs: i64, nsec: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nsec)
}

/// Move `path` (already guard-checked) into quarantine as `id`.
pub fn quarantine(root: &Path, id: &str, path: &Path) -> Result<Record, QuarantineError> {
    let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
    let (sha256, size) = sha256_file(path)?;
    let dir = root.join(id);
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(root)
        .map_err(io(root))?;
    std::fs::create_dir(&dir).map_err(io(&dir))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(io(&dir))?;
    let content = dir.join("content");
    let record = Record {
        id: id.to_owned(),
        original_path: path.display().to_string(),
        sha256,
        size,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        atime_ns: ns(meta.atime(), meta.atime_nsec()),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        dev: meta.dev(),
        ino: meta.ino(),
        quarantined_at: crate::alert::format_timestamp(time::OffsetDateTime::now_utc()),
    };
    // Metadata first: a crash after the move still leaves the way back.
    write_meta(&dir, &record)?;
    move_file(path, &content)?;
    std::fs::set_permissions(&content, std::fs::Permissions::from_mode(0o000))
        .map_err(io(&content))?;
    Ok(record)
}

fn write_meta(dir: &Path, record: &Record) -> Result<(), QuarantineError> {
    let meta_path = dir.join("meta.json");
    let text = serde_json::to_vec_pretty(record).map_err(|e| QuarantineError::Meta {
        id: record.id.clone(),
        reason: e.to_string(),
    })?;
    let mut f = std::fs::File::create(&meta_path).map_err(io(&meta_path))?;
    f.write_all(&text).map_err(io(&meta_path))?;
    f.sync_all().map_err(io(&meta_path))
}

/// Rename, or copy + fsync + unlink across filesystems.
fn move_file(from: &Path, to: &Path) -> Result<(), QuarantineError> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let mut src = std::fs::File::open(from).map_err(io(from))?;
            let mut dst = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(to)
                .map_err(io(to))?;
            std::io::copy(&mut src, &mut dst).map_err(io(to))?;
            dst.sync_all().map_err(io(to))?;
            std::fs::remove_file(from).map_err(io(from))
        }
        Err(e) => Err(io(from)(e)),
    }
}

pub fn load(root: &Path, id: &str) -> Result<Record, QuarantineError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(QuarantineError::Unknown(id.to_owned()));
    }
    let meta_path = root.join(id).join("meta.json");
    let text = match std::fs::read(&meta_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(QuarantineError::Unknown(id.to_owned()));
        }
        Err(e) => return Err(io(&meta_path)(e)),
    };
    serde_json::from_slice(&text).map_err(|e| QuarantineError::Meta {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

/// Everything in quarantine, oldest id first.
pub fn list(root: &Path) -> Vec<Record> {
    let mut out: Vec<Record> = std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| load(root, &e.file_name().to_string_lossy()).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// Put the file back exactly: same bytes (checked against the recorded hash), mode, owner
/// and times, at its original path (never over a file that is there now).
pub fn restore(root: &Path, id: &str) -> Result<Record, QuarantineError> {
    let record = load(root, id)?;
    let dir = root.join(id);
    let content = dir.join("content");
    let (found, _) = sha256_file(&content)?;
    if found != record.sha256 {
        return Err(QuarantineError::Tampered {
            id: id.to_owned(),
            recorded: record.sha256,
            found,
        });
    }
    let original = PathBuf::from(&record.original_path);
    if std::fs::symlink_metadata(&original).is_ok() {
        return Err(QuarantineError::Occupied(record.original_path));
    }
    if let Some(parent) = original.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    move_file(&content, &original)?;
    std::os::unix::fs::chown(&original, Some(record.uid), Some(record.gid))
        .map_err(io(&original))?;
    std::fs::set_permissions(&original, std::fs::Permissions::from_mode(record.mode))
        .map_err(io(&original))?;
    let ts = |t: i128| {
        nix::sys::time::TimeSpec::new(
            (t.div_euclid(1_000_000_000)) as i64,
            (t.rem_euclid(1_000_000_000)) as i64,
        )
    };
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &original,
        &ts(record.atime_ns),
        &ts(record.mtime_ns),
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| io(&original)(std::io::Error::from(e)))?;
    let _ = std::fs::remove_file(dir.join("meta.json"));
    let _ = std::fs::remove_dir(&dir);
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_and_restore_round_trip_bytes_mode_and_times() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("evil.sh");
        std::fs::write(&f, b"#!/bin/sh\necho pwned\n\x00\xff").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4751)).unwrap();
        let before = std::fs::metadata(&f).unwrap();
        let q = d.path().join("q");
        let r = quarantine(&q, "q1", &f).unwrap();
        assert!(!f.exists());
        let stored = std::fs::metadata(q.join("q1/content")).unwrap();
        assert_eq!(stored.mode() & 0o7777, 0);
        assert_eq!(list(&q).len(), 1);
        assert_eq!(r.mode, 0o4751);
        // Restoring over a new file at the path is refused.
        std::fs::write(&f, b"new").unwrap();
        assert!(matches!(
            restore(&q, "q1"),
            Err(QuarantineError::Occupied(_))
        ));
        std::fs::remove_file(&f).unwrap();
        restore(&q, "q1").unwrap();
        let after = std::fs::metadata(&f).unwrap();
        assert_eq!(
            std::fs::read(&f).unwrap(),
            b"#!/bin/sh\necho pwned\n\x00\xff"
        );
        assert_eq!(after.mode() & 0o7777, 0o4751);
        assert_eq!(after.mtime(), before.mtime());
        assert_eq!(after.mtime_nsec(), before.mtime_nsec());
        assert!(list(&q).is_empty());
        assert!(matches!(
            restore(&q, "q1"),
            Err(QuarantineError::Unknown(_))
        ));
    }

    #[test]
    fn tampered_content_is_not_restored() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x");
        std::fs::write(&f, b"abc").unwrap();
        let q = d.path().join("q");
        quarantine(&q, "q2", &f).unwrap();
        let c = q.join("q2/content");
        std::fs::set_permissions(&c, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&c, b"abd").unwrap();
        assert!(matches!(
            restore(&q, "q2"),
            Err(QuarantineError::Tampered { .. })
        ));
        assert!(!f.exists());
        assert!(matches!(
            load(&q, "../etc"),
            Err(QuarantineError::Unknown(_))
        ));
    }
}
