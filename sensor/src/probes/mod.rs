//! Load, configure and attach the kernel probes; read their counters.
//!
//! Each program attaches on its own: a hook this kernel lacks (a syscall added later, a
//! missing tp_btf target) fails alone, with the kernel's reason kept for `sensor status`.

pub mod btf;
pub mod contain;
pub mod decode;
pub mod enforce;
pub mod guard;
pub mod learn;
pub mod reader;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{LpmTrie, MapData, PerCpuArray, RingBuf, lpm_trie::Key},
    programs::{BtfTracePoint, Program},
};
use sensor_common::{
    CTR_DROPPED, CTR_ERRORS, CTR_FILTERED, CTR_SEEN, Config, GLOBAL_CONFIG, MAP_COUNTERS,
    MAP_EVENTS, MAP_IGNORED_PREFIXES, MODE_EMPTY, MODE_FULL, PREFIX_KEY_LEN, counter_index,
};
use serde::{Deserialize, Serialize};

use self::decode::Kind;

/// The compiled eBPF object, built by `build.rs` through aya-build.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-probes"));

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("cannot parse kernel BTF for program loading: {0}")]
    AyaBtf(String),
    #[error("loading the eBPF object failed: {0}")]
    Load(String),
    #[error("attaching {0}")]
    Attach(String),
    #[error("map `{name}`: {reason}")]
    Map { name: &'static str, reason: String },
    #[error(
        "syscall tracepoint layout differs from the expected ABI ({0}); refusing to read wrong fields"
    )]
    TracepointAbi(String),
    #[error("ring buffer size {0} must be a power of two and a multiple of the page size")]
    RingSize(u32),
    #[error("ignored prefix `{0}` is longer than {PREFIX_KEY_LEN} bytes")]
    PrefixTooLong(String),
    #[error("tracefs is not mounted at {path} and mounting it failed: {reason}")]
    Tracefs { path: String, reason: String },
    #[error("{0} IP indicators exceed the kernel trie capacity ({max})", max = sensor_common::IOC_MAX_ENTRIES)]
    IocCapacity(usize),
    #[error("no probe attached (every program failed); first failure: {0}")]
    NothingAttached(String),
}

/// How the programs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Full,
    /// Attach every program but return at once (the benchmark's "empty probes" column).
    Empty,
}

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    pub mode: Mode,
    pub ring_buffer_bytes: u32,
    pub wakeup_bytes: u32,
    pub dedup_window_ns: u64,
    pub ignored_prefixes: Vec<String>,
    pub agent_tgid: u32,
    pub btf_path: PathBuf,
    pub tracefs: PathBuf,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Full,
            ring_buffer_bytes: 4 << 20,
            wakeup_bytes: 64 << 10,
            dedup_window_ns: 1_000_000_000,
            ignored_prefixes: Vec::new(),
            agent_tgid: std::process::id(),
            btf_path: PathBuf::from("/sys/kernel/btf/vmlinux"),
            tracefs: PathBuf::from("/sys/kernel/tracing"),
        }
    }
}

/// Which programs attached, and why the others did not.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AttachReport {
    pub attached: Vec<String>,
    /// Program → the kernel's reason.
    pub failed: BTreeMap<String, String>,
    /// Programs whose syscall this kernel does not have (newer than it, or compiled out):
    /// nothing to watch, so not a failure.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub absent: BTreeMap<String, String>,
}

/// Kernel-side counters, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KindCounters {
    pub seen: u64,
    pub dropped: u64,
    pub filtered: u64,
    pub errors: u64,
}

pub struct Probes {
    // Keeps programs and links alive; dropping it detaches everything.
    ebpf: Ebpf,
    counters: PerCpuArray<MapData, u64>,
    pub report: AttachReport,
    /// The syscall recorder's link while some workload learns.
    learn_link: Option<aya::programs::tp_btf::BtfTracePointLinkId>,
    /// The connect programs' links, by enforced cgroup.
    connect_links: enforce::ConnectLinks,
    /// The isolation programs' links, by isolated cgroup.
    isolate_links: contain::IsolateLinks,
    /// The enforcement backend probed at load: BPF LSM attached, or why not.
    pub lsm: Result<(), String>,
    /// Self-protection's LSM programs (refusing signals and ptrace): attached, or why not.
    pub guard_lsm: Result<(), String>,
    /// `lsm/file_open` (file allow-lists of enforced workloads): attached, or why not.
    pub file_lsm: Result<(), String>,
}

/// A map error, with the map's name.
fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> ProbeError {
    move |e| ProbeError::Map {
        name,
        reason: e.to_string(),
    }
}

fn missing_map(name: &'static str) -> ProbeError {
    ProbeError::Map {
        name,
        reason: "missing from the object".into(),
    }
}

impl Probes {
    /// A map of the loaded object, by name.
    fn map_named(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, ProbeError> {
        self.ebpf.map_mut(name).ok_or_else(|| missing_map(name))
    }

    /// A hash map of the loaded object, typed.
    fn hash_map<K: aya::Pod, V: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<aya::maps::HashMap<&mut MapData, K, V>, ProbeError> {
        aya::maps::HashMap::try_from(self.map_named(name)?).map_err(map_err(name))
    }

    /// Make the hash map `name` hold exactly `want`: new entries first, stale ones removed
    /// after, so a reader never meets a half-emptied map.
    fn sync_map<K, V>(
        &mut self,
        name: &'static str,
        want: &std::collections::HashMap<K, V>,
    ) -> Result<(), ProbeError>
    where
        K: aya::Pod + Eq + std::hash::Hash,
        V: aya::Pod,
    {
        let mut map = self.hash_map::<K, V>(name)?;
        for (k, v) in want {
            map.insert(k, v, 0).map_err(map_err(name))?;
        }
        let stale: Vec<K> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|k| !want.contains_key(k))
            .collect();
        for k in stale {
            let _ = map.remove(&k);
        }
        Ok(())
    }
}

/// Where a program attaches, derived from its name.
enum Hook {
    Syscall {
        tracepoint: String,
    },
    Btf {
        target: &'static str,
    },
    /// Loaded at start, attached only when needed.
    OnDemand,
    /// BPF LSM: attached when the kernel loads it (the enforcement backend probe).
    Lsm {
        hook: &'static str,
    },
    /// Self-protection's LSM programs: attached together, apart from enforcement's.
    GuardLsm,
    /// A classic tracepoint outside `syscalls`.
    Event {
        category: &'static str,
        name: &'static str,
    },
}

fn hook_for(name: &str) -> Option<Hook> {
    if name == sensor_common::PROG_GUARD_TASK_KILL
        || name == sensor_common::PROG_GUARD_PTRACE
        || name == sensor_common::PROG_LSM_FILE
    {
        return Some(Hook::GuardLsm);
    }
    if name == sensor_common::PROG_GUARD_SIGNAL {
        return Some(Hook::Event {
            category: "signal",
            name: "signal_generate",
        });
    }
    if name == sensor_common::PROG_LSM_EXEC {
        return Some(Hook::Lsm {
            hook: "bprm_check_security",
        });
    }
    if name == sensor_common::PROG_LSM_CONNECT {
        return Some(Hook::Lsm {
            hook: "socket_connect",
        });
    }
    if name == sensor_common::PROG_LEARN_SYSCALLS
        || name == sensor_common::PROG_CONNECT4
        || name == sensor_common::PROG_CONNECT6
        || name == sensor_common::PROG_ISOLATE_CONNECT4
        || name == sensor_common::PROG_ISOLATE_CONNECT6
        || name == sensor_common::PROG_ISOLATE_INGRESS
        || name == sensor_common::PROG_ISOLATE_EGRESS
    {
        return Some(Hook::OnDemand);
    }
    if let Some(s) = name.strip_prefix("enter_") {
        return Some(Hook::Syscall {
            tracepoint: format!("sys_enter_{s}"),
        });
    }
    if let Some(s) = name.strip_prefix("exit_") {
        return Some(Hook::Syscall {
            tracepoint: format!("sys_exit_{s}"),
        });
    }
    match name {
        "sched_process_exec" => Some(Hook::Btf {
            target: "sched_process_exec",
        }),
        "sched_process_fork" => Some(Hook::Btf {
            target: "sched_process_fork",
        }),
        "sched_process_exit" => Some(Hook::Btf {
            target: "sched_process_exit",
        }),
        _ => None,
    }
}

/// The programs read syscall arguments as 8-byte slots from offset 16 and the return value at
/// offset 16; check this kernel's tracepoint formats agree before trusting a byte of it.
fn check_tracepoint_abi(tracefs: &Path) -> Result<(), ProbeError> {
    let check = |event: &str, field: &str| -> Result<bool, ProbeError> {
        let path = tracefs.join(format!("events/syscalls/{event}/format"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(false);
        };
        let line = text
            .lines()
            .find(|l| l.contains(&format!(" {field};")))
            .ok_or_else(|| ProbeError::TracepointAbi(format!("{event} has no field {field}")))?;
        if !line.contains("offset:16;") || !line.contains("size:8;") {
            return Err(ProbeError::TracepointAbi(format!(
                "{event}: {}",
                line.trim()
            )));
        }
        Ok(true)
    };
    let checked = check("sys_enter_openat", "dfd")? | check("sys_exit_openat", "ret")?;
    if !checked {
        tracing::warn!(tracefs = %tracefs.display(), "tracefs not readable; syscall tracepoint layout not verified");
    }
    Ok(())
}

/// Tracepoints attach through tracefs ids; mount it when the host has not (some minimal
/// hosts and containers leave it unmounted).
pub fn ensure_tracefs(path: &Path) -> Result<(), ProbeError> {
    let populated = std::fs::read_dir(path.join("events")).is_ok_and(|mut d| d.next().is_some());
    if populated {
        return Ok(());
    }
    nix::mount::mount(
        Some("tracefs"),
        path,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| ProbeError::Tracefs {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    tracing::info!(path = %path.display(), "mounted tracefs");
    Ok(())
}

fn short_reason(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    // Verifier logs can be megabytes; the head says what failed.
    if s.len() > 600 {
        let mut cut = 600;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" …");
    }
    s
}

impl Probes {
    /// Load and attach. Returns the probes and the ring buffer to read events from.
    pub fn load(opts: &ProbeOptions) -> Result<(Probes, RingBuf<MapData>), ProbeError> {
        let page = 4096u32;
        if !opts.ring_buffer_bytes.is_power_of_two() || !opts.ring_buffer_bytes.is_multiple_of(page)
        {
            return Err(ProbeError::RingSize(opts.ring_buffer_bytes));
        }
        ensure_tracefs(&opts.tracefs)?;
        check_tracepoint_abi(&opts.tracefs)?;
        let btf = btf::Btf::from_file(&opts.btf_path)?;
        let offsets = btf.kernel_offsets()?;
        let aya_btf = aya::Btf::parse_file(&opts.btf_path, aya::Endianness::default())
            .map_err(|e| ProbeError::AyaBtf(e.to_string()))?;

        let config = Config {
            offsets,
            mode: match opts.mode {
                Mode::Full => MODE_FULL,
                Mode::Empty => MODE_EMPTY,
            },
            agent_tgid: opts.agent_tgid,
            dedup_window_ns: opts.dedup_window_ns,
            use_ignored_prefixes: u32::from(!opts.ignored_prefixes.is_empty()),
            wakeup_bytes: opts.wakeup_bytes,
        };
        let mut ebpf = EbpfLoader::new()
            .btf(Some(&aya_btf))
            .override_global(GLOBAL_CONFIG, &config, true)
            .map_max_entries(MAP_EVENTS, opts.ring_buffer_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| ProbeError::Load(short_reason(&e)))?;

        Self::fill_prefixes(&mut ebpf, &opts.ignored_prefixes)?;

        let mut report = AttachReport::default();
        // Ok once every LSM program attached; the first refusal otherwise.
        let mut lsm: Result<(), String> = Ok(());
        let mut lsm_seen = 0;
        for (name, program) in ebpf.programs_mut() {
            let result = match (hook_for(name), program) {
                (Some(Hook::Syscall { tracepoint }), Program::TracePoint(_))
                    if opts.tracefs.join("events/syscalls").is_dir()
                        && !opts
                            .tracefs
                            .join("events/syscalls")
                            .join(&tracepoint)
                            .is_dir() =>
                {
                    report.absent.insert(
                        name.to_owned(),
                        format!("this kernel has no syscalls/{tracepoint} tracepoint (the syscall is newer than the kernel, or compiled out)"),
                    );
                    continue;
                }
                (Some(Hook::Syscall { tracepoint }), Program::TracePoint(p)) => p
                    .load()
                    .and_then(|()| p.attach("syscalls", &tracepoint))
                    .map(|_| ())
                    .map_err(|e| short_reason(&e)),
                (Some(Hook::Btf { target }), Program::BtfTracePoint(p)) => {
                    Self::attach_btf(p, target, &aya_btf)
                }
                (Some(Hook::Event { category, name }), Program::TracePoint(p)) => {
                    // Its fields are read at fixed offsets: refuse a layout that differs.
                    guard::check_signal_abi(&opts.tracefs).and_then(|()| {
                        p.load()
                            .and_then(|()| p.attach(category, name))
                            .map(|_| ())
                            .map_err(|e| short_reason(&e))
                    })
                }
                // After this loop: attached together, and only as a pair.
                (Some(Hook::GuardLsm), _) => continue,
                (Some(Hook::Lsm { hook }), Program::Lsm(p)) => {
                    lsm_seen += 1;
                    // Not in the attach report: a refusal only selects the fallback backend.
                    if lsm.is_ok()
                        && let Err(e) = p.load(hook, &aya_btf).and_then(|()| p.attach().map(|_| ()))
                    {
                        lsm = Err(format!("{name}: {}", short_reason(&e)));
                    }
                    continue;
                }
                (Some(Hook::OnDemand), Program::CgroupSockAddr(p)) => {
                    // Attached to enforced or isolated cgroups only.
                    if let Err(e) = p.load() {
                        tracing::warn!(program = name, reason = %short_reason(&e), "connect enforcement unavailable");
                    }
                    continue;
                }
                (Some(Hook::OnDemand), Program::CgroupSkb(p)) => {
                    // Attached to isolated cgroups only.
                    if let Err(e) = p.load() {
                        tracing::warn!(program = name, reason = %short_reason(&e), "network isolation unavailable");
                    }
                    continue;
                }
                (Some(Hook::OnDemand), Program::BtfTracePoint(p)) => {
                    // Not part of the attach report: it attaches while workloads learn.
                    if let Err(e) = p.load("sys_enter", &aya_btf) {
                        tracing::warn!(program = name, reason = %short_reason(&e), "syscall learning unavailable");
                    }
                    continue;
                }
                _ => Err("no hook known for this program".to_owned()),
            };
            match result {
                Ok(()) => report.attached.push(name.to_owned()),
                Err(reason) => {
                    tracing::warn!(program = name, %reason, "probe not attached");
                    report.failed.insert(name.to_owned(), reason);
                }
            }
        }
        report.attached.sort();
        if lsm_seen == 0 {
            lsm = Err("no LSM programs in the object".into());
        }
        // Only where enforcement's LSM programs attached: the same kernel support.
        let guard_lsm = match &lsm {
            Ok(()) => Self::attach_guard_lsm(&mut ebpf, &aya_btf),
            Err(reason) => Err(reason.clone()),
        };
        // Its own result: exec and connect enforcement stand without it.
        let file_lsm = match &lsm {
            Ok(()) => enforce::attach_file_lsm(&mut ebpf, &aya_btf),
            Err(reason) => Err(reason.clone()),
        };
        if let Err(reason) = &file_lsm {
            tracing::info!(%reason, "file-open enforcement unavailable (sensor exec still confines files with Landlock)");
        }
        match &lsm {
            Ok(()) => {
                let map = ebpf
                    .map_mut(sensor_common::MAP_ENFORCE_BACKEND)
                    .ok_or_else(|| missing_map(sensor_common::MAP_ENFORCE_BACKEND))?;
                let mut backend: aya::maps::Array<&mut MapData, u32> =
                    aya::maps::Array::try_from(map)
                        .map_err(map_err(sensor_common::MAP_ENFORCE_BACKEND))?;
                backend
                    .set(0, 1, 0)
                    .map_err(map_err(sensor_common::MAP_ENFORCE_BACKEND))?;
                tracing::info!("enforcement backend: BPF LSM");
            }
            Err(reason) => {
                tracing::info!(%reason, "BPF LSM unavailable; enforcement uses the exec tracepoint and cgroup connect programs");
            }
        }
        if report.attached.is_empty() {
            let first = report.failed.values().next().cloned().unwrap_or_default();
            return Err(ProbeError::NothingAttached(first));
        }

        let counters = ebpf
            .take_map(MAP_COUNTERS)
            .ok_or_else(|| missing_map(MAP_COUNTERS))
            .and_then(|m| PerCpuArray::try_from(m).map_err(map_err(MAP_COUNTERS)))?;
        let ring = ebpf
            .take_map(MAP_EVENTS)
            .ok_or_else(|| missing_map(MAP_EVENTS))
            .and_then(|m| RingBuf::try_from(m).map_err(map_err(MAP_EVENTS)))?;
        Ok((
            Probes {
                ebpf,
                counters,
                report,
                learn_link: None,
                connect_links: enforce::ConnectLinks::default(),
                isolate_links: contain::IsolateLinks::default(),
                lsm,
                guard_lsm,
                file_lsm,
            },
            ring,
        ))
    }

    fn attach_btf(p: &mut BtfTracePoint, target: &str, btf: &aya::Btf) -> Result<(), String> {
        p.load(target, btf).map_err(|e| short_reason(&e))?;
        p.attach().map(|_| ()).map_err(|e| short_reason(&e))
    }

    fn fill_prefixes(ebpf: &mut Ebpf, prefixes: &[String]) -> Result<(), ProbeError> {
        let map = ebpf
            .map_mut(MAP_IGNORED_PREFIXES)
            .ok_or_else(|| missing_map(MAP_IGNORED_PREFIXES))?;
        let mut trie: LpmTrie<&mut MapData, [u8; PREFIX_KEY_LEN], u8> =
            LpmTrie::try_from(map).map_err(map_err(MAP_IGNORED_PREFIXES))?;
        for p in prefixes {
            let bytes = p.as_bytes();
            if bytes.len() > PREFIX_KEY_LEN {
                return Err(ProbeError::PrefixTooLong(p.clone()));
            }
            let mut data = [0u8; PREFIX_KEY_LEN];
            data[..bytes.len()].copy_from_slice(bytes);
            trie.insert(&Key::new((bytes.len() * 8) as u32, data), 1, 0)
                .map_err(map_err(MAP_IGNORED_PREFIXES))?;
        }
        Ok(())
    }

    /// Replace the kernel's IP indicator tries with `set`'s (old entries removed first, so a
    /// reload never leaves a withdrawn indicator behind).
    pub fn set_ioc(&mut self, set: &crate::ioc::IocSet) -> Result<(), ProbeError> {
        use std::net::IpAddr;
        let v4 = set.ips.iter().filter(|i| i.addr.is_ipv4()).count();
        let v6 = set.ips.len() - v4;
        if v4.max(v6) > sensor_common::IOC_MAX_ENTRIES as usize {
            return Err(ProbeError::IocCapacity(v4.max(v6)));
        }
        fn refill<const N: usize>(
            ebpf: &mut Ebpf,
            name: &'static str,
            entries: impl Iterator<Item = ([u8; N], u32, u32)>,
        ) -> Result<(), ProbeError> {
            let map_err = |e: aya::maps::MapError| ProbeError::Map {
                name,
                reason: e.to_string(),
            };
            let map = ebpf.map_mut(name).ok_or_else(|| ProbeError::Map {
                name,
                reason: "missing from the object".into(),
            })?;
            let mut trie: LpmTrie<&mut MapData, [u8; N], u32> =
                LpmTrie::try_from(map).map_err(map_err)?;
            let old: Vec<Key<[u8; N]>> = trie.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = trie.remove(&k);
            }
            for (data, prefix, idx) in entries {
                trie.insert(&Key::new(prefix, data), idx, 0)
                    .map_err(map_err)?;
            }
            Ok(())
        }
        refill(
            &mut self.ebpf,
            sensor_common::MAP_IOC_V4,
            set.ips
                .iter()
                .enumerate()
                .filter_map(|(i, ind)| match ind.addr {
                    IpAddr::V4(a) => Some((a.octets(), ind.prefix as u32, i as u32)),
                    IpAddr::V6(_) => None,
                }),
        )?;
        refill(
            &mut self.ebpf,
            sensor_common::MAP_IOC_V6,
            set.ips
                .iter()
                .enumerate()
                .filter_map(|(i, ind)| match ind.addr {
                    IpAddr::V6(a) => Some((a.octets(), ind.prefix as u32, i as u32)),
                    IpAddr::V4(_) => None,
                }),
        )
    }

    /// Kernel counters by kind, summed over CPUs.
    pub fn counters(&self) -> BTreeMap<Kind, KindCounters> {
        let sum = |kind: Kind, slot: u32| -> u64 {
            self.counters
                .get(&counter_index(kind.abi(), slot), 0)
                .map(|v| v.iter().sum())
                .unwrap_or(0)
        };
        Kind::ALL
            .iter()
            .map(|&k| {
                (
                    k,
                    KindCounters {
                        seen: sum(k, CTR_SEEN),
                        dropped: sum(k, CTR_DROPPED),
                        filtered: sum(k, CTR_FILTERED),
                        errors: sum(k, CTR_ERRORS),
                    },
                )
            })
            .collect()
    }
}

impl PartialOrd for Kind {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Kind {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.abi().cmp(&other.abi())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_names_map_to_hooks() {
        assert!(matches!(
            hook_for("enter_openat"),
            Some(Hook::Syscall { tracepoint }) if tracepoint == "sys_enter_openat"
        ));
        assert!(matches!(
            hook_for("exit_umount"),
            Some(Hook::Syscall { tracepoint }) if tracepoint == "sys_exit_umount"
        ));
        assert!(matches!(
            hook_for("sched_process_exec"),
            Some(Hook::Btf { .. })
        ));
        assert!(hook_for("something_else").is_none());
    }

    #[test]
    fn tracepoint_abi_check_accepts_the_standard_layout_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let write = |event: &str, body: &str| {
            let d = dir.path().join(format!("events/syscalls/{event}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("format"), body).unwrap();
        };
        write(
            "sys_enter_openat",
            "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n",
        );
        write(
            "sys_exit_openat",
            "\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n",
        );
        check_tracepoint_abi(dir.path()).unwrap();
        write(
            "sys_exit_openat",
            "\tfield:long ret;\toffset:24;\tsize:8;\tsigned:1;\n",
        );
        assert!(matches!(
            check_tracepoint_abi(dir.path()),
            Err(ProbeError::TracepointAbi(_))
        ));
    }
}
