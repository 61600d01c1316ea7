//! The baseline engine: attributes each event to its workload, learns while the workload is
//! learning, scores deviations while it is monitoring or frozen, and moves workloads between
//! modes. Plain synchronous code over owned state, driven by event time (so a replay learns
//! and scores exactly as the live agent would).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::{
    alert::Alert,
    config::BaselineConfig,
    dlp::Classification,
    event::{Event, Kind},
};

use super::{
    generalize,
    model::{Baseline, Deviation, Enforcement, FeatureSet, Mode, Model, Seen, Stage},
    score::{self, AnomalyType, Component},
    workload::{Assigned, Assignments, Attribution, WorkloadId, WorkloadKind, glob},
};

/// Deviations remembered per baseline.
const MAX_DEVIATIONS: usize = 256;
/// Remembered alerted values per workload (for the re-alert window).
const MAX_ALERTED: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Executable,
    Edge,
    Command,
    FileRead,
    FileWrite,
    Peer,
    Port,
    Listen,
    Privilege,
    User,
    ExeId,
}

impl Feature {
    pub fn name(self) -> &'static str {
        match self {
            Feature::Executable => "executables",
            Feature::Edge => "edges",
            Feature::Command => "commands",
            Feature::FileRead => "file_read",
            Feature::FileWrite => "file_write",
            Feature::Peer => "peers",
            Feature::Port => "ports",
            Feature::Listen => "listen",
            Feature::Privilege => "privileges",
            Feature::User => "users",
            Feature::ExeId => "exe_ids",
        }
    }

    fn set(self, m: &Model) -> &FeatureSet {
        match self {
            Feature::Executable => &m.executables,
            Feature::Edge => &m.edges,
            Feature::Command => &m.commands,
            Feature::FileRead => &m.file_read,
            Feature::FileWrite => &m.file_write,
            Feature::Peer => &m.peers,
            Feature::Port => &m.ports,
            Feature::Listen => &m.listen,
            Feature::Privilege => &m.privileges,
            Feature::User => &m.users,
            Feature::ExeId => &m.exe_ids,
        }
    }

    fn set_mut(self, m: &mut Model) -> &mut FeatureSet {
        match self {
            Feature::Executable => &mut m.executables,
            Feature::Edge => &mut m.edges,
            Feature::Command => &mut m.commands,
            Feature::FileRead => &mut m.file_read,
            Feature::FileWrite => &mut m.file_write,
            Feature::Peer => &mut m.peers,
            Feature::Port => &mut m.ports,
            Feature::Listen => &mut m.listen,
            Feature::Privilege => &mut m.privileges,
            Feature::User => &mut m.users,
            Feature::ExeId => &mut m.exe_ids,
        }
    }

    /// Observations of the family this feature belongs to.
    fn observations(self, m: &Model) -> u64 {
        match self {
            Feature::Executable
            | Feature::Edge
            | Feature::Command
            | Feature::User
            | Feature::ExeId => m.counts.exec,
            Feature::FileRead | Feature::FileWrite => m.counts.file,
            Feature::Peer | Feature::Port | Feature::Listen => m.counts.network,
            // Privilege changes are rare by nature: judge them against everything learned.
            Feature::Privilege => m.counts.events,
        }
    }
}

/// Counters for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EngineStats {
    /// Events attributed to a tracked workload.
    pub events: u64,
    /// Events of interactive sessions (not learned).
    pub sessions: u64,
    /// Events of ignored workloads, or of unknown ones while `auto_learn` is off.
    pub untracked: u64,
    pub anomalies: u64,
    /// Deviations scored below the `low` threshold (counted, not alerted).
    pub below_threshold: u64,
    /// Deviations already alerted inside the re-alert window.
    pub suppressed: u64,
    /// Learning workloads dropped to make room (`max_workloads`).
    pub evicted: u64,
    /// Workloads that finished learning by the stability criterion.
    pub stabilized: u64,
    /// Relearns after the binary changed.
    pub relearned: u64,
}

/// Per-workload state that is not part of the baseline.
#[derive(Debug, Default)]
struct Live {
    /// Current minute (unix / 60) and its counts: exec, open, connect.
    minute: i64,
    counts: [u64; 3],
    rate_alerted: [bool; 3],
    /// (feature, value) → unix time last alerted.
    alerted: HashMap<(&'static str, String), i64>,
    last_active: i64,
    cgroups: BTreeSet<u64>,
    /// Their paths below the cgroup v2 root, where known (enforcement attaches there).
    cgroup_paths: std::collections::BTreeMap<u64, String>,
}

/// A learning workload as the kernel's syscall recorder sees it: its cgroups (containers,
/// units) or processes and executable (programs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LearnTarget {
    pub workload: String,
    pub cgroups: Vec<u64>,
    pub pids: Vec<u32>,
    /// (device, inode) of the program's executable.
    pub exe: Option<(u32, u64)>,
}

/// What a store has to write after some events: changed baselines, archived versions and
/// removed workloads.
#[derive(Debug, Default)]
pub struct Changes {
    pub changed: Vec<Baseline>,
    pub archived: Vec<Baseline>,
    pub removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.archived.is_empty() && self.removed.is_empty()
    }
}

pub struct Engine {
    cfg: BaselineConfig,
    attr: Attribution,
    assignments: Assignments,
    workloads: HashMap<String, Baseline>,
    live: HashMap<String, Live>,
    /// cgroup id → the workload last seen in it.
    cgroup_owner: HashMap<u64, String>,
    /// The kernel's enforcement counters per workload.
    kernel_counts: HashMap<String, crate::probes::enforce::EnforceCounts>,
    /// File opens are part of profiles (the kernel enforces them: `lsm/file_open`).
    file_enforcement: bool,
    dirty: HashSet<String>,
    archived: Vec<Baseline>,
    removed: Vec<String>,
    /// (boot_ns, unix secs) of the last parsed timestamp: most events derive their time from
    /// it without parsing.
    time_anchor: Option<(u64, i64)>,
    /// The newest event time seen (unix seconds).
    latest: i64,
    pub stats: EngineStats,
}

const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "busybox", "tcsh", "csh",
];
const INTERPRETERS: &[&str] = &[
    "python", "python2", "python3", "perl", "ruby", "php", "node", "lua", "nc", "ncat", "netcat",
    "socat", "telnet", "awk", "gawk",
];

impl Engine {
    pub fn new(cfg: BaselineConfig) -> Self {
        let attr = Attribution::new(&cfg.launchers, &cfg.boundaries, &cfg.roots);
        Self {
            cfg,
            attr,
            assignments: Assignments::default(),
            workloads: HashMap::new(),
            live: HashMap::new(),
            cgroup_owner: HashMap::new(),
            kernel_counts: HashMap::new(),
            file_enforcement: false,
            dirty: HashSet::new(),
            archived: Vec::new(),
            removed: Vec::new(),
            time_anchor: None,
            latest: 0,
            stats: EngineStats::default(),
        }
    }

    pub fn config(&self) -> &BaselineConfig {
        &self.cfg
    }

    /// Baselines read from the store at start.
    pub fn load(&mut self, baselines: impl IntoIterator<Item = Baseline>) {
        for b in baselines {
            self.workloads.insert(b.workload.key(), b);
        }
    }

    pub fn len(&self) -> usize {
        self.workloads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.workloads.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Baseline> {
        self.workloads.get(key)
    }

    pub fn baselines(&self) -> impl Iterator<Item = &Baseline> {
        self.workloads.values()
    }

    pub fn tracked_processes(&self) -> usize {
        self.assignments.len()
    }

    /// Everything the store has not seen yet.
    pub fn take_changes(&mut self) -> Changes {
        let changed = self
            .dirty
            .drain()
            .filter_map(|k| self.workloads.get(&k).cloned())
            .collect();
        Changes {
            changed,
            archived: std::mem::take(&mut self.archived),
            removed: std::mem::take(&mut self.removed),
        }
    }

    /// The newest event time seen: a replay's "now".
    pub fn event_clock(&self) -> Option<i64> {
        (self.latest > 0).then_some(self.latest)
    }

    /// Changes a store failed to write: kept for the next save.
    pub fn restore_changes(&mut self, changes: Changes) {
        for b in changes.changed {
            self.dirty.insert(b.workload.key());
        }
        self.archived.extend(changes.archived);
        self.removed.extend(changes.removed);
    }

    fn unix_time(&mut self, ev: &Event) -> i64 {
        const REANCHOR_NS: u64 = 60_000_000_000;
        if let Some((b, u)) = self.time_anchor
            && ev.event.boot_ns >= b
            && ev.event.boot_ns - b < REANCHOR_NS
        {
            return u + ((ev.event.boot_ns - b) / 1_000_000_000) as i64;
        }
        let parsed = time::OffsetDateTime::parse(
            &ev.timestamp,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| t.unix_timestamp())
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc().unix_timestamp());
        self.time_anchor = Some((ev.event.boot_ns, parsed));
        parsed
    }

    /// One event: learn it or score it. Alerts go to `out`.
    pub fn observe(&mut self, ev: &Event, out: &mut Vec<Alert>) {
        if !self.cfg.enabled {
            return;
        }
        let assigned = self.assignments.observe(&self.attr, ev);
        let Assigned::Workload(id) = assigned else {
            self.stats.sessions += 1;
            return;
        };
        if matches!(ev.event.kind, Kind::Exit | Kind::Fork) {
            // Lifecycle only: no behaviour to learn or score.
            return;
        }
        let key = id.key();
        if self.cfg.ignore.iter().any(|g| glob(g, &key)) {
            self.stats.untracked += 1;
            return;
        }
        let now = self.unix_time(ev);
        self.latest = self.latest.max(now);
        if !self.workloads.contains_key(&key) {
            if !self.cfg.auto_learn {
                self.stats.untracked += 1;
                return;
            }
            self.make_room();
            self.workloads
                .insert(key.clone(), Baseline::new((*id).clone(), now));
        }
        self.stats.events += 1;
        if let Some(a) = self.check_fingerprint(&key, ev, now) {
            out.push(a);
        }
        let features = features(ev);
        self.own_cgroup(&key, ev.cgroup.id, ev.cgroup.path.as_deref());
        let live = self.live.entry(key.clone()).or_default();
        live.last_active = now;
        let Some(b) = self.workloads.get_mut(&key) else {
            return;
        };
        match b.mode {
            Mode::Learning => {
                learn(&self.cfg, b, live, ev, &features, now);
                self.dirty.insert(key.clone());
                if stable(&self.cfg, b, now) {
                    b.mode = Mode::Monitoring;
                    self.stats.stabilized += 1;
                    tracing::info!(workload = %key, events = b.progress.events, "baseline stable; monitoring");
                }
            }
            Mode::Monitoring | Mode::Frozen => {
                let comps = score_event(&self.cfg, b, live, ev, &features, now);
                if b.enforcement.is_some()
                    && let Some(a) =
                        check_profile(&self.cfg, b, ev, &features, self.file_enforcement, now)
                {
                    self.dirty.insert(key.clone());
                    out.push(a);
                }
                self.finish_components(&key, comps, ev, now, out);
            }
        }
    }

    fn finish_components(
        &mut self,
        key: &str,
        comps: Vec<Component>,
        ev: &Event,
        now: i64,
        out: &mut Vec<Alert>,
    ) {
        if comps.is_empty() {
            return;
        }
        let (Some(b), Some(live)) = (self.workloads.get_mut(key), self.live.get_mut(key)) else {
            return;
        };
        let realert = self.cfg.realert_secs as i64;
        let mut fresh = Vec::new();
        for c in comps {
            let k = (c.feature, c.value.clone());
            match live.alerted.get(&k) {
                Some(&t) if now - t < realert => {
                    self.stats.suppressed += 1;
                    record_deviation(b, &c, now);
                }
                _ => fresh.push(c),
            }
        }
        if fresh.is_empty() {
            return;
        }
        if live.alerted.len() >= MAX_ALERTED {
            live.alerted.clear();
        }
        for c in &fresh {
            live.alerted.insert((c.feature, c.value.clone()), now);
            record_deviation(b, c, now);
        }
        self.dirty.insert(key.to_owned());
        match score::alert(key, b.mode.as_str(), b.version, fresh, &self.cfg.severity) {
            Some(mut a) => {
                a.time = ev.timestamp.clone();
                self.stats.anomalies += 1;
                out.push(crate::pipeline::alert_context(a, ev));
            }
            None => self.stats.below_threshold += 1,
        }
    }

    /// Wall-clock housekeeping: workloads that went quiet while learning become stable by
    /// time alone.
    pub fn tick(&mut self, now: i64) {
        for (key, b) in self.workloads.iter_mut() {
            if b.mode == Mode::Learning && stable(&self.cfg, b, now) {
                b.mode = Mode::Monitoring;
                self.stats.stabilized += 1;
                self.dirty.insert(key.clone());
                tracing::info!(workload = %key, "baseline stable; monitoring");
            }
        }
    }

    /// A cgroup belongs to one workload (the last one seen in it): a container first seen
    /// before its runtime wrote its name moves to its named workload, and the kernel's
    /// syscall recorder must know which one to credit.
    fn own_cgroup(&mut self, key: &str, cgroup: u64, path: Option<&str>) {
        if cgroup == 0 {
            return;
        }
        match self.cgroup_owner.get(&cgroup) {
            Some(k) if k == key => return,
            Some(old) => {
                if let Some(l) = self.live.get_mut(old) {
                    l.cgroups.remove(&cgroup);
                    l.cgroup_paths.remove(&cgroup);
                }
            }
            None => {}
        }
        if self.cgroup_owner.len() >= 65_536 {
            self.cgroup_owner.clear();
        }
        self.cgroup_owner.insert(cgroup, key.to_owned());
        let live = self.live.entry(key.to_owned()).or_default();
        if live.cgroups.len() < 64 {
            live.cgroups.insert(cgroup);
            if let Some(p) = path {
                live.cgroup_paths.insert(cgroup, p.to_owned());
            }
        }
    }

    /// At the limit, drop the least recently active learning workload (learned and frozen
    /// baselines are never dropped to make room).
    fn make_room(&mut self) {
        if self.workloads.len() < self.cfg.max_workloads {
            return;
        }
        let victim = self
            .workloads
            .iter()
            .filter(|(_, b)| b.mode == Mode::Learning)
            .min_by_key(|(k, b)| {
                self.live
                    .get(*k)
                    .map_or(b.last_event, |l| l.last_active.max(b.last_event))
            })
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.workloads.remove(&k);
            self.live.remove(&k);
            self.dirty.remove(&k);
            self.removed.push(k);
            self.stats.evicted += 1;
        }
    }

    /// An executable workload whose program file changed (another inode) starts a new
    /// version: the old one is archived, the new one learns. Announced with an alert, since
    /// a replaced binary is also what an attacker's implant looks like.
    fn check_fingerprint(&mut self, key: &str, ev: &Event, now: i64) -> Option<Alert> {
        if ev.event.kind != Kind::Exec {
            return None;
        }
        let b = self.workloads.get_mut(key)?;
        // The program file (an interpreter's name is followed by its script).
        let program = b.workload.name.split(' ').next().unwrap_or_default();
        if b.workload.kind != WorkloadKind::Exe || ev.process.executable.as_deref() != Some(program)
        {
            return None;
        }
        let exe = ev.process.exe.as_ref()?;
        let fp = exe_id(exe);
        match &b.fingerprint {
            None => {
                b.fingerprint = Some(fp);
                self.dirty.insert(key.to_owned());
                None
            }
            Some(old) if *old == fp => None,
            Some(old) => {
                let old = old.clone();
                let previous_mode = b.mode;
                let mut fresh = Baseline::new(b.workload.clone(), now);
                fresh.version = b.version + 1;
                fresh.fingerprint = Some(fp.clone());
                let archived = std::mem::replace(b, fresh);
                let version = b.version;
                self.archived.push(archived);
                self.live.remove(key);
                self.dirty.insert(key.to_owned());
                self.stats.relearned += 1;
                let a = Alert::new(
                    "sensor.baseline.relearn",
                    "Workload binary changed; baseline relearning",
                    crate::alert::Severity::Low,
                    format!(
                        "{key}: the executable changed ({old} → {fp}); version {} archived ({}), version {version} is learning",
                        version - 1,
                        previous_mode.as_str()
                    ),
                )
                .with_tag("baseline")
                .with_field("workload", key)
                .with_field("baseline.version", version)
                .with_field("fingerprint.old", old)
                .with_field("fingerprint.new", fp);
                let mut a = crate::pipeline::alert_context(a, ev);
                a.time = ev.timestamp.clone();
                Some(a)
            }
        }
    }

    /// Start or continue learning (creating the workload if it is new). With `for_secs`,
    /// learning lasts at least that long.
    pub fn learn(&mut self, key: &str, for_secs: Option<u64>, now: i64) -> Result<(), String> {
        let id = WorkloadId::parse(key).ok_or_else(|| bad_key(key))?;
        let b = self
            .workloads
            .entry(key.to_owned())
            .or_insert_with(|| Baseline::new(id, now));
        b.mode = Mode::Learning;
        b.learn_until = for_secs.map(|s| now + s as i64);
        b.progress.last_novel = now;
        b.progress.events_since_novel = 0;
        self.dirty.insert(key.to_owned());
        Ok(())
    }

    pub fn freeze(&mut self, key: &str) -> Result<(), String> {
        let b = self.workloads.get_mut(key).ok_or_else(|| unknown(key))?;
        b.mode = Mode::Frozen;
        b.learn_until = None;
        self.dirty.insert(key.to_owned());
        Ok(())
    }

    /// Archive the current version and learn from scratch.
    pub fn reset(&mut self, key: &str, now: i64) -> Result<u32, String> {
        let b = self.workloads.get_mut(key).ok_or_else(|| unknown(key))?;
        let mut fresh = Baseline::new(b.workload.clone(), now);
        fresh.version = b.version + 1;
        let old = std::mem::replace(b, fresh);
        let v = b.version;
        self.archived.push(old);
        self.live.remove(key);
        self.dirty.insert(key.to_owned());
        Ok(v)
    }

    /// An imported (reviewed, possibly edited) baseline replaces the current one, which is
    /// archived. It takes effect frozen unless it says it is learning.
    pub fn import(&mut self, mut b: Baseline) -> Result<(String, u32), String> {
        let key = b.workload.key();
        if b.mode == Mode::Monitoring {
            b.mode = Mode::Frozen;
        }
        if let Some(cur) = self.workloads.remove(&key) {
            b.version = b.version.max(cur.version + 1);
            self.archived.push(cur);
        }
        let v = b.version;
        self.workloads.insert(key.clone(), b);
        self.live.remove(&key);
        self.dirty.insert(key.clone());
        Ok((key, v))
    }

    /// Learning workloads, as the kernel's syscall recorder enrols them.
    pub fn learning_targets(&self) -> Vec<LearnTarget> {
        let mut pids = self.assignments.by_workload();
        self.workloads
            .iter()
            .filter(|(_, b)| b.mode == Mode::Learning)
            .map(|(key, b)| {
                let mut t = LearnTarget {
                    workload: key.clone(),
                    ..LearnTarget::default()
                };
                match b.workload.kind {
                    WorkloadKind::Container | WorkloadKind::Unit => {
                        if let Some(l) = self.live.get(key) {
                            t.cgroups = l.cgroups.iter().copied().collect();
                        }
                    }
                    WorkloadKind::Exe => {
                        t.pids = pids.remove(key).unwrap_or_default();
                        t.exe = b.fingerprint.as_deref().and_then(parse_exe_id);
                    }
                }
                t
            })
            .collect()
    }

    /// Move a frozen workload's profile to shadow or enforce, or back to neither. Enforcing
    /// needs the promotion criterion to hold, unless `force`.
    pub fn set_stage(
        &mut self,
        key: &str,
        stage: Option<Stage>,
        force: bool,
        now: i64,
    ) -> Result<String, String> {
        let cfg = self.cfg.clone();
        let b = self.workloads.get_mut(key).ok_or_else(|| unknown(key))?;
        if b.mode == Mode::Learning && stage.is_some() {
            return Err(format!(
                "{key} is still learning; `sensor baseline freeze` it before shadowing its profile"
            ));
        }
        let msg = match (stage, b.enforcement.as_mut()) {
            (None, _) => {
                b.enforcement = None;
                format!("{key}: profile off (nothing counted or enforced)")
            }
            (Some(Stage::Shadow), _) => {
                b.enforcement = Some(Enforcement {
                    stage: Stage::Shadow,
                    since: now,
                    checked: 0,
                    would_deny: 0,
                    denied: 0,
                    last_violation: None,
                    checked_since_violation: 0,
                    pending: Vec::new(),
                });
                format!("{key}: profile in shadow (counted and alerted, not enforced)")
            }
            (Some(Stage::Enforce), Some(e)) => {
                if !force && !ready(&cfg, e, now) {
                    return Err(format!(
                        "{key}: not ready ({}); `--force` enforces anyway",
                        readiness(&cfg, e, now)
                    ));
                }
                e.stage = Stage::Enforce;
                e.since = now;
                format!("{key}: profile enforced")
            }
            (Some(Stage::Enforce), None) if force => {
                b.enforcement = Some(Enforcement {
                    stage: Stage::Enforce,
                    since: now,
                    checked: 0,
                    would_deny: 0,
                    denied: 0,
                    last_violation: None,
                    checked_since_violation: 0,
                    pending: Vec::new(),
                });
                format!("{key}: profile enforced without a shadow period (--force)")
            }
            (Some(Stage::Enforce), None) => {
                return Err(format!(
                    "{key}: shadow it first (`sensor profile shadow`), or enforce with --force"
                ));
            }
        };
        self.dirty.insert(key.to_owned());
        Ok(msg)
    }

    /// Self-heal after review: learn the out-of-profile behaviour held for approval.
    pub fn approve(&mut self, key: &str, now: i64) -> Result<usize, String> {
        let (max, collapse) = (self.cfg.max_items, self.cfg.collapse_at);
        let b = self.workloads.get_mut(key).ok_or_else(|| unknown(key))?;
        let Some(e) = b.enforcement.as_mut() else {
            return Err(format!("{key} has no profile in shadow or enforce"));
        };
        let pending = std::mem::take(&mut e.pending);
        for d in &pending {
            let f = match d.feature.as_str() {
                "exe_ids" => Feature::ExeId,
                "peers" => Feature::Peer,
                _ => continue,
            };
            f.set_mut(&mut b.model).learn(&d.value, now, max, collapse);
            if f == Feature::Peer
                && let Some((_, port)) = d.value.rsplit_once(':')
            {
                b.model
                    .ports
                    .learn(&format!("port/{port}"), now, max, collapse);
            }
        }
        self.dirty.insert(key.to_owned());
        Ok(pending.len())
    }

    /// Enforce ready shadowed profiles when `auto_promote` is on.
    pub fn auto_promote(&mut self, now: i64) {
        if !self.cfg.auto_promote {
            return;
        }
        for (key, b) in self.workloads.iter_mut() {
            if let Some(e) = b.enforcement.as_mut()
                && e.stage == Stage::Shadow
                && ready(&self.cfg, e, now)
            {
                e.stage = Stage::Enforce;
                e.since = now;
                self.dirty.insert(key.clone());
                tracing::info!(workload = %key, "profile promoted to enforce");
            }
        }
    }

    /// Shadowed and enforced container and unit workloads, as the kernel enforces them
    /// (programs share their cgroups with other processes: `sensor exec --profile` confines
    /// them instead).
    pub fn enforcement_targets(&self) -> Vec<EnforceTarget> {
        self.workloads
            .iter()
            .filter(|(_, b)| b.workload.kind != WorkloadKind::Exe)
            .filter_map(|(key, b)| {
                let e = b.enforcement.as_ref()?;
                let live = self.live.get(key)?;
                let cgroups: Vec<(u64, String)> = live
                    .cgroup_paths
                    .iter()
                    .map(|(id, p)| (*id, p.clone()))
                    .collect();
                if cgroups.is_empty() {
                    return None;
                }
                let exe_ids = b
                    .model
                    .exe_ids
                    .items
                    .keys()
                    .filter_map(|k| parse_exe_id(k))
                    .collect();
                let peers = b
                    .model
                    .peers
                    .items
                    .keys()
                    .filter_map(|k| {
                        let sa: std::net::SocketAddr = k.parse().ok()?;
                        Some((sa.ip(), sa.port()))
                    })
                    .collect();
                // File lists as a generated profile has them (with what every process reads).
                let (read, write) = match self.file_enforcement {
                    true => crate::profile::model::Profile::from_baseline(b, 0)
                        .map(|p| (p.read, p.write))
                        .unwrap_or_default(),
                    false => Default::default(),
                };
                Some(EnforceTarget {
                    workload: key.clone(),
                    shadow: e.stage == Stage::Shadow,
                    cgroups,
                    exe_ids,
                    peers,
                    version: b.version,
                    read,
                    write,
                })
            })
            .collect()
    }

    /// Check file opens against profiles (only where the kernel enforces them).
    pub fn set_file_enforcement(&mut self, on: bool) {
        self.file_enforcement = on;
    }

    /// Exact kernel counters of a workload's policy (the agent reads them every second). A
    /// file open the kernel refused (or would have) restarts the promotion criterion, even when
    /// the event describing it was lost or the agent's view of the path differs.
    pub fn set_kernel_counts(
        &mut self,
        key: &str,
        counts: crate::probes::enforce::EnforceCounts,
        now: i64,
    ) {
        let before = self.kernel_counts.insert(key.to_owned(), counts);
        let files = |c: &crate::probes::enforce::EnforceCounts| c.file_denied + c.file_would_deny;
        if before.is_some_and(|b| files(&counts) > files(&b))
            && let Some(e) = self
                .workloads
                .get_mut(key)
                .and_then(|b| b.enforcement.as_mut())
            && e.last_violation.is_none_or(|t| t < now)
        {
            e.last_violation = Some(now);
            e.checked_since_violation = 0;
            self.dirty.insert(key.to_owned());
        }
    }

    pub fn profile_status(&self, now: i64) -> Vec<ProfileSummary> {
        let mut out: Vec<ProfileSummary> = self
            .workloads
            .iter()
            .map(|(key, b)| {
                let e = b.enforcement.as_ref();
                ProfileSummary {
                    workload: key.clone(),
                    baseline_mode: b.mode,
                    baseline_version: b.version,
                    stage: e.map(|e| e.stage),
                    coverage: e.map(coverage),
                    checked: e.map_or(0, |e| e.checked),
                    would_deny: e.map_or(0, |e| e.would_deny),
                    denied: e.map_or(0, |e| e.denied),
                    pending: e.map_or(0, |e| e.pending.len()),
                    ready: e.is_some_and(|e| e.stage == Stage::Shadow && ready(&self.cfg, e, now)),
                    readiness: e.map(|e| readiness(&self.cfg, e, now)),
                    kernel: self.kernel_counts.get(key).copied(),
                    kernel_enforced: b.workload.kind != WorkloadKind::Exe,
                }
            })
            .collect();
        out.sort_by(|a, b| a.workload.cmp(&b.workload));
        out
    }

    /// Syscalls the kernel recorded for a learning workload.
    pub fn merge_syscalls(&mut self, workload: &str, syscalls: &[u32]) {
        if let Some(b) = self.workloads.get_mut(workload)
            && b.mode == Mode::Learning
        {
            let before = b.model.syscalls.len();
            b.model.syscalls.extend(syscalls.iter().copied());
            if b.model.syscalls.len() != before {
                self.dirty.insert(workload.to_owned());
            }
        }
    }
}

/// A shadowed or enforced workload, for the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnforceTarget {
    pub workload: String,
    pub shadow: bool,
    pub cgroups: Vec<(u64, String)>,
    pub exe_ids: Vec<(u32, u64)>,
    pub peers: Vec<(std::net::IpAddr, u16)>,
    /// The baseline version the lists come from.
    pub version: u32,
    /// Files it may read and write (empty when files are not enforced).
    pub read: Vec<String>,
    pub write: Vec<String>,
}

/// One workload in `sensor profile status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProfileSummary {
    pub workload: String,
    pub baseline_mode: Mode,
    pub baseline_version: u32,
    pub stage: Option<Stage>,
    /// Share of checked execs and connects inside the profile (1.0 = all).
    pub coverage: Option<f64>,
    pub checked: u64,
    pub would_deny: u64,
    pub denied: u64,
    pub pending: usize,
    pub ready: bool,
    pub readiness: Option<String>,
    /// The kernel's exact counters for its policy.
    pub kernel: Option<crate::probes::enforce::EnforceCounts>,
    /// Containers and units are enforced in the kernel; programs with `sensor exec`.
    pub kernel_enforced: bool,
}

fn coverage(e: &Enforcement) -> f64 {
    if e.checked == 0 {
        return 1.0;
    }
    let bad = e.would_deny + e.denied;
    ((1.0 - bad as f64 / e.checked as f64) * 1000.0).round() / 1000.0
}

/// The promotion criterion: nothing out of profile for a while, in time or in checks.
fn ready(cfg: &BaselineConfig, e: &Enforcement, now: i64) -> bool {
    let quiet_since = e.last_violation.unwrap_or(e.since);
    now - quiet_since >= cfg.promote_after_secs as i64
        || e.checked_since_violation >= cfg.promote_after_events
}

fn readiness(cfg: &BaselineConfig, e: &Enforcement, now: i64) -> String {
    let quiet_since = e.last_violation.unwrap_or(e.since);
    format!(
        "{} without a violation (needs {}), {} checks since the last (needs {})",
        score::span(now - quiet_since),
        score::span(cfg.promote_after_secs as i64),
        e.checked_since_violation,
        cfg.promote_after_events
    )
}

/// A file's identity as fingerprints and `exe_ids` hold it: `device:inode`.
fn exe_id(x: &crate::event::ExeInfo) -> String {
    format!("{}:{}", x.device, x.inode)
}

fn parse_exe_id(s: &str) -> Option<(u32, u64)> {
    let (dev, ino) = s.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

fn bad_key(key: &str) -> String {
    format!(
        "{key:?} is not a workload key (expected container:NAME, unit:NAME.service or exe:PATH@USER)"
    )
}

fn unknown(key: &str) -> String {
    format!("no baseline for {key:?} (see `sensor baseline list`)")
}

/// The stability criterion: enough events, and nothing new for a while (time or events),
/// and any `learn --for` period over.
fn stable(cfg: &BaselineConfig, b: &Baseline, now: i64) -> bool {
    b.learn_until.is_none_or(|u| now >= u)
        && b.progress.events >= cfg.min_events
        && (now - b.progress.last_novel >= cfg.stable_after_secs as i64
            || b.progress.events_since_novel >= cfg.stable_quiet_events)
}

/// The behaviour an event shows, as (feature, generalized value).
pub fn features(ev: &Event) -> Vec<(Feature, String)> {
    let mut out = Vec::new();
    let p = &ev.process;
    match ev.event.kind {
        Kind::Exec => {
            let exe = p.executable.as_deref().unwrap_or(&p.name);
            let g = generalize::path(exe);
            if let Some(parent) = &p.parent {
                let pe = parent
                    .executable
                    .as_deref()
                    .or(parent.name.as_deref())
                    .unwrap_or("?");
                out.push((Feature::Edge, format!("{} → {g}", generalize::path(pe))));
            }
            out.push((Feature::Command, generalize::command(exe, &p.args)));
            out.push((Feature::Executable, g));
            out.push((Feature::User, super::workload::user_of(ev)));
            if let Some(x) = &p.exe {
                out.push((Feature::ExeId, exe_id(x)));
            }
        }
        Kind::File => {
            let Some(f) = &ev.file else {
                return out;
            };
            let Some(path) = f.path.as_deref() else {
                return out;
            };
            let action = ev.event.action.as_str();
            let write = match action {
                "open" | "openat" | "openat2" => {
                    f.flags.is_some_and(|fl| fl & 0o3 != 0 || fl & 0o1100 != 0)
                }
                "chdir" | "fchdir" => return out,
                _ => true,
            };
            let feature = if write {
                Feature::FileWrite
            } else {
                Feature::FileRead
            };
            out.push((feature, generalize::path(path)));
            if let Some(t) = &f.target_path {
                out.push((Feature::FileWrite, generalize::path(t)));
            }
        }
        Kind::Network => {
            let action = ev.event.action.as_str();
            match action {
                "connect" => {
                    if let Some(d) = &ev.destination {
                        if let Some(peer) =
                            generalize::peer(d.ip.as_deref(), d.port, d.address.as_deref())
                        {
                            out.push((Feature::Peer, peer));
                        }
                        if let (Some(_), Some(port)) = (&d.ip, d.port) {
                            out.push((Feature::Port, format!("port/{port}")));
                        }
                    }
                }
                "bind" => {
                    if let Some(s) = &ev.source {
                        match (s.port, s.address.as_deref()) {
                            (Some(0), _) => {}
                            (Some(port), _) => out.push((Feature::Listen, format!("port/{port}"))),
                            (None, Some(a)) => {
                                out.push((Feature::Listen, format!("unix:{}", generalize::path(a))))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        Kind::Privilege => {
            if let Some(s) = &ev.syscall {
                out.push((Feature::Privilege, privilege_value(s)));
            }
        }
        Kind::Fork | Kind::Exit => {}
    }
    out
}

fn privilege_value(s: &crate::event::Syscall) -> String {
    let arg = |k: &str| s.args.get(k).and_then(|v| v.as_u64());
    let name = s.name.as_str();
    match name {
        n if n.starts_with("set") && (n.ends_with("uid") || n.ends_with("gid")) => {
            // The identity asked for (-1 means unchanged).
            let target = arg("effective")
                .filter(|v| *v != u64::from(u32::MAX))
                .or_else(|| arg("id"))
                .or_else(|| arg("real"));
            match target {
                Some(t) => format!("{n}:{t}"),
                None => n.to_owned(),
            }
        }
        "ptrace" => match arg("request") {
            Some(r) => format!("ptrace:{r}"),
            None => "ptrace".into(),
        },
        "unshare" => match arg("flags") {
            Some(f) => format!("unshare:{f:#x}"),
            None => "unshare".into(),
        },
        "bpf" => match arg("cmd") {
            Some(c) => format!("bpf:{c}"),
            None => "bpf".into(),
        },
        _ => name.to_owned(),
    }
}

fn rate_index(ev: &Event) -> Option<usize> {
    match (ev.event.kind, ev.event.action.as_str()) {
        (Kind::Exec, _) => Some(0),
        (Kind::File, "open" | "openat" | "openat2" | "creat") => Some(1),
        (Kind::Network, "connect") => Some(2),
        _ => None,
    }
}

/// Roll the per-minute window; while learning, a finished minute feeds the rate stats.
fn roll_minute(b: Option<&mut Baseline>, live: &mut Live, now: i64) {
    let minute = now.div_euclid(60);
    if minute == live.minute {
        return;
    }
    if let Some(b) = b
        && live.minute != 0
        && live.counts.iter().any(|c| *c > 0)
    {
        let r = &mut b.model.rates;
        r.exec.add(live.counts[0]);
        r.open.add(live.counts[1]);
        r.connect.add(live.counts[2]);
    }
    live.minute = minute;
    live.counts = [0; 3];
    live.rate_alerted = [false; 3];
}

fn hour_of(now: i64) -> usize {
    (now.div_euclid(3600).rem_euclid(24)) as usize
}

fn learn(
    cfg: &BaselineConfig,
    b: &mut Baseline,
    live: &mut Live,
    ev: &Event,
    features: &[(Feature, String)],
    now: i64,
) {
    roll_minute(Some(b), live, now);
    if let Some(i) = rate_index(ev) {
        live.counts[i] += 1;
    }
    let m = &mut b.model;
    m.counts.events += 1;
    match ev.event.kind {
        Kind::Exec => m.counts.exec += 1,
        Kind::File => m.counts.file += 1,
        Kind::Network => m.counts.network += 1,
        Kind::Privilege => m.counts.privilege += 1,
        _ => {}
    }
    m.hours[hour_of(now)] += 1;
    let mut novel = false;
    for (f, v) in features {
        novel |= f.set_mut(m).learn(v, now, cfg.max_items, cfg.collapse_at);
    }
    if b.progress.events == 0 {
        b.first_event = now;
    }
    b.last_event = now;
    b.progress.events += 1;
    // A moving novelty rate over roughly the last thousand events.
    b.progress.recent_novel = b.progress.recent_novel * 0.999 + if novel { 1.0 } else { 0.0 };
    if novel {
        b.progress.last_novel = now;
        b.progress.events_since_novel = 0;
    } else {
        b.progress.events_since_novel += 1;
    }
}

fn component(
    b: &Baseline,
    cfg: &BaselineConfig,
    f: Feature,
    value: &str,
    (anomaly, weight, technique): (AnomalyType, f64, Option<&'static str>),
    reason: String,
) -> Component {
    let observations = f.observations(&b.model);
    let confidence = score::confidence(observations, cfg.maturity_events);
    Component {
        anomaly,
        feature: f.name(),
        value: value.to_owned(),
        reason,
        learned_values: f.set(&b.model).len(),
        observations,
        learned_over_secs: b.span(),
        weight,
        confidence: score::rounded_confidence(confidence),
        points: score::points(weight, confidence),
        technique,
    }
}

fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_shell_or_interpreter(exe: &str) -> Option<&'static str> {
    let b = base(exe);
    if SHELLS.contains(&b) {
        return Some("T1059.004");
    }
    let stem = b.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS
        .iter()
        .any(|i| *i == b || *i == stem)
        .then_some("T1059")
}

fn score_event(
    cfg: &BaselineConfig,
    b: &Baseline,
    live: &mut Live,
    ev: &Event,
    features: &[(Feature, String)],
    now: i64,
) -> Vec<Component> {
    let w = &cfg.weights;
    let m = &b.model;
    let over = score::span(b.span());
    let mut comps = Vec::new();
    let exe_known = features
        .iter()
        .find(|(f, _)| *f == Feature::Executable)
        .is_none_or(|(_, v)| m.executables.contains(v));
    let port_known = features
        .iter()
        .find(|(f, _)| *f == Feature::Port)
        .is_none_or(|(_, v)| m.ports.contains(v));
    for (f, v) in features {
        let set = f.set(m);
        if set.contains(v) {
            continue;
        }
        let n = f.observations(m);
        let learned = set.len();
        let c = match f {
            Feature::Executable => {
                let tech = is_shell_or_interpreter(v);
                let weight = w.new_executable + if tech.is_some() { w.new_shell } else { 0.0 };
                let reason = format!(
                    "ran {v}, not among the {learned} programs learned from {n} execs over {over}"
                );
                component(
                    b,
                    cfg,
                    *f,
                    v,
                    (AnomalyType::UnusualCommandSequence, weight, tech),
                    reason,
                )
            }
            // For a new program the program is the news; edges and shapes only matter for
            // known programs.
            Feature::Edge | Feature::Command if !exe_known => continue,
            Feature::Edge => {
                let reason = format!("new parent → child {v} ({learned} edges learned)");
                component(
                    b,
                    cfg,
                    *f,
                    v,
                    (AnomalyType::UnusualCommandSequence, w.new_edge, None),
                    reason,
                )
            }
            Feature::Command => {
                let reason = format!("new command shape `{v}` ({learned} shapes learned)");
                component(
                    b,
                    cfg,
                    *f,
                    v,
                    (AnomalyType::UnusualCommandSequence, w.new_command, None),
                    reason,
                )
            }
            Feature::FileRead | Feature::FileWrite => {
                let class = crate::dlp::classify_path(v);
                let (weight, tech) = match class {
                    Classification::Restricted => (w.restricted_file, Some("T1552.001")),
                    Classification::Confidential => (w.confidential_file, Some("T1552.001")),
                    _ if *f == Feature::FileWrite => (w.new_file_write, None),
                    _ => (w.new_file_read, None),
                };
                let verb = if *f == Feature::FileWrite {
                    "wrote"
                } else {
                    "read"
                };
                let reason = format!(
                    "{verb} {v} ({}), not among {learned} paths learned from {n} file events over {over}",
                    class.as_str()
                );
                component(
                    b,
                    cfg,
                    *f,
                    v,
                    (AnomalyType::SuspiciousFileAccess, weight, tech),
                    reason,
                )
            }
            Feature::Peer => {
                let (weight, tech) = if port_known {
                    (w.new_peer, Some("T1071"))
                } else {
                    (w.new_peer + w.new_port, Some("T1571"))
                };
                let reason = format!(
                    "connected to {v}{}, not among {learned} peers learned from {n} network events over {over}",
                    if port_known {
                        ""
                    } else {
                        " on a port never used"
                    }
                );
                component(
                    b,
                    cfg,
                    *f,
                    v,
                    (AnomalyType::AbnormalNetworkActivity, weight, tech),
                    reason,
                )
            }
            // Counted in the peer's weight; file identities serve enforcement.
            Feature::Port | Feature::ExeId => continue,
            Feature::Listen => {
                let reason = format!("listens on {v}, never seen ({learned} learned)");
                component(
                    b,
                    cfg,
                    *f,
                    v,
                    (AnomalyType::AbnormalNetworkActivity, w.new_listen, None),
                    reason,
                )
            }
            Feature::Privilege => {
                let tech = privilege_technique(v);
                let reason =
                    format!("privilege change {v}, not among {learned} learned over {over}");
                component(
                    b,
                    cfg,
                    *f,
                    v,
                    (
                        AnomalyType::PrivilegeEscalationAttempt,
                        w.new_privilege,
                        tech,
                    ),
                    reason,
                )
            }
            Feature::User => {
                let reason = format!("ran as user {v}, never seen ({learned} users learned)");
                component(
                    b,
                    cfg,
                    *f,
                    v,
                    (
                        AnomalyType::PrivilegeEscalationAttempt,
                        w.new_user,
                        Some("T1078"),
                    ),
                    reason,
                )
            }
        };
        comps.push(c);
    }
    // Time of day.
    let total: u64 = m.hours.iter().sum();
    let h = hour_of(now);
    if b.span() >= cfg.time_min_span_secs as i64
        && total >= cfg.min_events.max(1)
        && m.hours[h] == 0
        && m.hours[(h + 23) % 24] == 0
        && m.hours[(h + 1) % 24] == 0
    {
        let active: Vec<String> = (0..24)
            .filter(|i| m.hours[*i] > 0)
            .map(|i| format!("{i:02}h"))
            .collect();
        let value = format!("{h:02}h UTC");
        let reason = format!(
            "active at {value}; {total} events over {over} were all in hours {}",
            active.join(",")
        );
        let confidence = score::confidence(total, cfg.maturity_events);
        comps.push(Component {
            anomaly: AnomalyType::TimeAnomaly,
            feature: "hours",
            value,
            reason,
            learned_values: active.len(),
            observations: total,
            learned_over_secs: b.span(),
            weight: w.unseen_hour,
            confidence: score::rounded_confidence(confidence),
            points: score::points(w.unseen_hour, confidence),
            technique: None,
        });
    }
    // Volume.
    roll_minute(None, live, now);
    if let Some(i) = rate_index(ev) {
        live.counts[i] += 1;
        let (stat, name, what, tech) = match i {
            0 => (m.rates.exec, "rate.exec", "execs", None),
            1 => (m.rates.open, "rate.open", "file opens", Some("T1005")),
            _ => (m.rates.connect, "rate.connect", "connects", Some("T1046")),
        };
        let threshold =
            ((stat.max as f64) * cfg.volume_factor).max(cfg.volume_floor_per_min as f64);
        let count = live.counts[i];
        if stat.minutes >= cfg.volume_min_minutes
            && count as f64 > threshold
            && !live.rate_alerted[i]
        {
            live.rate_alerted[i] = true;
            let confidence = score::confidence(stat.minutes, cfg.volume_min_minutes * 6);
            let value = format!("{count}/min");
            let reason = format!(
                "{count} {what} in one minute; learned max {}/min, mean {:.1}/min over {} active minutes (threshold {threshold:.0})",
                stat.max,
                stat.mean(),
                stat.minutes
            );
            comps.push(Component {
                anomaly: AnomalyType::VolumeAnomaly,
                feature: name,
                // One alert per minute: the value names the minute, not the count.
                value: format!("minute {}", live.minute),
                reason: format!("{reason} [{value}]"),
                learned_values: stat.minutes as usize,
                observations: stat.sum,
                learned_over_secs: b.span(),
                weight: w.volume,
                confidence: score::rounded_confidence(confidence),
                points: score::points(w.volume, confidence),
                technique: tech,
            });
        }
    }
    comps
}

/// Whether an exec, connect or (with file enforcement) file open is inside the workload's
/// profile (its learned executables by identity, its learned peers and paths); an action
/// outside counts and alerts: "would deny" in shadow, "denied" in enforce (where the kernel
/// refused it).
fn check_profile(
    cfg: &BaselineConfig,
    b: &mut Baseline,
    ev: &Event,
    features: &[(Feature, String)],
    files: bool,
    now: i64,
) -> Option<Alert> {
    let checked: Vec<&(Feature, String)> = features
        .iter()
        .filter(|(f, _)| match f {
            Feature::ExeId | Feature::Peer => true,
            Feature::FileRead | Feature::FileWrite => files,
            _ => false,
        })
        .collect();
    if checked.is_empty() {
        return None;
    }
    let outside: Vec<&(Feature, String)> = checked
        .into_iter()
        .filter(|(f, v)| !in_profile(&b.model, *f, v))
        .collect();
    let key = b.workload.key();
    let e = b.enforcement.as_mut()?;
    e.checked += 1;
    let Some((feature, value)) = outside.first().map(|(f, v)| (*f, v.clone())) else {
        e.checked_since_violation += 1;
        return None;
    };
    e.last_violation = Some(now);
    e.checked_since_violation = 0;
    let stage = e.stage;
    match stage {
        crate::baseline::model::Stage::Shadow => e.would_deny += 1,
        crate::baseline::model::Stage::Enforce => e.denied += 1,
    }
    let what = match feature {
        Feature::ExeId => format!(
            "exec of {} (file {value}), not among the {} programs of the profile",
            ev.process.executable.as_deref().unwrap_or(&ev.process.name),
            b.model.exe_ids.len()
        ),
        Feature::FileRead | Feature::FileWrite => format!(
            "open of {value} for {}, not among the {} paths of the profile",
            if feature == Feature::FileWrite {
                "writing"
            } else {
                "reading"
            },
            b.model.file_read.len() + b.model.file_write.len()
        ),
        _ => format!(
            "connect to {value}, not among the {} peers of the profile",
            b.model.peers.len()
        ),
    };
    // Self-heal: approved later by an operator, or at once in a permissive (auto) profile.
    if stage == crate::baseline::model::Stage::Shadow && cfg.self_heal_auto {
        for (f, v) in features {
            f.set_mut(&mut b.model)
                .learn(v, now, cfg.max_items, cfg.collapse_at);
        }
    } else if let Some(e) = b.enforcement.as_mut()
        && !e.pending.iter().any(|d| d.value == value)
        && e.pending.len() < MAX_DEVIATIONS
    {
        e.pending.push(Deviation {
            feature: feature.name().to_owned(),
            value: value.clone(),
            seen: Seen {
                n: 1,
                first: now,
                last: now,
            },
            score: 0.0,
        });
    }
    let (rule, title, severity, verb) = match stage {
        crate::baseline::model::Stage::Shadow => (
            "sensor.profile.would_deny",
            "Out of profile (shadow: not blocked)",
            crate::alert::Severity::Medium,
            "would be denied",
        ),
        crate::baseline::model::Stage::Enforce => (
            "sensor.profile.denied",
            "Out of profile: denied",
            crate::alert::Severity::High,
            "denied",
        ),
    };
    let mut a = Alert::new(rule, title, severity, format!("{key}: {what}; {verb}"))
        .with_tag("profile")
        .with_field("workload", key.as_str())
        .with_field("profile.stage", stage.as_str())
        .with_field("profile.feature", feature.name())
        .with_field("profile.value", value)
        .with_field("baseline.version", b.version);
    a.time = ev.timestamp.clone();
    Some(crate::pipeline::alert_context(a, ev))
}

/// A value inside the profile: learned, or (for files) written, or read by every process.
fn in_profile(m: &crate::baseline::model::Model, f: Feature, v: &str) -> bool {
    if f.set(m).contains(v) {
        return true;
    }
    match f {
        Feature::FileRead => {
            m.file_write.contains(v)
                || v.starts_with("/proc/self/")
                || v.starts_with("/proc/thread-self/")
                || crate::profile::model::ALWAYS_READ
                    .iter()
                    .any(|a| match a.strip_suffix("/**") {
                        Some(dir) => v.starts_with(dir) && v[dir.len()..].starts_with('/'),
                        None => *a == v,
                    })
        }
        _ => false,
    }
}

fn privilege_technique(v: &str) -> Option<&'static str> {
    let name = v.split(':').next().unwrap_or(v);
    match name {
        "ptrace" => Some("T1055"),
        "init_module" | "finit_module" => Some("T1547.006"),
        "unshare" | "setns" | "mount" | "pivot_root" | "chroot" => Some("T1611"),
        n if n.starts_with("set") => Some("T1548"),
        "capset" => Some("T1548"),
        _ => None,
    }
}

fn record_deviation(b: &mut Baseline, c: &Component, now: i64) {
    if let Some(d) = b
        .deviations
        .iter_mut()
        .find(|d| d.feature == c.feature && d.value == c.value)
    {
        d.seen.n += 1;
        d.seen.last = now;
        return;
    }
    if b.deviations.len() >= MAX_DEVIATIONS {
        b.deviations.remove(0);
    }
    b.deviations.push(Deviation {
        feature: c.feature.to_owned(),
        value: c.value.clone(),
        seen: Seen {
            n: 1,
            first: now,
            last: now,
        },
        score: c.points,
    });
}
