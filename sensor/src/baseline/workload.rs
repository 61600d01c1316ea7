//! Which workload a process belongs to.
//!
//! A container (by image, else name, else id) or a systemd service unit owns every process in
//! it. Elsewhere a workload is a program a person or a launcher started: its executable path
//! plus its user, and it keeps every descendant (the shell a web server spawns belongs to the
//! web server). Shells, `sudo`, `env` and the like are transparent: they never start a
//! workload of their own under another one; processes whose parent is a boundary (sshd, init,
//! a terminal multiplexer, a container shim) or a person's shell start a new one.

use std::{collections::HashMap, fmt, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::event::{Event, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadKind {
    Container,
    Unit,
    Exe,
}

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Container => "container",
            WorkloadKind::Unit => "unit",
            WorkloadKind::Exe => "exe",
        }
    }
}

/// A workload's identity. Its key (`exe:/usr/sbin/nginx@root`, `container:nginx:1.25`,
/// `unit:cron.service`) names it on the command line and in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadId {
    pub kind: WorkloadKind,
    pub name: String,
    /// The user that started it (executable workloads); users inside containers and units
    /// are a learned feature instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl WorkloadId {
    pub fn key(&self) -> String {
        match &self.user {
            Some(u) => format!("{}:{}@{}", self.kind.as_str(), self.name, u),
            None => format!("{}:{}", self.kind.as_str(), self.name),
        }
    }

    /// Parse a key as printed by `key()`.
    pub fn parse(key: &str) -> Option<WorkloadId> {
        let (kind, rest) = key.split_once(':')?;
        let kind = match kind {
            "container" => WorkloadKind::Container,
            "unit" => WorkloadKind::Unit,
            "exe" => WorkloadKind::Exe,
            _ => return None,
        };
        let (name, user) = match kind {
            WorkloadKind::Exe => match rest.rsplit_once('@') {
                Some((n, u)) if !u.contains('/') => (n.to_owned(), Some(u.to_owned())),
                _ => (rest.to_owned(), None),
            },
            _ => (rest.to_owned(), None),
        };
        (!name.is_empty()).then_some(WorkloadId { kind, name, user })
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Programs that hand over to another program without being a workload themselves.
pub const DEFAULT_LAUNCHERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "mksh", "fish", "tcsh", "csh", "busybox", "env", "sudo",
    "su", "doas", "runuser", "nohup", "setsid", "timeout", "nice", "ionice", "stdbuf", "flock",
    "xargs", "chroot", "unshare", "nsenter", "setpriv", "taskset", "watch", "script", "time",
];

/// Programs below which every child starts a new workload.
pub const DEFAULT_BOUNDARIES: &[&str] = &[
    "init",
    "systemd",
    "sshd",
    "login",
    "agetty",
    "getty",
    "tmux",
    "tmux: server",
    "screen",
    "SCREEN",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "runc",
    "conmon",
    "crun",
    "cron",
    "crond",
    "atd",
    "gnome-terminal-",
    "xterm",
    "konsole",
    "code",
];

/// What the workload of a process depends on.
#[derive(Debug, Clone)]
pub struct Attribution {
    launchers: Vec<String>,
    boundaries: Vec<String>,
    /// Executables that always start their own workload (glob with `*`).
    roots: Vec<String>,
}

impl Attribution {
    pub fn new(launchers: &[String], boundaries: &[String], roots: &[String]) -> Self {
        Self {
            launchers: launchers.to_vec(),
            boundaries: boundaries.to_vec(),
            roots: roots.to_vec(),
        }
    }

    fn base(exe: &str) -> &str {
        exe.rsplit('/').next().unwrap_or(exe)
    }

    pub fn is_launcher(&self, exe: &str) -> bool {
        let b = Self::base(exe);
        self.launchers.iter().any(|l| l == b)
    }

    pub fn is_boundary(&self, exe: &str) -> bool {
        let b = Self::base(exe);
        self.boundaries
            .iter()
            .any(|l| l == b || (l.ends_with('-') && b.starts_with(l.as_str())))
    }

    pub fn is_root(&self, exe: &str) -> bool {
        self.roots.iter().any(|g| glob(g, exe))
    }
}

/// `*` matches any run of characters (including `/`).
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A process's workload, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assigned {
    Workload(Arc<WorkloadId>),
    /// An interactive session: a shell or launcher a person runs directly. Not learned;
    /// rules cover it.
    Session,
}

/// pid → workload, kept from exec, fork and exit events, so a child stays in its parent's
/// workload however deep the tree is.
#[derive(Debug, Default)]
pub struct Assignments {
    by_pid: HashMap<u32, Assigned>,
}

/// Most processes remembered; beyond this the map is rebuilt from events as they come.
const MAX_PIDS: usize = 1 << 17;

impl Assignments {
    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    /// Live pids grouped by workload key.
    pub fn by_workload(&self) -> HashMap<String, Vec<u32>> {
        let mut keys: HashMap<*const WorkloadId, String> = HashMap::new();
        let mut out: HashMap<String, Vec<u32>> = HashMap::new();
        for (pid, a) in &self.by_pid {
            if let Assigned::Workload(w) = a {
                let k = keys.entry(Arc::as_ptr(w)).or_insert_with(|| w.key());
                out.entry(k.clone()).or_default().push(*pid);
            }
        }
        out
    }

    /// The workload of the event's process, updating the map for exec/fork/exit.
    pub fn observe(&mut self, attr: &Attribution, ev: &Event) -> Assigned {
        let pid = ev.process.pid;
        let assigned = match ev.event.kind {
            Kind::Exec => self.on_exec(attr, ev),
            // A container or unit is in the event itself (and its name may appear later,
            // once the runtime wrote its state): never taken from the cache.
            _ => match (fixed(ev), self.by_pid.get(&pid)) {
                (Some(w), _) => Assigned::Workload(Arc::new(w)),
                (None, Some(a)) => a.clone(),
                (None, None) => self.by_ancestry(attr, ev),
            },
        };
        if self.by_pid.len() >= MAX_PIDS {
            self.by_pid.clear();
        }
        match ev.event.kind {
            Kind::Fork => {
                if let Some(f) = &ev.process.fork {
                    self.by_pid.insert(f.child_pid, assigned.clone());
                }
                self.by_pid.insert(pid, assigned.clone());
            }
            Kind::Exit => {
                // Threads exit too; only the leader's exit ends the process.
                if ev.process.pid == ev.process.tid {
                    self.by_pid.remove(&pid);
                }
            }
            _ => {
                self.by_pid.insert(pid, assigned.clone());
            }
        }
        assigned
    }

    fn on_exec(&mut self, attr: &Attribution, ev: &Event) -> Assigned {
        if let Some(w) = fixed(ev) {
            return Assigned::Workload(Arc::new(w));
        }
        let exe = exe_of(ev);
        if attr.is_root(exe) {
            return Assigned::Workload(Arc::new(exe_workload(ev, exe)));
        }
        let parent = ev.process.parent.as_ref();
        let parent_exe = parent.and_then(|p| p.executable.as_deref().or(p.name.as_deref()));
        let parent_assigned = parent.and_then(|p| self.by_pid.get(&p.pid)).cloned();
        match parent_assigned {
            // Below a boundary (or init, whatever its name) everything starts afresh.
            _ if parent.is_none_or(|p| p.pid <= 1)
                || parent_exe.is_none_or(|e| attr.is_boundary(e)) =>
            {
                start(attr, ev, exe)
            }
            Some(Assigned::Workload(w)) => Assigned::Workload(w),
            Some(Assigned::Session) => start(attr, ev, exe),
            None => self.by_ancestry(attr, ev),
        }
    }

    /// No history for this pid (seeded at start, or a replay that starts mid-stream): walk the
    /// ancestry the event carries. The workload root is the topmost non-launcher below the
    /// nearest boundary.
    /// The ancestors between the process and its workload's root are remembered with the
    /// same workload, so the root's own later events (which carry its arguments) land in the
    /// workload its descendants were already given.
    fn by_ancestry(&mut self, attr: &Attribution, ev: &Event) -> Assigned {
        if let Some(w) = fixed(ev) {
            return Assigned::Workload(Arc::new(w));
        }
        let own = exe_of(ev);
        let mut root: Option<&str> = (!attr.is_launcher(own)).then_some(own);
        if attr.is_root(own) {
            return Assigned::Workload(Arc::new(exe_workload(ev, own)));
        }
        let mut walked = Vec::new();
        let mut upto = 0;
        let chain = ev.process.parent.iter().chain(ev.process.ancestry.iter());
        for a in chain {
            // A known ancestor settles it.
            if let Some(Assigned::Workload(w)) = self.by_pid.get(&a.pid) {
                let w = Assigned::Workload(w.clone());
                for pid in walked {
                    self.by_pid.insert(pid, w.clone());
                }
                return w;
            }
            let Some(exe) = a.executable.as_deref().or(a.name.as_deref()) else {
                break;
            };
            if a.pid <= 1 || attr.is_boundary(exe) {
                break;
            }
            walked.push(a.pid);
            if attr.is_root(exe) {
                root = Some(exe);
                upto = walked.len();
                break;
            }
            if !attr.is_launcher(exe) {
                root = Some(exe);
                upto = walked.len();
            }
        }
        match root {
            Some(exe) => {
                let w = Assigned::Workload(Arc::new(exe_workload(ev, exe)));
                for pid in &walked[..upto] {
                    self.by_pid.insert(*pid, w.clone());
                }
                w
            }
            None => Assigned::Session,
        }
    }
}

fn start(attr: &Attribution, ev: &Event, exe: &str) -> Assigned {
    if attr.is_launcher(exe) {
        Assigned::Session
    } else {
        Assigned::Workload(Arc::new(exe_workload(ev, exe)))
    }
}

fn exe_of(ev: &Event) -> &str {
    ev.process
        .executable
        .as_deref()
        .unwrap_or(ev.process.name.as_str())
}

fn exe_workload(ev: &Event, exe: &str) -> WorkloadId {
    // An interpreter is not the program: the script it runs is (when the event is the
    // interpreter's own and so carries its arguments).
    let own = ev.process.executable.as_deref() == Some(exe);
    let name = match script(
        exe,
        &ev.process.args,
        ev.process.working_directory.as_deref(),
    ) {
        Some(s) if own => format!("{exe} {s}"),
        _ => exe.to_owned(),
    };
    WorkloadId {
        kind: WorkloadKind::Exe,
        name,
        user: Some(user_of(ev)),
    }
}

/// Interpreters whose first operand names the program they run.
const INTERPRETERS: &[&str] = &[
    "python", "python2", "python3", "perl", "ruby", "node", "nodejs", "php", "lua", "java",
];

/// The program an interpreter runs: the script path (absolute, generalized), or `-m module`,
/// `-jar file`; `None` for inline code (`-c`, `-e`) or a bare interpreter.
pub fn script(exe: &str, args: &[String], cwd: Option<&str>) -> Option<String> {
    let base = exe.rsplit('/').next().unwrap_or(exe);
    let stem = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if !INTERPRETERS.contains(&base) && !INTERPRETERS.contains(&stem) {
        return None;
    }
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "-m" | "-jar" => return it.next().map(|m| format!("{a} {m}")),
            "-c" | "-e" | "-E" | "--eval" | "-r" => return None,
            // Options that take a value (python -W/-X, java -cp).
            "-W" | "-X" | "-cp" | "-classpath" => {
                it.next();
            }
            s if s.starts_with('-') => {}
            path => {
                let abs = match (path.starts_with('/'), cwd) {
                    (true, _) => path.to_owned(),
                    (false, Some(d)) => format!("{}/{path}", d.trim_end_matches('/')),
                    (false, None) => path.to_owned(),
                };
                return Some(super::generalize::path(&abs));
            }
        }
    }
    None
}

pub fn user_of(ev: &Event) -> String {
    ev.user
        .name
        .clone()
        .unwrap_or_else(|| ev.user.id.to_string())
}

/// Containers and service units own all their processes.
fn fixed(ev: &Event) -> Option<WorkloadId> {
    if let Some(c) = &ev.container {
        let name = c
            .image
            .clone()
            .or_else(|| c.name.clone())
            .unwrap_or_else(|| c.id.clone());
        return Some(WorkloadId {
            kind: WorkloadKind::Container,
            name,
            user: None,
        });
    }
    let unit = &ev.service.as_ref()?.name;
    // Login sessions and the per-user manager are people, not services.
    let is_service = unit.ends_with(".service") && !unit.starts_with("user@");
    is_service.then(|| WorkloadId {
        kind: WorkloadKind::Unit,
        name: unit.clone(),
        user: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ForkInfo, Parent};

    fn attr() -> Attribution {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Attribution::new(&s(DEFAULT_LAUNCHERS), &s(DEFAULT_BOUNDARIES), &[])
    }

    fn exec(pid: u32, exe: &str, chain: &[(u32, &str)]) -> Event {
        let mut ev = crate::baseline::tests::event(Kind::Exec, "exec");
        ev.process.pid = pid;
        ev.process.tid = pid;
        ev.process.executable = Some(exe.into());
        let mut parents = chain.iter().map(|(p, e)| Parent {
            pid: *p,
            name: None,
            executable: Some((*e).into()),
        });
        ev.process.parent = parents.next();
        ev.process.ancestry = parents.collect();
        ev
    }

    fn key(a: &Assigned) -> String {
        match a {
            Assigned::Workload(w) => w.key(),
            Assigned::Session => "session".into(),
        }
    }

    #[test]
    fn keys_round_trip() {
        for k in [
            "exe:/usr/sbin/nginx@root",
            "container:nginx:1.25",
            "unit:cron.service",
            "exe:/opt/a@b/c",
        ] {
            let w = WorkloadId::parse(k).unwrap();
            assert_eq!(w.key(), k);
        }
        assert!(WorkloadId::parse("pod:x").is_none());
        assert!(WorkloadId::parse("exe:").is_none());
        assert!(WorkloadId::parse("nothing").is_none());
    }

    #[test]
    fn a_service_keeps_its_shells_and_their_children() {
        let a = attr();
        let mut m = Assignments::default();
        let sshd = (10, "/usr/sbin/sshd");
        let bash = (20, "/usr/bin/bash");
        // A person's shell is a session; what they start is a workload.
        assert_eq!(
            key(&m.observe(&a, &exec(20, "/usr/bin/bash", &[sshd]))),
            "session"
        );
        let py = exec(30, "/usr/bin/python3.11", &[bash, sshd]);
        assert_eq!(key(&m.observe(&a, &py)), "exe:/usr/bin/python3.11@0");
        // python → sh → nc: all python's.
        let sh = exec(40, "/usr/bin/dash", &[(30, "/usr/bin/python3.11"), bash]);
        assert_eq!(key(&m.observe(&a, &sh)), "exe:/usr/bin/python3.11@0");
        let nc = exec(
            50,
            "/usr/bin/nc",
            &[(40, "/usr/bin/dash"), (30, "/usr/bin/python3.11")],
        );
        assert_eq!(key(&m.observe(&a, &nc)), "exe:/usr/bin/python3.11@0");
        // A fork child inherits; its exit forgets it.
        let mut fork = crate::baseline::tests::event(Kind::Fork, "fork");
        fork.process.pid = 30;
        fork.process.fork = Some(ForkInfo {
            child_pid: 31,
            clone_flags: 0,
        });
        m.observe(&a, &fork);
        let mut open = crate::baseline::tests::event(Kind::File, "openat");
        open.process.pid = 31;
        assert_eq!(key(&m.observe(&a, &open)), "exe:/usr/bin/python3.11@0");
    }

    #[test]
    fn unknown_pids_walk_their_ancestry() {
        let a = attr();
        let mut m = Assignments::default();
        let ev = exec(
            50,
            "/usr/bin/id",
            &[
                (40, "/bin/sh"),
                (30, "/usr/sbin/nginx"),
                (20, "/bin/sh"),
                (1, "/sbin/init"),
            ],
        );
        assert_eq!(key(&m.by_ancestry(&a, &ev)), "exe:/usr/sbin/nginx@0");
        let ev = exec(50, "/bin/sh", &[(10, "/usr/sbin/sshd")]);
        assert_eq!(key(&m.by_ancestry(&a, &ev)), "session");
    }

    #[test]
    fn containers_and_units_own_their_processes() {
        let a = attr();
        let mut m = Assignments::default();
        let mut ev = exec(60, "/bin/sh", &[(1, "/sbin/init")]);
        ev.container = Some(crate::event::Container {
            id: "abc".into(),
            runtime: "runc".into(),
            pod_uid: None,
            name: Some("web".into()),
            image: Some("nginx:1.25".into()),
        });
        assert_eq!(key(&m.observe(&a, &ev)), "container:nginx:1.25");
        let mut ev = exec(61, "/usr/sbin/cron", &[(1, "/sbin/init")]);
        ev.service = Some(crate::event::Service {
            name: "cron.service".into(),
        });
        assert_eq!(key(&m.observe(&a, &ev)), "unit:cron.service");
        ev.service = Some(crate::event::Service {
            name: "session-3.scope".into(),
        });
        assert_eq!(key(&m.observe(&a, &ev)), "exe:/usr/sbin/cron@0");
    }

    #[test]
    fn scripts_name_interpreted_workloads() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let py = "/usr/bin/python3.11";
        assert_eq!(
            script(
                py,
                &a(&["python3", "-I", "-S", "/srv/app.py", "8080"]),
                None
            )
            .as_deref(),
            Some("/srv/app.py")
        );
        assert_eq!(
            script(py, &a(&["python3", "app.py"]), Some("/srv/")).as_deref(),
            Some("/srv/app.py")
        );
        assert_eq!(
            script(py, &a(&["python3", "-m", "http.server", "80"]), None).as_deref(),
            Some("-m http.server")
        );
        assert_eq!(script(py, &a(&["python3", "-c", "print(1)"]), None), None);
        assert_eq!(script(py, &a(&["python3"]), None), None);
        assert_eq!(
            script("/usr/bin/perl", &a(&["perl", "-W", "x", "/opt/t.pl"]), None).as_deref(),
            Some("/opt/t.pl")
        );
        assert_eq!(
            script("/usr/bin/cat", &a(&["cat", "/etc/passwd"]), None),
            None
        );
        // The key carries it, and still parses.
        let a2 = attr();
        let mut m = Assignments::default();
        let mut ev = exec(70, py, &[(20, "/usr/bin/bash"), (10, "/usr/sbin/sshd")]);
        ev.process.args = a(&["python3", "/srv/app.py"]);
        let k = key(&m.observe(&a2, &ev));
        assert_eq!(k, "exe:/usr/bin/python3.11 /srv/app.py@0");
        assert_eq!(WorkloadId::parse(&k).unwrap().key(), k);
    }

    #[test]
    fn configured_roots_start_their_own_workload() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = Attribution::new(
            &s(DEFAULT_LAUNCHERS),
            &s(DEFAULT_BOUNDARIES),
            &s(&["/usr/bin/python3*"]),
        );
        let mut m = Assignments::default();
        m.observe(
            &a,
            &exec(5, "/usr/bin/cargo", &[(2, "/bin/bash"), (1, "/sbin/init")]),
        );
        let py = exec(6, "/usr/bin/python3.11", &[(5, "/usr/bin/cargo")]);
        assert_eq!(key(&m.observe(&a, &py)), "exe:/usr/bin/python3.11@0");
        assert!(glob("/a/*/c*", "/a/b/cd"));
        assert!(!glob("/a/*/c", "/a/b/d"));
    }
}
