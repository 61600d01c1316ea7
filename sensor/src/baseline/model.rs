//! What a workload's baseline holds: learned features with counts and times, activity by hour,
//! per-minute rates, the syscalls the kernel saw, and the deviations seen since learning ended.
//! Serialized as JSON for the store and for export (readable, editable, importable).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::workload::WorkloadId;

/// The export format's version; an import of another version is refused.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything new is added.
    Learning,
    /// Learning ended on the stability criterion; deviations are anomalies.
    Monitoring,
    /// An operator froze (or imported) it: deviations are anomalies; nothing changes it but
    /// an operator.
    Frozen,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Learning => "learning",
            Mode::Monitoring => "monitoring",
            Mode::Frozen => "frozen",
        }
    }
}

/// One learned value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    /// Observations.
    pub n: u64,
    /// Unix seconds.
    pub first: i64,
    pub last: i64,
}

/// A set of learned values. Paths collapse: once a directory holds more than `collapse_at`
/// distinct learned entries they become `dir/**`, which matches anything below it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSet {
    #[serde(default)]
    pub items: BTreeMap<String, Seen>,
    /// Values not added because the set was full (the workload is too varied to learn well).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub overflow: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl FeatureSet {
    /// Whether `v` is learned (exactly, or under a collapsed `dir/**`).
    pub fn contains(&self, v: &str) -> bool {
        if self.items.contains_key(v) {
            return true;
        }
        if !v.starts_with('/') && !v.starts_with("unix:/") {
            return false;
        }
        // Each ancestor directory, nearest first.
        let mut end = v.len();
        while let Some(i) = v[..end].rfind('/') {
            let mut k = String::with_capacity(i + 3);
            k.push_str(&v[..=i]);
            k.push_str("**");
            if self.items.contains_key(&k) {
                return true;
            }
            end = i;
        }
        false
    }

    /// Add or count `v`; returns true when it was new. Full sets count an overflow.
    pub fn learn(&mut self, v: &str, now: i64, max_items: usize, collapse_at: usize) -> bool {
        if let Some(s) = self.items.get_mut(v) {
            s.n += 1;
            s.last = now;
            return false;
        }
        if self.contains(v) {
            // Under a collapsed directory: count it there.
            if let Some(s) = self
                .items
                .iter_mut()
                .find(|(k, _)| k.ends_with("/**") && v.starts_with(&k[..k.len() - 2]))
            {
                s.1.n += 1;
                s.1.last = now;
            }
            return false;
        }
        if self.items.len() >= max_items {
            self.overflow += 1;
            return true;
        }
        self.items.insert(
            v.to_owned(),
            Seen {
                n: 1,
                first: now,
                last: now,
            },
        );
        if collapse_at > 0
            && v.starts_with('/')
            && let Some(dir_end) = v.rfind('/')
        {
            self.collapse(&v[..=dir_end], collapse_at, now);
        }
        true
    }

    fn collapse(&mut self, dir: &str, at: usize, now: i64) {
        let siblings: Vec<String> = self
            .items
            .range(dir.to_owned()..)
            .take_while(|(k, _)| k.starts_with(dir))
            .filter(|(k, _)| !k[dir.len()..].contains('/'))
            .map(|(k, _)| k.clone())
            .collect();
        if siblings.len() <= at {
            return;
        }
        let mut merged = Seen {
            n: 0,
            first: now,
            last: now,
        };
        for k in siblings {
            if let Some(s) = self.items.remove(&k) {
                merged.n += s.n;
                merged.first = merged.first.min(s.first);
            }
        }
        self.items.insert(format!("{dir}**"), merged);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Per-minute counts of one kind of activity while learning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateStat {
    /// Minutes with any activity of the workload.
    pub minutes: u64,
    pub max: u64,
    pub sum: u64,
}

impl RateStat {
    pub fn add(&mut self, count: u64) {
        self.minutes += 1;
        self.max = self.max.max(count);
        self.sum += count;
    }

    pub fn mean(&self) -> f64 {
        if self.minutes == 0 {
            0.0
        } else {
            self.sum as f64 / self.minutes as f64
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    pub exec: RateStat,
    pub open: RateStat,
    pub connect: RateStat,
}

/// Observations learned, by family (what a score's confidence rests on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub events: u64,
    pub exec: u64,
    pub file: u64,
    pub network: u64,
    pub privilege: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Programs run (generalized executable paths).
    #[serde(default)]
    pub executables: FeatureSet,
    /// `parent → child` executable edges.
    #[serde(default)]
    pub edges: FeatureSet,
    /// Command shapes (`curl -s <ip> <n>`).
    #[serde(default)]
    pub commands: FeatureSet,
    #[serde(default)]
    pub file_read: FeatureSet,
    #[serde(default)]
    pub file_write: FeatureSet,
    /// Outbound peers (`10.0.0.5:443`, `unix:/run/x.sock`).
    #[serde(default)]
    pub peers: FeatureSet,
    /// Outbound destination ports (`tcp/443`).
    #[serde(default)]
    pub ports: FeatureSet,
    /// Ports bound or listened on.
    #[serde(default)]
    pub listen: FeatureSet,
    /// Privilege changes (`setuid:0`, `capset`, `unshare`, `ptrace:attach`).
    #[serde(default)]
    pub privileges: FeatureSet,
    /// Users the workload's processes ran as.
    #[serde(default)]
    pub users: FeatureSet,
    /// Executed files by identity (`device:inode`): the kernel's exec allow-list.
    #[serde(default)]
    pub exe_ids: FeatureSet,
    /// Syscall numbers the kernel saw while learning (x86_64 numbering).
    #[serde(default)]
    pub syscalls: BTreeSet<u32>,
    /// Events per hour of the day (UTC).
    #[serde(default)]
    pub hours: [u64; 24],
    #[serde(default)]
    pub rates: Rates,
    #[serde(default)]
    pub counts: Counts,
}

impl Model {
    /// Values learned across all feature sets (the memory a baseline costs grows with this).
    pub fn size(&self) -> usize {
        self.sets().iter().map(|(_, s)| s.len()).sum::<usize>() + self.syscalls.len()
    }

    pub fn sets(&self) -> [(&'static str, &FeatureSet); 11] {
        [
            ("executables", &self.executables),
            ("edges", &self.edges),
            ("commands", &self.commands),
            ("file_read", &self.file_read),
            ("file_write", &self.file_write),
            ("peers", &self.peers),
            ("ports", &self.ports),
            ("listen", &self.listen),
            ("privileges", &self.privileges),
            ("users", &self.users),
            ("exe_ids", &self.exe_ids),
        ]
    }
}

/// A deviation seen while monitoring: not learned, alerted once per re-alert window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deviation {
    pub feature: String,
    pub value: String,
    pub seen: Seen,
    pub score: f64,
}

/// Where a frozen baseline's profile stands: counted only (shadow) or enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Shadow,
    Enforce,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Shadow => "shadow",
            Stage::Enforce => "enforce",
        }
    }
}

/// The enforcement lifecycle of a workload's profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enforcement {
    pub stage: Stage,
    /// Unix seconds the stage began.
    pub since: i64,
    /// Execs, connects and (with file enforcement) file opens checked against the profile
    /// since shadowing began.
    pub checked: u64,
    /// Of those, out of profile: would have been denied (shadow) or were (enforce).
    pub would_deny: u64,
    pub denied: u64,
    /// Unix seconds of the last out-of-profile action, and checks since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_violation: Option<i64>,
    pub checked_since_violation: u64,
    /// Out-of-profile behaviour awaiting `sensor profile approve` (self-heal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Deviation>,
}

/// Learning progress (for the progress view and the stability criterion).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Events learned since learning (re)started.
    pub events: u64,
    /// Events since the last new value.
    pub events_since_novel: u64,
    /// Unix seconds of the last new value.
    pub last_novel: i64,
    /// New values among the last 1000 events (a moving novelty rate).
    pub recent_novel: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// Export format version.
    pub format: u32,
    pub workload: WorkloadId,
    /// Bumped when the workload's binary or image changes, or on reset.
    pub version: u32,
    pub mode: Mode,
    /// Unix seconds: when this version started, and the first and last learned event.
    pub created: i64,
    pub first_event: i64,
    pub last_event: i64,
    /// Learning goes on at least until then (`baseline learn --for`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn_until: Option<i64>,
    /// What this version was learned from: `dev:inode` of the executable, or the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    pub progress: Progress,
    pub model: Model,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deviations: Vec<Deviation>,
    /// The profile's lifecycle, once shadowing began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
}

impl Baseline {
    pub fn new(workload: WorkloadId, now: i64) -> Self {
        Self {
            format: FORMAT,
            workload,
            version: 1,
            mode: Mode::Learning,
            created: now,
            first_event: now,
            last_event: now,
            learn_until: None,
            fingerprint: None,
            progress: Progress {
                last_novel: now,
                ..Progress::default()
            },
            model: Model::default(),
            deviations: Vec::new(),
            enforcement: None,
        }
    }

    /// Seconds between the first and last learned event.
    pub fn span(&self) -> i64 {
        (self.last_event - self.first_event).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_learn_count_and_collapse_busy_directories() {
        let mut s = FeatureSet::default();
        assert!(s.learn("/srv/www/a.html", 1, 100, 3));
        assert!(!s.learn("/srv/www/a.html", 2, 100, 3));
        assert_eq!(s.items["/srv/www/a.html"].n, 2);
        for f in ["b", "c", "d"] {
            s.learn(&format!("/srv/www/{f}.html"), 3, 100, 3);
        }
        // Four siblings > 3: collapsed.
        assert!(s.items.contains_key("/srv/www/**"));
        assert!(s.contains("/srv/www/zzz.html"));
        assert!(s.contains("/srv/www/deep/er.html"));
        assert!(!s.contains("/srv/other"));
        assert!(!s.learn("/srv/www/new.html", 4, 100, 3));
        assert_eq!(s.items["/srv/www/**"].n, 6);
        // Values that are not paths never match a collapsed directory.
        assert!(!s.contains("tcp/443"));
    }

    #[test]
    fn full_sets_count_overflow_instead_of_growing() {
        let mut s = FeatureSet::default();
        for i in 0..10 {
            s.learn(&format!("v{i}"), 0, 4, 0);
        }
        assert_eq!(s.len(), 4);
        assert_eq!(s.overflow, 6);
    }
}
