//! Process enrichment for the sensor: container/systemd attribution from
//! cgroup paths, a hostile-input-tolerant procfs reader, and a
//! memory-bounded process table fed by fork/exec/exit events.
//!
//! Everything here treats data coming from the kernel or from processes as
//! untrusted: nothing panics on malformed input, and every string or list
//! stored long-term is bounded.

pub mod cgroup;
pub mod cgroup_cache;
pub mod container_meta;
pub mod enricher;
pub mod process_table;
pub mod procfs;
pub mod sockets;

use std::path::PathBuf;

pub use cgroup::{
    Attribution, ContainerRef, Runtime, attribute, attribute_proc_cgroup, parse_proc_cgroup,
};
pub use cgroup_cache::CgroupCache;
pub use process_table::{Ancestry, EntryLimits, ProcessEntry, ProcessTable, UNKNOWN_ID};
pub use procfs::{ArgLimits, ProcFs, ProcSnapshot, USER_HZ};

/// Longest excerpt of unparseable input kept in an error, in characters.
/// Errors get logged; an attacker-controlled file must not blow up log lines.
const ERROR_TEXT_MAX_CHARS: usize = 100;

/// The single error type of the enrichment module.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The process exited (or its pid was never valid) while we were reading
    /// it. This is routine under churn and callers usually just skip the pid.
    #[error("process {pid} vanished while reading {}", path.display())]
    ProcessGone { pid: u32, path: PathBuf },

    /// Any other I/O failure (permissions, unmounted /proc, ...).
    #[error("I/O error reading {}{}", path.display(), fmt_pid(*pid))]
    Io {
        pid: Option<u32>,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file was readable but its contents did not have the expected shape.
    /// `text` is the offending input, truncated to 100 characters.
    #[error("cannot parse {what} in {}{}: {text:?}", path.display(), fmt_pid(*pid))]
    Parse {
        pid: Option<u32>,
        path: PathBuf,
        what: &'static str,
        text: String,
    },
}

impl EnrichError {
    /// Builds a [`EnrichError::Parse`], bounding the offending text so that a
    /// huge or hostile file cannot end up verbatim in logs.
    pub(crate) fn parse(
        pid: Option<u32>,
        path: impl Into<PathBuf>,
        what: &'static str,
        text: &str,
    ) -> Self {
        EnrichError::Parse {
            pid,
            path: path.into(),
            what,
            text: text.chars().take(ERROR_TEXT_MAX_CHARS).collect(),
        }
    }

    /// The pid this error is about, if any.
    pub fn pid(&self) -> Option<u32> {
        match self {
            EnrichError::ProcessGone { pid, .. } => Some(*pid),
            EnrichError::Io { pid, .. } | EnrichError::Parse { pid, .. } => *pid,
        }
    }
}

fn fmt_pid(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_error_text_is_bounded_to_100_chars() {
        let long: String = "é".repeat(500);
        let err = EnrichError::parse(Some(7), "/proc/7/stat", "stat", &long);
        match &err {
            EnrichError::Parse { text, .. } => assert_eq!(text.chars().count(), 100),
            other => panic!("unexpected variant {other:?}"),
        }
        assert_eq!(err.pid(), Some(7));
        assert!(err.to_string().contains("/proc/7/stat"));
    }

    #[test]
    fn io_error_keeps_source() {
        let err = EnrichError::Io {
            pid: None,
            path: "/proc".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(err.to_string(), "I/O error reading /proc");
    }
}
