//! Shared machinery: load-time config, maps, counters, event headers and ring output.

use core::{ffi::c_void, ptr::addr_of};

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_task, bpf_ktime_get_boot_ns,
            bpf_probe_read_kernel,
        },
    },
    macros::map,
    maps::{LpmTrie, PerCpuArray, RingBuf},
};
use sensor_common::{
    COUNTERS_LEN, CTR_DROPPED, CTR_ERRORS, CTR_FILTERED, CTR_SEEN, Config, EventHeader,
    KernelOffsets, MODE_EMPTY, PREFIX_KEY_LEN, SCRATCH_LEN, counter_index,
};

/// Set by the loader (`EbpfLoader::override_global`); read with volatile loads so the
/// compiler never folds the zero placeholder.
#[unsafe(no_mangle)]
pub static CONFIG: Config = unsafe { core::mem::zeroed() };

#[inline(always)]
pub fn cfg_mode() -> u32 {
    unsafe { core::ptr::read_volatile(addr_of!(CONFIG.mode)) }
}
#[inline(always)]
pub fn cfg_agent_tgid() -> u32 {
    unsafe { core::ptr::read_volatile(addr_of!(CONFIG.agent_tgid)) }
}
#[inline(always)]
pub fn cfg_dedup_window_ns() -> u64 {
    unsafe { core::ptr::read_volatile(addr_of!(CONFIG.dedup_window_ns)) }
}
#[inline(always)]
pub fn cfg_use_prefixes() -> bool {
    unsafe { core::ptr::read_volatile(addr_of!(CONFIG.use_ignored_prefixes)) != 0 }
}
#[inline(always)]
fn cfg_wakeup_bytes() -> u64 {
    unsafe { core::ptr::read_volatile(addr_of!(CONFIG.wakeup_bytes)) as u64 }
}

/// Kernel struct offsets from the config (one volatile copy per event built).
#[inline(always)]
pub fn offsets() -> KernelOffsets {
    unsafe { core::ptr::read_volatile(addr_of!(CONFIG.offsets)) }
}

/// Every event. Its size is set by the agent at load (`ring_buffer_bytes` in the config).
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(1 << 23, 0);

/// Per-CPU counters: `counter_index(kind, CTR_*)`.
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTERS_LEN, 0);

#[repr(C)]
pub struct Scratch {
    pub buf: [u8; SCRATCH_LEN],
}

/// Per-CPU buffer an event is built in before it is copied to the ring with its real length
/// (a reservation would have to be of constant, maximal size).
#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Path prefixes whose read-only opens are not reported (longest-prefix match).
#[map]
pub static IGNORED_PREFIXES: LpmTrie<[u8; PREFIX_KEY_LEN], u8> =
    LpmTrie::with_max_entries(256, BPF_F_NO_PREALLOC);

#[inline(always)]
pub fn count(kind: u32, slot: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(counter_index(kind, slot)) {
        unsafe { *p += 1 };
    }
}

/// True when the programs run in benchmark "empty" mode or the event is the agent's own.
/// Own events are counted as filtered; empty mode counts nothing (it measures the bare hook).
#[inline(always)]
pub fn skip_current(kind: u32) -> bool {
    if cfg_mode() == MODE_EMPTY {
        return true;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == cfg_agent_tgid() {
        count(kind, CTR_FILTERED);
        return true;
    }
    false
}

#[inline(always)]
pub fn scratch() -> Option<*mut u8> {
    SCRATCH.get_ptr_mut(0).map(|s| s.cast::<u8>())
}

/// Read a kernel value at `base + off`; 0 on a failed read (the caller sees a zero field,
/// never garbage).
#[inline(always)]
pub unsafe fn read_kernel<T: Default>(base: *const u8, off: usize) -> T {
    let mut v = T::default();
    let r = unsafe {
        bpf_probe_read_kernel(
            (&mut v as *mut T).cast::<c_void>(),
            core::mem::size_of::<T>() as u32,
            base.wrapping_add(off).cast::<c_void>(),
        )
    };
    if r != 0 {
        return T::default();
    }
    v
}

/// Fill the common header of the event being built at `buf` for the current task.
#[inline(always)]
pub unsafe fn fill_header(buf: *mut u8, kind: u32) {
    let h = buf.cast::<EventHeader>();
    let pid_tgid = bpf_get_current_pid_tgid();
    let o = offsets();
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let parent: u64 = unsafe { read_kernel(task, o.task_real_parent as usize) };
    let ppid: u32 = unsafe { read_kernel(parent as *const u8, o.task_tgid as usize) };
    let cred: u64 = unsafe { read_kernel(task, o.task_cred as usize) };
    let cred = cred as *const u8;
    unsafe {
        (*h).kind = kind;
        (*h).len = 0;
        (*h).ts_ns = bpf_ktime_get_boot_ns();
        (*h).cgroup_id = bpf_get_current_cgroup_id();
        (*h).pid = (pid_tgid >> 32) as u32;
        (*h).tid = pid_tgid as u32;
        (*h).ppid = ppid;
        (*h).uid = read_kernel(cred, o.cred_uid as usize);
        (*h).gid = read_kernel(cred, o.cred_gid as usize);
        (*h).euid = read_kernel(cred, o.cred_euid as usize);
        (*h).egid = read_kernel(cred, o.cred_egid as usize);
        (*h)._pad0 = 0;
        (*h).comm = bpf_get_current_comm().unwrap_or([0u8; 16]);
    }
}

/// Copy `len` bytes of the scratch buffer to the ring, counting seen and dropped.
///
/// Wakeups are batched: the reader is woken only when `wakeup_bytes` wait in the ring (or
/// `force` is set, for rare events a responder acts on); it also polls on a short timer.
#[inline(always)]
pub unsafe fn submit(buf: *mut u8, len: usize, kind: u32, force: bool) {
    if len > SCRATCH_LEN {
        count(kind, CTR_ERRORS);
        return;
    }
    unsafe { (*buf.cast::<EventHeader>()).len = len as u32 };
    count(kind, CTR_SEEN);
    let threshold = cfg_wakeup_bytes();
    let flags = if force || threshold == 0 || EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= threshold {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    let data = unsafe { core::slice::from_raw_parts(buf.cast_const(), len) };
    if EVENTS.output::<[u8]>(data, flags as u64).is_err() {
        count(kind, CTR_DROPPED);
    }
}
