//! Self-protection of the agent.
//!
//! - Report: `signal/signal_generate` (a classic tracepoint, every kernel) emits a record for
//!   each signal another process sends to the agent (any of its threads), whatever the path
//!   (kill, tgkill, pidfd_send_signal). Delivered or not, the attempt is the evidence.
//! - Refuse, where BPF LSM loads: `lsm/task_kill` fails kill-class signals to the agent from
//!   anyone but the agent and its supervisors (init, the process that started it, and that
//!   process's helpers such as `runc kill` under a container shim); `lsm/ptrace_access_check`
//!   fails attach-mode access (ptrace, /proc/<agent>/mem) from other processes.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, generated::bpf_get_current_task},
    macros::{lsm, map, tracepoint},
    maps::{Array, HashMap, PerCpuArray},
    programs::{LsmContext, TracePointContext},
};
use sensor_common::*;

use crate::common::{cfg_agent_tgid, cfg_mode, fill_header, offsets, read_kernel, scratch, submit};

/// Thread ids of the agent other than its main thread (refreshed by the agent): a signal
/// aimed at one of them reaches the agent just the same.
#[map]
pub static GUARD_THREADS: HashMap<u32, u8> = HashMap::with_max_entries(GUARD_MAX_THREADS, 0);
/// `GUARD_*` slots: deny switch and supervisor tgids.
#[map]
pub static GUARD: Array<u32> = Array::with_max_entries(GUARD_SLOTS, 0);
#[map]
pub static GUARD_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(GUARD_COUNTERS, 0);

const HDR: usize = core::mem::size_of::<EventHeader>();
const EPERM: i32 = 1;
const PTRACE_MODE_ATTACH: u32 = 0x02;

#[inline(always)]
fn slot(i: u32) -> u32 {
    GUARD.get(i).copied().unwrap_or(0)
}

#[inline(always)]
fn bump(what: u32) {
    if let Some(c) = GUARD_STATS.get_ptr_mut(what) {
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn is_agent(tid_or_tgid: u32) -> bool {
    let agent = cfg_agent_tgid();
    agent != 0 && (tid_or_tgid == agent || unsafe { GUARD_THREADS.get(&tid_or_tgid) }.is_some())
}

/// The agent, init, its supervisor, or a direct child of the supervisor.
#[inline(always)]
fn trusted_sender() -> bool {
    let me = (bpf_get_current_pid_tgid() >> 32) as u32;
    let sup = slot(GUARD_SUPERVISOR);
    if me == cfg_agent_tgid() || me == 1 || (sup != 0 && me == sup) {
        return true;
    }
    let o = offsets();
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let parent: u64 = unsafe { read_kernel(task, o.task_real_parent as usize) };
    let ppid: u32 = unsafe { read_kernel(parent as *const u8, o.task_tgid as usize) };
    sup != 0 && ppid == sup
}

/// Signals that stop, kill or core the agent (or whose default action does); the harmless
/// ones (reload on SIGHUP, SIGCONT, SIGCHLD, SIGWINCH, SIGURG) pass.
#[inline(always)]
fn harmful(sig: i32) -> bool {
    !matches!(sig, 0 | 1 | 17 | 18 | 23 | 28)
}

/// One `OP_SIGNAL` record for the current task: `ret` is the tracepoint's result code, or
/// -EPERM when the guard refused the signal.
#[inline(always)]
fn report_signal(sig: i32, target: u32, group: i32, code: i32, ret: i64) {
    let Some(buf) = scratch() else {
        return;
    };
    unsafe {
        fill_header(buf, KIND_PRIV);
        let body = buf.add(HDR).cast::<SyscallBody>();
        (*body).op = OP_SIGNAL;
        (*body).flags = 0;
        (*body).ret = ret;
        (*body).args = [
            sig as u64,
            target as u64,
            group as u64,
            code as i64 as u64,
            0,
            0,
        ];
        (*body).str0_len = 0;
        (*body).str1_len = 0;
        (*body).extra_len = 0;
        (*body)._pad0 = 0;
        submit(
            buf,
            HDR + core::mem::size_of::<SyscallBody>(),
            KIND_PRIV,
            true,
        );
    }
}

/// `signal/signal_generate`: sig@8, errno@12, code@16, comm@20, pid@36, group@40, result@44.
#[tracepoint]
pub fn signal_generate(ctx: TracePointContext) -> u32 {
    if cfg_mode() == MODE_EMPTY {
        return 0;
    }
    let base = ctx.as_ptr().cast::<u8>();
    let target = unsafe { base.add(36).cast::<i32>().read() } as u32;
    if !is_agent(target) {
        return 0;
    }
    let me = (bpf_get_current_pid_tgid() >> 32) as u32;
    if me == cfg_agent_tgid() {
        return 0;
    }
    let sig = unsafe { base.add(8).cast::<i32>().read() };
    let code = unsafe { base.add(16).cast::<i32>().read() };
    let group = unsafe { base.add(40).cast::<i32>().read() };
    let result = unsafe { base.add(44).cast::<i32>().read() };
    report_signal(sig, target, group, code, result as i64);
    0
}

/// `lsm/task_kill(struct task_struct *p, struct kernel_siginfo *info, int sig,
/// const struct cred *cred)`. Only signals from userspace reach this hook: the kernel's own
/// (the OOM killer, for one) are never refused.
#[lsm(hook = "task_kill")]
pub fn guard_task_kill(ctx: LsmContext) -> i32 {
    let target: *const u8 = ctx.arg(0);
    let sig: i32 = ctx.arg(2);
    let prev: i32 = ctx.arg(4);
    if prev != 0 {
        return prev;
    }
    if slot(GUARD_DENY) == 0 || !harmful(sig) {
        return 0;
    }
    let tgid: u32 = unsafe { read_kernel(target, offsets().task_tgid as usize) };
    if tgid == 0 || tgid != cfg_agent_tgid() || trusted_sender() {
        return 0;
    }
    bump(GUARD_SIGNALS_DENIED);
    // A refused signal never reaches signal_generate: report the attempt here.
    report_signal(sig, tgid, 1, 0, -(EPERM as i64));
    -EPERM
}

/// `lsm/ptrace_access_check(struct task_struct *child, unsigned int mode)`: attach-mode access
/// (ptrace attach, /proc/<pid>/mem, process_vm_writev) to the agent by anyone else.
#[lsm(hook = "ptrace_access_check")]
pub fn guard_ptrace(ctx: LsmContext) -> i32 {
    let child: *const u8 = ctx.arg(0);
    let mode: u32 = ctx.arg(1);
    let prev: i32 = ctx.arg(2);
    if prev != 0 {
        return prev;
    }
    if slot(GUARD_DENY) == 0 || mode & PTRACE_MODE_ATTACH == 0 {
        return 0;
    }
    let tgid: u32 = unsafe { read_kernel(child, offsets().task_tgid as usize) };
    let me = (bpf_get_current_pid_tgid() >> 32) as u32;
    if tgid == 0 || tgid != cfg_agent_tgid() || me == tgid {
        return 0;
    }
    bump(GUARD_PTRACE_DENIED);
    -EPERM
}
