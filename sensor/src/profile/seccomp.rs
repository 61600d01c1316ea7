//! seccomp from a profile: the OCI runtime-spec JSON (runc, podman, Docker, Kubernetes
//! `localhost` profiles), and the same allow-list loaded directly with libseccomp.

use serde::Serialize;

use super::model::{DefaultAction, Profile};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("syscall {0:?}: {1}")]
    Syscall(String, String),
    #[error("seccomp filter: {0}")]
    Filter(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Oci<'a> {
    default_action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    default_errno_ret: Option<u32>,
    architectures: [&'static str; 1],
    syscalls: [OciRule<'a>; 1],
}

#[derive(Serialize)]
struct OciRule<'a> {
    names: &'a [String],
    action: &'static str,
}

fn oci_action(a: DefaultAction) -> &'static str {
    match a {
        DefaultAction::Errno => "SCMP_ACT_ERRNO",
        DefaultAction::Log => "SCMP_ACT_LOG",
        DefaultAction::Kill => "SCMP_ACT_KILL_PROCESS",
    }
}

/// The OCI seccomp profile (the `linux.seccomp` object of a runtime config).
pub fn oci_json(p: &Profile) -> String {
    let oci = Oci {
        default_action: oci_action(p.seccomp_default),
        default_errno_ret: (p.seccomp_default == DefaultAction::Errno)
            .then_some(libc::EPERM as u32),
        architectures: ["SCMP_ARCH_X86_64"],
        syscalls: [OciRule {
            names: &p.syscalls,
            action: "SCMP_ACT_ALLOW",
        }],
    };
    // Serializing plain strings and numbers cannot fail.
    serde_json::to_string_pretty(&oci).unwrap_or_default() + "\n"
}

/// A libseccomp filter for the profile, built but not loaded (so a bad name fails before
/// anything is applied).
pub fn filter(p: &Profile) -> Result<libseccomp::ScmpFilterContext, SeccompError> {
    use libseccomp::{ScmpAction, ScmpArch, ScmpFilterContext, ScmpSyscall};
    let default = match p.seccomp_default {
        DefaultAction::Errno => ScmpAction::Errno(libc::EPERM),
        DefaultAction::Log => ScmpAction::Log,
        DefaultAction::Kill => ScmpAction::KillProcess,
    };
    let f = |e: libseccomp::error::SeccompError| SeccompError::Filter(e.to_string());
    let mut ctx = ScmpFilterContext::new(default).map_err(f)?;
    ctx.add_arch(ScmpArch::X8664).map_err(f)?;
    for name in &p.syscalls {
        // By number: libseccomp may be older than the kernel and not know newer names.
        let nr = super::syscalls::number(name)
            .ok_or_else(|| SeccompError::Syscall(name.clone(), "unknown".into()))?;
        ctx.add_rule(ScmpAction::Allow, ScmpSyscall::from(nr as i32))
            .map_err(|e| SeccompError::Syscall(name.clone(), e.to_string()))?;
    }
    Ok(ctx)
}
