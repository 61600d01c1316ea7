//! A memory-bounded table of known processes, seeded from procfs and kept
//! current by fork/exec/exit events.
//!
//! Bounds: at most `capacity` entries, each with capped strings and args.
//! When full, exited entries go first (oldest exit first), then the
//! least-recently-touched live entry. Exited entries otherwise linger for a
//! grace period so events that arrive after the exit still get enriched.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::size_of;
use std::time::Duration;

use serde::Serialize;
use tracing::{debug, info, trace};

use super::EnrichError;
use super::cgroup::{Attribution, attribute};
use super::procfs::{
    ArgLimits, COMM_MAX, PATH_MAX, ProcFs, ProcSnapshot, USER_HZ, cap_args, truncate_str,
};

/// Placeholder uid/euid when nothing is known (a fork whose parent we never
/// saw). This is `(uid_t)-1`, which the kernel never assigns, so it cannot
/// be mistaken for root.
pub const UNKNOWN_ID: u32 = u32::MAX;

/// Rough per-node overhead of a BTree entry, for `approx_bytes`.
const BTREE_NODE_OVERHEAD: usize = 16;

/// One process.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessEntry {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub exe: Option<String>,
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub uid: u32,
    pub euid: u32,
    /// Name of the real uid, from the passwd loaded at seed time.
    pub user_name: Option<String>,
    /// Process start in ns since boot (procfs: ticks × 10⁷; events: the
    /// caller's clock at fork/exec).
    pub start_ns: u64,
    /// Cgroup v2 id, 0 when unknown.
    pub cgroup_id: u64,
    pub cgroup_path: Option<String>,
    pub attribution: Attribution,
    pub exited: bool,
    pub exit_code: Option<i32>,
}

/// Per-entry size bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryLimits {
    pub args: ArgLimits,
    /// Applies to exe, cwd and cgroup_path.
    pub max_path_bytes: usize,
    pub max_comm_bytes: usize,
}

impl Default for EntryLimits {
    fn default() -> Self {
        EntryLimits {
            args: ArgLimits::default(),
            max_path_bytes: PATH_MAX,
            max_comm_bytes: COMM_MAX,
        }
    }
}

#[derive(Debug)]
struct Slot {
    entry: ProcessEntry,
    /// LRU tick; only meaningful while live.
    touched: u64,
    /// Caller clock at exit, for grace-period reaping.
    exited_at_ns: Option<u64>,
}

/// See the module docs.
#[derive(Debug)]
pub struct ProcessTable {
    entries: HashMap<u32, Slot>,
    /// Live entries by last touch (tick → pid); first = least recent.
    live_lru: BTreeMap<u64, u32>,
    /// Exited entries by (exit time, pid); first = oldest exit.
    exited: BTreeSet<(u64, u32)>,
    capacity: usize,
    grace_ns: u64,
    /// Internal counter rather than caller timestamps: events from different
    /// CPUs can arrive with out-of-order clocks, ticks cannot.
    tick: u64,
    evictions: u64,
    seed_failures: u64,
    limits: EntryLimits,
    user_names: HashMap<u32, String>,
}

impl ProcessTable {
    /// `capacity` is clamped to at least 1.
    pub fn new(capacity: usize, exited_grace: Duration) -> Self {
        ProcessTable {
            entries: HashMap::new(),
            live_lru: BTreeMap::new(),
            exited: BTreeSet::new(),
            capacity: capacity.max(1),
            grace_ns: u64::try_from(exited_grace.as_nanos()).unwrap_or(u64::MAX),
            tick: 0,
            evictions: 0,
            seed_failures: 0,
            limits: EntryLimits::default(),
            user_names: HashMap::new(),
        }
    }

    pub fn with_limits(mut self, limits: EntryLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Replaces the uid → name map used for `user_name` on later updates.
    pub fn set_user_names(&mut self, names: HashMap<u32, String>) {
        self.user_names = names;
    }

    /// Loads every process in procfs that the table does not already know
    /// (event data is fresher than a scan). One unreadable pid never stops
    /// the scan; failures are counted in [`Self::seed_failures`]. Returns the
    /// number of entries added. Only failing to list /proc is an error.
    pub fn seed_from_procfs(&mut self, fs: &ProcFs) -> Result<usize, EnrichError> {
        let pids = fs.pids()?;
        self.user_names = fs.user_names();
        let mut seeded = 0;
        let mut failed = 0u64;
        // Highest pid first so that, if the table is too small, the low pids
        // (init, long-lived daemons: everyone's ancestors) are the most
        // recently touched and survive eviction.
        for pid in pids.into_iter().rev() {
            if self.entries.contains_key(&pid) {
                continue;
            }
            match fs.snapshot(pid) {
                Ok(snap) => {
                    let cgroup_id = snap
                        .cgroup
                        .as_deref()
                        .and_then(|p| fs.cgroup_id(p))
                        .unwrap_or(0);
                    self.upsert_snapshot(snap, cgroup_id);
                    seeded += 1;
                }
                Err(err) => {
                    failed += 1;
                    debug!(pid, error = %err, "skipping process while seeding");
                }
            }
        }
        self.seed_failures += failed;
        info!(
            seeded,
            failed,
            len = self.len(),
            "seeded process table from procfs"
        );
        Ok(seeded)
    }

    /// Inserts or replaces an entry from a procfs snapshot. Useful to fill in
    /// a process lazily when an event refers to an unknown pid.
    pub fn upsert_snapshot(&mut self, snap: ProcSnapshot, cgroup_id: u64) {
        let entry = ProcessEntry {
            pid: snap.pid,
            ppid: snap.ppid,
            comm: snap.comm,
            exe: snap.exe,
            args: snap.args,
            cwd: snap.cwd,
            uid: snap.uid,
            euid: snap.euid,
            user_name: None,
            start_ns: snap
                .start_time_ticks
                .saturating_mul(1_000_000_000 / USER_HZ),
            cgroup_id,
            cgroup_path: snap.cgroup,
            attribution: Attribution::default(),
            exited: false,
            exit_code: None,
        };
        self.insert(entry);
    }

    /// A new process. The child inherits the parent's image, identity and
    /// cgroup (what fork does); an unknown parent yields a minimal entry.
    /// An existing entry for `child_pid` is replaced: a fork proves the pid
    /// was reused, so old data (e.g. from a lost exit) must not leak.
    pub fn on_fork(&mut self, parent_pid: u32, child_pid: u32, now_ns: u64) {
        let child = match self.entries.get(&parent_pid) {
            Some(parent) => ProcessEntry {
                pid: child_pid,
                ppid: parent_pid,
                start_ns: now_ns,
                exited: false,
                exit_code: None,
                ..parent.entry.clone()
            },
            None => {
                trace!(parent_pid, child_pid, "fork from unknown parent");
                minimal_entry(child_pid, parent_pid, now_ns)
            }
        };
        self.touch(parent_pid);
        self.insert(child);
    }

    /// A successful execve: replaces the image fields, keeps ppid, cwd,
    /// cgroup and start time. Unknown pids get a new entry with ppid 0.
    #[allow(clippy::too_many_arguments)] // mirrors the event's fields
    pub fn on_exec(
        &mut self,
        pid: u32,
        exe: String,
        args: Vec<String>,
        uid: u32,
        euid: u32,
        comm: String,
        now_ns: u64,
    ) {
        let Some(slot) = self.entries.get_mut(&pid) else {
            let mut entry = minimal_entry(pid, 0, now_ns);
            entry.exe = Some(exe);
            entry.args = args;
            entry.uid = uid;
            entry.euid = euid;
            entry.comm = comm;
            self.insert(entry);
            return;
        };
        let e = &mut slot.entry;
        e.exe = Some(exe);
        e.args = args;
        e.uid = uid;
        e.euid = euid;
        e.comm = comm;
        finish_entry(e, &self.limits, &self.user_names);
        self.touch(pid);
    }

    /// The process moved to another cgroup. Needed because runtimes fork
    /// the container init in the host's cgroup and migrate it afterwards,
    /// so cgroup data inherited at fork is stale for container processes.
    pub fn on_cgroup_change(&mut self, pid: u32, cgroup_id: u64, cgroup_path: Option<String>) {
        let Some(slot) = self.entries.get_mut(&pid) else {
            return;
        };
        let e = &mut slot.entry;
        e.cgroup_id = cgroup_id;
        e.cgroup_path = cgroup_path;
        finish_entry(e, &self.limits, &self.user_names);
        self.touch(pid);
    }

    /// Replaces a process's args (after secrets in them were redacted), bounded as at exec.
    pub fn set_args(&mut self, pid: u32, args: Vec<String>) {
        let Some(slot) = self.entries.get_mut(&pid) else {
            return;
        };
        slot.entry.args = args;
        finish_entry(&mut slot.entry, &self.limits, &self.user_names);
    }

    /// Records a process's working directory (read from /proc at exec; bounded like paths).
    pub fn set_cwd(&mut self, pid: u32, cwd: String) {
        let Some(slot) = self.entries.get_mut(&pid) else {
            return;
        };
        slot.entry.cwd = Some(cwd);
        finish_entry(&mut slot.entry, &self.limits, &self.user_names);
    }

    /// Marks a process exited. It stays visible until `reap` runs after the
    /// grace period, or until evicted. Duplicate or unknown exits are ignored.
    pub fn on_exit(&mut self, pid: u32, code: i32, now_ns: u64) {
        let Some(slot) = self.entries.get_mut(&pid) else {
            trace!(pid, "exit of unknown pid");
            return;
        };
        if slot.entry.exited {
            return;
        }
        slot.entry.exited = true;
        slot.entry.exit_code = Some(code);
        slot.exited_at_ns = Some(now_ns);
        self.live_lru.remove(&slot.touched);
        self.exited.insert((now_ns, pid));
    }

    /// Removes exited entries whose grace period has passed. Returns how
    /// many were removed.
    pub fn reap(&mut self, now_ns: u64) -> usize {
        let mut reaped = 0;
        while let Some(&(exited_at, pid)) = self.exited.first() {
            if exited_at.saturating_add(self.grace_ns) > now_ns {
                break;
            }
            self.remove(pid);
            reaped += 1;
        }
        reaped
    }

    pub fn get(&self, pid: u32) -> Option<&ProcessEntry> {
        self.entries.get(&pid).map(|slot| &slot.entry)
    }

    /// The ancestors of `pid` (parent first, excluding `pid` itself), at most
    /// `max_depth` of them. Stops at pid 0, at an unknown pid, or when a pid
    /// repeats, so a corrupted ppid loop terminates.
    pub fn ancestry(&self, pid: u32, max_depth: usize) -> Ancestry<'_> {
        let next = self.get(pid).map_or(0, |e| e.ppid);
        let mut seen = Vec::with_capacity(max_depth.min(64) + 1);
        seen.push(pid);
        Ancestry {
            table: self,
            next,
            remaining: max_depth,
            seen,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries removed because the table was full (not counting reaping).
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Pids that could not be read during seeding, cumulative.
    pub fn seed_failures(&self) -> u64 {
        self.seed_failures
    }

    /// A rough estimate of heap + inline memory held by the table, for
    /// reporting. Counts string/vec capacities and approximate map overhead.
    pub fn approx_bytes(&self) -> usize {
        let slots = self.entries.capacity() * (size_of::<u32>() + size_of::<Slot>() + 1);
        let heap: usize = self
            .entries
            .values()
            .map(|s| entry_heap_bytes(&s.entry))
            .sum();
        let lru = self.live_lru.len() * (size_of::<u64>() + size_of::<u32>() + BTREE_NODE_OVERHEAD);
        let exited = self.exited.len() * (size_of::<(u64, u32)>() + BTREE_NODE_OVERHEAD);
        let names = self.user_names.capacity() * (size_of::<u32>() + size_of::<String>() + 1)
            + self
                .user_names
                .values()
                .map(String::capacity)
                .sum::<usize>();
        size_of::<Self>() + slots + heap + lru + exited + names
    }

    /// Inserts a live entry (replacing any same-pid entry), then enforces
    /// the capacity.
    fn insert(&mut self, mut entry: ProcessEntry) {
        finish_entry(&mut entry, &self.limits, &self.user_names);
        let pid = entry.pid;
        self.remove(pid);
        let touched = self.next_tick();
        self.live_lru.insert(touched, pid);
        self.entries.insert(
            pid,
            Slot {
                entry,
                touched,
                exited_at_ns: None,
            },
        );
        self.enforce_capacity();
    }

    fn remove(&mut self, pid: u32) -> Option<Slot> {
        let slot = self.entries.remove(&pid)?;
        match slot.exited_at_ns {
            Some(at) => self.exited.remove(&(at, pid)),
            None => self.live_lru.remove(&slot.touched).is_some(),
        };
        Some(slot)
    }

    /// Marks a live entry as recently used; exited entries keep their
    /// exit-time ordering.
    fn touch(&mut self, pid: u32) {
        let tick = self.next_tick();
        let Some(slot) = self.entries.get_mut(&pid) else {
            return;
        };
        if slot.exited_at_ns.is_some() {
            return;
        }
        self.live_lru.remove(&slot.touched);
        slot.touched = tick;
        self.live_lru.insert(tick, pid);
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn enforce_capacity(&mut self) {
        while self.entries.len() > self.capacity {
            let victim = self
                .exited
                .first()
                .map(|&(_, pid)| pid)
                .or_else(|| self.live_lru.first_key_value().map(|(_, &pid)| pid));
            let Some(pid) = victim else {
                // Indices out of sync would be a bug; never loop forever.
                debug!(len = self.entries.len(), "eviction found no candidate");
                break;
            };
            self.remove(pid);
            self.evictions += 1;
            trace!(pid, "evicted process entry");
        }
    }
}

/// Iterator returned by [`ProcessTable::ancestry`].
#[derive(Debug)]
pub struct Ancestry<'a> {
    table: &'a ProcessTable,
    next: u32,
    remaining: usize,
    /// Linear scan is fine: depth is small and this avoids hashing.
    seen: Vec<u32>,
}

impl<'a> Iterator for Ancestry<'a> {
    type Item = &'a ProcessEntry;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 || self.next == 0 || self.seen.contains(&self.next) {
            self.remaining = 0;
            return None;
        }
        let Some(entry) = self.table.get(self.next) else {
            self.remaining = 0;
            return None;
        };
        self.remaining -= 1;
        self.seen.push(self.next);
        self.next = entry.ppid;
        Some(entry)
    }
}

fn minimal_entry(pid: u32, ppid: u32, start_ns: u64) -> ProcessEntry {
    ProcessEntry {
        pid,
        ppid,
        comm: String::new(),
        exe: None,
        args: Vec::new(),
        cwd: None,
        uid: UNKNOWN_ID,
        euid: UNKNOWN_ID,
        user_name: None,
        start_ns,
        cgroup_id: 0,
        cgroup_path: None,
        attribution: Attribution::default(),
        exited: false,
        exit_code: None,
    }
}

/// Re-establishes an entry's invariants after its fields changed: bounded
/// sizes, and derived fields (user name, attribution) matching the data.
fn finish_entry(e: &mut ProcessEntry, limits: &EntryLimits, names: &HashMap<u32, String>) {
    truncate_str(&mut e.comm, limits.max_comm_bytes);
    for path in [&mut e.exe, &mut e.cwd, &mut e.cgroup_path]
        .into_iter()
        .flatten()
    {
        truncate_str(path, limits.max_path_bytes);
    }
    e.args = cap_args(std::mem::take(&mut e.args), limits.args);
    e.user_name = names.get(&e.uid).cloned();
    // Attribution only reads the (already bounded) path, so its strings are
    // bounded too.
    e.attribution = e.cgroup_path.as_deref().map(attribute).unwrap_or_default();
}

fn entry_heap_bytes(e: &ProcessEntry) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::capacity);
    let args = e.args.capacity() * size_of::<String>()
        + e.args.iter().map(String::capacity).sum::<usize>();
    let attribution = opt(&e.attribution.systemd_unit)
        + e.attribution.container.as_ref().map_or(0, |c| {
            c.id.capacity() + c.pod_uid.as_ref().map_or(0, String::capacity)
        });
    e.comm.capacity()
        + opt(&e.exe)
        + opt(&e.cwd)
        + opt(&e.cgroup_path)
        + opt(&e.user_name)
        + args
        + attribution
}

#[cfg(test)]
mod tests {
    use super::super::cgroup::Runtime;
    use super::super::procfs::test_support::Fixture;
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn table(capacity: usize) -> ProcessTable {
        ProcessTable::new(capacity, Duration::from_secs(5))
    }

    fn exec(t: &mut ProcessTable, pid: u32, exe: &str, now: u64) {
        let comm = exe.rsplit('/').next().unwrap_or(exe).to_owned();
        t.on_exec(pid, exe.into(), vec![exe.into()], 1000, 1000, comm, now);
    }

    fn pids(it: Ancestry<'_>) -> Vec<u32> {
        it.map(|e| e.pid).collect()
    }

    #[test]
    fn fork_inherits_and_exec_replaces_image() {
        let mut t = table(100);
        exec(&mut t, 100, "/bin/bash", 1);
        t.on_cgroup_change(100, 77, Some("/system.slice/sshd.service".into()));
        t.on_fork(100, 101, 2);

        let child = t.get(101).expect("child");
        assert_eq!(child.ppid, 100);
        assert_eq!(child.exe.as_deref(), Some("/bin/bash"));
        assert_eq!(child.cgroup_id, 77);
        assert_eq!(
            child.attribution.systemd_unit.as_deref(),
            Some("sshd.service")
        );
        assert_eq!(child.start_ns, 2);
        assert_eq!(child.uid, 1000);

        t.on_exec(
            101,
            "/usr/bin/curl".into(),
            vec!["curl".into(), "x".into()],
            1000,
            0,
            "curl".into(),
            3,
        );
        let child = t.get(101).expect("child");
        assert_eq!(child.ppid, 100, "exec keeps ppid");
        assert_eq!(child.exe.as_deref(), Some("/usr/bin/curl"));
        assert_eq!(child.args, vec!["curl", "x"]);
        assert_eq!((child.uid, child.euid), (1000, 0));
        assert_eq!(child.comm, "curl");
        assert_eq!(child.start_ns, 2, "exec keeps start time");
        assert_eq!(child.cgroup_id, 77, "exec keeps cgroup");

        // The parent is unaffected.
        assert_eq!(t.get(100).and_then(|e| e.exe.as_deref()), Some("/bin/bash"));
    }

    #[test]
    fn fork_from_unknown_parent_is_minimal() {
        let mut t = table(10);
        t.on_fork(5, 6, 9);
        let e = t.get(6).expect("entry");
        assert_eq!(
            (e.ppid, e.uid, e.euid, e.exe.as_ref()),
            (5, UNKNOWN_ID, UNKNOWN_ID, None)
        );
        assert!(t.get(5).is_none());
    }

    #[test]
    fn exec_of_unknown_pid_creates_entry() {
        let mut t = table(10);
        exec(&mut t, 50, "/usr/bin/env", 4);
        let e = t.get(50).expect("entry");
        assert_eq!((e.ppid, e.start_ns, e.comm.as_str()), (0, 4, "env"));
    }

    #[test]
    fn exit_then_grace_then_reap() {
        let mut t = table(10);
        exec(&mut t, 1, "/sbin/init", 0);
        t.on_fork(1, 2, SEC);
        t.on_exit(2, 137, 10 * SEC);
        t.on_exit(2, 0, 11 * SEC); // duplicate: ignored

        let e = t.get(2).expect("still visible during grace");
        assert!(e.exited);
        assert_eq!(e.exit_code, Some(137));

        assert_eq!(t.reap(14 * SEC), 0);
        assert!(t.get(2).is_some());
        assert_eq!(t.reap(15 * SEC), 1);
        assert!(t.get(2).is_none());
        assert!(t.get(1).is_some(), "live entries are never reaped");
        assert_eq!(t.len(), 1);
        t.on_exit(99, 1, 0); // unknown: ignored
    }

    #[test]
    fn fork_reusing_exited_pid_replaces_entry() {
        let mut t = table(10);
        exec(&mut t, 1, "/sbin/init", 0);
        exec(&mut t, 40, "/old", 0);
        t.on_exit(40, 0, SEC);
        t.on_fork(1, 40, 2 * SEC);
        let e = t.get(40).expect("entry");
        assert!(!e.exited);
        assert_eq!(e.exe.as_deref(), Some("/sbin/init"));
        // The old exit record must not reap the new process.
        assert_eq!(t.reap(100 * SEC), 0);
        assert!(t.get(40).is_some());
    }

    #[test]
    fn ancestry_three_levels() {
        let mut t = table(10);
        exec(&mut t, 1, "/sbin/init", 0);
        t.on_fork(1, 10, 1);
        exec(&mut t, 10, "/usr/sbin/sshd", 1);
        t.on_fork(10, 20, 2);
        exec(&mut t, 20, "/bin/bash", 2);
        t.on_fork(20, 30, 3);
        exec(&mut t, 30, "/usr/bin/curl", 3);

        assert_eq!(pids(t.ancestry(30, 10)), vec![20, 10, 1]);
        assert_eq!(pids(t.ancestry(30, 2)), vec![20, 10]);
        assert_eq!(pids(t.ancestry(30, 0)), Vec::<u32>::new());
        assert_eq!(pids(t.ancestry(1, 10)), Vec::<u32>::new());
        assert_eq!(pids(t.ancestry(999, 10)), Vec::<u32>::new());
        let exes: Vec<_> = t
            .ancestry(30, 10)
            .filter_map(|e| e.exe.as_deref())
            .collect();
        assert_eq!(exes, vec!["/bin/bash", "/usr/sbin/sshd", "/sbin/init"]);
    }

    #[test]
    fn ancestry_survives_ppid_cycles() {
        let mut t = table(10);
        // 1 -> 2 -> 3 -> 1 via forks from unknown parents.
        t.on_fork(3, 1, 0);
        t.on_fork(1, 2, 0);
        t.on_fork(2, 3, 0);
        assert_eq!(t.get(1).map(|e| e.ppid), Some(3));
        assert_eq!(pids(t.ancestry(3, 1000)), vec![2, 1]);
        // Self-parent.
        t.on_fork(7, 7, 0);
        assert_eq!(pids(t.ancestry(7, usize::MAX)), Vec::<u32>::new());
        // Fused after termination.
        let mut it = t.ancestry(3, 1000);
        while it.next().is_some() {}
        assert!(it.next().is_none());
    }

    #[test]
    fn eviction_prefers_exited_then_lru() {
        let mut t = table(3);
        exec(&mut t, 1, "/a", 0);
        exec(&mut t, 2, "/b", 0);
        exec(&mut t, 3, "/c", 0);
        t.on_exit(2, 0, 5);
        // Full; pid 2 is exited, so it goes first even though 1 is older.
        exec(&mut t, 4, "/d", 0);
        assert!(t.get(2).is_none());
        assert_eq!(t.evictions(), 1);

        // Touch 1 so 3 becomes least recently used.
        exec(&mut t, 1, "/a2", 1);
        exec(&mut t, 5, "/e", 1);
        assert!(t.get(3).is_none());
        assert!(t.get(1).is_some() && t.get(4).is_some() && t.get(5).is_some());
        assert_eq!(t.evictions(), 2);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn exited_entries_are_evicted_oldest_exit_first() {
        let mut t = table(3);
        for pid in 1..=3 {
            exec(&mut t, pid, "/x", 0);
        }
        t.on_exit(3, 0, 10);
        t.on_exit(1, 0, 20);
        exec(&mut t, 4, "/x", 0);
        assert!(t.get(3).is_none());
        assert!(t.get(1).is_some());
    }

    #[test]
    fn capacity_holds_under_churn() {
        let mut t = table(50);
        for pid in 1..10_000u32 {
            t.on_fork(pid.saturating_sub(1), pid, u64::from(pid));
            if pid % 3 == 0 {
                t.on_exit(pid, 0, u64::from(pid));
            }
            assert!(t.len() <= 50);
        }
        assert_eq!(t.evictions(), 10_000 - 1 - 50);
        assert!(t.approx_bytes() > 0);
    }

    #[test]
    fn per_entry_memory_is_bounded() {
        let mut t = table(10);
        let args: Vec<String> = (0..10_000).map(|i| format!("{i:>100}")).collect();
        t.on_exec(1, "e".repeat(100_000), args, 0, 0, "c".repeat(1000), 0);
        let e = t.get(1).expect("entry");
        assert_eq!(e.args.len(), 256);
        assert!(e.args.iter().map(String::len).sum::<usize>() <= 64 * 1024);
        assert_eq!(e.exe.as_ref().map(String::len), Some(PATH_MAX));
        assert_eq!(e.comm.len(), COMM_MAX);
        assert!(t.approx_bytes() < 200 * 1024, "{}", t.approx_bytes());
    }

    #[test]
    fn seeding_skips_bad_pids_and_counts_them() {
        let f = Fixture::new("seed");
        let cid = "3f9a6c1e2b7d4a5f8e0c1b2a3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f506";
        f.add_process(1, 0, "systemd", 0, "/init.scope");
        f.add_process(500, 1, "dockerd", 0, "/system.slice/docker.service");
        f.add_process(
            900,
            500,
            "nginx",
            101,
            &format!("/system.slice/docker-{cid}.scope"),
        );
        f.write(
            "etc/passwd",
            "root:x:0:0::/root:/bin/sh\nsystemd-network:x:101:101::/:/bin/false\n",
        );
        // Hostile/broken pids.
        f.add_process(600, 1, "x", 0, "/");
        f.write("proc/600/stat", "garbage");
        f.add_process(601, 1, "x", 0, "/");
        std::fs::remove_file(f.path().join("proc/601/status")).expect("rm");
        std::fs::create_dir_all(f.path().join("proc/602")).expect("mkdir");

        let mut t = table(100);
        // An event-sourced entry is fresher than the scan and must be kept.
        t.on_fork(1, 500, 0);
        exec(&mut t, 500, "/usr/bin/dockerd-new", 0);

        let fs = ProcFs::new(f.path().to_path_buf());
        let seeded = t.seed_from_procfs(&fs).expect("seed");
        assert_eq!(seeded, 2);
        assert_eq!(t.seed_failures(), 3);
        assert_eq!(
            t.get(500).and_then(|e| e.exe.as_deref()),
            Some("/usr/bin/dockerd-new")
        );

        let nginx = t.get(900).expect("nginx");
        assert_eq!(nginx.user_name.as_deref(), Some("systemd-network"));
        assert_eq!(nginx.start_ns, 4242 * 10_000_000);
        let c = nginx.attribution.container.as_ref().expect("container");
        assert_eq!((c.runtime, c.id.as_str()), (Runtime::Docker, cid));
        assert_eq!(pids(t.ancestry(900, 8)), vec![500, 1]);
        assert_eq!(t.get(1).and_then(|e| e.user_name.as_deref()), Some("root"));
    }

    #[test]
    fn seeding_into_small_table_keeps_low_pids() {
        let f = Fixture::new("seed-small");
        for pid in 1..=10 {
            f.add_process(pid, pid - 1, "p", 0, "/");
        }
        let mut t = table(3);
        let fs = ProcFs::new(f.path().to_path_buf());
        assert_eq!(t.seed_from_procfs(&fs).expect("seed"), 10);
        assert_eq!(t.len(), 3);
        assert!(t.get(1).is_some() && t.get(2).is_some() && t.get(3).is_some());
        assert_eq!(t.evictions(), 7);
    }

    #[test]
    fn seeding_without_proc_is_an_error() {
        let mut t = table(3);
        let fs = ProcFs::new("/nonexistent/enrich-root".into());
        assert!(t.seed_from_procfs(&fs).is_err());
    }

    #[test]
    fn entry_serializes() {
        fn assert_serialize<T: Serialize>(_: &T) {}
        let mut t = table(3);
        exec(&mut t, 1, "/x", 0);
        assert_serialize(t.get(1).expect("entry"));
    }
}
