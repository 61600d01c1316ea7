//! Cgroup operations for containment: containment cgroups, moving processes, freeze and thaw
//! (cgroup v2 `cgroup.freeze`, or the v1 freezer's `freezer.state`), and `cgroup.kill`.

use std::{
    io::Write,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} did not reach the {state} state within {ms} ms")]
    Timeout {
        path: String,
        state: &'static str,
        ms: u128,
    },
    #[error("{0} is neither a cgroup v2 directory with cgroup.freeze nor a v1 freezer directory")]
    NoFreezer(String),
    #[error("no cgroup v2 hierarchy is mounted")]
    NoV2,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Write `value` to a control file in one write(2), as the kernel expects.
fn write_ctl(path: &Path, value: &str) -> Result<(), CgroupError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(value.as_bytes()).map_err(io(path))
}

/// The directory where the sensor makes its containment cgroups.
pub const CONTAIN_DIR: &str = "sensor.contain";

/// Make `<root>/sensor.contain/<name>`.
pub fn create(root: &Path, name: &str) -> Result<PathBuf, CgroupError> {
    let dir = root.join(CONTAIN_DIR).join(name);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    Ok(dir)
}

/// Move processes (whole thread groups) into `dir`; a process that exited meanwhile is
/// skipped. Returns the pids moved.
pub fn move_pids(dir: &Path, pids: &[u32]) -> Result<Vec<u32>, CgroupError> {
    let procs = dir.join("cgroup.procs");
    let mut moved = Vec::new();
    for pid in pids {
        match write_ctl(&procs, &pid.to_string()) {
            Ok(()) => moved.push(*pid),
            Err(CgroupError::Io { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(moved)
}

/// Processes in `dir` and every cgroup below it.
pub fn members(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for name in ["cgroup.procs", "tasks"] {
            if let Ok(text) = std::fs::read_to_string(d.join(name)) {
                out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
                break;
            }
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            stack.extend(
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path()),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// How a cgroup directory is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freezer {
    V2,
    V1,
}

pub fn freezer_of(dir: &Path) -> Result<Freezer, CgroupError> {
    if dir.join("cgroup.freeze").exists() {
        Ok(Freezer::V2)
    } else if dir.join("freezer.state").exists() {
        Ok(Freezer::V1)
    } else {
        Err(CgroupError::NoFreezer(dir.display().to_string()))
    }
}

fn wait_until(
    dir: &Path,
    state: &'static str,
    timeout: Duration,
    done: impl Fn() -> bool,
) -> Result<(), CgroupError> {
    let start = Instant::now();
    loop {
        if done() {
            return Ok(());
        }
        if start.elapsed() >= timeout {
            return Err(CgroupError::Timeout {
                path: dir.display().to_string(),
                state,
                ms: timeout.as_millis(),
            });
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn v2_frozen(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l.trim() == "frozen 1"))
        .unwrap_or(false)
}

/// Freeze and wait until every task stopped.
pub fn freeze(dir: &Path) -> Result<Freezer, CgroupError> {
    let kind = freezer_of(dir)?;
    let timeout = Duration::from_secs(2);
    match kind {
        Freezer::V2 => {
            write_ctl(&dir.join("cgroup.freeze"), "1")?;
            wait_until(dir, "frozen", timeout, || v2_frozen(dir))?;
        }
        Freezer::V1 => {
            let state = dir.join("freezer.state");
            write_ctl(&state, "FROZEN")?;
            wait_until(dir, "FROZEN", timeout, || {
                std::fs::read_to_string(&state)
                    .map(|s| s.trim() == "FROZEN")
                    .unwrap_or(false)
            })?;
        }
    }
    Ok(kind)
}

pub fn thaw(dir: &Path) -> Result<(), CgroupError> {
    match freezer_of(dir)? {
        Freezer::V2 => write_ctl(&dir.join("cgroup.freeze"), "0"),
        Freezer::V1 => write_ctl(&dir.join("freezer.state"), "THAWED"),
    }
}

/// Kill every process in the cgroup (and below): `cgroup.kill` where the kernel has it
/// (5.14+), else freeze, SIGKILL each member, thaw. Waits until the cgroup is empty.
pub fn kill(dir: &Path) -> Result<usize, CgroupError> {
    let before = members(dir).len();
    let kill_file = dir.join("cgroup.kill");
    if kill_file.exists() {
        write_ctl(&kill_file, "1")?;
    } else {
        let frozen = freeze(dir).is_ok();
        for pid in members(dir) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if frozen {
            thaw(dir)?;
        }
    }
    wait_until(dir, "empty", Duration::from_secs(5), || {
        members(dir).is_empty()
    })?;
    Ok(before)
}

/// Remove a containment cgroup (and its empty children) once it holds nothing.
pub fn remove(dir: &Path) -> Result<(), CgroupError> {
    let mut dirs = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(rd) = std::fs::read_dir(&dirs[i]) {
            dirs.extend(
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path()),
            );
        }
        i += 1;
    }
    for d in dirs.iter().rev() {
        // A process that just exited can hold a cgroup for a moment.
        let mut tries = 0;
        loop {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 200 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(io(d)(e)),
            }
        }
    }
    // The sensor's parent directory goes with its last containment (it fails while others
    // remain, which is fine).
    if let Some(parent) = dir.parent()
        && parent.file_name().is_some_and(|n| n == CONTAIN_DIR)
    {
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

/// The cgroup v2 path of a process (relative to the mount, with a leading `/`).
pub fn v2_path_of(proc_root: &Path, pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(proc_root.join(format!("{pid}/cgroup"))).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// A cgroup target as a directory: absolute paths must be under /sys/fs/cgroup; relative
/// ones are under the v2 mount. `..` is refused.
pub fn resolve(v2_root: Option<&Path>, path: &str) -> Result<PathBuf, CgroupError> {
    let bad = |why: &str| CgroupError::Io {
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned()),
    };
    if path.split('/').any(|c| c == "..") {
        return Err(bad("`..` is not allowed in a cgroup path"));
    }
    let p = Path::new(path);
    let dir = if p.is_absolute() && p.starts_with("/sys/fs/cgroup") {
        p.to_path_buf()
    } else {
        v2_root
            .ok_or(CgroupError::NoV2)?
            .join(path.trim_start_matches('/'))
    };
    if !dir.is_dir() {
        return Err(bad("no such cgroup directory"));
    }
    Ok(dir)
}

/// The v2 cgroup directory of a container: the one directory whose name carries the id
/// (`<id>`, `libpod-<id>`, `docker-<id>.scope`, `cri-containerd-<id>.scope`, ...).
pub fn find_container(v2_root: &Path, id: &str) -> Result<PathBuf, String> {
    if id.len() < 12
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "container id `{id}`: give at least 12 characters of [A-Za-z0-9_-]"
        ));
    }
    let mut found = Vec::new();
    let mut stack = vec![(v2_root.to_path_buf(), 0)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let attributed = crate::enrich::cgroup::attribute(&format!(
                "/{}",
                path.strip_prefix(v2_root).unwrap_or(&path).display()
            ));
            // A runtime that names the cgroup after the id itself (runc's default `/<id>`),
            // or one whose layout attribution recognises.
            let matches = name == id
                || (attributed
                    .container
                    .as_ref()
                    .is_some_and(|c| c.id.starts_with(id))
                    && name.contains(id));
            if matches {
                found.push(path);
            } else if depth < 8 {
                stack.push((path, depth + 1));
            }
        }
    }
    match found.len() {
        0 => Err(format!("no cgroup found for container `{id}`")),
        1 => Ok(found.remove(0)),
        n => Err(format!(
            "container id `{id}` matches {n} cgroups; give more of it"
        )),
    }
}
