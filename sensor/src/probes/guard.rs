//! The kernel side of self-protection: which threads are the agent's, who supervises it, and
//! whether BPF LSM refuses signals and ptrace aimed at it.

use std::{collections::HashMap, path::Path};

use aya::{Btf, maps::PerCpuArray, programs::Lsm};
use sensor_common::{
    GUARD_DENY, GUARD_MAX_THREADS, GUARD_PTRACE_DENIED, GUARD_SIGNALS_DENIED, GUARD_SUPERVISOR,
    MAP_GUARD, MAP_GUARD_STATS, MAP_GUARD_THREADS, PROG_GUARD_PTRACE, PROG_GUARD_TASK_KILL,
};

use super::{ProbeError, Probes, map_err, missing_map, short_reason};

/// Self-protection counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GuardCounts {
    pub signals_denied: u64,
    pub ptrace_denied: u64,
}

/// signal_generate's fields at the offsets the program reads.
pub fn check_signal_abi(tracefs: &Path) -> Result<(), String> {
    let path = tracefs.join("events/signal/signal_generate/format");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (field, offset) in [
        ("int sig", 8),
        ("int code", 16),
        ("pid_t pid", 36),
        ("int group", 40),
        ("int result", 44),
    ] {
        let ok = text
            .lines()
            .any(|l| l.contains(&format!("{field};")) && l.contains(&format!("offset:{offset};")));
        if !ok {
            return Err(format!(
                "signal_generate has no `{field}` at offset {offset}"
            ));
        }
    }
    Ok(())
}

impl Probes {
    /// Load and attach the two guard LSM programs; the error names the first refusal.
    pub(super) fn attach_guard_lsm(ebpf: &mut aya::Ebpf, btf: &Btf) -> Result<(), String> {
        for (name, hook) in [
            (PROG_GUARD_TASK_KILL, "task_kill"),
            (PROG_GUARD_PTRACE, "ptrace_access_check"),
        ] {
            let p: &mut Lsm = ebpf
                .program_mut(name)
                .ok_or_else(|| format!("{name} missing from the object"))?
                .try_into()
                .map_err(|e| format!("{name}: {}", short_reason(&e)))?;
            p.load(hook, btf)
                .and_then(|()| p.attach().map(|_| ()))
                .map_err(|e| format!("{name}: {}", short_reason(&e)))?;
        }
        Ok(())
    }

    /// Whether the guard's LSM programs are attached (signals and ptrace can be refused).
    pub fn guard_can_deny(&self) -> bool {
        self.guard_lsm.is_ok()
    }

    /// Refuse harmful signals and ptrace attach from others (`deny`), trusting `supervisor`
    /// (the agent's parent) and its direct children besides init.
    pub fn guard_configure(&mut self, deny: bool, supervisor: u32) -> Result<(), ProbeError> {
        let map = self.map_named(MAP_GUARD)?;
        let mut a: aya::maps::Array<&mut aya::maps::MapData, u32> =
            aya::maps::Array::try_from(map).map_err(map_err(MAP_GUARD))?;
        a.set(GUARD_SUPERVISOR, supervisor, 0)
            .map_err(map_err(MAP_GUARD))?;
        a.set(GUARD_DENY, u32::from(deny), 0)
            .map_err(map_err(MAP_GUARD))
    }

    /// Make the kernel's set of agent threads exactly `tids` (the main thread is implicit).
    pub fn guard_threads(&mut self, tids: &[u32]) -> Result<(), ProbeError> {
        let want: HashMap<u32, u8> = tids
            .iter()
            .take(GUARD_MAX_THREADS as usize)
            .map(|t| (*t, 1))
            .collect();
        self.sync_map(MAP_GUARD_THREADS, &want)
    }

    pub fn guard_counts(&self) -> Result<GuardCounts, ProbeError> {
        let map = self
            .ebpf
            .map(MAP_GUARD_STATS)
            .ok_or_else(|| missing_map(MAP_GUARD_STATS))?;
        let stats: PerCpuArray<&aya::maps::MapData, u64> =
            PerCpuArray::try_from(map).map_err(map_err(MAP_GUARD_STATS))?;
        let sum = |i: u32| -> Result<u64, ProbeError> {
            Ok(stats
                .get(&i, 0)
                .map_err(map_err(MAP_GUARD_STATS))?
                .iter()
                .sum())
        };
        Ok(GuardCounts {
            signals_denied: sum(GUARD_SIGNALS_DENIED)?,
            ptrace_denied: sum(GUARD_PTRACE_DENIED)?,
        })
    }
}
