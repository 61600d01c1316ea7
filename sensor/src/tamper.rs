//! Self-protection in userspace: attacks on the sensor itself, seen in the same event stream
//! as everything else, become critical alerts.
//!
//! - signals aimed at the agent (the `guard` probe reports them; refused ones too, where BPF
//!   LSM refuses them) from anyone but its supervisors;
//! - ptrace of the agent, and opens of its memory through /proc;
//! - writes, renames, deletions, chmods and truncations of its binary, config, rules, IOC
//!   lists, playbooks, state and alert log;
//! - BPF programs or links detached, or links re-pointed, by other processes.
//!
//! And a heartbeat record in the alert log, so a SIEM notices a sensor that went dark.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    alert::{Alert, Severity, TechniqueId},
    event::{Event, Kind},
};

pub const RULE_SIGNAL: &str = "sensor.tamper.signal";
pub const RULE_PTRACE: &str = "sensor.tamper.ptrace";
pub const RULE_MEMORY: &str = "sensor.tamper.memory";
pub const RULE_FILE: &str = "sensor.tamper.file";
pub const RULE_BPF: &str = "sensor.tamper.bpf";
pub const RULE_HEARTBEAT: &str = "sensor.heartbeat";

/// `[self_protection]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SelfProtectionConfig {
    /// Drop every capability the running agent does not need once the probes are attached.
    pub drop_capabilities: bool,
    /// Where BPF LSM loads: refuse kill-class signals and ptrace attach aimed at the agent
    /// from anyone but init, the process that started it, and that process's children.
    pub deny_signals: bool,
    /// Alerts for attacks on the sensor (signals, ptrace, its files, its BPF programs).
    pub alerts: bool,
    /// A `sensor.heartbeat` record this often (0: none).
    pub heartbeat_secs: u64,
}

impl Default for SelfProtectionConfig {
    fn default() -> Self {
        Self {
            drop_capabilities: true,
            deny_signals: true,
            alerts: true,
            heartbeat_secs: 60,
        }
    }
}

/// bpf(2) commands that take a program or link away from whoever attached it.
const BPF_PROG_DETACH: u64 = 9;
const BPF_LINK_UPDATE: u64 = 29;
const BPF_LINK_DETACH: u64 = 34;

/// Signals that cannot hurt the agent: probes, reload, continue, child and window changes.
fn harmless(sig: u64) -> bool {
    matches!(sig, 0 | 1 | 17 | 18 | 23 | 28)
}

pub fn signal_name(sig: u64) -> String {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES
        .get(sig as usize)
        .map(|s| (*s).to_owned())
        .unwrap_or_else(|| format!("signal {sig}"))
}

/// What the agent guards, and who may stop it.
#[derive(Debug, Clone)]
pub struct Tamper {
    agent: u32,
    supervisor: u32,
    /// Files and directories (a directory covers everything below it), with what they are.
    protected: Vec<(PathBuf, &'static str)>,
}

impl Tamper {
    pub fn new(agent: u32, supervisor: u32) -> Self {
        Self {
            agent,
            supervisor,
            protected: Vec::new(),
        }
    }

    /// Guards `path` (made absolute and, when it exists, canonical: events carry resolved
    /// paths). Relative paths and the root directory are ignored.
    pub fn protect(&mut self, path: &Path, what: &'static str) {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if path.is_absolute() && path != Path::new("/") {
            self.protected.push((path, what));
        }
    }

    pub fn protected(&self) -> impl Iterator<Item = (&Path, &'static str)> {
        self.protected.iter().map(|(p, w)| (p.as_path(), *w))
    }

    /// The process that started the agent changes when it dies (the agent is re-parented).
    pub fn set_supervisor(&mut self, supervisor: u32) {
        self.supervisor = supervisor;
    }

    fn guarded(&self, path: &str) -> Option<(&Path, &'static str)> {
        let p = Path::new(path);
        self.protected
            .iter()
            .find(|(g, _)| p.starts_with(g))
            .map(|(g, w)| (g.as_path(), *w))
    }

    /// `/proc/<agent>/mem` or `/proc/<agent>/task/<tid>/mem`.
    fn agent_memory(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix("/proc/") else {
            return false;
        };
        let mut parts = rest.split('/');
        let Some(pid) = parts.next() else {
            return false;
        };
        if pid.parse::<u32>().ok() != Some(self.agent) {
            return false;
        }
        let tail: Vec<&str> = parts.collect();
        matches!(tail.as_slice(), ["mem"] | ["task", _, "mem"])
    }

    fn is_agent_thread(&self, pid: u32) -> bool {
        pid == self.agent || Path::new(&format!("/proc/{}/task/{pid}", self.agent)).exists()
    }

    /// An alert when `ev` is an attack on the sensor.
    pub fn check(&self, ev: &Event) -> Option<Alert> {
        if ev.event.kind == Kind::File {
            return self.check_file(ev);
        }
        let sys = ev.syscall.as_ref()?;
        let arg = |k: &str| sys.args.get(k).and_then(|v| v.as_u64());
        let sender = ev.process.pid;
        match (ev.event.kind, sys.name.as_str()) {
            (Kind::Privilege, "signal") => {
                let sig = arg("signal")?;
                let trusted = sender == self.agent
                    || sender == 1
                    || sender == self.supervisor
                    || ev.process.parent.as_ref().map(|p| p.pid) == Some(self.supervisor);
                if trusted || harmless(sig) {
                    return None;
                }
                let refused = sys.ret == -1;
                let name = signal_name(sig);
                let message = if refused {
                    format!("{name} to the sensor (pid {}) refused", self.agent)
                } else {
                    format!("{name} sent to the sensor (pid {})", self.agent)
                };
                Some(
                    self.alert(ev, RULE_SIGNAL, "Signal aimed at the sensor", message)
                        .with_field("signal", sig)
                        .with_field("signal_name", name)
                        .with_field("refused", refused),
                )
            }
            (Kind::Privilege, "ptrace") => {
                let target = arg("target_pid")? as u32;
                if target == 0 || !self.is_agent_thread(target) {
                    return None;
                }
                Some(
                    self.alert(
                        ev,
                        RULE_PTRACE,
                        "Sensor traced by another process",
                        format!(
                            "ptrace request {} on the sensor (pid {}){}",
                            arg("request").unwrap_or(0),
                            self.agent,
                            refused_suffix(sys.ret)
                        ),
                    )
                    .with_field("refused", sys.ret < 0),
                )
            }
            (Kind::Privilege, "bpf") => {
                let cmd = arg("cmd")?;
                let what = match cmd {
                    BPF_PROG_DETACH => "BPF_PROG_DETACH",
                    BPF_LINK_DETACH => "BPF_LINK_DETACH",
                    BPF_LINK_UPDATE => "BPF_LINK_UPDATE",
                    _ => return None,
                };
                // systemd detaches its own cgroup device and firewall programs as units stop.
                if cmd == BPF_PROG_DETACH && sender == 1 {
                    return None;
                }
                let mut alert = self.alert(
                    ev,
                    RULE_BPF,
                    "BPF program detached or replaced",
                    format!(
                        "{what} by another process: security probes may be blinded{}",
                        refused_suffix(sys.ret)
                    ),
                );
                // Not necessarily ours: the command does not say whose program it was.
                alert.severity = Severity::High;
                Some(alert.with_field("bpf_command", what))
            }
            _ => None,
        }
    }

    /// File events carry no syscall block unless they have arguments: the action names the
    /// call and the outcome says whether it failed.
    fn check_file(&self, ev: &Event) -> Option<Alert> {
        let op = ev.event.action.as_str();
        let failed = ev.event.outcome == Some(crate::event::Outcome::Failure);
        let ret = ev
            .syscall
            .as_ref()
            .map(|s| s.ret)
            .unwrap_or(if failed { -1 } else { 0 });
        let file = ev.file.as_ref()?;
        let path = file.path.as_deref().unwrap_or("");
        if self.agent_memory(path) {
            return Some(
                self.alert(
                    ev,
                    RULE_MEMORY,
                    "Sensor memory opened",
                    format!("{path} opened{}", refused_suffix(ret)),
                )
                .with_field("refused", ret < 0),
            );
        }
        let modifies = match op {
            "open" | "openat" | "openat2" => file.flags.is_some_and(write_intent),
            "creat" | "unlink" | "unlinkat" | "rename" | "renameat" | "renameat2" | "chmod"
            | "fchmodat" | "fchmodat2" | "truncate" => true,
            _ => false,
        };
        if !modifies {
            return None;
        }
        let hit = self
            .guarded(path)
            .or_else(|| file.target_path.as_deref().and_then(|t| self.guarded(t)))?;
        let mut alert = self.alert(
            ev,
            RULE_FILE,
            "Sensor file modified",
            format!(
                "{op} of {path} ({}, under {}){}",
                hit.1,
                hit.0.display(),
                refused_suffix(ret)
            ),
        );
        if hit.1 == "alert log" {
            // Deleting or rewriting the alert log is indicator removal.
            alert = alert.with_technique(technique("T1070"));
        }
        Some(alert.with_field("protected", hit.1))
    }

    fn alert(&self, ev: &Event, rule: &str, name: &str, message: String) -> Alert {
        let mut alert = crate::pipeline::alert_context(
            Alert::new(rule, name, Severity::Critical, message)
                .with_technique(technique("T1562.001"))
                .with_tag("sensor-tamper")
                .with_field("sensor_pid", self.agent),
            ev,
        );
        if let Ok(t) = time::OffsetDateTime::parse(
            &ev.timestamp,
            &time::format_description::well_known::Rfc3339,
        ) {
            alert = alert.with_time(t);
        }
        alert
    }
}

fn technique(id: &str) -> TechniqueId {
    // The ids used here are constants known to parse.
    TechniqueId::parse(id).unwrap_or_else(|_| TechniqueId::parse("T1562").expect("valid id"))
}

fn refused_suffix(ret: i64) -> String {
    if ret < 0 {
        format!(" (failed: errno {})", -ret)
    } else {
        String::new()
    }
}

fn write_intent(flags: u64) -> bool {
    const O_WRONLY: u64 = 0o1;
    const O_RDWR: u64 = 0o2;
    const O_CREAT: u64 = 0o100;
    const O_TRUNC: u64 = 0o1000;
    const O_APPEND: u64 = 0o2000;
    flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND) != 0
}

/// The periodic "still here" record: what a SIEM watches for gaps.
pub fn heartbeat(sequence: u64, uptime_secs: u64, events: u64, alerts: u64, lost: u64) -> Alert {
    Alert::new(
        RULE_HEARTBEAT,
        "Sensor heartbeat",
        Severity::Info,
        format!("sensor alive: up {uptime_secs} s, {events} events, {alerts} alerts, {lost} lost"),
    )
    .with_tag("sensor-health")
    .with_field("heartbeat", sequence)
    .with_field("uptime_secs", uptime_secs)
    .with_field("events", events)
    .with_field("alerts", alerts)
    .with_field("lost", lost)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{File, Syscall};

    fn event(kind: Kind, name: &str, args: serde_json::Value, ret: i64, pid: u32) -> Event {
        let mut ev = crate::baseline::tests::event(kind, name);
        ev.process.pid = pid;
        ev.process.executable = Some("/tmp/evil\u{1b}[31m".into());
        ev.event.kind = kind;
        ev.syscall = Some(Syscall {
            name: name.into(),
            ret,
            args: args.as_object().cloned().unwrap_or_default(),
            ..Default::default()
        });
        ev
    }

    fn guard() -> Tamper {
        let mut t = Tamper::new(4242, 100);
        t.protect(Path::new("/etc/sensor"), "config");
        t.protect(Path::new("/var/log/sensor"), "alert log");
        t
    }

    #[test]
    fn harmful_signals_from_strangers_alert_and_supervisors_do_not() {
        let t = guard();
        let stop = |pid| {
            event(
                Kind::Privilege,
                "signal",
                serde_json::json!({"signal": 19, "target_pid": 4242}),
                0,
                pid,
            )
        };
        let a = t.check(&stop(777)).expect("SIGSTOP alerts");
        assert_eq!(a.rule.id, RULE_SIGNAL);
        assert_eq!(a.severity, Severity::Critical);
        assert!(a.message.contains("SIGSTOP"), "{}", a.message);
        assert_eq!(a.mitre, vec!["T1562.001".to_string()]);
        assert!(t.check(&stop(1)).is_none(), "init may stop the sensor");
        assert!(t.check(&stop(100)).is_none(), "the supervisor may");
        let hup = event(
            Kind::Privilege,
            "signal",
            serde_json::json!({"signal": 1, "target_pid": 4242}),
            0,
            777,
        );
        assert!(t.check(&hup).is_none(), "SIGHUP reloads");
        let refused = event(
            Kind::Privilege,
            "signal",
            serde_json::json!({"signal": 9, "target_pid": 4242}),
            -1,
            777,
        );
        let a = t.check(&refused).expect("refused SIGKILL alerts");
        assert!(a.message.contains("refused"), "{}", a.message);
        assert_eq!(a.fields["refused"], true);
        // Missing or garbage arguments: nothing, no panic.
        let bad = event(
            Kind::Privilege,
            "signal",
            serde_json::json!({"signal": "x"}),
            0,
            777,
        );
        assert!(t.check(&bad).is_none());
        assert_eq!(signal_name(64), "signal 64");
    }

    #[test]
    fn writes_to_protected_files_alert_and_reads_do_not() {
        let t = guard();
        let open = |flags: u64, path: &str| {
            let mut ev = event(Kind::File, "openat", serde_json::json!({}), 3, 777);
            ev.file = Some(File {
                path: Some(path.into()),
                flags: Some(flags),
                ..Default::default()
            });
            ev
        };
        assert!(t.check(&open(0, "/etc/sensor/sensor.toml")).is_none());
        let a = t
            .check(&open(0o1, "/etc/sensor/sensor.toml"))
            .expect("write alerts");
        assert_eq!(a.rule.id, RULE_FILE);
        assert!(
            t.check(&open(0o1, "/etc/sensorx/a")).is_none(),
            "component boundary"
        );
        let mut rm = event(Kind::File, "unlinkat", serde_json::json!({}), 0, 777);
        rm.file = Some(File {
            path: Some("/var/log/sensor/alerts.jsonl".into()),
            ..Default::default()
        });
        let a = t.check(&rm).expect("deleting the alert log alerts");
        assert!(a.mitre.contains(&"T1070".to_string()), "{:?}", a.mitre);
        let mut mv = event(Kind::File, "renameat2", serde_json::json!({}), 0, 777);
        mv.file = Some(File {
            path: Some("/tmp/evil.toml".into()),
            target_path: Some("/etc/sensor/sensor.toml".into()),
            ..Default::default()
        });
        assert!(
            t.check(&mv).is_some(),
            "a rename over a protected file alerts"
        );
        let mem = open(0, "/proc/4242/task/4243/mem");
        assert_eq!(t.check(&mem).expect("memory").rule.id, RULE_MEMORY);
        assert!(t.check(&open(0, "/proc/4243/mem")).is_none());
    }

    #[test]
    fn bpf_detach_alerts_except_systemds_own_programs() {
        let t = guard();
        let detach = |cmd: u64, pid| {
            event(
                Kind::Privilege,
                "bpf",
                serde_json::json!({"cmd": cmd}),
                0,
                pid,
            )
        };
        assert_eq!(
            t.check(&detach(34, 777)).expect("link detach").severity,
            Severity::High
        );
        assert!(t.check(&detach(9, 1)).is_none());
        assert!(t.check(&detach(9, 777)).is_some());
        assert!(
            t.check(&detach(5, 777)).is_none(),
            "BPF_PROG_LOAD is not tampering"
        );
    }

    #[test]
    fn relative_and_root_paths_are_not_guarded() {
        let mut t = Tamper::new(1, 0);
        t.protect(Path::new("relative/x"), "config");
        t.protect(Path::new("/"), "state");
        assert_eq!(t.protected().count(), 0);
    }
}
