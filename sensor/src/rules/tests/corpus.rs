//! Real recorded events: allocation-free evaluation and the throughput benchmark.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::fmt::Write;
use std::time::Instant;

use super::load;
use crate::event::Event;
use crate::rules::{RuleSet, Scratch};

/// 1178 events recorded from a developer shell session (benign).
pub(super) const CORPUS: &str = include_str!("../../../../tests/corpus/benign-dev-shell.jsonl");

/// Counts allocations per thread, so parallel tests do not disturb each other.
struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

pub(super) fn allocs() -> u64 {
    ALLOCS.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

pub(super) fn corpus() -> Vec<Event> {
    CORPUS
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// 22 realistic Linux detections plus 28 generated ones = 50 rules, mixing indexed
/// (by type / kind) and unindexed conditions and every operator family.
pub(super) fn bench_rules() -> String {
    let mut y = String::from(
        r#"
- list: shell_binaries
  items: [sh, bash, dash, zsh, ash, ksh]
- list: package_mgmt
  items: [dpkg, apt, apt-get, yum, dnf, rpm, pip, pip3, npm]
- list: sensitive_files
  items: [/etc/shadow, /etc/gshadow, /etc/sudoers, /etc/master.passwd]
- list: auth_binaries
  items: [sudo, su, login, sshd, passwd, unix_chkpwd, systemd-logind]
- list: web_servers
  items: [nginx, httpd, apache2, php-fpm, lighttpd, caddy]
- macro: spawned_shell
  condition: evt.type = exec and proc.name in (shell_binaries)
- macro: open_write
  condition: evt.type in (open, openat, openat2, creat) and file.write = true
- macro: open_read
  condition: evt.type in (open, openat, openat2) and evt.outcome = success
- rule: {id: B-01, name: Reverse shell, severity: critical, condition: "spawned_shell and proc.pname in (nc, ncat, socat, telnet)", output: "rev shell %proc.cmdline"}
- rule: {id: B-02, name: Web shell, severity: high, condition: "spawned_shell and proc.ancestors in (web_servers)", output: "%proc.cmdline"}
- rule: {id: B-03, name: Write below etc, severity: medium, condition: "open_write and file.path pmatch (/etc) and not proc.name in (package_mgmt) and not proc.ancestors in (package_mgmt)", output: "%file.path"}
- rule: {id: B-04, name: Sensitive read, severity: high, condition: "open_read and file.path in (sensitive_files) and not proc.name in (auth_binaries)", output: "%file.path by %proc.name"}
- rule: {id: B-05, name: Setuid bit, severity: high, condition: "evt.type in (chmod, fchmod, fchmodat) and file.mode_bits >= 4000", output: "%file.path %file.mode"}
- rule: {id: B-06, name: Fileless exec, severity: critical, condition: "evt.type = exec and (proc.exe_memfd = true or proc.exe_deleted = true)", output: "%proc.exe"}
- rule: {id: B-07, name: Cron write, severity: medium, condition: "open_write and (file.path glob '/etc/cron*/**' or file.path startswith /var/spool/cron)", output: "%file.path"}
- rule: {id: B-08, name: SSH keys, severity: high, condition: "open_write and file.path glob '/{home/*,root}/.ssh/authorized_keys*'", output: "%file.path"}
- rule: {id: B-09, name: Curl pipe shell, severity: high, condition: "evt.type = exec and proc.cmdline regex '(curl|wget)[^|]*\\|\\s*(ba|z|da)?sh'", output: "%proc.cmdline"}
- rule: {id: B-10, name: Public egress from shell, severity: low, condition: "evt.type = connect and net.family in (ipv4, ipv6) and net.dip_private = false and proc.name in (shell_binaries)", output: "%net.dip:%net.dport"}
- rule: {id: B-11, name: Metadata API, severity: medium, condition: "evt.type = connect and net.dip in (169.254.169.254, fd00:ec2::254)", output: "%proc.exe"}
- rule: {id: B-12, name: Kernel module, severity: high, condition: "evt.type in (init_module, finit_module)", output: "%proc.exe"}
- rule: {id: B-13, name: Namespace change in container, severity: high, condition: "evt.type in (mount, setns, unshare) and container.id exists", output: "%container.id"}
- rule: {id: B-14, name: History cleared, severity: medium, condition: "evt.type in (unlink, unlinkat, truncate) and file.path endswith _history", output: "%file.path"}
- rule: {id: B-15, name: Log deleted, severity: medium, condition: "evt.type in (unlink, unlinkat) and file.path pmatch (/var/log) and not proc.name in (logrotate)", output: "%file.path"}
- rule: {id: B-16, name: Runtime socket, severity: high, condition: "evt.type = connect and net.daddr in (/var/run/docker.sock, /run/docker.sock, /run/containerd/containerd.sock)", output: "%net.daddr"}
- rule: {id: B-17, name: Ptrace attach, severity: high, condition: "evt.type = ptrace and syscall.arg.request in (16, 0x4206)", output: "%proc.exe"}
- rule: {id: B-18, name: Setuid root, severity: high, condition: "evt.type in (setuid, setresuid) and syscall.arg.uid = 0 and user.uid != 0 and evt.ret = 0", output: "%user.uid"}
- rule: {id: B-19, name: Preload, severity: high, condition: "open_write and file.path = /etc/ld.so.preload", output: "%proc.exe"}
- rule: {id: B-20, name: Scanner, severity: low, condition: "evt.type = exec and proc.name in (nmap, masscan, zmap, rustscan)", output: "%proc.cmdline"}
- rule: {id: B-21, name: Exec from tmp, severity: medium, condition: "evt.type = exec and (proc.exe glob '/tmp/**' or proc.exe startswith /dev/shm/) and not proc.aexe in (/usr/bin/make)", output: "%proc.exe"}
- rule: {id: B-22, name: Decode and run, severity: medium, condition: "proc.cmdline icontains 'base64 -d' and proc.args exists and not user.name in (ci, builder)", output: "%proc.cmdline"}
"#,
    );
    for i in 0..28 {
        let cond = match i % 4 {
            0 => format!(
                "evt.type = exec and proc.name in (tool-{i}a, tool-{i}b) and not proc.ancestors in (cron)"
            ),
            1 => format!("open_read and file.path glob '/srv/secret-{i}/**'"),
            2 => format!(
                "evt.kind = network and net.dport in ({}, {}) and net.dip_private = false",
                4000 + i,
                5000 + i
            ),
            _ => format!(
                "proc.exe endswith /implant-{i} or proc.args contains '--payload-{i}' or container.runtime = x{i}"
            ),
        };
        let _ = writeln!(
            y,
            "- rule: {{id: G-{i:02}, name: gen {i}, severity: low, condition: \"{cond}\", output: \"%proc.cmdline\"}}"
        );
    }
    y
}

#[test]
fn corpus_parses_and_benign_rules_stay_quiet() {
    let events = corpus();
    assert_eq!(events.len(), 1178);
    let set = load(&bench_rules());
    assert_eq!(set.rules().len(), 50);
    let mut s = Scratch::new();
    let mut out = Vec::new();
    for e in &events {
        set.evaluate(&mut s, e, &mut out);
    }
    let ids: std::collections::BTreeSet<&str> = out.iter().map(|m| m.rule.id.as_str()).collect();
    // The dev session deletes /tmp files and opens many files, but does nothing these
    // rules consider malicious.
    assert!(ids.is_empty(), "unexpected alerts: {ids:?}");
}

#[test]
fn no_allocation_for_non_matching_events() {
    let events = corpus();
    // One rule that matches some events, so both paths are exercised.
    let mut y = bench_rules();
    y.push_str("- rule: {id: M, name: m, severity: info, condition: \"evt.type = exec and proc.name = ls\", output: \"%proc.cmdline\"}\n");
    let set = RuleSet::from_str(&y, "bench.yaml").unwrap();
    let mut s = Scratch::new();
    let mut out = Vec::with_capacity(64);
    // Warm-up: grows the scratch buffers and the regex caches once.
    for e in &events {
        set.evaluate(&mut s, e, &mut out);
        out.clear();
    }
    let (mut quiet, mut matched) = (0, 0);
    for e in &events {
        let before = allocs();
        set.evaluate(&mut s, e, &mut out);
        let delta = allocs() - before;
        if out.is_empty() {
            assert_eq!(
                delta, 0,
                "allocated on a non-matching {} event",
                e.event.action
            );
            quiet += 1;
        } else {
            assert!(delta > 0, "matches render a message");
            matched += 1;
        }
        out.clear();
    }
    assert!(quiet > 1000 && matched > 0, "{quiet} {matched}");
}

#[test]
#[ignore = "benchmark: run with `cargo test --release -- --ignored bench`"]
fn bench_throughput() {
    let events = corpus();
    let set = load(&bench_rules());
    let mut s = Scratch::new();
    let mut out = Vec::new();
    let rounds = 500;
    let start = Instant::now();
    for _ in 0..rounds {
        for e in &events {
            set.evaluate(&mut s, e, &mut out);
            out.clear();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let n = (rounds * events.len()) as f64;
    println!(
        "bench: {} rules x {} events x {rounds} rounds: {:.0} events/s ({:.0} ns/event)",
        set.rules().len(),
        events.len(),
        n / secs,
        secs * 1e9 / n
    );
}
