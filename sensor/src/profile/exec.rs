//! `sensor exec --profile FILE -- CMD ARGS`: run a command confined by a profile. Everything
//! is prepared first (profile validated, Landlock ruleset built, seccomp filter compiled,
//! command resolved); only then are capabilities dropped, Landlock applied and the filter
//! loaded, and the command exec'd. A failure at any step ends this process before the
//! command runs: nothing runs half-confined.

use std::{ffi::CString, os::unix::ffi::OsStrExt, path::PathBuf, str::FromStr};

use caps::{CapSet, Capability};

use super::{landlock, model::Profile, seccomp};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Landlock(#[from] landlock::LandlockError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("capabilities: {0}")]
    Caps(String),
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: argument holds a NUL byte")]
    Nul(String),
    #[error("exec {cmd}: {source}")]
    Exec { cmd: String, source: std::io::Error },
}

pub fn capability(name: &str) -> Option<Capability> {
    Capability::from_str(&name.to_ascii_uppercase()).ok()
}

/// What `sensor exec` applied, for its report line.
#[derive(Debug, Clone)]
pub struct Applied {
    pub landlock_abi: i64,
    pub landlock_paths: usize,
    pub landlock_missing: usize,
    pub tcp_ports: bool,
    pub syscalls: usize,
    pub caps_kept: usize,
}

fn resolve(cmd: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

/// Confine this process with `p` and exec `argv`. Returns only on failure.
pub fn exec(p: &Profile, argv: &[String], report: impl Fn(&Applied)) -> ExecError {
    match prepare_and_exec(p, argv, report) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn prepare_and_exec(
    p: &Profile,
    argv: &[String],
    report: impl Fn(&Applied),
) -> Result<Never, ExecError> {
    let cmd = argv.first().cloned().unwrap_or_default();
    let path = resolve(&cmd).ok_or_else(|| ExecError::NotFound(cmd.clone()))?;
    let c_path =
        CString::new(path.as_os_str().as_bytes()).map_err(|_| ExecError::Nul(cmd.clone()))?;
    let c_args = argv
        .iter()
        .map(|a| CString::new(a.as_str()).map_err(|_| ExecError::Nul(a.clone())))
        .collect::<Result<Vec<_>, _>>()?;
    // Only what this process holds can be kept (asking for more fails with EPERM).
    let held = caps::read(None, CapSet::Permitted).map_err(|e| ExecError::Caps(e.to_string()))?;
    let keep: caps::CapsHashSet = p
        .capabilities
        .iter()
        .filter_map(|c| capability(c))
        .filter(|c| held.contains(c))
        .collect();
    let plan = landlock::plan(p);
    let ruleset = landlock::build(&plan)?;
    let filter = seccomp::filter(p)?;
    let applied = Applied {
        landlock_abi: ruleset.abi,
        landlock_paths: plan.paths.len() - ruleset.missing.len(),
        landlock_missing: ruleset.missing.len(),
        tcp_ports: ruleset.abi >= 4,
        syscalls: p.syscalls.len(),
        caps_kept: keep.len(),
    };
    report(&applied);

    // From here on this process only confines itself and execs, or exits.
    let cap_err = |e: caps::errors::CapsError| ExecError::Caps(e.to_string());
    for c in caps::all() {
        if !keep.contains(&c) && caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, c).map_err(cap_err)?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(cap_err)?;
    caps::set(None, CapSet::Inheritable, &keep).map_err(cap_err)?;
    caps::set(None, CapSet::Effective, &keep).map_err(cap_err)?;
    caps::set(None, CapSet::Permitted, &keep).map_err(cap_err)?;
    ruleset.restrict()?;
    filter
        .load()
        .map_err(|e| seccomp::SeccompError::Filter(e.to_string()))?;
    let mut ptrs: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: c_path and every argument are NUL-terminated and outlive the call; the
    // environment is inherited.
    unsafe { libc::execv(c_path.as_ptr(), ptrs.as_ptr()) };
    Err(ExecError::Exec {
        cmd,
        source: std::io::Error::last_os_error(),
    })
}
