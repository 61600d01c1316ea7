//! Enforcement by cgroup, for workloads the agent promoted from shadow to enforce: an exec
//! allow-list (by executable device and inode) checked at exec, where a denied program is
//! killed before its first instruction (SIGKILL: this kernel refuses BPF LSM), and a connect
//! allow-list checked by cgroup/connect4 and connect6 programs (EPERM). In shadow mode both
//! only count.

use aya_ebpf::{
    helpers::{bpf_send_signal, generated::bpf_get_current_cgroup_id},
    macros::{cgroup_sock_addr, map},
    maps::{HashMap, PerCpuArray},
    programs::SockAddrContext,
};
use sensor_common::{
    ConnectAllowKey, ENF_CONNECT_DENIED, ENF_CONNECT_WOULD, ENF_EXEC_DENIED, ENF_EXEC_WOULD,
    ENF_FLAG_CONNECT, ENF_FLAG_EXEC, ENF_FLAG_SHADOW, ENFORCE_COUNTERS, ENFORCE_MAX_ALLOW,
    ENFORCE_MAX_POLICIES, EnforcePolicy, ExecAllowKey,
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

/// From the exec tracepoint: is this program allowed here?
#[inline(always)]
pub fn on_exec(dev: u32, ino: u64) {
    let Some(p) = current_policy(ENF_FLAG_EXEC) else {
        return;
    };
    let key = ExecAllowKey {
        policy: p.policy,
        dev,
        ino,
    };
    if unsafe { EXEC_ALLOW.get(&key) }.is_some() {
        return;
    }
    if p.flags & ENF_FLAG_SHADOW != 0 {
        bump(p.policy, ENF_EXEC_WOULD);
    } else {
        bump(p.policy, ENF_EXEC_DENIED);
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
