//! Containment: a global exec deny list and network isolation of cgroups.
//!
//! - Exec deny: `DENY_EXEC` (device, inode) is checked by the LSM exec hook where BPF LSM
//!   loads (EPERM), else by the exec tracepoint, which kills the task before the denied
//!   program's first instruction (SIGKILL).
//! - Isolation: `cgroup/connect4`, `cgroup/connect6` (the connect fails with EPERM) and
//!   `cgroup_skb` ingress and egress (packets of existing sockets, and datagrams sent without
//!   connect, are dropped) attached only to isolated cgroups, never the root. Everything they
//!   see is isolated; the one allow-list keeps the sensor's outputs and management addresses
//!   reachable. cgroup_skb needs 4.10, connect hooks 4.17.

use aya_ebpf::{
    macros::{cgroup_skb, cgroup_sock_addr, map},
    maps::{HashMap, PerCpuArray},
    programs::{SkBuffContext, SockAddrContext},
};
use sensor_common::{
    CONTAIN_CONNECT_DENIED, CONTAIN_COUNTERS, CONTAIN_EXEC_DENIED, CONTAIN_PACKETS_DROPPED,
    ConnectAllowKey, DENY_EXEC_MAX, DenyExecKey, ISOLATE_MAX_ALLOW,
};

#[map]
pub static DENY_EXEC: HashMap<DenyExecKey, u32> = HashMap::with_max_entries(DENY_EXEC_MAX, 0);
#[map]
pub static ISOLATE_ALLOW: HashMap<ConnectAllowKey, u8> =
    HashMap::with_max_entries(ISOLATE_MAX_ALLOW, 0);
#[map]
pub static CONTAIN_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(CONTAIN_COUNTERS, 0);

#[inline(always)]
fn bump(what: u32) {
    if let Some(c) = CONTAIN_STATS.get_ptr_mut(what) {
        unsafe { *c += 1 };
    }
}

/// Whether `dev:ino` is on the deny list (counted when it is).
#[inline(always)]
pub fn exec_denied(dev: u32, ino: u64) -> bool {
    let key = DenyExecKey { dev, _pad: 0, ino };
    if unsafe { DENY_EXEC.get(&key) }.is_some() {
        bump(CONTAIN_EXEC_DENIED);
        true
    } else {
        false
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is checked as the IPv4 address it is.
#[inline(always)]
fn normalise(family: u16, ip: [u8; 16]) -> (u16, [u8; 16]) {
    if family == 6 && ip[..10].iter().all(|b| *b == 0) && ip[10] == 0xff && ip[11] == 0xff {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&ip[12..16]);
        return (4, v4);
    }
    (family, ip)
}

#[inline(always)]
fn allowed(family: u16, port: u16, ip: [u8; 16]) -> bool {
    let (family, ip) = normalise(family, ip);
    let exact = ConnectAllowKey {
        policy: 0,
        port,
        family,
        ip,
    };
    let any_port = ConnectAllowKey { port: 0, ..exact };
    unsafe { ISOLATE_ALLOW.get(&exact) }.is_some()
        || unsafe { ISOLATE_ALLOW.get(&any_port) }.is_some()
}

#[cgroup_sock_addr(connect4)]
pub fn isolate_connect4(ctx: SockAddrContext) -> i32 {
    let sa = unsafe { &*ctx.sock_addr };
    let mut ip = [0u8; 16];
    ip[..4].copy_from_slice(&sa.user_ip4.to_ne_bytes());
    if allowed(4, u16::from_be(sa.user_port as u16), ip) {
        1
    } else {
        bump(CONTAIN_CONNECT_DENIED);
        0
    }
}

#[cgroup_sock_addr(connect6)]
pub fn isolate_connect6(ctx: SockAddrContext) -> i32 {
    let sa = unsafe { &*ctx.sock_addr };
    let mut ip = [0u8; 16];
    for (i, w) in sa.user_ip6.iter().enumerate() {
        ip[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    if allowed(6, u16::from_be(sa.user_port as u16), ip) {
        1
    } else {
        bump(CONTAIN_CONNECT_DENIED);
        0
    }
}

/// The peer of the packet's socket: for egress the destination, for ingress the source.
#[inline(always)]
fn skb_allowed(ctx: &SkBuffContext) -> bool {
    let skb = &ctx.skb;
    // __sk_buff.remote_port: the kernel loads skc_dport (network order) and, on little-endian
    // targets, shifts it into the upper 16 bits.
    let port = u16::from_be((skb.remote_port() >> 16) as u16);
    let mut ip = [0u8; 16];
    match skb.family() {
        2 => {
            ip[..4].copy_from_slice(&skb.remote_ipv4().to_ne_bytes());
            allowed(4, port, ip)
        }
        10 => {
            let words = skb.remote_ipv6();
            for (i, w) in words.iter().enumerate() {
                ip[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
            }
            allowed(6, port, ip)
        }
        // Not an IP socket (AF_PACKET has no cgroup_skb path; anything else is dropped).
        _ => false,
    }
}

#[cgroup_skb(egress)]
pub fn isolate_egress(ctx: SkBuffContext) -> i32 {
    if skb_allowed(&ctx) {
        1
    } else {
        bump(CONTAIN_PACKETS_DROPPED);
        0
    }
}

#[cgroup_skb(ingress)]
pub fn isolate_ingress(ctx: SkBuffContext) -> i32 {
    if skb_allowed(&ctx) {
        1
    } else {
        bump(CONTAIN_PACKETS_DROPPED);
        0
    }
}
