//! Condition fields: names, types and accessors over [`Event`].
//!
//! | Field | Type | Source |
//! |---|---|---|
//! | `evt.type` | string | `event.action` (`exec`, `fork`, `exit`, `openat`, `connect`, `setuid`, ...) |
//! | `evt.kind` | string | `event.kind` (`exec`, `fork`, `exit`, `file`, `network`, `privilege`) |
//! | `evt.outcome` | string | `event.outcome` (`success`, `failure`; `""` when absent — never missing) |
//! | `evt.ret` | number | `syscall.ret` |
//! | `proc.pid` | number | `process.pid` |
//! | `proc.ppid` | number | `process.parent.pid` |
//! | `proc.name` | string | basename of `process.executable`, else `process.name` |
//! | `proc.comm` | string | `process.name` (kernel comm, 15 bytes) |
//! | `proc.exe` | string | `process.executable` |
//! | `proc.args` | multi string | `process.args[1..]` |
//! | `proc.argv0` | string | `process.args[0]` |
//! | `proc.cmdline` | string | `process.args` joined with single spaces |
//! | `proc.args_count` | number | `process.args_count`, else the number of `process.args` |
//! | `proc.cwd` | string | `process.working_directory` |
//! | `proc.pname` | string | basename of `process.parent.executable`, else `process.parent.name` |
//! | `proc.pexe` | string | `process.parent.executable` |
//! | `proc.ancestors` | multi string | basenames (executable, else name) of the parent then `process.ancestry` |
//! | `proc.aexe` | multi string | executables of the parent then `process.ancestry` |
//! | `proc.exe_memfd` | bool | `process.exe.memfd` |
//! | `proc.stdin` / `proc.stdout` / `proc.stderr` | str | `process.stdio.*` at exec: socket, pipe, char, file, ... |
//! | `proc.exe_deleted` | bool | `process.exe.deleted` |
//! | `user.uid` | number | `user.id` |
//! | `user.euid` | number | `user.effective_id` |
//! | `user.gid` | number | `user.group_id` |
//! | `user.name` | string | `user.name` |
//! | `fd.name`, `file.path` | string | `file.path` |
//! | `file.target` | string | `file.target_path` (new name of a rename) |
//! | `file.mode` | string | `file.mode`, octal text such as `4755` |
//! | `file.mode_bits` | number | `file.mode` as a number; literals compared to it are octal (`file.mode_bits >= 4000`) |
//! | `file.flags` | multi string | `file.flag_names` (`O_WRONLY`, `O_CREAT`, ...) |
//! | `file.write` | bool | any of `O_WRONLY`, `O_RDWR`, `O_CREAT`, `O_TRUNC` in the open flags |
//! | `net.dip` | ip | `destination.ip`; `=`/`in` accept addresses and CIDRs (`10.0.0.0/8`) |
//! | `net.sip` | ip | `source.ip`; same as `net.dip` |
//! | `net.dip_private` | bool | `destination.ip` is RFC 1918, loopback, link-local or ULA (`fc00::/7`) |
//! | `net.dport` | number | `destination.port` |
//! | `net.sport` | number | `source.port` |
//! | `net.family` | string | `network.family` (`ipv4`, `ipv6`, `unix`, `af_<n>`) |
//! | `net.daddr` | string | `destination.address` (unix socket path, `@name` if abstract) |
//! | `container.id` | string | `container.id` |
//! | `container.runtime` | string | `container.runtime` |
//! | `k8s.pod.uid` | string | `container.pod_uid` |
//! | `service.name` | string | `service.name` (systemd unit) |
//! | `cgroup.path` | string | `cgroup.path` |
//! | `syscall.arg.<name>` | number | `syscall.args[<name>]` (numbers, booleans as 0/1, numeric strings) |
//! | `syscall.str` | multi string | `syscall.strings` |
//!
//! **Missing fields.** When the event has no value for a field (the JSON field is absent,
//! or a multi-valued field has no elements), every comparison on it is false — including
//! `<`, `in`, `contains`, `glob` — except the negations: `x != v` and `not x exists` are
//! true. `not (x = v)` is therefore the same as `x != v`.
//!
//! **Multi-valued fields.** An operator is true if ANY element satisfies it, except
//! `!=`, which is true when NO element equals the value.
//!
//! **Types.** string and multi string fields accept `=`, `!=`, `in`, `contains`,
//! `icontains`, `startswith`, `endswith`, `glob`, `regex`, `pmatch`, `exists`. Numbers
//! accept `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `exists`. Booleans accept `=`, `!=` with
//! `true`/`false`, and `exists`. ip fields accept the string operators, with `=`/`!=`/`in`
//! comparing addresses and CIDR ranges.

use std::net::IpAddr;

use crate::event::{Event, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldType {
    Str,
    Num,
    Bool,
    Ip,
}

impl FieldType {
    pub fn name(self, multi: bool) -> &'static str {
        match (self, multi) {
            (FieldType::Str, true) => "multi-valued string",
            (FieldType::Str, false) => "string",
            (FieldType::Num, _) => "numeric",
            (FieldType::Bool, _) => "boolean",
            (FieldType::Ip, _) => "IP address",
        }
    }
}

/// A resolved field. `SyscallArg` carries the argument name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Field {
    EvtType,
    EvtKind,
    EvtOutcome,
    EvtRet,
    ProcPid,
    ProcPpid,
    ProcName,
    ProcComm,
    ProcExe,
    ProcArgs,
    ProcArgv0,
    ProcCmdline,
    ProcArgsCount,
    ProcCwd,
    ProcPname,
    ProcPexe,
    ProcAncestors,
    ProcAexe,
    ProcExeMemfd,
    ProcExeDeleted,
    ProcStdin,
    ProcStdout,
    ProcStderr,
    UserUid,
    UserEuid,
    UserGid,
    UserName,
    FilePath,
    FileTarget,
    FileMode,
    FileModeBits,
    FileFlags,
    FileWrite,
    NetDip,
    NetSip,
    NetDipPrivate,
    NetDport,
    NetSport,
    NetFamily,
    NetDaddr,
    ContainerId,
    ContainerRuntime,
    PodUid,
    ServiceName,
    CgroupPath,
    SyscallArg(Box<str>),
    SyscallStr,
}

use Field as F;
use FieldType as T;

/// Name, field, type, multi-valued.
pub(crate) const FIELDS: &[(&str, Field, FieldType, bool)] = &[
    ("evt.type", F::EvtType, T::Str, false),
    ("evt.kind", F::EvtKind, T::Str, false),
    ("evt.outcome", F::EvtOutcome, T::Str, false),
    ("evt.ret", F::EvtRet, T::Num, false),
    ("proc.pid", F::ProcPid, T::Num, false),
    ("proc.ppid", F::ProcPpid, T::Num, false),
    ("proc.name", F::ProcName, T::Str, false),
    ("proc.comm", F::ProcComm, T::Str, false),
    ("proc.exe", F::ProcExe, T::Str, false),
    ("proc.args", F::ProcArgs, T::Str, true),
    ("proc.argv0", F::ProcArgv0, T::Str, false),
    ("proc.cmdline", F::ProcCmdline, T::Str, false),
    ("proc.args_count", F::ProcArgsCount, T::Num, false),
    ("proc.cwd", F::ProcCwd, T::Str, false),
    ("proc.pname", F::ProcPname, T::Str, false),
    ("proc.pexe", F::ProcPexe, T::Str, false),
    ("proc.ancestors", F::ProcAncestors, T::Str, true),
    ("proc.aexe", F::ProcAexe, T::Str, true),
    ("proc.exe_memfd", F::ProcExeMemfd, T::Bool, false),
    ("proc.exe_deleted", F::ProcExeDeleted, T::Bool, false),
    ("proc.stdin", F::ProcStdin, T::Str, false),
    ("proc.stdout", F::ProcStdout, T::Str, false),
    ("proc.stderr", F::ProcStderr, T::Str, false),
    ("user.uid", F::UserUid, T::Num, false),
    ("user.euid", F::UserEuid, T::Num, false),
    ("user.gid", F::UserGid, T::Num, false),
    ("user.name", F::UserName, T::Str, false),
    ("fd.name", F::FilePath, T::Str, false),
    ("file.path", F::FilePath, T::Str, false),
    ("file.target", F::FileTarget, T::Str, false),
    ("file.mode", F::FileMode, T::Str, false),
    ("file.mode_bits", F::FileModeBits, T::Num, false),
    ("file.flags", F::FileFlags, T::Str, true),
    ("file.write", F::FileWrite, T::Bool, false),
    ("net.dip", F::NetDip, T::Ip, false),
    ("net.sip", F::NetSip, T::Ip, false),
    ("net.dip_private", F::NetDipPrivate, T::Bool, false),
    ("net.dport", F::NetDport, T::Num, false),
    ("net.sport", F::NetSport, T::Num, false),
    ("net.family", F::NetFamily, T::Str, false),
    ("net.daddr", F::NetDaddr, T::Str, false),
    ("container.id", F::ContainerId, T::Str, false),
    ("container.runtime", F::ContainerRuntime, T::Str, false),
    ("k8s.pod.uid", F::PodUid, T::Str, false),
    ("service.name", F::ServiceName, T::Str, false),
    ("cgroup.path", F::CgroupPath, T::Str, false),
    ("syscall.str", F::SyscallStr, T::Str, true),
];

const SYSCALL_ARG: &str = "syscall.arg.";

/// A field's compile-time description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldDef {
    pub field: Field,
    pub ty: FieldType,
    pub multi: bool,
}

/// Resolves a field name, or returns up to three close names for the error message.
pub(crate) fn lookup(name: &str) -> Result<FieldDef, Vec<String>> {
    if let Some(arg) = name.strip_prefix(SYSCALL_ARG)
        && !arg.is_empty()
        && arg.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Ok(FieldDef {
            field: F::SyscallArg(arg.into()),
            ty: T::Num,
            multi: false,
        });
    }
    if let Some((_, f, ty, multi)) = FIELDS.iter().find(|(n, ..)| *n == name) {
        return Ok(FieldDef {
            field: f.clone(),
            ty: *ty,
            multi: *multi,
        });
    }
    let mut scored: Vec<(f64, &str)> = FIELDS
        .iter()
        .map(|(n, ..)| *n)
        .chain(std::iter::once("syscall.arg.<name>"))
        .map(|n| (strsim::jaro_winkler(name, n), n))
        .filter(|(s, _)| *s > 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    Err(scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_owned())
        .collect())
}

pub(crate) fn kind_str(k: Kind) -> &'static str {
    match k {
        Kind::Exec => "exec",
        Kind::Fork => "fork",
        Kind::Exit => "exit",
        Kind::File => "file",
        Kind::Network => "network",
        Kind::Privilege => "privilege",
    }
}

/// The index slot of a kind (see `eval::Index`).
pub(crate) fn kind_index(k: Kind) -> usize {
    match k {
        Kind::Exec => 0,
        Kind::Fork => 1,
        Kind::Exit => 2,
        Kind::File => 3,
        Kind::Network => 4,
        Kind::Privilege => 5,
    }
}

pub(crate) const KIND_NAMES: [&str; 6] = ["exec", "fork", "exit", "file", "network", "privilege"];

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// A single-valued string field, or `None` when missing. Multi-valued fields and
/// `proc.cmdline` (which needs the buffer) are handled by [`str_any`].
fn str_one<'e>(f: &Field, ev: &'e Event) -> Option<&'e str> {
    let p = &ev.process;
    match f {
        F::EvtType => Some(ev.event.action.as_str()),
        F::EvtKind => Some(kind_str(ev.event.kind)),
        F::EvtOutcome => Some(match ev.event.outcome {
            Some(crate::event::Outcome::Success) => "success",
            Some(crate::event::Outcome::Failure) => "failure",
            Some(crate::event::Outcome::Unknown) => "unknown",
            None => "",
        }),
        F::ProcName => p
            .executable
            .as_deref()
            .map(basename)
            .and_then(non_empty)
            .or_else(|| non_empty(&p.name)),
        F::ProcComm => non_empty(&p.name),
        F::ProcExe => p.executable.as_deref(),
        F::ProcArgv0 => p.args.first().map(String::as_str),
        F::ProcCwd => p.working_directory.as_deref(),
        F::ProcStdin => p.stdio.as_ref().map(|s| s.stdin.as_str()),
        F::ProcStdout => p.stdio.as_ref().map(|s| s.stdout.as_str()),
        F::ProcStderr => p.stdio.as_ref().map(|s| s.stderr.as_str()),
        F::ProcPname => p.parent.as_ref().and_then(|pp| {
            pp.executable
                .as_deref()
                .map(basename)
                .and_then(non_empty)
                .or(pp.name.as_deref())
        }),
        F::ProcPexe => p.parent.as_ref().and_then(|pp| pp.executable.as_deref()),
        F::UserName => ev.user.name.as_deref(),
        F::FilePath => ev.file.as_ref().and_then(|f| f.path.as_deref()),
        F::FileTarget => ev.file.as_ref().and_then(|f| f.target_path.as_deref()),
        F::FileMode => ev.file.as_ref().and_then(|f| f.mode.as_deref()),
        F::NetDip => ev.destination.as_ref().and_then(|d| d.ip.as_deref()),
        F::NetSip => ev.source.as_ref().and_then(|d| d.ip.as_deref()),
        F::NetFamily => ev.network.as_ref().and_then(|n| n.family.as_deref()),
        F::NetDaddr => ev.destination.as_ref().and_then(|d| d.address.as_deref()),
        F::ContainerId => ev.container.as_ref().map(|c| c.id.as_str()),
        F::ContainerRuntime => ev.container.as_ref().map(|c| c.runtime.as_str()),
        F::PodUid => ev.container.as_ref().and_then(|c| c.pod_uid.as_deref()),
        F::ServiceName => ev.service.as_ref().map(|s| s.name.as_str()),
        F::CgroupPath => ev.cgroup.path.as_deref(),
        _ => None,
    }
}

/// Calls `pred` on each value of a string field until it returns true.
/// Returns `None` when the field has no value, else whether any value satisfied `pred`.
/// `buf` is scratch space for `proc.cmdline`, reused across events.
pub(crate) fn str_any(
    f: &Field,
    ev: &Event,
    buf: &mut String,
    mut pred: impl FnMut(&str) -> bool,
) -> Option<bool> {
    let p = &ev.process;
    let mut seen = false;
    let mut hit = false;
    let mut each = |s: &str| {
        seen = true;
        if !hit && pred(s) {
            hit = true;
        }
    };
    match f {
        F::ProcArgs => p.args.iter().skip(1).for_each(|s| each(s)),
        F::ProcAncestors => p
            .parent
            .iter()
            .chain(p.ancestry.iter())
            .filter_map(|a| {
                a.executable
                    .as_deref()
                    .map(basename)
                    .and_then(non_empty)
                    .or(a.name.as_deref())
            })
            .for_each(&mut each),
        F::ProcAexe => p
            .parent
            .iter()
            .chain(p.ancestry.iter())
            .filter_map(|a| a.executable.as_deref())
            .for_each(&mut each),
        F::FileFlags => {
            if let Some(file) = &ev.file {
                file.flag_names.iter().for_each(|s| each(s));
            }
        }
        F::SyscallStr => {
            if let Some(sc) = &ev.syscall {
                sc.strings.iter().for_each(|s| each(s));
            }
        }
        F::ProcCmdline => {
            if !p.args.is_empty() {
                buf.clear();
                for (i, a) in p.args.iter().enumerate() {
                    if i > 0 {
                        buf.push(' ');
                    }
                    buf.push_str(a);
                }
                each(buf);
            }
        }
        other => {
            if let Some(s) = str_one(other, ev) {
                each(s);
            }
        }
    }
    seen.then_some(hit)
}

/// Numeric field value, or `None` when missing.
pub(crate) fn num(f: &Field, ev: &Event) -> Option<i64> {
    let p = &ev.process;
    match f {
        F::EvtRet => ev.syscall.as_ref().map(|s| s.ret),
        F::ProcPid => Some(p.pid.into()),
        F::ProcPpid => p.parent.as_ref().map(|pp| pp.pid.into()),
        F::ProcArgsCount => p
            .args_count
            .map(i64::from)
            .or_else(|| (!p.args.is_empty()).then_some(p.args.len() as i64)),
        F::UserUid => Some(ev.user.id.into()),
        F::UserEuid => Some(ev.user.effective_id.into()),
        F::UserGid => Some(ev.user.group_id.into()),
        F::FileModeBits => ev
            .file
            .as_ref()
            .and_then(|f| f.mode.as_deref())
            .and_then(|m| i64::from_str_radix(m.trim_start_matches("0o"), 8).ok()),
        F::NetDport => ev.destination.as_ref().and_then(|d| d.port).map(i64::from),
        F::NetSport => ev.source.as_ref().and_then(|d| d.port).map(i64::from),
        F::SyscallArg(name) => {
            let v = ev.syscall.as_ref()?.args.get(&**name)?;
            match v {
                serde_json::Value::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_u64().map(|u| u as i64))
                    .or_else(|| n.as_f64().map(|f| f as i64)),
                serde_json::Value::Bool(b) => Some(i64::from(*b)),
                serde_json::Value::String(s) => parse_int(s),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Decimal, `0x` hex or `0o` octal, with optional leading `-`.
pub(crate) fn parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let v = if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(o) = body.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else {
        body.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// open(2) bits that make an open a write: O_WRONLY, O_RDWR, O_CREAT, O_TRUNC.
const WRITE_BITS: u64 = 0o1 | 0o2 | 0o100 | 0o1000;
const WRITE_NAMES: [&str; 4] = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"];

/// Boolean field value, or `None` when missing.
pub(crate) fn boolean(f: &Field, ev: &Event) -> Option<bool> {
    match f {
        F::ProcExeMemfd => ev.process.exe.as_ref().map(|e| e.memfd),
        F::ProcExeDeleted => ev.process.exe.as_ref().map(|e| e.deleted),
        F::FileWrite => {
            let file = ev.file.as_ref()?;
            match file.flags {
                Some(bits) => Some(bits & WRITE_BITS != 0),
                None if !file.flag_names.is_empty() => Some(
                    file.flag_names
                        .iter()
                        .any(|n| WRITE_NAMES.contains(&n.as_str())),
                ),
                None => None,
            }
        }
        F::NetDipPrivate => {
            let ip: IpAddr = ev.destination.as_ref()?.ip.as_deref()?.parse().ok()?;
            Some(is_private(ip))
        }
        _ => None,
    }
}

/// RFC 1918, loopback, link-local (v4 and v6), ULA `fc00::/7`, and v4-mapped forms.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback() || (seg0 & 0xfe00) == 0xfc00 || (seg0 & 0xffc0) == 0xfe80
        }
    }
}

/// Appends the field's value to `out` for message templates; `<NA>` when missing.
/// Multi-valued fields are joined with spaces (`proc.args`, `syscall.str`) or commas.
pub(crate) fn render(f: &Field, ty: FieldType, ev: &Event, buf: &mut String, out: &mut String) {
    use std::fmt::Write;
    let before = out.len();
    match ty {
        T::Num => {
            if let Some(n) = num(f, ev) {
                let _ = write!(out, "{n}");
            }
        }
        T::Bool => {
            if let Some(b) = boolean(f, ev) {
                let _ = write!(out, "{b}");
            }
        }
        T::Str | T::Ip => {
            let sep = if matches!(f, F::ProcArgs | F::SyscallStr) {
                " "
            } else {
                ","
            };
            let mut first = true;
            str_any(f, ev, buf, |s| {
                if !first {
                    out.push_str(sep);
                }
                first = false;
                out.push_str(s);
                false
            });
        }
    }
    if out.len() == before {
        out.push_str("<NA>");
    }
}
