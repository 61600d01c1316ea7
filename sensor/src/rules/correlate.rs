//! Runtime for sequences and thresholds: feed every event to [`Correlator::observe`].
//!
//! State is bounded: each sequence keeps at most `cap` partial instances and each
//! threshold at most `cap` windows; when full, the oldest is evicted and counted
//! ([`CorrelatorStats`]). Partial instances expire `within` after their first step;
//! time is `event.boot_ns`.
//!
//! Hot path: the same kind/type index as the rule evaluator picks the candidate
//! sequences and thresholds, so an event that can match no step and no threshold
//! condition costs an index lookup and does not allocate. Scope lookups use
//! precomputed hashes of borrowed keys, so they do not allocate either.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::eval::{self, Index, Scratch, Slot};
use super::fields::{self, Field, FieldType};
use super::incidents::{DEFAULT_STOP_LIST, tree_root};
use super::sequence::{Capture, Scope, Sequence, Step};
use super::threshold::{Threshold, ThresholdScope};
use super::{Mode, RuleSet};
use crate::alert::{Alert, AlertProcess, Severity, TechniqueId};
use crate::event::Event;

/// Default bound on open partial instances per sequence (and windows per threshold).
pub const DEFAULT_CAP: usize = 10_000;

/// Expired state is swept from every item at most this often (event time), besides
/// the sweep of each item an event touches.
const SWEEP_EVERY_NS: u64 = 1_000_000_000;

/// What one event contributed to a correlation match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepSummary {
    /// The step name (sequences) or `first` / `last` (thresholds).
    pub step: String,
    pub action: String,
    pub pid: u32,
    #[serde(default)]
    pub exe: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    pub time_ns: u64,
}

impl StepSummary {
    fn of(step: &str, ev: &Event) -> StepSummary {
        StepSummary {
            step: step.to_owned(),
            action: ev.event.action.clone(),
            pid: ev.process.pid,
            exe: ev.process.executable.clone(),
            path: ev.file.as_ref().and_then(|f| f.path.clone()),
            time_ns: ev.event.boot_ns,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CorrelationKind {
    Sequence,
    Threshold,
}

/// A completed sequence or a crossed threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelationMatch {
    pub rule_id: String,
    pub name: String,
    pub severity: Severity,
    pub tactics: Vec<String>,
    #[serde(with = "technique_strings")]
    pub techniques: Vec<TechniqueId>,
    pub tags: Vec<String>,
    /// The output template rendered against the last event.
    pub message: String,
    /// Sequences: one per step, in order. Thresholds: the first and the last event.
    pub steps: Vec<StepSummary>,
    pub kind: CorrelationKind,
    /// `process_tree:1234`, `container:abc`, `host`, `user:1000`, `file:/tmp/x`, ...
    pub scope: String,
    pub first_ns: u64,
    pub last_ns: u64,
    /// Events (threshold without `distinct`), distinct values, or steps.
    pub count: u64,
}

mod technique_strings {
    use crate::alert::TechniqueId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[TechniqueId], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(TechniqueId::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TechniqueId>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| TechniqueId::parse(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

impl CorrelationMatch {
    /// An [`Alert`] for this match, with `ev` (normally the last event) as the
    /// process/container context. Tactics, steps and scope go to `fields`, which is
    /// where [`super::incidents::IncidentTracker`] reads tactics from.
    pub fn to_alert(&self, ev: &Event) -> Alert {
        let p = &ev.process;
        let mut proc_ = AlertProcess::new(
            p.pid,
            p.parent.as_ref().map_or(0, |x| x.pid),
            ev.user.id,
            p.executable.clone().unwrap_or_else(|| p.name.clone()),
        )
        .with_args(p.args.iter().cloned());
        for a in p.parent.iter().chain(p.ancestry.iter()) {
            let exe = a.executable.clone().or_else(|| a.name.clone());
            proc_ = proc_.with_ancestor(a.pid, exe.unwrap_or_default());
        }
        let mut alert = Alert::new(&self.rule_id, &self.name, self.severity, &self.message)
            .with_process(proc_)
            .with_field("tactics", self.tactics.clone())
            .with_field(
                "correlation",
                serde_json::to_value(self.kind).unwrap_or_default(),
            )
            .with_field("scope", self.scope.clone())
            .with_field(
                "steps",
                serde_json::to_value(&self.steps).unwrap_or_default(),
            )
            .with_count(self.count);
        if let Ok(t) = time::OffsetDateTime::parse(
            &ev.timestamp,
            &time::format_description::well_known::Rfc3339,
        ) {
            alert = alert.with_time(t);
        }
        if let Some(c) = &ev.container {
            alert = alert.with_container(&c.id, &c.runtime, c.pod_uid.clone());
        }
        for t in &self.techniques {
            alert = alert.with_technique(t.clone());
        }
        for t in &self.tags {
            alert = alert.with_tag(t);
        }
        alert
    }
}

/// Per-item counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemStats {
    pub id: String,
    /// Open partial instances (sequence) or live windows (threshold).
    pub open: usize,
    /// Dropped because the item was at its cap (oldest first).
    pub evictions: u64,
    pub expired: u64,
    pub matches: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelatorStats {
    pub open_instances: usize,
    pub open_windows: usize,
    pub evictions: u64,
    pub expired: u64,
    pub matches: u64,
    pub cap: usize,
    pub items: Vec<ItemStats>,
}

/// A scope value. `Key<&str>` and `Key<Box<str>>` hash identically (both hash the
/// `str`), so lookups hash a borrowed key and never allocate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key<S> {
    Pid(u32),
    Name(S),
    All,
    Uid(u32),
}

type OwnedKey = Key<Box<str>>;

impl OwnedKey {
    fn is(&self, k: &Key<&str>) -> bool {
        match (self, k) {
            (Key::Pid(a), Key::Pid(b)) | (Key::Uid(a), Key::Uid(b)) => a == b,
            (Key::Name(a), Key::Name(b)) => &**a == *b,
            (Key::All, Key::All) => true,
            _ => false,
        }
    }

    fn describe(&self, scope: &str) -> String {
        match self {
            Key::Pid(p) | Key::Uid(p) => format!("{scope}:{p}"),
            Key::Name(n) => format!("{scope}:{n}"),
            Key::All => scope.to_owned(),
        }
    }
}

fn owned(k: &Key<&str>) -> OwnedKey {
    match k {
        Key::Pid(p) => Key::Pid(*p),
        Key::Uid(u) => Key::Uid(*u),
        Key::Name(n) => Key::Name((*n).into()),
        Key::All => Key::All,
    }
}

fn container_key(ev: &Event) -> Key<&str> {
    ev.container
        .as_ref()
        .map_or(Key::All, |c| Key::Name(c.id.as_str()))
}

fn file_key(ev: &Event) -> Option<&str> {
    ev.file
        .as_ref()
        .and_then(|f| f.path.as_deref())
        .or(ev.process.executable.as_deref())
}

/// Whether an instance keyed `key` (from its first event) covers `ev`.
fn in_scope(scope: Scope, key: &OwnedKey, ev: &Event) -> bool {
    let p = &ev.process;
    match (scope, key) {
        (Scope::Process, Key::Pid(k)) => p.pid == *k,
        (Scope::ProcessTree, Key::Pid(k)) => {
            p.pid == *k
                || p.parent
                    .iter()
                    .chain(p.ancestry.iter())
                    .any(|a| a.pid == *k && a.pid != 0)
        }
        (Scope::Container, k) => k.is(&container_key(ev)),
        (Scope::File, Key::Name(k)) => {
            let path = ev.file.as_ref().and_then(|f| f.path.as_deref());
            path == Some(&**k) || p.executable.as_deref() == Some(&**k)
        }
        (Scope::Host, _) => true,
        _ => false,
    }
}

fn accepts(slot: &Slot, ev: &Event) -> bool {
    match slot {
        Slot::Types(ts) => ts.contains(&ev.event.action),
        Slot::Kinds(ks) => ks.contains(&fields::kind_index(ev.event.kind)),
        Slot::Always => true,
    }
}

/// A field's value as text for captures and distinct counting; `None` when missing.
/// Multi-valued fields join their values with `,`.
fn field_value(field: &Field, ty: FieldType, ev: &Event, buf: &mut String) -> Option<String> {
    match ty {
        FieldType::Num => fields::num(field, ev).map(|n| n.to_string()),
        FieldType::Bool => fields::boolean(field, ev).map(|b| b.to_string()),
        FieldType::Str | FieldType::Ip => {
            let mut out = String::new();
            let mut first = true;
            fields::str_any(field, ev, buf, |s| {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str(s);
                false
            })?;
            Some(out)
        }
    }
}

/// Captures of one step, all or nothing: a missing field means the step does not
/// match, so later `$name` comparisons always have a value.
fn take_captures(caps: &[Capture], ev: &Event, buf: &mut String) -> Option<Vec<(usize, String)>> {
    caps.iter()
        .map(|c| field_value(&c.field, c.ty, ev, buf).map(|v| (c.slot, v)))
        .collect()
}

#[derive(Debug)]
struct Instance {
    key: OwnedKey,
    hash: u64,
    start_ns: u64,
    /// Index of the next step to match.
    next: usize,
    caps: Vec<String>,
    steps: Vec<StepSummary>,
}

#[derive(Debug)]
struct SeqState {
    seq: Arc<Sequence>,
    instances: HashMap<u64, Instance>,
    /// Scope hash → ids of the instances with that key.
    by_scope: HashMap<u64, Vec<u64>>,
    /// (id, start) in creation order. Entries of removed instances are skipped
    /// lazily; creation order is expiry order because `within` is fixed.
    order: VecDeque<(u64, u64)>,
    next_id: u64,
    stats: ItemStats,
}

impl SeqState {
    fn remove(&mut self, id: u64) -> Option<Instance> {
        let inst = self.instances.remove(&id)?;
        if let Some(v) = self.by_scope.get_mut(&inst.hash) {
            v.retain(|x| *x != id);
            if v.is_empty() {
                self.by_scope.remove(&inst.hash);
            }
        }
        Some(inst)
    }

    fn expire(&mut self, now: u64) {
        let within = self.seq.within_ns;
        while let Some(&(id, start)) = self.order.front() {
            let live = self.instances.get(&id).is_some_and(|i| i.start_ns == start);
            if live && now.saturating_sub(start) <= within {
                break;
            }
            self.order.pop_front();
            if live {
                self.remove(id);
                self.stats.expired += 1;
            }
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((id, _)) = self.order.pop_front() {
            if self.remove(id).is_some() {
                self.stats.evictions += 1;
                return;
            }
        }
    }

    fn insert(&mut self, inst: Instance, cap: usize) {
        while self.instances.len() >= cap.max(1) {
            self.evict_oldest();
        }
        let id = self.next_id;
        self.next_id += 1;
        self.order.push_back((id, inst.start_ns));
        self.by_scope.entry(inst.hash).or_default().push(id);
        self.instances.insert(id, inst);
        // Stale order entries (completed instances) are dropped lazily; compact when
        // they dominate so the deque stays O(cap).
        if self.order.len() > 2 * cap.max(1) + 64 {
            let instances = &self.instances;
            self.order
                .retain(|(id, s)| instances.get(id).is_some_and(|i| i.start_ns == *s));
        }
    }
}

#[derive(Debug)]
struct Window {
    key: OwnedKey,
    id: u64,
    start_ns: u64,
    count: u64,
    distinct: HashSet<Box<str>>,
    fired: bool,
    first: StepSummary,
}

#[derive(Debug)]
struct ThrState {
    thr: Arc<Threshold>,
    /// Scope hash → windows (more than one only on a hash collision).
    windows: HashMap<u64, Vec<Window>>,
    live: usize,
    order: VecDeque<(u64, u64, u64)>, // (hash, window id, start)
    next_id: u64,
    stats: ItemStats,
}

impl ThrState {
    fn remove(&mut self, hash: u64, id: u64) -> bool {
        let Some(v) = self.windows.get_mut(&hash) else {
            return false;
        };
        let before = v.len();
        v.retain(|w| w.id != id);
        let removed = v.len() != before;
        if v.is_empty() {
            self.windows.remove(&hash);
        }
        if removed {
            self.live -= 1;
        }
        removed
    }

    fn start_of(&self, hash: u64, id: u64) -> Option<u64> {
        self.windows
            .get(&hash)?
            .iter()
            .find(|w| w.id == id)
            .map(|w| w.start_ns)
    }

    fn expire(&mut self, now: u64) {
        let within = self.thr.within_ns;
        while let Some(&(h, id, start)) = self.order.front() {
            let live = self.start_of(h, id) == Some(start);
            if live && now.saturating_sub(start) <= within {
                break;
            }
            self.order.pop_front();
            if live {
                self.remove(h, id);
                self.stats.expired += 1;
            }
        }
    }
}

/// Sequence and threshold state for one event stream. Not `Sync`: one per worker,
/// fed in event order.
#[derive(Debug)]
pub struct Correlator {
    seqs: Vec<SeqState>,
    thrs: Vec<ThrState>,
    seq_index: Index,
    thr_index: Index,
    cap: usize,
    hasher: RandomState,
    next_sweep_ns: u64,
    // Reused buffers: the hot path allocates nothing once they have grown.
    cand: Vec<usize>,
    hits: Vec<u64>,
    done: Vec<u64>,
}

impl Correlator {
    /// The enabled (`mode: alert`) sequences and thresholds of `rules`, with the
    /// default cap.
    pub fn new(rules: &RuleSet) -> Self {
        Self::with_cap(rules, DEFAULT_CAP)
    }

    /// Like [`Correlator::new`] with `cap` open instances per sequence and windows
    /// per threshold.
    pub fn with_cap(rules: &RuleSet, cap: usize) -> Self {
        let seqs = rules
            .sequences()
            .iter()
            .filter(|s| s.mode == Mode::Alert)
            .cloned()
            .collect();
        let thrs = rules
            .thresholds()
            .iter()
            .filter(|t| t.mode == Mode::Alert)
            .cloned()
            .collect();
        Self::from_items_cap(seqs, thrs, cap)
    }

    /// Exactly these items, whatever their mode (inline tests use this).
    pub fn from_items(seqs: Vec<Arc<Sequence>>, thrs: Vec<Arc<Threshold>>) -> Self {
        Self::from_items_cap(seqs, thrs, DEFAULT_CAP)
    }

    pub fn from_items_cap(seqs: Vec<Arc<Sequence>>, thrs: Vec<Arc<Threshold>>, cap: usize) -> Self {
        let seq_index = Index::from_slots(
            seqs.iter()
                .enumerate()
                .flat_map(|(i, s)| s.steps.iter().map(move |st: &Step| (i, st.slot.clone()))),
        );
        let thr_index =
            Index::from_slots(thrs.iter().enumerate().map(|(i, t)| (i, t.slot.clone())));
        let item = |id: &str| ItemStats {
            id: id.to_owned(),
            ..ItemStats::default()
        };
        Correlator {
            seqs: seqs
                .into_iter()
                .map(|seq| SeqState {
                    stats: item(&seq.id),
                    seq,
                    instances: HashMap::new(),
                    by_scope: HashMap::new(),
                    order: VecDeque::new(),
                    next_id: 0,
                })
                .collect(),
            thrs: thrs
                .into_iter()
                .map(|thr| ThrState {
                    stats: item(&thr.id),
                    thr,
                    windows: HashMap::new(),
                    live: 0,
                    order: VecDeque::new(),
                    next_id: 0,
                })
                .collect(),
            seq_index,
            thr_index,
            cap: cap.max(1),
            hasher: RandomState::new(),
            next_sweep_ns: 0,
            cand: Vec::new(),
            hits: Vec::new(),
            done: Vec::new(),
        }
    }

    /// Feeds one event; appends completed sequences and crossed thresholds to `out`.
    pub fn observe(&mut self, scratch: &mut Scratch, ev: &Event, out: &mut Vec<CorrelationMatch>) {
        let now = ev.event.boot_ns;
        if now >= self.next_sweep_ns {
            self.expire(now);
            self.next_sweep_ns = now.saturating_add(SWEEP_EVERY_NS);
        }
        let mut cand = std::mem::take(&mut self.cand);
        self.seq_index.candidates(ev, &mut cand);
        for &i in &cand {
            self.observe_seq(i, scratch, ev, out);
        }
        self.thr_index.candidates(ev, &mut cand);
        for &i in &cand {
            self.observe_thr(i, scratch, ev, out);
        }
        self.cand = cand;
    }

    /// Drops everything older than its window as of `now_ns` (also done as events
    /// arrive; call this on idle ticks to free memory sooner).
    pub fn expire(&mut self, now_ns: u64) {
        for s in &mut self.seqs {
            s.expire(now_ns);
        }
        for t in &mut self.thrs {
            t.expire(now_ns);
        }
    }

    pub fn stats(&self) -> CorrelatorStats {
        let mut st = CorrelatorStats {
            cap: self.cap,
            ..CorrelatorStats::default()
        };
        for s in &self.seqs {
            let mut i = s.stats.clone();
            i.open = s.instances.len();
            st.open_instances += i.open;
            st.evictions += i.evictions;
            st.expired += i.expired;
            st.matches += i.matches;
            st.items.push(i);
        }
        for t in &self.thrs {
            let mut i = t.stats.clone();
            i.open = t.live;
            st.open_windows += i.open;
            st.evictions += i.evictions;
            st.expired += i.expired;
            st.matches += i.matches;
            st.items.push(i);
        }
        st
    }

    fn observe_seq(
        &mut self,
        si: usize,
        scratch: &mut Scratch,
        ev: &Event,
        out: &mut Vec<CorrelationMatch>,
    ) {
        let now = ev.event.boot_ns;
        let cap = self.cap;
        let hasher = &self.hasher;
        let st = &mut self.seqs[si];
        st.expire(now);
        let seq = st.seq.clone();
        let buf = eval::scratch_buf(scratch);

        // 1. Advance open instances whose scope covers the event.
        let later = seq.steps.get(1..).unwrap_or_default();
        if !st.instances.is_empty() && later.iter().any(|s| accepts(&s.slot, ev)) {
            self.hits.clear();
            let p = &ev.process;
            let mut look = |k: Key<&str>| {
                if let Some(ids) = st.by_scope.get(&hasher.hash_one(&k)) {
                    self.hits.extend_from_slice(ids);
                }
            };
            match seq.by {
                Scope::Process => look(Key::Pid(p.pid)),
                Scope::ProcessTree => {
                    look(Key::Pid(p.pid));
                    for a in p.parent.iter().chain(p.ancestry.iter()) {
                        if a.pid != 0 {
                            look(Key::Pid(a.pid));
                        }
                    }
                }
                Scope::Container => look(container_key(ev)),
                Scope::File => {
                    if let Some(f) = ev.file.as_ref().and_then(|f| f.path.as_deref()) {
                        look(Key::Name(f));
                    }
                    if let Some(e) = p.executable.as_deref() {
                        look(Key::Name(e));
                    }
                }
                Scope::Host => look(Key::All),
            }
            self.hits.sort_unstable();
            self.hits.dedup();
            self.done.clear();
            for &id in &self.hits {
                let Some(inst) = st.instances.get_mut(&id) else {
                    continue;
                };
                if !in_scope(seq.by, &inst.key, ev) {
                    continue; // hash collision
                }
                let Some(step) = seq.steps.get(inst.next) else {
                    continue;
                };
                if !accepts(&step.slot, ev) || !eval::eval(&step.condition, ev, buf, &inst.caps) {
                    continue;
                }
                let Some(caps) = take_captures(&step.captures, ev, buf) else {
                    continue;
                };
                for (slot, v) in caps {
                    if let Some(c) = inst.caps.get_mut(slot) {
                        *c = v;
                    }
                }
                inst.steps.push(StepSummary::of(&step.name, ev));
                inst.next += 1;
                if inst.next == seq.steps.len() {
                    self.done.push(id);
                }
            }
            for &id in &self.done {
                if let Some(inst) = st.remove(id) {
                    st.stats.matches += 1;
                    out.push(seq_match(&seq, inst, ev, buf));
                }
            }
        }

        // 2. Start a new instance on a step-1 match.
        let Some(first) = seq.steps.first() else {
            return;
        };
        if !accepts(&first.slot, ev) || !eval::eval(&first.condition, ev, buf, &[]) {
            return;
        }
        let key: Key<&str> = match seq.by {
            Scope::Process | Scope::ProcessTree => Key::Pid(ev.process.pid),
            Scope::Container => container_key(ev),
            Scope::File => match file_key(ev) {
                Some(f) => Key::Name(f),
                None => return, // nothing to tie later steps to
            },
            Scope::Host => Key::All,
        };
        let Some(taken) = take_captures(&first.captures, ev, buf) else {
            return;
        };
        let mut caps = vec![String::new(); seq.capture_names.len()];
        for (slot, v) in taken {
            if let Some(c) = caps.get_mut(slot) {
                *c = v;
            }
        }
        let hash = hasher.hash_one(&key);
        // A repeat of step 1 in the same scope with the same captures restarts the
        // existing instance instead of piling up duplicates (e.g. many writes).
        let dup = st.by_scope.get(&hash).and_then(|ids| {
            ids.iter().copied().find(|id| {
                st.instances
                    .get(id)
                    .is_some_and(|i| i.next == 1 && i.key.is(&key) && i.caps == caps)
            })
        });
        if let Some(id) = dup {
            st.remove(id);
        }
        st.insert(
            Instance {
                key: owned(&key),
                hash,
                start_ns: now,
                next: 1,
                caps,
                steps: vec![StepSummary::of(&first.name, ev)],
            },
            cap,
        );
    }

    fn observe_thr(
        &mut self,
        ti: usize,
        scratch: &mut Scratch,
        ev: &Event,
        out: &mut Vec<CorrelationMatch>,
    ) {
        let now = ev.event.boot_ns;
        let cap = self.cap;
        let st = &mut self.thrs[ti];
        let thr = st.thr.clone();
        let buf = eval::scratch_buf(scratch);
        if !eval::eval(&thr.condition, ev, buf, &[]) {
            return;
        }
        st.expire(now);
        let key: Key<&str> = match thr.by {
            ThresholdScope::Process => Key::Pid(ev.process.pid),
            ThresholdScope::ProcessTree => Key::Pid(tree_root(ev, DEFAULT_STOP_LIST).0),
            ThresholdScope::Container => container_key(ev),
            ThresholdScope::Host => Key::All,
            ThresholdScope::User => Key::Uid(ev.user.id),
        };
        let value = match &thr.distinct_field {
            Some((f, ty)) => match field_value(f, *ty, ev, buf) {
                Some(v) => Some(v),
                None => return, // nothing to count
            },
            None => None,
        };
        let hash = self.hasher.hash_one(&key);
        let found = st
            .windows
            .get(&hash)
            .and_then(|v| v.iter().find(|w| w.key.is(&key)))
            .map(|w| (w.id, w.start_ns));
        // A window older than `within` that `expire` kept (out-of-order time) is over.
        if let Some((id, start)) = found
            && now.saturating_sub(start) > thr.within_ns
        {
            st.remove(hash, id);
        }
        let exists = st
            .windows
            .get(&hash)
            .is_some_and(|v| v.iter().any(|w| w.key.is(&key)));
        if !exists {
            while st.live >= cap {
                let Some((h, id, _)) = st.order.pop_front() else {
                    break;
                };
                if st.remove(h, id) {
                    st.stats.evictions += 1;
                }
            }
            let id = st.next_id;
            st.next_id += 1;
            st.order.push_back((hash, id, now));
            st.windows.entry(hash).or_default().push(Window {
                key: owned(&key),
                id,
                start_ns: now,
                count: 0,
                distinct: HashSet::new(),
                fired: false,
                first: StepSummary::of("first", ev),
            });
            st.live += 1;
        }
        let Some(w) = st
            .windows
            .get_mut(&hash)
            .and_then(|v| v.iter_mut().find(|w| w.key.is(&key)))
        else {
            return;
        };
        if w.fired {
            return; // once per window; the window ends `within` after it started
        }
        let n = match value {
            Some(v) => {
                w.distinct.insert(v.into_boxed_str());
                w.distinct.len() as u64
            }
            None => {
                w.count += 1;
                w.count
            }
        };
        if n < thr.count {
            return;
        }
        w.fired = true;
        // The distinct set is no longer needed once fired.
        w.distinct = HashSet::new();
        st.stats.matches += 1;
        let count = n.to_string();
        let message = eval::render_vars(&thr.output, ev, buf, &[&count, &thr.within]);
        out.push(CorrelationMatch {
            rule_id: thr.id.clone(),
            name: thr.name.clone(),
            severity: thr.severity,
            tactics: thr.tactics.clone(),
            techniques: thr.techniques.clone(),
            tags: thr.tags.clone(),
            message,
            steps: vec![w.first.clone(), StepSummary::of("last", ev)],
            kind: CorrelationKind::Threshold,
            scope: w.key.describe(thr.by.as_str()),
            first_ns: w.start_ns,
            last_ns: now,
            count: n,
        });
    }
}

fn seq_match(seq: &Sequence, inst: Instance, ev: &Event, buf: &mut String) -> CorrelationMatch {
    let mut vars: Vec<&str> = vec![&seq.within];
    vars.extend(inst.caps.iter().map(String::as_str));
    let message = eval::render_vars(&seq.output, ev, buf, &vars);
    CorrelationMatch {
        rule_id: seq.id.clone(),
        name: seq.name.clone(),
        severity: seq.severity,
        tactics: seq.tactics.clone(),
        techniques: seq.techniques.clone(),
        tags: seq.tags.clone(),
        message,
        kind: CorrelationKind::Sequence,
        scope: inst.key.describe(seq.by.as_str()),
        first_ns: inst.start_ns,
        last_ns: ev.event.boot_ns,
        count: inst.steps.len() as u64,
        steps: inst.steps,
    }
}
