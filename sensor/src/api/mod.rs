//! The local control API: a Unix socket (mode 0660, peers checked with SO_PEERCRED) speaking
//! JSON lines. One request line in; one or more response lines out.
//!
//! `hub` fans events out to subscribers (`sensor events tail`, `sensor record`), each with its
//! own bounded queue: a slow subscriber loses events (counted, and told so in-band), never
//! slowing the pipeline or other subscribers.

pub mod client;
pub mod feed;
pub mod hub;
pub mod peers;
pub mod server;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    event::{Event, Kind},
    probes::{AttachReport, KindCounters},
    stats::LossSnapshot,
};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot bind the control socket {path}: {source}")]
    Bind {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "cannot reach the agent at {path}: {source} (is `sensor run` running, with the same --state-dir?)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad message from the {side}: {message}")]
    Protocol { side: &'static str, message: String },
    #[error("the agent refused the request: {0}")]
    Refused(String),
    #[error("the agent closed the connection without answering")]
    NoAnswer,
    #[error("api.{key}: {message}")]
    Config { key: &'static str, message: String },
}

/// `[api]`: who may use the control socket, and the remote API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Group owning the control socket (mode 0660), by name or number; unset: the agent's.
    pub socket_group: Option<String>,
    /// Users (names or uids) allowed on the socket besides root and the agent's own user.
    pub allow_uids: Vec<String>,
    /// Groups (names or gids) whose members are allowed, by primary or supplementary group.
    pub allow_groups: Vec<String>,
    pub remote: crate::remote::RemoteConfig,
}

/// What a client may ask.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Status,
    /// Open incidents and the recently closed ones the agent still holds.
    Incidents,
    /// A `sensor baseline ...` command, run by the agent on its live baselines.
    Baseline {
        command: crate::baseline::Command,
    },
    /// Raise `count` test alerts (rule `sensor.test`) through every output: checks delivery
    /// end to end, as `sensor alerts test` does.
    TestAlert {
        #[serde(default = "one")]
        count: u32,
        #[serde(default = "test_severity")]
        severity: crate::alert::Severity,
        #[serde(default)]
        message: Option<String>,
    },
    /// A containment request (`sensor contain ...`, `sensor release ...`), run by the
    /// responder with the guards and the audit trail.
    Contain {
        request: crate::respond::responder::ContainRequest,
    },
    /// `sensor token ...`: remote API tokens.
    Token {
        command: crate::remote::tokens::TokenCommand,
    },
    /// Reload rules and indicators now (as SIGHUP does).
    ReloadRules,
    /// Recent alerts (up to `recent`, oldest first), then, with `follow`, live ones.
    Alerts {
        #[serde(default)]
        follow: bool,
        #[serde(default)]
        recent: usize,
        #[serde(default)]
        filter: feed::AlertQuery,
    },
    /// Recent events (up to `recent`), then, with `follow`, live ones until the client leaves.
    Events {
        #[serde(default)]
        follow: bool,
        #[serde(default)]
        recent: usize,
        #[serde(default)]
        filter: EventFilter,
    },
}

fn one() -> u32 {
    1
}

fn test_severity() -> crate::alert::Severity {
    crate::alert::Severity::Info
}

/// Most test alerts one request may raise.
pub const MAX_TEST_ALERTS: u32 = 100_000;

/// One line of a response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Status(Box<StatusReport>),
    Incidents(Vec<crate::rules::incidents::Incident>),
    Baseline(Box<crate::baseline::Reply>),
    Event(Box<Event>),
    /// The subscriber's queue overflowed: this many events were lost to it since the last
    /// such line.
    Lost(u64),
    /// A following subscription is registered: every event from here on reaches it. The
    /// first line of a `follow` answer.
    Subscribed,
    /// Test alerts handed to the pipeline (their ids).
    TestAlerts(Vec<String>),
    Contain(Box<crate::respond::responder::ContainReply>),
    Token(Box<crate::remote::tokens::TokenReply>),
    /// A request the agent took (a reload): what it will do.
    Accepted(String),
    Alert(Box<feed::Numbered>),
    Error(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<Kind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Container id or a prefix of it (`host` matches events outside containers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only this process and its descendants (by parent and ancestry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<u32>,
}

impl EventFilter {
    pub fn matches(&self, ev: &Event) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&ev.event.kind))
            && self.pid.is_none_or(|p| p == ev.process.pid)
            && self.comm.as_deref().is_none_or(|c| c == ev.process.name)
            && self.action.as_deref().is_none_or(|a| a == ev.event.action)
            && self.tree.is_none_or(|root| {
                ev.process.pid == root
                    || ev.process.parent.as_ref().is_some_and(|p| p.pid == root)
                    || ev.process.ancestry.iter().any(|a| a.pid == root)
            })
            && self
                .container
                .as_deref()
                .is_none_or(|c| match &ev.container {
                    Some(ct) => ct.id.starts_with(c),
                    None => c == "host",
                })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StatusReport {
    pub version: String,
    pub pid: u32,
    pub uptime_secs: u64,
    /// `full`, or `empty` (benchmark mode: probes attached, doing nothing).
    pub mode: String,
    pub probes: AttachReport,
    /// Kernel counters by kind: seen, dropped (ring full), filtered (on purpose), errors.
    pub kernel: BTreeMap<String, KindCounters>,
    /// Records decoded in userspace, by kind. Per kind, `seen = received + dropped` once the
    /// ring is drained.
    pub received: BTreeMap<String, u64>,
    pub reader_records: u64,
    pub reader_bytes: u64,
    pub losses: LossSnapshot,
    pub process_table_len: u64,
    pub process_table_evictions: u64,
    pub cgroups_known: u64,
    pub alerts: u64,
    pub alert_log_errors: u64,
    pub ioc_indicators: u64,
    /// Kernel event to alert, over the most recent alerts.
    pub alert_latency_p50_ms: f64,
    pub alert_latency_p99_ms: f64,
    pub alert_latency_samples: usize,
    pub subscribers: usize,
    pub state_dir: String,
    pub rules: RulesStatus,
    #[serde(default)]
    pub baseline: BaselineStatus,
    /// Alert sinks (`[[outputs]]`) and their delivery counters.
    #[serde(default)]
    pub outputs: Vec<crate::output::SinkStatus>,
    /// Where Prometheus metrics are served, if anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
    #[serde(default)]
    pub respond: RespondStatus,
    #[serde(default)]
    pub self_protection: SelfProtectionStatus,
    /// The remote API, when enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_api: Option<crate::remote::RemoteStatus>,
}

/// Least privilege and self-protection in `sensor status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SelfProtectionStatus {
    /// Capabilities the agent still holds (every thread, bounding set cut to them).
    pub capabilities: Vec<String>,
    /// Capabilities dropped after attaching.
    pub capabilities_dropped: Vec<String>,
    /// Every thread holds exactly `capabilities`.
    pub threads_uniform: bool,
    /// Why capabilities were not dropped, if they were not.
    pub capabilities_error: Option<String>,
    /// Signals and ptrace aimed at the agent are refused (BPF LSM), or why not.
    pub refusing: bool,
    pub refusing_reason: Option<String>,
    pub signals_denied: u64,
    pub ptrace_denied: u64,
    /// Files and directories whose modification raises a critical alert.
    pub protected: Vec<String>,
    pub supervisor_pid: u32,
    /// systemd notification socket in use, and the watchdog interval.
    pub sd_notify: bool,
    pub watchdog_secs: Option<f64>,
    pub heartbeat_secs: u64,
}

/// Containment in `sensor status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RespondStatus {
    pub playbooks: usize,
    pub active: usize,
    pub pending_approval: usize,
    pub counters: crate::respond::responder::Counters,
    /// Processes with recent events held for evidence, and what the bounds cost.
    pub history_processes: usize,
    pub history_events_overwritten: u64,
    pub history_processes_evicted: u64,
    /// Exec denials, refused connects and dropped packets of containment, from the kernel.
    #[serde(default)]
    pub kernel: crate::probes::contain::ContainCounts,
}

/// Baselines in `sensor status`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BaselineStatus {
    pub enabled: bool,
    /// Why baselines are off although enabled (a damaged or foreign store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub workloads: usize,
    pub learning: usize,
    pub monitoring: usize,
    pub frozen: usize,
    /// Values learned across all workloads, and the store's size on disk.
    pub values: usize,
    pub store_bytes: u64,
    pub processes_tracked: usize,
    /// The kernel records syscalls of learning workloads (the program is attached).
    pub syscall_learning: bool,
    /// Workloads whose profile the kernel shadows or enforces, and the backends it uses.
    #[serde(default)]
    pub enforced_in_kernel: usize,
    #[serde(default)]
    pub enforcement_backend: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforcement_error: Option<String>,
    pub stats: crate::baseline::engine::EngineStats,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RulesStatus {
    pub loaded: usize,
    pub enabled: usize,
    pub sources: Vec<String>,
    /// Successful loads since start (the first one included).
    pub generation: u64,
    /// The last refused reload: every problem, located.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_error: Vec<String>,
}
