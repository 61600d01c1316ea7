//! Kernel record bytes → typed raw events. Bounds-checked everywhere: a short, corrupt or
//! hostile record is an error, never a panic (property-tested below).

use sensor_common::*;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("record says it is {claimed} bytes but {actual} arrived")]
    Length { claimed: u32, actual: usize },
    #[error("unknown event kind {0}")]
    Kind(u32),
    #[error("unknown syscall op {0}")]
    Op(u32),
    #[error("{what} region ({len} bytes at {at}) runs past the record end ({end})")]
    Region {
        what: &'static str,
        at: usize,
        len: usize,
        end: usize,
    },
}

/// The coarse class of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Exec,
    Fork,
    Exit,
    File,
    Network,
    Privilege,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Exec,
        Kind::Fork,
        Kind::Exit,
        Kind::File,
        Kind::Network,
        Kind::Privilege,
    ];

    pub fn abi(self) -> u32 {
        match self {
            Kind::Exec => KIND_EXEC,
            Kind::Fork => KIND_FORK,
            Kind::Exit => KIND_EXIT,
            Kind::File => KIND_FILE,
            Kind::Network => KIND_NET,
            Kind::Privilege => KIND_PRIV,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Exec => "exec",
            Kind::Fork => "fork",
            Kind::Exit => "exit",
            Kind::File => "file",
            Kind::Network => "network",
            Kind::Privilege => "privilege",
        }
    }
}

impl TryFrom<u32> for Kind {
    type Error = DecodeError;
    fn try_from(v: u32) -> Result<Self, DecodeError> {
        Ok(match v {
            KIND_EXEC => Kind::Exec,
            KIND_FORK => Kind::Fork,
            KIND_EXIT => Kind::Exit,
            KIND_FILE => Kind::File,
            KIND_NET => Kind::Network,
            KIND_PRIV => Kind::Privilege,
            other => return Err(DecodeError::Kind(other)),
        })
    }
}

macro_rules! ops {
    ($($variant:ident = $abi:ident => $name:literal),* $(,)?) => {
        /// A traced syscall. Names are the syscall names users know.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Op { $($variant),* }

        impl Op {
            pub fn name(self) -> &'static str {
                match self { $(Op::$variant => $name),* }
            }
            pub fn from_name(name: &str) -> Option<Op> {
                match name { $($name => Some(Op::$variant),)* _ => None }
            }
        }

        impl TryFrom<u32> for Op {
            type Error = DecodeError;
            fn try_from(v: u32) -> Result<Self, DecodeError> {
                match v { $($abi => Ok(Op::$variant),)* other => Err(DecodeError::Op(other)) }
            }
        }
    };
}

ops! {
    Open = OP_OPEN => "open", Openat = OP_OPENAT => "openat", Openat2 = OP_OPENAT2 => "openat2",
    Creat = OP_CREAT => "creat", Unlink = OP_UNLINK => "unlink", Unlinkat = OP_UNLINKAT => "unlinkat",
    Rename = OP_RENAME => "rename", Renameat = OP_RENAMEAT => "renameat",
    Renameat2 = OP_RENAMEAT2 => "renameat2", Chmod = OP_CHMOD => "chmod",
    Fchmod = OP_FCHMOD => "fchmod", Fchmodat = OP_FCHMODAT => "fchmodat",
    Fchmodat2 = OP_FCHMODAT2 => "fchmodat2", Truncate = OP_TRUNCATE => "truncate",
    Ftruncate = OP_FTRUNCATE => "ftruncate", Chdir = OP_CHDIR => "chdir", Fchdir = OP_FCHDIR => "fchdir",
    Connect = OP_CONNECT => "connect", Bind = OP_BIND => "bind", Listen = OP_LISTEN => "listen",
    Accept = OP_ACCEPT => "accept", Accept4 = OP_ACCEPT4 => "accept4",
    Setuid = OP_SETUID => "setuid", Setgid = OP_SETGID => "setgid",
    Setreuid = OP_SETREUID => "setreuid", Setregid = OP_SETREGID => "setregid",
    Setresuid = OP_SETRESUID => "setresuid", Setresgid = OP_SETRESGID => "setresgid",
    Setfsuid = OP_SETFSUID => "setfsuid", Setfsgid = OP_SETFSGID => "setfsgid",
    Capset = OP_CAPSET => "capset", Ptrace = OP_PTRACE => "ptrace",
    MemfdCreate = OP_MEMFD_CREATE => "memfd_create", InitModule = OP_INIT_MODULE => "init_module",
    FinitModule = OP_FINIT_MODULE => "finit_module", Mount = OP_MOUNT => "mount",
    Umount2 = OP_UMOUNT2 => "umount2", Unshare = OP_UNSHARE => "unshare", Setns = OP_SETNS => "setns",
    Bpf = OP_BPF => "bpf", Chroot = OP_CHROOT => "chroot", PivotRoot = OP_PIVOT_ROOT => "pivot_root",
    Signal = OP_SIGNAL => "signal",
}

/// Fields every record carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub euid: u32,
    pub egid: u32,
    pub comm: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Exec {
        exe_ino: u64,
        exe_dev: u32,
        exe_nlink: u32,
        flags: u32,
        argc: u32,
        old_pid: u32,
        /// File types of fds 0..2, 4 bits each (see `sensor_common::ExecBody::stdio`).
        stdio: u32,
        filename: Vec<u8>,
        /// argv split on NUL; the last element may be cut short when flags say truncated.
        args: Vec<Vec<u8>>,
    },
    Fork {
        child_pid: u32,
        child_tid: u32,
        clone_flags: u64,
    },
    Exit {
        exit_code: u32,
    },
    Syscall {
        op: Op,
        flags: u32,
        ret: i64,
        args: [u64; 6],
        str0: Vec<u8>,
        str1: Vec<u8>,
        extra: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    pub header: Header,
    pub body: Body,
}

fn read<T: Copy>(data: &[u8], at: usize) -> Option<T> {
    let bytes = data.get(at..at.checked_add(std::mem::size_of::<T>())?)?;
    // SAFETY: T is one of the plain-integer repr(C) ABI structs; the slice has its exact size
    // and read_unaligned has no alignment requirement.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

fn region<'a>(
    data: &'a [u8],
    at: usize,
    len: usize,
    what: &'static str,
) -> Result<&'a [u8], DecodeError> {
    data.get(at..at.saturating_add(len))
        .ok_or(DecodeError::Region {
            what,
            at,
            len,
            end: data.len(),
        })
}

fn trim_nul(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// Split NUL-separated argv; a trailing NUL ends the last argument rather than starting one.
pub fn split_args(region: &[u8]) -> Vec<Vec<u8>> {
    if region.is_empty() {
        return Vec::new();
    }
    let body = region.strip_suffix(&[0]).unwrap_or(region);
    body.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

pub fn decode(data: &[u8]) -> Result<RawEvent, DecodeError> {
    const HDR: usize = std::mem::size_of::<EventHeader>();
    let h: EventHeader = read(data, 0).ok_or(DecodeError::Short(data.len()))?;
    if h.len as usize > data.len() || (h.len as usize) < HDR {
        return Err(DecodeError::Length {
            claimed: h.len,
            actual: data.len(),
        });
    }
    let data = &data[..h.len as usize];
    let kind = Kind::try_from(h.kind)?;
    let header = Header {
        kind,
        ts_ns: h.ts_ns,
        cgroup_id: h.cgroup_id,
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        euid: h.euid,
        egid: h.egid,
        comm: trim_nul(&h.comm).to_vec(),
    };
    let short = || DecodeError::Short(data.len());
    let body = match kind {
        Kind::Exec => {
            let b: ExecBody = read(data, HDR).ok_or_else(short)?;
            let at = HDR + std::mem::size_of::<ExecBody>();
            let filename = region(data, at, b.filename_len as usize, "filename")?;
            let args = region(
                data,
                at + b.filename_len as usize,
                b.args_len as usize,
                "args",
            )?;
            Body::Exec {
                exe_ino: b.exe_ino,
                exe_dev: b.exe_dev,
                exe_nlink: b.exe_nlink,
                flags: b.flags,
                argc: b.argc,
                old_pid: b.old_pid,
                stdio: b.stdio,
                filename: filename.to_vec(),
                args: split_args(args),
            }
        }
        Kind::Fork => {
            let b: ForkBody = read(data, HDR).ok_or_else(short)?;
            Body::Fork {
                child_pid: b.child_pid,
                child_tid: b.child_tid,
                clone_flags: b.clone_flags,
            }
        }
        Kind::Exit => {
            let b: ExitBody = read(data, HDR).ok_or_else(short)?;
            Body::Exit {
                exit_code: b.exit_code,
            }
        }
        Kind::File | Kind::Network | Kind::Privilege => {
            let b: SyscallBody = read(data, HDR).ok_or_else(short)?;
            let op = Op::try_from(b.op)?;
            let mut at = HDR + std::mem::size_of::<SyscallBody>();
            let str0 = region(data, at, b.str0_len as usize, "str0")?;
            at += b.str0_len as usize;
            let str1 = region(data, at, b.str1_len as usize, "str1")?;
            at += b.str1_len as usize;
            let extra = region(data, at, b.extra_len as usize, "extra")?;
            Body::Syscall {
                op,
                flags: b.flags,
                ret: b.ret,
                args: b.args,
                str0: str0.to_vec(),
                str1: str1.to_vec(),
                extra: extra.to_vec(),
            }
        }
    };
    Ok(RawEvent { header, body })
}

/// Encode a raw event back to kernel record bytes: used by tests and by the overload
/// simulation; the inverse of [`decode`].
pub fn encode(ev: &RawEvent) -> Vec<u8> {
    fn push<T: Copy>(out: &mut Vec<u8>, v: &T) {
        // SAFETY: T is a plain-integer repr(C) ABI struct with explicit padding.
        let bytes = unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        };
        out.extend_from_slice(bytes);
    }
    let h = &ev.header;
    let mut comm = [0u8; 16];
    let n = h.comm.len().min(15);
    comm[..n].copy_from_slice(&h.comm[..n]);
    let header = EventHeader {
        kind: h.kind.abi(),
        len: 0,
        ts_ns: h.ts_ns,
        cgroup_id: h.cgroup_id,
        pid: h.pid,
        tid: h.tid,
        ppid: h.ppid,
        uid: h.uid,
        gid: h.gid,
        euid: h.euid,
        egid: h.egid,
        _pad0: 0,
        comm,
    };
    let mut out = Vec::new();
    push(&mut out, &header);
    match &ev.body {
        Body::Exec {
            exe_ino,
            exe_dev,
            exe_nlink,
            flags,
            argc,
            old_pid,
            stdio,
            filename,
            args,
        } => {
            let mut argv = Vec::new();
            for a in args {
                argv.extend_from_slice(a);
                argv.push(0);
            }
            push(
                &mut out,
                &ExecBody {
                    exe_ino: *exe_ino,
                    exe_dev: *exe_dev,
                    exe_nlink: *exe_nlink,
                    flags: *flags,
                    argc: *argc,
                    old_pid: *old_pid,
                    filename_len: filename.len() as u16,
                    args_len: argv.len() as u16,
                    stdio: *stdio,
                    _pad0: 0,
                },
            );
            out.extend_from_slice(filename);
            out.extend_from_slice(&argv);
        }
        Body::Fork {
            child_pid,
            child_tid,
            clone_flags,
        } => push(
            &mut out,
            &ForkBody {
                child_pid: *child_pid,
                child_tid: *child_tid,
                clone_flags: *clone_flags,
            },
        ),
        Body::Exit { exit_code } => push(
            &mut out,
            &ExitBody {
                exit_code: *exit_code,
                _pad0: 0,
            },
        ),
        Body::Syscall {
            op,
            flags,
            ret,
            args,
            str0,
            str1,
            extra,
        } => {
            let abi = (1..=60)
                .find(|v| Op::try_from(*v).ok() == Some(*op))
                .unwrap_or(0);
            push(
                &mut out,
                &SyscallBody {
                    op: abi,
                    flags: *flags,
                    ret: *ret,
                    args: *args,
                    str0_len: str0.len() as u16,
                    str1_len: str1.len() as u16,
                    extra_len: extra.len() as u16,
                    _pad0: 0,
                },
            );
            out.extend_from_slice(str0);
            out.extend_from_slice(str1);
            out.extend_from_slice(extra);
        }
    }
    let len = out.len() as u32;
    out[4..8].copy_from_slice(&len.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(kind: Kind) -> Header {
        Header {
            kind,
            ts_ns: 42,
            cgroup_id: 7,
            pid: 100,
            tid: 101,
            ppid: 1,
            uid: 1000,
            gid: 1000,
            euid: 0,
            egid: 0,
            comm: b"bash".to_vec(),
        }
    }

    #[test]
    fn exec_round_trips_with_hostile_args() {
        let ev = RawEvent {
            header: header(Kind::Exec),
            body: Body::Exec {
                exe_ino: 5,
                exe_dev: 0x803,
                exe_nlink: 1,
                flags: EXEC_FLAG_MEMFD,
                argc: 3,
                old_pid: 100,
                stdio: 0xc2c,
                filename: b"/usr/bin/x".to_vec(),
                args: vec![b"x".to_vec(), b"a\nb\x1b[31m".to_vec(), vec![0xff, 0xfe]],
            },
        };
        assert_eq!(decode(&encode(&ev)).unwrap(), ev);
    }

    #[test]
    fn syscall_round_trips() {
        let ev = RawEvent {
            header: header(Kind::File),
            body: Body::Syscall {
                op: Op::Renameat2,
                flags: 0,
                ret: -2,
                args: [1, 2, 3, 4, 5, 6],
                str0: b"/a".to_vec(),
                str1: b"/b".to_vec(),
                extra: vec![],
            },
        };
        assert_eq!(decode(&encode(&ev)).unwrap(), ev);
    }

    #[test]
    fn lying_lengths_are_errors() {
        let ev = RawEvent {
            header: header(Kind::File),
            body: Body::Syscall {
                op: Op::Openat,
                flags: 0,
                ret: 3,
                args: [0; 6],
                str0: b"/etc/passwd".to_vec(),
                str1: vec![],
                extra: vec![],
            },
        };
        let mut bytes = encode(&ev);
        // str0_len claims more than the record holds.
        let at = std::mem::size_of::<EventHeader>() + 64;
        bytes[at..at + 2].copy_from_slice(&4000u16.to_le_bytes());
        assert!(matches!(decode(&bytes), Err(DecodeError::Region { .. })));
        bytes[4..8].copy_from_slice(&9999u32.to_le_bytes());
        assert!(matches!(decode(&bytes), Err(DecodeError::Length { .. })));
        assert_eq!(decode(&bytes[..10]), Err(DecodeError::Short(10)));
    }

    #[test]
    fn split_args_keeps_empty_middle_arguments() {
        assert_eq!(
            split_args(b"a\0\0b\0"),
            vec![b"a".to_vec(), vec![], b"b".to_vec()]
        );
        assert!(split_args(b"").is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&data);
        }

        #[test]
        fn arbitrary_bytes_behind_a_valid_header_never_panic(
            kind in 0u32..9, body in prop::collection::vec(any::<u8>(), 0..512)
        ) {
            let mut data = vec![0u8; 72];
            data[0..4].copy_from_slice(&kind.to_le_bytes());
            let len = (72 + body.len()) as u32;
            data[4..8].copy_from_slice(&len.to_le_bytes());
            data.extend_from_slice(&body);
            let _ = decode(&data);
        }
    }
}
