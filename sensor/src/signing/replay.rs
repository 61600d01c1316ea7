//! Replay protection: the highest bundle version accepted per (kind, name) on this host, in
//! `<state>/bundles.json`. An older signed bundle (validly signed, but superseded) is refused;
//! the same version is accepted again, so restarts and reloads work.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions, Permissions},
    io::{self, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use super::bundle::Verified;

pub const FILE: &str = "bundles.json";
const LOCK: &str = ".bundles.lock";
/// The record holds one line per bundle name; a bigger file is not ours.
const MAX_FILE: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(
        "{}: {kind} bundle {name:?} version {offered} is older than version {accepted}, \
         already accepted on this host (replay of an older bundle?); sign the content again \
         with a version above {accepted}",
        dir.display()
    )]
    Older {
        dir: PathBuf,
        kind: super::Kind,
        name: String,
        offered: u64,
        accepted: u64,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: unreadable record of accepted bundle versions ({reason}); fix or remove it \
         (removing it forgets which versions were accepted)",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ReplayError {
    let path = path.to_owned();
    move |source| ReplayError::Io {
        action,
        path,
        source,
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    /// `kind/name` → the highest version accepted.
    accepted: BTreeMap<String, Accepted>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Accepted {
    version: u64,
    /// Which signed manifest it was, and by whom: for an operator comparing hosts.
    manifest_sha256: String,
    key_id: String,
}

/// The record in one state directory.
#[derive(Debug, Clone)]
pub struct Versions {
    dir: PathBuf,
}

impl Versions {
    pub fn new(state_dir: &Path) -> Versions {
        Versions {
            dir: state_dir.to_owned(),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Refuses `v` if an older version than one already accepted; otherwise raises the
    /// record to it. Serialised with other processes (agent, `sensor exec`) by a lock file.
    pub fn admit(&self, v: &Verified) -> Result<(), ReplayError> {
        let lock_path = self.dir.join(LOCK);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err("open", &lock_path))?;
        let _lock = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io_err("lock", &lock_path)(errno.into()))?;
        let mut record = self.read()?;
        if !self.check(&record, v)? {
            return Ok(());
        }
        record.accepted.insert(
            key(v),
            Accepted {
                version: v.manifest.version,
                manifest_sha256: v.manifest_sha256.clone(),
                key_id: v.key_id.clone(),
            },
        );
        self.write(&record)
    }

    /// Only checks (for a process that cannot write the state directory).
    pub fn check_only(&self, v: &Verified) -> Result<(), ReplayError> {
        self.check(&self.read()?, v).map(|_| ())
    }

    /// Err if older than accepted; Ok(true) if the record must be raised.
    fn check(&self, record: &Record, v: &Verified) -> Result<bool, ReplayError> {
        let m = &v.manifest;
        match record.accepted.get(&key(v)) {
            Some(a) if m.version < a.version => Err(ReplayError::Older {
                dir: v.dir.clone(),
                kind: m.kind,
                name: m.name.clone(),
                offered: m.version,
                accepted: a.version,
            }),
            Some(a) if m.version == a.version && a.manifest_sha256 == v.manifest_sha256 => {
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    fn read(&self) -> Result<Record, ReplayError> {
        let path = self.path();
        let bytes = match std::fs::metadata(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Record::default()),
            Err(e) => return Err(io_err("stat", &path)(e)),
            Ok(m) if m.len() > MAX_FILE => {
                return Err(ReplayError::Corrupt {
                    path,
                    reason: format!("larger than {MAX_FILE} bytes"),
                });
            }
            Ok(_) => std::fs::read(&path).map_err(io_err("read", &path))?,
        };
        serde_json::from_slice(&bytes).map_err(|e| ReplayError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    /// Written whole and renamed into place: a crash leaves the old record or the new one.
    fn write(&self, record: &Record) -> Result<(), ReplayError> {
        let path = self.path();
        let mut tmp = tempfile::Builder::new()
            .prefix(".bundles-")
            .permissions(Permissions::from_mode(0o640))
            .tempfile_in(&self.dir)
            .map_err(io_err("create a file in", &self.dir))?;
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| ReplayError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        tmp.write_all(&bytes).map_err(io_err("write", tmp.path()))?;
        tmp.as_file().sync_all().map_err(io_err("sync", &path))?;
        tmp.persist(&path)
            .map_err(|e| io_err("replace", &path)(e.error))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", &self.dir))
    }
}

fn key(v: &Verified) -> String {
    format!("{}/{}", v.manifest.kind, v.manifest.name)
}

#[cfg(test)]
mod tests {
    use super::super::{Kind, Manifest};
    use super::*;

    fn verified(kind: Kind, name: &str, version: u64, sha: &str) -> Verified {
        Verified {
            dir: PathBuf::from("/srv/rules"),
            manifest: Manifest {
                format: 1,
                kind,
                name: name.into(),
                version,
                created: String::new(),
                files: BTreeMap::new(),
            },
            key_id: "k".into(),
            manifest_sha256: sha.into(),
        }
    }

    #[test]
    fn older_versions_are_refused_the_same_accepted() {
        let state = tempfile::tempdir().unwrap();
        let v = Versions::new(state.path());
        v.admit(&verified(Kind::Rules, "corp", 3, "a")).unwrap();
        // Restart: the same bundle again.
        v.admit(&verified(Kind::Rules, "corp", 3, "a")).unwrap();
        // Re-signed at the same version (e.g. `sign --force`): accepted, recorded.
        v.admit(&verified(Kind::Rules, "corp", 3, "b")).unwrap();
        v.admit(&verified(Kind::Rules, "corp", 4, "c")).unwrap();
        let e = v.admit(&verified(Kind::Rules, "corp", 3, "a")).unwrap_err();
        let s = e.to_string();
        assert!(matches!(e, ReplayError::Older { .. }), "{e:?}");
        assert!(
            s.contains("/srv/rules") && s.contains("version 3 is older than version 4"),
            "{s}"
        );
        assert!(
            v.check_only(&verified(Kind::Rules, "corp", 2, "x"))
                .is_err()
        );
        v.check_only(&verified(Kind::Rules, "corp", 4, "c"))
            .unwrap();
        // Each (kind, name) has its own sequence.
        v.admit(&verified(Kind::Ioc, "corp", 1, "d")).unwrap();
        v.admit(&verified(Kind::Rules, "other", 1, "e")).unwrap();
        // The record survives a new instance (a restart) and is readable JSON.
        let again = Versions::new(state.path());
        assert!(again.admit(&verified(Kind::Rules, "corp", 1, "a")).is_err());
        let text = std::fs::read_to_string(again.path()).unwrap();
        assert!(text.contains("\"rules/corp\""), "{text}");
        let mode = std::fs::metadata(again.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn corrupt_or_unreachable_record_fails_closed() {
        let state = tempfile::tempdir().unwrap();
        let v = Versions::new(state.path());
        std::fs::write(v.path(), "{not json").unwrap();
        let e = v.admit(&verified(Kind::Rules, "corp", 1, "a")).unwrap_err();
        assert!(
            matches!(e, ReplayError::Corrupt { .. }) && e.to_string().contains(FILE),
            "{e}"
        );
        let gone = Versions::new(&state.path().join("missing"));
        assert!(matches!(
            gone.admit(&verified(Kind::Rules, "corp", 1, "a")),
            Err(ReplayError::Io { .. })
        ));
        // A missing record is an empty one for a reader.
        gone.check_only(&verified(Kind::Rules, "corp", 1, "a"))
            .unwrap();
    }
}
