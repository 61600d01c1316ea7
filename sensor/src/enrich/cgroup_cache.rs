//! cgroup id (what the kernel stamps on every event) → cgroup path and attribution.
//!
//! The id is the inode of the cgroup v2 directory. It is resolved once per id: first through
//! the event's process (`/proc/<pid>/cgroup`, checked against the id, since the process may
//! have moved), else by walking the cgroup v2 tree. Misses are remembered briefly so a burst
//! from an unknown cgroup costs one walk, not one per event.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use super::{Attribution, ProcFs, attribute, parse_proc_cgroup};

/// Bounds: ids cached, directories one walk may visit, walk depth.
const MAX_ENTRIES: usize = 8192;
const MAX_WALK: usize = 20_000;
const MAX_DEPTH: usize = 12;
/// A failed resolution is retried only after this many nanoseconds.
const MISS_RETRY_NS: u64 = 2_000_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct CgroupInfo {
    pub path: String,
    pub attribution: Attribution,
    /// Name and image of the container, from the runtime's state (looked up once).
    pub meta: Option<super::container_meta::ContainerMeta>,
}

pub struct CgroupCache {
    root: Option<PathBuf>,
    host_root: PathBuf,
    /// Container metadata lookups so far per cgroup: (tries, last try at).
    meta_tries: HashMap<u64, (u8, u64)>,
    known: HashMap<u64, CgroupInfo>,
    misses: HashMap<u64, u64>,
    pub walks: u64,
}

/// Find the cgroup v2 mount under `root` (a hybrid host has it at `sys/fs/cgroup/unified`).
pub fn cgroup2_root(root: &Path) -> Option<PathBuf> {
    ["sys/fs/cgroup/unified", "sys/fs/cgroup"]
        .iter()
        .map(|b| root.join(b))
        .find(|b| b.join("cgroup.controllers").is_file())
}

impl CgroupCache {
    pub fn new(host_root: &Path) -> Self {
        Self {
            root: cgroup2_root(host_root),
            host_root: host_root.to_owned(),
            meta_tries: HashMap::new(),
            known: HashMap::new(),
            misses: HashMap::new(),
            walks: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }

    /// Resolve `id` for an event of `pid` at boot time `now_ns`.
    pub fn resolve(
        &mut self,
        id: u64,
        pid: u32,
        procfs: &ProcFs,
        now_ns: u64,
    ) -> Option<&CgroupInfo> {
        if id == 0 {
            return None;
        }
        if !self.known.contains_key(&id) {
            if let Some(&at) = self.misses.get(&id)
                && now_ns.saturating_sub(at) < MISS_RETRY_NS
            {
                return None;
            }
            match self.lookup(id, pid, procfs) {
                Some(path) => {
                    if self.known.len() >= MAX_ENTRIES {
                        // Rare (thousands of live cgroups); rebuilding is cheap.
                        self.known.clear();
                    }
                    let attribution = attribute(&path);
                    let meta = attribution
                        .container
                        .as_ref()
                        .and_then(|c| super::container_meta::lookup(&self.host_root, c));
                    self.known.insert(
                        id,
                        CgroupInfo {
                            path,
                            attribution,
                            meta,
                        },
                    );
                    self.misses.remove(&id);
                    self.meta_tries.insert(id, (1, now_ns));
                }
                None => {
                    if self.misses.len() >= MAX_ENTRIES {
                        self.misses.clear();
                    }
                    self.misses.insert(id, now_ns);
                    return None;
                }
            }
        }
        self.retry_meta(id, now_ns);
        self.known.get(&id)
    }

    /// A runtime writes its state after the container's first process runs: a container seen
    /// before that gets its name and image on a later event (a few tries, a second apart).
    fn retry_meta(&mut self, id: u64, now_ns: u64) {
        const TRIES: u8 = 10;
        let Some(info) = self.known.get_mut(&id) else {
            return;
        };
        if info.meta.is_some() {
            return;
        }
        let Some(c) = info.attribution.container.as_ref() else {
            return;
        };
        let entry = self.meta_tries.entry(id).or_insert((0, 0));
        if entry.0 >= TRIES || now_ns.saturating_sub(entry.1) < 1_000_000_000 {
            return;
        }
        *entry = (entry.0 + 1, now_ns);
        info.meta = super::container_meta::lookup(&self.host_root, c);
        if self.meta_tries.len() >= MAX_ENTRIES {
            self.meta_tries.clear();
        }
    }

    fn lookup(&mut self, id: u64, pid: u32, procfs: &ProcFs) -> Option<String> {
        let cgroup_file = procfs.root().join(format!("proc/{pid}/cgroup"));
        if let Ok(text) = std::fs::read_to_string(cgroup_file)
            && let Some(path) = parse_proc_cgroup(&text)
            && procfs.cgroup_id(path) == Some(id)
        {
            return Some(path.to_owned());
        }
        self.walk(id)
    }

    fn walk(&mut self, id: u64) -> Option<String> {
        let root = self.root.clone()?;
        self.walks += 1;
        if std::fs::metadata(&root).map(|m| m.ino()).ok() == Some(id) {
            return Some("/".into());
        }
        let mut stack = vec![(root.clone(), 0usize)];
        let mut visited = 0usize;
        while let Some((dir, depth)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                visited += 1;
                if visited > MAX_WALK {
                    return None;
                }
                let Ok(ft) = entry.file_type() else { continue };
                if !ft.is_dir() {
                    continue;
                }
                let path = entry.path();
                if entry.metadata().map(|m| m.ino()).ok() == Some(id) {
                    let rel = path.strip_prefix(&root).ok()?;
                    return Some(format!("/{}", rel.display()));
                }
                if depth + 1 < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_by_walking_a_fixture_tree_and_remembers_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("sys/fs/cgroup/unified");
        let leaf = cg.join("system.slice/nginx.service");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(cg.join("cgroup.controllers"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        let id = std::fs::metadata(&leaf).unwrap().ino();
        let procfs = ProcFs::new(dir.path().to_path_buf());
        let mut cache = CgroupCache::new(dir.path());
        let info = cache.resolve(id, 4242, &procfs, 0).unwrap().clone();
        assert_eq!(info.path, "/system.slice/nginx.service");
        assert_eq!(
            info.attribution.systemd_unit.as_deref(),
            Some("nginx.service")
        );
        assert_eq!(cache.walks, 1);
        // Cached: no second walk.
        cache.resolve(id, 4242, &procfs, 1).unwrap();
        assert_eq!(cache.walks, 1);
        // A miss is not retried inside the window.
        assert!(cache.resolve(999_999_999, 1, &procfs, 10).is_none());
        assert!(cache.resolve(999_999_999, 1, &procfs, 20).is_none());
        assert_eq!(cache.walks, 2);
        assert!(
            cache
                .resolve(999_999_999, 1, &procfs, 10 + MISS_RETRY_NS)
                .is_none()
        );
        assert_eq!(cache.walks, 3);
    }

    #[test]
    fn resolves_through_the_process_first() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("sys/fs/cgroup/unified");
        let leaf = cg.join("mycontainer");
        std::fs::create_dir_all(&leaf).unwrap();
        std::fs::write(cg.join("cgroup.controllers"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("proc/77")).unwrap();
        std::fs::write(
            dir.path().join("proc/77/cgroup"),
            "12:pids:/x\n0::/mycontainer\n",
        )
        .unwrap();
        let id = std::fs::metadata(&leaf).unwrap().ino();
        let procfs = ProcFs::new(dir.path().to_path_buf());
        let mut cache = CgroupCache::new(dir.path());
        let info = cache.resolve(id, 77, &procfs, 0).unwrap();
        assert_eq!(info.path, "/mycontainer");
        assert_eq!(cache.walks, 0);
    }
}
