//! Evidence collection: what a responder needs from a live process tree, read from /proc and
//! written into a signed bundle ([`super::bundle`]). Best effort per item: a process that
//! exits mid-collection leaves a `missing` entry, never a failed bundle.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::Serialize;
use serde_json::{Value, json};

use super::bundle::{BundleError, BundleWriter, Keys};
use crate::{enrich::procfs::ProcFs, event::Event};

/// Environment variable names whose values are always withheld.
const SECRET_NAMES: &[&str] = &[
    "KEY",
    "TOKEN",
    "SECRET",
    "PASS",
    "PWD_",
    "CREDENTIAL",
    "AUTH",
    "COOKIE",
    "SESSION",
    "PRIVATE",
    "API",
];

/// Terminal-safe text: process-controlled strings keep no raw control bytes.
fn esc(s: &str) -> String {
    crate::escape::escape_str(s, 64 * 1024)
}

/// What to collect, and about what.
pub struct Request<'a> {
    pub bundle_id: String,
    pub pids: Vec<u32>,
    /// The process the alert was about (its executable is copied).
    pub focus: Option<u32>,
    pub subject: Value,
    pub actor: &'a str,
    pub events: Vec<Arc<Event>>,
    /// Alerts and actions for the timeline.
    pub alerts: Vec<crate::alert::Alert>,
    pub actions: Vec<super::audit::Entry>,
    pub cgroup_dir: Option<PathBuf>,
    pub max_exe_bytes: u64,
}

#[derive(Serialize)]
struct ProcEntry {
    pid: u32,
    ppid: u32,
    comm: String,
    exe: Option<String>,
    args: Vec<String>,
    cwd: Option<String>,
    uid: u32,
    euid: u32,
    gid: u32,
    start_time_ticks: u64,
    cgroup: Option<String>,
}

/// Redact an environment block: secret-looking names, and values the DLP scanner flags.
pub fn redact_environ(raw: &[u8]) -> BTreeMap<String, String> {
    let scanner = crate::dlp::Scanner::new();
    let mut out = BTreeMap::new();
    for entry in raw.split(|b| *b == 0).filter(|e| !e.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        let (name, value) = text.split_once('=').unwrap_or((&text, ""));
        let upper = name.to_ascii_uppercase();
        let value = if SECRET_NAMES.iter().any(|s| upper.contains(s)) {
            "[REDACTED:name]".to_owned()
        } else {
            let mut f = Vec::new();
            scanner.scan_text("env", value, &mut f);
            if f.is_empty() {
                esc(value)
            } else {
                let ranges: Vec<(usize, usize)> = f.iter().map(|x| (x.start, x.end)).collect();
                esc(&crate::dlp::redact::redact_str(value, &ranges, "secret"))
            }
        };
        out.insert(esc(name), value);
    }
    out
}

fn sockets_of(root: &Path, pid: u32) -> Vec<Value> {
    let dir = root.join(format!("proc/{pid}/fd"));
    let inodes: Vec<u64> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let s = l.to_str()?.to_owned();
                    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6", "raw", "raw6", "unix"] {
        let Ok(text) = std::fs::read_to_string(root.join(format!("proc/{pid}/net/{table}"))) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let inode_col = if table == "unix" { 6 } else { 9 };
            let Some(inode) = cols.get(inode_col).and_then(|c| c.parse::<u64>().ok()) else {
                continue;
            };
            if inodes.contains(&inode) {
                out.push(json!({
                    "table": table,
                    "inode": inode,
                    "line": esc(line.trim()),
                }));
            }
        }
    }
    out
}

/// Collect everything about `req.pids` into a new sealed bundle under `root`; returns its
/// directory.
pub fn collect(
    root: &Path,
    keys: &Keys,
    procfs: &ProcFs,
    req: Request<'_>,
) -> Result<PathBuf, BundleError> {
    let mut w = BundleWriter::create(root, &req.bundle_id, req.subject.clone(), req.actor, keys)?;
    let host = procfs.root().to_path_buf();
    let mut tree = Vec::new();
    let mut environ = BTreeMap::new();
    let mut files = BTreeMap::new();
    let mut maps = String::new();
    let mut net = BTreeMap::new();
    for pid in &req.pids {
        match procfs.snapshot(*pid) {
            Ok(s) => tree.push(ProcEntry {
                pid: s.pid,
                ppid: s.ppid,
                comm: s.comm,
                exe: s.exe,
                args: s.args,
                cwd: s.cwd,
                uid: s.uid,
                euid: s.euid,
                gid: s.gid,
                start_time_ticks: s.start_time_ticks,
                cgroup: s.cgroup,
            }),
            Err(e) => {
                let _ = w.note_error("process", &format!("pid {pid}: {e}"));
                continue;
            }
        }
        let pdir = host.join(format!("proc/{pid}"));
        match std::fs::read(pdir.join("environ")) {
            Ok(raw) => {
                environ.insert(pid.to_string(), redact_environ(&raw));
            }
            Err(e) => {
                let _ = w.note_error("environment", &format!("pid {pid}: {e}"));
            }
        }
        let fds: BTreeMap<String, String> = std::fs::read_dir(pdir.join("fd"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        let target = std::fs::read_link(e.path()).ok()?;
                        Some((
                            e.file_name().to_string_lossy().into_owned(),
                            esc(&target.to_string_lossy()),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.insert(pid.to_string(), fds);
        match std::fs::read(pdir.join("maps")) {
            Ok(m) => {
                maps.push_str(&format!("== pid {pid}\n"));
                maps.push_str(&String::from_utf8_lossy(&m));
            }
            Err(e) => {
                let _ = w.note_error("memory-maps", &format!("pid {pid}: {e}"));
            }
        }
        net.insert(pid.to_string(), sockets_of(&host, *pid));
    }
    w.add("process-tree.json", "process-tree", &pretty(&tree))?;
    w.add("environment.json", "environment", &pretty(&environ))?;
    w.add("open-files.json", "open-files", &pretty(&files))?;
    w.add("memory-maps.txt", "memory-maps", maps.as_bytes())?;
    w.add("network.json", "network", &pretty(&net))?;
    if let Some(focus) = req.focus.or_else(|| req.pids.first().copied()) {
        let exe = host.join(format!("proc/{focus}/exe"));
        if let Err(e) = w.add_file("executable.bin", "executable", &exe, req.max_exe_bytes) {
            let _ = w.note_error("executable", &format!("pid {focus}: {e}"));
        }
    }
    if let Some(dir) = &req.cgroup_dir {
        let rel = dir.display().to_string();
        let attribution = crate::enrich::cgroup::attribute(&rel);
        let meta = attribution
            .container
            .as_ref()
            .and_then(|c| crate::enrich::container_meta::lookup(&host, c));
        let members = super::cgroup::members(dir);
        let v = json!({
            "cgroup": rel,
            "attribution": attribution,
            "metadata": meta,
            "members": members,
        });
        w.add("container.json", "container", &pretty(&v))?;
    }
    let mut lines = Vec::new();
    for ev in &req.events {
        if let Ok(mut l) = serde_json::to_vec(ev.as_ref()) {
            l.push(b'\n');
            lines.extend(l);
        }
    }
    w.add("events.jsonl", "events", &lines)?;
    w.add("alerts.json", "alerts", &pretty(&req.alerts))?;
    w.add("timeline.json", "timeline", &pretty(&timeline(&req)))?;
    w.seal(req.actor)
}

/// Events, alerts and actions in time order (RFC 3339 times sort lexically).
pub fn timeline(req: &Request<'_>) -> Vec<Value> {
    let mut t: Vec<(String, Value)> = Vec::new();
    for ev in &req.events {
        t.push((
            ev.timestamp.clone(),
            json!({
                "time": ev.timestamp,
                "type": "event",
                "kind": ev.event.kind,
                "action": ev.event.action,
                "pid": ev.process.pid,
                "executable": ev.process.executable,
                "file": ev.file.as_ref().and_then(|f| f.path.clone()),
                "destination": ev.destination.as_ref().and_then(|d| d.ip.clone().map(|ip| format!("{ip}:{}", d.port.unwrap_or(0)))),
            }),
        ));
    }
    for a in &req.alerts {
        t.push((
            a.time.clone(),
            json!({"time": a.time, "type": "alert", "rule": a.rule.id, "severity": a.severity, "message": a.message, "mitre": a.mitre}),
        ));
    }
    for e in &req.actions {
        t.push((
            e.time.clone(),
            json!({"time": e.time, "type": "action", "action": e.action, "target": e.target, "outcome": e.outcome, "mode": e.mode}),
        ));
    }
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t.into_iter().map(|(_, v)| v).collect()
}

/// Pretty JSON of an item (an error object in its place if it cannot be serialized).
fn pretty<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_is_redacted_and_escaped() {
        let raw = b"PATH=/usr/bin\0AWS_SECRET_ACCESS_KEY=abc\0GH=ghp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\0EVIL=a\x1b[31mb\nc\0";
        let env = redact_environ(raw);
        assert_eq!(env["PATH"], "/usr/bin");
        assert_eq!(env["AWS_SECRET_ACCESS_KEY"], "[REDACTED:name]");
        assert!(env["GH"].contains("REDACTED"), "{}", env["GH"]);
        assert!(!env["GH"].contains("ghp_aaaa"));
        assert!(!env["EVIL"].contains('\n') && !env["EVIL"].contains('\x1b'));
    }
}
