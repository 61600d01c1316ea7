//! Incidents: alerts grouped by the process tree they came from (else by container,
//! else the host), closed after a period of inactivity.
//!
//! Tree root = walking up from the alerting process (`process.parent`, then
//! `process.ancestry`), the oldest ancestor reached before a *stop* process: one of
//! the configurable stop list (init, systemd, sshd, container shims, terminal
//! multiplexers, cron ...), pid ≤ 1, or an unknown pid. Events carry no session id,
//! so session leaders are recognised by name through the same list. With the default
//! list, everything an SSH user runs groups under their login shell, and everything
//! in a container under its entrypoint.
//!
//! The tracker is serde-serializable (to persist across restarts); [`Incident`] is
//! the record to write as one JSONL line when it closes ([`IncidentTracker::take_closed`]).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::attack;
use crate::alert::{Alert, Severity};
use crate::event::Event;

/// Process names that bound a tree (see the module docs).
pub const DEFAULT_STOP_LIST: &[&str] = &[
    "init",
    "systemd",
    "sshd",
    "sshd-session",
    "login",
    "agetty",
    "containerd",
    "containerd-shim",
    "containerd-shim-runc-v1",
    "containerd-shim-runc-v2",
    "runc",
    "conmon",
    "dockerd",
    "tmux: server",
    "screen",
    "cron",
    "crond",
    "kthreadd",
];

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// (pid, executable-or-name) of the tree root of `ev`'s process; `(0, "")` when the
/// event has no process.
pub fn tree_root<'e, S: AsRef<str>>(ev: &'e Event, stop: &[S]) -> (u32, &'e str) {
    let p = &ev.process;
    let mut root = (p.pid, p.executable.as_deref().unwrap_or(p.name.as_str()));
    for a in p.parent.iter().chain(p.ancestry.iter()) {
        let exe = a.executable.as_deref().or(a.name.as_deref()).unwrap_or("");
        let names = [basename(exe), a.name.as_deref().unwrap_or("")];
        let stopped = a.pid <= 1
            || names
                .iter()
                .any(|n| !n.is_empty() && stop.iter().any(|s| s.as_ref() == *n));
        if stopped {
            break;
        }
        root = (a.pid, exe);
    }
    root
}

/// Incident id: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub String);

impl std::fmt::Display for IncidentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Closed,
}

/// What an incident is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IncidentScope {
    ProcessTree {
        root_pid: u32,
        root_exe: String,
        #[serde(default)]
        container_id: Option<String>,
    },
    Container {
        id: String,
    },
    Host,
}

impl IncidentScope {
    /// The grouping key. Includes the container so equal pids in different pid
    /// namespaces (if a producer ever reports namespaced pids) never merge.
    fn key(&self) -> String {
        match self {
            IncidentScope::ProcessTree {
                root_pid,
                root_exe,
                container_id,
            } => format!(
                "tree:{}:{root_pid}:{root_exe}",
                container_id.as_deref().unwrap_or("")
            ),
            IncidentScope::Container { id } => format!("container:{id}"),
            IncidentScope::Host => "host".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: IncidentId,
    pub status: Status,
    pub scope: IncidentScope,
    /// Event times (`boot_ns`) of the first and latest alert.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Alert times (RFC 3339) of the first and latest alert.
    pub first_time: String,
    pub last_time: String,
    /// The highest alert severity.
    pub severity: Severity,
    /// Alert ids in arrival order (at most `max_alert_ids`; `alert_count` counts all).
    pub alert_ids: Vec<String>,
    pub alert_count: u64,
    /// Distinct rule ids, first-seen order.
    pub rules: Vec<String>,
    /// ATT&CK progression: distinct tactics and techniques, first-seen order.
    pub tactics: Vec<String>,
    pub techniques: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentConfig {
    /// An incident with no alert for this long (event time) closes.
    pub inactivity_ns: u64,
    /// Process names that bound a process tree.
    pub stop_list: Vec<String>,
    /// Alert ids kept per incident.
    pub max_alert_ids: usize,
    /// Closed incidents kept for queries (oldest dropped first); persist them with
    /// [`IncidentTracker::take_closed`].
    pub max_closed: usize,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            inactivity_ns: 30 * 60 * 1_000_000_000,
            stop_list: DEFAULT_STOP_LIST.iter().map(|s| (*s).to_owned()).collect(),
            max_alert_ids: 1_000,
            max_closed: 10_000,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IncidentTracker {
    config: IncidentConfig,
    /// All retained incidents by id (UUIDv7: creation order).
    incidents: BTreeMap<IncidentId, Incident>,
    /// Scope key → the open incident for it.
    open: HashMap<String, IncidentId>,
    /// Closed, not yet taken by `take_closed`, oldest first.
    #[serde(default)]
    closed_queue: Vec<IncidentId>,
}

impl IncidentTracker {
    pub fn new(config: IncidentConfig) -> Self {
        IncidentTracker {
            config,
            ..IncidentTracker::default()
        }
    }

    pub fn config(&self) -> &IncidentConfig {
        &self.config
    }

    /// The scope an alert on `ev` belongs to.
    pub fn scope_of(&self, ev: &Event) -> IncidentScope {
        let (pid, exe) = tree_root(ev, &self.config.stop_list);
        let container = ev.container.as_ref().map(|c| c.id.clone());
        if pid > 1 {
            IncidentScope::ProcessTree {
                root_pid: pid,
                root_exe: exe.to_owned(),
                container_id: container,
            }
        } else if let Some(id) = container {
            IncidentScope::Container { id }
        } else {
            IncidentScope::Host
        }
    }

    /// Adds an alert raised on `ev` at `now_ns` (event time, `boot_ns`); returns the
    /// incident it joined or opened. Closes idle incidents first.
    pub fn add(&mut self, alert: &Alert, ev: &Event, now_ns: u64) -> IncidentId {
        self.tick(now_ns);
        let scope = self.scope_of(ev);
        let key = scope.key();
        let id = match self.open.get(&key) {
            Some(id) => id.clone(),
            None => {
                let id = IncidentId(uuid::Uuid::now_v7().to_string());
                self.incidents.insert(
                    id.clone(),
                    Incident {
                        id: id.clone(),
                        status: Status::Open,
                        scope,
                        first_ns: now_ns,
                        last_ns: now_ns,
                        first_time: alert.time.clone(),
                        last_time: alert.time.clone(),
                        severity: alert.severity,
                        alert_ids: Vec::new(),
                        alert_count: 0,
                        rules: Vec::new(),
                        tactics: Vec::new(),
                        techniques: Vec::new(),
                    },
                );
                self.open.insert(key, id.clone());
                id
            }
        };
        if let Some(inc) = self.incidents.get_mut(&id) {
            absorb(inc, alert, now_ns, self.config.max_alert_ids);
        }
        id
    }

    /// Closes incidents idle for longer than the inactivity window as of `now_ns`;
    /// returns their ids.
    pub fn tick(&mut self, now_ns: u64) -> Vec<IncidentId> {
        let limit = self.config.inactivity_ns;
        let incidents = &mut self.incidents;
        let mut closed = Vec::new();
        self.open.retain(|_, id| {
            let Some(inc) = incidents.get_mut(id) else {
                return false;
            };
            if now_ns.saturating_sub(inc.last_ns) > limit {
                inc.status = Status::Closed;
                closed.push(id.clone());
                false
            } else {
                true
            }
        });
        closed.sort();
        self.closed_queue.extend(closed.iter().cloned());
        self.prune();
        closed
    }

    /// Closed incidents not taken before, oldest first, for persisting as JSONL.
    /// They stay queryable until pruned by `max_closed`.
    pub fn take_closed(&mut self) -> Vec<Incident> {
        std::mem::take(&mut self.closed_queue)
            .iter()
            .filter_map(|id| self.incidents.get(id).cloned())
            .collect()
    }

    fn prune(&mut self) {
        let closed = self.incidents.len() - self.open.len();
        let mut excess = closed.saturating_sub(self.config.max_closed);
        if excess == 0 {
            return;
        }
        let victims: Vec<IncidentId> = self
            .incidents
            .values()
            .filter(|i| i.status == Status::Closed)
            .map(|i| i.id.clone())
            .take(excess)
            .collect();
        for v in victims {
            self.incidents.remove(&v);
            excess -= 1;
        }
        debug_assert_eq!(excess, 0);
    }

    /// Open incidents, oldest first.
    pub fn open(&self) -> Vec<&Incident> {
        self.incidents
            .values()
            .filter(|i| i.status == Status::Open)
            .collect()
    }

    pub fn get(&self, id: &IncidentId) -> Option<&Incident> {
        self.incidents.get(id)
    }

    /// Every retained incident, oldest first.
    pub fn all(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }
}

fn push_distinct(v: &mut Vec<String>, s: &str) {
    if !v.iter().any(|x| x == s) {
        v.push(s.to_owned());
    }
}

fn absorb(inc: &mut Incident, alert: &Alert, now_ns: u64, max_ids: usize) {
    if now_ns >= inc.last_ns {
        inc.last_ns = now_ns;
        inc.last_time = alert.time.clone();
    }
    inc.severity = inc.severity.max(alert.severity);
    inc.alert_count += 1;
    if inc.alert_ids.len() < max_ids {
        inc.alert_ids.push(alert.id.clone());
    }
    push_distinct(&mut inc.rules, &alert.rule.id);
    // Tactics as the producer stated them (`fields.tactics`, set by
    // `CorrelationMatch::to_alert`), else those of the techniques, table order.
    let stated: Vec<&str> = alert
        .fields
        .get("tactics")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|t| t.as_str()).collect())
        .unwrap_or_default();
    if stated.is_empty() {
        for t in &alert.mitre {
            if let Some(tech) = attack::technique(t) {
                for tac in tech.tactics {
                    push_distinct(&mut inc.tactics, tac);
                }
            }
        }
    } else {
        for tac in stated {
            push_distinct(&mut inc.tactics, tac);
        }
    }
    for t in &alert.mitre {
        push_distinct(&mut inc.techniques, t);
    }
}
