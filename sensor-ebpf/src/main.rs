//! The sensor's kernel probes.
//!
//! Only hooks that load on a kernel without kprobes, fentry or BPF LSM: classic syscall
//! tracepoints and BTF tracepoints (`tp_btf`). Every struct member offset comes from the
//! running kernel's BTF through [`CONFIG`] (no CO-RE in Rust eBPF, nothing hard-coded).
//!
//! Layout: `common` (config, counters, headers, output), `process` (exec/fork/exit),
//! `syscalls` (the enter/exit pairs of file, network and privilege syscalls), `learn`
//! (syscall sets of learning workloads), `guard` (self-protection).
#![no_std]
// Atomic OR on map memory (BPF_ATOMIC); core's AtomicU64 has no RMW on the BPF target.
#![allow(internal_features)]
#![feature(core_intrinsics)]
#![no_main]

mod common;
mod contain;
mod enforce;
mod guard;
mod learn;
mod process;
mod syscalls;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable in verified code: every access is bounds-proven with masks, never indexing.
    loop {}
}

/// GPL-compatible licence: `bpf_probe_read_*` and `bpf_send_signal` need it.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
