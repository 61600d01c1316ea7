//! The kernel side of containment: the exec deny list, the isolation allow-list, and the
//! isolation programs' links on isolated cgroups.

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::Path,
};

use aya::{
    maps::{MapData, PerCpuArray},
    programs::{
        CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr,
        cgroup_skb::CgroupSkbLinkId, cgroup_sock_addr::CgroupSockAddrLinkId,
    },
};
use sensor_common::{
    CONTAIN_CONNECT_DENIED, CONTAIN_EXEC_DENIED, CONTAIN_PACKETS_DROPPED, ConnectAllowKey,
    DenyExecKey, MAP_CONTAIN_STATS, MAP_DENY_EXEC, MAP_ISOLATE_ALLOW, PROG_ISOLATE_CONNECT4,
    PROG_ISOLATE_CONNECT6, PROG_ISOLATE_EGRESS, PROG_ISOLATE_INGRESS,
};

use super::{ProbeError, Probes, map_err, missing_map, short_reason};

/// Links of the four isolation programs, by cgroup directory.
#[derive(Default)]
pub struct IsolateLinks {
    by_dir: BTreeMap<String, ([CgroupSockAddrLinkId; 2], [CgroupSkbLinkId; 2])>,
}

/// Containment counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainCounts {
    pub exec_denied: u64,
    pub connect_denied: u64,
    pub packets_dropped: u64,
}

/// One allow-list entry as the kernel keys it.
pub fn allow_key(ip: IpAddr, port: u16) -> ConnectAllowKey {
    let mut bytes = [0u8; 16];
    let family = match ip {
        IpAddr::V4(a) => {
            bytes[..4].copy_from_slice(&a.octets());
            4
        }
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => {
                bytes[..4].copy_from_slice(&v4.octets());
                4
            }
            None => {
                bytes = a.octets();
                6
            }
        },
    };
    ConnectAllowKey {
        policy: 0,
        port,
        family,
        ip: bytes,
    }
}

impl Probes {
    /// Make the kernel's exec deny list exactly `entries` (device, inode).
    pub fn set_deny_exec(&mut self, entries: &[(u32, u64)]) -> Result<(), ProbeError> {
        let want: HashMap<DenyExecKey, u32> = entries
            .iter()
            .map(|(dev, ino)| {
                let key = DenyExecKey {
                    dev: *dev,
                    _pad: 0,
                    ino: *ino,
                };
                (key, 1)
            })
            .collect();
        self.sync_map(MAP_DENY_EXEC, &want)
    }

    /// Make the isolation allow-list exactly `entries` (port 0: every port).
    pub fn set_isolate_allow(&mut self, entries: &[(IpAddr, u16)]) -> Result<(), ProbeError> {
        let want: HashMap<ConnectAllowKey, u8> = entries
            .iter()
            .map(|(ip, port)| (allow_key(*ip, *port), 1))
            .collect();
        self.sync_map(MAP_ISOLATE_ALLOW, &want)
    }

    /// Attach the isolation programs to the cgroup at `dir` (a directory of the cgroup v2
    /// hierarchy). `root` is that hierarchy's mount: attaching to it isolates the whole host,
    /// which only `allow_root` permits.
    pub fn isolate_attach(
        &mut self,
        root: &Path,
        dir: &Path,
        allow_root: bool,
    ) -> Result<(), ProbeError> {
        let key = dir.display().to_string();
        if self.isolate_links.by_dir.contains_key(&key) {
            return Ok(());
        }
        if dir == root && !allow_root {
            return Err(ProbeError::Attach(
                "refusing to isolate the root cgroup (the whole host) without host isolation enabled".into(),
            ));
        }
        let fd = std::fs::File::open(dir).map_err(|e| {
            ProbeError::Attach(format!("cannot open cgroup {}: {e}", dir.display()))
        })?;
        let attach_err = |name: &str, e: &dyn std::error::Error| {
            ProbeError::Attach(format!("{name} to {}: {}", dir.display(), short_reason(e)))
        };
        let mut sock = Vec::with_capacity(2);
        for name in [PROG_ISOLATE_CONNECT4, PROG_ISOLATE_CONNECT6] {
            let prog: &mut CgroupSockAddr = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| ProbeError::Load(format!("{name} missing")))?
                .try_into()
                .map_err(|e| ProbeError::Load(short_reason(&e)))?;
            match prog.attach(&fd, CgroupAttachMode::Single) {
                Ok(id) => sock.push(id),
                Err(e) => {
                    let err = attach_err(name, &e);
                    self.undo_partial(sock, Vec::new());
                    return Err(err);
                }
            }
        }
        let mut skb = Vec::with_capacity(2);
        for (name, ty) in [
            (PROG_ISOLATE_EGRESS, CgroupSkbAttachType::Egress),
            (PROG_ISOLATE_INGRESS, CgroupSkbAttachType::Ingress),
        ] {
            let prog: &mut CgroupSkb = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| ProbeError::Load(format!("{name} missing")))?
                .try_into()
                .map_err(|e| ProbeError::Load(short_reason(&e)))?;
            match prog.attach(&fd, ty, CgroupAttachMode::Single) {
                Ok(id) => skb.push(id),
                Err(e) => {
                    let err = attach_err(name, &e);
                    self.undo_partial(sock, skb);
                    return Err(err);
                }
            }
        }
        match (<[_; 2]>::try_from(sock), <[_; 2]>::try_from(skb)) {
            (Ok(sock), Ok(skb)) => {
                self.isolate_links.by_dir.insert(key, (sock, skb));
                Ok(())
            }
            _ => Err(ProbeError::Attach("isolation links incomplete".into())),
        }
    }

    fn undo_partial(&mut self, sock: Vec<CgroupSockAddrLinkId>, skb: Vec<CgroupSkbLinkId>) {
        for (name, id) in [PROG_ISOLATE_CONNECT4, PROG_ISOLATE_CONNECT6]
            .into_iter()
            .zip(sock)
        {
            if let Some(p) = self.ebpf.program_mut(name)
                && let Ok(p) = <&mut CgroupSockAddr>::try_from(p)
            {
                let _ = p.detach(id);
            }
        }
        for (name, id) in [PROG_ISOLATE_EGRESS, PROG_ISOLATE_INGRESS]
            .into_iter()
            .zip(skb)
        {
            if let Some(p) = self.ebpf.program_mut(name)
                && let Ok(p) = <&mut CgroupSkb>::try_from(p)
            {
                let _ = p.detach(id);
            }
        }
    }

    /// Detach the isolation programs from `dir`; false if it was not isolated.
    pub fn isolate_detach(&mut self, dir: &Path) -> bool {
        match self.isolate_links.by_dir.remove(&dir.display().to_string()) {
            Some((sock, skb)) => {
                self.undo_partial(sock.into(), skb.into());
                true
            }
            None => false,
        }
    }

    /// Cgroup directories currently isolated.
    pub fn isolated(&self) -> Vec<String> {
        self.isolate_links.by_dir.keys().cloned().collect()
    }

    pub fn contain_counts(&self) -> Result<ContainCounts, ProbeError> {
        let m = self
            .ebpf
            .map(MAP_CONTAIN_STATS)
            .ok_or_else(|| missing_map(MAP_CONTAIN_STATS))?;
        let stats: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(m).map_err(map_err(MAP_CONTAIN_STATS))?;
        let get = |i: u32| -> u64 { stats.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        Ok(ContainCounts {
            exec_denied: get(CONTAIN_EXEC_DENIED),
            connect_denied: get(CONTAIN_CONNECT_DENIED),
            packets_dropped: get(CONTAIN_PACKETS_DROPPED),
        })
    }
}
