//! What an action points at, and the processes it covers.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    path::Path,
};

use serde::{Deserialize, Serialize};

use crate::enrich::procfs::{ProcFs, stat_ppid_start};

/// The subject of a containment action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// One process. `start` (clock ticks since boot) pins it against pid reuse.
    Process {
        pid: u32,
        #[serde(default)]
        start: Option<u64>,
    },
    /// A process and every descendant.
    Tree {
        pid: u32,
        #[serde(default)]
        start: Option<u64>,
    },
    /// A cgroup directory: relative to the cgroup v2 mount, or an absolute path under
    /// /sys/fs/cgroup (a v1 freezer directory for freeze and thaw).
    Cgroup { path: String },
    /// A container by id (or a unique prefix of at least 12 characters).
    Container { id: String },
    /// The whole host (isolation only, and only when enabled).
    Host,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Process { pid, .. } => write!(f, "process {pid}"),
            Target::Tree { pid, .. } => write!(f, "process tree of {pid}"),
            Target::Cgroup { path } => write!(f, "cgroup {path}"),
            Target::Container { id } => write!(f, "container {id}"),
            Target::Host => f.write_str("the host"),
        }
    }
}

/// Parent → children, from one scan of /proc.
pub fn children(procfs: &ProcFs) -> HashMap<u32, Vec<u32>> {
    let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in procfs.pids().unwrap_or_default() {
        if let Some(ppid) = ppid_of(procfs.root(), pid) {
            out.entry(ppid).or_default().push(pid);
        }
    }
    out
}

/// `pid` and all its descendants, parents first.
pub fn tree(procfs: &ProcFs, pid: u32) -> Vec<u32> {
    let kids = children(procfs);
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([pid]);
    while let Some(p) = queue.pop_front() {
        if !seen.insert(p) {
            continue;
        }
        out.push(p);
        if let Some(c) = kids.get(&p) {
            queue.extend(c.iter().copied());
        }
    }
    out
}

/// The parent pid from `/proc/<pid>/stat` (the field after the last `)`: comm may hold any
/// byte, including `)`).
pub fn ppid_of(root: &Path, pid: u32) -> Option<u32> {
    stat_ppid_start(&root.join(format!("proc/{pid}"))).map(|(ppid, _)| ppid)
}

/// Start time (clock ticks since boot, stat field 22) of `<proc_root>/<pid>`.
pub fn start_ticks(proc_root: &Path, pid: u32) -> Option<u64> {
    stat_ppid_start(&proc_root.join(pid.to_string())).map(|(_, start)| start)
}

/// `pid`'s ancestors, parent first, up to (and including) pid 1.
pub fn ancestors(root: &Path, pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut cur = pid;
    while let Some(pp) = ppid_of(root, cur) {
        if pp == 0 || out.contains(&pp) || out.len() > 4096 {
            break;
        }
        out.push(pp);
        cur = pp;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(procs: &[(u32, &str, u32)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, comm, ppid) in procs {
            let d = dir.path().join(format!("proc/{pid}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(
                d.join("stat"),
                format!(
                    "{pid} ({comm}) S {ppid} 1 1 0 -1 4194304 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0"
                ),
            )
            .unwrap();
        }
        dir
    }

    #[test]
    fn tree_and_ancestors_follow_ppid_even_with_hostile_comm() {
        let d = fixture(&[
            (1, "init", 0),
            (10, "sh", 1),
            (11, "a) S 99 (", 10),
            (12, "c", 11),
            (20, "other", 1),
        ]);
        let procfs = ProcFs::new(d.path().to_path_buf());
        assert_eq!(tree(&procfs, 10), vec![10, 11, 12]);
        assert_eq!(ancestors(d.path(), 12), vec![11, 10, 1]);
        assert_eq!(tree(&procfs, 999), vec![999]);
        assert!(ancestors(d.path(), 999).is_empty());
        assert_eq!(start_ticks(&d.path().join("proc"), 10), Some(100));
        assert_eq!(start_ticks(&d.path().join("proc"), 999), None);
    }
}
