//! The ABI between the sensor's eBPF programs and its agent.
//!
//! Rules that keep both sides honest:
//! - plain `#[repr(C)]` structs with explicit padding, no `bool` and no Rust enums across the
//!   boundary: kinds and operations are `u32` constants that userspace converts with `TryFrom`;
//! - a `const` size assertion beside every struct, so a layout change breaks the build on both
//!   sides instead of corrupting events;
//! - variable-length data (paths, argv, socket addresses) follows a fixed header, with its lengths
//!   in the header; userspace accessors are bounds-checked (see `sensor::probes::decode`).
#![no_std]

/// Name of the ring buffer carrying every event.
pub const MAP_EVENTS: &str = "EVENTS";
/// Name of the per-CPU counter array (see [`counter_index`]).
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Name of the LPM trie of path prefixes whose read-only opens are not reported.
pub const MAP_IGNORED_PREFIXES: &str = "IGNORED_PREFIXES";
/// LPM tries of IOC addresses (value: indicator index), filled by the agent.
pub const MAP_IOC_V4: &str = "IOC_V4";
pub const MAP_IOC_V6: &str = "IOC_V6";
/// Capacity of each IOC trie.
pub const IOC_MAX_ENTRIES: u32 = 65536;
/// Syscall learning (only while a workload learns): cgroup id → slot, tgid → slot (children
/// inherit their parent's at fork, in the kernel), and slot → bitmap of syscall numbers.
pub const MAP_LEARN_CGROUPS: &str = "LEARN_CGROUPS";
pub const MAP_LEARN_PIDS: &str = "LEARN_PIDS";
pub const MAP_LEARN_BITMAPS: &str = "LEARN_BITMAPS";
/// (inode, device) of a learning program's executable → slot, checked at exec.
pub const MAP_LEARN_EXES: &str = "LEARN_EXES";
pub const LEARN_MAX_PIDS: u32 = 65536;
pub const LEARN_MAX_CGROUPS: u32 = 4096;
pub const LEARN_MAX_SLOTS: u32 = 1024;
/// Syscall numbers below this are recorded (x86_64 has about 460).
pub const LEARN_SYSCALLS: u32 = 512;
/// The program name of the syscall recorder (`raw_syscalls/sys_enter`), attached only while
/// some workload learns.
pub const PROG_LEARN_SYSCALLS: &str = "learn_syscalls";

/// A pre-filter in front of the hash maps, so a process that does not learn costs two array
/// reads per syscall: bit `filter_bit(tgid)` of words 0..64 for processes, of words 64..128 for
/// cgroups. A set bit means "maybe"; the hash map decides.
pub const MAP_LEARN_FILTER: &str = "LEARN_FILTER";
pub const LEARN_FILTER_WORDS: u32 = 128;

/// The filter bit (0..4096) of a pid or cgroup id.
pub const fn filter_bit(x: u64) -> u32 {
    ((x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 52) & 4095) as u32
}

/// One slot's syscalls: bit `n % 64` of word `n / 64` is syscall `n`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallBitmap {
    pub words: [u64; (LEARN_SYSCALLS / 64) as usize],
}
const _: () = assert!(core::mem::size_of::<SyscallBitmap>() == 64);

/// A learning process: its workload slot and the syscalls it made (one lookup per syscall).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidLearn {
    pub slot: u64,
    pub bits: SyscallBitmap,
}
const _: () = assert!(core::mem::size_of::<PidLearn>() == 72);

/// Enforcement by cgroup: cgroup id → [`EnforcePolicy`]; the allow-lists of each policy; and
/// per-CPU counters (`policy * ENFORCE_COUNTERS + ENF_*`).
pub const MAP_ENFORCE_CGROUPS: &str = "ENFORCE_CGROUPS";
pub const MAP_EXEC_ALLOW: &str = "EXEC_ALLOW";
pub const MAP_CONNECT_ALLOW: &str = "CONNECT_ALLOW";
pub const MAP_ENFORCE_STATS: &str = "ENFORCE_STATS";
pub const MAP_ENFORCE_BACKEND: &str = "ENFORCE_BACKEND";
pub const PROG_LSM_EXEC: &str = "lsm_exec";
pub const PROG_LSM_CONNECT: &str = "lsm_connect";
pub const PROG_LSM_FILE: &str = "lsm_file_open";
/// File opens of enforced workloads (BPF LSM only): a longest-prefix trie keyed by
/// [`FILE_KEY_LEN`] bytes, the policy id (big-endian) then the path `bpf_d_path` gives. A
/// value holds the `FILE_*` rights the prefix allows. An exact file is stored with its NUL, a
/// directory tree as `dir/`.
pub const MAP_FILE_ALLOW: &str = "FILE_ALLOW";
pub const FILE_KEY_LEN: usize = 256;
/// Path bytes a key holds after the policy id (with the NUL).
pub const FILE_PATH_LEN: usize = FILE_KEY_LEN - 4;
pub const FILE_READ: u8 = 1;
pub const FILE_WRITE: u8 = 2;
pub const PROG_CONNECT4: &str = "enforce_connect4";
pub const PROG_CONNECT6: &str = "enforce_connect6";
pub const ENFORCE_MAX_POLICIES: u32 = 256;
pub const ENFORCE_MAX_ALLOW: u32 = 65536;
pub const ENFORCE_COUNTERS: u32 = 6;
pub const ENF_EXEC_DENIED: u32 = 0;
pub const ENF_EXEC_WOULD: u32 = 1;
pub const ENF_CONNECT_DENIED: u32 = 2;
pub const ENF_CONNECT_WOULD: u32 = 3;
pub const ENF_FILE_DENIED: u32 = 4;
pub const ENF_FILE_WOULD: u32 = 5;
/// Policy flags: which checks run, and whether they only count (shadow).
pub const ENF_FLAG_EXEC: u32 = 1;
pub const ENF_FLAG_CONNECT: u32 = 2;
pub const ENF_FLAG_SHADOW: u32 = 4;
pub const ENF_FLAG_FILE: u32 = 8;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnforcePolicy {
    pub policy: u32,
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<EnforcePolicy>() == 8);

/// An allowed executable of a policy.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExecAllowKey {
    pub policy: u32,
    pub dev: u32,
    pub ino: u64,
}
const _: () = assert!(core::mem::size_of::<ExecAllowKey>() == 16);

/// An allowed destination of a policy: IPv4 addresses in the first 4 bytes of `ip`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnectAllowKey {
    pub policy: u32,
    /// Host byte order.
    pub port: u16,
    /// 4 or 6.
    pub family: u16,
    pub ip: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<ConnectAllowKey>() == 24);

/// Containment: executables denied from now on (by device and inode), checked on every exec;
/// the isolation programs attached to isolated cgroups and their one allow-list
/// ([`ConnectAllowKey`] with `policy` 0; port 0 allows every port of the address); counters
/// (`CONTAIN_*`).
pub const MAP_DENY_EXEC: &str = "DENY_EXEC";
pub const MAP_ISOLATE_ALLOW: &str = "ISOLATE_ALLOW";
pub const MAP_CONTAIN_STATS: &str = "CONTAIN_STATS";
pub const PROG_ISOLATE_CONNECT4: &str = "isolate_connect4";
pub const PROG_ISOLATE_CONNECT6: &str = "isolate_connect6";
pub const PROG_ISOLATE_INGRESS: &str = "isolate_ingress";
pub const PROG_ISOLATE_EGRESS: &str = "isolate_egress";
pub const DENY_EXEC_MAX: u32 = 16384;
pub const ISOLATE_MAX_ALLOW: u32 = 4096;
pub const CONTAIN_EXEC_DENIED: u32 = 0;
pub const CONTAIN_CONNECT_DENIED: u32 = 1;
pub const CONTAIN_PACKETS_DROPPED: u32 = 2;
pub const CONTAIN_COUNTERS: u32 = 3;

/// A denied executable.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DenyExecKey {
    pub dev: u32,
    pub _pad: u32,
    pub ino: u64,
}
const _: () = assert!(core::mem::size_of::<DenyExecKey>() == 16);

/// Name of the load-time configuration global.
// Self-protection (`guard`): signals to the agent reported, and refused with ptrace where BPF
// LSM loads.
pub const MAP_GUARD_THREADS: &str = "GUARD_THREADS";
pub const MAP_GUARD: &str = "GUARD";
pub const MAP_GUARD_STATS: &str = "GUARD_STATS";
pub const PROG_GUARD_SIGNAL: &str = "signal_generate";
pub const PROG_GUARD_TASK_KILL: &str = "guard_task_kill";
pub const PROG_GUARD_PTRACE: &str = "guard_ptrace";
pub const GUARD_MAX_THREADS: u32 = 4096;
/// `GUARD` slots: 1 when refusing is on; the tgid of the process that started the agent.
pub const GUARD_DENY: u32 = 0;
pub const GUARD_SUPERVISOR: u32 = 1;
pub const GUARD_SLOTS: u32 = 2;
pub const GUARD_SIGNALS_DENIED: u32 = 0;
pub const GUARD_PTRACE_DENIED: u32 = 1;
pub const GUARD_COUNTERS: u32 = 2;

pub const GLOBAL_CONFIG: &str = "CONFIG";

// ---------------------------------------------------------------------------------------------
// Event kinds: the coarse class of an event, used for counters and for routing in userspace.
// ---------------------------------------------------------------------------------------------

pub const KIND_EXEC: u32 = 1;
pub const KIND_FORK: u32 = 2;
pub const KIND_EXIT: u32 = 3;
pub const KIND_FILE: u32 = 4;
pub const KIND_NET: u32 = 5;
pub const KIND_PRIV: u32 = 6;
/// One past the highest kind; counters are sized by it.
pub const KIND_COUNT: u32 = 7;

// Counter slots per kind.
/// Events that passed the in-kernel filters and were offered to the ring buffer.
pub const CTR_SEEN: u32 = 0;
/// Events the ring buffer refused (full). `seen - dropped` reached userspace.
pub const CTR_DROPPED: u32 = 1;
/// Events suppressed on purpose in the kernel (own activity, ignored prefixes, dedup).
pub const CTR_FILTERED: u32 = 2;
/// Events that could not be built (a failed read of kernel or user memory, a full stash map).
pub const CTR_ERRORS: u32 = 3;
pub const CTR_SLOTS: u32 = 4;
pub const COUNTERS_LEN: u32 = KIND_COUNT * CTR_SLOTS;

/// Index of a counter in [`MAP_COUNTERS`].
#[inline(always)]
pub const fn counter_index(kind: u32, slot: u32) -> u32 {
    kind * CTR_SLOTS + slot
}

// ---------------------------------------------------------------------------------------------
// Syscall operations: what a KIND_FILE / KIND_NET / KIND_PRIV event records.
// ---------------------------------------------------------------------------------------------

pub const OP_OPEN: u32 = 1;
pub const OP_OPENAT: u32 = 2;
pub const OP_OPENAT2: u32 = 3;
pub const OP_CREAT: u32 = 4;
pub const OP_UNLINK: u32 = 5;
pub const OP_UNLINKAT: u32 = 6;
pub const OP_RENAME: u32 = 7;
pub const OP_RENAMEAT: u32 = 8;
pub const OP_RENAMEAT2: u32 = 9;
pub const OP_CHMOD: u32 = 10;
pub const OP_FCHMOD: u32 = 11;
pub const OP_FCHMODAT: u32 = 12;
pub const OP_FCHMODAT2: u32 = 13;
pub const OP_TRUNCATE: u32 = 14;
pub const OP_FTRUNCATE: u32 = 15;
/// Traced so relative paths resolve against the right working directory.
pub const OP_CHDIR: u32 = 16;
pub const OP_FCHDIR: u32 = 17;

pub const OP_CONNECT: u32 = 20;
pub const OP_BIND: u32 = 21;
pub const OP_LISTEN: u32 = 22;
pub const OP_ACCEPT: u32 = 23;
pub const OP_ACCEPT4: u32 = 24;

pub const OP_SETUID: u32 = 30;
pub const OP_SETGID: u32 = 31;
pub const OP_SETREUID: u32 = 32;
pub const OP_SETREGID: u32 = 33;
pub const OP_SETRESUID: u32 = 34;
pub const OP_SETRESGID: u32 = 35;
pub const OP_SETFSUID: u32 = 36;
pub const OP_SETFSGID: u32 = 37;
pub const OP_CAPSET: u32 = 38;
pub const OP_PTRACE: u32 = 39;
pub const OP_MEMFD_CREATE: u32 = 40;
pub const OP_INIT_MODULE: u32 = 41;
pub const OP_FINIT_MODULE: u32 = 42;
pub const OP_MOUNT: u32 = 43;
pub const OP_UMOUNT2: u32 = 44;
pub const OP_UNSHARE: u32 = 45;
pub const OP_SETNS: u32 = 46;
pub const OP_BPF: u32 = 47;
pub const OP_CHROOT: u32 = 48;
pub const OP_PIVOT_ROOT: u32 = 49;

/// A signal sent to the agent by another process (`signal/signal_generate`): args are
/// signal, target thread, group flag, si_code; `ret` is the tracepoint's result code.
pub const OP_SIGNAL: u32 = 50;

/// The kind an operation is counted under.
#[inline(always)]
pub const fn op_kind(op: u32) -> u32 {
    if op < 20 {
        KIND_FILE
    } else if op < 30 {
        KIND_NET
    } else {
        KIND_PRIV
    }
}

// ---------------------------------------------------------------------------------------------
// Bounds of the variable-length regions. Documented in README ("What the probes capture").
// ---------------------------------------------------------------------------------------------

/// Bytes of a path (or other string argument) captured; longer ones are truncated and flagged.
pub const MAX_PATH: usize = 4096;
/// Bytes of NUL-separated argv captured at exec; longer argv is truncated and flagged.
pub const MAX_ARGS: usize = 8192;
/// Bytes of op-specific extra data captured (a `sockaddr_un` is the largest: 110).
pub const MAX_EXTRA: usize = 128;
pub const MAX_EXTRA_MASK: usize = MAX_EXTRA - 1;
/// Scratch buffer for building one event (header + body + regions).
pub const SCRATCH_LEN: usize = 16384 + 512;

// Masks the eBPF side uses to prove bounds to the verifier (sizes are powers of two).
pub const MAX_PATH_MASK: usize = MAX_PATH - 1;
pub const MAX_ARGS_MASK: usize = MAX_ARGS - 1;

// ---------------------------------------------------------------------------------------------
// Records.
// ---------------------------------------------------------------------------------------------

/// Leads every record in the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// One of `KIND_*`.
    pub kind: u32,
    /// Total record length in bytes, header included.
    pub len: u32,
    /// `bpf_ktime_get_boot_ns()`: nanoseconds since boot, suspend included.
    pub ts_ns: u64,
    /// cgroup v2 id (`bpf_get_current_cgroup_id`), the inode of the cgroup directory.
    pub cgroup_id: u64,
    /// Thread group id (what userspace calls the pid).
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Thread group id of the real parent.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub _pad0: u32,
    /// `task->comm`, NUL padded.
    pub comm: [u8; 16],
}
const _: () = assert!(core::mem::size_of::<EventHeader>() == 72);

pub const EXEC_FLAG_MEMFD: u32 = 1 << 0;
pub const EXEC_FLAG_DELETED: u32 = 1 << 1;
pub const EXEC_FLAG_ARGS_TRUNCATED: u32 = 1 << 2;
pub const EXEC_FLAG_FILENAME_TRUNCATED: u32 = 1 << 3;
/// Reading the argv region failed (the record carries no args).
pub const EXEC_FLAG_ARGS_UNREADABLE: u32 = 1 << 4;

/// Body of a `KIND_EXEC` record, followed by `filename_len` bytes of the exec'd filename and
/// `args_len` bytes of NUL-separated argv.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecBody {
    pub exe_ino: u64,
    pub exe_dev: u32,
    pub exe_nlink: u32,
    /// `EXEC_FLAG_*`.
    pub flags: u32,
    /// argc as the kernel counted it (may exceed what fits in the captured args).
    pub argc: u32,
    /// The pid before exec (differs when a non-leader thread execs).
    pub old_pid: u32,
    pub filename_len: u16,
    pub args_len: u16,
    /// File types of fds 0, 1, 2 at exec: 4 bits each (`S_IFMT >> 12`: 0xc socket, 0x1 pipe,
    /// 0x2 character device, 0x8 regular file; 0 = closed or unreadable). A shell whose
    /// stdin is a socket is the signature of a reverse shell.
    pub stdio: u32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<ExecBody>() == 40);

/// Body of a `KIND_FORK` record (a new process; new threads are not reported).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkBody {
    pub child_pid: u32,
    pub child_tid: u32,
    /// Flags of the clone/clone3/fork/vfork call, when the call was seen; else 0.
    pub clone_flags: u64,
}
const _: () = assert!(core::mem::size_of::<ForkBody>() == 16);

/// Body of a `KIND_EXIT` record (the thread group leader exited).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitBody {
    /// `task->exit_code`: wait-status encoding (`code << 8 | signal`).
    pub exit_code: u32,
    pub _pad0: u32,
}
const _: () = assert!(core::mem::size_of::<ExitBody>() == 8);

pub const SYS_FLAG_STR0_TRUNCATED: u32 = 1 << 0;
pub const SYS_FLAG_STR1_TRUNCATED: u32 = 1 << 1;
/// A string or address argument could not be read from user memory.
pub const SYS_FLAG_READ_FAILED: u32 = 1 << 2;
/// The socket address (connect peer, accepted peer) is in the IOC tries.
pub const SYS_FLAG_IOC_HIT: u32 = 1 << 3;

/// Body of a syscall record (`KIND_FILE`, `KIND_NET`, `KIND_PRIV`), followed by `str0_len`
/// bytes, then `str1_len` bytes, then `extra_len` op-specific bytes (a socket address for
/// network ops, the capability sets for capset, the filesystem type for mount).
///
/// What each argument and string means depends on `op`; `sensor::probes::decode` holds the
/// table. Strings are the first and second path-like arguments (source and target of a
/// rename, device and directory of a mount, the name of a memfd).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallBody {
    /// One of `OP_*`.
    pub op: u32,
    /// `SYS_FLAG_*`.
    pub flags: u32,
    /// Return value of the syscall (negative errno on failure).
    pub ret: i64,
    /// Raw syscall arguments; pointers are meaningless in userspace except as "was NULL".
    pub args: [u64; 6],
    pub str0_len: u16,
    pub str1_len: u16,
    pub extra_len: u16,
    pub _pad0: u16,
}
const _: () = assert!(core::mem::size_of::<SyscallBody>() == 72);

/// Offsets of kernel struct members, read from the running kernel's BTF at load time and
/// passed as a global. Rust eBPF has no CO-RE relocations, so nothing is hard-coded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_cred: u32,
    pub task_mm: u32,
    pub task_exit_code: u32,
    pub cred_uid: u32,
    pub cred_gid: u32,
    pub cred_euid: u32,
    pub cred_egid: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub bprm_file: u32,
    pub bprm_filename: u32,
    pub bprm_argc: u32,
    pub file_inode: u32,
    /// `file.f_path.dentry`.
    pub file_dentry: u32,
    /// `dentry.d_name.name`.
    pub dentry_name: u32,
    pub inode_ino: u32,
    pub inode_sb: u32,
    pub inode_nlink: u32,
    pub sb_dev: u32,
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub inode_mode: u32,
    /// `file.f_path` (a `struct path` for `bpf_d_path`).
    pub file_path: u32,
    pub file_mode: u32,
    pub file_flags: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 120);

/// Run modes of the programs.
pub const MODE_FULL: u32 = 0;
/// Programs attach and return at once: the "empty probes on the same hooks" benchmark column.
pub const MODE_EMPTY: u32 = 1;

/// Load-time configuration, set once through [`GLOBAL_CONFIG`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub offsets: KernelOffsets,
    /// `MODE_*`.
    pub mode: u32,
    /// The agent's own thread group id: its activity is not reported.
    pub agent_tgid: u32,
    /// Window in which repeated identical opens by one process are reported once; 0 disables.
    pub dedup_window_ns: u64,
    /// Non-zero: apply the ignored-prefix trie to read-only opens.
    pub use_ignored_prefixes: u32,
    /// Wake the reader only once this many bytes wait in the ring (batched wakeups); the reader
    /// also polls on a short timer, so nothing waits longer than that tick. 0: wake per event.
    pub wakeup_bytes: u32,
}
const _: () = assert!(core::mem::size_of::<Config>() == 144);

/// Key of the ignored-prefix LPM trie: the first bytes of a path.
pub const PREFIX_KEY_LEN: usize = 64;

#[cfg(feature = "user")]
mod user {
    // SAFETY: all of these are repr(C), have explicit padding and hold only integers.
    unsafe impl aya::Pod for super::Config {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::EventHeader {}
    unsafe impl aya::Pod for super::SyscallBitmap {}
    unsafe impl aya::Pod for super::PidLearn {}
    unsafe impl aya::Pod for super::EnforcePolicy {}
    unsafe impl aya::Pod for super::ExecAllowKey {}
    unsafe impl aya::Pod for super::ConnectAllowKey {}
    unsafe impl aya::Pod for super::DenyExecKey {}
}
