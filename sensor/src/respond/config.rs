//! `[respond]`: playbooks, guards, isolation allow-list and evidence settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Process names (executable basename or comm) never acted on, whatever a playbook says.
pub const DEFAULT_PROTECTED: &[&str] = &[
    "systemd",
    "init",
    "sshd",
    "sshd-session",
    "systemd-journald",
    "systemd-logind",
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "dockerd",
    "runc",
    "crun",
    "conmon",
    "podman",
    "kubelet",
    "crio",
];

/// Files never quarantined or denied: the loader, init, the shells recovery needs, and the
/// runtime. (The sensor's own binary and state directory are always protected.)
pub const DEFAULT_PROTECTED_PATHS: &[&str] = &[
    "/sbin/init",
    "/lib/systemd/systemd",
    "/usr/lib/systemd/systemd",
    "/usr/sbin/sshd",
    "/bin/sh",
    "/usr/bin/sh",
    "/bin/bash",
    "/usr/bin/bash",
    "/usr/bin/runc",
    "/usr/sbin/runc",
    "/lib64/ld-linux-x86-64.so.2",
    "/usr/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RespondConfig {
    /// Playbook files or directories (every *.yaml / *.yml in them).
    pub playbooks: Vec<PathBuf>,
    /// Extra protected process names (added to [`DEFAULT_PROTECTED`]).
    pub protected: Vec<String>,
    /// Extra protected files (added to [`DEFAULT_PROTECTED_PATHS`]).
    pub protected_paths: Vec<String>,
    /// Automatic (playbook) actions allowed per minute; beyond it they are refused and audited.
    pub max_actions_per_minute: u32,
    /// Addresses an isolated workload may still reach: `ip`, `ip:port`, `[v6]:port`.
    /// Network outputs' destinations are added by themselves.
    pub isolation_allow: Vec<String>,
    /// Isolating the whole host attaches to the root cgroup; refused unless true.
    pub allow_host_isolation: bool,
    /// A playbook run waiting for `sensor contain approve` expires after this long.
    pub approval_ttl_secs: u64,
    /// Recent events kept per process, and processes kept, for evidence bundles.
    pub history_per_process: usize,
    pub history_processes: usize,
    /// Largest executable copied into a bundle (a longer one is cut, its full hash kept).
    pub evidence_max_executable_bytes: u64,
    /// Encrypt evidence at rest (AES-256-GCM, key generated under <state>/keys).
    pub evidence_encrypt: bool,
}

impl Default for RespondConfig {
    fn default() -> Self {
        RespondConfig {
            playbooks: Vec::new(),
            protected: Vec::new(),
            protected_paths: Vec::new(),
            max_actions_per_minute: 20,
            isolation_allow: Vec::new(),
            allow_host_isolation: false,
            approval_ttl_secs: 3600,
            history_per_process: 128,
            history_processes: 4096,
            evidence_max_executable_bytes: 64 << 20,
            evidence_encrypt: false,
        }
    }
}

/// One parsed allow-list entry (port 0: any port).
pub fn parse_allow(s: &str) -> Result<(std::net::IpAddr, u16), String> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok((ip, 0));
    }
    match s.parse::<std::net::SocketAddr>() {
        Ok(a) if a.port() != 0 => Ok((a.ip(), a.port())),
        Ok(_) => Err(format!(
            "`{s}`: port 0 is not a port; leave it out to allow every port"
        )),
        Err(_) => Err(format!(
            "`{s}` is not an address (expected `ip`, `ip:port` or `[v6]:port`)"
        )),
    }
}

impl RespondConfig {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for a in &self.isolation_allow {
            parse_allow(a).map_err(|m| ("respond.isolation_allow", m))?;
        }
        if self.history_per_process == 0 || self.history_per_process > 10_000 {
            return Err((
                "respond.history_per_process",
                "must be between 1 and 10000".into(),
            ));
        }
        if self.history_processes == 0 || self.history_processes > 1_000_000 {
            return Err((
                "respond.history_processes",
                "must be between 1 and 1000000".into(),
            ));
        }
        if self.max_actions_per_minute == 0 {
            return Err((
                "respond.max_actions_per_minute",
                "must be at least 1 (use dry-run playbooks to act on nothing)".into(),
            ));
        }
        for p in &self.protected_paths {
            if !p.starts_with('/') {
                return Err((
                    "respond.protected_paths",
                    format!("`{p}` is not an absolute path"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_entries_parse_or_say_why() {
        assert_eq!(
            parse_allow("127.0.0.1").unwrap(),
            ("127.0.0.1".parse().unwrap(), 0)
        );
        assert_eq!(
            parse_allow("10.0.0.1:514").unwrap(),
            ("10.0.0.1".parse().unwrap(), 514)
        );
        assert_eq!(
            parse_allow("[::1]:443").unwrap(),
            ("::1".parse().unwrap(), 443)
        );
        assert!(parse_allow("10.0.0.1:0").unwrap_err().contains("port 0"));
        assert!(
            parse_allow("example.com:80")
                .unwrap_err()
                .contains("not an address")
        );
        let bad = RespondConfig {
            isolation_allow: vec!["nope".into()],
            ..RespondConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "respond.isolation_allow");
    }

    #[test]
    fn every_bad_respond_key_is_named_in_the_config_error() {
        let base = crate::config::DEFAULT_TOML;
        for (from, to, key) in [
            (
                "history_per_process = 128",
                "history_per_process = 0",
                "respond.history_per_process",
            ),
            (
                "history_processes = 4096",
                "history_processes = 0",
                "respond.history_processes",
            ),
            (
                "max_actions_per_minute = 20",
                "max_actions_per_minute = 0",
                "respond.max_actions_per_minute",
            ),
            (
                "protected_paths = []",
                "protected_paths = [\"relative/path\"]",
                "respond.protected_paths",
            ),
            (
                "isolation_allow = []",
                "isolation_allow = [\"10.0.0.1:0\"]",
                "respond.isolation_allow",
            ),
        ] {
            assert!(base.contains(from), "{from}");
            let e = crate::config::Config::parse(&base.replace(from, to), "s.toml").unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("s.toml: {key}: ")),
                "{e}"
            );
        }
        // An unknown key in [respond] is located like any other.
        let e = crate::config::Config::parse(
            &base.replace("[respond]", "[respond]\nplaybook = []"),
            "s.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `playbook`"), "{e}");
    }
}
