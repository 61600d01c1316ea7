//! Syscall learning: which syscalls a learning workload makes, aggregated in a map (a bitmap
//! per workload slot), never one event per syscall. The recorder runs on every syscall while
//! attached, so the agent attaches it only while some workload learns.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_cgroup_id},
    macros::{btf_tracepoint, map},
    maps::HashMap,
    programs::BtfTracePointContext,
};
use sensor_common::{
    LEARN_MAX_CGROUPS, LEARN_MAX_PIDS, LEARN_MAX_SLOTS, LEARN_SYSCALLS, SyscallBitmap,
};

#[map]
pub static LEARN_CGROUPS: HashMap<u64, u64> = HashMap::with_max_entries(LEARN_MAX_CGROUPS, 0);
#[map]
pub static LEARN_PIDS: HashMap<u32, u64> = HashMap::with_max_entries(LEARN_MAX_PIDS, 0);
#[map]
pub static LEARN_BITMAPS: HashMap<u64, SyscallBitmap> =
    HashMap::with_max_entries(LEARN_MAX_SLOTS, 0);

/// Executables (inode, device) of learning program workloads → slot: a process exec'ing one
/// learns from its first instruction, not from when the agent gets round to enrolling it.
#[map]
pub static LEARN_EXES: HashMap<[u64; 2], u64> = HashMap::with_max_entries(LEARN_MAX_SLOTS, 0);

#[inline(always)]
pub fn on_exec(dev: u32, ino: u64) {
    let key = [ino, u64::from(dev)];
    if let Some(slot) = unsafe { LEARN_EXES.get(&key) } {
        let slot = *slot;
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        let _ = LEARN_PIDS.insert(&tgid, &slot, 0);
    }
}

/// A child of a learning process learns into its parent's slot from its first instruction
/// (called from the fork tracepoint; `child_tgid` is a new process).
#[inline(always)]
pub fn inherit(child_tgid: u32) {
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    if let Some(slot) = unsafe { LEARN_PIDS.get(&parent) } {
        let slot = *slot;
        // Full map: the child goes unrecorded; the agent's sync re-enrolls what it knows.
        let _ = LEARN_PIDS.insert(&child_tgid, &slot, 0);
    }
}

/// `tp_btf/sys_enter(struct pt_regs *regs, long id)`: a BTF tracepoint, not the classic
/// `raw_syscalls` one, which would build a trace record on every syscall of the host.
#[btf_tracepoint(function = "sys_enter")]
pub fn learn_syscalls(ctx: BtfTracePointContext) -> u32 {
    let id: i64 = ctx.arg(1);
    if id < 0 || id >= LEARN_SYSCALLS as i64 {
        return 0;
    }
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    let slot = match unsafe { LEARN_CGROUPS.get(&cgroup) } {
        Some(s) => *s,
        None => {
            let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
            match unsafe { LEARN_PIDS.get(&tgid) } {
                Some(s) => *s,
                None => return 0,
            }
        }
    };
    let Some(bits) = LEARN_BITMAPS.get_ptr_mut(&slot) else {
        return 0;
    };
    let id = id as usize;
    let word = (id / 64) & 7;
    let bit = 1u64 << (id % 64);
    // Atomic: threads of one workload on several CPUs set bits in the same word.
    unsafe {
        let w = core::ptr::addr_of_mut!((*bits).words[word]);
        if *w & bit == 0 {
            core::intrinsics::atomic_or::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                w, bit,
            );
        }
    }
    0
}
