//! Landlock from a profile, through the raw system calls (no wrapper crate): file rights on
//! the paths the workload used and, with ABI 4 or later, the TCP ports it bound and connected
//! to. The ruleset is built completely (every path opened) before `restrict` applies it.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use super::model::{LOADERS, Profile};

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("Landlock is not available on this kernel ({0})")]
    Unavailable(String),
    #[error("landlock {call}: {source}")]
    Call {
        call: &'static str,
        source: std::io::Error,
    },
}

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;
const RULE_NET_PORT: u32 = 2;

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const REMOVE_DIR: u64 = 1 << 4;
const REMOVE_FILE: u64 = 1 << 5;
const MAKE_CHAR: u64 = 1 << 6;
const MAKE_DIR: u64 = 1 << 7;
const MAKE_REG: u64 = 1 << 8;
const MAKE_SOCK: u64 = 1 << 9;
const MAKE_FIFO: u64 = 1 << 10;
const MAKE_BLOCK: u64 = 1 << 11;
const MAKE_SYM: u64 = 1 << 12;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;

/// Writing under a directory: files, directories, sockets, links; never device nodes.
const WRITE_RIGHTS: u64 = READ_FILE
    | READ_DIR
    | WRITE_FILE
    | TRUNCATE
    | MAKE_REG
    | MAKE_DIR
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_SYM
    | REMOVE_FILE
    | REMOVE_DIR
    | REFER;

/// Rights that apply to a file (not only to directories).
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
}

#[repr(C, packed)]
struct PathBeneath {
    allowed_access: u64,
    parent_fd: i32,
}

#[repr(C)]
struct NetPort {
    allowed_access: u64,
    port: u64,
}

/// The running kernel's Landlock ABI version (0: none).
pub fn abi() -> i64 {
    // SAFETY: the version query takes no pointer (NULL, 0).
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    }
    .max(0)
}

fn fs_rights(abi: i64) -> u64 {
    let mut r = EXECUTE
        | WRITE_FILE
        | READ_FILE
        | READ_DIR
        | REMOVE_DIR
        | REMOVE_FILE
        | MAKE_CHAR
        | MAKE_DIR
        | MAKE_REG
        | MAKE_SOCK
        | MAKE_FIFO
        | MAKE_BLOCK
        | MAKE_SYM;
    if abi >= 2 {
        r |= REFER;
    }
    if abi >= 3 {
        r |= TRUNCATE;
    }
    r
}

/// What a ruleset allows, as (path, rights) and ports, before it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub paths: Vec<(String, u64)>,
    pub bind: Vec<u16>,
    pub connect: Vec<u16>,
}

/// The directory part of a generalized path: everything before its first wildcard component.
fn concrete(p: &str) -> &str {
    let cut = p
        .split('/')
        .position(|c| c.contains('*'))
        .map(|i| p.split('/').take(i).map(str::len).sum::<usize>() + i.saturating_sub(1));
    match cut {
        Some(n) if n > 0 => &p[..n],
        Some(_) => "/",
        None => p,
    }
}

/// Most filesystem matches a wildcard path expands to before it falls back to its concrete
/// directory.
const MAX_EXPANSION: usize = 64;

/// The existing paths a generalized path stands for (`/tmp/.tmp*/log` → each matching
/// directory's `log`), so a rule covers what was learned and not the whole of `/tmp`. A
/// trailing `**` keeps its directory. Too many matches or none: the concrete directory.
fn expand(p: &str) -> Vec<String> {
    if !p.contains('*') {
        return vec![p.to_owned()];
    }
    let p = p.strip_suffix("/**").unwrap_or(p);
    if p.is_empty() {
        return vec!["/".to_owned()];
    }
    let mut found = vec![String::new()];
    for comp in p.split('/').skip(1) {
        let mut next = Vec::new();
        for base in &found {
            if !comp.contains('*') {
                next.push(format!("{base}/{comp}"));
                continue;
            }
            let dir = if base.is_empty() { "/" } else { base.as_str() };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if crate::baseline::workload::glob(comp, &name) {
                    next.push(format!("{base}/{name}"));
                }
            }
        }
        if next.is_empty() || next.len() > MAX_EXPANSION {
            return vec![concrete(p).to_owned()];
        }
        found = next;
    }
    found
}

pub fn plan(p: &Profile) -> Plan {
    let mut paths: Vec<(String, u64)> = Vec::new();
    let mut add = |path: &str, rights: u64| {
        for e in expand(path) {
            paths.push((e, rights));
        }
    };
    for e in &p.executables {
        add(e, EXECUTE | READ_FILE);
    }
    for l in LOADERS {
        add(l, EXECUTE | READ_FILE);
    }
    for r in &p.read {
        add(r, READ_FILE | READ_DIR);
    }
    // Writes: the file's directory, to create, replace and remove files in it.
    for w in &p.write {
        let dir = w
            .rsplit_once('/')
            .map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
        for d in expand(dir) {
            paths.push((d, WRITE_RIGHTS));
        }
    }
    let mut bind = p.bind_ports.clone();
    bind.sort_unstable();
    bind.dedup();
    let mut connect = p.connect_ports.clone();
    connect.sort_unstable();
    connect.dedup();
    Plan {
        paths,
        bind,
        connect,
    }
}

/// A built ruleset, ready to restrict the calling thread (and what it execs).
pub struct Ruleset {
    fd: OwnedFd,
    pub abi: i64,
    /// Paths of the plan that do not exist here (skipped: nothing to allow).
    pub missing: Vec<String>,
}

fn call(name: &'static str, ret: libc::c_long) -> Result<libc::c_long, LandlockError> {
    if ret < 0 {
        Err(LandlockError::Call {
            call: name,
            source: std::io::Error::last_os_error(),
        })
    } else {
        Ok(ret)
    }
}

pub fn build(plan: &Plan) -> Result<Ruleset, LandlockError> {
    let abi = abi();
    if abi < 1 {
        return Err(LandlockError::Unavailable(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    let handled_fs = fs_rights(abi);
    let attr = RulesetAttr {
        handled_access_fs: handled_fs,
        handled_access_net: if abi >= 4 {
            NET_BIND_TCP | NET_CONNECT_TCP
        } else {
            0
        },
    };
    let size = if abi >= 4 { 16 } else { 8 };
    // SAFETY: attr is a valid RulesetAttr of at least `size` bytes.
    let fd = call("create_ruleset", unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    })?;
    // SAFETY: the kernel returned a new file descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut missing = Vec::new();
    for (path, rights) in &plan.paths {
        let Ok(c) = CString::new(path.as_str()) else {
            missing.push(path.clone());
            continue;
        };
        // SAFETY: c is NUL-terminated; O_PATH opens without reading.
        let pfd = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if pfd < 0 {
            missing.push(path.clone());
            continue;
        }
        // SAFETY: pfd was just opened and is ours.
        let pfd = unsafe { OwnedFd::from_raw_fd(pfd) };
        let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
        let mut allowed = rights & handled_fs;
        if !is_dir {
            allowed &= FILE_RIGHTS;
        }
        if allowed == 0 {
            continue;
        }
        let rule = PathBeneath {
            allowed_access: allowed,
            parent_fd: pfd.as_raw_fd(),
        };
        // SAFETY: rule is a valid landlock_path_beneath_attr.
        call("add_rule(path)", unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &rule as *const PathBeneath,
                0u32,
            )
        })?;
    }
    if abi >= 4 {
        for (ports, right) in [(&plan.bind, NET_BIND_TCP), (&plan.connect, NET_CONNECT_TCP)] {
            for port in ports {
                let rule = NetPort {
                    allowed_access: right,
                    port: u64::from(*port),
                };
                // SAFETY: rule is a valid landlock_net_port_attr.
                call("add_rule(port)", unsafe {
                    libc::syscall(
                        libc::SYS_landlock_add_rule,
                        fd.as_raw_fd(),
                        RULE_NET_PORT,
                        &rule as *const NetPort,
                        0u32,
                    )
                })?;
            }
        }
    }
    Ok(Ruleset { fd, abi, missing })
}

impl Ruleset {
    /// Restrict this thread (and everything it execs). Needs no_new_privs, set here.
    pub fn restrict(self) -> Result<(), LandlockError> {
        // SAFETY: plain prctl.
        call("prctl(NO_NEW_PRIVS)", unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long
        })?;
        // SAFETY: the fd is a Landlock ruleset.
        call("restrict_self", unsafe {
            libc::syscall(libc::SYS_landlock_restrict_self, self.fd.as_raw_fd(), 0u32)
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cut_paths_to_their_concrete_directory() {
        assert_eq!(concrete("/proc/*/stat"), "/proc");
        assert_eq!(concrete("/srv/www/**"), "/srv/www");
        assert_eq!(concrete("/etc/app.conf"), "/etc/app.conf");
        assert_eq!(concrete("/tmp/tmp.*"), "/tmp");
        assert_eq!(concrete("/*"), "/");
    }

    #[test]
    fn wildcards_expand_to_what_exists() {
        let d = tempfile::tempdir().unwrap();
        for n in ["app-1234", "app-5678", "other"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        let base = d.path().display().to_string();
        let mut got = expand(&format!("{base}/app-*/log"));
        got.sort();
        assert_eq!(
            got,
            vec![
                format!("{base}/app-1234/log"),
                format!("{base}/app-5678/log")
            ]
        );
        // Nothing matches: the concrete directory.
        assert_eq!(expand(&format!("{base}/zzz*/log")), vec![base.clone()]);
        assert_eq!(expand(&format!("{base}/**")), vec![base.clone()]);
        assert_eq!(expand("/etc/hosts"), vec!["/etc/hosts".to_owned()]);
        assert_eq!(expand("/**"), vec!["/".to_owned()]);
    }
}
