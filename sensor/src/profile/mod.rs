//! From a learned baseline to enforcement: the profile model and its renderings.
//!
//! - `model`: the profile (what a workload may do) and its validation;
//! - `seccomp`: OCI JSON and libseccomp; `apparmor`: an AppArmor policy model; `landlock`:
//!   the raw Landlock ruleset; `exec`: `sensor exec --profile`;
//! - `syscalls`: x86_64 syscall names and numbers.

pub mod apparmor;
pub mod exec;
pub mod files;
pub mod landlock;
pub mod model;
pub mod seccomp;
pub mod syscalls;

use std::path::{Path, PathBuf};

pub use model::{DefaultAction, Profile};

/// Which renderings `generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `*.profile.json`: the model (Landlock, seccomp and capabilities for `sensor exec`).
    Sensor,
    Seccomp,
    AppArmor,
}

/// Write the chosen renderings of `p` into `dir`, named after the workload and the baseline
/// version; returns the paths written.
pub fn write(
    p: &Profile,
    formats: &[Format],
    dir: &Path,
    complain: bool,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let stem = format!("{}.v{}", p.file_stem(), p.baseline_version);
    let mut out = Vec::new();
    for f in formats {
        let (name, text) = match f {
            Format::Sensor => (
                format!("{stem}.profile.json"),
                serde_json::to_string_pretty(p).unwrap_or_default() + "\n",
            ),
            Format::Seccomp => (format!("{stem}.seccomp.json"), seccomp::oci_json(p)),
            Format::AppArmor => (
                format!("{stem}.apparmor"),
                apparmor::AppArmorProfile::from_profile(p, complain).render(),
            ),
        };
        let path = dir.join(name);
        // Written whole, then renamed: a reader never sees half a profile.
        let tmp = dir.join(format!(
            ".{}.tmp",
            path.file_name()
                .map_or_else(Default::default, |n| n.to_string_lossy())
        ));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
        out.push(path);
    }
    Ok(out)
}
