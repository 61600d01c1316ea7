//! Raw kernel event → enriched [`Event`]: process table, container and user attribution.

use std::{collections::HashMap, path::PathBuf};

use serde_json::{Map, Value, json};

use super::{CgroupCache, ProcFs, ProcessTable};
use crate::{
    clock::Clock,
    event::{
        Cgroup, Container, Endpoint, Event, EventMeta, ExeInfo, File, ForkInfo, Network, Outcome,
        Parent, Process, Service, SockAddr, Syscall, User, open_flag_names, text,
    },
    probes::decode::{Body, Header, Kind, Op, RawEvent},
};

/// Ancestors carried on each event beyond the parent.
const ANCESTRY_DEPTH: usize = 8;
/// Bound on remembered bound sockets (for `listen`, which carries only an fd).
const MAX_BOUND: usize = 16_384;
const AT_FDCWD: i64 = -100;

#[derive(Debug, Clone)]
pub struct EnrichOptions {
    pub host_root: PathBuf,
    pub table_capacity: usize,
    pub exited_grace: std::time::Duration,
}

impl Default for EnrichOptions {
    fn default() -> Self {
        Self {
            host_root: PathBuf::from("/"),
            table_capacity: 65_536,
            exited_grace: std::time::Duration::from_secs(5),
        }
    }
}

/// Lexically resolve `.` and `..` in an absolute path (no filesystem access: the path may be
/// gone, and symlinks are the kernel's business).
pub fn normalize(path: &str) -> String {
    if !path.starts_with('/') {
        return path.to_owned();
    }
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

pub struct Enricher {
    pub table: ProcessTable,
    pub cgroups: CgroupCache,
    procfs: ProcFs,
    users: HashMap<u32, String>,
    /// (pid, fd) → local address from a successful bind, so `listen` can say what it listens on.
    bound: HashMap<(u32, i64), SockAddr>,
    clock: Clock,
}

impl Enricher {
    pub fn new(opts: &EnrichOptions, clock: Clock) -> Self {
        let procfs = ProcFs::new(opts.host_root.clone());
        let users = procfs.user_names();
        let mut table = ProcessTable::new(opts.table_capacity, opts.exited_grace);
        table.set_user_names(users.clone());
        Self {
            table,
            cgroups: CgroupCache::new(&opts.host_root),
            procfs,
            users,
            bound: HashMap::new(),
            clock,
        }
    }

    /// Seed the process table from /proc. Call after the probes are attached, so nothing that
    /// starts in between is missed (the table keeps what events already told it).
    pub fn seed(&mut self) -> usize {
        match self.table.seed_from_procfs(&self.procfs) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "process table seed failed");
                0
            }
        }
    }

    pub fn enrich(&mut self, raw: RawEvent, sequence: u64) -> Event {
        let RawEvent { header: h, body } = raw;
        self.update_table(&h, &body);
        let mut ev = self.base(&h, sequence);
        match body {
            Body::Exec {
                exe_ino,
                exe_dev,
                exe_nlink: _,
                flags,
                argc,
                old_pid: _,
                stdio,
                filename: _,
                args: _,
            } => {
                ev.process.stdio = Some(crate::event::Stdio::from_packed(stdio));
                ev.event.action = "exec".into();
                ev.process.args_count = Some(argc);
                ev.process.args_truncated = flags & sensor_common::EXEC_FLAG_ARGS_TRUNCATED != 0;
                ev.process.exe = Some(ExeInfo {
                    inode: exe_ino,
                    device: exe_dev,
                    memfd: flags & sensor_common::EXEC_FLAG_MEMFD != 0,
                    deleted: flags & sensor_common::EXEC_FLAG_DELETED != 0,
                });
            }
            Body::Fork {
                child_pid,
                clone_flags,
                ..
            } => {
                ev.event.action = "fork".into();
                ev.process.fork = Some(ForkInfo {
                    child_pid,
                    clone_flags,
                });
            }
            Body::Exit { exit_code } => {
                ev.event.action = "exit".into();
                let signal = exit_code & 0x7f;
                ev.process.exit_code = Some(((exit_code >> 8) & 0xff) as i32);
                if signal != 0 {
                    ev.process.exit_signal = Some(signal);
                }
            }
            Body::Syscall {
                op,
                flags,
                ret,
                args,
                str0,
                str1,
                extra,
            } => {
                ev.event.action = op.name().into();
                const EINPROGRESS: i64 = -115;
                ev.event.outcome = Some(if op == Op::Connect && ret == EINPROGRESS {
                    Outcome::Unknown
                } else if ret < 0 {
                    Outcome::Failure
                } else {
                    Outcome::Success
                });
                let truncated = flags & sensor_common::SYS_FLAG_STR0_TRUNCATED != 0;
                self.syscall(
                    &mut ev, h.pid, op, ret, &args, &str0, &str1, &extra, truncated,
                );
                if flags & sensor_common::SYS_FLAG_IOC_HIT != 0
                    && let Some(n) = ev.network.as_mut()
                {
                    n.ioc = true;
                }
            }
        }
        ev
    }

    fn update_table(&mut self, h: &Header, body: &Body) {
        match body {
            Body::Fork { child_pid, .. } => self.table.on_fork(h.pid, *child_pid, h.ts_ns),
            Body::Exec { filename, args, .. } => {
                let exe = self.resolve_exe(h.pid, filename);
                let args = args.iter().map(|a| text(a)).collect();
                self.table
                    .on_exec(h.pid, exe, args, h.uid, h.euid, text(&h.comm), h.ts_ns);
                // cwd does not change at exec; it is inherited at fork and tracked through
                // chdir. Only a process first seen here needs /proc.
                if self.table.get(h.pid).is_some_and(|e| e.cwd.is_none())
                    && let Ok(cwd) =
                        std::fs::read_link(self.procfs.root().join(format!("proc/{}/cwd", h.pid)))
                {
                    self.table
                        .set_cwd(h.pid, cwd.to_string_lossy().into_owned());
                }
            }
            Body::Exit { exit_code } => {
                self.table
                    .on_exit(h.pid, ((exit_code >> 8) & 0xff) as i32, h.ts_ns);
                self.bound.retain(|(pid, _), _| *pid != h.pid);
            }
            Body::Syscall { .. } => {}
        }
        // The kernel stamps the current cgroup on every event; runtimes move a container's
        // first process after fork, so the event is the truth, not what fork inherited.
        if let Some(e) = self.table.get(h.pid)
            && e.cgroup_id != h.cgroup_id
        {
            let path = self
                .cgroups
                .resolve(h.cgroup_id, h.pid, &self.procfs, h.ts_ns)
                .map(|i| i.path.clone());
            self.table.on_cgroup_change(h.pid, h.cgroup_id, path);
        }
        self.table.reap(h.ts_ns);
    }

    /// The exec'd filename as the caller gave it may be relative; prefer the kernel's view
    /// through /proc when it is.
    fn resolve_exe(&self, pid: u32, filename: &[u8]) -> String {
        let name = text(filename);
        if name.starts_with('/') {
            return name;
        }
        // A short-lived process may be gone already: then join with its working directory.
        std::fs::read_link(self.procfs.root().join(format!("proc/{pid}/exe")))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| self.absolute(pid, AT_FDCWD, filename))
    }

    fn base(&mut self, h: &Header, sequence: u64) -> Event {
        let entry = self.table.get(h.pid);
        let parent_entry = self.table.get(h.ppid);
        let process = Process {
            pid: h.pid,
            tid: h.tid,
            name: text(&h.comm),
            executable: entry.and_then(|e| e.exe.clone()),
            args: entry.map(|e| e.args.clone()).unwrap_or_default(),
            working_directory: entry.and_then(|e| e.cwd.clone()),
            parent: Some(Parent {
                pid: h.ppid,
                name: parent_entry.map(|p| p.comm.clone()),
                executable: parent_entry.and_then(|p| p.exe.clone()),
            }),
            ancestry: self
                .table
                .ancestry(h.ppid, ANCESTRY_DEPTH)
                .map(|a| Parent {
                    pid: a.pid,
                    name: Some(a.comm.clone()),
                    executable: a.exe.clone(),
                })
                .collect(),
            ..Process::default()
        };
        let user = User {
            id: h.uid,
            name: self.users.get(&h.uid).cloned(),
            group_id: h.gid,
            effective_id: h.euid,
            effective_group_id: h.egid,
        };
        let info = self
            .cgroups
            .resolve(h.cgroup_id, h.pid, &self.procfs, h.ts_ns)
            .cloned();
        let container = info.as_ref().and_then(|i| {
            i.attribution.container.as_ref().map(|c| Container {
                id: c.id.clone(),
                runtime: serde_json::to_value(c.runtime)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unknown".into()),
                pod_uid: c.pod_uid.clone(),
                name: i.meta.as_ref().and_then(|m| m.name.clone()),
                image: i.meta.as_ref().and_then(|m| m.image.clone()),
            })
        });
        let service = info.as_ref().and_then(|i| {
            if i.attribution.container.is_some() {
                return None;
            }
            i.attribution
                .systemd_unit
                .clone()
                .map(|name| Service { name })
        });
        Event {
            timestamp: self.clock.rfc3339(h.ts_ns),
            event: EventMeta {
                kind: h.kind,
                action: String::new(),
                outcome: None,
                sequence,
                boot_ns: h.ts_ns,
            },
            process,
            user,
            container,
            service,
            cgroup: Cgroup {
                id: h.cgroup_id,
                path: info.map(|i| i.path),
            },
            file: None,
            source: None,
            destination: None,
            network: None,
            syscall: None,
        }
    }

    /// Make a path absolute against the process's cwd when the call was cwd-relative.
    fn absolute(&self, pid: u32, dfd: i64, path: &[u8]) -> String {
        let p = text(path);
        if p.starts_with('/') || dfd != AT_FDCWD {
            return p;
        }
        match self.table.get(pid).and_then(|e| e.cwd.as_deref()) {
            Some(cwd) if !p.is_empty() => normalize(&format!("{cwd}/{p}")),
            _ => p,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn syscall(
        &mut self,
        ev: &mut Event,
        pid: u32,
        op: Op,
        ret: i64,
        a: &[u64; 6],
        s0: &[u8],
        s1: &[u8],
        extra: &[u8],
        truncated: bool,
    ) {
        // fd and dfd arguments are C ints in 64-bit slots: the upper half is not sign-extended.
        let int = |v: u64| v as u32 as i32 as i64;
        let mode = |v: u64| format!("{:o}", v & 0o7777);
        let mut file = File {
            truncated_path: truncated,
            ..File::default()
        };
        let mut args = Map::new();
        let mut strings = Vec::new();
        match op {
            Op::Open | Op::Openat | Op::Openat2 | Op::Creat => {
                let (dfd, flags, m) = match op {
                    Op::Open => (AT_FDCWD, a[1], a[2]),
                    Op::Openat => (int(a[0]), a[2], a[3]),
                    Op::Openat2 => (int(a[0]), a[4], a[5]),
                    _ => (AT_FDCWD, 0o1101, a[1]),
                };
                file.path = Some(self.absolute(pid, dfd, s0));
                file.flags = Some(flags);
                file.flag_names = open_flag_names(flags);
                if flags & 0o100 != 0 {
                    file.mode = Some(mode(m));
                }
            }
            Op::Unlink | Op::Chmod | Op::Truncate => {
                file.path = Some(self.absolute(pid, AT_FDCWD, s0));
                if op == Op::Chmod {
                    file.mode = Some(mode(a[1]));
                }
            }
            Op::Unlinkat | Op::Fchmodat | Op::Fchmodat2 => {
                file.path = Some(self.absolute(pid, int(a[0]), s0));
                if op != Op::Unlinkat {
                    file.mode = Some(mode(a[2]));
                }
            }
            Op::Rename => {
                file.path = Some(self.absolute(pid, AT_FDCWD, s0));
                file.target_path = Some(self.absolute(pid, AT_FDCWD, s1));
            }
            Op::Renameat | Op::Renameat2 => {
                file.path = Some(self.absolute(pid, int(a[0]), s0));
                file.target_path = Some(self.absolute(pid, int(a[2]), s1));
            }
            Op::Chdir => {
                let dir = normalize(&self.absolute(pid, AT_FDCWD, s0));
                if ret == 0 {
                    self.table.set_cwd(pid, dir.clone());
                }
                file.path = Some(dir);
            }
            Op::Fchdir => {
                file.fd = Some(int(a[0]));
                if ret == 0
                    && let Ok(cwd) =
                        std::fs::read_link(self.procfs.root().join(format!("proc/{pid}/cwd")))
                {
                    let cwd = cwd.to_string_lossy().into_owned();
                    self.table.set_cwd(pid, cwd.clone());
                    file.path = Some(cwd);
                }
            }
            Op::Fchmod | Op::Ftruncate => {
                file.fd = Some(int(a[0]));
                if op == Op::Fchmod {
                    file.mode = Some(mode(a[1]));
                }
            }
            Op::Connect | Op::Bind | Op::Accept | Op::Accept4 | Op::Listen => {
                let fd = if matches!(op, Op::Accept | Op::Accept4) && ret >= 0 {
                    ret
                } else {
                    int(a[0])
                };
                let addr = if op == Op::Listen {
                    // A bind to port 0 got its port from the kernel after the bind event.
                    let bound = self.bound.get(&(pid, int(a[0]))).cloned();
                    match bound {
                        Some(SockAddr::V4(_, 0) | SockAddr::V6(_, 0)) | None => {
                            super::sockets::local_address(self.procfs.root(), pid, int(a[0]))
                                .or(bound)
                        }
                        some => some,
                    }
                } else {
                    SockAddr::parse(extra)
                };
                if op == Op::Bind
                    && ret == 0
                    && let Some(addr) = &addr
                    && self.bound.len() < MAX_BOUND
                {
                    self.bound.insert((pid, int(a[0])), addr.clone());
                }
                ev.network = Some(Network {
                    family: addr.as_ref().map(SockAddr::family),
                    fd,
                    ioc: false,
                });
                let endpoint = addr.as_ref().map(SockAddr::endpoint);
                match op {
                    Op::Connect => ev.destination = endpoint,
                    Op::Bind | Op::Listen => ev.source = endpoint,
                    _ => ev.source = endpoint.or(Some(Endpoint::default())),
                }
                if op == Op::Listen {
                    args.insert("backlog".into(), json!(int(a[1])));
                }
            }
            Op::Setuid | Op::Setgid | Op::Setfsuid | Op::Setfsgid => {
                args.insert("id".into(), json!(a[0] as u32));
            }
            Op::Setreuid | Op::Setregid => {
                args.insert("real".into(), json!(a[0] as u32));
                args.insert("effective".into(), json!(a[1] as u32));
            }
            Op::Setresuid | Op::Setresgid => {
                args.insert("real".into(), json!(a[0] as u32));
                args.insert("effective".into(), json!(a[1] as u32));
                args.insert("saved".into(), json!(a[2] as u32));
            }
            Op::Capset => {
                let word = |i: usize| {
                    extra
                        .get(i * 4..i * 4 + 4)
                        .and_then(|b| b.try_into().ok())
                        .map(u32::from_ne_bytes)
                        .unwrap_or(0) as u64
                };
                // Two {effective, permitted, inheritable} words: low and high 32 bits.
                args.insert("effective".into(), json!(word(0) | word(3) << 32));
                args.insert("permitted".into(), json!(word(1) | word(4) << 32));
                args.insert("inheritable".into(), json!(word(2) | word(5) << 32));
            }
            Op::Ptrace => {
                args.insert("request".into(), json!(int(a[0])));
                args.insert("target_pid".into(), json!(a[1] as u32));
            }
            Op::MemfdCreate => {
                strings.push(text(s0));
                args.insert("flags".into(), json!(a[1]));
            }
            Op::InitModule | Op::FinitModule => {
                strings.push(text(s0));
                if op == Op::FinitModule {
                    file.fd = Some(int(a[0]));
                    args.insert("flags".into(), json!(a[2]));
                } else {
                    args.insert("length".into(), json!(a[1]));
                }
            }
            Op::Mount => {
                file.path = Some(self.absolute(pid, AT_FDCWD, s1));
                strings.push(text(s0));
                strings.push(text(extra));
                args.insert("flags".into(), json!(a[3]));
            }
            Op::Umount2 | Op::Chroot => {
                file.path = Some(self.absolute(pid, AT_FDCWD, s0));
                if op == Op::Umount2 {
                    args.insert("flags".into(), json!(a[1]));
                }
            }
            Op::PivotRoot => {
                file.path = Some(self.absolute(pid, AT_FDCWD, s0));
                file.target_path = Some(self.absolute(pid, AT_FDCWD, s1));
            }
            Op::Unshare => {
                args.insert("flags".into(), json!(a[0]));
            }
            Op::Setns => {
                args.insert("fd".into(), json!(int(a[0])));
                args.insert("nstype".into(), json!(a[1]));
            }
            Op::Bpf => {
                args.insert("cmd".into(), json!(a[0]));
            }
            Op::Signal => {
                args.insert("signal".into(), json!(a[0] as u32));
                args.insert("target_pid".into(), json!(a[1] as u32));
                args.insert("group".into(), json!(a[2] != 0));
                args.insert("code".into(), json!(a[3] as i64 as i32));
            }
        }
        if file != File::default() {
            ev.file = Some(file);
        }
        if ev.event.kind == Kind::Privilege || !args.is_empty() || !strings.is_empty() {
            ev.syscall = Some(Syscall {
                name: op.name().into(),
                ret,
                args: args.into_iter().collect::<Map<String, Value>>(),
                strings,
            });
        }
    }
}
