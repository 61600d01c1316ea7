//! File, network and privilege syscalls, each traced by a `sys_enter_*` / `sys_exit_*` pair of
//! classic tracepoints (any kernel with `CONFIG_FTRACE_SYSCALLS`; each pair attaches on its
//! own, so a syscall the kernel lacks, such as `fchmodat2` before 6.6, only fails that pair and
//! the failure is reported in `sensor status`).
//!
//! Entry stashes the raw arguments per thread; exit reads the strings and socket addresses
//! from user memory and emits one record with the result. Opens are filtered at entry (ignored
//! prefixes for read-only opens, per-process dedup window), so a filtered open costs no stash,
//! no ring space and no userspace work.
//!
//! Tracepoint record layout (the stable syscall tracepoint ABI, checked against
//! `/sys/kernel/tracing/events/syscalls/*/format` by the agent at load): arguments are 8-byte
//! slots from offset 16 on entry; the return value is at offset 16 on exit.

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_F_NO_PREALLOC,
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_ktime_get_boot_ns, bpf_probe_read_user, bpf_probe_read_user_str},
    },
    macros::{map, tracepoint},
    maps::{LpmTrie, LruHashMap, lpm_trie::Key},
    programs::TracePointContext,
};
use sensor_common::*;

use crate::common::{
    IGNORED_PREFIXES, cfg_dedup_window_ns, cfg_mode, cfg_use_prefixes, count, fill_header, scratch,
    skip_current, submit,
};

const HDR: usize = core::mem::size_of::<EventHeader>();
const BODY: usize = HDR + core::mem::size_of::<SyscallBody>();
const ARG0: usize = 16;
const RET: usize = 16;

// Open flags (the generic Linux values, identical on x86_64 and arm64).
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_APPEND: u64 = 0o2000;
const WRITE_INTENT: u64 = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND;

/// Paths longer than this are never deduplicated (their hash would not cover them).
const DEDUP_HASH_MAX: usize = 512;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Stash {
    op: u32,
    _pad: u32,
    args: [u64; 6],
}

/// Arguments of the syscall each thread is in, between entry and exit.
#[map]
static STASH: LruHashMap<u32, Stash> = LruHashMap::with_max_entries(16384, 0);

#[repr(C)]
#[derive(Clone, Copy)]
struct DedupKey {
    tgid: u32,
    flags: u32,
    path_hash: u64,
}

/// Last time each (process, open flags, path) was reported, for the dedup window.
#[map]
static DEDUP: LruHashMap<DedupKey, u64> = LruHashMap::with_max_entries(16384, 0);

/// Indicator addresses: a connect or accept to one is flagged in the kernel, so userspace
/// does no lookup for the other connects.
#[map]
static IOC_V4: LpmTrie<[u8; 4], u32> =
    LpmTrie::with_max_entries(IOC_MAX_ENTRIES, BPF_F_NO_PREALLOC);
#[map]
static IOC_V6: LpmTrie<[u8; 16], u32> =
    LpmTrie::with_max_entries(IOC_MAX_ENTRIES, BPF_F_NO_PREALLOC);

/// Flag a socket address (at `addr`, `len` bytes) found in the IOC tries.
#[inline(always)]
unsafe fn ioc_check(addr: *const u8, len: usize) -> u32 {
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    if len < 8 {
        return 0;
    }
    let family = unsafe { core::ptr::read_unaligned(addr.cast::<u16>()) };
    if family == AF_INET {
        let ip = unsafe { core::ptr::read_unaligned(addr.add(4).cast::<[u8; 4]>()) };
        if IOC_V4.get(&Key::new(32, ip)).is_some() {
            return SYS_FLAG_IOC_HIT;
        }
    } else if family == AF_INET6 && len >= 24 {
        let ip = unsafe { core::ptr::read_unaligned(addr.add(8).cast::<[u8; 16]>()) };
        if IOC_V6.get(&Key::new(128, ip)).is_some() {
            return SYS_FLAG_IOC_HIT;
        }
    }
    0
}

#[inline(always)]
const fn is_open(op: u32) -> bool {
    matches!(op, OP_OPEN | OP_OPENAT | OP_OPENAT2 | OP_CREAT)
}

/// Which arguments are user strings: (first, second); `usize::MAX` for none.
#[inline(always)]
const fn string_args(op: u32) -> (usize, usize) {
    const N: usize = usize::MAX;
    match op {
        OP_OPEN | OP_CREAT | OP_UNLINK | OP_CHMOD | OP_TRUNCATE | OP_CHROOT | OP_UMOUNT2
        | OP_CHDIR => (0, N),
        OP_OPENAT | OP_OPENAT2 | OP_UNLINKAT | OP_FCHMODAT | OP_FCHMODAT2 => (1, N),
        OP_RENAME | OP_PIVOT_ROOT | OP_MOUNT => (0, 1),
        OP_RENAMEAT | OP_RENAMEAT2 => (1, 3),
        OP_MEMFD_CREATE => (0, N),
        OP_INIT_MODULE => (2, N),
        OP_FINIT_MODULE => (1, N),
        _ => (N, N),
    }
}

/// Flags of an open, normalised: creat(2) has none of its own.
#[inline(always)]
fn open_flags(op: u32, args: &[u64; 6]) -> u64 {
    match op {
        OP_OPEN => args[1],
        OP_OPENAT => args[2],
        OP_OPENAT2 => args[4],
        _ => O_CREAT | O_WRONLY | O_TRUNC,
    }
}

#[inline(always)]
fn enter<const OP: u32, const N: usize>(ctx: &TracePointContext) -> u32 {
    let kind = op_kind(OP);
    if skip_current(kind) {
        return 0;
    }
    let mut st = Stash {
        op: OP,
        _pad: 0,
        args: [0; 6],
    };
    // Direct loads from the tracepoint record (constant offsets, checked by the verifier)
    // cost a fraction of a bpf_probe_read_kernel call each.
    let base = ctx.as_ptr().cast::<u8>();
    macro_rules! arg {
        ($i:literal) => {
            if N > $i {
                st.args[$i] = unsafe { base.add(ARG0 + 8 * $i).cast::<u64>().read() };
            }
        };
    }
    arg!(0);
    arg!(1);
    arg!(2);
    arg!(3);
    arg!(4);
    arg!(5);
    if OP == OP_OPENAT2 {
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        let mut how = [0u64; 2];
        unsafe {
            bpf_probe_read_user(
                how.as_mut_ptr().cast::<c_void>(),
                16,
                st.args[2] as *const c_void,
            )
        };
        st.args[4] = how[0];
        st.args[5] = how[1];
    }
    if is_open(OP) && open_filtered(OP, &st.args) {
        count(kind, CTR_FILTERED);
        return 0;
    }
    let tid = bpf_get_current_pid_tgid() as u32;
    if STASH.insert(&tid, &st, 0).is_err() {
        count(kind, CTR_ERRORS);
    }
    0
}

/// In-kernel open filters: ignored prefixes (read-only opens only: a write under an ignored
/// prefix is always reported) and the per-process dedup window.
#[inline(always)]
fn open_filtered(op: u32, args: &[u64; 6]) -> bool {
    let flags = open_flags(op, args);
    let use_prefixes = cfg_use_prefixes() && flags & WRITE_INTENT == 0;
    let window = cfg_dedup_window_ns();
    if !use_prefixes && window == 0 {
        return false;
    }
    let path = if op == OP_OPEN || op == OP_CREAT {
        args[0]
    } else {
        args[1]
    };
    let Some(buf) = scratch() else {
        return false;
    };
    let n = unsafe {
        bpf_probe_read_user_str(buf.cast::<c_void>(), MAX_PATH as u32, path as *const c_void)
    };
    if n <= 0 {
        return false;
    }
    let len = ((n as usize) - 1) & MAX_PATH_MASK;

    // Dedup first: a repeated open (the common case in loops) returns after one lookup.
    let dedup = window != 0 && len <= DEDUP_HASH_MAX;
    let key = DedupKey {
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        flags: flags as u32,
        path_hash: if dedup { hash_path(buf, len) } else { 0 },
    };
    let now = unsafe { bpf_ktime_get_boot_ns() };
    if dedup
        && let Some(last) = unsafe { DEDUP.get(&key) }
        && now.wrapping_sub(*last) < window
    {
        return true;
    }
    if use_prefixes && prefix_ignored(buf, len) {
        return true;
    }
    if dedup {
        let _ = DEDUP.insert(&key, &now, 0);
    }
    false
}

#[inline(always)]
fn prefix_ignored(buf: *mut u8, len: usize) -> bool {
    let take = if len < PREFIX_KEY_LEN {
        len
    } else {
        PREFIX_KEY_LEN
    };
    // A whole-block copy: the trie compares only `prefix_len` bits, so stale bytes past the
    // path's end are never looked at.
    let data = unsafe { core::ptr::read_unaligned(buf.cast::<[u8; PREFIX_KEY_LEN]>()) };
    let key = Key::new((take * 8) as u32, data);
    IGNORED_PREFIXES.get(&key).is_some()
}

/// FNV-1a over 8-byte words of the path, the last word masked to the path's length (bytes
/// past the NUL are stale scratch data).
#[inline(always)]
fn hash_path(buf: *mut u8, len: usize) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ len as u64;
    let mut i = 0usize;
    while i < DEDUP_HASH_MAX / 8 {
        let start = i * 8;
        if start >= len {
            break;
        }
        let mut w = unsafe { core::ptr::read_unaligned(buf.add(start).cast::<u64>()) };
        let rem = len - start;
        if rem < 8 {
            w &= (1u64 << (rem * 8)) - 1;
        }
        h ^= w;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

/// Read a user string to `buf[off..]`; returns its length without the NUL (0 on failure).
#[inline(always)]
unsafe fn read_str(buf: *mut u8, off: usize, ptr: u64, flags: &mut u32, trunc_flag: u32) -> usize {
    if ptr == 0 {
        return 0;
    }
    let n = unsafe {
        bpf_probe_read_user_str(
            buf.add(off).cast::<c_void>(),
            MAX_PATH as u32,
            ptr as *const c_void,
        )
    };
    if n <= 0 {
        *flags |= SYS_FLAG_READ_FAILED;
        return 0;
    }
    let len = (n as usize) - 1;
    if len >= MAX_PATH - 1 {
        *flags |= trunc_flag;
    }
    len & MAX_PATH_MASK
}

/// Read `len` (capped) bytes of user memory to `buf[off..]`; returns what was read.
#[inline(always)]
unsafe fn read_bytes(buf: *mut u8, off: usize, ptr: u64, len: u64, flags: &mut u32) -> usize {
    if ptr == 0 {
        return 0;
    }
    let len = if len > MAX_EXTRA_MASK as u64 {
        MAX_EXTRA_MASK
    } else {
        len as usize
    };
    let len = len & MAX_EXTRA_MASK;
    if len == 0 {
        return 0;
    }
    let r = unsafe {
        bpf_probe_read_user(
            buf.add(off).cast::<c_void>(),
            len as u32,
            ptr as *const c_void,
        )
    };
    if r != 0 {
        *flags |= SYS_FLAG_READ_FAILED;
        return 0;
    }
    len
}

#[inline(always)]
fn exit<const OP: u32>(ctx: &TracePointContext) -> u32 {
    if cfg_mode() == MODE_EMPTY {
        return 0;
    }
    let kind = op_kind(OP);
    let tid = bpf_get_current_pid_tgid() as u32;
    let Some(st) = (unsafe { STASH.get(&tid) }).copied() else {
        return 0;
    };
    let _ = STASH.remove(&tid);
    if st.op != OP {
        return 0;
    }
    let ret: i64 = unsafe { ctx.as_ptr().cast::<u8>().add(RET).cast::<i64>().read() };
    let Some(buf) = scratch() else {
        count(kind, CTR_ERRORS);
        return 0;
    };
    unsafe { fill_header(buf, kind) };

    let mut flags = 0u32;
    let (a, b) = string_args(OP);
    let mut off = BODY;
    let len0 = if a < 6 {
        unsafe { read_str(buf, off, st.args[a], &mut flags, SYS_FLAG_STR0_TRUNCATED) }
    } else {
        0
    };
    off += len0;
    let len1 = if b < 6 {
        unsafe { read_str(buf, off, st.args[b], &mut flags, SYS_FLAG_STR1_TRUNCATED) }
    } else {
        0
    };
    off += len1;

    let extra = match OP {
        OP_CONNECT | OP_BIND => unsafe { read_bytes(buf, off, st.args[1], st.args[2], &mut flags) },
        OP_ACCEPT | OP_ACCEPT4 if ret >= 0 && st.args[1] != 0 && st.args[2] != 0 => {
            // The kernel wrote the peer address and its length at exit.
            let mut alen: u32 = 0;
            unsafe {
                bpf_probe_read_user(
                    (&mut alen as *mut u32).cast::<c_void>(),
                    4,
                    st.args[2] as *const c_void,
                )
            };
            unsafe { read_bytes(buf, off, st.args[1], alen as u64, &mut flags) }
        }
        // Two struct __user_cap_data_struct {effective, permitted, inheritable}.
        OP_CAPSET => unsafe { read_bytes(buf, off, st.args[1], 24, &mut flags) },
        // The filesystem type, as a short string.
        OP_MOUNT if st.args[2] != 0 => {
            let n = unsafe {
                bpf_probe_read_user_str(
                    buf.add(off).cast::<c_void>(),
                    MAX_EXTRA as u32,
                    st.args[2] as *const c_void,
                )
            };
            if n > 0 {
                ((n as usize) - 1) & MAX_EXTRA_MASK
            } else {
                0
            }
        }
        _ => 0,
    };
    if matches!(OP, OP_CONNECT | OP_ACCEPT | OP_ACCEPT4) && extra > 0 {
        flags |= unsafe { ioc_check(buf.add(off), extra) };
    }
    off += extra;

    unsafe {
        let body = buf.add(HDR).cast::<SyscallBody>();
        (*body).op = OP;
        (*body).flags = flags;
        (*body).ret = ret;
        (*body).args = st.args;
        (*body).str0_len = len0 as u16;
        (*body).str1_len = len1 as u16;
        (*body).extra_len = extra as u16;
        (*body)._pad0 = 0;
        // Privilege changes are rare and what responders act on: wake the reader now.
        submit(buf, off, kind, kind == KIND_PRIV);
    }
    0
}

/// One `sys_enter_<name>` / `sys_exit_<name>` pair. The program names are `enter_<name>` and
/// `exit_<name>`; the agent derives the tracepoint names from them.
macro_rules! pair {
    ($enter:ident, $exit:ident, $op:expr, $nargs:expr) => {
        #[tracepoint]
        pub fn $enter(ctx: TracePointContext) -> u32 {
            enter::<{ $op }, { $nargs }>(&ctx)
        }
        #[tracepoint]
        pub fn $exit(ctx: TracePointContext) -> u32 {
            exit::<{ $op }>(&ctx)
        }
    };
}

// File.
pair!(enter_open, exit_open, OP_OPEN, 3);
pair!(enter_openat, exit_openat, OP_OPENAT, 4);
pair!(enter_openat2, exit_openat2, OP_OPENAT2, 4);
pair!(enter_creat, exit_creat, OP_CREAT, 2);
pair!(enter_unlink, exit_unlink, OP_UNLINK, 1);
pair!(enter_unlinkat, exit_unlinkat, OP_UNLINKAT, 3);
pair!(enter_rename, exit_rename, OP_RENAME, 2);
pair!(enter_renameat, exit_renameat, OP_RENAMEAT, 4);
pair!(enter_renameat2, exit_renameat2, OP_RENAMEAT2, 5);
pair!(enter_chmod, exit_chmod, OP_CHMOD, 2);
pair!(enter_fchmod, exit_fchmod, OP_FCHMOD, 2);
pair!(enter_fchmodat, exit_fchmodat, OP_FCHMODAT, 3);
pair!(enter_fchmodat2, exit_fchmodat2, OP_FCHMODAT2, 4);
pair!(enter_truncate, exit_truncate, OP_TRUNCATE, 2);
pair!(enter_ftruncate, exit_ftruncate, OP_FTRUNCATE, 2);
pair!(enter_chdir, exit_chdir, OP_CHDIR, 1);
pair!(enter_fchdir, exit_fchdir, OP_FCHDIR, 1);
// Network.
pair!(enter_connect, exit_connect, OP_CONNECT, 3);
pair!(enter_bind, exit_bind, OP_BIND, 3);
pair!(enter_listen, exit_listen, OP_LISTEN, 2);
pair!(enter_accept, exit_accept, OP_ACCEPT, 3);
pair!(enter_accept4, exit_accept4, OP_ACCEPT4, 4);
// Privilege and isolation.
pair!(enter_setuid, exit_setuid, OP_SETUID, 1);
pair!(enter_setgid, exit_setgid, OP_SETGID, 1);
pair!(enter_setreuid, exit_setreuid, OP_SETREUID, 2);
pair!(enter_setregid, exit_setregid, OP_SETREGID, 2);
pair!(enter_setresuid, exit_setresuid, OP_SETRESUID, 3);
pair!(enter_setresgid, exit_setresgid, OP_SETRESGID, 3);
pair!(enter_setfsuid, exit_setfsuid, OP_SETFSUID, 1);
pair!(enter_setfsgid, exit_setfsgid, OP_SETFSGID, 1);
pair!(enter_capset, exit_capset, OP_CAPSET, 2);
pair!(enter_ptrace, exit_ptrace, OP_PTRACE, 4);
pair!(enter_memfd_create, exit_memfd_create, OP_MEMFD_CREATE, 2);
pair!(enter_init_module, exit_init_module, OP_INIT_MODULE, 3);
pair!(enter_finit_module, exit_finit_module, OP_FINIT_MODULE, 3);
pair!(enter_mount, exit_mount, OP_MOUNT, 5);
pair!(enter_umount, exit_umount, OP_UMOUNT2, 2);
pair!(enter_unshare, exit_unshare, OP_UNSHARE, 1);
pair!(enter_setns, exit_setns, OP_SETNS, 2);
pair!(enter_bpf, exit_bpf, OP_BPF, 3);
pair!(enter_chroot, exit_chroot, OP_CHROOT, 1);
pair!(enter_pivot_root, exit_pivot_root, OP_PIVOT_ROOT, 2);
