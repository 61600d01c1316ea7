//! Guards no playbook can override: never PID 1, kernel threads, the sensor, its ancestors,
//! or a protected process or file; and a rate limit on automatic actions.

use std::{
    collections::{HashSet, VecDeque},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::enrich::procfs::ProcFs;

use super::{config, target};

/// Why a guard refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("pid {0} is init (or the idle task); never acted on")]
    Init(u32),
    #[error("pid {0} is the sensor itself")]
    Sensor(u32),
    #[error("pid {pid} is an ancestor of the sensor ({comm})")]
    SensorAncestor { pid: u32, comm: String },
    #[error("pid {0} is a kernel thread")]
    KernelThread(u32),
    #[error("pid {pid} ({name}) is protected")]
    Protected { pid: u32, name: String },
    #[error("pid {0} does not exist")]
    NoSuchProcess(u32),
    #[error(
        "pid {pid} is not the process the action was for (it started at {found}, not {wanted}): the pid was reused"
    )]
    Reused { pid: u32, wanted: u64, found: u64 },
    #[error("{0} is protected")]
    ProtectedFile(String),
    #[error("{0} is the sensor's own binary or state")]
    SensorFile(String),
    #[error("{path}: {reason}")]
    BadFile { path: String, reason: String },
    #[error("the root cgroup (the whole host) is not a cgroup target; use host isolation")]
    RootCgroup,
    #[error("cgroup {path} holds {what}")]
    CgroupHolds { path: String, what: String },
    #[error("rate limit: more than {0} automatic actions in the last minute")]
    RateLimited(u32),
}

pub struct Guard {
    procfs: ProcFs,
    self_pid: u32,
    names: HashSet<String>,
    paths: HashSet<PathBuf>,
    self_exe: Option<PathBuf>,
    state_dir: PathBuf,
}

fn basename(p: &str) -> &str {
    let p = p.strip_suffix(" (deleted)").unwrap_or(p);
    p.rsplit('/').next().unwrap_or(p)
}

impl Guard {
    pub fn new(host_root: &Path, cfg: &config::RespondConfig, state_dir: &Path) -> Guard {
        let names = config::DEFAULT_PROTECTED
            .iter()
            .map(|s| (*s).to_owned())
            .chain(cfg.protected.iter().cloned())
            .collect();
        let paths = config::DEFAULT_PROTECTED_PATHS
            .iter()
            .map(PathBuf::from)
            .chain(cfg.protected_paths.iter().map(PathBuf::from))
            // Protect what the names resolve to as well (`/bin/sh` → dash).
            .flat_map(|p| {
                let real = std::fs::canonicalize(&p).ok();
                std::iter::once(p).chain(real)
            })
            .collect();
        Guard {
            procfs: ProcFs::new(host_root.to_path_buf()),
            self_pid: std::process::id(),
            names,
            paths,
            self_exe: std::env::current_exe()
                .ok()
                .and_then(|p| std::fs::canonicalize(p).ok()),
            state_dir: std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.into()),
        }
    }

    pub fn procfs(&self) -> &ProcFs {
        &self.procfs
    }

    /// Check one process; returns its start time.
    pub fn check_pid(&self, pid: u32, start: Option<u64>) -> Result<u64, Refusal> {
        let ancestors = target::ancestors(self.procfs.root(), self.self_pid);
        self.check_pid_among(pid, start, &ancestors)
    }

    /// [`Guard::check_pid`] with the sensor's ancestors already read.
    fn check_pid_among(
        &self,
        pid: u32,
        start: Option<u64>,
        sensor_ancestors: &[u32],
    ) -> Result<u64, Refusal> {
        if pid <= 1 {
            return Err(Refusal::Init(pid));
        }
        if pid == self.self_pid {
            return Err(Refusal::Sensor(pid));
        }
        let snap = self
            .procfs
            .snapshot(pid)
            .map_err(|_| Refusal::NoSuchProcess(pid))?;
        if let Some(wanted) = start
            && wanted != snap.start_time_ticks
        {
            return Err(Refusal::Reused {
                pid,
                wanted,
                found: snap.start_time_ticks,
            });
        }
        // By the kernel's flag: a zombie in a tree also has no executable and no arguments.
        let kthread = crate::enrich::procfs::is_kernel_thread(
            &self.procfs.root().join(format!("proc/{pid}")),
        );
        if pid == 2 || snap.ppid == 2 || kthread.unwrap_or(false) {
            return Err(Refusal::KernelThread(pid));
        }
        if sensor_ancestors.contains(&pid) {
            return Err(Refusal::SensorAncestor {
                pid,
                comm: snap.comm,
            });
        }
        let exe_name = snap.exe.as_deref().map(basename).unwrap_or("");
        for name in [snap.comm.as_str(), exe_name] {
            if !name.is_empty() && self.names.contains(name) {
                return Err(Refusal::Protected {
                    pid,
                    name: name.to_owned(),
                });
            }
        }
        Ok(snap.start_time_ticks)
    }

    /// Every process must pass; the first refusal wins (nothing is acted on).
    pub fn check_pids(&self, pids: &[u32]) -> Result<(), Refusal> {
        let ancestors = target::ancestors(self.procfs.root(), self.self_pid);
        for pid in pids {
            match self.check_pid_among(*pid, None, &ancestors) {
                // Gone between listing and checking: nothing to protect.
                Err(Refusal::NoSuchProcess(_)) => {}
                other => {
                    other?;
                }
            }
        }
        Ok(())
    }

    /// A cgroup is acted on as a whole: not the root, and none of its processes (in any
    /// descendant cgroup) may be guarded.
    pub fn check_cgroup(&self, root: &Path, dir: &Path, members: &[u32]) -> Result<(), Refusal> {
        let canon = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.into());
        // The v2 root, the cgroup mount point, or a v1 hierarchy's root (only those carry
        // `release_agent`).
        if canon == std::fs::canonicalize(root).unwrap_or_else(|_| root.into())
            || canon == Path::new("/sys/fs/cgroup")
            || canon.join("release_agent").exists()
        {
            return Err(Refusal::RootCgroup);
        }
        self.check_pids(members).map_err(|r| Refusal::CgroupHolds {
            path: dir.display().to_string(),
            what: r.to_string(),
        })
    }

    /// A file to quarantine or deny: a regular file, not protected, not the sensor's.
    pub fn check_file(&self, path: &Path) -> Result<PathBuf, Refusal> {
        let shown = path.display().to_string();
        let canon = std::fs::canonicalize(path).map_err(|e| Refusal::BadFile {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        // Protection first: a symlink to a protected file is refused as protected.
        if self.paths.contains(path) || self.paths.contains(&canon) {
            return Err(Refusal::ProtectedFile(shown));
        }
        let meta = std::fs::symlink_metadata(path).map_err(|e| Refusal::BadFile {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        if !meta.file_type().is_file() {
            return Err(Refusal::BadFile {
                path: shown,
                reason: "not a regular file (symlinks, directories and devices are refused)".into(),
            });
        }
        if self.self_exe.as_deref() == Some(canon.as_path()) || canon.starts_with(&self.state_dir) {
            return Err(Refusal::SensorFile(shown));
        }
        // The executable of a protected name (sshd, runc, ...) wherever it lives.
        if let Some(name) = canon.file_name().and_then(|n| n.to_str())
            && self.names.contains(name)
        {
            return Err(Refusal::ProtectedFile(shown));
        }
        Ok(canon)
    }
}

/// Automatic actions allowed in any sliding minute.
pub struct RateLimit {
    per_minute: u32,
    recent: VecDeque<Instant>,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> RateLimit {
        RateLimit {
            per_minute,
            recent: VecDeque::new(),
        }
    }

    pub fn take(&mut self, now: Instant) -> Result<(), Refusal> {
        while let Some(t) = self.recent.front() {
            if now.duration_since(*t) >= Duration::from_secs(60) {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u32 >= self.per_minute {
            return Err(Refusal::RateLimited(self.per_minute));
        }
        self.recent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_slides() {
        let mut r = RateLimit::new(2);
        let t0 = Instant::now();
        assert!(r.take(t0).is_ok());
        assert!(r.take(t0).is_ok());
        assert_eq!(r.take(t0), Err(Refusal::RateLimited(2)));
        assert!(r.take(t0 + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn live_guards_refuse_init_self_and_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let g = Guard::new(
            Path::new("/"),
            &config::RespondConfig::default(),
            dir.path(),
        );
        assert_eq!(g.check_pid(1, None), Err(Refusal::Init(1)));
        assert_eq!(g.check_pid(0, None), Err(Refusal::Init(0)));
        let me = std::process::id();
        assert_eq!(g.check_pid(me, None), Err(Refusal::Sensor(me)));
        let parent = target::ppid_of(Path::new("/"), me).unwrap();
        if parent > 1 {
            assert!(matches!(
                g.check_pid(parent, None),
                Err(Refusal::SensorAncestor { .. })
            ));
        }
        assert!(matches!(
            g.check_pid(2, None),
            Err(Refusal::Init(_) | Refusal::KernelThread(_))
        ));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let start = g.check_pid(child.id(), None).unwrap();
        assert!(matches!(
            g.check_pid(child.id(), Some(start + 1)),
            Err(Refusal::Reused { .. })
        ));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn files_guarded() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        let g = Guard::new(Path::new("/"), &config::RespondConfig::default(), &state);
        assert!(matches!(
            g.check_file(Path::new("/bin/sh")),
            Err(Refusal::ProtectedFile(_))
        ));
        std::fs::write(state.join("x"), b"x").unwrap();
        assert!(matches!(
            g.check_file(&state.join("x")),
            Err(Refusal::SensorFile(_))
        ));
        assert!(matches!(
            g.check_file(dir.path()),
            Err(Refusal::BadFile { .. })
        ));
        let f = dir.path().join("payload");
        std::fs::write(&f, b"x").unwrap();
        assert!(g.check_file(&f).is_ok());
        let exe = std::env::current_exe().unwrap();
        assert!(matches!(g.check_file(&exe), Err(Refusal::SensorFile(_))));
    }
}
