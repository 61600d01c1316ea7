//! A procfs reader over an injectable root, so tests (and sensors running in
//! a container with the host's / mounted elsewhere) can point it anywhere.
//!
//! Everything under /proc/<pid> is controlled in part by the process (comm,
//! cmdline) and can disappear at any moment, so every read is bounded and
//! every parse is fallible.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tracing::debug;

use super::EnrichError;
use super::cgroup::parse_proc_cgroup;

/// Kernel clock ticks per second for /proc times. This is a fixed ABI value
/// (USER_HZ) of 100 on every mainstream Linux architecture; using it avoids
/// a libc dependency for sysconf(_SC_CLK_TCK).
pub const USER_HZ: u64 = 100;

/// ESRCH: reading /proc/<pid>/* after the process died (file already open).
const ESRCH: i32 = 3;
/// /proc/<pid>/stat and status are a few KiB at most; the cap only matters
/// for a hostile injected root.
const SMALL_FILE_MAX: u64 = 64 * 1024;
/// /proc/<pid>/cgroup on hybrid hosts has one line per v1 hierarchy.
const CGROUP_FILE_MAX: u64 = 64 * 1024;
/// /proc/stat grows with CPU and IRQ count; `btime` comes after `intr`.
const PROC_STAT_MAX: u64 = 64 * 1024 * 1024;
const PASSWD_MAX: u64 = 16 * 1024 * 1024;
/// Bounds the uid→name map so a huge (e.g. synced from a directory) passwd
/// cannot grow sensor memory without limit.
const PASSWD_MAX_ENTRIES: usize = 65_536;
const USER_NAME_MAX: usize = 256;
/// Kernel comm is 16 bytes (TASK_COMM_LEN); allow some slack for other
/// kernels but never store an unbounded string.
pub(crate) const COMM_MAX: usize = 64;
/// PATH_MAX; readlink results and cgroup paths cannot legitimately exceed it.
pub(crate) const PATH_MAX: usize = 4096;

/// Bounds on a stored command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgLimits {
    /// Total bytes over all args (before lossy UTF-8 conversion).
    pub max_bytes: usize,
    /// Maximum number of args kept.
    pub max_count: usize,
}

impl Default for ArgLimits {
    fn default() -> Self {
        ArgLimits {
            max_bytes: 64 * 1024,
            max_count: 256,
        }
    }
}

/// One process as seen in procfs at a point in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcSnapshot {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Target of /proc/<pid>/exe; keeps the kernel's " (deleted)" suffix.
    /// `None` for kernel threads or when not permitted.
    pub exe: Option<String>,
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    pub egid: u32,
    /// Process start, in clock ticks since boot (stat field 22).
    pub start_time_ticks: u64,
    /// Cgroup v2 path (or v1 name=systemd path on pure-v1 hosts).
    pub cgroup: Option<String>,
}

/// Reader for `<root>/proc` and `<root>/etc/passwd`.
#[derive(Debug, Clone)]
pub struct ProcFs {
    root: PathBuf,
    arg_limits: ArgLimits,
}

struct StatFields {
    comm: String,
    ppid: u32,
    /// Field 9: the kernel's `PF_*` flags.
    flags: u64,
    start_time_ticks: u64,
}

/// `PF_KTHREAD` in stat's flags field.
const PF_KTHREAD: u64 = 0x0020_0000;

struct Ids {
    uid: u32,
    euid: u32,
    gid: u32,
    egid: u32,
}

impl ProcFs {
    /// `root` is normally "/"; files are read from `root/proc/...`.
    pub fn new(root: PathBuf) -> Self {
        ProcFs {
            root,
            arg_limits: ArgLimits::default(),
        }
    }

    pub fn with_arg_limits(mut self, arg_limits: ArgLimits) -> Self {
        self.arg_limits = arg_limits;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn arg_limits(&self) -> ArgLimits {
        self.arg_limits
    }

    /// Numeric entries of `<root>/proc`, sorted ascending.
    pub fn pids(&self) -> Result<Vec<u32>, EnrichError> {
        let dir = self.root.join("proc");
        let entries = fs::read_dir(&dir).map_err(|source| EnrichError::Io {
            pid: None,
            path: dir.clone(),
            source,
        })?;
        // A failing entry (e.g. a pid dir vanishing mid-iteration) is skipped
        // rather than failing the whole listing.
        let mut pids: Vec<u32> = entries
            .filter_map(Result::ok)
            .filter_map(|e| parse_pid(&e.file_name().to_string_lossy()))
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Reads one process. `stat` and `status` are required; everything else
    /// is best effort because kernel threads, zombies and permission limits
    /// routinely make it unavailable.
    pub fn snapshot(&self, pid: u32) -> Result<ProcSnapshot, EnrichError> {
        let dir = self.pid_dir(pid);

        let stat_path = dir.join("stat");
        let stat_raw = read_required(pid, &stat_path, SMALL_FILE_MAX)?;
        let stat = parse_stat(&stat_raw).ok_or_else(|| {
            EnrichError::parse(
                Some(pid),
                &stat_path,
                "stat",
                &String::from_utf8_lossy(&stat_raw),
            )
        })?;

        let status_path = dir.join("status");
        let status_raw = read_required(pid, &status_path, SMALL_FILE_MAX)?;
        let status = String::from_utf8_lossy(&status_raw);
        let ids = parse_status_ids(&status)
            .ok_or_else(|| EnrichError::parse(Some(pid), &status_path, "Uid/Gid", &status))?;

        Ok(ProcSnapshot {
            pid,
            ppid: stat.ppid,
            comm: stat.comm,
            exe: read_link_optional(&dir.join("exe")),
            args: self.read_args(&dir),
            cwd: read_link_optional(&dir.join("cwd")),
            uid: ids.uid,
            euid: ids.euid,
            gid: ids.gid,
            egid: ids.egid,
            start_time_ticks: stat.start_time_ticks,
            cgroup: read_cgroup(&dir),
        })
    }

    /// System boot time (seconds since the epoch) from `/proc/stat` `btime`.
    pub fn boot_time_secs(&self) -> Result<u64, EnrichError> {
        let path = self.root.join("proc/stat");
        let io_err = |source| EnrichError::Io {
            pid: None,
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(io_err)?;
        // Stream line by line: the `intr` line before `btime` can be huge on
        // big machines and we don't need it.
        let mut reader = BufReader::new(file.take(PROC_STAT_MAX));
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io_err)? == 0 {
                return Err(EnrichError::parse(
                    None,
                    &path,
                    "btime",
                    "missing btime line",
                ));
            }
            if let Some(rest) = line.strip_prefix(b"btime ") {
                let text = String::from_utf8_lossy(rest);
                return text
                    .trim()
                    .parse()
                    .map_err(|_| EnrichError::parse(None, &path, "btime", &text));
            }
        }
    }

    /// uid → user name from `<root>/etc/passwd`. Malformed lines are
    /// skipped; a missing file yields an empty map (names are cosmetic).
    pub fn user_names(&self) -> HashMap<u32, String> {
        let path = self.root.join("etc/passwd");
        match read_bounded(&path, PASSWD_MAX) {
            Ok(raw) => parse_passwd(&String::from_utf8_lossy(&raw)),
            Err(err) => {
                debug!(path = %path.display(), error = %err, "cannot read passwd");
                HashMap::new()
            }
        }
    }

    /// Cgroup v2 id (the cgroupfs inode, what `bpf_get_current_cgroup_id`
    /// returns) for a path, looked up under `<root>/sys/fs/cgroup` (or
    /// `.../unified` on hybrid hosts). `None` if unknown or on pure v1.
    pub fn cgroup_id(&self, cgroup_path: &str) -> Option<u64> {
        let relative = cgroup_path.trim_start_matches('/');
        // The path is untrusted; never let it walk out of the mount.
        if relative.split('/').any(|c| c == "..") {
            return None;
        }
        ["sys/fs/cgroup/unified", "sys/fs/cgroup"]
            .iter()
            .map(|base| self.root.join(base))
            // Only a cgroup2 root has cgroup.controllers; on v1 the same
            // directory is a tmpfs whose inodes mean nothing to BPF.
            .filter(|base| base.join("cgroup.controllers").is_file())
            .find_map(|base| {
                let md = fs::metadata(base.join(relative)).ok()?;
                md.is_dir().then(|| md.ino())
            })
    }

    fn pid_dir(&self, pid: u32) -> PathBuf {
        self.root.join("proc").join(pid.to_string())
    }

    fn read_args(&self, dir: &Path) -> Vec<String> {
        // +1 so a cmdline exactly at the limit still has its terminating
        // NUL and is not mistaken for a truncated last arg.
        let limit = u64::try_from(self.arg_limits.max_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        match read_bounded(&dir.join("cmdline"), limit) {
            Ok(raw) => split_cmdline(&raw, self.arg_limits),
            Err(_) => Vec::new(),
        }
    }
}

/// Only all-digit names: `str::parse::<u32>` would also accept "+12".
fn parse_pid(name: &str) -> Option<u32> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    File::open(path)?.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A required per-pid file: "not found"/ESRCH means the process is gone.
fn read_required(pid: u32, path: &Path, limit: u64) -> Result<Vec<u8>, EnrichError> {
    read_bounded(path, limit).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(ESRCH) {
            EnrichError::ProcessGone {
                pid,
                path: path.to_path_buf(),
            }
        } else {
            EnrichError::Io {
                pid: Some(pid),
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

fn read_link_optional(path: &Path) -> Option<String> {
    let target = fs::read_link(path).ok()?;
    let mut s = target.to_string_lossy().into_owned();
    truncate_str(&mut s, PATH_MAX);
    Some(s)
}

fn read_cgroup(dir: &Path) -> Option<String> {
    let raw = read_bounded(&dir.join("cgroup"), CGROUP_FILE_MAX).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let mut path = parse_proc_cgroup(&text)?.to_owned();
    truncate_str(&mut path, PATH_MAX);
    Some(path)
}

/// Parses `/proc/<pid>/stat`. comm is free text chosen by the process and
/// may contain spaces, parentheses and newlines, so it spans from the first
/// '(' to the LAST ')'; the fixed numeric fields follow.
fn parse_stat(raw: &[u8]) -> Option<StatFields> {
    let open = raw.iter().position(|&b| b == b'(')?;
    let close = raw.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let mut comm = String::from_utf8_lossy(&raw[open + 1..close]).into_owned();
    truncate_str(&mut comm, COMM_MAX);

    let rest = std::str::from_utf8(&raw[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let _state = fields.next()?; // field 3
    let ppid = fields.next()?.parse().ok()?; // field 4
    let flags = fields.nth(4)?.parse().ok()?; // field 9
    let start_time_ticks = fields.nth(12)?.parse().ok()?; // field 22
    Some(StatFields {
        comm,
        ppid,
        flags,
        start_time_ticks,
    })
}

/// Parent pid and start time (clock ticks since boot) of `<proc_dir>/stat`, through the same
/// parser as [`ProcFs::snapshot`].
pub fn stat_ppid_start(proc_dir: &Path) -> Option<(u32, u64)> {
    let raw = fs::read(proc_dir.join("stat")).ok()?;
    parse_stat(&raw).map(|s| (s.ppid, s.start_time_ticks))
}

/// Whether `<proc_dir>` is a kernel thread, by the kernel's own flag (a zombie, with no
/// executable and no arguments left, is not one).
pub fn is_kernel_thread(proc_dir: &Path) -> Option<bool> {
    let raw = fs::read(proc_dir.join("stat")).ok()?;
    parse_stat(&raw).map(|s| s.flags & PF_KTHREAD != 0)
}

/// `Uid:`/`Gid:` lines are "real effective saved fs".
fn parse_status_ids(status: &str) -> Option<Ids> {
    let mut uids = None;
    let mut gids = None;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            uids = parse_id_pair(rest);
        } else if let Some(rest) = line.strip_prefix("Gid:") {
            gids = parse_id_pair(rest);
        }
    }
    let (uid, euid) = uids?;
    let (gid, egid) = gids?;
    Some(Ids {
        uid,
        euid,
        gid,
        egid,
    })
}

fn parse_id_pair(rest: &str) -> Option<(u32, u32)> {
    let mut ids = rest.split_ascii_whitespace().map(str::parse::<u32>);
    let real = ids.next()?.ok()?;
    let effective = ids.next()?.ok()?;
    Some((real, effective))
}

/// Splits a NUL-separated cmdline into at most `limits.max_count` args and
/// `limits.max_bytes` total bytes. Invalid UTF-8 becomes U+FFFD; newlines
/// and other control characters are kept verbatim (escaping is the output
/// layer's job). An empty cmdline (kernel threads, zombies) gives no args.
pub(crate) fn split_cmdline(raw: &[u8], limits: ArgLimits) -> Vec<String> {
    // Drop the final terminator only, so a real trailing "" arg survives.
    let raw = raw.strip_suffix(&[0u8]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    let mut budget = limits.max_bytes;
    let mut args = Vec::new();
    for part in raw.split(|&b| b == 0) {
        if args.len() >= limits.max_count || budget == 0 {
            break;
        }
        let take = part.len().min(budget);
        budget -= take;
        args.push(String::from_utf8_lossy(&part[..take]).into_owned());
    }
    args
}

/// Applies the same bounds to args that arrive already split (exec events).
pub(crate) fn cap_args(mut args: Vec<String>, limits: ArgLimits) -> Vec<String> {
    args.truncate(limits.max_count);
    let mut budget = limits.max_bytes;
    let mut keep = 0;
    for arg in &mut args {
        if budget == 0 {
            break;
        }
        let was_empty = arg.is_empty();
        truncate_str(arg, budget);
        // A multibyte char that doesn't fit would leave a misleading "".
        if arg.is_empty() && !was_empty {
            break;
        }
        budget -= arg.len();
        keep += 1;
    }
    args.truncate(keep);
    // Exec events can carry a huge Vec; don't keep its allocation around.
    if args.capacity() > args.len().saturating_mul(2) {
        args.shrink_to_fit();
    }
    args
}

/// Truncates to at most `max` bytes without splitting a character, and
/// releases the excess capacity (truncate alone keeps the allocation, which
/// would defeat the point of bounding memory).
pub(crate) fn truncate_str(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.shrink_to_fit();
}

fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut names = HashMap::new();
    for line in text.lines() {
        if names.len() >= PASSWD_MAX_ENTRIES {
            debug!(
                limit = PASSWD_MAX_ENTRIES,
                "passwd too large, ignoring the rest"
            );
            break;
        }
        if let Some((uid, name)) = parse_passwd_line(line) {
            // First entry wins, matching getpwuid().
            names.entry(uid).or_insert_with(|| name.to_owned());
        }
    }
    names
}

fn parse_passwd_line(line: &str) -> Option<(u32, &str)> {
    let line = line.trim_end_matches('\r');
    // Comments and NIS compat entries (+/-) carry no usable uid.
    if line.starts_with(['#', '+', '-']) {
        return None;
    }
    let mut fields = line.split(':');
    let name = fields.next()?;
    let _password = fields.next()?;
    let uid = fields.next()?.trim().parse().ok()?;
    let valid_name = !name.is_empty()
        && name.len() <= USER_NAME_MAX
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    valid_name.then_some((uid, name))
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Fixture trees for procfs tests, created under the system temp dir
    //! and removed on drop.

    use std::os::unix::fs::symlink;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct Fixture {
        pub root: PathBuf,
    }

    impl Fixture {
        pub fn new(name: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let root = std::env::temp_dir()
                .join(format!("enrich-fixture-{name}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(root.join("proc")).expect("create fixture root");
            Fixture { root }
        }

        pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
            let path = self.root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create fixture dir");
            }
            std::fs::write(path, contents).expect("write fixture file");
        }

        pub fn symlink(&self, rel: &str, target: &str) {
            let path = self.root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create fixture dir");
            }
            symlink(target, path).expect("create fixture symlink");
        }

        pub fn path(&self) -> &Path {
            &self.root
        }

        /// A well-formed process with the given identity.
        pub fn add_process(&self, pid: u32, ppid: u32, comm: &str, uid: u32, cgroup: &str) {
            let d = format!("proc/{pid}");
            self.write(&format!("{d}/stat"), stat_line(pid, comm, ppid, 4242));
            self.write(
                &format!("{d}/status"),
                format!(
                    "Name:\t{comm}\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t{pid}\nPPid:\t{ppid}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nGid:\t{uid}\t{uid}\t{uid}\t{uid}\n"
                ),
            );
            self.write(
                &format!("{d}/cmdline"),
                format!("/usr/bin/{comm}\0--flag\0"),
            );
            self.write(&format!("{d}/cgroup"), format!("0::{cgroup}\n"));
            self.symlink(&format!("{d}/exe"), &format!("/usr/bin/{comm}"));
            self.symlink(&format!("{d}/cwd"), "/");
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    /// A realistic stat line: 52 fields, starttime (field 22) = `start`.
    pub fn stat_line(pid: u32, comm: &str, ppid: u32, start: u64) -> String {
        format!(
            "{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 1029 0 0 0 3 1 0 0 20 0 1 0 {start} 23457792 2815 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{Fixture, stat_line};
    use super::*;

    fn fs_for(f: &Fixture) -> ProcFs {
        ProcFs::new(f.path().to_path_buf())
    }

    #[test]
    fn reads_a_normal_process() {
        let f = Fixture::new("normal");
        f.add_process(42, 1, "nginx", 33, "/system.slice/nginx.service");
        let snap = fs_for(&f).snapshot(42).expect("snapshot");
        assert_eq!(
            snap,
            ProcSnapshot {
                pid: 42,
                ppid: 1,
                comm: "nginx".into(),
                exe: Some("/usr/bin/nginx".into()),
                args: vec!["/usr/bin/nginx".into(), "--flag".into()],
                cwd: Some("/".into()),
                uid: 33,
                euid: 33,
                gid: 33,
                egid: 33,
                start_time_ticks: 4242,
                cgroup: Some("/system.slice/nginx.service".into()),
            }
        );
    }

    #[test]
    fn hostile_comm_uses_last_paren() {
        let f = Fixture::new("comm");
        f.add_process(7, 1, "x", 0, "/");
        f.write("proc/7/stat", stat_line(7, "a) b (c", 3, 99));
        let snap = fs_for(&f).snapshot(7).expect("snapshot");
        assert_eq!(snap.comm, "a) b (c");
        assert_eq!(snap.ppid, 3);
        assert_eq!(snap.start_time_ticks, 99);

        // A comm that imitates the following fields.
        f.write("proc/7/stat", stat_line(7, ") R 999 1 2", 3, 5));
        let snap = fs_for(&f).snapshot(7).expect("snapshot");
        assert_eq!(snap.comm, ") R 999 1 2");
        assert_eq!(snap.ppid, 3);
    }

    #[test]
    fn non_utf8_and_newline_comm() {
        let f = Fixture::new("comm-bytes");
        f.add_process(8, 1, "x", 0, "/");
        let mut raw = b"8 (bad\xff\nname) S 1 ".to_vec();
        raw.extend_from_slice(b"8 8 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 77 0 0\n");
        f.write("proc/8/stat", raw);
        let snap = fs_for(&f).snapshot(8).expect("snapshot");
        assert_eq!(snap.comm, "bad\u{fffd}\nname");
        assert_eq!(snap.start_time_ticks, 77);
    }

    #[test]
    fn kernel_threads_are_told_by_their_flag_not_by_a_missing_executable() {
        // kthreadd's flags (0x208040) carry PF_KTHREAD.
        let k = parse_stat(b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 2 0 0 20 0 1 0 24 0")
            .expect("parses");
        assert!(k.flags & PF_KTHREAD != 0);
        assert_eq!(k.start_time_ticks, 24);
        // A zombie child: no executable, no arguments, and not a kernel thread.
        let child = std::process::Command::new("true").spawn().unwrap();
        let dir = std::path::PathBuf::from(format!("/proc/{}", child.id()));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(dir.join("stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            std::fs::read_to_string(dir.join("stat"))
                .unwrap()
                .contains(") Z ")
        );
        assert_eq!(is_kernel_thread(&dir), Some(false));
        let mut child = child;
        let _ = child.wait();
    }

    #[test]
    fn truncated_stat_is_a_parse_error() {
        let f = Fixture::new("badstat");
        f.add_process(9, 1, "x", 0, "/");
        for bad in ["9 (x) S", "9 x S 1 2 3", ")(", "", "9 (x) S notanumber 1"] {
            f.write("proc/9/stat", bad);
            match fs_for(&f).snapshot(9) {
                Err(EnrichError::Parse {
                    what: "stat",
                    pid: Some(9),
                    ..
                }) => {}
                other => panic!("{bad:?}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn missing_status_means_process_gone() {
        let f = Fixture::new("nostatus");
        f.add_process(10, 1, "x", 0, "/");
        std::fs::remove_file(f.path().join("proc/10/status")).expect("rm status");
        match fs_for(&f).snapshot(10) {
            Err(EnrichError::ProcessGone { pid: 10, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn status_without_uid_is_parse_error() {
        let f = Fixture::new("baduid");
        f.add_process(11, 1, "x", 0, "/");
        f.write("proc/11/status", "Name:\tx\nUid:\tfoo\n");
        assert!(matches!(
            fs_for(&f).snapshot(11),
            Err(EnrichError::Parse {
                what: "Uid/Gid",
                ..
            })
        ));
    }

    #[test]
    fn vanished_process_is_process_gone() {
        let f = Fixture::new("gone");
        match fs_for(&f).snapshot(12345) {
            Err(e @ EnrichError::ProcessGone { .. }) => assert_eq!(e.pid(), Some(12345)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn uid_differs_from_euid() {
        let f = Fixture::new("setuid");
        f.add_process(13, 1, "passwd", 0, "/");
        f.write(
            "proc/13/status",
            "Name:\tpasswd\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n",
        );
        let s = fs_for(&f).snapshot(13).expect("snapshot");
        assert_eq!((s.uid, s.euid, s.gid, s.egid), (1000, 0, 1000, 1000));
    }

    #[test]
    fn kernel_thread_has_no_args_exe_or_cgroup() {
        let f = Fixture::new("kthread");
        f.write("proc/2/stat", stat_line(2, "kthreadd", 0, 1));
        f.write(
            "proc/2/status",
            "Name:\tkthreadd\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
        );
        f.write("proc/2/cmdline", "");
        let s = fs_for(&f).snapshot(2).expect("snapshot");
        assert!(s.args.is_empty());
        assert_eq!((s.exe, s.cwd, s.cgroup), (None, None, None));
    }

    #[test]
    fn deleted_exe_keeps_suffix() {
        let f = Fixture::new("deleted");
        f.add_process(14, 1, "x", 0, "/");
        std::fs::remove_file(f.path().join("proc/14/exe")).expect("rm exe");
        f.symlink("proc/14/exe", "/tmp/.x/payload (deleted)");
        let s = fs_for(&f).snapshot(14).expect("snapshot");
        assert_eq!(s.exe.as_deref(), Some("/tmp/.x/payload (deleted)"));
    }

    #[test]
    fn cmdline_invalid_utf8_newlines_and_empty_args() {
        let f = Fixture::new("cmdline");
        f.add_process(15, 1, "x", 0, "/");
        f.write("proc/15/cmdline", b"sh\0-c\0echo hi\nrm -rf /\xff\xfe\0\0");
        let s = fs_for(&f).snapshot(15).expect("snapshot");
        assert_eq!(
            s.args,
            vec!["sh", "-c", "echo hi\nrm -rf /\u{fffd}\u{fffd}", ""]
        );
        // setproctitle-style rewrite without NULs is one arg.
        f.write("proc/15/cmdline", "postgres: writer process   ");
        let s = fs_for(&f).snapshot(15).expect("snapshot");
        assert_eq!(s.args, vec!["postgres: writer process   "]);
    }

    #[test]
    fn cmdline_bounds_bytes_and_count() {
        let f = Fixture::new("bounds");
        f.add_process(16, 1, "x", 0, "/");
        let many: String = (0..1000).map(|i| format!("a{i}\0")).collect();
        f.write("proc/16/cmdline", &many);
        let s = fs_for(&f).snapshot(16).expect("snapshot");
        assert_eq!(s.args.len(), 256);

        let huge = format!("{}\0tail\0", "x".repeat(200_000));
        f.write("proc/16/cmdline", &huge);
        let s = fs_for(&f).snapshot(16).expect("snapshot");
        assert_eq!(s.args.len(), 1);
        assert_eq!(s.args[0].len(), 64 * 1024);

        let limits = ArgLimits {
            max_bytes: 10,
            max_count: 3,
        };
        let s = fs_for(&f)
            .with_arg_limits(limits)
            .snapshot(16)
            .expect("snapshot");
        assert_eq!(s.args, vec!["x".repeat(10)]);
    }

    #[test]
    fn split_cmdline_exact_limit_keeps_all() {
        let limits = ArgLimits {
            max_bytes: 6,
            max_count: 10,
        };
        assert_eq!(split_cmdline(b"ab\0cd\0", limits), vec!["ab", "cd"]);
        assert_eq!(split_cmdline(b"abcdefgh", limits), vec!["abcdef"]);
        assert_eq!(split_cmdline(b"\0", limits), Vec::<String>::new());
    }

    #[test]
    fn cap_args_respects_char_boundaries() {
        let limits = ArgLimits {
            max_bytes: 5,
            max_count: 2,
        };
        let capped = cap_args(vec!["ab".into(), "ééé".into(), "z".into()], limits);
        assert_eq!(capped, vec!["ab".to_owned(), "é".to_owned()]);
        let capped = cap_args(vec!["abcd".into(), "é".into(), "".into()], limits);
        assert_eq!(capped, vec!["abcd".to_owned()]);
    }

    #[test]
    fn pids_lists_numeric_dirs_only() {
        let f = Fixture::new("pids");
        for pid in [1, 300, 22] {
            f.add_process(pid, 0, "x", 0, "/");
        }
        for junk in ["self", "+5", "sys", "0x10", "99999999999"] {
            std::fs::create_dir_all(f.path().join("proc").join(junk)).expect("mkdir");
        }
        f.write("proc/stat", "cpu 1 2 3\nbtime 1700000000\n");
        assert_eq!(fs_for(&f).pids().expect("pids"), vec![1, 22, 300]);
    }

    #[test]
    fn pids_without_proc_is_io_error() {
        let fs = ProcFs::new(PathBuf::from("/nonexistent/enrich-root"));
        assert!(matches!(fs.pids(), Err(EnrichError::Io { .. })));
    }

    #[test]
    fn boot_time() {
        let f = Fixture::new("btime");
        f.write(
            "proc/stat",
            format!(
                "cpu  1 2 3\nintr {}\nctxt 5\nbtime 1712345678\nprocesses 9\n",
                "0 ".repeat(10_000)
            ),
        );
        assert_eq!(fs_for(&f).boot_time_secs().expect("btime"), 1_712_345_678);
        f.write("proc/stat", "cpu 1\n");
        assert!(matches!(
            fs_for(&f).boot_time_secs(),
            Err(EnrichError::Parse { what: "btime", .. })
        ));
        f.write("proc/stat", "btime soon\n");
        assert!(fs_for(&f).boot_time_secs().is_err());
    }

    #[test]
    fn passwd_is_parsed_tolerantly() {
        let f = Fixture::new("passwd");
        f.write(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/bash\n\
              # comment\n\
              \n\
              broken line\n\
              +nisuser::::::\n\
              bad:x:notanumber:0::/:/bin/sh\n\
              :x:5:5::/:/bin/sh\n\
              toor:x:0:0::/:/bin/sh\n\
              www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\r\n\
              caf\xc3\xa9:x:1001:1001::/home/cafe:/bin/sh\n\
              \xff\xfe:x:1002:1002::/:/bin/sh\n\
              nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"
                .as_slice(),
        );
        let names = fs_for(&f).user_names();
        assert_eq!(names.get(&0).map(String::as_str), Some("root"));
        assert_eq!(names.get(&33).map(String::as_str), Some("www-data"));
        assert_eq!(names.get(&1001).map(String::as_str), Some("café"));
        assert_eq!(names.get(&65534).map(String::as_str), Some("nobody"));
        assert_eq!(
            names.get(&1002).map(String::as_str),
            Some("\u{fffd}\u{fffd}")
        );
        assert!(!names.contains_key(&5));
        assert_eq!(names.len(), 5);
    }

    #[test]
    fn missing_passwd_is_empty() {
        let f = Fixture::new("nopasswd");
        assert!(fs_for(&f).user_names().is_empty());
    }

    #[test]
    fn cgroup_id_from_cgroup2_mount() {
        let f = Fixture::new("cgid");
        f.write("sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
        f.write("sys/fs/cgroup/system.slice/nginx.service/cgroup.procs", "");
        let fs = fs_for(&f);
        let expected = std::fs::metadata(f.path().join("sys/fs/cgroup/system.slice/nginx.service"))
            .expect("md")
            .ino();
        assert_eq!(fs.cgroup_id("/system.slice/nginx.service"), Some(expected));
        assert_eq!(fs.cgroup_id("/nope"), None);
        assert_eq!(fs.cgroup_id("/../../etc"), None);
    }

    #[test]
    fn cgroup_id_none_without_cgroup2() {
        let f = Fixture::new("cgid-v1");
        f.write("sys/fs/cgroup/system.slice/x", "");
        assert_eq!(fs_for(&f).cgroup_id("/system.slice"), None);
    }
}
