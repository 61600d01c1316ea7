//! The local address a socket really got, from /proc, for `listen` on a socket bound to port
//! 0 (the kernel chose the port after the bind event was taken). Best effort: the socket may
//! already be closed, and then the bound address stands.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
};

use crate::event::SockAddr;

/// `socket:[12345]` → 12345.
fn socket_inode(root: &Path, pid: u32, fd: i64) -> Option<u64> {
    let link = std::fs::read_link(root.join(format!("proc/{pid}/fd/{fd}"))).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// Parse one `/proc/net/tcp{,6}` local address (`0100007F:1F90`, host-order words in hex).
fn parse_local(addr: &str, v6: bool) -> Option<SockAddr> {
    let (ip, port) = addr.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    if v6 {
        if ip.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, chunk) in bytes.chunks_mut(4).enumerate() {
            let word = u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?;
            chunk.copy_from_slice(&word.to_ne_bytes());
        }
        Some(SockAddr::V6(Ipv6Addr::from(bytes), port))
    } else {
        let word = u32::from_str_radix(ip, 16).ok()?;
        Some(SockAddr::V4(Ipv4Addr::from(word.to_ne_bytes()), port))
    }
}

pub fn local_address(root: &Path, pid: u32, fd: i64) -> Option<SockAddr> {
    let inode = socket_inode(root, pid, fd)?;
    for (table, v6) in [
        ("tcp", false),
        ("tcp6", true),
        ("udp", false),
        ("udp6", true),
    ] {
        let Ok(text) = std::fs::read_to_string(root.join(format!("proc/{pid}/net/{table}"))) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(9).and_then(|c| c.parse::<u64>().ok()) == Some(inode) {
                return cols.get(1).and_then(|a| parse_local(a, v6));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_addresses() {
        assert_eq!(
            parse_local("0100007F:1F90", false),
            Some(SockAddr::V4(Ipv4Addr::LOCALHOST, 8080))
        );
        assert_eq!(
            parse_local("00000000000000000000000001000000:0050", true),
            Some(SockAddr::V6(Ipv6Addr::LOCALHOST, 80))
        );
        assert_eq!(parse_local("zz:1", false), None);
        assert_eq!(parse_local("0100007F", false), None);
    }

    #[test]
    fn finds_the_socket_of_a_fixture_process() {
        let dir = tempfile::tempdir().unwrap();
        let fd_dir = dir.path().join("proc/9/fd");
        std::fs::create_dir_all(&fd_dir).unwrap();
        std::os::unix::fs::symlink("socket:[4242]", fd_dir.join("3")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc/9/net")).unwrap();
        std::fs::write(
            dir.path().join("proc/9/net/tcp"),
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:A5E4 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n",
        )
        .unwrap();
        assert_eq!(
            local_address(dir.path(), 9, 3),
            Some(SockAddr::V4(Ipv4Addr::LOCALHOST, 0xa5e4))
        );
        assert_eq!(local_address(dir.path(), 9, 4), None);
    }
}
