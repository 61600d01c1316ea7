//! Enforcement by cgroup, for workloads the agent promoted from shadow to enforce: an exec
//! allow-list (by executable device and inode) and a connect allow-list. Two backends, chosen
//! by the agent at start-up by trying to load the LSM programs:
//! - BPF LSM (`lsm/bprm_check_security`, `lsm/socket_connect`, and `lsm/file_open` for a
//!   file allow-list by path prefix): the call fails with EPERM;
//! - fallback where the kernel refuses LSM programs: the exec tracepoint kills a denied
//!   program before its first instruction (SIGKILL), and cgroup/connect4 and connect6
//!   programs on the workload's cgroup fail the connect with EPERM.
//! In shadow mode both only count.

use aya_ebpf::{
    bindings::BPF_F_NO_PREALLOC,
    helpers::{
        bpf_send_signal,
        generated::{bpf_d_path, bpf_get_current_cgroup_id},
    },
    macros::{cgroup_sock_addr, lsm, map},
    maps::{Array, HashMap, LpmTrie, PerCpuArray, lpm_trie::Key},
    programs::{LsmContext, SockAddrContext},
};
use sensor_common::{
    ConnectAllowKey, ENF_CONNECT_DENIED, ENF_CONNECT_WOULD, ENF_EXEC_DENIED, ENF_EXEC_WOULD,
    ENF_FILE_DENIED, ENF_FILE_WOULD, ENF_FLAG_CONNECT, ENF_FLAG_EXEC, ENF_FLAG_FILE,
    ENF_FLAG_SHADOW, ENFORCE_COUNTERS, ENFORCE_MAX_ALLOW, ENFORCE_MAX_POLICIES, EnforcePolicy,
    ExecAllowKey, FILE_KEY_LEN, FILE_PATH_LEN, FILE_READ, FILE_WRITE,
};

#[map]
pub static ENFORCE_CGROUPS: HashMap<u64, EnforcePolicy> =
    HashMap::with_max_entries(ENFORCE_MAX_POLICIES * 16, 0);
#[map]
pub static EXEC_ALLOW: HashMap<ExecAllowKey, u8> = HashMap::with_max_entries(ENFORCE_MAX_ALLOW, 0);
#[map]
pub static CONNECT_ALLOW: HashMap<ConnectAllowKey, u8> =
    HashMap::with_max_entries(ENFORCE_MAX_ALLOW, 0);
#[map]
pub static FILE_ALLOW: LpmTrie<[u8; FILE_KEY_LEN], u8> =
    LpmTrie::with_max_entries(ENFORCE_MAX_ALLOW, BPF_F_NO_PREALLOC);
/// Per-CPU room for the key a file open is looked up with (too big for the stack).
#[map]
static FILE_KEY: PerCpuArray<Key<[u8; FILE_KEY_LEN]>> = PerCpuArray::with_max_entries(1, 0);
/// Slot 0: 1 when the LSM programs enforce (the tracepoint then leaves exec alone).
#[map]
pub static ENFORCE_BACKEND: Array<u32> = Array::with_max_entries(1, 0);
#[map]
pub static ENFORCE_STATS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(ENFORCE_MAX_POLICIES * ENFORCE_COUNTERS, 0);

#[inline(always)]
fn bump(policy: u32, what: u32) {
    if policy >= ENFORCE_MAX_POLICIES {
        return;
    }
    if let Some(c) = ENFORCE_STATS.get_ptr_mut(policy * ENFORCE_COUNTERS + what) {
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn current_policy(flag: u32) -> Option<EnforcePolicy> {
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    let p = unsafe { ENFORCE_CGROUPS.get(&cgroup) }.copied()?;
    (p.flags & flag != 0).then_some(p)
}

#[inline(always)]
fn lsm_active() -> bool {
    ENFORCE_BACKEND.get(0).copied().unwrap_or(0) == 1
}

/// Whether `dev:ino` may be executed under policy `p`; counts what it decides.
#[inline(always)]
fn exec_allowed(p: EnforcePolicy, dev: u32, ino: u64) -> bool {
    let key = ExecAllowKey {
        policy: p.policy,
        dev,
        ino,
    };
    if unsafe { EXEC_ALLOW.get(&key) }.is_some() {
        return true;
    }
    if p.flags & ENF_FLAG_SHADOW != 0 {
        bump(p.policy, ENF_EXEC_WOULD);
        true
    } else {
        bump(p.policy, ENF_EXEC_DENIED);
        false
    }
}

/// `lsm/bprm_check_security(struct linux_binprm *bprm)`: refuse a denied exec with EPERM.
#[lsm(hook = "bprm_check_security")]
pub fn lsm_exec(ctx: LsmContext) -> i32 {
    let bprm: *const u8 = ctx.arg(0);
    let prev: i32 = ctx.arg(1);
    if prev != 0 {
        return prev;
    }
    let o = crate::common::offsets();
    let file: u64 = unsafe { crate::common::read_kernel(bprm, o.bprm_file as usize) };
    let inode: u64 =
        unsafe { crate::common::read_kernel(file as *const u8, o.file_inode as usize) };
    let sb: u64 = unsafe { crate::common::read_kernel(inode as *const u8, o.inode_sb as usize) };
    let ino: u64 = unsafe { crate::common::read_kernel(inode as *const u8, o.inode_ino as usize) };
    let dev: u32 = unsafe { crate::common::read_kernel(sb as *const u8, o.sb_dev as usize) };
    if crate::contain::exec_denied(dev, ino) {
        return -1;
    }
    let Some(p) = current_policy(ENF_FLAG_EXEC) else {
        return 0;
    };
    if exec_allowed(p, dev, ino) { 0 } else { -1 }
}

/// `lsm/socket_connect(struct socket *sock, struct sockaddr *address, int addrlen)`.
#[lsm(hook = "socket_connect")]
pub fn lsm_connect(ctx: LsmContext) -> i32 {
    let addr: *const u8 = ctx.arg(1);
    let prev: i32 = ctx.arg(3);
    if prev != 0 {
        return prev;
    }
    let family: u16 = unsafe { crate::common::read_kernel(addr, 0) };
    let port: u16 = u16::from_be(unsafe { crate::common::read_kernel(addr, 2) });
    let mut ip = [0u8; 16];
    match family {
        2 => {
            let a: [u8; 4] = unsafe { crate::common::read_kernel(addr, 4) };
            ip[..4].copy_from_slice(&a);
            if check_connect(4, port, ip) == 1 {
                0
            } else {
                -1
            }
        }
        10 => {
            ip = unsafe { crate::common::read_kernel(addr, 8) };
            if check_connect(6, port, ip) == 1 {
                0
            } else {
                -1
            }
        }
        _ => 0,
    }
}

// `file.f_mode` bits; an exec's open carries `__FMODE_EXEC` in `f_flags` (older kernels keep
// it only there).
const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
const FMODE_EXEC: u32 = 0x20;

/// `lsm/file_open(struct file *file)`: a workload under a file policy opens only what its
/// profile lists, with the rights it lists. Opens for exec are the exec allow-list's.
#[lsm(hook = "file_open")]
pub fn lsm_file_open(ctx: LsmContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    let prev: i32 = ctx.arg(1);
    if prev != 0 {
        return prev;
    }
    let Some(p) = current_policy(ENF_FLAG_FILE) else {
        return 0;
    };
    let o = crate::common::offsets();
    let mode: u32 = unsafe { crate::common::read_kernel(file, o.file_mode as usize) };
    let flags: u32 = unsafe { crate::common::read_kernel(file, o.file_flags as usize) };
    if (mode | flags) & FMODE_EXEC != 0 {
        return 0;
    }
    let want = if mode & FMODE_READ != 0 { FILE_READ } else { 0 }
        | if mode & FMODE_WRITE != 0 {
            FILE_WRITE
        } else {
            0
        };
    if want == 0 {
        return 0;
    }
    let Some(key) = FILE_KEY.get_ptr_mut(0) else {
        return 0;
    };
    let key = unsafe { &mut *key };
    key.data[..4].copy_from_slice(&p.policy.to_be_bytes());
    // `file + f_path` stays a typed kernel pointer: the offset is a load-time constant the
    // verifier reads from the frozen config.
    let path = file.wrapping_add(o.file_path as usize) as *mut aya_ebpf::bindings::path;
    let n = unsafe {
        bpf_d_path(
            path,
            key.data[4..].as_mut_ptr().cast(),
            FILE_PATH_LEN as u32,
        )
    };
    // `n` counts the NUL. A path too long for the key (or unresolvable) is looked up as the
    // empty path: only a policy that allows all of `/` lets it through.
    let len = if n > 0 && (n as usize) <= FILE_PATH_LEN {
        n as usize
    } else {
        0
    };
    key.prefix_len = ((4 + len) * 8) as u32;
    let allowed = FILE_ALLOW.get(&*key).copied().unwrap_or(0);
    if allowed & want == want {
        return 0;
    }
    if p.flags & ENF_FLAG_SHADOW != 0 {
        bump(p.policy, ENF_FILE_WOULD);
        0
    } else {
        bump(p.policy, ENF_FILE_DENIED);
        -1
    }
}

/// From the exec tracepoint (the fallback backend): a denied program is killed before its
/// first instruction.
#[inline(always)]
pub fn on_exec(dev: u32, ino: u64) {
    if lsm_active() {
        return;
    }
    if crate::contain::exec_denied(dev, ino) {
        unsafe { bpf_send_signal(9) };
        return;
    }
    let Some(p) = current_policy(ENF_FLAG_EXEC) else {
        return;
    };
    if !exec_allowed(p, dev, ino) {
        // SIGKILL the task that just exec'd: none of the new program's code runs.
        unsafe { bpf_send_signal(9) };
    }
}

#[inline(always)]
fn check_connect(family: u16, port: u16, ip: [u8; 16]) -> i32 {
    let Some(p) = current_policy(ENF_FLAG_CONNECT) else {
        return 1;
    };
    let exact = ConnectAllowKey {
        policy: p.policy,
        port,
        family,
        ip,
    };
    let any_ip = ConnectAllowKey {
        ip: [0; 16],
        ..exact
    };
    if unsafe { CONNECT_ALLOW.get(&exact) }.is_some()
        || unsafe { CONNECT_ALLOW.get(&any_ip) }.is_some()
    {
        return 1;
    }
    if p.flags & ENF_FLAG_SHADOW != 0 {
        bump(p.policy, ENF_CONNECT_WOULD);
        1
    } else {
        bump(p.policy, ENF_CONNECT_DENIED);
        0
    }
}

#[cgroup_sock_addr(connect4)]
pub fn enforce_connect4(ctx: SockAddrContext) -> i32 {
    let sa = unsafe { &*ctx.sock_addr };
    let ip4 = sa.user_ip4.to_ne_bytes();
    let mut ip = [0u8; 16];
    ip[..4].copy_from_slice(&ip4);
    check_connect(4, u16::from_be(sa.user_port as u16), ip)
}

#[cgroup_sock_addr(connect6)]
pub fn enforce_connect6(ctx: SockAddrContext) -> i32 {
    let sa = unsafe { &*ctx.sock_addr };
    let mut ip = [0u8; 16];
    for (i, w) in sa.user_ip6.iter().enumerate() {
        ip[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    check_connect(6, u16::from_be(sa.user_port as u16), ip)
}
