//! The kernel side of enforcement: fill the allow-lists of shadowed and enforced workloads,
//! attach the connect programs to their cgroups (never the root cgroup), and read the
//! per-policy counters back. File allow-lists apply only where `lsm/file_open` attached.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    path::Path,
};

use aya::{
    maps::{
        MapData, PerCpuArray,
        lpm_trie::{Key, LpmTrie},
    },
    programs::{CgroupAttachMode, CgroupSockAddr, Lsm},
};
use sensor_common::{
    ConnectAllowKey, ENF_FLAG_CONNECT, ENF_FLAG_EXEC, ENF_FLAG_FILE, ENF_FLAG_SHADOW,
    ENFORCE_COUNTERS, ENFORCE_MAX_ALLOW, ENFORCE_MAX_POLICIES, EnforcePolicy, ExecAllowKey,
    FILE_KEY_LEN, FILE_PATH_LEN, MAP_CONNECT_ALLOW, MAP_ENFORCE_CGROUPS, MAP_ENFORCE_STATS,
    MAP_EXEC_ALLOW, MAP_FILE_ALLOW, PROG_CONNECT4, PROG_CONNECT6, PROG_LSM_FILE,
};

use super::{ProbeError, Probes, map_err, short_reason};
pub use crate::profile::files::FileRule;

/// One workload's policy as the kernel applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPolicy {
    pub id: u32,
    pub shadow: bool,
    /// (cgroup id, cgroup path relative to the cgroup v2 root).
    pub cgroups: Vec<(u64, String)>,
    pub exec_allow: Vec<(u32, u64)>,
    pub connect_allow: Vec<(IpAddr, u16)>,
    /// File rules (`lsm/file_open` only); empty: file opens are not checked.
    pub files: Vec<FileRule>,
}

type FileKey = Key<[u8; FILE_KEY_LEN]>;

/// The trie keys of a rule: the path and its NUL for a file; `dir/` and `dir` with its NUL
/// for a tree. A path longer than a key holds becomes the tree of its longest directory that
/// fits (wider, never narrower: the kernel could not match the long form).
fn file_keys(r: &FileRule, policy: u32) -> Vec<FileKey> {
    let base = r.path.trim_end_matches('/').as_bytes();
    let mut prefixes = Vec::with_capacity(2);
    if r.tree || base.is_empty() {
        prefixes.push([base, b"/"].concat());
    }
    if !base.is_empty() {
        prefixes.push([base, b"\0"].concat());
    }
    prefixes
        .into_iter()
        .map(|mut p| {
            if p.len() > FILE_PATH_LEN {
                let cut = p[..FILE_PATH_LEN]
                    .iter()
                    .rposition(|b| *b == b'/')
                    .unwrap_or(0);
                p.truncate(cut + 1);
            }
            let mut data = [0u8; FILE_KEY_LEN];
            data[..4].copy_from_slice(&policy.to_be_bytes());
            data[4..4 + p.len()].copy_from_slice(&p);
            Key::new(((4 + p.len()) * 8) as u32, data)
        })
        .collect()
}

/// Attach `lsm/file_open` (only where the other enforcement LSM programs attached).
pub(super) fn attach_file_lsm(ebpf: &mut aya::Ebpf, btf: &aya::Btf) -> Result<(), String> {
    let p: &mut Lsm = ebpf
        .program_mut(PROG_LSM_FILE)
        .ok_or_else(|| format!("{PROG_LSM_FILE} missing from the object"))?
        .try_into()
        .map_err(|e| format!("{PROG_LSM_FILE}: {}", short_reason(&e)))?;
    p.load("file_open", btf)
        .and_then(|()| p.attach().map(|_| ()))
        .map_err(|e| format!("{PROG_LSM_FILE}: {}", short_reason(&e)))
}

/// Per-policy counters (summed over CPUs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnforceCounts {
    pub exec_denied: u64,
    pub exec_would_deny: u64,
    pub connect_denied: u64,
    pub connect_would_deny: u64,
    #[serde(default)]
    pub file_denied: u64,
    #[serde(default)]
    pub file_would_deny: u64,
}

/// Links of the connect programs, by cgroup path.
#[derive(Default)]
pub struct ConnectLinks {
    by_path: HashMap<String, [aya::programs::cgroup_sock_addr::CgroupSockAddrLinkId; 2]>,
}

impl Probes {
    /// Make the kernel's enforcement match `policies` and return each policy's counters.
    /// `cgroup_root` is the cgroup v2 mount.
    pub fn enforce_sync(
        &mut self,
        policies: &[KernelPolicy],
        cgroup_root: &Path,
    ) -> Result<HashMap<u32, EnforceCounts>, ProbeError> {
        // Allow-lists first, then the cgroups that point at them: a cgroup never meets an
        // empty list mid-update.
        let exec: HashMap<ExecAllowKey, u8> = policies
            .iter()
            .flat_map(|p| {
                p.exec_allow.iter().map(move |(dev, ino)| {
                    let key = ExecAllowKey {
                        policy: p.id,
                        dev: *dev,
                        ino: *ino,
                    };
                    (key, 1)
                })
            })
            .collect();
        self.sync_map(MAP_EXEC_ALLOW, &exec)?;
        let connect: HashMap<ConnectAllowKey, u8> = policies
            .iter()
            .flat_map(|p| {
                p.connect_allow.iter().map(move |(ip, port)| {
                    let mut bytes = [0u8; 16];
                    let family = match ip {
                        IpAddr::V4(a) => {
                            bytes[..4].copy_from_slice(&a.octets());
                            4
                        }
                        IpAddr::V6(a) => {
                            bytes = a.octets();
                            6
                        }
                    };
                    let key = ConnectAllowKey {
                        policy: p.id,
                        port: *port,
                        family,
                        ip: bytes,
                    };
                    (key, 1)
                })
            })
            .collect();
        self.sync_map(MAP_CONNECT_ALLOW, &connect)?;
        let files = self.file_lsm.is_ok();
        if files {
            self.sync_files(policies)?;
        }
        let cgroups: HashMap<u64, EnforcePolicy> = policies
            .iter()
            .flat_map(|p| {
                let flags = ENF_FLAG_EXEC
                    | ENF_FLAG_CONNECT
                    | if p.shadow { ENF_FLAG_SHADOW } else { 0 }
                    | if files && !p.files.is_empty() {
                        ENF_FLAG_FILE
                    } else {
                        0
                    };
                p.cgroups.iter().map(move |(id, _)| {
                    (
                        *id,
                        EnforcePolicy {
                            policy: p.id,
                            flags,
                        },
                    )
                })
            })
            .collect();
        self.sync_map(MAP_ENFORCE_CGROUPS, &cgroups)?;
        // With BPF LSM the connect hook is in the LSM program; no cgroup programs then.
        let paths: HashSet<String> = if self.lsm.is_ok() {
            HashSet::new()
        } else {
            policies
                .iter()
                .flat_map(|p| p.cgroups.iter().map(|(_, path)| path.clone()))
                .collect()
        };
        self.sync_connect_links(&paths, cgroup_root)?;
        self.enforce_counts(policies.iter().map(|p| p.id))
    }

    /// Make the file trie hold exactly the policies' rules (new ones first, then stale ones
    /// out, so a policy never meets a half-filled list).
    fn sync_files(&mut self, policies: &[KernelPolicy]) -> Result<(), ProbeError> {
        let mut want: HashMap<(u32, [u8; FILE_KEY_LEN]), (FileKey, u8)> = HashMap::new();
        for p in policies {
            for r in &p.files {
                for key in file_keys(r, p.id) {
                    // Two rules may meet in one prefix (a long path cut back): rights add up.
                    let e = want
                        .entry((key.prefix_len(), key.data()))
                        .or_insert((key, 0));
                    e.1 |= r.rights;
                }
            }
        }
        if want.len() > ENFORCE_MAX_ALLOW as usize {
            return Err(ProbeError::Load(format!(
                "{} file rules; the kernel holds at most {ENFORCE_MAX_ALLOW}",
                want.len()
            )));
        }
        let map = self
            .ebpf
            .map_mut(MAP_FILE_ALLOW)
            .ok_or_else(|| super::missing_map(MAP_FILE_ALLOW))?;
        let mut trie: LpmTrie<&mut MapData, [u8; FILE_KEY_LEN], u8> =
            LpmTrie::try_from(map).map_err(map_err(MAP_FILE_ALLOW))?;
        for (key, rights) in want.values() {
            trie.insert(key, *rights, 0)
                .map_err(map_err(MAP_FILE_ALLOW))?;
        }
        let stale: Vec<FileKey> = trie
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !want.contains_key(&(k.prefix_len(), k.data())))
            .collect();
        for k in stale {
            let _ = trie.remove(&k);
        }
        Ok(())
    }

    fn sync_connect_links(
        &mut self,
        paths: &HashSet<String>,
        cgroup_root: &Path,
    ) -> Result<(), ProbeError> {
        let stale: Vec<String> = self
            .connect_links
            .by_path
            .keys()
            .filter(|p| !paths.contains(*p))
            .cloned()
            .collect();
        for path in stale {
            if let Some(ids) = self.connect_links.by_path.remove(&path) {
                for (name, id) in [PROG_CONNECT4, PROG_CONNECT6].into_iter().zip(ids) {
                    if let Some(p) = self.ebpf.program_mut(name)
                        && let Ok(p) = <&mut CgroupSockAddr>::try_from(p)
                    {
                        let _ = p.detach(id);
                    }
                }
            }
        }
        for path in paths {
            if self.connect_links.by_path.contains_key(path) {
                continue;
            }
            let rel = path.trim_start_matches('/');
            // Never the root cgroup: that would confine every process on the host.
            if rel.is_empty() || rel.split('/').any(|c| c == "..") {
                continue;
            }
            let dir = cgroup_root.join(rel);
            let Ok(fd) = std::fs::File::open(&dir) else {
                continue;
            };
            let mut ids = Vec::with_capacity(2);
            for name in [PROG_CONNECT4, PROG_CONNECT6] {
                let prog: &mut CgroupSockAddr = self
                    .ebpf
                    .program_mut(name)
                    .ok_or_else(|| ProbeError::Load(format!("{name} missing")))?
                    .try_into()
                    .map_err(|e| ProbeError::Load(short_reason(&e)))?;
                let id = prog
                    // A BPF link (kernel 5.7+) coexists with other programs on the cgroup; link
                    // creation refuses the multi-attach flag.
                    .attach(&fd, CgroupAttachMode::Single)
                    .map_err(|e| {
                        ProbeError::Attach(format!(
                            "{name} to {}: {}",
                            dir.display(),
                            short_reason(&e)
                        ))
                    })?;
                ids.push(id);
            }
            if let Ok(pair) = <[_; 2]>::try_from(ids) {
                self.connect_links.by_path.insert(path.clone(), pair);
            }
        }
        Ok(())
    }

    fn enforce_counts(
        &self,
        ids: impl Iterator<Item = u32>,
    ) -> Result<HashMap<u32, EnforceCounts>, ProbeError> {
        let m = self
            .ebpf
            .map(MAP_ENFORCE_STATS)
            .ok_or_else(|| super::missing_map(MAP_ENFORCE_STATS))?;
        let stats: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(m).map_err(map_err(MAP_ENFORCE_STATS))?;
        let mut out = HashMap::new();
        for id in ids.filter(|id| *id < ENFORCE_MAX_POLICIES) {
            let get = |what: u32| -> u64 {
                stats
                    .get(&(id * ENFORCE_COUNTERS + what), 0)
                    .map(|v| v.iter().sum())
                    .unwrap_or(0)
            };
            out.insert(
                id,
                EnforceCounts {
                    exec_denied: get(sensor_common::ENF_EXEC_DENIED),
                    exec_would_deny: get(sensor_common::ENF_EXEC_WOULD),
                    connect_denied: get(sensor_common::ENF_CONNECT_DENIED),
                    connect_would_deny: get(sensor_common::ENF_CONNECT_WOULD),
                    file_denied: get(sensor_common::ENF_FILE_DENIED),
                    file_would_deny: get(sensor_common::ENF_FILE_WOULD),
                },
            );
        }
        Ok(out)
    }

    /// The active backends, for `sensor status`.
    pub fn enforcement_backend(&self) -> String {
        match (&self.lsm, &self.file_lsm) {
            (Ok(()), Ok(())) => "exec: lsm/bprm_check_security (EPERM); connect: lsm/socket_connect (EPERM); files: lsm/file_open (EPERM), and sensor exec (Landlock)".into(),
            (Ok(()), Err(why)) => format!("exec: lsm/bprm_check_security (EPERM); connect: lsm/socket_connect (EPERM); files: sensor exec (Landlock); lsm/file_open not used ({why})"),
            (Err(why), _) => format!(
                "exec: tp_btf/sched_process_exec + SIGKILL; connect: cgroup/connect4+6 (EPERM); files: sensor exec (Landlock); BPF LSM not used ({why})"
            ),
        }
    }

    /// Reset a policy's counters (a policy id reused for another workload starts at zero).
    pub fn enforce_reset_counts(&mut self, id: u32) -> Result<(), ProbeError> {
        if id >= ENFORCE_MAX_POLICIES {
            return Ok(());
        }
        let m = self
            .ebpf
            .map_mut(MAP_ENFORCE_STATS)
            .ok_or_else(|| super::missing_map(MAP_ENFORCE_STATS))?;
        let mut stats: PerCpuArray<&mut MapData, u64> =
            PerCpuArray::try_from(m).map_err(map_err(MAP_ENFORCE_STATS))?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| ProbeError::Load(e.to_string()))?;
        for what in 0..ENFORCE_COUNTERS {
            let zeros = aya::maps::PerCpuValues::try_from(vec![0u64; cpus])
                .map_err(|e| ProbeError::Load(e.to_string()))?;
            stats
                .set(id * ENFORCE_COUNTERS + what, zeros, 0)
                .map_err(map_err(MAP_ENFORCE_STATS))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &str, tree: bool) -> Vec<(u32, Vec<u8>)> {
        let r = FileRule {
            path: path.into(),
            tree,
            rights: 1,
        };
        file_keys(&r, 7)
            .into_iter()
            .map(|k| {
                let bits = k.prefix_len();
                let data = k.data();
                assert_eq!(&data[..4], &7u32.to_be_bytes(), "the policy leads");
                (bits, data[4..bits as usize / 8].to_vec())
            })
            .collect()
    }

    #[test]
    fn files_match_whole_and_trees_match_below_and_themselves() {
        assert_eq!(
            keys("/etc/passwd", false),
            vec![(8 * 16, b"/etc/passwd\0".to_vec())]
        );
        assert_eq!(
            keys("/srv/www", true),
            vec![
                (8 * 13, b"/srv/www/".to_vec()),
                (8 * 13, b"/srv/www\0".to_vec())
            ]
        );
        assert_eq!(keys("/", true), vec![(8 * 5, b"/".to_vec())]);
        // Too long for a key: the tree of the longest directory that fits.
        let long = format!("/data/{}/file", "d".repeat(300));
        assert_eq!(keys(&long, false), vec![(8 * 10, b"/data/".to_vec())]);
    }
}
