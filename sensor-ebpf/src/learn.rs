//! Syscall learning: which syscalls a learning workload makes, aggregated in maps (a bitmap
//! per learning process, and per workload slot for cgroups), never one event per syscall. The
//! recorder runs on every syscall while attached, so the agent attaches it only while some
//! workload learns, and an array pre-filter keeps the other processes to two array reads.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_cgroup_id},
    macros::{btf_tracepoint, map},
    maps::{Array, HashMap},
    programs::BtfTracePointContext,
};
use sensor_common::{
    LEARN_FILTER_WORDS, LEARN_MAX_CGROUPS, LEARN_MAX_PIDS, LEARN_MAX_SLOTS, LEARN_SYSCALLS,
    PidLearn, SyscallBitmap, filter_bit,
};

#[map]
pub static LEARN_CGROUPS: HashMap<u64, u64> = HashMap::with_max_entries(LEARN_MAX_CGROUPS, 0);
#[map]
pub static LEARN_PIDS: HashMap<u32, PidLearn> = HashMap::with_max_entries(LEARN_MAX_PIDS, 0);
#[map]
pub static LEARN_BITMAPS: HashMap<u64, SyscallBitmap> =
    HashMap::with_max_entries(LEARN_MAX_SLOTS, 0);
#[map]
pub static LEARN_FILTER: Array<u64> = Array::with_max_entries(LEARN_FILTER_WORDS, 0);

/// Executables (inode, device) of learning program workloads → slot: a process exec'ing one
/// learns from its first instruction, not from when the agent gets round to enrolling it.
#[map]
pub static LEARN_EXES: HashMap<[u64; 2], u64> = HashMap::with_max_entries(LEARN_MAX_SLOTS, 0);

/// Atomic OR into map memory: other CPUs update the same words.
#[inline(always)]
unsafe fn or_bits(word: *mut u64, bit: u64) {
    unsafe {
        if bit != 0 && *word & bit != bit {
            core::intrinsics::atomic_or::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                word, bit,
            );
        }
    }
}

#[inline(always)]
fn filter_has(base: u32, x: u64) -> bool {
    let b = filter_bit(x);
    match LEARN_FILTER.get(base + b / 64) {
        Some(w) => *w & (1u64 << (b % 64)) != 0,
        None => false,
    }
}

#[inline(always)]
fn filter_set(base: u32, x: u64) {
    let b = filter_bit(x);
    if let Some(w) = LEARN_FILTER.get_ptr_mut(base + b / 64) {
        unsafe { or_bits(w, 1u64 << (b % 64)) };
    }
}

#[inline(always)]
fn enrol(tgid: u32, slot: u64) {
    let v = PidLearn {
        slot,
        bits: SyscallBitmap {
            words: [0; (LEARN_SYSCALLS / 64) as usize],
        },
    };
    // Full map: the process goes unrecorded; the agent's sync re-enrols what it knows.
    if LEARN_PIDS.insert(&tgid, &v, 0).is_ok() {
        filter_set(0, u64::from(tgid));
    }
}

#[inline(always)]
pub fn on_exec(dev: u32, ino: u64) {
    let key = [ino, u64::from(dev)];
    if let Some(slot) = unsafe { LEARN_EXES.get(&key) } {
        let slot = *slot;
        let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        match LEARN_PIDS.get_ptr_mut(&tgid) {
            // Already in this workload: keep its bits.
            Some(p) if unsafe { (*p).slot } == slot => {}
            // Inherited from a parent in another workload: what it did before this exec
            // stays with the parent's workload; from here on it learns into its own.
            Some(p) => unsafe {
                let old = (*p).slot;
                if let Some(b) = LEARN_BITMAPS.get_ptr_mut(&old) {
                    for i in 0..(LEARN_SYSCALLS / 64) as usize {
                        or_bits(core::ptr::addr_of_mut!((*b).words[i]), (*p).bits.words[i]);
                    }
                }
                (*p).slot = slot;
                (*p).bits.words = [0; (LEARN_SYSCALLS / 64) as usize];
            },
            None => enrol(tgid, slot),
        }
    }
}

/// A child of a learning process learns into its parent's slot from its first instruction
/// (called from the fork tracepoint; `child_tgid` is a new process).
#[inline(always)]
pub fn inherit(child_tgid: u32) {
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !filter_has(0, u64::from(parent)) {
        return;
    }
    if let Some(p) = unsafe { LEARN_PIDS.get(&parent) } {
        let slot = p.slot;
        enrol(child_tgid, slot);
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
    let id = id as usize;
    let word = (id / 64) & 7;
    let bit = 1u64 << (id % 64);
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if filter_has(0, u64::from(tgid))
        && let Some(p) = LEARN_PIDS.get_ptr_mut(&tgid)
    {
        unsafe { or_bits(core::ptr::addr_of_mut!((*p).bits.words[word]), bit) };
        return 0;
    }
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    if !filter_has(64, cgroup) {
        return 0;
    }
    let Some(slot) = (unsafe { LEARN_CGROUPS.get(&cgroup) }).copied() else {
        return 0;
    };
    if let Some(bits) = LEARN_BITMAPS.get_ptr_mut(&slot) {
        unsafe { or_bits(core::ptr::addr_of_mut!((*bits).words[word]), bit) };
    }
    0
}
