//! Least privilege after start: once the probes are loaded and attached, the agent keeps only
//! the capabilities its running work needs and drops the rest from every thread, bounding set
//! included, so neither the agent nor anything it could be tricked into starting gets them back.
//!
//! Capabilities are per thread and the agent has many (tokio workers, pipeline, responder,
//! outputs). Like libpsx, the drop is broadcast: every thread gets a real-time signal whose
//! handler applies the same sets with raw syscalls (async-signal-safe), and the result is
//! checked thread by thread in /proc until all agree.

use std::{
    collections::BTreeSet,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use caps::Capability;

#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    #[error("cannot read {path}: {source}")]
    Proc {
        path: String,
        source: std::io::Error,
    },
    #[error("capset on the calling thread failed: {0}")]
    Capset(std::io::Error),
    #[error("cannot install the capability-drop signal handler: {0}")]
    Handler(std::io::Error),
    #[error("{0} thread(s) still hold dropped capabilities after the broadcast")]
    Stragglers(usize),
}

/// What the running agent uses each kept capability for (shown by `sensor status`, and the
/// list the systemd unit's CapabilityBoundingSet mirrors).
pub const RUNTIME: &[(Capability, &str)] = &[
    (
        Capability::CAP_BPF,
        "map updates; attaching isolation, enforcement and learning programs",
    ),
    (
        Capability::CAP_PERFMON,
        "attaching the syscall recorder while a workload learns",
    ),
    (
        Capability::CAP_NET_ADMIN,
        "attaching cgroup network programs (isolation)",
    ),
    (
        Capability::CAP_SYS_PTRACE,
        "reading other processes' /proc entries (exe, environ, maps, fds) for enrichment and evidence",
    ),
    (
        Capability::CAP_DAC_READ_SEARCH,
        "reading any file for hashes, DLP scans and evidence",
    ),
    (
        Capability::CAP_DAC_OVERRIDE,
        "quarantining files in directories root does not own",
    ),
    (
        Capability::CAP_FOWNER,
        "restoring a quarantined file's mode and times",
    ),
    (
        Capability::CAP_CHOWN,
        "restoring a quarantined file's owner",
    ),
    (Capability::CAP_KILL, "kill containment"),
    (
        Capability::CAP_SYS_NICE,
        "moving processes that hold more capabilities than the agent into containment cgroups (the cpuset controller's attach check)",
    ),
];

/// Needed only where the kernel predates CAP_BPF and CAP_PERFMON (Linux 5.8): there every
/// bpf() and perf_event_open() call needs CAP_SYS_ADMIN.
pub const LEGACY_BPF: (Capability, &str) = (
    Capability::CAP_SYS_ADMIN,
    "bpf() on a kernel without CAP_BPF (before 5.8)",
);

/// What [`drop_to_runtime`] did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct DropReport {
    /// Capabilities still effective, by name.
    pub kept: Vec<String>,
    /// Capabilities removed from the permitted set.
    pub dropped: Vec<String>,
    /// Threads checked in /proc that hold exactly the kept set.
    pub threads: usize,
}

/// The mask every thread ends with (permitted = effective); the bounding set is cut to it.
static KEEP: AtomicU64 = AtomicU64::new(u64::MAX);
/// Highest capability number the kernel knows (from /proc/sys/kernel/cap_last_cap).
static LAST_CAP: AtomicU64 = AtomicU64::new(40);

/// The signal for the broadcast: glibc keeps the first two real-time signals for itself.
fn drop_signal() -> libc::c_int {
    libc::SIGRTMIN() + 6
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_VERSION_3: u32 = 0x2008_0522;

/// Applies [`KEEP`] to the calling thread: bounding set first (it needs CAP_SETPCAP, which the
/// capset then drops), then permitted = effective = KEEP, inheritable (and so ambient) empty.
/// Raw syscalls only: this runs inside a signal handler.
fn apply_here() -> bool {
    let keep = KEEP.load(Ordering::SeqCst);
    let last = LAST_CAP.load(Ordering::SeqCst).min(63);
    for cap in 0..=last {
        if keep & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments; EINVAL for an unknown cap is fine.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        }
    }
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: keep as u32,
            permitted: keep as u32,
            inheritable: 0,
        },
        CapData {
            effective: (keep >> 32) as u32,
            permitted: (keep >> 32) as u32,
            inheritable: 0,
        },
    ];
    // SAFETY: header and data are valid for the duration of the call; the kernel reads them.
    unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ) == 0
    }
}

extern "C" fn on_drop_signal(_: libc::c_int) {
    // SAFETY: errno is thread-local; saved and restored around the handler's syscalls.
    let saved = unsafe { *libc::__errno_location() };
    apply_here();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The capability sets of one thread, from its /proc status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCaps {
    pub permitted: u64,
    pub effective: u64,
    pub bounding: u64,
    pub ambient: u64,
}

pub fn parse_status(text: &str) -> Option<ThreadCaps> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
    };
    Some(ThreadCaps {
        permitted: field("CapPrm:")?,
        effective: field("CapEff:")?,
        bounding: field("CapBnd:")?,
        // Older kernels have no ambient set.
        ambient: field("CapAmb:").unwrap_or(0),
    })
}

fn read_caps(path: &std::path::Path) -> Result<ThreadCaps, CapsError> {
    let err = |source| CapsError::Proc {
        path: path.display().to_string(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(err)?;
    parse_status(&text).ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no CapPrm/CapEff/CapBnd lines",
        ))
    })
}

/// Thread ids of this process and whether each already holds exactly `keep` (and, with
/// `bounding`, a bounding set cut to it).
fn threads(keep: u64, bounding: bool) -> Result<Vec<(i32, bool)>, CapsError> {
    let dir = "/proc/self/task";
    let entries = std::fs::read_dir(dir).map_err(|source| CapsError::Proc {
        path: dir.into(),
        source,
    })?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        // A thread that exits between listing and reading is simply gone.
        let Ok(c) = read_caps(&e.path().join("status")) else {
            continue;
        };
        let done =
            c.permitted == keep && c.effective == keep && (!bounding || c.bounding & !keep == 0);
        out.push((tid, done));
    }
    Ok(out)
}

fn mask(set: impl IntoIterator<Item = Capability>) -> u64 {
    set.into_iter().fold(0, |m, c| m | c.bitmask())
}

pub fn names(mask: u64) -> Vec<String> {
    caps::all()
        .into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .map(|c| c.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn last_cap() -> u64 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The set the running agent keeps on this kernel.
pub fn runtime_set() -> caps::CapsHashSet {
    let mut keep: caps::CapsHashSet = RUNTIME.iter().map(|(c, _)| *c).collect();
    if last_cap() < Capability::CAP_BPF.index() as u64 {
        keep.insert(LEGACY_BPF.0);
    }
    keep
}

/// Drops every capability not in `keep` from all threads of the process.
pub fn drop_to(keep: &caps::CapsHashSet) -> Result<DropReport, CapsError> {
    let me = read_caps(std::path::Path::new("/proc/thread-self/status"))?;
    // Never "keep" what we do not have: capset refuses to raise.
    let keep_mask = mask(keep.iter().copied()) & me.permitted;
    KEEP.store(keep_mask, Ordering::SeqCst);
    // Cutting the bounding set needs CAP_SETPCAP; without it only the other sets shrink.
    let bounding = me.effective & Capability::CAP_SETPCAP.bitmask() != 0;
    LAST_CAP.store(last_cap(), Ordering::SeqCst);

    let sig = drop_signal();
    // SAFETY: a zeroed sigaction with a plain handler and SA_RESTART is valid; the handler
    // only makes raw syscalls.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_drop_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(sig, &action, std::ptr::null_mut()) != 0 {
            return Err(CapsError::Handler(std::io::Error::last_os_error()));
        }
    }
    if !apply_here() {
        return Err(CapsError::Capset(std::io::Error::last_os_error()));
    }
    let pid = std::process::id() as libc::pid_t;
    // Threads started meanwhile inherit from a thread that has already dropped, or get the
    // next round's signal.
    for _ in 0..50 {
        let list = threads(keep_mask, bounding)?;
        let pending: Vec<i32> = list.iter().filter(|(_, d)| !d).map(|(t, _)| *t).collect();
        if pending.is_empty() {
            return Ok(DropReport {
                kept: names(keep_mask),
                dropped: names(me.permitted & !keep_mask),
                threads: list.len(),
            });
        }
        for tid in pending {
            // SAFETY: tgkill to a thread of our own process with a handled signal.
            unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, sig) };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = threads(keep_mask, bounding)?
        .iter()
        .filter(|(_, d)| !d)
        .count();
    Err(CapsError::Stragglers(left))
}

/// The capabilities the agent drops to after attaching (see [`RUNTIME`]).
pub fn drop_to_runtime() -> Result<DropReport, CapsError> {
    drop_to(&runtime_set())
}

/// The process's current state for `sensor status`: the main thread's effective set and
/// whether any thread holds more.
pub fn current() -> Result<(ThreadCaps, bool), CapsError> {
    let main = read_caps(std::path::Path::new("/proc/self/status"))?;
    let uniform = threads(main.permitted, false)?.iter().all(|(_, d)| *d);
    Ok((main, uniform))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_and_garbage_does_not() {
        let text = "Name:\tsensor\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\n";
        let c = parse_status(text).unwrap();
        assert_eq!(c.permitted, 0x1ff_ffff_ffff);
        assert_eq!(c.ambient, 0);
        assert!(parse_status("CapPrm:\tzz\nCapEff:\t0\nCapBnd:\t0\n").is_none());
        assert!(parse_status("").is_none());
    }

    #[test]
    fn runtime_set_never_keeps_module_loading_or_rlimits() {
        let keep = runtime_set();
        for c in [
            Capability::CAP_SYS_MODULE,
            Capability::CAP_SYS_RESOURCE,
            Capability::CAP_SETPCAP,
            Capability::CAP_SETUID,
            Capability::CAP_SYS_RAWIO,
            Capability::CAP_NET_RAW,
        ] {
            assert!(!keep.contains(&c), "{c} kept");
        }
        assert!(keep.contains(&Capability::CAP_BPF));
        let names = names(mask(keep.iter().copied()));
        assert!(names.contains(&"CAP_KILL".to_string()), "{names:?}");
    }

    /// Drops in a child process (the test runner's threads must keep theirs) that has started
    /// worker threads first: every one of them must end with the kept set.
    #[test]
    fn drop_reaches_every_thread() {
        // SAFETY: the child only runs Rust code that does not depend on other threads' locks
        // held at fork time (fresh threads, std only) and leaves with _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let stop = stop.clone();
                    std::thread::spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })
                })
                .collect();
            let keep: caps::CapsHashSet = [Capability::CAP_KILL].into_iter().collect();
            let code = match drop_to(&keep) {
                Ok(r) if r.threads >= 5 => {
                    let all =
                        threads(mask(keep.iter().copied()) & r_mask(&r), false).unwrap_or_default();
                    if all.iter().all(|(_, d)| *d) { 0 } else { 3 }
                }
                Ok(_) => 2,
                Err(_) => 1,
            };
            stop.store(true, Ordering::Relaxed);
            for w in workers {
                let _ = w.join();
            }
            // SAFETY: ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status));
        assert_eq!(libc::WEXITSTATUS(status), 0, "child status {status}");
    }

    fn r_mask(r: &DropReport) -> u64 {
        r.kept
            .iter()
            .filter_map(|n| n.parse::<Capability>().ok())
            .fold(0, |m, c| m | c.bitmask())
    }
}
