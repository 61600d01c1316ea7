//! Syscall learning: which syscalls a learning workload makes, aggregated in a map (a bitmap
//! per workload slot), never one event per syscall. The recorder runs on every syscall while
//! attached, so the agent attaches it only while some workload learns.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_cgroup_id},
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
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

/// `raw_syscalls/sys_enter`: `long id` follows the 8-byte common header.
#[tracepoint]
pub fn learn_syscalls(ctx: TracePointContext) -> u32 {
    let Ok(id) = (unsafe { ctx.read_at::<i64>(8) }) else {
        return 0;
    };
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
