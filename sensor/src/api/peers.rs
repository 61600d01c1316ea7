//! Who may use the control socket: root, the agent's own user, and the users and groups of
//! `[api] allow_uids` / `allow_groups`. The peer's uid and gid come from SO_PEERCRED and its
//! supplementary groups from SO_PEERGROUPS, both fixed by the kernel when the peer connected.

use std::os::fd::AsRawFd;

use nix::unistd::{Gid, Group, Uid, User};

use super::{ApiConfig, ApiError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peers {
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
    /// The socket's group, if one is configured.
    pub socket_gid: Option<u32>,
}

fn uid(name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    match User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        _ => Err(format!("no user {:?}", crate::escape::escape_str(name, 64))),
    }
}

fn gid(name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        _ => Err(format!(
            "no group {:?}",
            crate::escape::escape_str(name, 64)
        )),
    }
}

impl Peers {
    /// Resolve names once, at start: an unknown user or group fails the start.
    pub fn resolve(cfg: &ApiConfig) -> Result<Self, ApiError> {
        let err = |key| move |message| ApiError::Config { key, message };
        Ok(Peers {
            uids: cfg
                .allow_uids
                .iter()
                .map(|u| uid(u))
                .collect::<Result<_, _>>()
                .map_err(err("allow_uids"))?,
            gids: cfg
                .allow_groups
                .iter()
                .map(|g| gid(g))
                .collect::<Result<_, _>>()
                .map_err(err("allow_groups"))?,
            socket_gid: cfg
                .socket_group
                .as_deref()
                .map(gid)
                .transpose()
                .map_err(err("socket_group"))?,
        })
    }

    /// Is a peer with this identity allowed?
    pub fn allows(&self, peer_uid: u32, peer_gid: u32, groups: &[u32]) -> bool {
        let me = nix::unistd::geteuid().as_raw();
        peer_uid == 0
            || peer_uid == me
            || self.uids.contains(&peer_uid)
            || self.gids.contains(&peer_gid)
            || groups.iter().any(|g| self.gids.contains(g))
    }

    /// Give the socket its group (mode 0660 is set at bind).
    pub fn apply_group(&self, path: &std::path::Path) -> Result<(), ApiError> {
        if let Some(g) = self.socket_gid {
            nix::unistd::chown(path, None::<Uid>, Some(Gid::from_raw(g))).map_err(|e| {
                ApiError::Config {
                    key: "socket_group",
                    message: format!("cannot give {} to group {g}: {e}", path.display()),
                }
            })?;
        }
        Ok(())
    }
}

/// The peer's supplementary groups (SO_PEERGROUPS, Linux 4.13+); empty if unknown.
pub fn peer_groups(sock: &impl AsRawFd) -> Vec<u32> {
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<u32>()) as libc::socklen_t;
        // SAFETY: the buffer is `len` bytes of writable memory owned by `groups`.
        let rc = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            groups.truncate(len as usize / std::mem::size_of::<u32>());
            return groups;
        }
        // ERANGE: the kernel wrote the size it needs into `len`.
        let needed = len as usize / std::mem::size_of::<u32>();
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE)
            && needed > groups.len()
            && needed <= 65536
        {
            groups.resize(needed, 0);
            continue;
        }
        return Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve_and_unknown_ones_fail_clearly() {
        let cfg = ApiConfig {
            allow_uids: vec!["root".into(), "4242".into()],
            allow_groups: vec!["0".into()],
            socket_group: Some("root".into()),
            ..Default::default()
        };
        let p = Peers::resolve(&cfg).unwrap();
        assert_eq!(
            (p.uids, p.gids, p.socket_gid),
            (vec![0, 4242], vec![0], Some(0))
        );
        let bad = ApiConfig {
            allow_groups: vec!["no-such-group-\u{1b}[31m".into()],
            ..Default::default()
        };
        let e = Peers::resolve(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("api.allow_groups: no group") && !e.contains('\u{1b}'),
            "{e}"
        );
    }

    #[test]
    fn allow_list() {
        let p = Peers {
            uids: vec![1000],
            gids: vec![2000],
            socket_gid: None,
        };
        assert!(p.allows(0, 0, &[]));
        assert!(p.allows(1000, 5, &[]));
        assert!(p.allows(7, 2000, &[]));
        assert!(p.allows(7, 7, &[9, 2000]));
        let me = nix::unistd::geteuid().as_raw();
        let stranger = if me == 0 { 65534 } else { 1 };
        assert!(!p.allows(stranger, 65534, &[65533]) || stranger == me);
    }

    #[test]
    fn own_socket_pair_reports_our_groups() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let groups = peer_groups(&a);
        let mine: Vec<u32> = nix::unistd::getgroups()
            .unwrap()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        assert_eq!(groups.len(), mine.len());
    }
}
