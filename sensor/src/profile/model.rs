//! The sensor profile: what a workload may do, derived from its frozen baseline. One model,
//! rendered as an OCI seccomp profile, an AppArmor profile, a Landlock ruleset (applied by
//! `sensor exec`) and the agent's kernel allow-lists. Stored as JSON (`*.profile.json`),
//! readable and editable; a loaded profile is validated completely before anything uses it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::baseline::model::{Baseline, Mode};

pub const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProfileError {
    #[error(
        "{0}: only a frozen or monitoring baseline makes a profile (it is learning; `sensor baseline freeze` it first)"
    )]
    Learning(String),
    #[error("{source_name}:{line}:{column}: not a sensor profile: {message}")]
    Parse {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{source_name}: {field}: {message}")]
    Invalid {
        source_name: String,
        field: String,
        message: String,
    },
}

/// What happens to a syscall the profile does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    /// The call fails with EPERM.
    #[default]
    Errno,
    /// The call runs and the kernel logs it (audit): shadow mode for seccomp.
    Log,
    /// The process is killed.
    Kill,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub format: u32,
    pub workload: String,
    /// The baseline version it was generated from.
    pub baseline_version: u32,
    /// Unix seconds.
    pub generated: i64,
    /// Programs it may execute (absolute paths; `*` matches within a path component).
    pub executables: Vec<String>,
    /// Paths it may read; a trailing `/**` allows the whole directory tree.
    pub read: Vec<String>,
    /// Paths it may create, write, truncate or remove.
    pub write: Vec<String>,
    /// Outbound TCP/UDP destinations (`ip:port`, `[v6]:port`) and their ports.
    pub connect: Vec<String>,
    pub connect_ports: Vec<u16>,
    /// Ports it may bind.
    pub bind_ports: Vec<u16>,
    /// Syscall names (x86_64) it may make.
    pub syscalls: Vec<String>,
    pub seccomp_default: DefaultAction,
    /// Capabilities kept (`CAP_NET_BIND_SERVICE`); all others are dropped.
    pub capabilities: Vec<String>,
}

/// Read-only paths every dynamically linked program needs and the probes never report (the
/// agent filters their opens in the kernel: `probes.ignored_prefixes`).
pub const ALWAYS_READ: &[&str] = &[
    "/etc/ld.so.cache",
    "/usr/lib/locale/**",
    "/usr/share/locale/**",
    "/usr/share/zoneinfo/**",
    "/dev/null",
    "/dev/urandom",
    "/sys/fs/cgroup/**",
    "/proc/self/**",
];

/// The dynamic loader: executing a dynamic program opens it with exec rights.
pub const LOADERS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/usr/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
];

/// Syscalls any process needs between the filter being installed and the program running
/// (execve, the dynamic loader, libc start-up, signal and thread basics). The kernel records a
/// learning workload's syscalls only from its enrolment on, which can miss this start.
pub const STARTUP_SYSCALLS: &[&str] = &[
    "execve",
    "execveat",
    "brk",
    "arch_prctl",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "madvise",
    "openat",
    "open",
    "close",
    "close_range",
    "read",
    "pread64",
    "readv",
    "write",
    "writev",
    "fstat",
    "newfstatat",
    "statx",
    "stat",
    "lstat",
    "lseek",
    "access",
    "faccessat",
    "faccessat2",
    "readlink",
    "readlinkat",
    "getcwd",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "getrandom",
    "futex",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "exit",
    "exit_group",
    "getpid",
    "gettid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "uname",
    "sysinfo",
    "ioctl",
    "fcntl",
    "dup",
    "dup2",
    "dup3",
    "pipe2",
    "clock_gettime",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "sched_getaffinity",
    "sched_yield",
    "getdents64",
    "capget",
    "prctl",
    "restart_syscall",
    "tgkill",
    "kill",
    "wait4",
    "clone",
    "clone3",
    "vfork",
    // The OCI runtime between loading the filter and exec'ing the entrypoint (runc checks
    // /proc/self/fd with fstatfs and resolves paths with openat2).
    "statfs",
    "fstatfs",
    "openat2",
    "fchdir",
    "chdir",
];

impl Profile {
    /// The profile a frozen (or monitoring) baseline implies.
    pub fn from_baseline(b: &Baseline, now: i64) -> Result<Profile, ProfileError> {
        if b.mode == Mode::Learning {
            return Err(ProfileError::Learning(b.workload.key()));
        }
        let m = &b.model;
        let set = |it: &mut dyn Iterator<Item = String>| -> Vec<String> {
            it.collect::<BTreeSet<_>>().into_iter().collect()
        };
        let executables = set(&mut m
            .executables
            .items
            .keys()
            .filter(|p| p.starts_with('/'))
            .cloned());
        let mut read: BTreeSet<String> = m
            .file_read
            .items
            .keys()
            .filter(|p| p.starts_with('/'))
            .cloned()
            .collect();
        read.extend(ALWAYS_READ.iter().map(|s| (*s).to_owned()));
        // Programs it runs are read too (the kernel maps them).
        read.extend(executables.iter().cloned());
        let write = set(&mut m
            .file_write
            .items
            .keys()
            .filter(|p| p.starts_with('/'))
            .cloned());
        let connect: Vec<String> = m
            .peers
            .items
            .keys()
            .filter(|p| !p.starts_with("unix:"))
            .cloned()
            .collect();
        let port = |k: &String| k.strip_prefix("port/").and_then(|p| p.parse::<u16>().ok());
        let connect_ports: BTreeSet<u16> = m.ports.items.keys().filter_map(port).collect();
        let bind_ports: BTreeSet<u16> = m.listen.items.keys().filter_map(port).collect();
        let mut syscalls: BTreeSet<String> = m
            .syscalls
            .iter()
            .filter_map(|n| super::syscalls::name(*n))
            .map(str::to_owned)
            .collect();
        syscalls.extend(STARTUP_SYSCALLS.iter().map(|s| (*s).to_owned()));
        Ok(Profile {
            format: FORMAT,
            workload: b.workload.key(),
            baseline_version: b.version,
            generated: now,
            executables,
            read: read.into_iter().collect(),
            write,
            connect,
            connect_ports: connect_ports.into_iter().collect(),
            bind_ports: bind_ports.into_iter().collect(),
            syscalls: syscalls.into_iter().collect(),
            seccomp_default: DefaultAction::Errno,
            capabilities: Vec::new(),
        })
    }

    /// Parse and validate a profile file's text; every problem names the field.
    pub fn parse(text: &str, source_name: &str) -> Result<Profile, ProfileError> {
        let p: Profile = serde_json::from_str(text).map_err(|e| ProfileError::Parse {
            source_name: source_name.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        p.validate(source_name)?;
        Ok(p)
    }

    pub fn validate(&self, source_name: &str) -> Result<(), ProfileError> {
        let bad = |field: String, message: String| ProfileError::Invalid {
            source_name: source_name.to_owned(),
            field,
            message,
        };
        if self.format != FORMAT {
            return Err(bad(
                "format".into(),
                format!(
                    "{} is not supported (this sensor reads {FORMAT})",
                    self.format
                ),
            ));
        }
        for (field, list) in [
            ("executables", &self.executables),
            ("read", &self.read),
            ("write", &self.write),
        ] {
            for (i, p) in list.iter().enumerate() {
                if !p.starts_with('/') || p.contains('\0') || p.split('/').any(|c| c == "..") {
                    return Err(bad(
                        format!("{field}[{i}]"),
                        format!("{p:?} is not an absolute path without `..`"),
                    ));
                }
            }
        }
        for (i, c) in self.connect.iter().enumerate() {
            if c.parse::<std::net::SocketAddr>().is_err() {
                return Err(bad(
                    format!("connect[{i}]"),
                    format!("{c:?} is not ip:port"),
                ));
            }
        }
        for (i, s) in self.syscalls.iter().enumerate() {
            if super::syscalls::number(s).is_none() {
                return Err(bad(
                    format!("syscalls[{i}]"),
                    format!("unknown syscall {s:?} (x86_64 names, e.g. \"openat\")"),
                ));
            }
        }
        for (i, c) in self.capabilities.iter().enumerate() {
            if super::exec::capability(c).is_none() {
                return Err(bad(
                    format!("capabilities[{i}]"),
                    format!("unknown capability {c:?} (e.g. \"CAP_NET_BIND_SERVICE\")"),
                ));
            }
        }
        Ok(())
    }

    /// A file name for this workload's artifacts: the key with unsafe characters replaced.
    pub fn file_stem(&self) -> String {
        stem(&self.workload)
    }
}

pub fn stem(workload: &str) -> String {
    let s: String = workload
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_matches('_').chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> String {
        serde_json::json!({
            "format": 1, "workload": "exe:/srv/app@root", "baseline_version": 2, "generated": 0,
            "executables": ["/srv/app"], "read": ["/etc/app/**"], "write": ["/var/log/app/*.log"],
            "connect": ["10.0.0.5:5432"], "connect_ports": [5432], "bind_ports": [8080],
            "syscalls": ["read", "openat"], "seccomp_default": "errno",
            "capabilities": ["CAP_NET_BIND_SERVICE"]
        })
        .to_string()
    }

    #[test]
    fn bad_profiles_name_the_field_or_the_place() {
        assert!(Profile::parse(&valid(), "p.json").is_ok());
        let cases = [
            ("\"format\":1", "\"format\":9", "format"),
            ("\"/srv/app\"]", "\"srv/app\"]", "executables[0]"),
            ("\"/etc/app/**\"", "\"/etc/../shadow\"", "read[0]"),
            ("\"10.0.0.5:5432\"", "\"not-an-address\"", "connect[0]"),
            ("\"openat\"", "\"no_such_call\"", "syscalls[1]"),
            (
                "\"CAP_NET_BIND_SERVICE\"",
                "\"CAP_BOGUS\"",
                "capabilities[0]",
            ),
        ];
        for (from, to, field) in cases {
            let text = valid().replace(from, to);
            assert_ne!(text, valid(), "{from}");
            let e = Profile::parse(&text, "p.json").unwrap_err().to_string();
            assert!(e.starts_with(&format!("p.json: {field}:")), "{to}: {e}");
        }
        let e = Profile::parse("{\"format\": 1,\n \"workload\": 3}", "p.json").unwrap_err();
        assert!(e.to_string().starts_with("p.json:2:"), "{e}");
        assert!(Profile::parse("\u{0}\u{ff}", "p.json").is_err());
    }
}
