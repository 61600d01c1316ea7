//! The responder: one owner for every containment side effect (cgroups, kernel maps through
//! [`Kernel`], quarantine, evidence), driven by manual requests and playbook runs, with the
//! guards in front and the audit trail behind every action.

use std::{
    collections::HashMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    audit::Record,
    cgroup,
    config::{RespondConfig, parse_allow},
    guard::{Guard, RateLimit, Refusal},
    history::History,
    playbook::{FileSel, Mode, Playbook, Scope, Step},
    quarantine,
    target::{self, Target},
};
use crate::{alert::Alert, clock::Clock};

/// The kernel side, owned by the probes (a trait so the responder runs without them).
pub trait Kernel: Send {
    fn set_deny_exec(&mut self, entries: &[(u32, u64)]) -> Result<(), String>;
    fn set_isolate_allow(&mut self, entries: &[(IpAddr, u16)]) -> Result<(), String>;
    fn isolate_attach(&mut self, root: &Path, dir: &Path, allow_root: bool) -> Result<(), String>;
    fn isolate_detach(&mut self, dir: &Path) -> bool;
}

/// A kernel without containment programs (the agent in empty mode, unit tests).
pub struct NoKernel;

impl Kernel for NoKernel {
    fn set_deny_exec(&mut self, _: &[(u32, u64)]) -> Result<(), String> {
        Err("the kernel programs are not loaded".into())
    }
    fn set_isolate_allow(&mut self, _: &[(IpAddr, u16)]) -> Result<(), String> {
        Err("the kernel programs are not loaded".into())
    }
    fn isolate_attach(&mut self, _: &Path, _: &Path, _: bool) -> Result<(), String> {
        Err("the kernel programs are not loaded".into())
    }
    fn isolate_detach(&mut self, _: &Path) -> bool {
        false
    }
}

/// A manual request (`sensor contain ...`, `sensor release ...`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ContainRequest {
    Kill {
        target: Target,
        #[serde(default)]
        dry_run: bool,
    },
    Freeze {
        target: Target,
        #[serde(default)]
        dry_run: bool,
    },
    Isolate {
        target: Target,
        #[serde(default)]
        allow: Vec<String>,
        #[serde(default)]
        dry_run: bool,
    },
    /// Deny a file (by device and inode), or every file with this SHA-256 (`sha256`): a
    /// matching program is killed at its first exec by the agent and its inode denied in the
    /// kernel from then on.
    DenyExec {
        #[serde(default)]
        path: Option<String>,
        #[serde(default)]
        sha256: Option<String>,
        #[serde(default)]
        dry_run: bool,
    },
    Quarantine {
        path: String,
        #[serde(default)]
        dry_run: bool,
    },
    /// Undo one containment (thaw, end isolation, allow exec, restore a quarantined file).
    Release {
        id: String,
    },
    /// Run a playbook run that waits for approval.
    Approve {
        run: String,
    },
    /// Undo every reversible step of a playbook run, newest first.
    Rollback {
        run: String,
    },
    /// Collect an evidence bundle for a process tree.
    Collect {
        pid: u32,
        #[serde(default)]
        incident: Option<String>,
    },
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Freeze,
    Isolate,
    DenyExec,
    Quarantine,
}

/// A containment in force, until released.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Containment {
    pub id: String,
    pub kind: Kind,
    pub target: String,
    pub created: String,
    pub actor: String,
    #[serde(default)]
    pub run: Option<String>,
    /// The cgroup frozen or isolated (absolute directory).
    #[serde(default)]
    pub cgroup: Option<String>,
    /// The sensor made that cgroup and moved these processes (pid, original v2 path) in.
    #[serde(default)]
    pub moved: Vec<(u32, String)>,
    #[serde(default)]
    pub created_cgroup: bool,
    #[serde(default)]
    pub allow: Vec<(IpAddr, u16)>,
    /// Deny list key (kernel device encoding, inode), and the file's hash and path.
    #[serde(default)]
    pub exe: Option<(u32, u64)>,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// For a deny by hash: the inodes found running that hash (denied in the kernel too).
    #[serde(default)]
    pub hash_inodes: Vec<(u32, u64)>,
}

impl Containment {
    /// A containment made now, with nothing kind-specific set yet.
    fn new(id: &str, kind: Kind, target: String, actor: &str, run: Option<String>) -> Containment {
        Containment {
            id: id.to_owned(),
            kind,
            target,
            created: now_text(),
            actor: actor.to_owned(),
            run,
            cgroup: None,
            moved: Vec::new(),
            created_cgroup: false,
            allow: Vec::new(),
            exe: None,
            sha256: None,
            path: None,
            hash_inodes: Vec::new(),
        }
    }
}

/// Hashes denied by `deny-exec --sha256`, shared with the pipeline thread, which hashes each
/// exec'd program only while the set is not empty.
#[derive(Default)]
pub struct DenyHashes {
    pub any: std::sync::atomic::AtomicBool,
    pub set: Mutex<std::collections::HashSet<[u8; 32]>>,
}

impl DenyHashes {
    pub fn contains(&self, h: &[u8; 32]) -> bool {
        self.set.lock().map(|s| s.contains(h)).unwrap_or(false)
    }
}

/// Parse 64 hex digits (the IOC parser's rule), with an error that says so.
pub fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    crate::ioc::parse_hex32(s).ok_or_else(|| format!("`{s}` is not a SHA-256 (64 hex digits)"))
}

/// Processes moved (pid, original cgroup v2 path).
type Moved = Vec<(u32, String)>;
/// A containment cgroup: its directory, the moves into it, and whether the sensor made it.
type Placed = (PathBuf, Moved, bool);

/// A playbook run waiting for `sensor contain approve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub run: String,
    pub playbook: String,
    pub alert: String,
    pub incident: Option<String>,
    pub steps: Vec<String>,
    pub expires_unix: i64,
    /// What runs on approval: the playbook and its trigger.
    #[serde(skip)]
    pub work: Option<(Arc<Playbook>, Box<RunContext>)>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Listing {
    pub active: Vec<Containment>,
    pub pending: Vec<Pending>,
    pub quarantine: Vec<quarantine::Record>,
    pub counters: Counters,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    pub actions_ok: u64,
    pub actions_refused: u64,
    pub actions_failed: u64,
    pub dry_run: u64,
    pub runs: u64,
    /// Playbook triggers the pipeline could not hand over (queue full).
    pub triggers_dropped: u64,
    /// Fastest and slowest automatic action, event to completion.
    pub auto_latency_ms_max: f64,
    pub auto_latency_ms_last: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainReply {
    Done {
        message: String,
        #[serde(default)]
        containment: Option<String>,
        #[serde(default)]
        detail: Value,
    },
    Refused(String),
    Failed(String),
    Listing(Box<Listing>),
}

/// What a playbook run knows about its trigger.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunContext {
    pub alert: Option<Alert>,
    pub event_boot_ns: Option<u64>,
    pub pid: Option<u32>,
    /// The process's start time (clock ticks since boot), read when the alert fired: a pid
    /// reused since then does not match.
    #[serde(default)]
    pub start: Option<u64>,
    /// Kernel device encoding and inode of the process's executable at the event.
    pub exe_id: Option<(u32, u64)>,
    pub exe_path: Option<String>,
    pub file_path: Option<String>,
    pub cgroup_path: Option<String>,
    pub container_id: Option<String>,
    pub incident: Option<String>,
}

/// Work for the responder thread.
pub enum Job {
    Manual {
        request: ContainRequest,
        actor: String,
        reply: tokio::sync::oneshot::Sender<ContainReply>,
    },
    Trigger {
        playbook: Arc<Playbook>,
        ctx: Box<RunContext>,
    },
    /// The pipeline saw an exec of a program whose hash is denied.
    DeniedHash {
        pid: u32,
        start: Option<u64>,
        exe: (u32, u64),
        sha256: [u8; 32],
        event_boot_ns: u64,
    },
}

/// Userspace `st_dev` → the kernel's internal `dev_t` (major << 20 | minor), as the exec
/// probes report it.
pub fn kernel_dev(st_dev: u64) -> u32 {
    let major = libc::major(st_dev);
    let minor = libc::minor(st_dev);
    (major << 20) | (minor & 0xfffff)
}

pub struct Responder {
    cfg: RespondConfig,
    dir: PathBuf,
    guard: Guard,
    rate: RateLimit,
    audit: crate::audit::SharedAudit,
    kernel: Box<dyn Kernel>,
    v2_root: Option<PathBuf>,
    active: Vec<Containment>,
    pending: Vec<Pending>,
    /// (playbook, incident, pid) → when it last ran.
    ran: HashMap<String, Instant>,
    history: Arc<Mutex<History>>,
    keys: Option<super::bundle::Keys>,
    /// Destinations the sensor itself needs while isolated (outputs).
    base_allow: Vec<(IpAddr, u16)>,
    emit: Box<dyn Fn(Alert) + Send>,
    pub counters: Arc<Mutex<Counters>>,
    state_dir: PathBuf,
    deny_hashes: Arc<DenyHashes>,
}

fn now_text() -> String {
    crate::alert::format_timestamp(time::OffsetDateTime::now_utc())
}

fn short_id(prefix: &str) -> String {
    let u = uuid::Uuid::now_v7().simple().to_string();
    // The random tail, so ids made in the same millisecond differ.
    format!("{prefix}-{}", &u[u.len() - 12..])
}

#[derive(Debug)]
enum Outcome {
    Ok {
        message: String,
        containment: Option<Box<Containment>>,
        detail: Value,
    },
    Refused(String),
    Failed(String),
}

impl From<Refusal> for Outcome {
    fn from(r: Refusal) -> Self {
        Outcome::Refused(r.to_string())
    }
}

pub struct Options {
    pub cfg: RespondConfig,
    pub state_dir: PathBuf,
    pub host_root: PathBuf,
    pub v2_root: Option<PathBuf>,
    pub base_allow: Vec<(IpAddr, u16)>,
    pub deny_hashes: Arc<DenyHashes>,
}

impl Responder {
    pub fn open(
        opts: Options,
        kernel: Box<dyn Kernel>,
        history: Arc<Mutex<History>>,
        emit: Box<dyn Fn(Alert) + Send>,
    ) -> Result<Responder, String> {
        let dir = opts.state_dir.join("respond");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let audit =
            crate::audit::shared(&opts.state_dir.join("audit.jsonl")).map_err(|e| e.to_string())?;
        let active: Vec<Containment> = std::fs::read(dir.join("active.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut r = Responder {
            guard: Guard::new(&opts.host_root, &opts.cfg, &opts.state_dir),
            rate: RateLimit::new(opts.cfg.max_actions_per_minute),
            cfg: opts.cfg,
            dir,
            audit,
            kernel,
            v2_root: opts.v2_root,
            active,
            pending: Vec::new(),
            ran: HashMap::new(),
            history,
            keys: None,
            base_allow: opts.base_allow,
            emit,
            counters: Arc::new(Mutex::new(Counters::default())),
            state_dir: opts.state_dir,
            deny_hashes: opts.deny_hashes,
        };
        // Keys at start (the first start is the install): a bundle is never signed by a
        // key made in the middle of an incident.
        match super::bundle::Keys::load_or_create(&r.state_dir.join("keys"), r.cfg.evidence_encrypt)
        {
            Ok(k) => r.keys = Some(k),
            Err(e) => {
                tracing::error!(error = %e, "evidence keys unavailable; bundles cannot be signed")
            }
        }
        r.restore();
        Ok(r)
    }

    /// After a restart: the deny list and isolations live in the kernel only while the agent
    /// does, so put them back (frozen cgroups stay frozen by themselves).
    fn restore(&mut self) {
        if self.active.is_empty() {
            return;
        }
        if let Err(e) = self.sync_deny() {
            tracing::error!(error = %e, "cannot restore the exec deny list");
        }
        if let Err(e) = self.sync_allow() {
            tracing::error!(error = %e, "cannot restore the isolation allow-list");
        }
        let root = self.v2_root.clone().unwrap_or_default();
        for c in self.active.clone() {
            if c.kind == Kind::Isolate
                && let Some(dir) = &c.cgroup
            {
                let allow_root = Path::new(dir) == root && self.cfg.allow_host_isolation;
                if let Err(e) = self
                    .kernel
                    .isolate_attach(&root, Path::new(dir), allow_root)
                {
                    tracing::error!(cgroup = %dir, error = %e, "cannot restore an isolation");
                }
            }
        }
        tracing::info!(active = self.active.len(), "containments restored");
    }

    fn save(&self) {
        let path = self.dir.join("active.json");
        let tmp = self.dir.join(".active.json.tmp");
        if let Ok(text) = serde_json::to_vec_pretty(&self.active)
            && let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path))
        {
            tracing::error!(error = %e, "cannot persist containments");
        }
    }

    fn sync_deny(&mut self) -> Result<(), String> {
        let mut entries: Vec<(u32, u64)> = Vec::new();
        let mut hashes = std::collections::HashSet::new();
        for c in self.active.iter().filter(|c| c.kind == Kind::DenyExec) {
            entries.extend(c.exe);
            entries.extend(c.hash_inodes.iter().copied());
            if c.exe.is_none()
                && let Some(h) = c.sha256.as_deref().and_then(|h| parse_sha256(h).ok())
            {
                hashes.insert(h);
            }
        }
        self.deny_hashes
            .any
            .store(!hashes.is_empty(), std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut set) = self.deny_hashes.set.lock() {
            *set = hashes;
        }
        self.kernel.set_deny_exec(&entries)
    }

    /// An exec of a denied hash: kill it (it already runs; the agent saw it from userspace)
    /// and deny its inode in the kernel so the next exec of that file never starts.
    fn denied_hash(
        &mut self,
        pid: u32,
        start: Option<u64>,
        exe: (u32, u64),
        sha: [u8; 32],
        boot_ns: u64,
    ) {
        let hex = crate::ioc::hashes::hex(&sha);
        let Some(pos) = self.active.iter().position(|c| {
            c.kind == Kind::DenyExec && c.exe.is_none() && c.sha256.as_deref() == Some(hex.as_str())
        }) else {
            return;
        };
        let id = self.active[pos].id.clone();
        if !self.active[pos].hash_inodes.contains(&exe) {
            self.active[pos].hash_inodes.push(exe);
            if let Err(e) = self.sync_deny() {
                tracing::error!(error = %e, "cannot deny the inode of a denied hash");
            }
            self.save();
        }
        let result = match self.guard.check_pid(pid, start) {
            Err(r) => r.into(),
            Ok(_) => match pidfd_kill(pid) {
                Ok(()) => Outcome::Ok {
                    message: format!("killed pid {pid}: its program has the denied hash {hex}"),
                    containment: None,
                    detail: json!({"pid": pid, "sha256": hex, "dev": exe.0, "ino": exe.1, "containment": id}),
                },
                Err(e) => Outcome::Failed(format!("kill {pid}: {e}")),
            },
        };
        let ctx = RunContext {
            pid: Some(pid),
            event_boot_ns: Some(boot_ns),
            ..RunContext::default()
        };
        self.finish(
            "deny-exec-hit",
            &format!("process {pid}"),
            "agent",
            "auto",
            Some(("-", &ctx)),
            result,
        );
    }

    fn sync_allow(&mut self) -> Result<(), String> {
        let mut entries = self.base_allow.clone();
        for c in self.active.iter().filter(|c| c.kind == Kind::Isolate) {
            entries.extend(c.allow.iter().copied());
        }
        for a in &self.cfg.isolation_allow {
            if let Ok(x) = parse_allow(a) {
                entries.push(x);
            }
        }
        entries.sort();
        entries.dedup();
        self.kernel.set_isolate_allow(&entries)
    }

    pub fn listing(&self) -> Listing {
        Listing {
            active: self.active.clone(),
            pending: self.pending.clone(),
            quarantine: quarantine::list(&self.dir.join("quarantine")),
            counters: self.counters.lock().map(|c| c.clone()).unwrap_or_default(),
        }
    }

    /// The responder thread's loop: jobs until the channel closes or `stop` is set;
    /// approvals expire; the state is published to `status` after each turn.
    pub fn run(
        mut self,
        jobs: std::sync::mpsc::Receiver<Job>,
        status: &Mutex<crate::api::RespondStatus>,
        stop: &std::sync::atomic::AtomicBool,
    ) {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            match jobs.recv_timeout(Duration::from_secs(1)) {
                Ok(Job::Manual {
                    request,
                    actor,
                    reply,
                }) => {
                    let r = self.manual(request, &actor);
                    let _ = reply.send(r);
                }
                Ok(Job::Trigger { playbook, ctx }) => self.trigger(&playbook, *ctx),
                Ok(Job::DeniedHash {
                    pid,
                    start,
                    exe,
                    sha256,
                    event_boot_ns,
                }) => self.denied_hash(pid, start, exe, sha256, event_boot_ns),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.expire();
            if let Ok(mut st) = status.lock() {
                st.active = self.active.len();
                st.pending_approval = self.pending.len();
                if let Ok(c) = self.counters.lock() {
                    st.counters = c.clone();
                }
            }
        }
    }

    /// Containment cgroups the sensor made whose processes are all gone (killed, exited):
    /// their freezes and isolations end by themselves and the cgroup is removed, so nothing
    /// is left behind.
    fn retire_empty(&mut self) {
        let empty: Vec<String> = self
            .active
            .iter()
            .filter(|c| c.created_cgroup)
            .filter_map(|c| c.cgroup.clone())
            .filter(|d| cgroup::members(Path::new(d)).is_empty())
            .collect();
        for dir in empty {
            let gone: Vec<Containment> = self
                .active
                .iter()
                .filter(|c| c.cgroup.as_deref() == Some(dir.as_str()))
                .cloned()
                .collect();
            self.active
                .retain(|c| c.cgroup.as_deref() != Some(dir.as_str()));
            let path = PathBuf::from(&dir);
            self.kernel.isolate_detach(&path);
            if gone.iter().any(|c| c.kind == Kind::Isolate) {
                let _ = self.sync_allow();
            }
            let _ = cgroup::thaw(&path);
            let removed = cgroup::remove(&path);
            self.save();
            for c in gone {
                self.audit_write(Record {
                    actor: "agent".into(),
                    action: "retire".into(),
                    target: c.target.clone(),
                    mode: "auto".into(),
                    outcome: if removed.is_ok() { "ok" } else { "failed" }.into(),
                    detail: json!({"reason": "no process left in the containment cgroup", "cgroup": dir}),
                    containment: Some(c.id.clone()),
                    run: c.run.clone(),
                    ..Record::default()
                });
            }
        }
    }

    fn expire(&mut self) {
        self.retire_empty();
        let now = Clock::unix_now();
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.expires_unix <= now);
        self.pending = keep;
        for p in gone {
            self.audit_write(Record {
                actor: format!("playbook:{}", p.playbook),
                action: "approval-expired".into(),
                target: p.steps.join(", "),
                mode: "approve".into(),
                outcome: "expired".into(),
                run: Some(p.run),
                incident: p.incident,
                alert: Some(p.alert),
                ..Record::default()
            });
        }
        // Remembered for a day; the map ages out.
        self.ran
            .retain(|_, t| t.elapsed() < Duration::from_secs(24 * 3600));
    }

    fn audit_write(&mut self, r: Record) {
        crate::audit::log(&self.audit, r);
    }

    fn count(&self, f: impl FnOnce(&mut Counters)) {
        if let Ok(mut c) = self.counters.lock() {
            f(&mut c);
        }
    }

    fn manual(&mut self, req: ContainRequest, actor: &str) -> ContainReply {
        let mode = |dry: bool| if dry { "dry-run" } else { "manual" };
        let (action, target_text, dry, result) = match req {
            ContainRequest::List => return ContainReply::Listing(Box::new(self.listing())),
            ContainRequest::Approve { run } => return self.approve(&run, actor),
            ContainRequest::Rollback { run } => return self.rollback(&run, actor),
            ContainRequest::Release { id } => {
                let r = self.release(&id);
                ("release", id, false, r)
            }
            ContainRequest::Collect { pid, incident } => {
                let ctx = RunContext {
                    pid: Some(pid),
                    incident,
                    ..RunContext::default()
                };
                let r = self.collect(&ctx, actor, None);
                (
                    "collect-evidence",
                    format!("process tree of {pid}"),
                    false,
                    r,
                )
            }
            ContainRequest::Kill { target, dry_run } => {
                let t = target.to_string();
                let r = self.act_kill(&target, dry_run, None);
                ("kill", t, dry_run, r)
            }
            ContainRequest::Freeze { target, dry_run } => {
                let t = target.to_string();
                let r = self.act_freeze(&target, dry_run, actor, None);
                ("freeze", t, dry_run, r)
            }
            ContainRequest::Isolate {
                target,
                allow,
                dry_run,
            } => {
                let t = target.to_string();
                let parsed: Result<Vec<_>, String> = allow.iter().map(|a| parse_allow(a)).collect();
                let r = match parsed {
                    Ok(allow) => self.act_isolate(&target, allow, dry_run, actor, None),
                    Err(e) => Outcome::Refused(e),
                };
                ("isolate", t, dry_run, r)
            }
            ContainRequest::DenyExec {
                path,
                sha256,
                dry_run,
            } => match (path, sha256) {
                (Some(path), None) => {
                    let r = self.act_deny(Path::new(&path), dry_run, actor, None);
                    ("deny-exec", path, dry_run, r)
                }
                (None, Some(h)) => {
                    let r = self.act_deny_hash(&h, dry_run, actor);
                    ("deny-exec", format!("sha256:{h}"), dry_run, r)
                }
                _ => (
                    "deny-exec",
                    "-".into(),
                    dry_run,
                    Outcome::Refused("give a file or --sha256, one of them".into()),
                ),
            },
            ContainRequest::Quarantine { path, dry_run } => {
                let r = self.act_quarantine(Path::new(&path), dry_run, actor, None);
                ("quarantine", path, dry_run, r)
            }
        };
        self.finish(action, &target_text, actor, mode(dry), None, result)
    }

    /// Audit, count, persist and turn an outcome into a reply.
    fn finish(
        &mut self,
        action: &str,
        target: &str,
        actor: &str,
        mode: &str,
        ctx: Option<(&str, &RunContext)>,
        result: Outcome,
    ) -> ContainReply {
        let latency_ms = ctx
            .and_then(|(_, c)| c.event_boot_ns)
            .map(|t| Clock::boot_ns_now().saturating_sub(t) as f64 / 1e6);
        let (outcome, detail, containment, reply) = match result {
            Outcome::Ok {
                message,
                containment,
                detail,
            } => {
                let id = containment.as_ref().map(|c| c.id.clone());
                if let Some(c) = containment {
                    self.active.push(*c);
                    self.save();
                }
                let outcome = if mode == "dry-run" { "would" } else { "ok" };
                (
                    outcome,
                    detail.clone(),
                    id.clone(),
                    ContainReply::Done {
                        message,
                        containment: id,
                        detail,
                    },
                )
            }
            Outcome::Refused(m) => (
                "refused",
                json!({"reason": m}),
                None,
                ContainReply::Refused(m),
            ),
            Outcome::Failed(m) => ("failed", json!({"error": m}), None, ContainReply::Failed(m)),
        };
        self.count(|c| match outcome {
            "ok" => c.actions_ok += 1,
            "would" => c.dry_run += 1,
            "refused" => c.actions_refused += 1,
            _ => c.actions_failed += 1,
        });
        if mode == "auto"
            && outcome == "ok"
            && let Some(ms) = latency_ms
        {
            self.count(|c| {
                c.auto_latency_ms_last = ms;
                c.auto_latency_ms_max = c.auto_latency_ms_max.max(ms);
            });
        }
        let (run, incident, alert) = match ctx {
            Some((run, c)) => (
                Some(run.to_owned()).filter(|r| r != "-"),
                c.incident.clone(),
                c.alert.as_ref().map(|a| a.id.clone()),
            ),
            None => (None, None, None),
        };
        self.audit_write(Record {
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            mode: mode.to_owned(),
            outcome: outcome.to_owned(),
            detail,
            containment,
            run,
            incident,
            alert,
            latency_ms,
        });
        tracing::info!(action, target, mode, outcome, "containment");
        reply
    }

    /// The cgroup directory a target means, and whether the sensor must make one for it
    /// (processes: a containment cgroup holding the process or tree).
    fn cgroup_for(&mut self, target: &Target) -> Result<(PathBuf, Vec<u32>), Outcome> {
        match target {
            Target::Cgroup { path } => {
                let dir = cgroup::resolve(self.v2_root.as_deref(), path)
                    .map_err(|e| Outcome::Refused(e.to_string()))?;
                Ok((dir, Vec::new()))
            }
            Target::Container { id } => {
                let root = self
                    .v2_root
                    .clone()
                    .ok_or_else(|| Outcome::Failed("no cgroup v2 hierarchy".into()))?;
                let dir = cgroup::find_container(&root, id).map_err(Outcome::Refused)?;
                Ok((dir, Vec::new()))
            }
            Target::Process { pid, start } | Target::Tree { pid, start } => {
                self.guard.check_pid(*pid, *start)?;
                let pids = if matches!(target, Target::Tree { .. }) {
                    target::tree(self.guard.procfs(), *pid)
                } else {
                    vec![*pid]
                };
                self.guard.check_pids(&pids)?;
                Ok((PathBuf::new(), pids))
            }
            Target::Host => Err(Outcome::Refused(
                "only isolation acts on the whole host".into(),
            )),
        }
    }

    /// Put `pids` (a process or tree) into a containment cgroup: an existing one of the
    /// sensor's if the first pid already sits in one, else a new one. Returns the directory,
    /// the moves (pid, original path) and whether it was made now.
    fn contain_cgroup(&mut self, pids: &[u32], tree: bool) -> Result<Placed, Outcome> {
        let root = self
            .v2_root
            .clone()
            .ok_or_else(|| Outcome::Failed("no cgroup v2 hierarchy".into()))?;
        let proc_root = self.guard.procfs().root().join("proc");
        let first = pids.first().copied().unwrap_or(0);
        if let Some(cur) = cgroup::v2_path_of(&proc_root, first)
            && cur.starts_with(&format!("/{}/", cgroup::CONTAIN_DIR))
        {
            let dir = root.join(cur.trim_start_matches('/'));
            let moved = self
                .active
                .iter()
                .find(|c| c.cgroup.as_deref() == Some(&dir.display().to_string()))
                .map(|c| c.moved.clone())
                .unwrap_or_default();
            return Ok((dir, moved, true));
        }
        let dir =
            cgroup::create(&root, &short_id("g")).map_err(|e| Outcome::Failed(e.to_string()))?;
        let mut moved: Vec<(u32, String)> = Vec::new();
        let mut pending: Vec<u32> = pids.to_vec();
        // A tree may fork while it moves; children of moved processes land in the new
        // cgroup by themselves, so a few passes settle it.
        for _ in 0..10 {
            let todo: Vec<u32> = pending
                .iter()
                .copied()
                .filter(|p| !moved.iter().any(|(m, _)| m == p))
                .collect();
            if todo.is_empty() {
                break;
            }
            let originals: Vec<(u32, String)> = todo
                .iter()
                .filter_map(|p| cgroup::v2_path_of(&proc_root, *p).map(|c| (*p, c)))
                .collect();
            match cgroup::move_pids(&dir, &todo) {
                Ok(done) => moved.extend(originals.into_iter().filter(|(p, _)| done.contains(p))),
                Err(e) => {
                    self.move_back(&moved);
                    let _ = cgroup::remove(&dir);
                    return Err(Outcome::Failed(e.to_string()));
                }
            }
            if !tree {
                break;
            }
            pending = target::tree(self.guard.procfs(), first);
        }
        Ok((dir, moved, true))
    }

    fn move_back(&self, moved: &[(u32, String)]) {
        let Some(root) = &self.v2_root else { return };
        for (pid, original) in moved {
            let dir = root.join(original.trim_start_matches('/'));
            let _ = cgroup::move_pids(&dir, &[*pid]);
        }
    }

    fn act_kill(&mut self, target: &Target, dry: bool, ctx: Option<&RunContext>) -> Outcome {
        if let Some(c) = ctx
            && let Err(o) = self.same_process(c)
        {
            return o;
        }
        match target {
            Target::Process { pid, start } => {
                if let Err(r) = self.guard.check_pid(*pid, *start) {
                    return r.into();
                }
                if dry {
                    return Outcome::Ok {
                        message: format!("would kill process {pid}"),
                        containment: None,
                        detail: json!({"pids": [pid]}),
                    };
                }
                match pidfd_kill(*pid) {
                    Ok(()) => Outcome::Ok {
                        message: format!("killed process {pid}"),
                        containment: None,
                        detail: json!({"pids": [pid]}),
                    },
                    Err(e) => Outcome::Failed(format!("kill {pid}: {e}")),
                }
            }
            Target::Tree { .. } => {
                let pids = match self.cgroup_for(target) {
                    Ok((_, p)) => p,
                    Err(o) => return o,
                };
                if dry {
                    return Outcome::Ok {
                        message: format!("would kill {} processes", pids.len()),
                        containment: None,
                        detail: json!({"pids": pids}),
                    };
                }
                let (dir, _, _) = match self.contain_cgroup(&pids, true) {
                    Ok(x) => x,
                    Err(o) => return o,
                };
                let members = cgroup::members(&dir);
                let r = cgroup::kill(&dir);
                let shared = self
                    .active
                    .iter()
                    .any(|c| c.cgroup.as_deref() == Some(&dir.display().to_string()));
                if !shared {
                    let _ = cgroup::remove(&dir);
                }
                match r {
                    Ok(_) => Outcome::Ok {
                        message: format!("killed {} processes", members.len()),
                        containment: None,
                        detail: json!({"pids": members}),
                    },
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Target::Cgroup { .. } | Target::Container { .. } => {
                let (dir, _) = match self.cgroup_for(target) {
                    Ok(x) => x,
                    Err(o) => return o,
                };
                let members = cgroup::members(&dir);
                let root = self.v2_root.clone().unwrap_or_default();
                if let Err(r) = self.guard.check_cgroup(&root, &dir, &members) {
                    return r.into();
                }
                if dry {
                    return Outcome::Ok {
                        message: format!(
                            "would kill {} processes in {}",
                            members.len(),
                            dir.display()
                        ),
                        containment: None,
                        detail: json!({"pids": members, "cgroup": dir}),
                    };
                }
                match cgroup::kill(&dir) {
                    Ok(n) => Outcome::Ok {
                        message: format!("killed {n} processes in {}", dir.display()),
                        containment: None,
                        detail: json!({"pids": members, "cgroup": dir}),
                    },
                    Err(e) => Outcome::Failed(e.to_string()),
                }
            }
            Target::Host => Outcome::Refused("the host is never killed".into()),
        }
    }

    fn act_freeze(
        &mut self,
        target: &Target,
        dry: bool,
        actor: &str,
        ctx: Option<(&str, &RunContext)>,
    ) -> Outcome {
        if let Some((_, c)) = ctx
            && let Err(o) = self.same_process(c)
        {
            return o;
        }
        let (dir, pids) = match self.cgroup_for(target) {
            Ok(x) => x,
            Err(o) => return o,
        };
        let root = self.v2_root.clone().unwrap_or_default();
        if pids.is_empty() {
            let members = cgroup::members(&dir);
            if let Err(r) = self.guard.check_cgroup(&root, &dir, &members) {
                return r.into();
            }
            if let Err(e) = cgroup::freezer_of(&dir) {
                return Outcome::Refused(e.to_string());
            }
        }
        if dry {
            return Outcome::Ok {
                message: format!("would freeze {target}"),
                containment: None,
                detail: json!({"pids": pids, "cgroup": dir}),
            };
        }
        let (dir, moved, created) = if pids.is_empty() {
            (dir, Vec::new(), false)
        } else {
            match self.contain_cgroup(&pids, matches!(target, Target::Tree { .. })) {
                Ok(x) => x,
                Err(o) => return o,
            }
        };
        let started = Instant::now();
        match cgroup::freeze(&dir) {
            Ok(kind) => {
                let id = short_id("frz");
                Outcome::Ok {
                    message: format!("froze {target} ({id})"),
                    detail: json!({
                        "cgroup": dir,
                        "freezer": format!("{kind:?}"),
                        "pids": cgroup::members(&dir),
                        "freeze_ms": started.elapsed().as_secs_f64() * 1e3,
                    }),
                    containment: Some(Box::new(Containment {
                        cgroup: Some(dir.display().to_string()),
                        moved,
                        created_cgroup: created,
                        ..Containment::new(
                            &id,
                            Kind::Freeze,
                            target.to_string(),
                            actor,
                            ctx.map(|(r, _)| r.to_owned()),
                        )
                    })),
                }
            }
            Err(e) => {
                if created {
                    self.move_back(&moved);
                    let _ = cgroup::remove(&dir);
                }
                Outcome::Failed(e.to_string())
            }
        }
    }

    fn act_isolate(
        &mut self,
        target: &Target,
        allow: Vec<(IpAddr, u16)>,
        dry: bool,
        actor: &str,
        ctx: Option<(&str, &RunContext)>,
    ) -> Outcome {
        let root = match &self.v2_root {
            Some(r) => r.clone(),
            None => return Outcome::Failed("no cgroup v2 hierarchy".into()),
        };
        let (dir, pids, host) = if *target == Target::Host {
            if !self.cfg.allow_host_isolation {
                return Outcome::Refused(
                    "host isolation is off (respond.allow_host_isolation = false)".into(),
                );
            }
            (root.clone(), Vec::new(), true)
        } else {
            match self.cgroup_for(target) {
                Ok((d, p)) => (d, p, false),
                Err(o) => return o,
            }
        };
        if !host && pids.is_empty() {
            let members = cgroup::members(&dir);
            if let Err(r) = self.guard.check_cgroup(&root, &dir, &members) {
                return r.into();
            }
        }
        if dry {
            return Outcome::Ok {
                message: format!("would isolate {target}"),
                containment: None,
                detail: json!({"pids": pids, "cgroup": dir, "allow": allow}),
            };
        }
        let (dir, moved, created) = if pids.is_empty() {
            (dir, Vec::new(), false)
        } else {
            match self.contain_cgroup(&pids, matches!(target, Target::Tree { .. })) {
                Ok(x) => x,
                Err(o) => return o,
            }
        };
        let id = short_id("iso");
        let c = Containment {
            cgroup: Some(dir.display().to_string()),
            moved: moved.clone(),
            created_cgroup: created,
            allow: allow.clone(),
            ..Containment::new(
                &id,
                Kind::Isolate,
                target.to_string(),
                actor,
                ctx.map(|(r, _)| r.to_owned()),
            )
        };
        // Allow-list first: the isolated cgroup never meets a list without its exceptions.
        self.active.push(c.clone());
        let r = self
            .sync_allow()
            .and_then(|()| self.kernel.isolate_attach(&root, &dir, host));
        self.active.retain(|x| x.id != id);
        match r {
            Ok(()) => Outcome::Ok {
                message: format!("isolated {target} ({id})"),
                containment: Some(Box::new(c)),
                detail: json!({"cgroup": dir, "allow": allow, "pids": cgroup::members(&dir)}),
            },
            Err(e) => {
                let _ = self.sync_allow();
                if created && !self.shared_cgroup(&dir) {
                    self.move_back(&moved);
                    let _ = cgroup::remove(&dir);
                }
                Outcome::Failed(e)
            }
        }
    }

    fn shared_cgroup(&self, dir: &Path) -> bool {
        let d = dir.display().to_string();
        self.active.iter().any(|c| c.cgroup.as_deref() == Some(&d))
    }

    fn act_deny(
        &mut self,
        path: &Path,
        dry: bool,
        actor: &str,
        ctx: Option<(&str, &RunContext)>,
    ) -> Outcome {
        let canon = match self.guard.check_file(path) {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        let meta = match std::fs::metadata(&canon) {
            Ok(m) => m,
            Err(e) => return Outcome::Failed(format!("{}: {e}", canon.display())),
        };
        use std::os::unix::fs::MetadataExt;
        let key = (kernel_dev(meta.dev()), meta.ino());
        let sha = quarantine::sha256_file(&canon).map(|(h, _)| h).ok();
        if dry {
            return Outcome::Ok {
                message: format!("would deny execution of {}", canon.display()),
                containment: None,
                detail: json!({"path": canon, "sha256": sha, "dev": key.0, "ino": key.1}),
            };
        }
        if self
            .active
            .iter()
            .any(|c| c.kind == Kind::DenyExec && c.exe == Some(key))
        {
            return Outcome::Refused(format!("{} is already denied", canon.display()));
        }
        let id = short_id("deny");
        let c = Containment {
            exe: Some(key),
            sha256: sha.clone(),
            path: Some(canon.display().to_string()),
            ..Containment::new(
                &id,
                Kind::DenyExec,
                canon.display().to_string(),
                actor,
                ctx.map(|(r, _)| r.to_owned()),
            )
        };
        self.active.push(c.clone());
        let r = self.sync_deny();
        self.active.retain(|x| x.id != id);
        match r {
            Ok(()) => Outcome::Ok {
                message: format!("execution of {} denied ({id})", canon.display()),
                containment: Some(Box::new(c)),
                detail: json!({"path": canon, "sha256": sha, "dev": key.0, "ino": key.1}),
            },
            Err(e) => Outcome::Failed(e),
        }
    }

    fn act_deny_hash(&mut self, sha: &str, dry: bool, actor: &str) -> Outcome {
        let h = match parse_sha256(sha) {
            Ok(h) => crate::ioc::hashes::hex(&h),
            Err(e) => return Outcome::Refused(e),
        };
        // A protected program's hash is refused like the program itself.
        for p in super::config::DEFAULT_PROTECTED_PATHS
            .iter()
            .map(PathBuf::from)
            .chain(self.cfg.protected_paths.iter().map(PathBuf::from))
            .chain(std::env::current_exe().ok())
        {
            if let Ok((found, _)) = quarantine::sha256_file(&p)
                && found == h
            {
                return Outcome::Refused(format!("{h} is the hash of {} (protected)", p.display()));
            }
        }
        if dry {
            return Outcome::Ok {
                message: format!("would deny execution of every program with SHA-256 {h}"),
                containment: None,
                detail: json!({"sha256": h}),
            };
        }
        if self.active.iter().any(|c| {
            c.kind == Kind::DenyExec && c.sha256.as_deref() == Some(h.as_str()) && c.exe.is_none()
        }) {
            return Outcome::Refused(format!("{h} is already denied"));
        }
        let id = short_id("deny");
        let c = Containment {
            sha256: Some(h.clone()),
            ..Containment::new(&id, Kind::DenyExec, format!("sha256:{h}"), actor, None)
        };
        self.active.push(c.clone());
        let r = self.sync_deny();
        self.active.retain(|x| x.id != id);
        match r {
            Ok(()) => Outcome::Ok {
                message: format!("execution of SHA-256 {h} denied ({id})"),
                containment: Some(Box::new(c)),
                detail: json!({"sha256": h}),
            },
            Err(e) => {
                let _ = self.sync_deny();
                Outcome::Failed(e)
            }
        }
    }

    fn act_quarantine(
        &mut self,
        path: &Path,
        dry: bool,
        actor: &str,
        ctx: Option<(&str, &RunContext)>,
    ) -> Outcome {
        let canon = match self.guard.check_file(path) {
            Ok(c) => c,
            Err(r) => return r.into(),
        };
        if dry {
            return Outcome::Ok {
                message: format!("would quarantine {}", canon.display()),
                containment: None,
                detail: json!({"path": canon}),
            };
        }
        let id = short_id("q");
        match quarantine::quarantine(&self.dir.join("quarantine"), &id, &canon) {
            Ok(rec) => Outcome::Ok {
                message: format!("quarantined {} ({id})", canon.display()),
                detail: serde_json::to_value(&rec).unwrap_or_default(),
                containment: Some(Box::new(Containment {
                    exe: Some((kernel_dev(rec.dev), rec.ino)),
                    sha256: Some(rec.sha256),
                    path: Some(rec.original_path),
                    ..Containment::new(
                        &id,
                        Kind::Quarantine,
                        canon.display().to_string(),
                        actor,
                        ctx.map(|(r, _)| r.to_owned()),
                    )
                })),
            },
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    fn release(&mut self, id: &str) -> Outcome {
        let Some(pos) = self.active.iter().position(|c| c.id == id) else {
            return Outcome::Refused(format!(
                "no active containment `{id}` (see `sensor contain list`)"
            ));
        };
        let c = self.active.remove(pos);
        let r: Result<String, String> = match c.kind {
            Kind::Freeze => {
                let dir = PathBuf::from(c.cgroup.clone().unwrap_or_default());
                match cgroup::thaw(&dir) {
                    Ok(()) => {
                        self.undo_move(&c, &dir);
                        Ok(format!("thawed {}", c.target))
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            Kind::Isolate => {
                let dir = PathBuf::from(c.cgroup.clone().unwrap_or_default());
                self.kernel.isolate_detach(&dir);
                let _ = self.sync_allow();
                self.undo_move(&c, &dir);
                Ok(format!("network restored for {}", c.target))
            }
            Kind::DenyExec => self
                .sync_deny()
                .map(|()| format!("execution of {} allowed again", c.target)),
            Kind::Quarantine => quarantine::restore(&self.dir.join("quarantine"), &c.id)
                .map(|r| format!("restored {}", r.original_path))
                .map_err(|e| e.to_string()),
        };
        match r {
            Ok(message) => {
                self.save();
                Outcome::Ok {
                    message,
                    containment: None,
                    detail: json!({"released": c}),
                }
            }
            Err(e) => {
                // Still in force: keep it listed.
                self.active.insert(pos, c);
                Outcome::Failed(e)
            }
        }
    }

    /// Processes the sensor moved go back where they were once nothing else holds the cgroup.
    fn undo_move(&self, c: &Containment, dir: &Path) {
        if !c.created_cgroup || self.shared_cgroup(dir) {
            return;
        }
        self.move_back(&c.moved);
        // Children born inside go where the first process came from.
        if let (Some(root), Some((_, first))) = (&self.v2_root, c.moved.first()) {
            let home = root.join(first.trim_start_matches('/'));
            let _ = cgroup::move_pids(&home, &cgroup::members(dir));
        }
        if let Err(e) = cgroup::remove(dir) {
            tracing::warn!(cgroup = %dir.display(), error = %e, "containment cgroup left behind");
        }
    }

    /// For automatic actions: the pid is still the process that triggered (same start
    /// time; a later exec is the same process), else the pid was reused and the action would
    /// hit an innocent process.
    fn same_process(&self, c: &RunContext) -> Result<(), Outcome> {
        let (Some(pid), Some(start)) = (c.pid, c.start) else {
            return Ok(());
        };
        let proc_root = self.guard.procfs().root().join("proc");
        match target::start_ticks(&proc_root, pid) {
            Some(s) if s == start => Ok(()),
            Some(_) => Err(Outcome::Refused(format!(
                "pid {pid} is another process now (pid reused); not acted on"
            ))),
            None => Err(Outcome::Refused(format!("pid {pid} has exited"))),
        }
    }

    /// An evidence bundle for the context's process tree.
    fn collect(&mut self, ctx: &RunContext, actor: &str, run: Option<&str>) -> Outcome {
        let Some(pid) = ctx.pid else {
            return Outcome::Refused("no process to collect evidence from".into());
        };
        if pid <= 1 {
            return Outcome::Refused(Refusal::Init(pid).to_string());
        }
        if self.keys.is_none() {
            match super::bundle::Keys::load_or_create(
                &self.state_dir.join("keys"),
                self.cfg.evidence_encrypt,
            ) {
                Ok(k) => self.keys = Some(k),
                Err(e) => return Outcome::Failed(e.to_string()),
            }
        }
        let Some(keys) = &self.keys else {
            return Outcome::Failed("no evidence keys".into());
        };
        let pids = target::tree(self.guard.procfs(), pid);
        let events = self.history.lock().map(|h| h.tree(pid)).unwrap_or_default();
        let base = match (&ctx.incident, &ctx.alert) {
            (Some(i), _) => format!("incident-{i}"),
            (None, Some(a)) => format!("alert-{}", a.id),
            _ => format!("manual-{}", uuid::Uuid::now_v7()),
        };
        let root = self.state_dir.join("evidence");
        let mut bundle_id = base.clone();
        let mut n = 2;
        while root.join(&bundle_id).exists() {
            bundle_id = format!("{base}.{n}");
            n += 1;
        }
        let trail = self
            .audit
            .lock()
            .map(|a| a.path().to_path_buf())
            .unwrap_or_default();
        let actions: Vec<_> = super::audit::read(&trail)
            .into_iter()
            .filter(|e| {
                (run.is_some() && e.run.as_deref() == run)
                    || (ctx.incident.is_some() && e.incident == ctx.incident)
            })
            .collect();
        let proc_root = self.guard.procfs().root().join("proc");
        // The root cgroup is the whole host, not the process's container: nothing to add.
        let cgroup_dir = match (&self.v2_root, cgroup::v2_path_of(&proc_root, pid)) {
            (Some(r), Some(p)) if p != "/" => Some(r.join(p.trim_start_matches('/'))),
            _ => None,
        };
        let req = super::evidence::Request {
            bundle_id: bundle_id.clone(),
            pids: pids.clone(),
            focus: Some(pid),
            subject: json!({
                "incident": ctx.incident,
                "alert": ctx.alert.as_ref().map(|a| a.id.clone()),
                "rule": ctx.alert.as_ref().map(|a| a.rule.id.clone()),
                "pid": pid,
                "run": run,
                "host": nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().into_owned()),
            }),
            actor,
            events,
            alerts: ctx.alert.iter().cloned().collect(),
            actions,
            cgroup_dir,
            max_exe_bytes: self.cfg.evidence_max_executable_bytes,
        };
        let started = Instant::now();
        match super::evidence::collect(&root, keys, self.guard.procfs(), req) {
            Ok(dir) => Outcome::Ok {
                message: format!("evidence bundle {}", dir.display()),
                containment: None,
                detail: json!({"bundle": dir, "pids": pids, "ms": started.elapsed().as_secs_f64() * 1e3}),
            },
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }

    /// A playbook fired.
    fn trigger(&mut self, pb: &Arc<Playbook>, ctx: RunContext) {
        // Once per playbook, incident and process: several alerts on one process run it
        // once, a new process of the same incident gets its own run.
        let key = format!(
            "{}|{}|{}",
            pb.id,
            ctx.incident.as_deref().unwrap_or(""),
            ctx.pid.unwrap_or(0)
        );
        if self.ran.contains_key(&key) {
            return;
        }
        // Bounded: under a storm of distinct triggers, forget the oldest hour first.
        if self.ran.len() >= 65_536 {
            self.ran
                .retain(|_, t| t.elapsed() < Duration::from_secs(3600));
            if self.ran.len() >= 65_536 {
                self.ran.clear();
            }
        }
        self.ran.insert(key, Instant::now());
        self.count(|c| c.runs += 1);
        let run = short_id("run");
        let actor = format!("playbook:{}", pb.id);
        match pb.mode {
            Mode::Approve => {
                let steps: Vec<String> = pb.steps.iter().map(|s| s.name().to_owned()).collect();
                let expires = Clock::unix_now() + self.cfg.approval_ttl_secs as i64;
                self.audit_write(Record {
                    actor: actor.clone(),
                    action: "approval-requested".into(),
                    target: steps.join(", "),
                    mode: "approve".into(),
                    outcome: "pending".into(),
                    run: Some(run.clone()),
                    incident: ctx.incident.clone(),
                    alert: ctx.alert.as_ref().map(|a| a.id.clone()),
                    ..Record::default()
                });
                let mut alert = Alert::new(
                    "sensor.response.approval",
                    "Containment waits for approval",
                    crate::alert::Severity::High,
                    format!(
                        "playbook {} wants to {}; run `sensor contain approve {run}` (expires in {} s)",
                        pb.id,
                        steps.join(", "),
                        self.cfg.approval_ttl_secs
                    ),
                )
                .with_tag("sensor-response")
                .with_field("run", run.clone())
                .with_field("playbook", pb.id.clone());
                if let Some(i) = &ctx.incident {
                    alert = alert.with_field("incident", i.clone());
                }
                (self.emit)(alert);
                self.pending.push(Pending {
                    run,
                    playbook: pb.id.clone(),
                    alert: ctx.alert.as_ref().map(|a| a.id.clone()).unwrap_or_default(),
                    incident: ctx.incident.clone(),
                    steps,
                    expires_unix: expires,
                    work: Some((pb.clone(), Box::new(ctx))),
                });
            }
            Mode::DryRun | Mode::Auto => {
                self.execute(pb, &ctx, &run, pb.mode.as_str(), &actor);
            }
        }
    }

    fn approve(&mut self, run: &str, actor: &str) -> ContainReply {
        let Some(pos) = self.pending.iter().position(|p| p.run == run) else {
            return ContainReply::Refused(format!("no run `{run}` waits for approval"));
        };
        let mut p = self.pending.remove(pos);
        let Some((pb, ctx)) = p.work.take() else {
            return ContainReply::Failed(format!("run `{run}` lost its playbook"));
        };
        self.audit_write(Record {
            actor: actor.to_owned(),
            action: "approve".into(),
            target: p.steps.join(", "),
            mode: "approve".into(),
            outcome: "ok".into(),
            run: Some(run.to_owned()),
            incident: p.incident.clone(),
            alert: Some(p.alert.clone()),
            ..Record::default()
        });
        let results = self.execute(&pb, &ctx, run, "approved", &format!("playbook:{}", pb.id));
        ContainReply::Done {
            message: format!("run {run} approved and executed"),
            containment: None,
            detail: json!({"steps": results}),
        }
    }

    fn rollback(&mut self, run: &str, actor: &str) -> ContainReply {
        let ids: Vec<String> = self
            .active
            .iter()
            .filter(|c| c.run.as_deref() == Some(run))
            .map(|c| c.id.clone())
            .rev()
            .collect();
        if ids.is_empty() {
            return ContainReply::Refused(format!("run `{run}` has nothing to roll back"));
        }
        let mut results = Vec::new();
        for id in ids {
            let r = self.release(&id);
            let reply = self.finish("release", &id, actor, "rollback", None, r);
            results.push(serde_json::to_value(&reply).unwrap_or_default());
        }
        ContainReply::Done {
            message: format!("run {run} rolled back"),
            containment: None,
            detail: json!({"released": results}),
        }
    }

    /// Run a playbook's steps in order; returns each step's reply.
    fn execute(
        &mut self,
        pb: &Playbook,
        ctx: &RunContext,
        run: &str,
        mode: &str,
        actor: &str,
    ) -> Vec<Value> {
        let dry = mode == "dry-run";
        let mut out = Vec::new();
        for step in &pb.steps {
            if !dry
                && !matches!(step, Step::CollectEvidence | Step::Notify { .. })
                && let Err(r) = self.rate.take(Instant::now())
            {
                let reply = self.finish(step.name(), "-", actor, mode, Some((run, ctx)), r.into());
                out.push(serde_json::to_value(&reply).unwrap_or_default());
                break;
            }
            let (target_text, result) = self.step(step, ctx, run, dry, actor);
            let reply = self.finish(
                step.name(),
                &target_text,
                actor,
                mode,
                Some((run, ctx)),
                result,
            );
            let failed = matches!(reply, ContainReply::Failed(_) | ContainReply::Refused(_));
            out.push(serde_json::to_value(&reply).unwrap_or_default());
            if failed && !dry {
                if pb.rollback_on_failure {
                    let _ = self.rollback(run, actor);
                }
                let alert = Alert::new(
                    "sensor.response.failed",
                    "Containment step failed",
                    crate::alert::Severity::High,
                    format!("playbook {} stopped at {}: {:?}", pb.id, step.name(), reply),
                )
                .with_tag("sensor-response")
                .with_field("run", run.to_owned());
                (self.emit)(alert);
                break;
            }
        }
        out
    }

    fn scope_target(ctx: &RunContext, scope: Scope) -> Option<Target> {
        let pid = ctx.pid?;
        let start = ctx.start;
        Some(match scope {
            Scope::Process => Target::Process { pid, start },
            Scope::Tree => Target::Tree { pid, start },
            Scope::Container => match (&ctx.container_id, &ctx.cgroup_path) {
                (Some(_), Some(path)) => Target::Cgroup { path: path.clone() },
                _ => Target::Tree { pid, start },
            },
        })
    }

    fn step(
        &mut self,
        step: &Step,
        ctx: &RunContext,
        run: &str,
        dry: bool,
        actor: &str,
    ) -> (String, Outcome) {
        let no_target = || Outcome::Refused("the alert names no process".into());
        let file = |sel: FileSel| match sel {
            FileSel::Executable => ctx.exe_path.clone(),
            FileSel::File => ctx.file_path.clone(),
        };
        match step {
            Step::CollectEvidence => {
                let t = format!("process tree of {}", ctx.pid.unwrap_or(0));
                if dry {
                    return (
                        t,
                        Outcome::Ok {
                            message: "would collect evidence".into(),
                            containment: None,
                            detail: Value::Null,
                        },
                    );
                }
                (t, self.collect(ctx, actor, Some(run)))
            }
            Step::Freeze { scope } => match Self::scope_target(ctx, *scope) {
                Some(t) => (
                    t.to_string(),
                    self.act_freeze(&t, dry, actor, Some((run, ctx))),
                ),
                None => ("-".into(), no_target()),
            },
            Step::Kill { scope } => match Self::scope_target(ctx, *scope) {
                Some(t) => (t.to_string(), self.act_kill(&t, dry, Some(ctx))),
                None => ("-".into(), no_target()),
            },
            Step::Isolate { scope, allow } => match Self::scope_target(ctx, *scope) {
                Some(t) => (
                    t.to_string(),
                    self.act_isolate(&t, allow.clone(), dry, actor, Some((run, ctx))),
                ),
                None => ("-".into(), no_target()),
            },
            Step::Quarantine { file: sel } => match file(*sel) {
                Some(p) => (
                    p.clone(),
                    self.act_quarantine(Path::new(&p), dry, actor, Some((run, ctx))),
                ),
                None => (
                    "-".into(),
                    Outcome::Refused("the alert names no such file".into()),
                ),
            },
            Step::DenyExec { file: sel } => match file(*sel) {
                Some(p) => (
                    p.clone(),
                    self.act_deny(Path::new(&p), dry, actor, Some((run, ctx))),
                ),
                None => (
                    "-".into(),
                    Outcome::Refused("the alert names no such file".into()),
                ),
            },
            Step::Notify { message, severity } => {
                if !dry {
                    let mut a = Alert::new(
                        "sensor.response.notify",
                        "Playbook notification",
                        *severity,
                        message.clone(),
                    )
                    .with_tag("sensor-response")
                    .with_field("run", run.to_owned())
                    .with_field("playbook", pb_id(actor));
                    if let Some(i) = &ctx.incident {
                        a = a.with_field("incident", i.clone());
                    }
                    (self.emit)(a);
                }
                (
                    "outputs".into(),
                    Outcome::Ok {
                        message: format!("notified: {message}"),
                        containment: None,
                        detail: Value::Null,
                    },
                )
            }
        }
    }
}

fn pb_id(actor: &str) -> String {
    actor.strip_prefix("playbook:").unwrap_or(actor).to_owned()
}

/// SIGKILL through a pidfd: the signal reaches the process that was checked, never a
/// process that reused its pid in between.
fn pidfd_kill(pid: u32) -> std::io::Result<()> {
    // SAFETY: plain syscalls with integer arguments; the fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = fd as libc::c_int;
    // SAFETY: as above; a null siginfo means "as kill(2)".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    let err = std::io::Error::last_os_error();
    // SAFETY: fd came from pidfd_open above and is not used after this.
    unsafe { libc::close(fd) };
    if r < 0 { Err(err) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn responder(dir: &Path) -> Responder {
        Responder::open(
            Options {
                cfg: RespondConfig::default(),
                state_dir: dir.to_path_buf(),
                host_root: PathBuf::from("/"),
                v2_root: None,
                base_allow: Vec::new(),
                deny_hashes: Arc::default(),
            },
            Box::new(NoKernel),
            Arc::new(Mutex::new(History::new(4, 4))),
            Box::new(|_| {}),
        )
        .unwrap()
    }

    #[test]
    fn refusals_and_failures_are_replies_and_audited_never_panics() {
        let d = tempfile::tempdir().unwrap();
        let mut r = responder(d.path());
        let cases = [
            ContainRequest::Kill {
                target: Target::Process {
                    pid: 1,
                    start: None,
                },
                dry_run: false,
            },
            ContainRequest::Freeze {
                target: Target::Host,
                dry_run: false,
            },
            ContainRequest::Isolate {
                target: Target::Host,
                allow: vec![],
                dry_run: false,
            },
            ContainRequest::Isolate {
                target: Target::Cgroup { path: "x".into() },
                allow: vec!["not-an-address".into()],
                dry_run: false,
            },
            ContainRequest::Freeze {
                target: Target::Cgroup {
                    path: "../../etc".into(),
                },
                dry_run: false,
            },
            ContainRequest::Quarantine {
                path: "/nonexistent/file".into(),
                dry_run: false,
            },
            ContainRequest::DenyExec {
                path: Some("/bin/sh".into()),
                sha256: None,
                dry_run: false,
            },
            ContainRequest::DenyExec {
                path: None,
                sha256: Some("xyz".into()),
                dry_run: false,
            },
            ContainRequest::DenyExec {
                path: None,
                sha256: None,
                dry_run: false,
            },
            ContainRequest::Release { id: "nope".into() },
            ContainRequest::Approve { run: "nope".into() },
            ContainRequest::Rollback { run: "nope".into() },
            ContainRequest::Collect {
                pid: 1,
                incident: None,
            },
        ];
        let n = cases.len();
        for c in cases {
            let reply = r.manual(c.clone(), "test");
            assert!(
                matches!(reply, ContainReply::Refused(_) | ContainReply::Failed(_)),
                "{c:?} → {reply:?}"
            );
        }
        // Approve and rollback of unknown runs answer without an audit line; the rest audit.
        let entries = super::super::audit::read(&d.path().join("audit.jsonl"));
        assert_eq!(entries.len(), n - 2);
        assert!(
            entries
                .iter()
                .all(|e| e.outcome == "refused" || e.outcome == "failed")
        );
        assert_eq!(
            super::super::audit::verify(&d.path().join("audit.jsonl")),
            Ok(n - 2)
        );
    }

    #[test]
    fn deny_without_kernel_fails_and_keeps_nothing() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("payload");
        std::fs::write(&f, b"x").unwrap();
        let state = d.path().join("state");
        let mut r = responder(&state);
        let reply = r.manual(
            ContainRequest::DenyExec {
                path: Some(f.display().to_string()),
                sha256: None,
                dry_run: false,
            },
            "test",
        );
        assert!(matches!(reply, ContainReply::Failed(_)), "{reply:?}");
        assert!(r.active.is_empty());
        let dry = r.manual(
            ContainRequest::DenyExec {
                path: Some(f.display().to_string()),
                sha256: None,
                dry_run: true,
            },
            "test",
        );
        assert!(
            matches!(
                dry,
                ContainReply::Done {
                    containment: None,
                    ..
                }
            ),
            "{dry:?}"
        );
    }

    #[test]
    fn kernel_dev_matches_the_kernel_encoding() {
        // major 8, minor 1 (sda1): userspace 0x801, kernel (8 << 20) | 1.
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        assert_eq!(kernel_dev(libc::makedev(259, 300)), (259 << 20) | 300);
    }
}
