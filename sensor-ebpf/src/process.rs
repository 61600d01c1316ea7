//! Process lifecycle: exec, fork (new processes only) and exit.

use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_probe_read_kernel_str, bpf_probe_read_user},
    },
    macros::{btf_tracepoint, map, tracepoint},
    maps::LruHashMap,
    programs::{BtfTracePointContext, TracePointContext},
};
use sensor_common::{
    CTR_ERRORS, EXEC_FLAG_ARGS_TRUNCATED, EXEC_FLAG_ARGS_UNREADABLE, EXEC_FLAG_DELETED,
    EXEC_FLAG_FILENAME_TRUNCATED, EXEC_FLAG_MEMFD, EventHeader, ExecBody, ExitBody, ForkBody,
    KIND_EXEC, KIND_EXIT, KIND_FORK, MAX_ARGS_MASK, MAX_PATH, MAX_PATH_MASK,
};

use crate::common::{count, fill_header, offsets, read_kernel, scratch, skip_current, submit};

const HDR: usize = core::mem::size_of::<EventHeader>();

// clone(2) flags for the calls that do not pass them.
const SIGCHLD: u64 = 17;
const CLONE_VM: u64 = 0x100;
const CLONE_VFORK: u64 = 0x4000;

/// Flags of the clone-family call the thread is in, keyed by thread id, read back by the fork
/// tracepoint (which does not carry them). Overwritten by every clone-family entry.
#[map]
static CLONE_FLAGS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(8192, 0);

#[inline(always)]
fn remember_clone_flags(flags: u64) -> u32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    if CLONE_FLAGS.insert(&tid, &flags, 0).is_err() {
        count(KIND_FORK, CTR_ERRORS);
    }
    0
}

/// `syscalls/sys_enter_clone` (x86_64 argument order: flags first). Any kernel.
#[tracepoint]
pub fn enter_clone(ctx: TracePointContext) -> u32 {
    if skip_current(KIND_FORK) {
        return 0;
    }
    let flags: u64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    remember_clone_flags(flags)
}

/// `syscalls/sys_enter_clone3`: flags are the first u64 of the user `struct clone_args`.
/// Kernel 5.3+; where absent the attach failure is reported and fork events carry no flags.
#[tracepoint]
pub fn enter_clone3(ctx: TracePointContext) -> u32 {
    if skip_current(KIND_FORK) {
        return 0;
    }
    let uargs: u64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    let mut flags: u64 = 0;
    unsafe {
        bpf_probe_read_user(
            (&mut flags as *mut u64).cast::<c_void>(),
            8,
            uargs as *const c_void,
        )
    };
    remember_clone_flags(flags)
}

/// `syscalls/sys_enter_fork`: implicit flags.
#[tracepoint]
pub fn enter_fork(_ctx: TracePointContext) -> u32 {
    if skip_current(KIND_FORK) {
        return 0;
    }
    remember_clone_flags(SIGCHLD)
}

/// `syscalls/sys_enter_vfork`: implicit flags.
#[tracepoint]
pub fn enter_vfork(_ctx: TracePointContext) -> u32 {
    if skip_current(KIND_FORK) {
        return 0;
    }
    remember_clone_flags(CLONE_VFORK | CLONE_VM | SIGCHLD)
}

/// `tp_btf/sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
/// Kernel 5.5+ with BTF. Runs in the parent. New threads are not reported.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> u32 {
    if skip_current(KIND_FORK) {
        return 0;
    }
    let o = offsets();
    let child: *const u8 = ctx.arg(1);
    let child_pid: u32 = unsafe { read_kernel(child, o.task_pid as usize) };
    let child_tgid: u32 = unsafe { read_kernel(child, o.task_tgid as usize) };
    if child_pid != child_tgid {
        return 0;
    }
    crate::learn::inherit(child_tgid);
    let Some(buf) = scratch() else {
        count(KIND_FORK, CTR_ERRORS);
        return 0;
    };
    let tid = bpf_get_current_pid_tgid() as u32;
    let clone_flags = unsafe { CLONE_FLAGS.get(&tid) }.copied().unwrap_or(0);
    unsafe {
        fill_header(buf, KIND_FORK);
        let body = buf.add(HDR).cast::<ForkBody>();
        (*body).child_pid = child_tgid;
        (*body).child_tid = child_pid;
        (*body).clone_flags = clone_flags;
        submit(
            buf,
            HDR + core::mem::size_of::<ForkBody>(),
            KIND_FORK,
            false,
        );
    }
    0
}

/// `tp_btf/sched_process_exit(struct task_struct *p, ...)`: only the thread group leader is
/// reported. Kernel 5.5+ with BTF. `exit_code` is set before this tracepoint fires.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> u32 {
    if skip_current(KIND_EXIT) {
        return 0;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 != pid_tgid as u32 {
        return 0;
    }
    let o = offsets();
    let task: *const u8 = ctx.arg(0);
    let Some(buf) = scratch() else {
        count(KIND_EXIT, CTR_ERRORS);
        return 0;
    };
    unsafe {
        fill_header(buf, KIND_EXIT);
        let body = buf.add(HDR).cast::<ExitBody>();
        (*body).exit_code = read_kernel(task, o.task_exit_code as usize);
        (*body)._pad0 = 0;
        submit(
            buf,
            HDR + core::mem::size_of::<ExitBody>(),
            KIND_EXIT,
            false,
        );
    }
    0
}

/// `tp_btf/sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`.
/// Kernel 5.5+ with BTF. Fires after the new image is installed, so argv is read from the new
/// mm (`arg_start..arg_end`) and the credentials are the post-exec ones (setuid visible).
/// Fallback where tp_btf is missing: none yet; the attach failure is reported in status.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> u32 {
    if skip_current(KIND_EXEC) {
        return 0;
    }
    let task: *const u8 = ctx.arg(0);
    let old_pid: u32 = ctx.arg(1);
    let bprm: *const u8 = ctx.arg(2);
    let Some(buf) = scratch() else {
        count(KIND_EXEC, CTR_ERRORS);
        return 0;
    };
    unsafe { build_exec(buf, task, old_pid, bprm) };
    0
}

#[inline(always)]
unsafe fn build_exec(buf: *mut u8, task: *const u8, old_pid: u32, bprm: *const u8) {
    const BODY: usize = HDR + core::mem::size_of::<ExecBody>();
    unsafe { fill_header(buf, KIND_EXEC) };
    let o = offsets();
    let mut flags = 0u32;

    // The executable: dev, inode, link count, memfd-ness.
    let file: u64 = unsafe { read_kernel(bprm, o.bprm_file as usize) };
    let inode: u64 = unsafe { read_kernel(file as *const u8, o.file_inode as usize) };
    let inode = inode as *const u8;
    let sb: u64 = unsafe { read_kernel(inode, o.inode_sb as usize) };
    let exe_ino: u64 = unsafe { read_kernel(inode, o.inode_ino as usize) };
    let exe_nlink: u32 = unsafe { read_kernel(inode, o.inode_nlink as usize) };
    let exe_dev: u32 = unsafe { read_kernel(sb as *const u8, o.sb_dev as usize) };
    crate::learn::on_exec(exe_dev, exe_ino);
    crate::enforce::on_exec(exe_dev, exe_ino);
    if exe_nlink == 0 {
        flags |= EXEC_FLAG_DELETED;
    }
    let dentry: u64 = unsafe { read_kernel(file as *const u8, o.file_dentry as usize) };
    let dname: u64 = unsafe { read_kernel(dentry as *const u8, o.dentry_name as usize) };
    let prefix: [u8; 6] = unsafe { read_kernel_bytes6(dname as *const u8) };
    if &prefix == b"memfd:" {
        flags |= EXEC_FLAG_MEMFD;
    }

    // Filename as passed to exec.
    let filename: u64 = unsafe { read_kernel(bprm, o.bprm_filename as usize) };
    let n = unsafe {
        bpf_probe_read_kernel_str(
            buf.add(BODY).cast::<c_void>(),
            MAX_PATH as u32,
            filename as *const c_void,
        )
    };
    let mut filename_len = if n > 0 { (n as usize) - 1 } else { 0 };
    if filename_len >= MAX_PATH - 1 {
        flags |= EXEC_FLAG_FILENAME_TRUNCATED;
    }
    filename_len &= MAX_PATH_MASK;

    // argv from the new mm.
    let mm: u64 = unsafe { read_kernel(task, o.task_mm as usize) };
    let arg_start: u64 = unsafe { read_kernel(mm as *const u8, o.mm_arg_start as usize) };
    let arg_end: u64 = unsafe { read_kernel(mm as *const u8, o.mm_arg_end as usize) };
    let mut args_len = arg_end.wrapping_sub(arg_start) as usize;
    if arg_end < arg_start {
        args_len = 0;
    }
    // The mask proves the bound to the verifier; at most MAX_ARGS - 1 bytes are captured.
    if args_len > MAX_ARGS_MASK {
        args_len = MAX_ARGS_MASK;
        flags |= EXEC_FLAG_ARGS_TRUNCATED;
    }
    args_len &= MAX_ARGS_MASK;
    let args_off = BODY + filename_len;
    if args_len > 0 {
        let r = unsafe {
            bpf_probe_read_user(
                buf.add(args_off).cast::<c_void>(),
                args_len as u32,
                arg_start as *const c_void,
            )
        };
        if r != 0 {
            args_len = 0;
            flags |= EXEC_FLAG_ARGS_UNREADABLE;
        }
    }
    let argc: u32 = unsafe { read_kernel(bprm, o.bprm_argc as usize) };
    let stdio = unsafe { stdio_types(task, &o) };

    unsafe {
        let body = buf.add(HDR).cast::<ExecBody>();
        (*body).exe_ino = exe_ino;
        (*body).exe_dev = exe_dev;
        (*body).exe_nlink = exe_nlink;
        (*body).flags = flags;
        (*body).argc = argc;
        (*body).old_pid = old_pid;
        (*body).filename_len = filename_len as u16;
        (*body).args_len = args_len as u16;
        (*body).stdio = stdio;
        (*body)._pad0 = 0;
        // Batched like the rest: an exec storm must not cost a wakeup per exec; the reader's
        // tick bounds the latency (10 ms by default).
        submit(buf, args_off + args_len, KIND_EXEC, false);
    }
}

/// File types of fds 0..2 (`task->files->fdt->fd[i]->f_inode->i_mode`), 4 bits each.
#[inline(always)]
unsafe fn stdio_types(task: *const u8, o: &sensor_common::KernelOffsets) -> u32 {
    let files: u64 = unsafe { read_kernel(task, o.task_files as usize) };
    let fdt: u64 = unsafe { read_kernel(files as *const u8, o.files_fdt as usize) };
    let fds: u64 = unsafe { read_kernel(fdt as *const u8, o.fdtable_fd as usize) };
    let mut out = 0u32;
    let mut i = 0usize;
    while i < 3 {
        let file: u64 = unsafe { read_kernel(fds as *const u8, i * 8) };
        if file != 0 {
            let inode: u64 = unsafe { read_kernel(file as *const u8, o.file_inode as usize) };
            let mode: u16 = unsafe { read_kernel(inode as *const u8, o.inode_mode as usize) };
            out |= (((mode >> 12) & 0xf) as u32) << (i * 4);
        }
        i += 1;
    }
    out
}

#[inline(always)]
unsafe fn read_kernel_bytes6(p: *const u8) -> [u8; 6] {
    let mut out = [0u8; 6];
    let r = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            out.as_mut_ptr().cast::<c_void>(),
            6,
            p.cast::<c_void>(),
        )
    };
    if r != 0 {
        return [0u8; 6];
    }
    out
}
