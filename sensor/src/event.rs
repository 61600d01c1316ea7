//! The enriched event: what `sensor events tail --json`, `sensor record` and detection see.
//!
//! Field names follow ECS (`process.pid`, `process.executable`, `process.parent.pid`,
//! `user.id`, `container.id`, `file.path`, `destination.ip`, ...). The schema is documented in
//! `docs/events.md`; `tests/schema` checks a sample of every kind against it.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

pub use crate::probes::decode::{Kind, Op};

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Wall-clock time of the kernel event, RFC 3339 with nanoseconds, UTC.
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub event: EventMeta,
    pub process: Process,
    pub user: User,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    pub cgroup: Cgroup,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscall: Option<Syscall>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMeta {
    pub kind: Kind,
    /// `exec`, `fork`, `exit`, or the syscall name (`openat`, `connect`, `setuid`, ...).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Agent-local sequence number, gap-free per run.
    pub sequence: u64,
    /// Kernel boot-time nanoseconds (orders events exactly within one boot).
    pub boot_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    Failure,
    /// Started but not finished when the call returned (a non-blocking connect: EINPROGRESS).
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Process {
    pub pid: u32,
    pub tid: u32,
    /// `comm`: the kernel's 15-byte task name.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_count: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub args_truncated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Parent>,
    /// Ancestors above the parent, nearest first (bounded depth).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ancestry: Vec<Parent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_signal: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<ExeInfo>,
    /// What fds 0, 1, 2 were at exec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<Stdio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkInfo>,
}

/// File types of the standard fds at exec: `socket`, `pipe`, `char` (a terminal or
/// /dev/null), `file`, `dir`, `block`, `link`, `closed`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stdio {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
}

impl Stdio {
    /// Decode the kernel's packed 4-bit `S_IFMT >> 12` codes.
    pub fn from_packed(v: u32) -> Stdio {
        let name = |i: u32| {
            match (v >> (i * 4)) & 0xf {
                0 => "closed",
                0x1 => "pipe",
                0x2 => "char",
                0x4 => "dir",
                0x6 => "block",
                0x8 => "file",
                0xa => "link",
                0xc => "socket",
                _ => "other",
            }
            .to_owned()
        };
        Stdio {
            stdin: name(0),
            stdout: name(1),
            stderr: name(2),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parent {
    pub pid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExeInfo {
    pub inode: u64,
    pub device: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub memfd: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkInfo {
    pub child_pid: u32,
    pub clone_flags: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub group_id: u32,
    pub effective_id: u32,
    pub effective_group_id: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    pub id: String,
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// The container's name (Kubernetes container name, or the runtime's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The image it runs, as the runtime recorded it (`nginx:1.25`, a digest reference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The systemd unit of a host process.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cgroup {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The new name of a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
    /// The file descriptor, for fd-based calls (fchmod, ftruncate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fd: Option<i64>,
    /// open(2) flags as numbers and names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flag_names: Vec<String>,
    /// Mode of a chmod or a creating open, in octal text (`4755`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated_path: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// A unix socket path (`@name` for the abstract namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// `ipv4`, `ipv6`, `unix`, or `af_<n>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    pub fd: i64,
    /// The kernel found the peer address in the loaded IP indicators.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ioc: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Syscall {
    pub name: String,
    pub ret: i64,
    /// Decoded arguments by name (`uid`, `request`, `flags`, `cmd`, ...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub args: serde_json::Map<String, serde_json::Value>,
    /// String arguments (module params, memfd name, mount source).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strings: Vec<String>,
}

/// Kernel bytes to a JSON-safe string: invalid UTF-8 becomes U+FFFD. Display escaping of
/// control characters is the job of `escape` at the terminal, not of the data model.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A socket address as the kernel copied it from the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockAddr {
    V4(Ipv4Addr, u16),
    V6(Ipv6Addr, u16),
    Unix(String),
    Other(u16),
}

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

impl SockAddr {
    /// Parse a `struct sockaddr` prefix; `None` when too short for its family.
    pub fn parse(b: &[u8]) -> Option<SockAddr> {
        let family = u16::from_ne_bytes(b.get(0..2)?.try_into().ok()?);
        match family {
            AF_INET => {
                let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
                let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
                Some(SockAddr::V4(Ipv4Addr::from(ip), port))
            }
            AF_INET6 => {
                let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
                let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
                Some(SockAddr::V6(Ipv6Addr::from(ip), port))
            }
            AF_UNIX => {
                let path = b.get(2..).unwrap_or_default();
                Some(SockAddr::Unix(match path.first() {
                    Some(0) => {
                        let name = &path[1..];
                        let end = name.iter().position(|&c| c == 0).unwrap_or(name.len());
                        format!("@{}", text(&name[..end]))
                    }
                    _ => {
                        let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                        text(&path[..end])
                    }
                }))
            }
            other => Some(SockAddr::Other(other)),
        }
    }

    pub fn family(&self) -> String {
        match self {
            SockAddr::V4(..) => "ipv4".into(),
            SockAddr::V6(..) => "ipv6".into(),
            SockAddr::Unix(_) => "unix".into(),
            SockAddr::Other(f) => format!("af_{f}"),
        }
    }

    pub fn endpoint(&self) -> Endpoint {
        match self {
            SockAddr::V4(ip, port) => Endpoint {
                ip: Some(ip.to_string()),
                port: Some(*port),
                address: None,
            },
            SockAddr::V6(ip, port) => Endpoint {
                ip: Some(ip.to_string()),
                port: Some(*port),
                address: None,
            },
            SockAddr::Unix(path) => Endpoint {
                ip: None,
                port: None,
                address: Some(path.clone()),
            },
            SockAddr::Other(_) => Endpoint::default(),
        }
    }
}

/// Names of the open(2) flags that matter to a reader.
pub fn open_flag_names(flags: u64) -> Vec<String> {
    const NAMES: [(u64, &str); 10] = [
        (0o100, "O_CREAT"),
        (0o200, "O_EXCL"),
        (0o1000, "O_TRUNC"),
        (0o2000, "O_APPEND"),
        (0o200000, "O_DIRECTORY"),
        (0o400000, "O_NOFOLLOW"),
        (0o2000000, "O_CLOEXEC"),
        (0o20000000, "O_PATH"),
        (0o20200000, "O_TMPFILE"),
        (0o4000, "O_NONBLOCK"),
    ];
    let mut out = vec![
        match flags & 0o3 {
            0 => "O_RDONLY",
            1 => "O_WRONLY",
            _ => "O_RDWR",
        }
        .to_owned(),
    ];
    for (bit, name) in NAMES {
        if flags & bit == bit {
            out.push(name.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_socket_addresses() {
        let mut v4 = vec![2u8, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0; 8]);
        assert_eq!(
            SockAddr::parse(&v4),
            Some(SockAddr::V4(Ipv4Addr::LOCALHOST, 8080))
        );
        let mut v6 = vec![10u8, 0, 0, 80, 0, 0, 0, 0];
        v6.extend(Ipv6Addr::LOCALHOST.octets());
        assert_eq!(
            SockAddr::parse(&v6),
            Some(SockAddr::V6(Ipv6Addr::LOCALHOST, 80))
        );
        let unix = b"\x01\x00/run/x.sock\0junk";
        assert_eq!(
            SockAddr::parse(unix),
            Some(SockAddr::Unix("/run/x.sock".into()))
        );
        let abs = b"\x01\x00\0name";
        assert_eq!(SockAddr::parse(abs), Some(SockAddr::Unix("@name".into())));
        assert_eq!(SockAddr::parse(&[2, 0, 1]), None);
        assert_eq!(SockAddr::parse(&[]), None);
    }

    #[test]
    fn names_open_flags() {
        assert_eq!(open_flag_names(0), vec!["O_RDONLY"]);
        let n = open_flag_names(0o1 | 0o100 | 0o1000);
        assert!(n.contains(&"O_WRONLY".to_owned()) && n.contains(&"O_TRUNC".to_owned()));
    }

    #[test]
    fn decodes_packed_stdio_types() {
        let s = Stdio::from_packed(0x2cc);
        assert_eq!(
            (s.stdin.as_str(), s.stdout.as_str(), s.stderr.as_str()),
            ("socket", "socket", "char")
        );
        assert_eq!(Stdio::from_packed(0).stdin, "closed");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(text(b"a\xffb"), "a\u{fffd}b");
    }
}
